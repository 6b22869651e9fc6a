//! The words of every message a session posts: [`Said`] rendered to text.
//!
//! Each text is matched on by clients, tests and the README: change one
//! only on purpose, and never in passing.

use std::fmt::{self, Display, Formatter};

use humantime::format_duration;

use super::Said;
use crate::node::NodeId;
use crate::rollout::{
    ALREADY_ON_TARGET_IMAGE, COMPLETED_MESSAGE, ForeignOutOfService, count_nodes,
};

impl Display for Said {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Said::DeletionRequested => f.write_str(
                "Deletion requested: no new node will be taken; nodes not yet booted are returned to service",
            ),
            Said::Paused { reason } => write!(
                f,
                "Paused: {reason}; nodes in flight finish, no new node is taken until resumed"
            ),
            Said::Resumed => f.write_str("Resumed: taking nodes again"),
            Said::RequestRefused { reason } => write!(f, "Operator request refused: {reason}"),
            Said::EmptyGroup { label } => {
                write!(f, "Group '{label}' has no members: nothing to upgrade")
            }
            Said::AllOnTarget { label } => write!(
                f,
                "Every node of group '{label}' is already on the target image: nothing to upgrade"
            ),
            Said::Plan(plan) => plan.fmt(f),
            Said::SkippedMatching {
                count: skipped,
                template,
            } => write!(
                f,
                "{} already on template '{template}': left alone, reported skipped ({ALREADY_ON_TARGET_IMAGE})",
                capitalise(&count_nodes(*skipped))
            ),
            Said::NoneMatching { template } => write!(
                f,
                "No node is already on template '{template}' (skip_matching)"
            ),
            Said::ImagesUnknown { error } => write!(
                f,
                "Cannot tell which nodes are already on the target image ({}); every node is upgraded",
                error
            ),
            Said::ClearedFailedGroup {
                label: failed_label,
                count,
            } => write!(
                f,
                "Cleared node group '{failed_label}' ({} from an earlier session)",
                count_nodes(*count)
            ),
            Said::ClearedUpgradingGroup {
                label: upgrading_label,
                count,
            } => write!(
                f,
                "Cleared node group '{upgrading_label}' ({})",
                count_nodes(*count)
            ),
            Said::OutsideWindows { opens_at: Some(at) } => write!(
                f,
                "Outside the maintenance windows: the next nodes are taken when one opens ({at})"
            ),
            Said::OutsideWindows { opens_at: None } => {
                f.write_str("Outside the maintenance windows, which never open: no node is taken")
            }
            Said::BootsPaced { limit } => write!(
                f,
                "Boots paced at max_boots_per_minute = {limit}: drained nodes wait their turn"
            ),
            Said::StepStarted {
                step: number,
                canary,
                nodes: ids,
                inventory_order,
            } => {
                let range = match ids.as_slice() {
                    [only] => only.to_string(),
                    [first, .., last] if *inventory_order => format!("{} … {}", first, last),
                    _ => joined(ids),
                };
                let canary = if *canary { " (canary)" } else { "" };
                write!(
                    f,
                    "Step {number}{canary} started: draining {} ({range})",
                    count_nodes(ids.len())
                )
            }
            Said::StepBooting {
                step: step_number,
                count,
                template,
            } => write!(
                f,
                "Step {step_number}: {} drained; booting {} with template '{}'",
                count_nodes(*count),
                if *count == 1 { "it" } else { "them" },
                template
            ),
            Said::StepBootingBack {
                step: step_number,
                count,
                template,
            } => write!(
                f,
                "Step {step_number}: booting {} back to template '{template}' (rollback)",
                count_nodes(*count),
            ),
            Said::BootStarted {
                step,
                count,
                template,
                boot,
            } => write!(
                f,
                "Step {step}: boot of {} started with template '{}' (boot {})",
                count_nodes(*count),
                template,
                boot
            ),
            Said::StepFinished {
                step: step_number,
                upgraded,
                reverted,
                failed,
                skipped,
            } => {
                write!(
                    f,
                    "Step {step_number} finished: {} upgraded",
                    count_nodes(*upgraded)
                )?;
                if *reverted > 0 {
                    write!(f, ", {reverted} reverted")?;
                }
                if *failed > 0 {
                    write!(f, ", {failed} failed")?;
                }
                if *skipped > 0 {
                    write!(f, ", {skipped} returned to service without upgrade")?;
                }
                Ok(())
            }
            Said::CanaryPaused { reason } => write!(
                f,
                "Paused: {reason}; resume the session to upgrade the rest"
            ),
            Said::CanaryPassed => f.write_str("Canary step passed; continuing"),
            Said::Halted { reason } => write!(
                f,
                "Halted: {reason}; nodes in flight finish, no new node is taken. Resume the session (with a larger max_failures) or delete it"
            ),
            Said::Deleted { upgraded, failed } => write!(
                f,
                "Upgrade session deleted: {} upgraded, {failed} failed before it stopped",
                count_nodes(*upgraded)
            ),
            Said::Summary(summary) => summary.fmt(f),
            Said::Completed => f.write_str(COMPLETED_MESSAGE),
            Said::NodeFailed { node: id, reason } => write!(f, "Node {id} failed: {reason}"),
            Said::NodeLeftAlone { node: id, reason } => write!(f, "Node {id}: {reason}"),
            Said::BootingAgain {
                node: id,
                reason,
                attempts,
                allowed,
            } => write!(
                f,
                "Node {id}: {reason}; booting it again (attempt {} of {allowed})",
                attempts + 1
            ),
            Said::RollingBack {
                node: id,
                reason,
                template,
            } => write!(
                f,
                "Node {id}: {reason}; booting it back to template '{template}' (rollback)"
            ),
            Said::RestartingGracefully {
                node: id,
                boot_timeout,
                grace,
            } => write!(
                f,
                "Node {id} did not come back within {} of its boot starting; restarting it gracefully through power control (by force if it is not back within {})",
                format_duration(*boot_timeout),
                format_duration(*grace),
            ),
            Said::RestartingByForce { node: id, grace } => write!(
                f,
                "Node {id} did not come back within {} of a graceful restart; restarting it by force",
                format_duration(*grace),
            ),
            Said::PowerRestartFailed { node: id, error } => {
                write!(f, "Node {id}: the power restart failed: {}", error)
            }
            Said::DrainTimedOutSkipped { node: id, waited } => {
                let waited = format_duration(*waited);
                write!(
                    f,
                    "Node {id} did not drain within {waited}: skipped, returned to service without upgrade"
                )
            }
            Said::DrainTimedOutForced { node: id, waited } => {
                let waited = format_duration(*waited);
                write!(
                    f,
                    "WARNING: node {id} did not drain within {waited}: rebooting it with its jobs still running (on_drain_timeout: force)"
                )
            }
            Said::DrainTimedOutRequeueing { node: id, waited } => {
                let waited = format_duration(*waited);
                write!(
                    f,
                    "Node {id} did not drain within {waited}: requeueing its jobs"
                )
            }
            Said::CouldNotRequeue { node: id, error } => write!(
                f,
                "Could not requeue the jobs of node {id}: {}; waiting for them to end",
                error
            ),
            Said::ForeignReturned {
                node: id,
                described,
            } => write!(
                f,
                "Node {id}: returned to service by someone else (it was {}); crus treats it as any other node again",
                described
            ),
            Said::ForeignPending {
                node: id,
                described,
                policy,
            } => write!(
                f,
                "Node {id}: out of service by someone else, {described}; crus will {}",
                match policy {
                    ForeignOutOfService::Wait =>
                        "wait for it to be returned to service before upgrading it",
                    _ => "upgrade it and put it back as it was, never resuming it",
                }
            ),
            Said::ForeignWaiting {
                node: id,
                described,
            } => write!(
                f,
                "Node {id}: out of service by someone else, {described}; waiting for it to be returned to service (foreign_out_of_service: wait)"
            ),
            Said::ForeignUpgraded {
                node: id,
                described,
            } => write!(
                f,
                "Node {id}: out of service by someone else, {described}; it will be upgraded and put back as it was, never resumed"
            ),
            Said::ReturningAhead { nodes, stopped } => {
                let why = if *stopped {
                    "no node may be taken now"
                } else {
                    "their jobs ended while every place of the step was held"
                };
                write!(
                    f,
                    "Returning {} drained ahead to service ({}): {why}; {} taken when a place frees",
                    count_nodes(nodes.len()),
                    joined(nodes),
                    if nodes.len() == 1 {
                        "it is"
                    } else {
                        "they are"
                    }
                )
            }
            Said::DrainingAhead { nodes } => write!(
                f,
                "Draining ahead {} whose jobs end soonest ({}): no new job starts there, and each takes a place in the step when one frees",
                count_nodes(nodes.len()),
                joined(nodes)
            ),
            Said::DrainsHeldAtFloor {
                nodes: held,
                floor,
                elsewhere,
            } => {
                let mut elsewhere: Vec<String> = elsewhere
                    .iter()
                    .map(|(id, why)| format!("{} ({why})", id))
                    .collect();
                if elsewhere.is_empty() {
                    elsewhere.push("none known".to_string());
                }
                write!(
                    f,
                    "Holding the drain of {} at the capacity floor: min_available keeps {floor} in service, and nodes went out of service since {} taken; out of service by someone else: {}. {} drained when a node returns to service",
                    joined(held),
                    if held.len() == 1 { "it was" } else { "they were" },
                    elsewhere.join(", "),
                    if held.len() == 1 { "It is" } else { "They are" },
                )
            }
            Said::HeldAtFloor {
                floor,
                in_service,
                out,
                more,
            } => {
                let mut listed: Vec<String> = out
                    .iter()
                    .map(|(id, why)| format!("{} ({why})", id))
                    .collect();
                if *more > 0 {
                    listed.push(format!("and {} more", more));
                }
                write!(
                    f,
                    "Holding at the capacity floor: min_available keeps {floor} in service, {in_service} are; out of service: {}. The next node is taken when one returns",
                    listed.join(", ")
                )
            }
            Said::Reverting {
                count: upgraded,
                template,
                batch,
            } => write!(
                f,
                "Reverting (revert_upgraded_on_halt): booting the {} this session upgraded back to template '{template}', at most {} at a time",
                count_nodes(*upgraded),
                batch
            ),
            Said::RevertStepStarted {
                step: number,
                nodes: ids,
                template,
            } => write!(
                f,
                "Step {number} (revert) started: draining {} ({}) to boot them back to template '{template}'",
                count_nodes(ids.len()),
                joined(ids)
            ),
            Said::RevertLeavesHeld { node, why } => write!(
                f,
                "Node {node}: out of service by someone else, {why}: left upgraded, not booted back (foreign_out_of_service: skip)"
            ),
            Said::GatesCleared { held } => {
                let held = format_duration(*held);
                write!(f, "Alert gates clear (held {held}): taking nodes again")
            }
            Said::Gated { reasons, max_hold } => {
                let what = reasons.join("; ");
                let bound = match max_hold {
                    Some(max_hold) => format!(
                        ", or halts after {} (max_hold)",
                        format_duration(*max_hold)
                    ),
                    None => String::new(),
                };
                write!(
                    f,
                    "Held by alert gates: {what}. No new node is taken and nodes in flight \
                     finish; the session goes on when the gates clear{bound}"
                )
            }
            Said::StillGated { reasons } => {
                let what = reasons.join("; ");
                write!(f, "Still held by alert gates: {what}")
            }
            Said::HookStarted { subject, hook } => write!(f, "{}: {} started", subject, hook),
            Said::HookRunAgain { subject, hook } => write!(
                f,
                "{subject}: {} was running when the server stopped; running it again (idempotent)",
                hook
            ),
            Said::HookFinished { subject, hook } => write!(f, "{subject}: {} finished", hook),
            Said::HookFailed { subject, reason } => write!(f, "{subject}: {reason}"),
            Said::HookFailedEarlierBoot { subject, reason } => write!(
                f,
                "{subject}: {reason} (after an earlier boot; it runs again after the node's next boot)"
            ),
            Said::WeightsLost => f.write_str(
                "The workload manager lost scheduling weights this session set (a restart or \
                 reconfiguration of it resets them): they are set again",
            ),
            Said::WeightsUnsupported { error } => write!(
                f,
                "steer_jobs: the workload manager cannot set node weights ({}); new jobs are \
                 not steered to upgraded nodes",
                error
            ),
            Said::FeaturesLost => f.write_str(
                "The workload manager lost node features this session set (a restart or \
                 reconfiguration of it resets them): they are set again",
            ),
            Said::FeaturesUnsupported { error } => write!(
                f,
                "image_features: the workload manager cannot set node features ({}); \
                 upgraded nodes are not tagged with their image",
                error
            ),
            Said::ReservationsLost => f.write_str(
                "The workload manager lost reservations this session set (one made just before \
                 it crashed may not have been saved): they are set again",
            ),
            Said::ReservationsUnsupported { error } => write!(
                f,
                "reserve_ahead: the workload manager cannot reserve nodes ({}); nodes still \
                 to upgrade are not kept for their turn",
                error
            ),
            Said::Retrying {
                action,
                error,
                every,
            } => retrying(f, &capitalise(action), error, every),
            Said::RetryingAsDescribed {
                action,
                error,
                every,
            } => retrying(f, action, error, every),
            Said::RetryingNow { action, error } => {
                write!(f, "{} failed, retrying: {error}", capitalise(action))
            }
            Said::WorkloadUnreadable { error, every } => {
                let retry_in = format_duration(*every);
                write!(
                    f,
                    "Could not read node states from the workload manager: {}; retrying every {retry_in}",
                    error
                )
            }
            Said::BootProgressUnreadable { step, error, every } => {
                let retry_in = format_duration(*every);
                write!(
                    f,
                    "Could not read the boot progress of step {step}: {}; retrying every {retry_in}",
                    error
                )
            }
            Said::StoreRefused { error } => write!(
                f,
                "The session store refused to save this session ({error}); nothing more is done \
                 until it takes writes again (retried with backoff, and at once on resume)"
            ),
        }
    }
}

/// `what` failed with `error`, tried again every `every`.
fn retrying(
    f: &mut Formatter<'_>,
    what: &str,
    error: &str,
    every: &std::time::Duration,
) -> fmt::Result {
    let retry_in = format_duration(*every);
    write!(f, "{what} failed: {}; retrying every {retry_in}", error)
}

/// `x1, x2, x3`: node ids as messages list them.
fn joined(ids: &[NodeId]) -> String {
    ids.iter()
        .map(NodeId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` with its first letter in upper case, for the start of a message.
fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
