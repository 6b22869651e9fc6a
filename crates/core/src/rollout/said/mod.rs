//! What a session says: one variant per kind of message, with the data its
//! text needs.
//!
//! The engine decides what happened and when to say it
//! ([`Rollout::say`](super::Rollout::say)); the words live here, apart:
//! `words` renders a [`Said`] to the text posted to the session's messages,
//! `parts` the pieces some are made of (the plan, the summary, the floor, the
//! subject of a hook's run).
//! Clients, tests and the README match on these texts, so they are kept byte
//! for byte as they were written inline at each call site before.

mod parts;
#[cfg(test)]
mod tests;
mod words;

use std::time::Duration;

use super::{Domain, ForeignOutOfService, Order, Strategy};
use crate::node::NodeId;
use crate::time::Timestamp;

/// A message of the session, before it is put into words.
#[derive(Debug, Clone)]
pub(super) enum Said {
    // Operator requests.
    /// A deletion was asked for while the session had not finished.
    DeletionRequested,
    /// The session was paused by an operator.
    Paused { reason: String },
    /// The session takes nodes again after a pause or a halt.
    Resumed,
    /// An operator command could not be applied.
    RequestRefused { reason: String },

    // The snapshot and its plan.
    /// The starting group is empty.
    EmptyGroup { label: String },
    /// Every node of the starting group already runs the target image.
    AllOnTarget { label: String },
    /// What the session sets out to do.
    Plan(Plan),
    /// Nodes found on the target template were skipped (`skip_matching`).
    SkippedMatching { count: usize, template: String },
    /// No node was found on the target template (`skip_matching`).
    NoneMatching { template: String },
    /// The orchestrator cannot tell which image the nodes run.
    ImagesUnknown { error: String },
    /// The failed group was emptied of an earlier session's nodes.
    ClearedFailedGroup { label: String, count: usize },
    /// The upgrading group was emptied.
    ClearedUpgradingGroup { label: String, count: usize },

    // Steps and boots.
    /// No maintenance window is open; `opens_at` is the next opening.
    OutsideWindows { opens_at: Option<Timestamp> },
    /// Boots wait for the rate limit.
    BootsPaced { limit: u32 },
    /// A step took its nodes; `inventory_order` lists them as a range.
    StepStarted {
        step: u32,
        canary: bool,
        nodes: Vec<NodeId>,
        inventory_order: bool,
    },
    /// A step's drained nodes are booted with the upgrade template.
    StepBooting {
        step: u32,
        count: usize,
        template: String,
    },
    /// A step's drained nodes are booted back to the rollback template.
    StepBootingBack {
        step: u32,
        count: usize,
        template: String,
    },
    /// The boot service acknowledged a boot.
    BootStarted {
        step: u32,
        count: usize,
        template: String,
        boot: String,
    },
    /// Every node of a step has finished.
    StepFinished {
        step: u32,
        upgraded: usize,
        reverted: usize,
        failed: usize,
        skipped: usize,
    },
    /// The canary step finished and the policy pauses after it.
    CanaryPaused { reason: String },
    /// The canary step finished well; the session goes on.
    CanaryPassed,

    // Halts and the end.
    /// The session halted (failure budget, canary, `max_hold`).
    Halted { reason: String },
    /// A deleted session's last word.
    Deleted { upgraded: usize, failed: usize },
    /// How a finished session went.
    Summary(Summary),
    /// CRUS's last message, word for word.
    Completed,

    // Nodes.
    /// A node failed.
    NodeFailed { node: NodeId, reason: String },
    /// A node is left where its owner put it.
    NodeLeftAlone { node: NodeId, reason: String },
    /// A node's boot failed and it is booted again.
    BootingAgain {
        node: NodeId,
        reason: String,
        attempts: u32,
        allowed: u32,
    },
    /// A node's upgrade failed and it is booted back (rollback).
    RollingBack {
        node: NodeId,
        reason: String,
        template: String,
    },
    /// A node did not come back: a graceful power restart is asked.
    RestartingGracefully {
        node: NodeId,
        boot_timeout: Duration,
        grace: Duration,
    },
    /// A node did not come back after a graceful restart: a forced one.
    RestartingByForce { node: NodeId, grace: Duration },
    /// A power restart could not be made.
    PowerRestartFailed { node: NodeId, error: String },
    /// A node did not drain in time and is skipped (`on_drain_timeout`).
    DrainTimedOutSkipped { node: NodeId, waited: Duration },
    /// A node did not drain in time and is rebooted with its jobs.
    DrainTimedOutForced { node: NodeId, waited: Duration },
    /// A node did not drain in time and its jobs are requeued.
    DrainTimedOutRequeueing { node: NodeId, waited: Duration },
    /// A node's jobs could not be requeued.
    CouldNotRequeue { node: NodeId, error: String },

    // Nodes someone else holds (`described` is `ForeignMark::describe`).
    /// Someone else returned a node it held to service.
    ForeignReturned { node: NodeId, described: String },
    /// A pending node is out of service by someone else.
    ForeignPending {
        node: NodeId,
        described: String,
        policy: ForeignOutOfService,
    },
    /// A draining node is out of service by someone else: waiting for it.
    ForeignWaiting { node: NodeId, described: String },
    /// A node out of service by someone else is upgraded and put back.
    ForeignUpgraded { node: NodeId, described: String },

    // Draining ahead and the floor.
    /// Nodes drained ahead are returned to service.
    ReturningAhead { nodes: Vec<NodeId>, stopped: bool },
    /// Nodes whose jobs end soonest are drained ahead.
    DrainingAhead { nodes: Vec<NodeId> },
    /// Taken nodes' drains wait at the capacity floor.
    DrainsHeldAtFloor {
        nodes: Vec<NodeId>,
        floor: Floor,
        elsewhere: Vec<(NodeId, String)>,
    },
    /// The session holds at the capacity floor; `out` is listed (at most
    /// `LISTED`), `more` out of service are not.
    HeldAtFloor {
        floor: Floor,
        in_service: usize,
        out: Vec<(NodeId, String)>,
        more: usize,
    },

    // Reverting after a halt.
    /// Upgraded nodes are booted back (`revert_upgraded_on_halt`).
    Reverting {
        count: usize,
        template: String,
        batch: usize,
    },
    /// A step of upgraded nodes to boot back took its nodes.
    RevertStepStarted {
        step: u32,
        nodes: Vec<NodeId>,
        template: String,
    },
    /// An upgraded node someone else holds is not booted back
    /// (`foreign_out_of_service: skip`); `why` is how it is held.
    RevertLeavesHeld { node: NodeId, why: String },

    // Alert gates.
    /// The gates cleared after holding the session `held`.
    GatesCleared { held: Duration },
    /// The gates hold the session.
    Gated {
        reasons: Vec<String>,
        max_hold: Option<Duration>,
    },
    /// The gates still hold the session, for other reasons.
    StillGated { reasons: Vec<String> },

    // Hooks (`hook` is `Hook::describe`).
    /// A run of a hook started.
    HookStarted { subject: Subject, hook: String },
    /// A run lost to a server stop is run again (idempotent hook).
    HookRunAgain { subject: Subject, hook: String },
    /// A run of a hook finished well.
    HookFinished { subject: Subject, hook: String },
    /// A run of a hook failed (`reason` says which and why).
    HookFailed { subject: Subject, reason: String },
    /// A run for a node's earlier boot failed: it runs again after the next.
    HookFailedEarlierBoot { subject: Subject, reason: String },

    // Job steering and image tags.
    /// The workload manager lost the scheduling weights set.
    WeightsLost,
    /// The workload manager cannot set node weights.
    WeightsUnsupported { error: String },
    /// The workload manager lost the node features set.
    FeaturesLost,
    /// The workload manager cannot set node features.
    FeaturesUnsupported { error: String },
    /// The workload manager cannot reserve nodes.
    ReservationsUnsupported { error: String },
    /// The workload manager lost reservations this session set.
    ReservationsLost,

    // Errors retried.
    /// An action (`Action::describe`) failed and is retried after `every`;
    /// the text starts with it capitalised.
    Retrying {
        action: String,
        error: String,
        every: Duration,
    },
    /// As [`Said::Retrying`], for weights and features, whose text starts
    /// with the description as it is (lower case), as it always has.
    RetryingAsDescribed {
        action: String,
        error: String,
        every: Duration,
    },
    /// An action hit a retryable error the controller retries.
    RetryingNow { action: String, error: String },
    /// The node states could not be read.
    WorkloadUnreadable { error: String, every: Duration },
    /// A step's boot progress could not be read.
    BootProgressUnreadable {
        step: u32,
        error: String,
        every: Duration,
    },
    /// The session store refused to save the session.
    StoreRefused { error: String },
}

/// The plan a session announces once its snapshot is taken.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// The starting group.
    pub label: String,
    /// How many nodes are to be upgraded.
    pub to_upgrade: usize,
    /// `upgrade_step_size`: the most nodes out of service at once.
    pub step_size: usize,
    /// Steps, or continuous.
    pub strategy: Strategy,
    /// The order nodes are taken in.
    pub order: Order,
    /// `spread`, said under the topology order.
    pub spread: Option<Domain>,
    /// `align`, said under the topology order.
    pub align: Option<Domain>,
    /// How many nodes may fail before the session halts.
    pub allowed_failures: Option<usize>,
    /// The capacity floor, `min_available`.
    pub floor: Option<Floor>,
}

/// How a finished session went.
#[derive(Debug, Clone)]
pub(super) struct Summary {
    /// Nodes upgraded.
    pub upgraded: usize,
    /// Nodes of the session.
    pub total: usize,
    /// Nodes booted back to the rollback template.
    pub reverted: usize,
    /// The rollback template.
    pub rollback_template: String,
    /// Nodes failed.
    pub failed: usize,
    /// The failed group.
    pub failed_label: String,
}

/// The capacity floor as messages state it: `4 of 5 nodes (90%)`.
#[derive(Debug, Clone)]
pub(super) struct Floor {
    /// Nodes kept in service.
    pub kept: usize,
    /// Nodes of the session.
    pub total: usize,
    /// The percentage `min_available` gave, when it gave one.
    pub percent: Option<f64>,
}

/// Whom a run of a hook is for: a node or a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Subject {
    /// A per-node run.
    Node(NodeId),
    /// A per-step run.
    Step(u32),
}
