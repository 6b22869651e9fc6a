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
mod policy;
mod state;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use uuid::Uuid;

pub use action::{Action, ActionError, ActionErrorKind, ActionId, ActionOutput};
pub use policy::RolloutPolicy;
pub use state::{NodePhase, NodeRecord, RolloutState, Stage, Step, StepBoot};

use crate::node::NodeId;
use crate::plan;
use crate::ports::{BootRequest, NodeBootState, NodeBootStatus, WorkloadNode, WorkloadState};
use crate::session::{API_VERSION, KIND, SessionSpec, SessionState, SessionStatus};
use crate::time::Timestamp;
use action::count_nodes;

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
    /// Nodes whose drain was acknowledged in this process's lifetime. Not
    /// persisted: after a restart every draining node is drained again, which
    /// is harmless.
    drain_acknowledged: BTreeSet<usize>,
    /// Nodes to drain one by one, because a drain of a batch holding them was
    /// refused: only the node the workload manager rejects then fails.
    drain_singly: BTreeSet<usize>,
    /// Nodes whose last resume or mark-failed was refused, and when to try again.
    node_retry_at: BTreeMap<usize, Timestamp>,
    /// When a refused session-level action (or step boot) may be tried again.
    session_retry_at: Option<Timestamp>,
    /// When to next ask the workload manager about draining and verifying nodes.
    next_workload_poll: Timestamp,
    /// When to next ask the boot orchestrator about each step's boot.
    next_boot_poll: BTreeMap<u32, Timestamp>,
    /// Whether the persisted state changed since [`Rollout::take_dirty`] last said so.
    dirty: bool,
}

impl Rollout {
    /// A new session, in state `CREATED`, that will upgrade the nodes of `spec.starting_label`.
    pub fn new(upgrade_id: Uuid, spec: SessionSpec, policy: RolloutPolicy, now: Timestamp) -> Self {
        Self::resume(RolloutState {
            upgrade_id,
            spec,
            policy,
            api_version: API_VERSION.to_string(),
            state: SessionState::Created,
            completed: false,
            messages: Vec::new(),
            stage: Stage::Snapshot,
            nodes: Vec::new(),
            steps: Vec::new(),
            cancelled: false,
            created_at: now,
            started_at: None,
            finished_at: None,
        })
    }

    /// Carries on from a persisted state (after a restart, or on another host).
    /// Whatever was in flight is asked for again.
    pub fn resume(state: RolloutState) -> Self {
        let index = state
            .nodes
            .iter()
            .enumerate()
            .map(|(position, node)| (node.id.clone(), position))
            .collect();
        Rollout {
            state,
            index,
            outbox: VecDeque::new(),
            in_flight: BTreeMap::new(),
            next_action_id: 0,
            drain_acknowledged: BTreeSet::new(),
            drain_singly: BTreeSet::new(),
            node_retry_at: BTreeMap::new(),
            session_retry_at: None,
            next_workload_poll: Timestamp::EPOCH,
            next_boot_poll: BTreeMap::new(),
            dirty: true,
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
                if let Some(step) = self.state.active_step() {
                    let has = |phases: &[NodePhase]| {
                        step.nodes
                            .iter()
                            .any(|&node| phases.contains(&self.state.nodes[node].phase))
                    };
                    let observing_workload = self
                        .is_in_flight(|action| matches!(action, Action::ObserveWorkload { .. }));
                    if has(&[NodePhase::Draining, NodePhase::Verifying]) && !observing_workload {
                        deadlines.push(self.next_workload_poll);
                    }
                    if let Some(boot) = &step.boot {
                        if has(&[NodePhase::Booting, NodePhase::Verifying]) {
                            deadlines.push(boot.requested_at + self.state.policy.boot_timeout);
                        }
                        let boot_in_flight = self.is_in_flight(|action| {
                            matches!(action, Action::StartBoot { step: number, .. } | Action::ObserveBoot { step: number, .. } if *number == step.number)
                        });
                        if !boot_in_flight {
                            match boot.handle {
                                Some(_) if has(&[NodePhase::Booting]) => {
                                    deadlines.push(self.boot_poll_due(step.number));
                                }
                                None if has(&[NodePhase::Booting]) => {
                                    deadlines.extend(self.session_retry_at)
                                }
                                _ => {}
                            }
                        }
                    }
                }
                deadlines.extend(self.node_retry_at.values().copied());
            }
            Stage::Finished => {}
        }
        deadlines.into_iter().min()
    }

    /// Lets time pass: checks timeouts and asks for whatever is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.advance(now);
    }

    /// Deletion requested: take no new node, return nodes not yet booted to
    /// service, let boots in flight finish, then empty the upgrading group.
    pub fn cancel(&mut self, now: Timestamp) {
        if self.state.cancelled {
            return;
        }
        self.state.cancelled = true;
        if !self.state.completed {
            self.state.state = SessionState::Deleting;
            self.post("Deletion requested: no new node will be taken; nodes not yet booted are returned to service".to_string());
        }
        match self.state.stage {
            Stage::Snapshot => self.finish(now),
            Stage::PrepareGroups => self.state.stage = Stage::Cleanup,
            Stage::Running | Stage::Cleanup | Stage::Finished => {}
        }
        self.dirty = true;
        self.advance(now);
    }

    /// The answer to action `id`. Retryable errors never get here: the
    /// controller retries them itself.
    pub fn handle_outcome(
        &mut self,
        now: Timestamp,
        id: ActionId,
        outcome: Result<ActionOutput, ActionError>,
    ) {
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
                    self.post(format!(
                        "Cleared node group '{failed_label}' ({} from an earlier session)",
                        count_nodes(cleared_failed.len())
                    ));
                }
                if !cleared_upgrading.is_empty() {
                    self.post(format!(
                        "Cleared node group '{upgrading_label}' ({})",
                        count_nodes(cleared_upgrading.len())
                    ));
                }
                if self.state.stage == Stage::PrepareGroups {
                    self.state.stage = Stage::Running;
                    self.dirty = true;
                }
            }
            (Action::Drain { nodes, .. }, Ok(_)) => {
                let indexes = self.indexes_of(&nodes);
                self.drain_acknowledged.extend(indexes);
            }
            (Action::ObserveWorkload { .. }, Ok(ActionOutput::Workload(observed))) => {
                self.next_workload_poll = now + self.state.policy.poll_interval;
                self.observe_workload(now, &observed);
            }
            (Action::StartBoot { step, request }, Ok(ActionOutput::BootStarted(handle))) => {
                if let Some(boot) = self.step_mut(step).and_then(|step| step.boot.as_mut()) {
                    boot.handle = Some(handle.clone());
                    self.dirty = true;
                    self.next_boot_poll
                        .insert(step, now + self.state.policy.poll_interval);
                    self.post(format!(
                        "Step {step}: boot of {} started with template '{}' (boot {})",
                        count_nodes(request.nodes.len()),
                        request.template,
                        handle.id
                    ));
                }
            }
            (Action::ObserveBoot { step, .. }, Ok(ActionOutput::BootStatus(statuses))) => {
                self.next_boot_poll
                    .insert(step, now + self.state.policy.poll_interval);
                self.observe_boot(now, &statuses);
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
        self.advance(now);
    }

    /// Tells that an action hit a retryable error and will be tried again, so
    /// the session's messages say why it is not moving (once per distinct error).
    pub fn note_retry(&mut self, action: &Action, error: &str) {
        self.post_once(format!(
            "{} failed, retrying: {error}",
            capitalise(&action.describe())
        ));
    }

    fn take_snapshot(&mut self, now: Timestamp, label: &str, members: Vec<NodeId>) {
        if self.state.stage != Stage::Snapshot {
            return;
        }
        let ordered = plan::inventory_order(members);
        self.state.nodes = ordered
            .into_iter()
            .map(|id| NodeRecord {
                id,
                phase: NodePhase::Pending,
                since: now,
                step: None,
                reason: None,
            })
            .collect();
        self.index = self
            .state
            .nodes
            .iter()
            .enumerate()
            .map(|(position, node)| (node.id.clone(), position))
            .collect();
        self.dirty = true;
        if self.state.nodes.is_empty() {
            self.post(format!(
                "Group '{label}' has no members: nothing to upgrade"
            ));
            self.state.stage = Stage::Cleanup;
        } else {
            let steps = self.state.nodes.len().div_ceil(self.step_size());
            self.post(format!(
                "Upgrading {} of group '{label}' in {steps} step{} of at most {}",
                count_nodes(self.state.nodes.len()),
                if steps == 1 { "" } else { "s" },
                self.step_size()
            ));
            self.state.stage = Stage::PrepareGroups;
        }
    }

    fn observe_workload(&mut self, now: Timestamp, observed: &[WorkloadNode]) {
        for report in observed {
            let Some(&node) = self.index.get(&report.node) else {
                continue;
            };
            match (self.state.nodes[node].phase, report.state) {
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
                    self.drain_acknowledged.remove(&node);
                }
                (
                    NodePhase::Verifying,
                    WorkloadState::Drained | WorkloadState::Idle | WorkloadState::Allocated,
                ) if report.responding => {
                    self.set_phase(node, NodePhase::Resuming, now);
                }
                _ => {}
            }
        }
    }

    fn observe_boot(&mut self, now: Timestamp, statuses: &[NodeBootStatus]) {
        for status in statuses {
            let Some(&node) = self.index.get(&status.node) else {
                continue;
            };
            if self.state.nodes[node].phase != NodePhase::Booting {
                continue;
            }
            match &status.state {
                NodeBootState::InProgress => {}
                NodeBootState::Ok => self.set_phase(node, NodePhase::Verifying, now),
                NodeBootState::Failed { reason } => {
                    self.fail_node(node, format!("boot failed: {reason}"), now);
                }
            }
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
            Action::StartBoot { step, .. } if node_problem => {
                let nodes: Vec<usize> = self
                    .step_mut(step)
                    .map(|step| step.nodes.clone())
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
            Action::ObserveWorkload { .. } => {
                self.next_workload_poll = retry_at;
                self.post_once(format!("Could not read node states from the workload manager: {}; retrying every {retry_in}", error.message));
            }
            Action::ObserveBoot { step, .. } => {
                self.next_boot_poll.insert(step, retry_at);
                self.post_once(format!("Could not read the boot progress of step {step}: {}; retrying every {retry_in}", error.message));
            }
            Action::Resume { ref nodes, .. } | Action::Drain { ref nodes, .. } => {
                for node in self.indexes_of(nodes) {
                    self.node_retry_at.insert(node, retry_at);
                }
                self.post_once(format!(
                    "{} failed: {}; retrying every {retry_in}",
                    capitalise(&action.describe()),
                    error.message
                ));
            }
            Action::MarkFailed { ref nodes, .. } => {
                let ids: Vec<NodeId> = nodes.iter().map(|(node, _)| node.clone()).collect();
                for node in self.indexes_of(&ids) {
                    self.node_retry_at.insert(node, retry_at);
                }
                self.post_once(format!(
                    "{} failed: {}; retrying every {retry_in}",
                    capitalise(&action.describe()),
                    error.message
                ));
            }
            other => {
                self.session_retry_at = Some(retry_at);
                self.post_once(format!(
                    "{} failed: {}; retrying every {retry_in}",
                    capitalise(&other.describe()),
                    error.message
                ));
            }
        }
    }

    /// Moves the session forward as far as it can go without an answer, and
    /// queues the actions now owed.
    fn advance(&mut self, now: Timestamp) {
        // Refusals whose delay has passed are due now; forget them so they
        // are not reported as deadlines again.
        self.node_retry_at.retain(|_, at| *at > now);
        if self.session_retry_at.is_some_and(|at| at <= now) {
            self.session_retry_at = None;
        }
        match self.state.stage {
            Stage::Snapshot => {
                if self.state.state == SessionState::Created {
                    self.state.state = SessionState::Updating;
                    self.state.started_at = Some(now);
                    self.dirty = true;
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
            let Some(step_number) = self.state.active_step().map(|step| step.number) else {
                if self.state.cancelled || !self.start_next_step(now) {
                    self.state.stage = Stage::Cleanup;
                    self.dirty = true;
                    self.advance(now);
                    return;
                }
                continue;
            };
            self.check_boot_timeouts(now, step_number);
            if self.state.cancelled {
                self.release_unbooted(now, step_number);
            }
            self.request_boot_when_drained(now, step_number);
            if self.finish_step_when_done(step_number) {
                continue;
            }
            self.queue_step_actions(now, step_number);
            return;
        }
    }

    /// Takes the next step of pending nodes. Returns false when none is left.
    fn start_next_step(&mut self, now: Timestamp) -> bool {
        let taken: Vec<usize> = self
            .state
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.phase == NodePhase::Pending)
            .map(|(position, _)| position)
            .take(self.step_size())
            .collect();
        if taken.is_empty() {
            return false;
        }
        let number = u32::try_from(self.state.steps.len()).unwrap_or(u32::MAX);
        for &node in &taken {
            self.state.nodes[node].step = Some(number);
            self.set_phase(node, NodePhase::Draining, now);
        }
        let first = &self.state.nodes[taken[0]].id;
        let last = &self.state.nodes[taken[taken.len() - 1]].id;
        let range = if taken.len() == 1 {
            first.to_string()
        } else {
            format!("{first} … {last}")
        };
        self.post(format!(
            "Step {number} started: draining {} ({range})",
            count_nodes(taken.len())
        ));
        self.state.steps.push(Step {
            number,
            nodes: taken,
            started_at: now,
            boot: None,
            finished: false,
        });
        true
    }

    fn check_boot_timeouts(&mut self, now: Timestamp, step_number: u32) {
        let Some(step) = self.step(step_number) else {
            return;
        };
        let Some(boot) = &step.boot else { return };
        let deadline = boot.requested_at + self.state.policy.boot_timeout;
        if now < deadline {
            return;
        }
        let late = self.in_phases(&step.nodes, &[NodePhase::Booting, NodePhase::Verifying]);
        let timeout = humantime::format_duration(self.state.policy.boot_timeout);
        for node in late {
            self.fail_node(
                node,
                format!("did not come back within {timeout} of its boot starting"),
                now,
            );
        }
    }

    fn release_unbooted(&mut self, now: Timestamp, step_number: u32) {
        let Some(step) = self.step(step_number) else {
            return;
        };
        let unbooted = self.in_phases(&step.nodes, &[NodePhase::Draining, NodePhase::Drained]);
        for node in unbooted {
            self.state.nodes[node].reason =
                Some("session deleted before the node was booted".to_string());
            self.set_phase(node, NodePhase::Releasing, now);
        }
    }

    /// CRUS's barrier: the step boots once none of its nodes is still draining.
    fn request_boot_when_drained(&mut self, now: Timestamp, step_number: u32) {
        let Some(step) = self.step(step_number) else {
            return;
        };
        if step.boot.is_some() {
            return;
        }
        let phases: Vec<NodePhase> = step
            .nodes
            .iter()
            .map(|&node| self.state.nodes[node].phase)
            .collect();
        if phases.contains(&NodePhase::Draining) || !phases.contains(&NodePhase::Drained) {
            return;
        }
        let drained = self.in_phases(&step.nodes, &[NodePhase::Drained]);
        let key = format!("crus-{}-step-{step_number}", self.state.upgrade_id);
        for &node in &drained {
            self.set_phase(node, NodePhase::Booting, now);
        }
        let nodes: Vec<NodeId> = drained
            .iter()
            .map(|&node| self.state.nodes[node].id.clone())
            .collect();
        self.post(format!(
            "Step {step_number}: {} drained; booting {} with template '{}'",
            count_nodes(drained.len()),
            if drained.len() == 1 { "it" } else { "them" },
            self.state.spec.upgrade_template_id
        ));
        if let Some(step) = self.step_mut(step_number) {
            step.boot = Some(StepBoot {
                key,
                nodes,
                handle: None,
                requested_at: now,
            });
        }
    }

    /// Marks the step finished when every node of it has. Returns whether it did.
    fn finish_step_when_done(&mut self, step_number: u32) -> bool {
        let Some(step) = self.step(step_number) else {
            return false;
        };
        if !step
            .nodes
            .iter()
            .all(|&node| self.state.nodes[node].phase.is_terminal())
        {
            return false;
        }
        let upgraded = step
            .nodes
            .iter()
            .filter(|&&node| self.state.nodes[node].phase == NodePhase::Done)
            .count();
        let failed = step
            .nodes
            .iter()
            .filter(|&&node| self.state.nodes[node].phase == NodePhase::Failed)
            .count();
        let skipped = step
            .nodes
            .iter()
            .filter(|&&node| self.state.nodes[node].phase == NodePhase::Skipped)
            .count();
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
        self.next_boot_poll.remove(&step_number);
        self.post(summary);
        true
    }

    fn queue_step_actions(&mut self, now: Timestamp, step_number: u32) {
        let Some(step) = self.step(step_number).cloned() else {
            return;
        };
        let upgrading_label = self.state.spec.upgrading_label.clone();
        let in_flight_nodes = self.nodes_in_flight();
        let due = |rollout: &Self, node: usize| {
            !in_flight_nodes.contains(&node)
                && rollout.node_retry_at.get(&node).is_none_or(|&at| at <= now)
        };

        let to_drain: Vec<usize> = self
            .in_phases(&step.nodes, &[NodePhase::Draining])
            .into_iter()
            .filter(|&node| !self.drain_acknowledged.contains(&node) && due(self, node))
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
                reason: format!("crus:{}", self.state.upgrade_id),
            });
        }

        let watched = self.in_phases(&step.nodes, &[NodePhase::Draining, NodePhase::Verifying]);
        if !watched.is_empty()
            && self.next_workload_poll <= now
            && !self.is_in_flight(|action| matches!(action, Action::ObserveWorkload { .. }))
        {
            self.queue(Action::ObserveWorkload {
                nodes: self.ids_of(&watched),
            });
        }

        if let Some(boot) = &step.boot {
            let boot_in_flight = self.is_in_flight(|action| {
                matches!(action, Action::StartBoot { step, .. } | Action::ObserveBoot { step, .. } if *step == step_number)
            });
            let booting = step
                .nodes
                .iter()
                .any(|&node| self.state.nodes[node].phase == NodePhase::Booting);
            match &boot.handle {
                None if booting
                    && !boot_in_flight
                    && self.session_retry_at.is_none_or(|at| at <= now) =>
                {
                    self.session_retry_at = None;
                    self.queue(Action::StartBoot {
                        step: step_number,
                        request: BootRequest {
                            key: boot.key.clone(),
                            template: self.state.spec.upgrade_template_id.clone(),
                            nodes: boot.nodes.clone(),
                        },
                    });
                }
                Some(handle)
                    if booting && !boot_in_flight && self.boot_poll_due(step_number) <= now =>
                {
                    self.queue(Action::ObserveBoot {
                        step: step_number,
                        handle: handle.clone(),
                    });
                }
                _ => {}
            }
        }

        let to_resume: Vec<usize> = self
            .in_phases(&step.nodes, &[NodePhase::Resuming, NodePhase::Releasing])
            .into_iter()
            .filter(|&node| due(self, node))
            .collect();
        if !to_resume.is_empty() {
            self.queue(Action::Resume {
                upgrading_label: upgrading_label.clone(),
                nodes: self.ids_of(&to_resume),
            });
        }

        let to_fail: Vec<(NodeId, String)> = self
            .in_phases(&step.nodes, &[NodePhase::Failing])
            .into_iter()
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

    fn finish(&mut self, now: Timestamp) {
        if self.state.stage == Stage::Finished {
            return;
        }
        self.state.stage = Stage::Finished;
        self.state.completed = true;
        self.state.finished_at = Some(now);
        self.dirty = true;
        let upgraded = self.state.count(NodePhase::Done);
        let failed = self.state.count(NodePhase::Failed);
        if self.state.cancelled {
            self.post(format!(
                "Upgrade session deleted: {} upgraded, {failed} failed before it stopped",
                count_nodes(upgraded)
            ));
        } else {
            self.state.state = SessionState::Ready;
            let mut summary = format!(
                "Upgrade Session Completed: {upgraded} of {} upgraded",
                count_nodes(self.state.nodes.len())
            );
            if failed > 0 {
                summary.push_str(&format!(
                    ", {failed} failed (in group '{}')",
                    self.state.spec.failed_label
                ));
            }
            self.post(summary);
        }
    }

    fn fail_node(&mut self, node: usize, reason: String, now: Timestamp) {
        let id = self.state.nodes[node].id.clone();
        self.post(format!("Node {id} failed: {reason}"));
        self.state.nodes[node].reason = Some(reason);
        self.set_phase(node, NodePhase::Failing, now);
    }

    fn set_phase(&mut self, node: usize, phase: NodePhase, now: Timestamp) {
        let record = &mut self.state.nodes[node];
        if record.phase != phase {
            record.phase = phase;
            record.since = now;
            self.dirty = true;
        }
    }

    fn post(&mut self, message: String) {
        tracing::info!(upgrade_id = %self.state.upgrade_id, "{message}");
        self.state.messages.push(message);
        self.dirty = true;
    }

    /// Posts `message` unless the same message was posted already (repeated
    /// errors would otherwise flood the list, as in CRUS).
    fn post_once(&mut self, message: String) {
        if !self.state.messages.contains(&message) {
            self.post(message);
        }
    }

    fn queue(&mut self, action: Action) {
        let id = ActionId(self.next_action_id);
        self.next_action_id += 1;
        self.outbox.push_back((id, action));
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

    fn boot_poll_due(&self, step: u32) -> Timestamp {
        self.next_boot_poll
            .get(&step)
            .copied()
            .unwrap_or(Timestamp::EPOCH)
    }

    fn step(&self, number: u32) -> Option<&Step> {
        self.state.steps.get(usize::try_from(number).ok()?)
    }

    fn step_mut(&mut self, number: u32) -> Option<&mut Step> {
        self.state.steps.get_mut(usize::try_from(number).ok()?)
    }

    fn step_size(&self) -> usize {
        usize::try_from(self.state.spec.upgrade_step_size.max(1)).unwrap_or(usize::MAX)
    }

    fn indexes_of(&self, ids: &[NodeId]) -> Vec<usize> {
        ids.iter()
            .filter_map(|id| self.index.get(id).copied())
            .collect()
    }

    /// The nodes among `nodes` whose phase is one of `phases`, in order.
    fn in_phases(&self, nodes: &[usize], phases: &[NodePhase]) -> Vec<usize> {
        nodes
            .iter()
            .copied()
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
        state: state.state,
        upgrade_id: state.upgrade_id,
        upgrade_step_size: spec.upgrade_step_size,
        upgrade_template_id: spec.upgrade_template_id.clone(),
        upgrading_label: spec.upgrading_label.clone(),
        workload_manager_type: spec.workload_manager_type.clone(),
        nodes: node_counts(state),
    }
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
