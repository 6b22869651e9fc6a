//! Carries out one rollout action against the ports.
//!
//! Every action is idempotent (it may run again after a restart, or after a
//! retry whose first attempt half-succeeded), because every port call it makes
//! is: adding a member twice, draining twice, resuming twice, or starting a boot
//! under the same key twice all leave the site as one call would.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::node::NodeId;
use crate::ports::{
    GateCheck, GateVerdict, HEALTH_CHECK_FAILED, HealthCheck, HookRequest, Ports, WorkloadNode,
    WorkloadState,
};
use crate::rollout::{
    Action, ActionOutput, held_by_someone_else, is_crus_reason, marked_by_someone_else,
};

/// Executes `action` through `ports`.
pub async fn execute(ports: &Ports, action: &Action) -> Result<ActionOutput> {
    match action {
        Action::ReadStartingGroup { label } => Ok(ActionOutput::Members(
            ports.inventory.group_members(label).await?,
        )),
        Action::ReadCurrentImages { nodes, template } => Ok(ActionOutput::Images(
            ports
                .boot_orchestrator
                .current_images(nodes, template)
                .await?,
        )),
        Action::PrepareGroups {
            upgrading_label,
            failed_label,
        } => {
            ports.inventory.ensure_group(upgrading_label).await?;
            ports.inventory.ensure_group(failed_label).await?;
            let cleared_failed = ports.inventory.clear_group(failed_label).await?;
            let cleared_upgrading = ports.inventory.clear_group(upgrading_label).await?;
            Ok(ActionOutput::GroupsPrepared {
                cleared_failed,
                cleared_upgrading,
            })
        }
        Action::Drain {
            upgrading_label,
            nodes,
            reason,
        } => {
            add_creating_group(ports, upgrading_label, nodes).await?;
            let to_drain = not_held_by_others(ports, nodes).await?;
            if !to_drain.is_empty() {
                ports.workload_manager.drain(&to_drain, reason).await?;
            }
            Ok(ActionOutput::Done)
        }
        Action::RequeueJobs { nodes } => {
            ports.workload_manager.requeue_jobs(nodes).await?;
            Ok(ActionOutput::Done)
        }
        Action::ObserveWorkload { nodes, probe } => {
            let mut observed = ports.workload_manager.node_states(nodes).await?;
            if let Some((check, verifying)) = probe {
                probe_health(ports, check, verifying, &mut observed).await?;
            }
            Ok(ActionOutput::Workload(observed))
        }
        Action::StartBoot { request, .. } => Ok(ActionOutput::BootStarted(
            ports.boot_orchestrator.start_boot(request).await?,
        )),
        Action::ObserveBoot { handle, .. } => Ok(ActionOutput::BootStatus(
            ports.boot_orchestrator.boot_status(handle).await?,
        )),
        Action::Resume {
            upgrading_label,
            nodes,
        } => {
            // A node someone else took out of service since crus last saw
            // it (or before crus saw it at all: a session deleted before
            // its first observation) is never returned to service by crus.
            // Those are told to the rollout as read: out of service all
            // the same, they count against the capacity floor.
            let (to_resume, left_alone) = split_held(ports, nodes, held_by_someone_else).await?;
            if !to_resume.is_empty() {
                ports.workload_manager.resume(&to_resume).await?;
            }
            remove_if_group_exists(ports, upgrading_label, nodes).await?;
            Ok(if left_alone.is_empty() {
                ActionOutput::Done
            } else {
                ActionOutput::Workload(left_alone)
            })
        }
        Action::Restore {
            upgrading_label,
            nodes,
            only_where_held,
        } => {
            // A node crus never booted that its owner returned to service
            // since crus last read it stays in service: putting their old
            // mark back would undo them.
            let returned: std::collections::HashSet<NodeId> = if *only_where_held {
                let ids: Vec<NodeId> = nodes.iter().map(|(node, _, _)| node.clone()).collect();
                not_held_by_others(ports, &ids).await?.into_iter().collect()
            } else {
                std::collections::HashSet::new()
            };
            // One state and reason per call: group nodes by both.
            let mut by_mark: BTreeMap<(WorkloadState, &str), Vec<NodeId>> = BTreeMap::new();
            for (node, state, reason) in
                nodes.iter().filter(|(node, _, _)| !returned.contains(node))
            {
                by_mark
                    .entry((*state, reason))
                    .or_default()
                    .push(node.clone());
            }
            for ((state, reason), group) in &by_mark {
                ports
                    .workload_manager
                    .restore(group, *state, reason)
                    .await?;
            }
            let ids: Vec<NodeId> = nodes.iter().map(|(node, _, _)| node.clone()).collect();
            remove_if_group_exists(ports, upgrading_label, &ids).await?;
            Ok(ActionOutput::Done)
        }
        Action::MarkFailed {
            upgrading_label,
            failed_label,
            nodes,
        } => {
            // The workload manager takes one reason per call: group nodes by reason.
            let mut by_reason: BTreeMap<&str, Vec<NodeId>> = BTreeMap::new();
            for (node, reason) in nodes {
                by_reason.entry(reason).or_default().push(node.clone());
            }
            for (reason, group) in &by_reason {
                // A node crus took and failed gets crus's mark (its reason
                // starts with the session's drain reason) over whatever a
                // reboot wrote meanwhile: a reboot gone wrong leaves
                // Slurm's own "Not responding" or "reboot timed out", which
                // must not let the node slip back into service. But a mark
                // an administrator placed while crus held the node (drained
                // mid-boot: "bad DIMM") is theirs and is kept: the node
                // stays out of service either way. A node someone else
                // held before (the rollout passes their reason, byte for
                // byte) keeps whatever mark it has.
                let group = if is_crus_reason(reason) {
                    not_marked_by_others(ports, group).await?
                } else {
                    not_held_by_others(ports, group).await?
                };
                if !group.is_empty() {
                    ports.workload_manager.fail(&group, reason).await?;
                }
            }
            let ids: Vec<NodeId> = nodes.iter().map(|(node, _)| node.clone()).collect();
            add_creating_group(ports, failed_label, &ids).await?;
            remove_if_group_exists(ports, upgrading_label, &ids).await?;
            Ok(ActionOutput::Done)
        }
        Action::PowerRestart { nodes, operation } => match &ports.power_control {
            Some(power_control) => {
                power_control.power(nodes, *operation).await?;
                Ok(ActionOutput::Done)
            }
            None => Err(Error::NotSupported {
                backend: "crus",
                operation: "power restarts: no power control backend is configured",
            }),
        },
        Action::ReadWeights { nodes } => {
            let weights = ports.workload_manager.node_weights(nodes).await?;
            if weights.len() != nodes.len() {
                return Err(Error::Unavailable {
                    backend: "workload manager",
                    message: format!(
                        "answered {} weights for {} nodes; asking again",
                        weights.len(),
                        nodes.len()
                    ),
                });
            }
            Ok(ActionOutput::Weights(
                nodes.iter().cloned().zip(weights).collect(),
            ))
        }
        Action::SetWeights { weights } => {
            ports.workload_manager.set_weights(weights).await?;
            Ok(ActionOutput::Done)
        }
        Action::Reserve { reservations } => {
            ports.workload_manager.reserve_from(reservations).await?;
            Ok(ActionOutput::Done)
        }
        Action::ReadReservations { nodes } => Ok(ActionOutput::Reserved(
            ports.workload_manager.reserved_nodes(nodes).await?,
        )),
        Action::Unreserve { nodes } => {
            ports.workload_manager.unreserve(nodes).await?;
            Ok(ActionOutput::Done)
        }
        Action::ReadFeatures { nodes } => {
            let features = ports.workload_manager.node_features(nodes).await?;
            if features.len() != nodes.len() {
                return Err(Error::Unavailable {
                    backend: "workload manager",
                    message: format!(
                        "answered {} feature lists for {} nodes; asking again",
                        features.len(),
                        nodes.len()
                    ),
                });
            }
            Ok(ActionOutput::Features(
                nodes.iter().cloned().zip(features).collect(),
            ))
        }
        Action::SetFeatures { features } => {
            ports.workload_manager.set_features(features).await?;
            Ok(ActionOutput::Done)
        }
        Action::CheckGates { gates } => Ok(ActionOutput::Gates(check_gates(ports, gates).await)),
        Action::RunHook { request, .. } => {
            Ok(ActionOutput::HookRan(run_hook(ports, request).await))
        }
        Action::ClearUpgradingGroup { label } => match ports.inventory.clear_group(label).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(ActionOutput::Done),
            Err(error) => Err(error),
        },
    }
}

/// Adds `nodes` to `label`, creating the group first if an operator deleted
/// it since the session prepared it (CRUS looped on that error forever).
async fn add_creating_group(ports: &Ports, label: &str, nodes: &[NodeId]) -> Result<()> {
    match ports.inventory.add_members(label, nodes).await {
        Err(Error::NotFound { .. }) if ports.inventory.group_members(label).await.is_err() => {
            ports.inventory.ensure_group(label).await?;
            ports.inventory.add_members(label, nodes).await
        }
        other => other,
    }
}

/// The nodes of `nodes` crus may drain, mark failed or resume: a node already out
/// of service (draining, drained or down) with a reason crus did not write
/// is held by someone else: a drain or a failed mark would overwrite that
/// reason, which must survive the session byte for byte, and a resume would
/// undo them. The rollout
/// learns of such a node at its next observation. Read just before the
/// change, so an administrator's drain is lost only if it lands in between.
async fn not_held_by_others(ports: &Ports, nodes: &[NodeId]) -> Result<Vec<NodeId>> {
    nodes_without(ports, nodes, held_by_someone_else).await
}

/// The nodes of `nodes` crus may mark failed over what a reboot wrote on
/// them: not those someone else marked while crus held them
/// ([`marked_by_someone_else`]), whose reason must survive byte for byte.
async fn not_marked_by_others(ports: &Ports, nodes: &[NodeId]) -> Result<Vec<NodeId>> {
    nodes_without(ports, nodes, marked_by_someone_else).await
}

/// The nodes of `nodes` whose state, read now, does not show `mark`.
async fn nodes_without(
    ports: &Ports,
    nodes: &[NodeId],
    mark: fn(&WorkloadNode) -> bool,
) -> Result<Vec<NodeId>> {
    Ok(split_held(ports, nodes, mark).await?.0)
}

/// `nodes` read now, split into those whose state does not show `mark`
/// and the reports of those whose state does.
async fn split_held(
    ports: &Ports,
    nodes: &[NodeId],
    mark: fn(&WorkloadNode) -> bool,
) -> Result<(Vec<NodeId>, Vec<WorkloadNode>)> {
    let states = ports.workload_manager.node_states(nodes).await?;
    let marked: Vec<WorkloadNode> = states.into_iter().filter(mark).collect();
    let marked_ids: std::collections::HashSet<&NodeId> =
        marked.iter().map(|report| &report.node).collect();
    let unmarked = nodes
        .iter()
        .filter(|node| !marked_ids.contains(node))
        .cloned()
        .collect();
    Ok((unmarked, marked))
}

/// Taking nodes out of a group that an operator deleted meanwhile is done already.
async fn remove_if_group_exists(ports: &Ports, label: &str, nodes: &[NodeId]) -> Result<()> {
    match ports.inventory.remove_members(label, nodes).await {
        Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

/// How many nodes are probed at once: a site's probes (ssh, a node exporter)
/// should not see a whole step at the same instant.
const PROBES_AT_ONCE: usize = 16;

/// Runs `check` on the `verifying` nodes the workload manager reports
/// responding; one that fails is reported as not responding, with why.
async fn probe_health(
    ports: &Ports,
    check: &HealthCheck,
    verifying: &[NodeId],
    observed: &mut [WorkloadNode],
) -> Result<()> {
    use futures::stream::{self, StreamExt, TryStreamExt};

    let candidates: Vec<NodeId> = observed
        .iter()
        .filter(|report| report.responding && verifying.contains(&report.node))
        .map(|report| report.node.clone())
        .collect();
    let failures: BTreeMap<NodeId, String> = match &ports.health_probe {
        None => candidates
            .into_iter()
            .map(|node| {
                (
                    node,
                    "the policy asks for a health command or HTTP probe, and this server runs none"
                        .to_string(),
                )
            })
            .collect(),
        Some(prober) => {
            stream::iter(candidates)
                .map(|node| async move {
                    let verdict = prober.probe(&node, check).await?;
                    Ok::<_, Error>(verdict.map(|reason| (node, reason)))
                })
                .buffer_unordered(PROBES_AT_ONCE)
                .try_filter_map(|failure| async move { Ok(failure) })
                .try_collect()
                .await?
        }
    };
    for report in observed.iter_mut() {
        if let Some(reason) = failures.get(&report.node) {
            report.responding = false;
            report.reason = Some(format!("{HEALTH_CHECK_FAILED}{reason}"));
        }
    }
    Ok(())
}

/// Asks every gate, all at once. A gate that cannot be asked is an answer
/// (it blocks), not an error to retry: the session must hold at once.
async fn check_gates<'a>(ports: &'a Ports, gates: &'a [GateCheck]) -> Vec<GateVerdict> {
    let ask = |gate: &'a GateCheck| async move {
        let answer = match &ports.alert_gate {
            None => Err(
                "this server asks no alert gate (a server built without one); the session holds"
                    .to_string(),
            ),
            Some(alert_gate) => alert_gate
                .blocking(gate)
                .await
                .map_err(|error| error.to_string()),
        };
        let (blocking, unreachable) = match answer {
            Ok(blocking) => (blocking, None),
            Err(why) => (Vec::new(), Some(why)),
        };
        GateVerdict {
            gate: gate.describe(),
            blocking,
            unreachable,
        }
    };
    futures::future::join_all(gates.iter().map(ask)).await
}

/// Runs a hook once. Its failure, and a failure to run it at all, is an
/// answer, never an error to retry: a hook is not run twice unasked.
async fn run_hook(ports: &Ports, request: &HookRequest) -> Option<String> {
    match &ports.hook_runner {
        None => Some("this server runs no hooks".to_string()),
        Some(runner) => runner
            .run(request)
            .await
            .unwrap_or_else(|error| Some(error.to_string())),
    }
}
