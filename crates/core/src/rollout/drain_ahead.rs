//! Drain ahead (`drain_ahead`, with `strategy: continuous` and
//! `order: drain_cost`): the pending nodes whose jobs end soonest are
//! drained while those jobs still run, so the scheduler starts no new job
//! on them, without holding a place in the step. The step then counts only
//! the nodes out of service for the upgrade itself; at most `max_draining`
//! (default the step size) nodes drain ahead at once.
//!
//! A node drained ahead stays *pending* in the phase table: it is not in a
//! step. Which nodes: the pending ones in drain-cost order (soonest expected
//! end first, from the jobs' time limits, as `order: drain_cost` reads
//! them), skipping idle ones (they are taken, not drained ahead) and those
//! whose jobs have no known end. The soonest to end are exactly the nodes
//! the sliding window takes next, so each goes quiet about when a place in
//! the step frees rather than hours before: a quiet node drained ahead
//! ranks first (its drain costs nothing) and takes the next free place.
//!
//! The design point: a node drained ahead whose jobs end while every place
//! of the step is held is out of service and idle. Letting it wait drained
//! for a place would put more than the step size out of service and idle,
//! which the step forbids; limiting draining ahead to what free places can
//! absorb would be no draining ahead at all (a place must be free for every
//! node that might go quiet, which is the plain sliding window). So such a
//! node is **returned to service** at once: it is idle, in service, ranks
//! first, and is taken when the next place frees (with `steer_jobs` the
//! scheduler is unlikely to give it a job meanwhile). The bound on the
//! session's own phases is untouched (nodes drained ahead are pending), and
//! the cluster has a node drained, idle and outside the step only between
//! the workload manager's report and the resume that follows it.
//!
//! Nodes drained ahead are out of service for new jobs, so the capacity
//! floor (`min_available`, "every node not in service") counts them, and
//! none is drained ahead when that would cross it. They boot nothing, so
//! `max_boots_per_minute` is not concerned. They are returned to service
//! when the session is paused, halted, held by a gate, outside its windows,
//! or deleted, and the session does not end while any is still drained.
//! They are persisted (`drained_ahead`): after a restart each is drained
//! again (harmless) and judged again, never forgotten drained. A node that
//! someone else drains or downs meanwhile (its reason is no longer crus's)
//! is theirs: it is dropped from the set and never resumed by crus.

use super::*;

/// The problems of a policy request's `drain_ahead` and `max_draining`
/// fields, by field name, as the session request reports them.
pub fn drain_ahead_errors(
    drain_ahead: Option<bool>,
    max_draining: Option<u32>,
    strategy: Option<Strategy>,
    order: Option<Order>,
) -> Vec<(&'static str, String)> {
    let mut errors = Vec::new();
    let on = drain_ahead == Some(true);
    if on && (strategy != Some(Strategy::Continuous) || order != Some(Order::DrainCost)) {
        errors.push((
            "drain_ahead",
            "Needs \"strategy\": \"continuous\" and \"order\": \"drain_cost\": nodes are drained ahead by their jobs' expected ends and take the places of a sliding window.".to_string(),
        ));
    }
    if let Some(count) = max_draining {
        if !on {
            errors.push((
                "max_draining",
                "Applies only with \"drain_ahead\": true.".to_string(),
            ));
        }
        if count == 0 {
            errors.push((
                "max_draining",
                "Must be at least 1 (leave it out for the step size).".to_string(),
            ));
        }
    }
    errors
}

impl Rollout {
    /// Whether this session drains ahead at all.
    pub(super) fn drains_ahead(&self) -> bool {
        let policy = &self.state.policy;
        policy.drain_ahead
            && policy.strategy == Strategy::Continuous
            && policy.order == Order::DrainCost
    }

    /// How many nodes may drain ahead at once.
    pub(super) fn max_draining(&self) -> usize {
        self.state
            .policy
            .max_draining
            .map_or(self.step_size(), |count| {
                usize::try_from(count).unwrap_or(usize::MAX)
            })
    }

    /// How many nodes drained ahead are out of service (until each is
    /// taken or its return to service is acknowledged).
    pub(super) fn drained_ahead_count(&self) -> usize {
        self.state.drained_ahead.len()
    }

    /// Whether `node` was drained ahead and is not yet taken or returned.
    pub(super) fn is_drained_ahead(&self, node: usize) -> bool {
        self.state.drained_ahead.contains(&node)
    }

    /// After the pass took what the step has room for: forgets the nodes
    /// taken, returns to service the quiet ones no place was free for (and
    /// every one when no node may be taken now), and drains ahead the next
    /// ones while there is room.
    pub(super) fn tend_drain_ahead(&mut self, now: Timestamp) {
        let taken: Vec<usize> = self
            .state
            .drained_ahead
            .iter()
            .copied()
            .filter(|&node| self.state.nodes[node].phase != NodePhase::Pending)
            .collect();
        for node in taken {
            self.state.drained_ahead.remove(&node);
            self.ahead_to_return.remove(&node);
            self.dirty = true;
        }
        let stopped = self.stopped_taking()
            || self.state.gated.is_some()
            || !self.drains_ahead()
            || !window::any_open(&self.state.policy.windows, now);
        let to_return: Vec<usize> = self
            .state
            .drained_ahead
            .iter()
            .copied()
            .filter(|&node| {
                !self.ahead_to_return.contains(&node)
                    && (stopped || self.census.cost(node) == DrainCost::Free)
            })
            .collect();
        if !to_return.is_empty() {
            for &node in &to_return {
                self.ahead_to_return.insert(node);
                self.drain_owed.remove(&node);
            }
            let nodes = self.ids_of(&to_return);
            self.say(now, Said::ReturningAhead { nodes, stopped });
        }
        if !self.state.drained_ahead.is_empty() {
            // Nodes drained ahead are watched, to learn when they go quiet.
            self.want_pending_costs = true;
        }
        if stopped {
            return;
        }
        self.drain_more_ahead(now);
    }

    /// Drains ahead the pending nodes whose jobs end soonest, while fewer
    /// than `max_draining` are and the floor allows.
    fn drain_more_ahead(&mut self, now: Timestamp) {
        let room = self
            .max_draining()
            .saturating_sub(self.drained_ahead_count())
            .min(self.room_above_floor());
        if room == 0 || !self.census.any_pending() {
            return;
        }
        let fresh = self
            .pending_costs_at
            .is_some_and(|at| now < at + self.pending_costs_max_age());
        if !fresh {
            self.want_pending_costs = true;
            return;
        }
        if !self.gates_let_take(now) {
            return;
        }
        let chosen: Vec<usize> = self
            .census
            .ranked()
            .filter(|&node| {
                matches!(self.census.cost(node), DrainCost::EndsAt(_))
                    && !self.is_drained_ahead(node)
                    && self.state.nodes[node].foreign.is_none()
                    && !self.held_elsewhere.contains_key(&node)
            })
            .take(room)
            .collect();
        if chosen.is_empty() {
            return;
        }
        for &node in &chosen {
            self.state.drained_ahead.insert(node);
            self.drain_owed.insert(node);
        }
        self.dirty = true;
        let nodes = self.ids_of(&chosen);
        self.say(now, Said::DrainingAhead { nodes });
    }

    /// Queues the return to service of the nodes drained ahead that are owed one.
    pub(super) fn queue_ahead_returns(&mut self, now: Timestamp) {
        if self.ahead_to_return.is_empty() {
            return;
        }
        let in_flight = self.nodes_in_flight();
        let due: Vec<usize> = self
            .ahead_to_return
            .iter()
            .copied()
            .filter(|&node| {
                !in_flight.contains(&node) && self.timers.passed(Timer::NodeRetry(node), now)
            })
            .collect();
        if due.is_empty() {
            return;
        }
        self.queue(Action::Resume {
            upgrading_label: self.state.spec.upgrading_label.clone(),
            nodes: self.ids_of(&due),
        });
    }

    /// The workload manager acknowledged the return to service of `node`,
    /// pending: if it was drained ahead, it no longer is.
    pub(super) fn ahead_returned(&mut self, node: usize) {
        if self.ahead_to_return.remove(&node) && self.state.drained_ahead.remove(&node) {
            self.drains_unconfirmed.remove(&node);
            self.dirty = true;
        }
    }

    /// What the workload manager says of a node drained ahead: when someone
    /// else now holds it out of service, it is theirs and crus lets it be.
    pub(super) fn observe_ahead(&mut self, node: usize, report: &WorkloadNode) {
        if self.is_drained_ahead(node) && held_by_someone_else(report) {
            self.state.drained_ahead.remove(&node);
            self.ahead_to_return.remove(&node);
            self.drain_owed.remove(&node);
            self.drains_unconfirmed.remove(&node);
            self.dirty = true;
        }
    }
}
