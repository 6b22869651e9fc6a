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
mod census;
mod event;
pub mod messages;
mod policy;
mod selection;
mod state;
pub mod window;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use uuid::Uuid;

pub use action::{Action, ActionError, ActionErrorKind, ActionId, ActionOutput};
pub use event::{EventKind, RolloutEvent};
pub use policy::{
    Canary, Domain, FailureBudget, HealthGate, OnDrainTimeout, Order, RolloutPolicy, Strategy,
};
pub use selection::DrainCost;
pub use state::{Escalation, NodePhase, NodeRecord, RolloutState, Stage, Step, StepBoot};
pub use window::{IanaTimeZone, MaintenanceWindow, TimeOfDay, Weekday, WindowParseError};

use crate::node::NodeId;
use crate::plan;
use crate::ports::{
    BootRequest, HEALTH_CHECK_FAILED, HealthCheck, NodeBootState, NodeBootStatus, PowerOperation,
    WorkloadNode, WorkloadState,
};
use crate::session::{API_VERSION, KIND, SessionPhase, SessionSpec, SessionState, SessionStatus};
use crate::store::OperatorCommand;
use crate::time::Timestamp;
use action::count_nodes;
use census::Census;

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
    index: HashMap<NodeId, usize>,
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
    /// Nodes to drain one by one, because a drain of a batch holding them was
    /// refused: only the node the workload manager rejects then fails.
    drain_singly: BTreeSet<usize>,
    /// Nodes whose last resume or mark-failed was refused, and when to try again.
    node_retry_at: BTreeMap<usize, Timestamp>,
    /// When a refused session-level action (or step boot) may be tried again.
    session_retry_at: Option<Timestamp>,
    /// When to next ask the workload manager about draining and verifying nodes.
    next_workload_poll: Timestamp,
    /// When to next ask the boot orchestrator about each boot, by (step, boot).
    next_boot_poll: BTreeMap<(u32, u32), Timestamp>,
    /// Counts and indexes kept up to date at each change, so a pass never
    /// scans every node; it also holds the pending nodes' drain costs.
    census: Census,
    /// When the pending nodes' drain costs were last observed, for the
    /// `drain_cost` and `topology` orders.
    pending_costs_at: Option<Timestamp>,
    /// Whether the next workload observation should include the pending nodes.
    want_pending_costs: bool,
    /// When the maintenance windows next open, while they are closed and
    /// nodes wait to be taken.
    window_opens_at: Option<Timestamp>,
    /// Transitions not yet taken by [`Rollout::take_events`].
    events: Vec<RolloutEvent>,
    /// Nodes whose jobs were requeued after their drain timed out, in this
    /// process's lifetime (after a restart they are asked for again, which is
    /// harmless: a node without jobs is left as it is).
    requeued: BTreeSet<usize>,
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
            nodes: Vec::new(),
            steps: Vec::new(),
            cancelled: false,
            paused: false,
            halted: None,
            commands_applied: 0,
            created_at: now,
            started_at: None,
            finished_at: None,
        })
    }

    /// Carries on from a persisted state (after a restart, or on another host).
    /// Whatever was in flight is asked for again.
    pub fn resume(mut state: RolloutState) -> Self {
        // Stored by crus 0.1 before a controller took it up.
        state.state = state.state.served();
        let index = state
            .nodes
            .iter()
            .enumerate()
            .map(|(position, node)| (node.id.clone(), position))
            .collect();
        let census = Census::of(&state);
        let drain_owed = census.nodes_in(&[NodePhase::Draining]).collect();
        Rollout {
            census,
            state,
            index,
            outbox: VecDeque::new(),
            in_flight: BTreeMap::new(),
            next_action_id: 0,
            drain_owed,
            drain_singly: BTreeSet::new(),
            node_retry_at: BTreeMap::new(),
            session_retry_at: None,
            next_workload_poll: Timestamp::EPOCH,
            next_boot_poll: BTreeMap::new(),
            pending_costs_at: None,
            want_pending_costs: false,
            window_opens_at: None,
            events: Vec::new(),
            requeued: BTreeSet::new(),
            dirty: true,
            asked_at: BTreeMap::new(),
            workload_seen_at: None,
            boot_seen_at: BTreeMap::new(),
            judged_until: Timestamp::EPOCH,
        }
    }

    /// The persisted state.
    pub fn state(&self) -> &RolloutState {
        &self.state
    }

    /// The session as the CRUS API shows it.
    pub fn status(&self) -> SessionStatus {
        status_of(&self.state)
    }

    /// Whether the session has nothing left to do.
    pub fn is_finished(&self) -> bool {
        self.state.stage == Stage::Finished
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

    /// Whether any action is queued or awaiting its answer.
    pub fn has_work_in_flight(&self) -> bool {
        !self.outbox.is_empty() || !self.in_flight.is_empty()
    }

    /// When the rollout next wants [`Rollout::handle_timeout`] called, if no
    /// answer arrives first. `None` when it is only waiting for answers.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        // Invariant: after `advance(now)`, every deadline named here is later
        // than `now` or belongs to something not yet asked for, so the
        // controller never spins on a deadline that has passed.
        let mut deadlines: Vec<Timestamp> = Vec::new();
        let nothing_in_flight = self.outbox.is_empty() && self.in_flight.is_empty();
        match self.state.stage {
            Stage::Snapshot | Stage::PrepareGroups | Stage::Cleanup => {
                if nothing_in_flight {
                    deadlines.extend(self.session_retry_at);
                }
            }
            Stage::Running => {
                let observing_workload =
                    self.is_in_flight(|action| matches!(action, Action::ObserveWorkload { .. }));
                // Draining and verifying nodes are watched (all in active steps).
                let watching = self.census.count(NodePhase::Draining)
                    + self.census.count(NodePhase::Verifying)
                    > 0;
                if (watching || self.want_pending_costs) && !observing_workload {
                    deadlines.push(self.next_workload_poll);
                }
                for step in self.active_steps() {
                    let awaited =
                        self.nodes_by_boot(step, &[NodePhase::Booting, NodePhase::Verifying]);
                    for (number, (boot, nodes)) in step.boots.iter().zip(awaited).enumerate() {
                        let number = u32::try_from(number).unwrap_or(u32::MAX);
                        // A deadline already judged waits for an observation
                        // asked for since (its poll is due or in flight).
                        deadlines.extend(
                            nodes
                                .iter()
                                .filter(|&&node| self.state.nodes[node].healthy_since.is_none())
                                .map(|&node| self.come_back_deadline(node, boot))
                                .filter(|&deadline| deadline > self.judged_until)
                                .min(),
                        );
                        let booting = nodes
                            .iter()
                            .any(|&node| self.state.nodes[node].phase == NodePhase::Booting);
                        let boot_in_flight = self.boot_in_flight(step.number, number);
                        if !boot_in_flight && booting {
                            match boot.handle {
                                Some(_) => deadlines.push(self.boot_poll_due(step.number, number)),
                                None => deadlines.extend(self.session_retry_at),
                            }
                        }
                    }
                }
                deadlines.extend(self.drain_deadline());
                deadlines.extend(self.window_opens_at);
                deadlines.extend(self.node_retry_at.values().copied());
            }
            Stage::Finished => {}
        }
        deadlines.into_iter().min()
    }

    /// Skips the workload and boot polls that would fall before `until`: the
    /// next poll of each is the first one of its regular schedule at or after
    /// `until`. For a simulation (the dry run) that knows nothing it observes
    /// changes before then, so the skipped polls could only have seen what
    /// was seen already; with 100,000 nodes each poll is costly.
    pub fn defer_polls(&mut self, until: Timestamp) {
        let interval = self
            .state
            .policy
            .poll_interval
            .max(std::time::Duration::from_millis(1));
        let first_at_or_after = |due: Timestamp| {
            if due >= until {
                return due;
            }
            let behind = until.saturating_since(due).as_secs_f64();
            let periods = (behind / interval.as_secs_f64()).ceil();
            due + interval.mul_f64(periods)
        };
        self.next_workload_poll = first_at_or_after(self.next_workload_poll);
        for due in self.next_boot_poll.values_mut() {
            *due = first_at_or_after(*due);
        }
    }

    /// Lets time pass: checks timeouts and asks for whatever is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.advance(now);
    }

    /// Deletion requested: take no new node, return nodes not yet booted to
    /// service, let boots in flight finish, then empty the upgrading group.
    /// The state is `DELETING` from now on, a finished session's too (as in
    /// CRUS, whose DELETE answered every session so before removing it).
    pub fn cancel(&mut self, now: Timestamp) {
        if self.state.cancelled {
            return;
        }
        self.state.cancelled = true;
        self.set_state(SessionState::Deleting, now);
        if !self.state.completed {
            self.post(now, "Deletion requested: no new node will be taken; nodes not yet booted are returned to service".to_string());
        }
        match self.state.stage {
            Stage::Snapshot => self.finish(now),
            Stage::PrepareGroups => self.state.stage = Stage::Cleanup,
            Stage::Running | Stage::Cleanup | Stage::Finished => {}
        }
        self.dirty = true;
        self.advance(now);
    }

    /// Operator request: take no new node until [`Rollout::resume_taking`];
    /// nodes in flight finish. Returns false when the session has finished.
    pub fn pause(&mut self, now: Timestamp, reason: &str) -> bool {
        let paused = self.record_pause(now, reason);
        self.advance(now);
        paused
    }

    /// [`Rollout::pause`] without the pass over the session that follows.
    fn record_pause(&mut self, now: Timestamp, reason: &str) -> bool {
        if self.state.completed || self.state.cancelled {
            return false;
        }
        if !self.state.paused {
            self.state.paused = true;
            self.dirty = true;
            self.post(
                now,
                format!(
                    "Paused: {reason}; nodes in flight finish, no new node is taken until resumed"
                ),
            );
            self.emit(
                now,
                EventKind::Paused {
                    reason: reason.to_string(),
                },
            );
        }
        true
    }

    /// Operator request: take nodes again after a pause or a halt, with a new
    /// failure budget when one is given. Refused (with the reason) when the
    /// session has finished or would halt again at once.
    pub fn resume_taking(
        &mut self,
        now: Timestamp,
        max_failures: Option<FailureBudget>,
    ) -> Result<(), String> {
        self.record_resume(now, max_failures)?;
        self.advance(now);
        Ok(())
    }

    /// [`Rollout::resume_taking`] without the pass over the session that follows.
    fn record_resume(
        &mut self,
        now: Timestamp,
        max_failures: Option<FailureBudget>,
    ) -> Result<(), String> {
        if self.state.completed || self.state.cancelled {
            return Err("the session has finished or is being deleted".to_string());
        }
        let budget = max_failures.or(self.state.policy.max_failures);
        let failures = self.census.failures();
        if let Some(allowed) = budget.map(|budget| budget.allowed(self.state.nodes.len()))
            && failures > allowed
        {
            return Err(format!(
                "{failures} nodes failed, more than the failure budget of {allowed}: raise max_failures to resume"
            ));
        }
        if let Some(budget) = max_failures {
            self.state.policy.max_failures = Some(budget);
        }
        if self.state.paused || self.state.halted.is_some() {
            self.state.paused = false;
            self.state.halted = None;
            self.dirty = true;
            self.post(now, "Resumed: taking nodes again".to_string());
            self.emit(now, EventKind::Resumed);
        }
        Ok(())
    }

    /// Applies `pending`, the operator commands not applied yet, oldest
    /// first (see [`Desired::pending_commands`](crate::store::Desired::pending_commands)).
    pub fn apply_commands(&mut self, now: Timestamp, pending: &[OperatorCommand]) {
        for command in pending {
            if let Err(reason) = self.apply_command(now, command) {
                self.post_once(now, format!("Operator request refused: {reason}"));
            }
            self.state.commands_applied += 1;
            self.dirty = true;
        }
    }

    /// Applies one operator command.
    pub fn apply_command(
        &mut self,
        now: Timestamp,
        command: &OperatorCommand,
    ) -> Result<(), String> {
        let result = self.record_command(now, command);
        self.advance(now);
        result
    }

    /// Applies one operator command to the session's state and nothing else:
    /// no timeout is judged and no action is queued. For deciding, on a copy
    /// of a stored state, whether a request is accepted: only the
    /// controller driving the session, which observes the nodes, may judge
    /// whether a node came back in time.
    pub fn record_command(
        &mut self,
        now: Timestamp,
        command: &OperatorCommand,
    ) -> Result<(), String> {
        match command {
            OperatorCommand::Pause => {
                if self.record_pause(now, "requested by an operator") {
                    Ok(())
                } else {
                    Err("the session has finished or is being deleted".to_string())
                }
            }
            OperatorCommand::Resume { max_failures } => self.record_resume(now, *max_failures),
        }
    }

    /// The answer to action `id`. Retryable errors never get here: the
    /// controller retries them itself.
    pub fn handle_outcome(
        &mut self,
        now: Timestamp,
        id: ActionId,
        outcome: Result<ActionOutput, ActionError>,
    ) {
        self.apply_outcome(now, id, outcome);
        self.advance(now);
    }

    /// Answers that arrived together, applied in order, then one pass over
    /// the session: the same as [`Rollout::handle_outcome`] for each, but
    /// without a pass over every active step after each answer, which is
    /// what a poll answering hundreds of boots at once would cost.
    pub fn handle_outcomes(
        &mut self,
        now: Timestamp,
        outcomes: impl IntoIterator<Item = (ActionId, Result<ActionOutput, ActionError>)>,
    ) {
        for (id, outcome) in outcomes {
            self.apply_outcome(now, id, outcome);
        }
        self.advance(now);
    }

    fn apply_outcome(
        &mut self,
        now: Timestamp,
        id: ActionId,
        outcome: Result<ActionOutput, ActionError>,
    ) {
        let asked_at = self.asked_at.remove(&id);
        let Some(action) = self.in_flight.remove(&id) else {
            return;
        };
        match (action, outcome) {
            (Action::ReadStartingGroup { label }, Ok(ActionOutput::Members(members))) => {
                self.take_snapshot(now, &label, members);
            }
            (
                Action::PrepareGroups {
                    upgrading_label,
                    failed_label,
                },
                Ok(ActionOutput::GroupsPrepared {
                    cleared_failed,
                    cleared_upgrading,
                }),
            ) => {
                if !cleared_failed.is_empty() {
                    self.post(
                        now,
                        format!(
                            "Cleared node group '{failed_label}' ({} from an earlier session)",
                            count_nodes(cleared_failed.len())
                        ),
                    );
                }
                if !cleared_upgrading.is_empty() {
                    self.post(
                        now,
                        format!(
                            "Cleared node group '{upgrading_label}' ({})",
                            count_nodes(cleared_upgrading.len())
                        ),
                    );
                }
                if self.state.stage == Stage::PrepareGroups {
                    self.state.stage = Stage::Running;
                    self.dirty = true;
                }
            }
            (Action::Drain { nodes, .. }, Ok(_)) => {
                for node in self.indexes_of(&nodes) {
                    self.drain_owed.remove(&node);
                }
            }
            (Action::ObserveWorkload { .. }, Ok(ActionOutput::Workload(observed))) => {
                self.next_workload_poll = now + self.state.policy.poll_interval;
                self.workload_seen_at = self.workload_seen_at.max(asked_at);
                self.observe_workload(now, &observed);
            }
            (
                Action::StartBoot {
                    step,
                    boot,
                    request,
                },
                Ok(ActionOutput::BootStarted(handle)),
            ) => {
                if let Some(record) = self.boot_mut(step, boot) {
                    record.handle = Some(handle.clone());
                    self.dirty = true;
                    self.next_boot_poll
                        .insert((step, boot), now + self.state.policy.poll_interval);
                    self.post(
                        now,
                        format!(
                            "Step {step}: boot of {} started with template '{}' (boot {})",
                            count_nodes(request.nodes.len()),
                            request.template,
                            handle.id
                        ),
                    );
                }
            }
            (Action::ObserveBoot { step, boot, .. }, Ok(ActionOutput::BootStatus(statuses))) => {
                self.next_boot_poll
                    .insert((step, boot), now + self.state.policy.poll_interval);
                if let Some(at) = asked_at {
                    let seen = self.boot_seen_at.entry((step, boot)).or_insert(at);
                    *seen = (*seen).max(at);
                }
                self.observe_boot(now, step, boot, &statuses);
            }
            (Action::Resume { nodes, .. }, Ok(_)) => {
                for node in self.indexes_of(&nodes) {
                    match self.state.nodes[node].phase {
                        NodePhase::Resuming => self.set_phase(node, NodePhase::Done, now),
                        NodePhase::Releasing => self.set_phase(node, NodePhase::Skipped, now),
                        _ => {}
                    }
                }
            }
            (Action::MarkFailed { nodes, .. }, Ok(_)) => {
                let ids: Vec<NodeId> = nodes.into_iter().map(|(node, _)| node).collect();
                for node in self.indexes_of(&ids) {
                    if self.state.nodes[node].phase == NodePhase::Failing {
                        self.set_phase(node, NodePhase::Failed, now);
                    }
                }
            }
            (Action::PowerRestart { .. }, Ok(_)) => {}
            (Action::ClearUpgradingGroup { .. }, Ok(_)) => self.finish(now),
            (action, Ok(output)) => {
                tracing::warn!(
                    ?action,
                    ?output,
                    "answer does not match its action; asking again"
                );
            }
            (action, Err(error)) => self.action_refused(now, action, &error),
        }
    }

    /// Tells that an action hit a retryable error and will be tried again, so
    /// the session's messages say why it is not moving (once per distinct error).
    pub fn note_retry(&mut self, now: Timestamp, action: &Action, error: &str) {
        self.post_once(
            now,
            format!(
                "{} failed, retrying: {error}",
                capitalise(&action.describe())
            ),
        );
    }

    /// Tells that the session store refused to save the session, so nothing
    /// more is done until it takes a write again (once per distinct error).
    /// The message itself is saved with the first write that succeeds.
    pub fn note_store_refusal(&mut self, now: Timestamp, error: &str) {
        self.post_once(
            now,
            format!(
                "The session store refused to save this session ({error}); nothing more is done \
                 until it takes writes again (retried with backoff, and at once on resume)"
            ),
        );
    }

    fn take_snapshot(&mut self, now: Timestamp, label: &str, members: Vec<NodeId>) {
        if self.state.stage != Stage::Snapshot {
            return;
        }
        let ordered = plan::inventory_order(members);
        self.state.nodes = ordered
            .into_iter()
            .map(|id| NodeRecord::pending(id, now))
            .collect();
        self.index = self
            .state
            .nodes
            .iter()
            .enumerate()
            .map(|(position, node)| (node.id.clone(), position))
            .collect();
        self.census = Census::of(&self.state);
        self.dirty = true;
        if self.state.nodes.is_empty() {
            self.post(
                now,
                format!("Group '{label}' has no members: nothing to upgrade"),
            );
            self.state.stage = Stage::Cleanup;
        } else {
            let total = self.state.nodes.len();
            let mut text = match self.state.policy.strategy {
                Strategy::Steps => {
                    let steps = total.div_ceil(self.step_size());
                    format!(
                        "Upgrading {} of group '{label}' in {steps} step{} of at most {}",
                        count_nodes(total),
                        if steps == 1 { "" } else { "s" },
                        self.step_size()
                    )
                }
                Strategy::Continuous => format!(
                    "Upgrading {} of group '{label}', at most {} out of service at once, each taken as soon as another is done",
                    count_nodes(total),
                    self.step_size()
                ),
            };
            match self.state.policy.order {
                Order::Inventory => {}
                Order::DrainCost => text.push_str(", cheapest drains first"),
                Order::Topology => {
                    if let Some(domain) = self.state.policy.spread {
                        text.push_str(&format!(", never two of one {} at once", domain.as_str()));
                    }
                    if let Some(domain) = self.state.policy.align {
                        text.push_str(&format!(", a whole {} at a time", domain.as_str()));
                    }
                }
            }
            if let Some(allowed) = self.state.policy.failure_budget(total) {
                text.push_str(&format!("; halts if more than {allowed} fail"));
            }
            self.post(now, text);
            self.state.stage = Stage::PrepareGroups;
        }
    }

    fn observe_workload(&mut self, now: Timestamp, observed: &[WorkloadNode]) {
        let mut saw_pending = false;
        for report in observed {
            let Some(&node) = self.index.get(&report.node) else {
                continue;
            };
            match (self.state.nodes[node].phase, report.state) {
                (NodePhase::Pending, _) => {
                    saw_pending = true;
                    self.census.cost_observed(node, DrainCost::of(report));
                }
                (NodePhase::Draining | NodePhase::Verifying, WorkloadState::Unknown) => {
                    self.fail_node(
                        node,
                        "the workload manager does not know this node".to_string(),
                        now,
                    );
                }
                (NodePhase::Draining, state) if state.is_quiet() => {
                    self.set_phase(node, NodePhase::Drained, now);
                }
                (NodePhase::Draining, WorkloadState::Idle | WorkloadState::Allocated) => {
                    // Someone returned it to service after we drained it: drain again.
                    self.drain_owed.insert(node);
                }
                (
                    NodePhase::Verifying,
                    WorkloadState::Drained | WorkloadState::Idle | WorkloadState::Allocated,
                ) if report.responding => self.healthy(node, now),
                // Up, and down only by a mark carrying this session's drain
                // reason: the failed mark an earlier session left (Slurm keeps
                // FAIL through a drain and a boot, and shows the latest
                // reason, the drain's). The resume that follows clears it.
                (NodePhase::Verifying, WorkloadState::Down)
                    if report.responding
                        && report.reason.as_deref() == Some(self.drain_reason().as_str()) =>
                {
                    self.healthy(node, now);
                }
                // A break in health restarts the soak; a failed health check
                // is kept as the node's reason, so a node that never passes
                // fails saying why.
                (NodePhase::Verifying, _) => {
                    let failed_check = report
                        .reason
                        .clone()
                        .filter(|reason| reason.starts_with(HEALTH_CHECK_FAILED));
                    let record = &mut self.state.nodes[node];
                    if record.healthy_since.is_some()
                        || (failed_check.is_some() && record.reason != failed_check)
                    {
                        record.healthy_since = None;
                        if failed_check.is_some() {
                            record.reason = failed_check;
                        }
                        self.dirty = true;
                    }
                }
                _ => {}
            }
        }
        if saw_pending {
            self.pending_costs_at = Some(now);
            self.want_pending_costs = false;
        }
    }

    /// The policy's health command and HTTP probe, if it has either.
    fn health_check(&self) -> Option<HealthCheck> {
        self.state.policy.health.as_ref()?.check()
    }

    /// A verifying node was seen healthy: it is upgraded once it has stayed
    /// so for the policy's soak time.
    fn healthy(&mut self, node: usize, now: Timestamp) {
        let soak = self
            .state
            .policy
            .health
            .as_ref()
            .map_or(std::time::Duration::ZERO, |health| health.soak);
        let record = &mut self.state.nodes[node];
        if record
            .reason
            .as_deref()
            .is_some_and(|reason| reason.starts_with(HEALTH_CHECK_FAILED))
        {
            record.reason = None;
        }
        let since = *record.healthy_since.get_or_insert(now);
        self.dirty = true;
        if now.saturating_since(since) >= soak {
            self.set_phase(node, NodePhase::Resuming, now);
        }
    }

    fn observe_boot(&mut self, now: Timestamp, step: u32, boot: u32, statuses: &[NodeBootStatus]) {
        for status in statuses {
            let Some(&node) = self.index.get(&status.node) else {
                continue;
            };
            // An answer about an earlier boot of a node being retried is stale.
            if self.state.nodes[node].phase != NodePhase::Booting
                || self.state.nodes[node].step != Some(step)
                || self.census.latest_boot(node) != Some(boot)
            {
                continue;
            }
            match &status.state {
                NodeBootState::InProgress => {}
                NodeBootState::Ok => self.set_phase(node, NodePhase::Verifying, now),
                NodeBootState::Failed { reason } => {
                    self.boot_failed(node, format!("boot failed: {reason}"), now);
                }
            }
        }
    }

    /// A node's boot failed or timed out: boot it again while retries are
    /// left, fail it otherwise.
    fn boot_failed(&mut self, node: usize, reason: String, now: Timestamp) {
        let attempts = self.state.nodes[node].attempts;
        let allowed = self.state.policy.retries.saturating_add(1);
        if attempts < allowed {
            let id = self.state.nodes[node].id.clone();
            self.post(
                now,
                format!(
                    "Node {id}: {reason}; booting it again (attempt {} of {allowed})",
                    attempts + 1
                ),
            );
            self.state.nodes[node].healthy_since = None;
            self.set_phase(node, NodePhase::Drained, now);
        } else {
            self.fail_node(node, reason, now);
        }
    }

    /// An action failed in a way retrying at once will not fix.
    fn action_refused(&mut self, now: Timestamp, action: Action, error: &ActionError) {
        let node_problem = matches!(
            error.kind,
            ActionErrorKind::NotFound | ActionErrorKind::Invalid
        );
        let retry_at = now + self.state.policy.error_retry_interval;
        let retry_in = humantime::format_duration(self.state.policy.error_retry_interval);
        match action {
            Action::RequeueJobs { nodes } => {
                // The node keeps draining; its jobs end when they end.
                for id in &nodes {
                    self.post_once(
                        now,
                        format!(
                            "Could not requeue the jobs of node {id}: {}; waiting for them to end",
                            error.message
                        ),
                    );
                }
            }
            Action::Drain { nodes, .. } if node_problem && nodes.len() > 1 => {
                let indexes = self.indexes_of(&nodes);
                self.drain_singly.extend(indexes);
            }
            Action::Drain { nodes, .. } if node_problem => {
                for node in self.indexes_of(&nodes) {
                    if self.state.nodes[node].phase == NodePhase::Draining {
                        self.fail_node(
                            node,
                            format!("could not be drained: {}", error.message),
                            now,
                        );
                    }
                }
            }
            Action::StartBoot { step, boot, .. } if node_problem => {
                let nodes: Vec<usize> = self
                    .boot_of(step, boot)
                    .map(|record| self.indexes_of(&record.nodes))
                    .unwrap_or_default();
                for node in nodes {
                    if self.state.nodes[node].phase == NodePhase::Booting {
                        self.fail_node(
                            node,
                            format!("boot could not be started: {}", error.message),
                            now,
                        );
                    }
                }
            }
            Action::PowerRestart { nodes, operation } => {
                // A restart that cannot be issued at all gives the node
                // nothing more to wait for; a refused graceful restart is
                // followed by a forced one at its deadline.
                let hopeless = error.kind == ActionErrorKind::NotSupported
                    || operation == PowerOperation::ForceRestart;
                for node in self.indexes_of(&nodes) {
                    let id = self.state.nodes[node].id.clone();
                    self.post(
                        now,
                        format!("Node {id}: the power restart failed: {}", error.message),
                    );
                    let awaited = matches!(
                        self.state.nodes[node].phase,
                        NodePhase::Booting | NodePhase::Verifying
                    );
                    if hopeless && awaited {
                        self.state.nodes[node].escalation = None;
                        self.boot_failed(
                            node,
                            format!(
                                "did not come back after its boot, and could not be power-restarted: {}",
                                error.message
                            ),
                            now,
                        );
                    }
                }
            }
            Action::ObserveWorkload { .. } => {
                self.next_workload_poll = retry_at;
                self.post_once(now, format!("Could not read node states from the workload manager: {}; retrying every {retry_in}", error.message));
            }
            Action::ObserveBoot { step, boot, .. } => {
                self.next_boot_poll.insert((step, boot), retry_at);
                self.post_once(now, format!("Could not read the boot progress of step {step}: {}; retrying every {retry_in}", error.message));
            }
            Action::Resume { .. } | Action::Drain { .. } | Action::MarkFailed { .. } => {
                let ids: Vec<NodeId> = match &action {
                    Action::MarkFailed { nodes, .. } => {
                        nodes.iter().map(|(node, _)| node.clone()).collect()
                    }
                    Action::Resume { nodes, .. } | Action::Drain { nodes, .. } => nodes.clone(),
                    _ => Vec::new(),
                };
                for node in self.indexes_of(&ids) {
                    self.node_retry_at.insert(node, retry_at);
                }
                self.post_once(
                    now,
                    format!(
                        "{} failed: {}; retrying every {retry_in}",
                        capitalise(&action.describe()),
                        error.message
                    ),
                );
            }
            other => {
                self.session_retry_at = Some(retry_at);
                self.post_once(
                    now,
                    format!(
                        "{} failed: {}; retrying every {retry_in}",
                        capitalise(&other.describe()),
                        error.message
                    ),
                );
            }
        }
    }

    /// Moves the session forward as far as it can go without an answer, and
    /// queues the actions now owed.
    fn advance(&mut self, now: Timestamp) {
        self.judged_until = self.judged_until.max(now);
        // Refusals whose delay has passed are due now; forget them so they
        // are not reported as deadlines again.
        self.node_retry_at.retain(|_, at| *at > now);
        if self.session_retry_at.is_some_and(|at| at <= now) {
            self.session_retry_at = None;
        }
        match self.state.stage {
            Stage::Snapshot => {
                if self.state.started_at.is_none() {
                    // Stored UPDATING from its creation, as CRUS answered;
                    // its stream tells so when a controller takes it up.
                    self.state.started_at = Some(now);
                    self.dirty = true;
                    self.emit(
                        now,
                        EventKind::State {
                            state: SessionState::Updating,
                        },
                    );
                }
                if self.idle_at_session_level(now) {
                    let label = self.state.spec.starting_label.clone();
                    self.queue(Action::ReadStartingGroup { label });
                }
            }
            Stage::PrepareGroups => {
                if self.idle_at_session_level(now) {
                    self.queue(Action::PrepareGroups {
                        upgrading_label: self.state.spec.upgrading_label.clone(),
                        failed_label: self.state.spec.failed_label.clone(),
                    });
                }
            }
            Stage::Running => self.advance_running(now),
            Stage::Cleanup => {
                if self.idle_at_session_level(now) {
                    let label = self.state.spec.upgrading_label.clone();
                    self.queue(Action::ClearUpgradingGroup { label });
                }
            }
            Stage::Finished => {}
        }
    }

    fn advance_running(&mut self, now: Timestamp) {
        // Several passes: finishing a step may start the next one at once.
        loop {
            let active = self.census.active_steps();
            for &step in &active {
                self.check_boot_timeouts(now, step);
                self.check_drain_timeouts(now, step);
                if self.state.cancelled {
                    self.release_unbooted(now, step);
                }
                self.request_boots(now, step);
            }
            self.check_failure_budget(now);
            let mut finished_any = false;
            for &step in &active {
                finished_any |= self.finish_step_when_done(now, step);
            }
            self.check_failure_budget(now);
            if finished_any {
                continue;
            }
            // Steps started now have only draining nodes: they need no pass
            // over every active step, only their own drain-timeout check (a
            // zero timeout is due at once). Finishing nothing, they cannot
            // free room for more than `start_next_step` already took.
            let first_new = u32::try_from(self.state.steps.len()).unwrap_or(u32::MAX);
            while self.start_next_step(now) {}
            let started = u32::try_from(self.state.steps.len()).unwrap_or(u32::MAX);
            for step in first_new..started {
                self.check_drain_timeouts(now, step);
            }
            let pending_left = self.census.any_pending();
            if !self.census.any_active_step() && (self.state.cancelled || !pending_left) {
                self.state.stage = Stage::Cleanup;
                self.dirty = true;
                self.advance(now);
                return;
            }
            break;
        }
        self.queue_running_actions(now);
    }

    /// Halts the session once more nodes failed than the budget allows.
    fn check_failure_budget(&mut self, now: Timestamp) {
        if self.state.halted.is_some() || self.state.cancelled {
            return;
        }
        let Some(allowed) = self.state.policy.failure_budget(self.state.nodes.len()) else {
            return;
        };
        let failures = self.census.failures();
        if failures > allowed {
            self.halt(
                now,
                format!("{failures} nodes failed, more than the failure budget of {allowed}"),
            );
        }
    }

    fn halt(&mut self, now: Timestamp, reason: String) {
        self.post(now, format!("Halted: {reason}; nodes in flight finish, no new node is taken. Resume the session (with a larger max_failures) or delete it"));
        self.emit(
            now,
            EventKind::Halted {
                reason: reason.clone(),
            },
        );
        self.state.halted = Some(reason);
        self.dirty = true;
    }

    /// How many more nodes may be taken now.
    fn capacity(&self) -> usize {
        let step_size = self.step_size();
        let mut capacity = match self.state.policy.strategy {
            Strategy::Steps => {
                if self.census.any_active_step() {
                    0
                } else {
                    step_size
                }
            }
            Strategy::Continuous => step_size.saturating_sub(self.census.out_of_service()),
        };
        if let Some(canary) = self.state.policy.canary {
            match self.state.steps.first() {
                // The canary is the first step, alone.
                None => capacity = capacity.min(usize::try_from(canary.size).unwrap_or(usize::MAX)),
                Some(first) if !first.finished => capacity = 0,
                Some(_) => {}
            }
        }
        capacity
    }

    /// Takes the next pending nodes, as many as may be out of service, in the
    /// policy's order. Returns whether it took any.
    fn start_next_step(&mut self, now: Timestamp) -> bool {
        self.window_opens_at = None;
        if self.state.cancelled || self.state.paused || self.state.halted.is_some() {
            return false;
        }
        let capacity = self.capacity();
        if capacity == 0 {
            return false;
        }
        if !self.census.any_pending() {
            return false;
        }
        // Under `spread`, a node can only come from a domain with nothing out
        // of service: when there is none, nothing can be taken whatever the
        // drain costs, so they are not asked for either.
        let spread = self.state.policy.spread.is_some();
        if spread && self.census.free_domains() == 0 {
            return false;
        }
        if !window::any_open(&self.state.policy.windows, now) {
            self.window_opens_at = window::next_opening(&self.state.policy.windows, now);
            let message = match self.window_opens_at {
                Some(at) => format!(
                    "Outside the maintenance windows: the next nodes are taken when one opens ({at})"
                ),
                None => "Outside the maintenance windows, which never open: no node is taken"
                    .to_string(),
            };
            self.post_once(now, message);
            return false;
        }
        let by_cost = match self.state.policy.order {
            Order::Inventory => false,
            Order::DrainCost | Order::Topology => {
                let fresh = self
                    .pending_costs_at
                    .is_some_and(|at| now < at + self.pending_costs_max_age());
                if !fresh {
                    self.want_pending_costs = true;
                    return false;
                }
                true
            }
        };
        let census = &self.census;
        // Unobserved nodes rank last, so without costs the ranking is the
        // inventory order.
        let ranked = || -> Box<dyn Iterator<Item = usize> + '_> {
            if by_cost {
                Box::new(census.ranked())
            } else {
                Box::new(census.pending())
            }
        };
        let domain = |node: usize| census.domain_of(node);
        let taken = match (self.state.policy.spread, self.state.policy.align) {
            // The first node of each free domain in the ranking is that
            // domain's best: walking only those skips the nodes of busy
            // domains, which on a full machine are most of the ranking.
            (Some(_), _) => selection::spread(
                census.free_domains_best(),
                capacity,
                |&domain| census.domain_busy(domain),
                domain,
            ),
            (None, Some(_)) => {
                selection::align(ranked(), capacity, self.step_size(), domain, |&domain| {
                    census.pending_in_domain(domain)
                })
            }
            (None, None) => ranked().take(capacity).collect(),
        };
        if taken.is_empty() {
            return false;
        }
        let number = u32::try_from(self.state.steps.len()).unwrap_or(u32::MAX);
        self.census.step_started(number);
        for &node in &taken {
            self.state.nodes[node].step = Some(number);
            self.state.nodes[node].taken_at = Some(now);
            self.set_phase(node, NodePhase::Draining, now);
        }
        let ids = self.ids_of(&taken);
        let range = match ids.as_slice() {
            [only] => only.to_string(),
            _ if self.state.policy.order == Order::Inventory => {
                format!("{} … {}", ids[0], ids[ids.len() - 1])
            }
            _ => ids
                .iter()
                .map(NodeId::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        };
        let canary = if number == 0 && self.state.policy.canary.is_some() {
            " (canary)"
        } else {
            ""
        };
        self.post(
            now,
            format!(
                "Step {number}{canary} started: draining {} ({range})",
                count_nodes(taken.len())
            ),
        );
        self.emit(
            now,
            EventKind::StepStarted {
                step: number,
                nodes: ids,
            },
        );
        self.state.steps.push(Step {
            number,
            nodes: taken,
            started_at: now,
            boots: Vec::new(),
            finished: false,
        });
        true
    }

    /// Deals with the nodes of a step that did not come back in time: power
    /// restarts them when the policy escalates (gracefully, then by force),
    /// and retries or fails them once that is exhausted too.
    fn check_boot_timeouts(&mut self, now: Timestamp, step_number: u32) {
        let Some(step) = self.step(step_number) else {
            return;
        };
        let mut late = Vec::new();
        let mut observe_workload = false;
        let mut observe_boots = Vec::new();
        let awaited = self.nodes_by_boot(step, &[NodePhase::Booting, NodePhase::Verifying]);
        for (number, (boot, nodes)) in step.boots.iter().zip(awaited).enumerate() {
            let number = u32::try_from(number).unwrap_or(u32::MAX);
            for node in nodes {
                // A node soaking its health answered in time.
                if self.state.nodes[node].healthy_since.is_some() {
                    continue;
                }
                let deadline = self.come_back_deadline(node, boot);
                if now < deadline {
                    continue;
                }
                // Late only if an observation asked for at or after the
                // deadline still does not show it back: the deadline passing
                // while this process was slow to look (a busy store, a
                // storm of requests, a simulated clock running fast) says
                // nothing about the node.
                match self.seen_since(node, number, boot, deadline) {
                    Seen::Yes => late.push(node),
                    Seen::AskWorkload => observe_workload = true,
                    Seen::AskBoot => observe_boots.push((step_number, number)),
                }
            }
        }
        if observe_workload {
            self.next_workload_poll = self.next_workload_poll.min(now);
        }
        for boot in observe_boots {
            let due = self.next_boot_poll.entry(boot).or_insert(now);
            *due = (*due).min(now);
        }
        let mut graceful = Vec::new();
        let mut forced = Vec::new();
        for node in late {
            let next = match self.state.nodes[node].escalation {
                None if self.state.policy.escalate_power_cycle => {
                    Some(PowerOperation::GracefulRestart)
                }
                Some(Escalation {
                    operation: PowerOperation::GracefulRestart,
                    ..
                }) => Some(PowerOperation::ForceRestart),
                _ => None,
            };
            match next {
                Some(operation) => {
                    self.escalate(node, operation, now);
                    match operation {
                        PowerOperation::GracefulRestart => graceful.push(node),
                        _ => forced.push(node),
                    }
                }
                None => {
                    let reason = self.not_back_reason(node);
                    self.state.nodes[node].escalation = None;
                    self.boot_failed(node, reason, now);
                }
            }
        }
        for (nodes, operation) in [
            (graceful, PowerOperation::GracefulRestart),
            (forced, PowerOperation::ForceRestart),
        ] {
            if !nodes.is_empty() {
                self.queue(Action::PowerRestart {
                    nodes: self.ids_of(&nodes),
                    operation,
                });
            }
        }
    }

    /// Whether `node`, awaited after boot `number` of its step (`boot`), has
    /// been observed since `deadline`, and if not, what to ask.
    fn seen_since(&self, node: usize, number: u32, boot: &StepBoot, deadline: Timestamp) -> Seen {
        let step = self.state.nodes[node].step.unwrap_or(u32::MAX);
        let seen_at = match self.state.nodes[node].phase {
            // Its boot was never acknowledged: there is nothing to ask about,
            // and the deadline counts from when the boot was asked for.
            NodePhase::Booting if boot.handle.is_none() => return Seen::Yes,
            NodePhase::Booting => self.boot_seen_at.get(&(step, number)).copied(),
            _ => self.workload_seen_at,
        };
        match seen_at {
            Some(at) if at >= deadline => Seen::Yes,
            _ if self.state.nodes[node].phase == NodePhase::Booting => Seen::AskBoot,
            _ => Seen::AskWorkload,
        }
    }

    /// When `node`, awaited after `boot`, must be back: the boot timeout
    /// after the boot started, or after the power restart that followed.
    fn come_back_deadline(&self, node: usize, boot: &StepBoot) -> Timestamp {
        let policy = &self.state.policy;
        match self.state.nodes[node].escalation {
            None => boot.requested_at + policy.boot_timeout,
            Some(Escalation {
                operation: PowerOperation::GracefulRestart,
                at,
            }) => at + policy.graceful_restart_grace(),
            Some(Escalation { at, .. }) => at + policy.boot_timeout,
        }
    }

    /// Records a power restart of `node` (the caller queues it) and tells why.
    fn escalate(&mut self, node: usize, operation: PowerOperation, now: Timestamp) {
        let record = &mut self.state.nodes[node];
        let first = record.escalation.is_none();
        record.escalation = Some(Escalation { operation, at: now });
        record.power_restarts += 1;
        let id = record.id.clone();
        self.dirty = true;
        let policy = &self.state.policy;
        let text = if first {
            format!(
                "Node {id} did not come back within {} of its boot starting; restarting it gracefully through power control (by force if it is not back within {})",
                humantime::format_duration(policy.boot_timeout),
                humantime::format_duration(policy.graceful_restart_grace()),
            )
        } else {
            format!(
                "Node {id} did not come back within {} of a graceful restart; restarting it by force",
                humantime::format_duration(policy.graceful_restart_grace()),
            )
        };
        self.post(now, text);
    }

    /// Why a node that is still not back has failed its boot.
    fn not_back_reason(&self, node: usize) -> String {
        let policy = &self.state.policy;
        let record = &self.state.nodes[node];
        let mut reason = match record.escalation {
            Some(_) => format!(
                "did not come back after its boot, nor within {} of a graceful and a forced power restart",
                humantime::format_duration(policy.boot_timeout)
            ),
            None => format!(
                "did not come back within {} of its boot starting",
                humantime::format_duration(policy.boot_timeout)
            ),
        };
        // A node that booted but failed its health checks: say which.
        if record.phase == NodePhase::Verifying
            && let Some(last) = &record.reason
        {
            reason = format!("{reason} ({last})");
        }
        reason
    }

    /// Applies `on_drain_timeout` to nodes draining for longer than `drain_timeout`.
    fn check_drain_timeouts(&mut self, now: Timestamp, step_number: u32) {
        let Some(timeout) = self.state.policy.drain_timeout else {
            return;
        };
        let action = self.state.policy.on_drain_timeout;
        if action == OnDrainTimeout::Wait {
            return;
        }
        let Some(step) = self.step(step_number) else {
            return;
        };
        let late: Vec<usize> = self
            .unsettled_in(step.number, &[NodePhase::Draining])
            .into_iter()
            .filter(|&node| now >= self.state.nodes[node].since + timeout)
            .collect();
        let waited = humantime::format_duration(timeout);
        for node in late {
            let id = self.state.nodes[node].id.clone();
            match action {
                OnDrainTimeout::Skip => {
                    self.state.nodes[node].reason = Some(format!(
                        "did not drain within {waited}; returned to service without upgrade"
                    ));
                    self.post(
                        now,
                        format!("Node {id} did not drain within {waited}: skipped, returned to service without upgrade"),
                    );
                    self.set_phase(node, NodePhase::Releasing, now);
                }
                OnDrainTimeout::Force => {
                    self.state.nodes[node].forced = true;
                    self.post(
                        now,
                        format!("WARNING: node {id} did not drain within {waited}: rebooting it with its jobs still running (on_drain_timeout: force)"),
                    );
                    self.set_phase(node, NodePhase::Drained, now);
                }
                OnDrainTimeout::Requeue => {
                    if self.requeued.insert(node) {
                        self.post(
                            now,
                            format!("Node {id} did not drain within {waited}: requeueing its jobs"),
                        );
                        self.queue(Action::RequeueJobs { nodes: vec![id] });
                    }
                }
                OnDrainTimeout::Wait => {}
            }
        }
    }

    fn release_unbooted(&mut self, now: Timestamp, step_number: u32) {
        let unbooted = self.unsettled_in(step_number, &[NodePhase::Draining, NodePhase::Drained]);
        for node in unbooted {
            self.state.nodes[node].reason =
                Some("session deleted before the node was booted".to_string());
            self.set_phase(node, NodePhase::Releasing, now);
        }
    }

    /// Boots a step's drained nodes: under CRUS's barrier once none of the
    /// step's nodes is still draining; in a sliding window as soon as they drain.
    fn request_boots(&mut self, now: Timestamp, step_number: u32) {
        let Some(step) = self.step(step_number) else {
            return;
        };
        if self.state.policy.strategy == Strategy::Steps
            && self
                .census
                .unsettled_count(step_number, &[NodePhase::Draining])
                > 0
        {
            return;
        }
        let drained = self.unsettled_in(step_number, &[NodePhase::Drained]);
        if drained.is_empty() {
            return;
        }
        let number = step.boots.len();
        let key = if number == 0 {
            format!("crus-{}-step-{step_number}", self.state.upgrade_id)
        } else {
            format!(
                "crus-{}-step-{step_number}-boot-{number}",
                self.state.upgrade_id
            )
        };
        self.census
            .boot_requested(&drained, u32::try_from(number).unwrap_or(u32::MAX));
        for &node in &drained {
            self.state.nodes[node].attempts += 1;
            self.state.nodes[node].healthy_since = None;
            self.set_phase(node, NodePhase::Booting, now);
        }
        let nodes = self.ids_of(&drained);
        self.post(
            now,
            format!(
                "Step {step_number}: {} drained; booting {} with template '{}'",
                count_nodes(drained.len()),
                if drained.len() == 1 { "it" } else { "them" },
                self.state.spec.upgrade_template_id
            ),
        );
        if let Some(step) = self.step_mut(step_number) {
            step.boots.push(StepBoot {
                key,
                nodes,
                handle: None,
                requested_at: now,
            });
        }
    }

    /// Marks the step finished when every node of it has. Returns whether it did.
    fn finish_step_when_done(&mut self, now: Timestamp, step_number: u32) -> bool {
        let Some(step) = self.step(step_number) else {
            return false;
        };
        if step.finished || !self.census.settled(step_number) {
            return false;
        }
        let count = |phase: NodePhase| {
            step.nodes
                .iter()
                .filter(|&&node| self.state.nodes[node].phase == phase)
                .count()
        };
        let (upgraded, failed, skipped) = (
            count(NodePhase::Done),
            count(NodePhase::Failed),
            count(NodePhase::Skipped),
        );
        let boots: Vec<(u32, u32)> = (0..step.boots.len())
            .map(|boot| (step_number, u32::try_from(boot).unwrap_or(u32::MAX)))
            .collect();
        let mut summary = format!(
            "Step {step_number} finished: {} upgraded",
            count_nodes(upgraded)
        );
        if failed > 0 {
            summary.push_str(&format!(", {failed} failed"));
        }
        if skipped > 0 {
            summary.push_str(&format!(", {skipped} returned to service without upgrade"));
        }
        if let Some(step) = self.step_mut(step_number) {
            step.finished = true;
        }
        self.census.step_finished(step_number);
        for boot in boots {
            self.next_boot_poll.remove(&boot);
        }
        self.post(now, summary);
        self.emit(
            now,
            EventKind::StepFinished {
                step: step_number,
                upgraded,
                failed,
                skipped,
            },
        );
        if step_number == 0
            && let Some(canary) = self.state.policy.canary
            && !self.state.cancelled
        {
            let pending_left = self.census.any_pending();
            if failed > 0 && self.state.halted.is_none() {
                self.halt(
                    now,
                    format!(
                        "{failed} of the canary's {} failed",
                        count_nodes(step_nodes_len(&self.state, 0))
                    ),
                );
            } else if canary.pause_after && pending_left && !self.state.paused {
                self.state.paused = true;
                self.dirty = true;
                let reason = "canary step finished".to_string();
                self.post(
                    now,
                    format!("Paused: {reason}; resume the session to upgrade the rest"),
                );
                self.emit(now, EventKind::Paused { reason });
            } else if pending_left {
                self.post(now, "Canary step passed; continuing".to_string());
            }
        }
        true
    }

    /// Queues what the running nodes are owed: drains, one observation of
    /// the workload manager, boots and their observation, resumes, failures.
    fn queue_running_actions(&mut self, now: Timestamp) {
        let upgrading_label = self.state.spec.upgrading_label.clone();
        let in_flight_nodes = self.nodes_in_flight();
        let due = |rollout: &Self, node: usize| {
            !in_flight_nodes.contains(&node)
                && rollout.node_retry_at.get(&node).is_none_or(|&at| at <= now)
        };
        let to_drain: Vec<usize> = self
            .drain_owed
            .iter()
            .copied()
            .filter(|&node| due(self, node))
            .collect();
        let (singly, together): (Vec<usize>, Vec<usize>) = to_drain
            .into_iter()
            .partition(|node| self.drain_singly.contains(node));
        let batches = std::iter::once(together)
            .chain(singly.into_iter().map(|node| vec![node]))
            .filter(|batch| !batch.is_empty());
        for batch in batches.collect::<Vec<_>>() {
            self.queue(Action::Drain {
                upgrading_label: upgrading_label.clone(),
                nodes: self.ids_of(&batch),
                reason: self.drain_reason(),
            });
        }

        // Gathered only when a poll is due: most passes are not.
        let mut watched = Vec::new();
        if self.next_workload_poll <= now
            && !self.is_in_flight(|action| matches!(action, Action::ObserveWorkload { .. }))
        {
            watched = self.watched_nodes();
            if self.want_pending_costs {
                watched.extend(self.census.pending());
            }
        }
        if !watched.is_empty() {
            let probe = self.health_check().map(|check| {
                let verifying: Vec<usize> = watched
                    .iter()
                    .copied()
                    .filter(|&node| self.state.nodes[node].phase == NodePhase::Verifying)
                    .collect();
                (check, self.ids_of(&verifying))
            });
            let nodes = self.ids_of(&watched);
            self.queue_observation(now, Action::ObserveWorkload { nodes, probe });
        }

        for action in self.boot_actions_due(now) {
            if matches!(action, Action::StartBoot { .. }) {
                self.session_retry_at = None;
            }
            self.queue_observation(now, action);
        }

        let mut to_resume: Vec<usize> = self
            .census
            .nodes_in(&[NodePhase::Resuming, NodePhase::Releasing])
            .filter(|&node| due(self, node))
            .collect();
        to_resume.sort_unstable();
        if !to_resume.is_empty() {
            self.queue(Action::Resume {
                upgrading_label: upgrading_label.clone(),
                nodes: self.ids_of(&to_resume),
            });
        }

        let to_fail: Vec<(NodeId, String)> = self
            .census
            .nodes_in(&[NodePhase::Failing])
            .filter(|&node| due(self, node))
            .map(|node| {
                let record = &self.state.nodes[node];
                (record.id.clone(), record.reason.clone().unwrap_or_default())
            })
            .collect();
        if !to_fail.is_empty() {
            self.queue(Action::MarkFailed {
                upgrading_label,
                failed_label: self.state.spec.failed_label.clone(),
                nodes: to_fail,
            });
        }
    }

    /// The boots of active steps with nodes still booting that are owed an
    /// action: starting (unless a refusal's delay runs), or observing once
    /// their poll is due.
    fn boot_actions_due(&self, now: Timestamp) -> Vec<Action> {
        let may_start = self.session_retry_at.is_none_or(|at| at <= now);
        let mut actions = Vec::new();
        for step in self.active_steps() {
            let booting = self.nodes_by_boot(step, &[NodePhase::Booting]);
            for (number, (boot, nodes)) in step.boots.iter().zip(booting).enumerate() {
                let number = u32::try_from(number).unwrap_or(u32::MAX);
                if nodes.is_empty() || self.boot_in_flight(step.number, number) {
                    continue;
                }
                match &boot.handle {
                    None if may_start => actions.push(Action::StartBoot {
                        step: step.number,
                        boot: number,
                        request: BootRequest {
                            key: boot.key.clone(),
                            template: self.state.spec.upgrade_template_id.clone(),
                            nodes: boot.nodes.clone(),
                        },
                    }),
                    Some(handle) if self.boot_poll_due(step.number, number) <= now => {
                        actions.push(Action::ObserveBoot {
                            step: step.number,
                            boot: number,
                            handle: handle.clone(),
                        });
                    }
                    _ => {}
                }
            }
        }
        actions
    }

    /// Nodes of active steps whose workload state is being waited for.
    fn watched_nodes(&self) -> Vec<usize> {
        let mut watched = Vec::new();
        for step in self.active_steps() {
            watched.extend(
                self.unsettled_in(step.number, &[NodePhase::Draining, NodePhase::Verifying]),
            );
        }
        watched
    }

    /// The earliest time a draining node reaches `drain_timeout`, when a
    /// policy acts on it.
    fn drain_deadline(&self) -> Option<Timestamp> {
        let timeout = self.state.policy.drain_timeout?;
        if self.state.policy.on_drain_timeout == OnDrainTimeout::Wait {
            return None;
        }
        // Only nodes of active steps drain.
        self.census
            .active_steps()
            .into_iter()
            .flat_map(|step| self.census.unsettled(step))
            .filter(|node| {
                self.state.nodes[*node].phase == NodePhase::Draining
                    && !self.requeued.contains(node)
            })
            .map(|node| self.state.nodes[node].since + timeout)
            .min()
    }

    /// The nodes of `step` in `phases`, grouped by their latest boot: entry
    /// `b` holds those whose latest boot is boot `b` of the step. One pass
    /// over the step, however many boots it has (a `continuous` step gets a
    /// boot each time some of its nodes drain).
    fn nodes_by_boot(&self, step: &Step, phases: &[NodePhase]) -> Vec<Vec<usize>> {
        if self.census.unsettled_count(step.number, phases) == 0 {
            return Vec::new();
        }
        let mut by_boot = vec![Vec::new(); step.boots.len()];
        for node in self.unsettled_in(step.number, phases) {
            if self.state.nodes[node].step != Some(step.number) {
                continue;
            }
            let latest = self.census.latest_boot(node);
            if let Some(nodes) = latest.and_then(|boot| by_boot.get_mut(boot as usize)) {
                nodes.push(node);
            }
        }
        by_boot
    }

    /// The steps not finished, oldest first.
    fn active_steps(&self) -> impl Iterator<Item = &Step> + '_ {
        self.census
            .active_steps()
            .into_iter()
            .filter_map(|number| self.step(number))
    }

    fn boot_in_flight(&self, step: u32, boot: u32) -> bool {
        self.is_in_flight(|action| {
            matches!(action,
                Action::StartBoot { step: s, boot: b, .. } | Action::ObserveBoot { step: s, boot: b, .. }
                if *s == step && *b == boot)
        })
    }

    fn finish(&mut self, now: Timestamp) {
        if self.state.stage == Stage::Finished {
            return;
        }
        self.state.stage = Stage::Finished;
        self.state.completed = true;
        self.state.finished_at = Some(now);
        self.dirty = true;
        self.window_opens_at = None;
        let upgraded = self.state.count(NodePhase::Done);
        let failed = self.state.count(NodePhase::Failed);
        if self.state.cancelled {
            self.post(
                now,
                format!(
                    "Upgrade session deleted: {} upgraded, {failed} failed before it stopped",
                    count_nodes(upgraded)
                ),
            );
        } else {
            let mut summary = format!(
                "{upgraded} of {} upgraded",
                count_nodes(self.state.nodes.len())
            );
            if failed > 0 {
                summary.push_str(&format!(
                    ", {failed} failed (in group '{}')",
                    self.state.spec.failed_label
                ));
            }
            self.post(now, summary);
            // CRUS's last message, word for word: clients match it.
            self.post(now, COMPLETED_MESSAGE.to_string());
            self.set_state(SessionState::Ready, now);
        }
    }

    fn fail_node(&mut self, node: usize, reason: String, now: Timestamp) {
        let id = self.state.nodes[node].id.clone();
        self.post(now, format!("Node {id} failed: {reason}"));
        self.state.nodes[node].reason = Some(reason);
        self.set_phase(node, NodePhase::Failing, now);
    }

    fn set_phase(&mut self, node: usize, phase: NodePhase, now: Timestamp) {
        let record = &mut self.state.nodes[node];
        if record.phase == phase {
            return;
        }
        let from = record.phase;
        record.phase = phase;
        record.since = now;
        self.census.phase_changed(node, record.step, from, phase);
        if phase == NodePhase::Draining {
            self.drain_owed.insert(node);
        } else {
            self.drain_owed.remove(&node);
        }
        if !matches!(phase, NodePhase::Booting | NodePhase::Verifying) {
            record.escalation = None;
        }
        if phase.is_terminal() {
            record.finished_at = Some(now);
        }
        let reason = matches!(
            phase,
            NodePhase::Failing | NodePhase::Failed | NodePhase::Releasing | NodePhase::Skipped
        )
        .then(|| record.reason.clone())
        .flatten();
        let id = record.id.clone();
        self.dirty = true;
        self.emit(
            now,
            EventKind::NodePhase {
                node: id,
                from,
                to: phase,
                reason,
            },
        );
    }

    fn set_state(&mut self, state: SessionState, now: Timestamp) {
        if self.state.state != state {
            self.state.state = state;
            self.dirty = true;
            self.emit(now, EventKind::State { state });
        }
    }

    fn emit(&mut self, at: Timestamp, kind: EventKind) {
        self.events.push(RolloutEvent {
            upgrade_id: self.state.upgrade_id,
            at,
            kind,
        });
    }

    fn post(&mut self, now: Timestamp, message: String) {
        tracing::info!(upgrade_id = %self.state.upgrade_id, "{message}");
        self.emit(
            now,
            EventKind::Message {
                text: message.clone(),
            },
        );
        messages::push(
            &mut self.state.messages,
            &mut self.state.messages_folded,
            message,
        );
        self.dirty = true;
    }

    /// Posts `message` unless the same message was posted already (repeated
    /// errors would otherwise flood the list, as in CRUS).
    fn post_once(&mut self, now: Timestamp, message: String) {
        if !self.state.messages.contains(&message) {
            self.post(now, message);
        }
    }

    fn queue(&mut self, action: Action) -> ActionId {
        let id = ActionId(self.next_action_id);
        self.next_action_id += 1;
        self.outbox.push_back((id, action));
        id
    }

    /// Queues an observation, noting when it was asked for.
    fn queue_observation(&mut self, now: Timestamp, action: Action) {
        let id = self.queue(action);
        self.asked_at.insert(id, now);
    }

    /// No session-level action queued or in flight, and any refusal has waited out its delay.
    fn idle_at_session_level(&self, now: Timestamp) -> bool {
        self.outbox.is_empty()
            && self.in_flight.is_empty()
            && self.session_retry_at.is_none_or(|at| at <= now)
    }

    fn is_in_flight(&self, predicate: impl Fn(&Action) -> bool) -> bool {
        self.in_flight
            .values()
            .chain(self.outbox.iter().map(|(_, action)| action))
            .any(predicate)
    }

    /// Nodes named by a queued or in-flight drain, resume or mark-failed.
    fn nodes_in_flight(&self) -> BTreeSet<usize> {
        let mut nodes = BTreeSet::new();
        for action in self
            .in_flight
            .values()
            .chain(self.outbox.iter().map(|(_, action)| action))
        {
            let named: Vec<&NodeId> = match action {
                Action::Drain { nodes, .. } | Action::Resume { nodes, .. } => {
                    nodes.iter().collect()
                }
                Action::MarkFailed { nodes, .. } => nodes.iter().map(|(node, _)| node).collect(),
                _ => continue,
            };
            nodes.extend(
                named
                    .into_iter()
                    .filter_map(|id| self.index.get(id).copied()),
            );
        }
        nodes
    }

    fn boot_poll_due(&self, step: u32, boot: u32) -> Timestamp {
        self.next_boot_poll
            .get(&(step, boot))
            .copied()
            .unwrap_or(Timestamp::EPOCH)
    }

    fn boot_of(&self, step: u32, boot: u32) -> Option<&StepBoot> {
        self.step(step)?.boots.get(usize::try_from(boot).ok()?)
    }

    fn boot_mut(&mut self, step: u32, boot: u32) -> Option<&mut StepBoot> {
        self.step_mut(step)?
            .boots
            .get_mut(usize::try_from(boot).ok()?)
    }

    fn step(&self, number: u32) -> Option<&Step> {
        self.state.steps.get(usize::try_from(number).ok()?)
    }

    fn step_mut(&mut self, number: u32) -> Option<&mut Step> {
        self.state.steps.get_mut(usize::try_from(number).ok()?)
    }

    /// How long the pending nodes' drain costs are used before they are
    /// observed again: a poll interval, or longer on a large machine, so that
    /// asking about every pending node costs at most about one node per
    /// [`PENDING_COST_SPACING`] (100,000 pending nodes: every 8 minutes, not
    /// every 10 seconds).
    fn pending_costs_max_age(&self) -> std::time::Duration {
        let pending = u32::try_from(self.census.count(NodePhase::Pending)).unwrap_or(u32::MAX);
        self.state
            .policy
            .poll_interval
            .max(PENDING_COST_SPACING.saturating_mul(pending))
    }

    /// The reason this session's drains give the workload manager.
    fn drain_reason(&self) -> String {
        format!("crus:{}", self.state.upgrade_id)
    }

    fn step_size(&self) -> usize {
        usize::try_from(self.state.spec.upgrade_step_size.max(1)).unwrap_or(usize::MAX)
    }

    fn indexes_of(&self, ids: &[NodeId]) -> Vec<usize> {
        ids.iter()
            .filter_map(|id| self.index.get(id).copied())
            .collect()
    }

    /// The nodes of active step `step` in `phases`, which must be phases of
    /// nodes out of service, in inventory order.
    fn unsettled_in(&self, step: u32, phases: &[NodePhase]) -> Vec<usize> {
        if self.census.unsettled_count(step, phases) == 0 {
            return Vec::new();
        }
        self.census
            .unsettled(step)
            .filter(|&node| phases.contains(&self.state.nodes[node].phase))
            .collect()
    }

    fn ids_of(&self, indexes: &[usize]) -> Vec<NodeId> {
        indexes
            .iter()
            .map(|&node| self.state.nodes[node].id.clone())
            .collect()
    }
}

/// Whether a node past its come-back deadline has been observed since.
enum Seen {
    /// Yes: its state now is its verdict.
    Yes,
    /// No: the workload manager must be asked again first.
    AskWorkload,
    /// No: its boot's progress must be asked for again first.
    AskBoot,
}

/// The CRUS view of a rollout state.
pub fn status_of(state: &RolloutState) -> SessionStatus {
    let spec = &state.spec;
    SessionStatus {
        api_version: state.api_version.clone(),
        completed: state.completed,
        failed_label: spec.failed_label.clone(),
        kind: KIND.to_string(),
        messages: state.messages.clone(),
        starting_label: spec.starting_label.clone(),
        state: state.state.served(),
        upgrade_id: state.upgrade_id,
        upgrade_step_size: spec.upgrade_step_size,
        upgrade_template_id: spec.upgrade_template_id.clone(),
        upgrading_label: spec.upgrading_label.clone(),
        workload_manager_type: spec.workload_manager_type.clone(),
        nodes: node_counts(state),
        phase: Some(phase_of(state)),
        policy: Some(state.policy.clone()),
        created_at: Some(state.created_at),
        started_at: state.started_at,
        finished_at: state.finished_at,
    }
}

/// Where a session stands, beyond CRUS's `state`.
pub fn phase_of(state: &RolloutState) -> SessionPhase {
    if state.completed {
        if state.count(NodePhase::Failed) > 0 {
            SessionPhase::Failed
        } else {
            SessionPhase::Succeeded
        }
    } else if state.cancelled {
        SessionPhase::Cancelling
    } else if state.halted.is_some() {
        SessionPhase::Halted
    } else if state.paused {
        SessionPhase::Paused
    } else {
        SessionPhase::Running
    }
}

fn step_nodes_len(state: &RolloutState, step: usize) -> usize {
    state.steps.get(step).map_or(0, |step| step.nodes.len())
}

/// Nodes by phase, with `total`; `None` before the snapshot is taken.
fn node_counts(state: &RolloutState) -> Option<std::collections::BTreeMap<String, u64>> {
    if state.nodes.is_empty() {
        return None;
    }
    let mut counts: std::collections::BTreeMap<String, u64> = NodePhase::ALL
        .iter()
        .map(|phase| (phase.as_str().to_string(), 0))
        .collect();
    for node in &state.nodes {
        *counts.entry(node.phase.as_str().to_string()).or_default() += 1;
    }
    counts.insert("total".to_string(), state.nodes.len() as u64);
    Some(counts)
}

#[cfg(test)]
mod tests;

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
