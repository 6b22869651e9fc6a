//! Reserve ahead (`reserve_ahead`, with `strategy: continuous` and `order:
//! drain_cost`): each node still to upgrade is reserved in the workload
//! manager from the time the session plans to take it, so the scheduler
//! starts there only jobs whose time limits end by then (Slurm does not
//! start a job on a node whose reservation begins before the job's limit
//! ends), and the node is quiet when its place in the step frees.
//!
//! Why: a node not yet taken stays in service, and without this the
//! scheduler gives it jobs that run long past its turn; the upgrade then
//! waits for them (the efficiency bench measured that wait as most of the
//! gap to the lower bound). Draining ahead cannot fix it without holding
//! nodes idle outside the step; a reservation lets a node run every job
//! that ends in time and nothing else.
//!
//! **The plan** is the sliding window's own order, played forward: the
//! step's places free when their nodes are expected back (a draining
//! node's jobs' end, then one round of boot, verification and resume; a
//! booting node when its round ends), and each pending node, cheapest
//! drain first (its running jobs' limits, as `order: drain_cost` reads
//! them), is taken at the later of when a place frees and when its own jobs
//! end. A round is the median of the rounds this session has seen, and
//! [`FIRST_ROUND_GUESS`] before any. Nodes whose jobs have no known end,
//! and those after them in the order, are not reserved (no time can be
//! planned for them). The plan is made again whenever a node moves or the
//! drain costs are read again, and a reservation is moved only when its
//! node's planned take moves by more than [`RESERVATION_SLACK`].
//!
//! **No node is taken before the plan's reservations are in place**, at the
//! start and again whenever taking resumes after a pause, a gate or a
//! closed window
//! (or the workload manager refused them: reservations only shorten the
//! upgrade, they never hold it up). Draining the first nodes changes what
//! the scheduler may backfill, and in that moment it would start queued
//! jobs, of any length, on the nodes still to upgrade: measured on the
//! efficiency bench's busy trace, one start point's upgrade waited 54
//! node-hours for jobs started so.
//!
//! A node's reservation goes when it is taken (it is drained then), and
//! every one goes when the session pauses, halts, is held by a gate or is
//! outside its windows (nodes are not taken then, so no plan holds), is
//! deleted or ends; the session does not end while any is left. What the
//! plan leaves out is only a cost in capacity, never a risk: a node planned
//! too early runs short jobs only for a while, one planned too late may
//! still hold a job when its turn comes, and the sliding window then takes
//! it as it would have anyway (no reboot under a job). The capacity floor
//! and the boot rate are not planned for (reservations then begin earlier
//! than needed).
//!
//! Which nodes carry a reservation is not persisted: a rollout that starts
//! (or resumes after a crash) removes the reservations of every node it
//! does not plan for, once, and sets the others again (both idempotent).
//! Every [`RESERVATION_CHECK_INTERVAL`] while reserving, the reservations
//! set are read back and any the workload manager lost are set again.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::*;

/// A node's reservation is moved only when its planned take moves by more
/// than this: plans drift by seconds at every read, and each move is a
/// call to the workload manager.
pub const RESERVATION_SLACK: Duration = Duration::from_secs(5 * 60);

/// The round of one node (boot, verification, return to service) assumed
/// before the session has seen one: a typical diskless boot.
pub const FIRST_ROUND_GUESS: Duration = Duration::from_secs(10 * 60);

/// How often the reservations set are read back, to set again any the
/// workload manager lost (Slurm saves them within seconds of a change; a
/// `slurmctld` crash just after one loses it).
pub const RESERVATION_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// How many of the latest rounds the estimate is the median of.
const ROUNDS_KEPT: usize = 15;

/// Whether a reservation set from `set` is to move to `take`.
fn moved(set: Timestamp, take: Timestamp) -> bool {
    set.saturating_since(take) > RESERVATION_SLACK || take.saturating_since(set) > RESERVATION_SLACK
}

/// The problems of a policy request's `reserve_ahead` field, by field
/// name, as the session request reports them.
pub fn reserve_ahead_errors(
    reserve_ahead: Option<bool>,
    strategy: Option<Strategy>,
    order: Option<Order>,
) -> Vec<(&'static str, String)> {
    let on = reserve_ahead == Some(true);
    if on && (strategy != Some(Strategy::Continuous) || order != Some(Order::DrainCost)) {
        return vec![(
            "reserve_ahead",
            "Needs \"strategy\": \"continuous\" and \"order\": \"drain_cost\": nodes are reserved from when the sliding window, taking the cheapest drain first, plans to take them.".to_string(),
        )];
    }
    Vec::new()
}

/// What this process knows of the reservations (not persisted).
#[derive(Debug, Clone)]
pub(super) struct Reservations {
    /// The start this process set and the workload manager acknowledged,
    /// by node.
    set: FxHashMap<usize, Timestamp>,
    /// The planned take of each node to reserve, as last planned.
    planned: FxHashMap<usize, Timestamp>,
    /// Whether the plan is to be made again (a node moved, costs were read).
    replan: bool,
    /// Whether nodes may carry reservations this process does not know of
    /// (at a start or restart, after a refusal): the nodes not planned for
    /// are all to be cleared once.
    unknown: bool,
    /// Whether the first plan's reservations are all in place (or the
    /// workload manager refused them): until then no node is taken.
    ready: bool,
    /// Whether the workload manager answered that it cannot reserve nodes.
    unsupported: bool,
    /// When each node in its round began booting (this process saw it).
    round_began: FxHashMap<usize, Timestamp>,
    /// The latest rounds seen, oldest first.
    rounds: VecDeque<Duration>,
    /// The end of the jobs of each draining node, as last read.
    draining_ends: FxHashMap<usize, Timestamp>,
}

impl Default for Reservations {
    fn default() -> Self {
        Reservations {
            set: FxHashMap::default(),
            planned: FxHashMap::default(),
            replan: true,
            unknown: true,
            ready: false,
            unsupported: false,
            round_began: FxHashMap::default(),
            rounds: VecDeque::new(),
            draining_ends: FxHashMap::default(),
        }
    }
}

impl Rollout {
    /// Whether this session reserves ahead at all (asked for, with the
    /// order it plans by, and the workload manager can).
    fn reserves_ahead(&self) -> bool {
        let policy = &self.state.policy;
        policy.reserve_ahead
            && policy.strategy == Strategy::Continuous
            && policy.order == Order::DrainCost
            && !self.reservations.unsupported
    }

    /// Whether nodes are to be reserved now: nodes are being taken, or
    /// will be as soon as a place frees.
    fn reserving_now(&self, now: Timestamp) -> bool {
        self.reserves_ahead()
            && self.is_running()
            && !self.stopped_taking()
            && self.state.gated.is_none()
            && window::any_open(&self.state.policy.windows, now)
    }

    /// Whether nodes may be taken as far as reservations go: not before the
    /// first plan's reservations are in place, so the scheduler cannot
    /// start long jobs on nodes still to upgrade in the moment the first
    /// nodes are drained (a drain lets it backfill more).
    pub(super) fn reservations_let_take(&mut self, now: Timestamp) -> bool {
        if self.reservations.ready || !self.reserving_now(now) {
            return true;
        }
        if self.reservations.unknown {
            // The sweep of what a crashed process may have left comes first.
            return false;
        }
        self.refresh_plan(now);
        self.reservations.ready = self.reservations_to_set().is_empty();
        self.reservations.ready
    }

    /// Makes the plan again if something it depends on changed.
    fn refresh_plan(&mut self, now: Timestamp) {
        if self.reservations.replan {
            self.reservations.planned = self.plan_takes(now);
            self.reservations.replan = false;
        }
    }

    /// The planned nodes whose reservation is still to be set or moved, in
    /// inventory order.
    fn reservations_to_set(&self) -> Vec<(usize, Timestamp)> {
        let mut to_set: Vec<(usize, Timestamp)> = self
            .reservations
            .planned
            .iter()
            .filter(|&(node, &take)| {
                self.reservations
                    .set
                    .get(node)
                    .is_none_or(|&set| moved(set, take))
            })
            .map(|(&node, &take)| (node, take))
            .collect();
        to_set.sort_unstable();
        to_set
    }

    /// A node moved from `from` to `to` at `now`: the plan is made again,
    /// and a round that ends is learnt.
    pub(super) fn reservation_node_moved(
        &mut self,
        node: usize,
        from: NodePhase,
        to: NodePhase,
        now: Timestamp,
    ) {
        if !self.state.policy.reserve_ahead {
            return;
        }
        let reservations = &mut self.reservations;
        reservations.replan = true;
        if to == NodePhase::Booting && from != NodePhase::Booting {
            reservations.round_began.insert(node, now);
        }
        if from == NodePhase::Draining {
            reservations.draining_ends.remove(&node);
        }
        if to == NodePhase::Done
            && let Some(began) = reservations.round_began.remove(&node)
        {
            if reservations.rounds.len() == ROUNDS_KEPT {
                reservations.rounds.pop_front();
            }
            reservations.rounds.push_back(now.saturating_since(began));
        } else if to.is_terminal() {
            reservations.round_began.remove(&node);
        }
    }

    /// The workload manager's report of `node`: a draining node's jobs'
    /// end tells when its place frees.
    pub(super) fn reservation_node_read(&mut self, node: usize, report: &WorkloadNode) {
        if !self.state.policy.reserve_ahead || self.state.nodes[node].phase != NodePhase::Draining {
            return;
        }
        let before = match report.jobs_end_by {
            Some(end) => self.reservations.draining_ends.insert(node, end),
            None => self.reservations.draining_ends.remove(&node),
        };
        if before != report.jobs_end_by {
            self.reservations.replan = true;
        }
    }

    /// The pending nodes' drain costs were read (all of them, or all that
    /// may have changed): the plan is made again from them.
    pub(super) fn reservation_costs_read(&mut self) {
        if self.state.policy.reserve_ahead {
            self.reservations.replan = true;
        }
    }

    /// How long one node's round takes: the median of those seen.
    fn round_estimate(&self) -> Duration {
        let mut rounds: Vec<Duration> = self.reservations.rounds.iter().copied().collect();
        if rounds.is_empty() {
            return FIRST_ROUND_GUESS;
        }
        rounds.sort_unstable();
        rounds[rounds.len() / 2]
    }

    /// When each pending node is planned to be taken (see the module
    /// documentation): earliest place first, cheapest drain first.
    fn plan_takes(&self, now: Timestamp) -> FxHashMap<usize, Timestamp> {
        let round = self.round_estimate();
        let mut places: Vec<Timestamp> = Vec::new();
        for step in self.census.active_steps() {
            for node in self.census.unsettled_in(step, &NodePhase::ALL) {
                let free_at = match self.state.nodes[node].phase {
                    NodePhase::Draining => {
                        self.reservations
                            .draining_ends
                            .get(&node)
                            .copied()
                            .unwrap_or(now)
                            .max(now)
                            + round
                    }
                    NodePhase::Drained => now + round,
                    _ => self
                        .reservations
                        .round_began
                        .get(&node)
                        .map_or(now, |&began| (began + round).max(now)),
                };
                places.push(free_at);
            }
        }
        let step = self.step_size();
        places.sort_unstable();
        places.truncate(step);
        places.resize(step, now);
        let mut places: BinaryHeap<Reverse<Timestamp>> = places.into_iter().map(Reverse).collect();
        let mut planned = FxHashMap::default();
        for node in self.census.ranked() {
            let record = &self.state.nodes[node];
            if record.foreign.is_some() || self.held_elsewhere.contains_key(&node) {
                // Taken, if at all, as its owner allows: not planned.
                continue;
            }
            let release = match self.census.cost(node) {
                DrainCost::Free => now,
                DrainCost::EndsAt(end) => end.max(now),
                // Ranked last: no time can be planned for these, nor after.
                DrainCost::Unbounded | DrainCost::Unknown => break,
            };
            let Some(Reverse(place)) = places.pop() else {
                break;
            };
            let take = release.max(place);
            planned.insert(node, take);
            places.push(Reverse(take + round));
        }
        planned
    }

    /// Whether the periodic read-back of the reservations is to wake the
    /// session: only while some are set, and nothing about them in flight.
    pub(super) fn reservation_check_armed(&self) -> bool {
        self.reserves_ahead()
            && !self.reservations.set.is_empty()
            && !self.reservation_action_in_flight()
    }

    fn reservation_action_in_flight(&self) -> bool {
        self.is_in_flight(|action| {
            matches!(
                action,
                Action::Reserve { .. } | Action::Unreserve { .. } | Action::ReadReservations { .. }
            )
        })
    }

    /// Whether reservations may still be left on nodes: a session does not
    /// end before they are all removed.
    pub(super) fn reservations_owed(&self) -> bool {
        self.state.policy.reserve_ahead
            && !self.reservations.unsupported
            && (self.reservations.unknown || !self.reservations.set.is_empty())
    }

    /// Queues the reservations to set or move, and the removals owed: of
    /// taken nodes, of every node when the session is not taking nodes, and
    /// once of every node not planned for after a start or a refusal.
    pub(super) fn queue_reservation_actions(&mut self, now: Timestamp) {
        if !self.state.policy.reserve_ahead || self.reservations.unsupported {
            return;
        }
        if !self.timers.passed(Timer::ReserveRetry, now) {
            return;
        }
        // Passed: forgotten, so it is not reported as a deadline again.
        self.timers.clear(Timer::ReserveRetry);
        if self.reservation_action_in_flight() {
            // One at a time: an answer changes what is owed.
            return;
        }
        if !self.reserving_now(now) {
            self.reservations.planned.clear();
            // Planned afresh, and reserved before any node is taken, when
            // nodes are taken again (after a pause, a gate, a window).
            self.reservations.replan = true;
            self.reservations.ready = false;
        } else {
            self.refresh_plan(now);
        }
        let planned = &self.reservations.planned;
        let mut to_remove: Vec<usize> = if self.reservations.unknown {
            (0..self.state.nodes.len())
                .filter(|node| !planned.contains_key(node))
                .collect()
        } else {
            self.reservations
                .set
                .keys()
                .copied()
                .filter(|node| !planned.contains_key(node))
                .collect()
        };
        if !to_remove.is_empty() {
            to_remove.sort_unstable();
            // Cleared as asked: a refusal sets it again (and so a sweep).
            self.reservations.unknown = false;
            let nodes = self.ids_of(&to_remove);
            self.queue(Action::Unreserve { nodes });
            return;
        }
        self.reservations.unknown = false;
        let to_set = self.reservations_to_set();
        if to_set.is_empty() {
            self.reservations.ready = true;
            if !self.reservations.set.is_empty() && self.timers.passed(Timer::ReservationCheck, now)
            {
                self.timers
                    .set(Timer::ReservationCheck, now + RESERVATION_CHECK_INTERVAL);
                let mut nodes: Vec<usize> = self.reservations.set.keys().copied().collect();
                nodes.sort_unstable();
                let nodes = self.ids_of(&nodes);
                self.queue(Action::ReadReservations { nodes });
            }
            return;
        }
        if self.timers.get(Timer::ReservationCheck).is_none() {
            // The first read-back a check interval after the first set.
            self.timers
                .set(Timer::ReservationCheck, now + RESERVATION_CHECK_INTERVAL);
        }
        let reservations = to_set
            .into_iter()
            .map(|(node, take)| (self.state.nodes[node].id.clone(), take))
            .collect();
        self.queue(Action::Reserve { reservations });
    }

    /// The workload manager set the reservations as asked.
    pub(super) fn reservations_applied(&mut self, reservations: &[(NodeId, Timestamp)]) {
        for (id, start) in reservations {
            if let Some(&node) = self.index.get(id) {
                self.reservations.set.insert(node, *start);
            }
        }
    }

    /// The reservations read back: of the nodes asked about, those not
    /// among `reserved` lost theirs, and are set again at the next pass.
    pub(super) fn reservations_read(
        &mut self,
        now: Timestamp,
        asked: &[NodeId],
        reserved: &[NodeId],
    ) {
        let reserved: std::collections::HashSet<&NodeId> = reserved.iter().collect();
        let mut lost = 0;
        for id in asked.iter().filter(|id| !reserved.contains(id)) {
            if let Some(&node) = self.index.get(id)
                && self.reservations.set.remove(&node).is_some()
            {
                lost += 1;
            }
        }
        if lost > 0 {
            self.say_once(now, Said::ReservationsLost);
        }
    }

    /// The workload manager removed the reservations of `nodes` as asked.
    pub(super) fn reservations_removed(&mut self, nodes: &[NodeId]) {
        for id in nodes {
            if let Some(&node) = self.index.get(id) {
                self.reservations.set.remove(&node);
            }
        }
    }

    /// A reservation or its removal failed: without support the session
    /// goes on without reserving (said once); otherwise what may be left
    /// is unknown, and everything is looked over again after the policy's
    /// retry interval.
    pub(super) fn reservations_refused(
        &mut self,
        now: Timestamp,
        action: &Action,
        error: &ActionError,
    ) {
        // Reservations only shorten the upgrade: one that cannot be made
        // does not hold it up.
        self.reservations.ready = true;
        if error.kind == ActionErrorKind::NotSupported {
            self.reservations.unsupported = true;
            self.reservations.planned.clear();
            self.say_once(
                now,
                Said::ReservationsUnsupported {
                    error: error.message.clone(),
                },
            );
            return;
        }
        self.reservations.unknown = true;
        self.retry_after_refusal(now, Timer::ReserveRetry, action, error);
    }
}
