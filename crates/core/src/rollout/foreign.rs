//! Nodes someone else took out of service: drained, draining or down with a
//! reason crus did not write (an administrator's "bad DIMM", a health
//! checker's mark). crus never returns such a node to service: by policy it
//! upgrades it and puts it back exactly as it was, leaves it alone, or waits
//! for its owner to return it.
//!
//! A node is recognised as such at every observation of the workload
//! manager, so one drained by an administrator during the session is treated
//! the same from then on. The mark is kept in the node's record (persisted
//! before anything is done about it), so a delete, a halt and a restart keep
//! the rule.

use serde::{Deserialize, Serialize};

use super::*;

/// The prefix of every reason crus writes when it drains a node (see
/// [`Rollout::drain_reason`]): a reason that starts otherwise was set by
/// someone else.
pub const CRUS_REASON_PREFIX: &str = "crus:";

/// What a session does with a node someone else took out of service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum ForeignOutOfService {
    /// Boot it with the new image once it runs no job, then put it back as
    /// it was (same state, same reason); never resume it.
    #[default]
    UpgradeAndRestore,
    /// Leave it alone and report it skipped, with its reason.
    Skip,
    /// Wait, within `drain_timeout`, for its owner to return it to service,
    /// then upgrade it as any other; skip it if the time runs out.
    Wait,
}

impl ForeignOutOfService {
    /// Whether it is the default (not written in stored records, which
    /// stay as they were before the field existed).
    pub fn is_default(&self) -> bool {
        *self == ForeignOutOfService::default()
    }

    /// The name as written in requests.
    pub fn as_str(self) -> &'static str {
        match self {
            ForeignOutOfService::UpgradeAndRestore => "upgrade_and_restore",
            ForeignOutOfService::Skip => "skip",
            ForeignOutOfService::Wait => "wait",
        }
    }
}

/// How someone else had a node out of service when crus saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignMark {
    /// Draining, drained or down, as the workload manager reported it.
    pub state: WorkloadState,
    /// The reason as the workload manager reported it, byte for byte: it is
    /// written back as it is.
    pub reason: String,
    /// When crus first saw it so.
    pub seen_at: Timestamp,
}

impl ForeignMark {
    /// `drained ('bad DIMM')`.
    pub fn describe(&self) -> String {
        let state = match self.state {
            WorkloadState::Down => "down",
            WorkloadState::Draining => "draining",
            _ => "drained",
        };
        format!("{state} ({:?})", self.reason)
    }
}

/// Whether `reason` was written by crus (by any session).
pub fn is_crus_reason(reason: &str) -> bool {
    reason.starts_with(CRUS_REASON_PREFIX)
}

/// The prefix of the reason the `slurm-reboot` boot orchestrator writes on
/// the nodes it reboots (`crus <key> image=<template>`, to which Slurm
/// appends ` : reboot issued`, ` : reboot complete` or ` : reboot timed
/// out`). It is not [`CRUS_REASON_PREFIX`] on purpose: a node someone else
/// holds keeps being judged held through its reboot (see the backend's
/// `reboot/held.rs`).
pub const REBOOT_REASON_PREFIX: &str = "crus ";

/// The reasons slurmctld writes itself on a node whose reboot goes wrong or
/// that comes back unasked: marks of a reboot, not of an owner.
const SLURM_REBOOT_REASONS: [&str; 3] = [
    "Not responding",
    "Node unexpectedly rebooted",
    "reboot timed out",
];

/// Whether `reason` was left by a reboot rather than set by someone: the
/// reason `slurm-reboot` gives the nodes it reboots, with whatever Slurm
/// appended, or one Slurm writes itself when a rebooting node does not
/// come back.
pub fn is_reboot_reason(reason: &str) -> bool {
    reason.starts_with(REBOOT_REASON_PREFIX)
        || SLURM_REBOOT_REASONS
            .iter()
            .any(|slurm| reason.trim_end().ends_with(slurm))
}

/// Whether `report` shows a node someone took out of service while crus
/// held it (an administrator draining a node crus is booting): out of
/// service with a reason that neither crus, a reboot nor a health probe
/// wrote. crus's own failure mark must not overwrite that reason, and the
/// node is theirs from then on.
pub fn marked_by_someone_else(report: &WorkloadNode) -> bool {
    held_by_someone_else(report)
        && report.reason.as_deref().is_some_and(|reason| {
            !is_reboot_reason(reason) && !reason.starts_with(HEALTH_CHECK_FAILED)
        })
}

/// The mark of a node someone else holds out of service, if `report` says
/// so: out of service, with a reason neither crus nor a health probe wrote.
pub fn foreign_mark_of(report: &WorkloadNode, now: Timestamp) -> Option<ForeignMark> {
    if !held_by_someone_else(report) {
        return None;
    }
    let reason = report.reason.as_deref()?;
    // A failed health probe replaces the reason in the report: it says
    // nothing of who holds the node.
    if reason.starts_with(HEALTH_CHECK_FAILED) {
        return None;
    }
    Some(ForeignMark {
        state: report.state,
        reason: reason.to_string(),
        seen_at: now,
    })
}

/// Whether `report` shows a node someone else holds out of service, whose
/// reason a drain or a failed mark by crus must not overwrite.
pub fn held_by_someone_else(report: &WorkloadNode) -> bool {
    matches!(
        report.state,
        WorkloadState::Draining | WorkloadState::Drained | WorkloadState::Down
    ) && report
        .reason
        .as_deref()
        .is_some_and(|reason| !is_crus_reason(reason))
}

impl Rollout {
    /// Applies what the workload manager said of `node` to its foreign mark.
    /// Returns true when the report was fully handled here (the node was
    /// left alone), false when the usual rules still apply to it.
    pub(super) fn observe_foreign(
        &mut self,
        node: usize,
        report: &WorkloadNode,
        now: Timestamp,
    ) -> bool {
        let phase = self.state.nodes[node].phase;
        let in_service = matches!(report.state, WorkloadState::Idle | WorkloadState::Allocated);
        // Only before crus boots a node is "in service" its owner's doing:
        // a boot may return the node itself (Slurm's `scontrol reboot
        // nextstate=RESUME`), and that must not erase the owner's mark.
        let owner_may_return = matches!(
            phase,
            NodePhase::Pending | NodePhase::Draining | NodePhase::Drained
        );
        if in_service && !owner_may_return {
            return false;
        }
        // Looked at before it is borrowed for a change: most nodes read are
        // in service and unmarked, and a node borrowed for a change is
        // copied for the next persist's comparison (see `NodeList`).
        if in_service {
            if self.state.nodes[node].foreign.is_none() {
                return false;
            }
            if let Some(mark) = self.state.nodes[node].foreign.take() {
                let id = self.state.nodes[node].id.clone();
                self.say(
                    now,
                    Said::ForeignReturned {
                        node: id,
                        described: mark.describe(),
                    },
                );
                self.dirty = true;
                self.arm_drain_timers(node);
            }
            return false;
        }
        // Nodes crus has not booted yet are judged on any reason not
        // crus's; nodes it is booting or verifying (an administrator may
        // drain or down one mid-boot) only on a reason no reboot wrote: a
        // node crus booted may be down for reasons its reboot gave it.
        let judged = match phase {
            NodePhase::Pending | NodePhase::Draining => true,
            // A node booted while someone else held it is out of service
            // after its boot on purpose (a boot that keeps it out, as
            // `slurm-reboot`'s, writes its own reason meanwhile): the mark
            // found before the boot stays the one written back.
            NodePhase::Booting | NodePhase::Verifying => {
                self.state.nodes[node].foreign.is_none() && marked_by_someone_else(report)
            }
            _ => false,
        };
        if !judged {
            return false;
        }
        let Some(mark) = foreign_mark_of(report, now) else {
            return false;
        };
        let record = &mut self.state.nodes[node];
        let new_reason = record
            .foreign
            .as_ref()
            .is_none_or(|old| old.reason != mark.reason || old.state != mark.state);
        if new_reason {
            let seen_at = record.foreign.as_ref().map_or(now, |old| old.seen_at);
            record.foreign = Some(ForeignMark { seen_at, ..mark });
            self.dirty = true;
            self.arm_drain_timers(node);
        }
        // Never drained again by crus: that would overwrite its reason.
        self.drain_owed.remove(&node);
        let policy = self.state.policy.foreign_out_of_service;
        let id = self.state.nodes[node].id.clone();
        let described = self.state.nodes[node]
            .foreign
            .as_ref()
            .map(ForeignMark::describe)
            .unwrap_or_default();
        match (phase, policy) {
            (NodePhase::Pending | NodePhase::Draining, ForeignOutOfService::Skip) => {
                self.leave_foreign(node, format!("out of service by someone else, {described}: left alone (foreign_out_of_service: skip)"), now);
                true
            }
            (NodePhase::Pending, _) => {
                if new_reason {
                    self.say(
                        now,
                        Said::ForeignPending {
                            node: id,
                            described,
                            policy,
                        },
                    );
                }
                false
            }
            (NodePhase::Draining, ForeignOutOfService::Wait) => {
                if new_reason {
                    self.say(
                        now,
                        Said::ForeignWaiting {
                            node: id,
                            described,
                        },
                    );
                }
                // Not taken as drained: its owner holds it.
                true
            }
            _ => {
                if new_reason {
                    self.say(
                        now,
                        Said::ForeignUpgraded {
                            node: id,
                            described,
                        },
                    );
                }
                false
            }
        }
    }

    /// Leaves a foreign node where its owner put it: skipped, never resumed.
    pub(super) fn leave_foreign(&mut self, node: usize, reason: String, now: Timestamp) {
        let id = self.state.nodes[node].id.clone();
        self.say(
            now,
            Said::NodeLeftAlone {
                node: id,
                reason: reason.clone(),
            },
        );
        self.state.nodes[node].reason = Some(reason);
        self.move_node(node, NodeInput::LeaveAlone, now);
        self.still_out_of_service(node);
    }

    /// Foreign nodes that waited for their owner longer than `drain_timeout`
    /// under `foreign_out_of_service: wait` are skipped (never resumed),
    /// whatever `on_drain_timeout` says: it applies to crus's own drains.
    pub(super) fn check_foreign_waits(&mut self, now: Timestamp, step_number: u32) {
        if self.state.policy.foreign_out_of_service != ForeignOutOfService::Wait {
            return;
        }
        let Some(timeout) = self.state.policy.drain_timeout else {
            return;
        };
        for node in self.unsettled_in(step_number, &[NodePhase::Draining]) {
            let (Some(mark), Some(since)) = (
                &self.state.nodes[node].foreign,
                self.foreign_wait_started(node),
            ) else {
                continue;
            };
            if now.saturating_since(since) >= timeout {
                let reason = format!(
                    "still out of service by someone else, {}, after drain_timeout ({}): left alone",
                    mark.describe(),
                    humantime::format_duration(timeout)
                );
                self.leave_foreign(node, reason, now);
            }
        }
    }

    /// When `node`, draining and waiting for its owner under
    /// `foreign_out_of_service: wait`, reaches `drain_timeout`: counted
    /// from when it was taken, or first seen held if later.
    pub(super) fn foreign_wait_deadline(&self, node: usize) -> Option<Timestamp> {
        let timeout = self.state.policy.drain_timeout?;
        let record = &self.state.nodes[node];
        if record.phase != NodePhase::Draining || !self.waits_for_owner(node) {
            return None;
        }
        Some(self.foreign_wait_started(node)? + timeout)
    }

    /// When `node`'s wait for its owner started: when it was taken, or
    /// first seen held by someone else if later; `None` when no one else
    /// holds it. `drain_timeout` counts from here.
    fn foreign_wait_started(&self, node: usize) -> Option<Timestamp> {
        let record = &self.state.nodes[node];
        let mark = record.foreign.as_ref()?;
        Some(record.taken_at.unwrap_or(record.since).max(mark.seen_at))
    }

    /// Whether a foreign node in `Draining` is owned by someone else under
    /// `wait`: crus neither drains it nor counts it as drained.
    pub(super) fn waits_for_owner(&self, node: usize) -> bool {
        self.state.policy.foreign_out_of_service == ForeignOutOfService::Wait
            && self.state.nodes[node].foreign.is_some()
    }

    /// The nodes to put back out of service as their owners had them,
    /// instead of resuming them, with how.
    pub(super) fn restore_of(&self, node: usize) -> Option<(NodeId, WorkloadState, String)> {
        let record = &self.state.nodes[node];
        let mark = record.foreign.as_ref()?;
        Some((record.id.clone(), mark.state, mark.reason.clone()))
    }

    /// What crus did with a foreign node whose part ended, for its record.
    pub(super) fn note_restored(&mut self, node: usize) {
        let record = &mut self.state.nodes[node];
        if let Some(mark) = &record.foreign {
            let done = match record.phase {
                NodePhase::Skipped => "not upgraded; put back out of service as found",
                _ => "upgraded; put back out of service as found",
            };
            let text = format!("{done}: {}", mark.describe());
            let kept = record
                .reason
                .take()
                .map(|reason| format!("{reason}; {text}"))
                .unwrap_or(text);
            record.reason = Some(kept);
            self.dirty = true;
        }
        self.still_out_of_service(node);
    }

    /// A foreign node whose part ended is still out of service (as its
    /// owner had it): it counts against `min_available` until seen back.
    fn still_out_of_service(&mut self, node: usize) {
        if let Some(mark) = &self.state.nodes[node].foreign {
            let why = mark.describe();
            self.held_elsewhere.insert(node, why);
        }
    }
}
