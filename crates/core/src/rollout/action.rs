//! What a rollout asks the outside world to do, and what comes back.
//!
//! Every action is idempotent: the controller may execute it again after a
//! restart (it was persisted as owed but its result was lost), and doing so
//! must not do the work twice.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::node::NodeId;
use crate::ports::{
    BootHandle, BootRequest, GateCheck, GateVerdict, HealthCheck, HookRequest, NodeBootStatus,
    NodeImage, PowerOperation, WorkloadNode, WorkloadState,
};
use crate::time::Timestamp;

/// Identifies an action while it is in flight (not persisted: a resumed
/// rollout derives its owed actions afresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionId(pub u64);

/// Something the rollout needs done through the ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read the members of the starting group. Answer: [`ActionOutput::Members`].
    ReadStartingGroup {
        /// The starting group.
        label: String,
    },
    /// Ask the boot orchestrator which image each of `nodes` runs now
    /// (`skip_matching`). Answer: [`ActionOutput::Images`].
    ReadCurrentImages {
        /// The snapshot's nodes.
        nodes: Vec<NodeId>,
        /// The session's template.
        template: String,
    },
    /// Create the upgrading and failed groups if missing, and empty both.
    /// Answer: [`ActionOutput::GroupsPrepared`].
    PrepareGroups {
        /// The upgrading group.
        upgrading_label: String,
        /// The failed group.
        failed_label: String,
    },
    /// Put `nodes` in the upgrading group and drain them in the workload manager.
    Drain {
        /// The upgrading group.
        upgrading_label: String,
        /// Nodes to drain.
        nodes: Vec<NodeId>,
        /// Reason recorded on the nodes.
        reason: String,
    },
    /// Put the jobs running on `nodes` back in the queue (their drain timed
    /// out under `on_drain_timeout: requeue`). Answer: [`ActionOutput::Done`].
    RequeueJobs {
        /// Nodes whose jobs are requeued.
        nodes: Vec<NodeId>,
    },
    /// Ask the workload manager how `nodes` are doing. Answer: [`ActionOutput::Workload`].
    ObserveWorkload {
        /// Nodes to ask about.
        nodes: Vec<NodeId>,
        /// Nodes whose health is being verified, and the policy's checks to
        /// run on them: one that fails is reported as not responding, with
        /// the check's answer as the reason.
        probe: Option<(HealthCheck, Vec<NodeId>)>,
    },
    /// Start (or find, by its key) a boot of a step. Answer: [`ActionOutput::BootStarted`].
    StartBoot {
        /// The step.
        step: u32,
        /// Which of the step's boots (from 0).
        boot: u32,
        /// What to boot.
        request: BootRequest,
    },
    /// Ask the boot orchestrator how a step's boot is doing. Answer: [`ActionOutput::BootStatus`].
    ObserveBoot {
        /// The step.
        step: u32,
        /// Which of the step's boots (from 0).
        boot: u32,
        /// Its boot.
        handle: BootHandle,
    },
    /// Return `nodes` to service and take them out of the upgrading group.
    Resume {
        /// The upgrading group.
        upgrading_label: String,
        /// Nodes to resume.
        nodes: Vec<NodeId>,
    },
    /// Put `nodes` back out of service exactly as someone else had them
    /// (drained or down, with their reason byte for byte) and take them out
    /// of the upgrading group; never resume them. Answer: [`ActionOutput::Done`].
    Restore {
        /// The upgrading group.
        upgrading_label: String,
        /// Each node, the state it was in (draining, drained or down) and its reason.
        nodes: Vec<(NodeId, WorkloadState, String)>,
        /// Whether crus never booted these nodes (released before their
        /// boot): crus changed nothing on them, so a node its owner
        /// returned to service since crus last read it is left in service,
        /// not put back out over their return. (A booted node is put back
        /// whatever it shows: a boot may return it to service itself.)
        only_where_held: bool,
    },
    /// Keep `nodes` out of service as failed, put them in the failed group and
    /// take them out of the upgrading group.
    MarkFailed {
        /// The upgrading group.
        upgrading_label: String,
        /// The failed group.
        failed_label: String,
        /// Nodes that failed, each with its reason.
        nodes: Vec<(NodeId, String)>,
    },
    /// Restart `nodes` through the power control port: they did not come
    /// back after their boot (`escalate_power_cycle`). Answer:
    /// [`ActionOutput::Done`].
    ///
    /// Not idempotent (a restart repeated restarts again), so the rollout
    /// asks for it once, when the escalation begins, and never again after
    /// a restart of the controller: a restart lost in a crash is followed by
    /// the next one at its deadline, or by the node's failure.
    PowerRestart {
        /// Nodes to restart.
        nodes: Vec<NodeId>,
        /// `GracefulRestart` first, `ForceRestart` after the grace period.
        operation: PowerOperation,
    },
    /// Read the scheduling weights of `nodes` (`steer_jobs`). Answer:
    /// [`ActionOutput::Weights`].
    ReadWeights {
        /// Nodes to ask about.
        nodes: Vec<NodeId>,
    },
    /// Set each node's scheduling weight (`steer_jobs`): raised on the nodes
    /// still to upgrade, their own on the others. Answer: [`ActionOutput::Done`].
    SetWeights {
        /// Each node with the weight it gets.
        weights: Vec<(NodeId, u32)>,
    },
    /// Reserve each node from the time given on (`reserve_ahead`: when the
    /// session plans to take it), replacing the reservation crus set on it
    /// before. Answer: [`ActionOutput::Done`].
    Reserve {
        /// Each node with the time its reservation starts.
        reservations: Vec<(NodeId, Timestamp)>,
    },
    /// Read which of `nodes` still carry crus's reservation
    /// (`reserve_ahead`). Answer: [`ActionOutput::Reserved`].
    ReadReservations {
        /// Nodes to ask about.
        nodes: Vec<NodeId>,
    },
    /// Remove the reservations crus set on `nodes` (`reserve_ahead`), if
    /// any. Answer: [`ActionOutput::Done`].
    Unreserve {
        /// Nodes whose reservations go.
        nodes: Vec<NodeId>,
    },
    /// Read the features of `nodes` (`image_features`). Answer:
    /// [`ActionOutput::Features`].
    ReadFeatures {
        /// Nodes to ask about.
        nodes: Vec<NodeId>,
    },
    /// Set each node's features to exactly the list given
    /// (`image_features`): its own with `img_<template>` on the nodes this
    /// session upgraded, its own on the others. Answer: [`ActionOutput::Done`].
    SetFeatures {
        /// Each node with the features it gets.
        features: Vec<(NodeId, Vec<String>)>,
    },
    /// Ask the site's monitoring whether the policy's alert gates block.
    /// Answer: [`ActionOutput::Gates`], one verdict per gate, in order (a
    /// gate that cannot be asked answers so, and blocks).
    CheckGates {
        /// The gates.
        gates: Vec<GateCheck>,
    },
    /// Run a policy's site hook (`hooks`) for a node or a step's nodes.
    /// Answer: [`ActionOutput::HookRan`].
    ///
    /// Not idempotent in general: the run is persisted as running before
    /// it is asked for, and after a restart it is asked for again only if
    /// the hook is marked idempotent.
    RunHook {
        /// Which hook: its position in the policy's `hooks`.
        hook: u32,
        /// The node, for a per-node hook; `None` for a per-step hook.
        node: Option<NodeId>,
        /// What to run, and for whom.
        request: HookRequest,
    },
    /// Empty the upgrading group. Answer: [`ActionOutput::Done`].
    ClearUpgradingGroup {
        /// The upgrading group.
        label: String,
    },
}

impl Action {
    /// A short description for messages and logs, e.g. `draining 16 nodes`.
    pub fn describe(&self) -> String {
        match self {
            Action::ReadStartingGroup { label } => format!("reading group '{label}'"),
            Action::ReadCurrentImages { nodes, .. } => format!(
                "reading the image {} run{} now",
                count_nodes(nodes.len()),
                if nodes.len() == 1 { "s" } else { "" }
            ),
            Action::PrepareGroups {
                upgrading_label,
                failed_label,
            } => format!("preparing groups '{upgrading_label}' and '{failed_label}'"),
            Action::Drain { nodes, .. } => format!("draining {}", count_nodes(nodes.len())),
            Action::RequeueJobs { nodes } => {
                format!("requeueing the jobs of {}", count_nodes(nodes.len()))
            }
            Action::ObserveWorkload { nodes, .. } => {
                format!(
                    "reading the workload manager state of {}",
                    count_nodes(nodes.len())
                )
            }
            Action::StartBoot { step, request, .. } => format!(
                "starting the boot of step {step} ({} with template '{}')",
                count_nodes(request.nodes.len()),
                request.template
            ),
            Action::ObserveBoot { step, .. } => format!("reading the boot progress of step {step}"),
            Action::Resume { nodes, .. } => format!("resuming {}", count_nodes(nodes.len())),
            Action::Restore { nodes, .. } => format!(
                "putting {} back out of service as found",
                count_nodes(nodes.len())
            ),
            Action::MarkFailed { nodes, .. } => {
                format!("marking {} failed", count_nodes(nodes.len()))
            }
            Action::PowerRestart { nodes, operation } => {
                let how = match operation {
                    PowerOperation::ForceRestart => "force-restarting",
                    _ => "gracefully restarting",
                };
                format!("{how} {}", count_nodes(nodes.len()))
            }
            Action::ReadWeights { nodes } => {
                format!(
                    "reading the scheduling weights of {}",
                    count_nodes(nodes.len())
                )
            }
            Action::SetWeights { weights } => {
                format!(
                    "setting the scheduling weights of {}",
                    count_nodes(weights.len())
                )
            }
            Action::Reserve { reservations } => {
                format!("reserving {}", count_nodes(reservations.len()))
            }
            Action::ReadReservations { nodes } => {
                format!("reading the reservations of {}", count_nodes(nodes.len()))
            }
            Action::Unreserve { nodes } => {
                format!("removing the reservations of {}", count_nodes(nodes.len()))
            }
            Action::ReadFeatures { nodes } => {
                format!("reading the features of {}", count_nodes(nodes.len()))
            }
            Action::SetFeatures { features } => {
                format!("setting the features of {}", count_nodes(features.len()))
            }
            Action::CheckGates { gates } => format!(
                "asking {} alert gate{}",
                gates.len(),
                if gates.len() == 1 { "" } else { "s" }
            ),
            Action::RunHook { request, .. } => format!(
                "running the {} for {}",
                request.hook.describe(),
                count_nodes(request.nodes.len())
            ),
            Action::ClearUpgradingGroup { label } => format!("emptying group '{label}'"),
        }
    }
}

/// `1 node`, `16 nodes`.
pub(crate) fn count_nodes(count: usize) -> String {
    if count == 1 {
        "1 node".to_string()
    } else {
        format!("{count} nodes")
    }
}

/// What a successful action answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutput {
    /// Members of a group.
    Members(Vec<NodeId>),
    /// The image each node runs now.
    Images(Vec<NodeImage>),
    /// The groups exist and are empty; these nodes were removed from them.
    GroupsPrepared {
        /// Nodes removed from the failed group (left by an earlier session).
        cleared_failed: Vec<NodeId>,
        /// Nodes removed from the upgrading group.
        cleared_upgrading: Vec<NodeId>,
    },
    /// Workload manager states.
    Workload(Vec<WorkloadNode>),
    /// The boot was started (or found).
    BootStarted(BootHandle),
    /// Per-node boot progress.
    BootStatus(Vec<NodeBootStatus>),
    /// Scheduling weights, by node.
    Weights(Vec<(NodeId, u32)>),
    /// Node features, by node.
    Features(Vec<(NodeId, Vec<String>)>),
    /// The nodes asked about that carry crus's reservation.
    Reserved(Vec<NodeId>),
    /// What each alert gate answered.
    Gates(Vec<GateVerdict>),
    /// A hook ran: `None` when it succeeded, why it failed otherwise.
    HookRan(Option<String>),
    /// Done, nothing to report.
    Done,
}

/// Why an action failed for good (retryable errors are retried by the
/// controller and never reach the rollout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionError {
    /// What kind of failure.
    pub kind: ActionErrorKind,
    /// The error as text.
    pub message: String,
}

/// The semantic kind of an [`ActionError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionErrorKind {
    /// Something named does not exist.
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// The request is wrong.
    Invalid,
    /// The service is unavailable (after the controller gave up retrying).
    Unavailable,
    /// The backend cannot do this at all (no power control, say).
    NotSupported,
    /// Anything else.
    Other,
}

impl From<&Error> for ActionError {
    fn from(error: &Error) -> Self {
        let kind = match error {
            Error::NotFound { .. } => ActionErrorKind::NotFound,
            Error::Conflict { .. } => ActionErrorKind::Conflict,
            Error::Invalid { .. } => ActionErrorKind::Invalid,
            Error::Unavailable { .. } => ActionErrorKind::Unavailable,
            Error::NotSupported { .. } => ActionErrorKind::NotSupported,
            _ => ActionErrorKind::Other,
        };
        ActionError {
            kind,
            message: error.to_string(),
        }
    }
}
