//! The persisted state of a rollout: everything a new controller needs to
//! carry on after the old one stopped.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RolloutPolicy;
use crate::node::NodeId;
use crate::ports::BootHandle;
use crate::session::{SessionSpec, SessionState};
use crate::time::Timestamp;

/// Where a session as a whole stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading the starting group, to take the sorted snapshot of nodes to upgrade.
    Snapshot,
    /// Making sure the upgrading and failed groups exist and are empty.
    PrepareGroups,
    /// Upgrading nodes, one step at a time.
    Running,
    /// Every node is upgraded or failed; emptying the upgrading group.
    Cleanup,
    /// Nothing left to do.
    Finished,
}

/// Where one node stands in its upgrade.
///
/// A node moves forward only: `Pending → Draining → Drained → Booting →
/// Verifying → Resuming → Done`, or to `Failing → Failed` from any phase
/// after `Pending`, or (when the session is deleted before the node was
/// booted) `Releasing → Skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodePhase {
    /// Not taken yet.
    Pending,
    /// Drain requested; waiting for its jobs to end.
    Draining,
    /// Out of service and running no job; waiting for the rest of its step.
    Drained,
    /// Boot requested; waiting for the boot orchestrator.
    Booting,
    /// Booted; waiting for the workload manager to see it answer again.
    Verifying,
    /// Upgraded; being returned to service.
    Resuming,
    /// Upgraded and back in service.
    Done,
    /// Its upgrade failed; being put in the failed group and kept out of service.
    Failing,
    /// Failed, in the failed group, out of service with the reason.
    Failed,
    /// Not booted because the session is being deleted; being returned to service.
    Releasing,
    /// Not upgraded because the session was deleted first; back in service.
    Skipped,
}

impl NodePhase {
    /// Whether the node is out of service on behalf of this session.
    pub fn is_out_of_service(self) -> bool {
        matches!(
            self,
            NodePhase::Draining
                | NodePhase::Drained
                | NodePhase::Booting
                | NodePhase::Verifying
                | NodePhase::Resuming
                | NodePhase::Failing
                | NodePhase::Releasing
        )
    }

    /// Whether the node's part in the session is over.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            NodePhase::Done | NodePhase::Failed | NodePhase::Skipped
        )
    }

    /// The phase as it is written in JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            NodePhase::Pending => "pending",
            NodePhase::Draining => "draining",
            NodePhase::Drained => "drained",
            NodePhase::Booting => "booting",
            NodePhase::Verifying => "verifying",
            NodePhase::Resuming => "resuming",
            NodePhase::Done => "done",
            NodePhase::Failing => "failing",
            NodePhase::Failed => "failed",
            NodePhase::Releasing => "releasing",
            NodePhase::Skipped => "skipped",
        }
    }

    /// Every phase, in lifecycle order.
    pub const ALL: [NodePhase; 11] = [
        NodePhase::Pending,
        NodePhase::Draining,
        NodePhase::Drained,
        NodePhase::Booting,
        NodePhase::Verifying,
        NodePhase::Resuming,
        NodePhase::Done,
        NodePhase::Failing,
        NodePhase::Failed,
        NodePhase::Releasing,
        NodePhase::Skipped,
    ];
}

/// One node of the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node.
    pub id: NodeId,
    /// Where it stands.
    pub phase: NodePhase,
    /// When it entered that phase.
    pub since: Timestamp,
    /// The step it belongs to, once taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The boot of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepBoot {
    /// Idempotency key, derived from the upgrade id and step number, so a
    /// resumed controller finds the boot its predecessor started.
    pub key: String,
    /// The nodes the boot was requested for (asked for again, under the same key, after a restart).
    pub nodes: Vec<NodeId>,
    /// The orchestrator's handle, once it acknowledged the boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<BootHandle>,
    /// When the boot was requested; boot timeouts count from here.
    pub requested_at: Timestamp,
}

/// A step: the nodes taken out of service together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Step number, from 0.
    pub number: u32,
    /// Indexes into [`RolloutState::nodes`].
    pub nodes: Vec<usize>,
    /// When the step started.
    pub started_at: Timestamp,
    /// Its boot, once requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<StepBoot>,
    /// Whether every node of the step has finished (and the summary was told).
    #[serde(default)]
    pub finished: bool,
}

/// Everything persisted about one rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    /// The session id.
    pub upgrade_id: Uuid,
    /// What was asked for.
    pub spec: SessionSpec,
    /// How it is carried out.
    pub policy: RolloutPolicy,
    /// `api_version` of the build that created the session.
    pub api_version: String,
    /// CRUS state.
    pub state: SessionState,
    /// Whether the session has finished.
    pub completed: bool,
    /// Progress in plain sentences.
    pub messages: Vec<String>,
    /// Where the session as a whole stands.
    pub stage: Stage,
    /// The nodes to upgrade, in the order they are taken (the snapshot of the
    /// starting group, sorted by topology). Empty until the snapshot is taken.
    pub nodes: Vec<NodeRecord>,
    /// Steps started so far.
    pub steps: Vec<Step>,
    /// Deletion was requested: no new node is taken, nodes not yet booted are released.
    #[serde(default)]
    pub cancelled: bool,
    /// When the session was created.
    pub created_at: Timestamp,
    /// When the controller took it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
}

impl RolloutState {
    /// How many nodes are in `phase`.
    pub fn count(&self, phase: NodePhase) -> usize {
        self.nodes.iter().filter(|node| node.phase == phase).count()
    }

    /// How many nodes this session holds out of service now.
    pub fn out_of_service(&self) -> usize {
        self.nodes
            .iter()
            .filter(|node| node.phase.is_out_of_service())
            .count()
    }

    /// The step being worked on, if any.
    pub fn active_step(&self) -> Option<&Step> {
        self.steps.last().filter(|step| !step.finished)
    }
}
