//! The persisted state of a rollout: everything a new controller needs to
//! carry on after the old one stopped.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RolloutPolicy;
use crate::node::NodeId;
use crate::ports::{BootHandle, PowerOperation};
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
/// booted) `Releasing → Skipped`. With a `rollback` policy, a node whose
/// upgrade failed goes back to `Drained`, is booted with the rollback
/// template and ends `Reverted` (or `Failed` if that boot fails too); with
/// `revert_upgraded_on_halt`, a `Done` node of a halted session is taken
/// again (`Draining`) and ends `Reverted` too (or `Done` again when the
/// session is deleted before its boot back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Its upgrade failed; booted back to the policy's rollback template
    /// and returned to service (see `rollback`).
    Reverted,
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
            NodePhase::Done | NodePhase::Failed | NodePhase::Skipped | NodePhase::Reverted
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
            NodePhase::Reverted => "reverted",
        }
    }

    /// Every phase, in lifecycle order.
    pub const ALL: [NodePhase; 12] = [
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
        NodePhase::Reverted,
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
    /// When crus first asked the workload manager to drain it in its
    /// present stay in `draining` (none while its pre_drain hooks run or
    /// the capacity floor holds its drain). Written before the drain is
    /// sent, so a node released before then is never "returned" to a
    /// service crus never took it out of, and its drain timeout counts
    /// from the ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_asked_at: Option<Timestamp>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many boots were started for it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// When it was taken out of the pending nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<Timestamp>,
    /// When its part in the session ended (done, failed or skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Since when it has been seen healthy without a break, while its health
    /// soaks after a boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since: Option<Timestamp>,
    /// Whether it was booted with jobs still running (`on_drain_timeout: force`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// The last power restart issued because its latest boot did not come
    /// back in time (`escalate_power_cycle`), while it is still awaited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    /// How many power restarts were issued for it in all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub power_restarts: u32,
    /// Someone else had it out of service (drained, draining or down with a
    /// reason crus did not write), as last seen: crus never resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign: Option<super::ForeignMark>,
    /// Its own scheduling weight in the workload manager, read before the
    /// session raised it (`steer_jobs`), so it is restored exactly, even by
    /// a controller that resumes the session after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_weight: Option<u32>,
    /// Its own features in the workload manager (Slurm's
    /// `AvailableFeatures`, set as `ActiveFeatures` too), read before the
    /// session first changes the node (`image_features`), so a node not
    /// upgraded gets exactly these back and an upgraded one these with its
    /// image's tag, even from a controller resuming after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_features: Option<Vec<String>>,
    /// Why its upgrade failed, once it is booted back to the policy's
    /// rollback template instead of failing (`rollback`). Written before
    /// that boot is asked for, so a restart neither repeats nor forgets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_reason: Option<String>,
    /// The boots of its step it was booted by, as positions in the step's
    /// [`Step::boots`], in order: a stored header leaves the boots' node
    /// lists out (its size would grow with the machine) and they are
    /// rebuilt from this (see `step_lists.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boots: Vec<u32>,
    /// Why this node, upgraded (`done`) by this session, is booted back to
    /// the rollback template: the session halted and its policy asks for
    /// `revert_upgraded_on_halt`. Written, with its move back to
    /// `draining`, before its drain is asked for, so a restart neither
    /// repeats nor forgets its revert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_reason: Option<String>,
    /// The runs of the policy's per-node hooks for it, each written before
    /// it is asked for (see `rollout/hooks.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<super::HookRun>,
}

/// A power restart issued for a node that did not come back after its boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// `graceful_restart` first, then `force_restart`.
    pub operation: PowerOperation,
    /// When it was issued; the node's next deadline counts from here.
    pub at: Timestamp,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl NodeRecord {
    /// A node not taken yet.
    pub fn pending(id: NodeId, now: Timestamp) -> Self {
        NodeRecord {
            id,
            phase: NodePhase::Pending,
            since: now,
            step: None,
            drain_asked_at: None,
            reason: None,
            attempts: 0,
            taken_at: None,
            finished_at: None,
            healthy_since: None,
            forced: false,
            escalation: None,
            power_restarts: 0,
            foreign: None,
            own_weight: None,
            own_features: None,
            rollback_reason: None,
            boots: Vec::new(),
            revert_reason: None,
            hooks: Vec::new(),
        }
    }
}

/// One boot of some of a step's nodes. A step has one boot under CRUS's
/// barrier; more when nodes are booted as they drain (`continuous`) or a
/// failed boot is retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepBoot {
    /// Idempotency key, derived from the upgrade id and step number, so a
    /// resumed controller finds the boot its predecessor started.
    pub key: String,
    /// The nodes the boot was requested for (asked for again, under the same key, after a restart).
    /// Left out of a stored header, which rebuilds it from the nodes'
    /// [`NodeRecord::boots`]; headers stored before that have it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeId>,
    /// The orchestrator's handle, once it acknowledged the boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<BootHandle>,
    /// When the boot was decided on; until the boot service acknowledges
    /// it, boot timeouts count from here.
    pub requested_at: Timestamp,
    /// When the boot service acknowledged the boot; boot timeouts count
    /// from here once it did. The two differ when the request was held
    /// back: the store refused to save the session (nothing goes out
    /// unsaved), or the boot service was retried. Counting from the
    /// decision would fail nodes for time their boot had not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When the request last went to the boot service, when that was after
    /// `requested_at` (it was sent again after a refusal or a restart):
    /// `max_boots_per_minute` counts the boot from here, after a restart
    /// too, so a boot sent late is never forgotten from its minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    /// The template its nodes are booted with, when not the session's: the
    /// rollback template, for nodes booted back after their upgrade failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

impl StepBoot {
    /// Whether `node` is one of the boot's nodes.
    pub fn includes(&self, node: &NodeId) -> bool {
        self.nodes.contains(node)
    }
}

/// A step: the nodes taken out of service together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Step number, from 0.
    pub number: u32,
    /// Indexes into [`RolloutState::nodes`]. Left out of a stored header,
    /// which rebuilds it from the nodes' [`NodeRecord::step`] (in index
    /// order); headers stored before that have it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<usize>,
    /// When the step started.
    pub started_at: Timestamp,
    /// Its boots, in the order they were requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boots: Vec<StepBoot>,
    /// Whether every node of the step has finished (and the summary was told).
    #[serde(default)]
    pub finished: bool,
    /// The runs of the policy's per-step hooks for it, each written before
    /// it is asked for (see `rollout/hooks.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<super::HookRun>,
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
    /// Progress in plain sentences: the first few and the latest many, with
    /// one message in between saying how many were folded (see
    /// `messages_folded`).
    pub messages: Vec<String>,
    /// How many messages were folded out of `messages` to keep the record's
    /// size bounded; the full history is in the session's events.
    #[serde(default, skip_serializing_if = "is_no_count")]
    pub messages_folded: usize,
    /// Where the session as a whole stands.
    pub stage: Stage,
    /// The nodes to upgrade, in the order they are taken (the snapshot of the
    /// starting group, sorted by topology). Empty until the snapshot is taken.
    pub nodes: super::NodeList,
    /// Steps started so far.
    pub steps: Vec<Step>,
    /// Deletion was requested: no new node is taken, nodes not yet booted are released.
    #[serde(default)]
    pub cancelled: bool,
    /// An operator (or a canary) paused the session: no new node is taken
    /// until it is resumed; nodes in flight finish.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Why the session halted (its failure budget was exceeded): no new node
    /// is taken until an operator resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
    /// While the policy's alert gates block: since when, and what fires.
    /// No new node is taken meanwhile; nodes in flight finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gated: Option<GateHold>,
    /// How many operator commands (pause, resume) were applied, in all: the
    /// record keeps only those not yet applied (see `Desired::commands`).
    #[serde(default)]
    pub commands_applied: usize,
    /// When the session was created.
    pub created_at: Timestamp,
    /// When the controller took it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Pending nodes this session drained ahead (`drain_ahead`), by index
    /// into `nodes`: each is taken into the step or returned to service,
    /// never left drained, also after a restart.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub drained_ahead: std::collections::BTreeSet<usize>,
    /// Once a halt (failure budget or `max_hold`) started booting the
    /// upgraded nodes back to the rollback template
    /// (`revert_upgraded_on_halt`): since when and why. Cleared by an
    /// operator's resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverting: Option<super::RevertOnHalt>,
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

    /// The steps being worked on: at most one under CRUS's barrier, any
    /// number in a sliding window.
    pub fn active_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|step| !step.finished)
    }

    /// Numbers of the steps being worked on.
    pub fn active_step_numbers(&self) -> Vec<u32> {
        self.active_steps().map(|step| step.number).collect()
    }

    /// How many nodes failed (or are being marked failed).
    pub fn failures(&self) -> usize {
        self.nodes
            .iter()
            .filter(|node| matches!(node.phase, NodePhase::Failing | NodePhase::Failed))
            .count()
    }
}

/// A hold by the policy's alert gates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateHold {
    /// When the gates first blocked (`max_hold` counts from here, or from
    /// the latest operator resume).
    pub since: Timestamp,
    /// What blocks, one sentence per gate.
    pub reasons: Vec<String>,
}

/// For `skip_serializing_if`: a count of 0 is not written.
fn is_no_count(count: &usize) -> bool {
    *count == 0
}
