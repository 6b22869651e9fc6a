//! `Rollout`: the sans-IO state machine of one session.
//!
//! It never sleeps, reads a clock or does IO. The controller feeds it the
//! current time and the answers to the actions it asked for, and polls it for
//! the next actions and the next time it wants to be woken:
//!
//! ```text
//! let mut rollout = Rollout::new(id, spec, policy, now);
//! loop {
//!     persist(rollout.state());                  // before acting on it
//!     while let Some((id, action)) = rollout.poll_action() { execute(id, action) }
//!     wait for an answer, or until rollout.poll_timeout()
//!     rollout.handle_outcome(now, id, answer)  /  rollout.handle_timeout(now)
//! }
//! ```
//!
//! By default it follows CRUS's procedure: a sorted snapshot of the starting
//! group is upgraded in steps of at most `upgrade_step_size` nodes, each step
//! drained, booted and returned to service before the next begins. Unlike
//! CRUS, a node fails alone: a failed boot or a node that does not come back
//! within the boot timeout fails that node, not its whole step.
//!
//! Actions are derived from the state (level-triggered): a rollout rebuilt from
//! a persisted state with [`Rollout::resume`] asks again for whatever was owed,
//! and every action is idempotent, so nothing is done twice.

mod action;
mod advance;
mod boot_rate;
mod census;
mod command;
mod commands;
mod deadlines;
mod drain_ahead;
mod event;
mod floor;
mod foreign;
mod gates;
mod header;
mod hooks;
mod image_features;
mod image_tags;
mod lifecycle;
mod lookup;
mod matching;
pub mod messages;
mod node_list;
mod node_moves;
mod observe;
mod outcomes;
mod owed;
mod policy;
mod read_changes;
mod record;
mod reserve_ahead;
mod revert_on_halt;
mod rollback;
mod said;
mod selection;
mod state;
mod state_timers;
mod status;
mod steering;
mod step_lists;
mod steps;
mod timers;
pub mod window;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use uuid::Uuid;

pub use action::{Action, ActionError, ActionErrorKind, ActionId, ActionOutput};
pub use command::OperatorCommand;
pub use drain_ahead::drain_ahead_errors;
pub use event::{EventKind, RolloutEvent};
pub use foreign::{
    CRUS_REASON_PREFIX, ForeignMark, ForeignOutOfService, REBOOT_REASON_PREFIX, foreign_mark_of,
    held_by_someone_else, is_crus_reason, is_reboot_reason, marked_by_someone_else,
};
pub(crate) use hooks::hook_problems;
pub use hooks::{
    DEFAULT_HOOK_TIMEOUT, Hook, HookHttp, HookOnFailure, HookPoint, HookRun, HookRunState,
    HookScope, hooks_plan,
};
pub use image_features::{IMAGE_FEATURE_PREFIX, image_feature, with_image_feature};
pub use lifecycle::{Hold, Lifecycle, Outcome, RefusedSessionMove, SessionInput};
pub use matching::ALREADY_ON_TARGET_IMAGE;
pub use node_list::NodeList;
pub use node_moves::{NodeInput, RefusedMove};
pub use policy::{
    Canary, Domain, FailureBudget, HealthGate, OnDrainTimeout, Order, RolloutPolicy, Strategy,
};
pub use reserve_ahead::{
    FIRST_ROUND_GUESS, RESERVATION_CHECK_INTERVAL, RESERVATION_SLACK, reserve_ahead_errors,
};
pub use revert_on_halt::RevertOnHalt;
pub use rollback::{Rollback, RollbackTrigger};
pub use selection::DrainCost;
pub use state::{Escalation, GateHold, NodePhase, NodeRecord, RolloutState, Stage, Step, StepBoot};
pub use status::{phase_of, status_of};
pub use steering::{DEFAULT_WEIGHT, WEIGHT_CHECK_INTERVAL, WEIGHT_RAISE};
pub use window::{IanaTimeZone, MaintenanceWindow, TimeOfDay, Weekday, WindowParseError};

use crate::node::{NodeId, NodeMap};
use crate::plan;
use crate::ports::{
    BootRequest, GateVerdict, HEALTH_CHECK_FAILED, HealthCheck, NodeBootState, NodeBootStatus,
    PowerOperation, WorkloadNode, WorkloadState,
};
use crate::session::{API_VERSION, KIND, SessionPhase, SessionSpec, SessionState, SessionStatus};
use crate::time::Timestamp;
use action::count_nodes;
use census::Census;
use said::{Floor, Plan, Said, Subject, Summary};
use timers::{Timer, Timers};

/// The last message of a session that finished (not deleted), exactly as
/// CRUS posted it; the summary of how it went is the message before.
pub const COMPLETED_MESSAGE: &str = "Upgrade Session Completed";

/// The pending nodes' drain costs are observed again at most once per this
/// much time per pending node (see [`Rollout::pending_costs_max_age`]).
const PENDING_COST_SPACING: std::time::Duration = std::time::Duration::from_millis(5);

/// The state machine of one rolling-upgrade session.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// The persisted part.
    state: RolloutState,
    /// Node index by id, for answers that name nodes.
    index: NodeMap<usize>,
    /// Actions derived but not yet handed to the controller.
    outbox: VecDeque<(ActionId, Action)>,
    /// Actions handed out and not yet answered.
    in_flight: BTreeMap<ActionId, Action>,
    /// Source of action ids.
    next_action_id: u64,
    /// Draining nodes whose drain was not acknowledged in this process's
    /// lifetime. Not persisted: after a restart every draining node is
    /// drained again, which is harmless.
    drain_owed: BTreeSet<usize>,
    /// Nodes whose drain was refused (or, after a restart, not seen
    /// applied) and is not sent again yet: counted out of service, and
    /// sent again only while that count keeps the capacity floor
    /// (`floor.rs`). Not persisted: a restart counts every drain it did not
    /// see applied.
    drains_unconfirmed: BTreeSet<usize>,
    /// Nodes to drain one by one, because a drain of a batch holding them was
    /// refused: only the node the workload manager rejects then fails.
    drain_singly: BTreeSet<usize>,
    /// Every due time: polls, refusals' delays, the windows' opening, nodes
    /// due back, drains' timeouts, the gates' `max_hold`.
    timers: Timers,
    /// Counts and indexes kept up to date at each change, so a pass never
    /// scans every node; it also holds the pending nodes' drain costs.
    census: Census,
    /// When the latest check of the alert gates that found them all clear
    /// was asked for: nodes are taken only within a poll interval of it.
    /// Not persisted: after a restart the gates are asked again first.
    gates_clear_at: Option<Timestamp>,
    /// Whether nodes wait for a check of the gates to be taken.
    want_gate_check: bool,
    /// When the pending nodes' drain costs were last observed, for the
    /// `drain_cost` and `topology` orders.
    pending_costs_at: Option<Timestamp>,
    /// Whether the next workload observation should include the pending nodes.
    want_pending_costs: bool,
    /// When the workload manager was last read for every node this session
    /// does not hold out of service, under a capacity floor: a node's first
    /// drain is asked only within `pending_costs_max_age` of it, so the
    /// nodes someone else took out since it was taken count. Not persisted:
    /// after a restart they are read again first.
    availability_read_at: Option<Timestamp>,
    /// Whether the nodes are still to be read once after the snapshot,
    /// before any is taken: a node someone else holds is then known from
    /// the start (reported, and under `skip` left out before it takes a
    /// place in a step). Not persisted: the marks read are, and a session
    /// taken up after a restart goes on as it was.
    first_read_owed: bool,
    /// Transitions not yet taken by [`Rollout::take_events`].
    events: Vec<RolloutEvent>,
    /// Nodes whose jobs were requeued after their drain timed out, in this
    /// process's lifetime (after a restart they are asked for again, which is
    /// harmless: a node without jobs is left as it is).
    requeued: BTreeSet<usize>,
    /// The starting group as admission read it, for a session admitted in
    /// this process: its snapshot is taken from these members instead of a
    /// second read, so the nodes checked for overlap and claimed are the
    /// ones it upgrades. Not persisted: a session taken up elsewhere (after
    /// a restart, on another replica) reads its group at its snapshot.
    admitted_members: Option<Vec<NodeId>>,
    /// Whether the persisted state changed since [`Rollout::take_dirty`] last said so.
    dirty: bool,
    /// When each observation queued or in flight was asked for: its answer
    /// tells how the nodes were at that time or later.
    asked_at: BTreeMap<ActionId, Timestamp>,
    /// When the latest answered observation of the workload manager was
    /// asked for. Not persisted: after a restart nothing has been seen yet.
    workload_seen_at: Option<Timestamp>,
    /// The same for each boot's progress, by (step, boot).
    boot_seen_at: BTreeMap<(u32, u32), Timestamp>,
    /// The time of the latest pass over the session: come-back deadlines up
    /// to it have been judged (see [`Rollout::check_boot_timeouts`]).
    judged_until: Timestamp,
    /// Node moves the phase table refused, oldest first: none, unless the
    /// engine has a bug. Not persisted.
    refused_moves: Vec<RefusedMove>,
    /// Session lifecycle moves refused: none, unless the engine has a bug.
    /// Not persisted.
    refused_session_moves: Vec<RefusedSessionMove>,
    /// Nodes out of service that this session does not hold (drained or
    /// down by someone else), with why, as last observed: they count
    /// against `min_available`. Not persisted: observed again after a restart.
    held_elsewhere: BTreeMap<usize, String>,
    /// Boots requested in about the last minute, oldest first, and how many
    /// nodes each named: `max_boots_per_minute` counts them.
    recent_boots: VecDeque<(Timestamp, usize)>,
    /// The scheduling weight this process set on each node (`steer_jobs`).
    /// Not persisted: after a restart every weight is set again.
    weights_set: BTreeMap<usize, u32>,
    /// Whether the workload manager answered that it has no weights, so
    /// `steer_jobs` does nothing in this process's lifetime.
    steering_unsupported: bool,
    /// Whether every node is to be looked over for a weight to set or read
    /// (after a start, a restart or a refusal): otherwise only the nodes in
    /// `weights_touched` are, since looking over every node at each pass
    /// was the cost of `steer_jobs`.
    weights_rescan: bool,
    /// The nodes whose wanted weight may have changed since the last look
    /// (their phase moved, their weight was read or set).
    weights_touched: BTreeSet<usize>,
    /// Whether the session was steering when the nodes were last looked over.
    weights_scanned_steering: bool,
    /// The reservations this process set and the plan they follow
    /// (`reserve_ahead`). Not persisted: see `reserve_ahead.rs`.
    reservations: reserve_ahead::Reservations,
    /// The features this process set on each node (`image_features`). Not
    /// persisted: after a restart every node's features are set again.
    features_set: BTreeMap<usize, Vec<String>>,
    /// Whether the workload manager answered that it has no node features,
    /// so `image_features` does nothing in this process's lifetime.
    image_features_unsupported: bool,
    /// Whether the features set were read back once since the session's
    /// cleanup began (`image_features`), so a loss in the session's last
    /// minute is made good before it ends. Not persisted.
    features_verified: bool,
    /// Whether that last read-back was asked for (reads go one at a time,
    /// so the next answer is its). Not persisted.
    features_verify_asked: bool,
    /// Nodes drained ahead that are to be returned to service (`drain_ahead`).
    /// Not persisted: after a restart they are drained again (they are in
    /// `drained_ahead`) and judged again.
    ahead_to_return: BTreeSet<usize>,
    /// Hook runs asked for in this process's lifetime and not answered yet.
    /// Not persisted: a run persisted as running that is not here was lost
    /// in a restart (see `rollout/hooks.rs`).
    hooks_in_flight: BTreeSet<hooks::HookKey>,
    /// What a caller that reports each node's workload changes told, and
    /// what the engine last read of each node (`read_changes.rs`); `None`
    /// for a real session, whose reads name every node.
    read_changes: Option<read_changes::ReadChanges>,
    /// Whether the workload read in flight asked for the pending nodes'
    /// drain costs, when changes are reported: such a read may name none of
    /// them (none changed) and still refreshes them all.
    pending_costs_asked: bool,
}

impl Rollout {
    /// A new session, in state `UPDATING` (as CRUS answered a new session),
    /// that will upgrade the nodes of `spec.starting_label`.
    pub fn new(upgrade_id: Uuid, spec: SessionSpec, policy: RolloutPolicy, now: Timestamp) -> Self {
        Self::resume(RolloutState {
            upgrade_id,
            spec,
            policy,
            api_version: API_VERSION.to_string(),
            state: SessionState::Updating,
            completed: false,
            messages: Vec::new(),
            messages_folded: 0,
            stage: Stage::Snapshot,
            nodes: NodeList::default(),
            steps: Vec::new(),
            cancelled: false,
            paused: false,
            halted: None,
            gated: None,
            commands_applied: 0,
            created_at: now,
            started_at: None,
            finished_at: None,
            drained_ahead: BTreeSet::new(),
            reverting: None,
        })
    }

    /// Carries on from a persisted state (after a restart, or on another host).
    /// Whatever was in flight is asked for again.
    pub fn resume(mut state: RolloutState) -> Self {
        // Stored by crus 0.1 before a controller took it up.
        state.state = state.state.served();
        // A header stored without its node lists gets them from its nodes;
        // nodes stored before they named their boots are given them, and
        // the next write (which compares nodes with what was stored) saves
        // them before a header leaves the lists out.
        state.restore_node_lists();
        state.record_boot_membership();
        let index = state
            .nodes
            .iter()
            .enumerate()
            .map(|(position, node)| (node.id.clone(), position))
            .collect();
        let census = Census::of(&state);
        let recent_boots = Rollout::recent_boots_of(&state);
        // A node someone else holds is never drained by crus: that would
        // overwrite its owner's reason.
        let mut drain_owed: BTreeSet<usize> = census
            .nodes_in(&[NodePhase::Draining])
            .filter(|&node| state.nodes[node].foreign.is_none())
            .collect();
        drain_owed.extend(state.drained_ahead.iter().copied());
        let drains_unconfirmed: BTreeSet<usize> = drain_owed
            .iter()
            .copied()
            .filter(|&node| {
                state.drained_ahead.contains(&node) || state.nodes[node].drain_asked_at.is_some()
            })
            .collect();
        let mut timers = Timers::default();
        timers.set(Timer::WorkloadPoll, Timestamp::EPOCH);
        let mut rollout = Rollout {
            census,
            state,
            index,
            outbox: VecDeque::new(),
            in_flight: BTreeMap::new(),
            next_action_id: 0,
            drain_owed,
            drains_unconfirmed,
            drain_singly: BTreeSet::new(),
            // The first poll is due at once.
            timers,
            pending_costs_at: None,
            availability_read_at: None,
            want_pending_costs: false,
            first_read_owed: false,
            gates_clear_at: None,
            want_gate_check: false,
            events: Vec::new(),
            requeued: BTreeSet::new(),
            admitted_members: None,
            dirty: true,
            asked_at: BTreeMap::new(),
            workload_seen_at: None,
            boot_seen_at: BTreeMap::new(),
            judged_until: Timestamp::EPOCH,
            refused_moves: Vec::new(),
            refused_session_moves: Vec::new(),
            held_elsewhere: BTreeMap::new(),
            recent_boots,
            weights_set: BTreeMap::new(),
            steering_unsupported: false,
            weights_rescan: true,
            weights_touched: BTreeSet::new(),
            weights_scanned_steering: false,
            reservations: reserve_ahead::Reservations::default(),
            features_set: BTreeMap::new(),
            image_features_unsupported: false,
            features_verified: false,
            features_verify_asked: false,
            ahead_to_return: BTreeSet::new(),
            hooks_in_flight: BTreeSet::new(),
            read_changes: None,
            pending_costs_asked: false,
        };
        // `Timers` is not persisted: what is due follows from the state.
        rollout.arm_timers_from_state();
        rollout
    }

    /// The persisted state.
    pub fn state(&self) -> &RolloutState {
        &self.state
    }

    /// The session as the CRUS API shows it.
    pub fn status(&self) -> SessionStatus {
        status_of(&self.state)
    }

    /// How many nodes are in `phase` now, from the census: no pass over
    /// the nodes (the dry run asks at every pass).
    pub fn count(&self, phase: NodePhase) -> usize {
        self.census.count(phase)
    }

    /// Whether the persisted state changed since the last call (then it must
    /// be persisted before the actions now queued are executed).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The transitions since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<RolloutEvent> {
        std::mem::take(&mut self.events)
    }

    /// The next action to execute, if any.
    pub fn poll_action(&mut self) -> Option<(ActionId, Action)> {
        let (id, action) = self.outbox.pop_front()?;
        self.in_flight.insert(id, action.clone());
        Some((id, action))
    }

    /// The node moves the phase table refused so far (see
    /// [`NodePhase::after`]): empty unless the engine has a bug.
    pub fn refused_moves(&self) -> &[RefusedMove] {
        &self.refused_moves
    }

    /// Whether any action is queued or awaiting its answer.
    pub fn has_work_in_flight(&self) -> bool {
        !self.outbox.is_empty() || !self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests;
