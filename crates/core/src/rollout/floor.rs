//! The capacity floor, `min_available`: a count or a percentage of the
//! starting group that must stay in service, counting every node out of
//! service for any reason (crus's own, failed ones, and those someone else
//! drained or downed). No node is taken when that would cross the floor;
//! the session holds, says which nodes are out and why, and goes on by
//! itself when they return.

use super::*;

/// How many names a hold message lists before it says how many more.
const LISTED: usize = 10;

impl Rollout {
    /// How many nodes must stay in service, if the policy has a floor.
    /// A percentage is rounded down, so a small group still upgrades: "90%"
    /// of 5 nodes keeps 4, one upgraded at a time.
    pub(super) fn floor(&self) -> Option<usize> {
        let total = self.state.nodes.len();
        self.state
            .policy
            .min_available
            .map(|floor| floor.allowed(total).min(total))
    }

    /// The floor as messages state it (`4 of 5 nodes (90%)`, see [`Floor`]).
    pub(super) fn describe_floor(&self) -> Option<Floor> {
        let kept = self.floor()?;
        let percent = match self.state.policy.min_available? {
            FailureBudget::Count(_) => None,
            FailureBudget::Percent(percent) => Some(percent),
        };
        Some(Floor {
            kept,
            total: self.state.nodes.len(),
            percent,
        })
    }

    /// Notes what the workload manager said of a node crus does not hold
    /// out of service: whether it is out of service all the same, and why.
    pub(super) fn note_availability(&mut self, node: usize, report: &WorkloadNode) {
        if self.state.policy.min_available.is_none() {
            return;
        }
        let phase = self.state.nodes[node].phase;
        let out = matches!(
            report.state,
            WorkloadState::Draining | WorkloadState::Drained | WorkloadState::Down
        );
        // A node drained ahead is counted as such (`drained_ahead_count`).
        if phase.is_out_of_service()
            || phase == NodePhase::Failed
            || !out
            || self.is_drained_ahead(node)
        {
            self.held_elsewhere.remove(&node);
            return;
        }
        let state = match report.state {
            WorkloadState::Down => "down",
            WorkloadState::Draining => "draining",
            _ => "drained",
        };
        let why = match &report.reason {
            Some(reason) => format!("{state}: {reason:?}"),
            None => state.to_string(),
        };
        self.held_elsewhere.insert(node, why);
    }

    /// Notes the nodes a return to service left alone because someone else
    /// holds them, as the controller read them: a pending one is marked as
    /// theirs (as an observation would), and each counts against the floor.
    pub(super) fn note_left_alone(&mut self, now: Timestamp, reports: &[WorkloadNode]) {
        for report in reports {
            let Some(&node) = self.index.get(&report.node) else {
                continue;
            };
            if self.state.nodes[node].phase == NodePhase::Pending {
                self.observe_foreign(node, report, now);
            }
            self.note_availability(node, report);
        }
    }

    /// The nodes someone else holds out of service, with how, that this
    /// session does not hold out itself (a node noted before this session
    /// took it is counted by its phase).
    fn held_only_elsewhere(&self) -> impl Iterator<Item = (usize, &String)> {
        self.held_elsewhere
            .iter()
            .filter(|(node, _)| !self.state.nodes[**node].phase.is_out_of_service())
            .map(|(&node, why)| (node, why))
    }

    /// How many nodes are out of service now, for any reason known.
    fn out_for_any_reason(&self) -> usize {
        // A failed node is counted as failed.
        let elsewhere = self
            .held_only_elsewhere()
            .filter(|&(node, _)| self.state.nodes[node].phase != NodePhase::Failed)
            .count();
        self.census.out_of_service()
            + self.census.count(NodePhase::Failed)
            + elsewhere
            + self.drained_ahead_count()
    }

    /// How many more nodes may be taken without crossing the floor (all of
    /// them without a floor).
    pub(super) fn room_above_floor(&self) -> usize {
        let Some(floor) = self.floor() else {
            return usize::MAX;
        };
        let may_be_out = self.state.nodes.len().saturating_sub(floor);
        may_be_out.saturating_sub(self.out_for_any_reason())
    }

    /// How many of `capacity` nodes may be taken now without crossing the
    /// floor, or `None` when none may: the nodes out of service are not
    /// known recently enough (they are asked for), or the floor is reached
    /// (the session holds, or looks again at the next poll while a step
    /// is under way). The upgrade's steps and the revert's batches both
    /// take nodes through here, so neither can cross it.
    pub(super) fn capacity_above_floor(
        &mut self,
        now: Timestamp,
        capacity: usize,
    ) -> Option<usize> {
        if self.state.policy.min_available.is_none() {
            return Some(capacity);
        }
        self.timers.clear(Timer::FloorCheck);
        let fresh = self
            .pending_costs_at
            .is_some_and(|at| now < at + self.pending_costs_max_age());
        if !fresh {
            self.want_pending_costs = true;
            return None;
        }
        let room = self.room_above_floor();
        if room == 0 {
            if !self.census.any_active_step() {
                self.hold_at_floor(now);
            } else {
                let again = now + self.state.policy.poll_interval;
                self.timers.set(Timer::FloorCheck, again);
            }
            return None;
        }
        Some(capacity.min(room))
    }

    /// Of `nodes`, taken but not yet asked to drain (or whose drain was
    /// refused), those whose drains may be asked now without crossing the
    /// floor, in order. Room was made for them when they were taken, but
    /// someone else may have taken nodes out of service since (while their
    /// pre_drain hooks ran, or the drain was refused): the others wait in
    /// `draining`, never asked (so a delete returns nothing to service),
    /// until a node returns; the session says so.
    pub(super) fn drains_within_floor(&mut self, now: Timestamp, nodes: Vec<usize>) -> Vec<usize> {
        let Some(floor) = self.floor() else {
            return nodes;
        };
        if nodes.is_empty() {
            return nodes;
        }
        // Counted from a recent read of every node in service: one is
        // asked for first when the last is older (the hooks ran long, or
        // this controller has just taken the session up).
        let fresh = self
            .availability_read_at
            .is_some_and(|at| now < at + self.pending_costs_max_age());
        if !fresh {
            self.want_pending_costs = true;
            return Vec::new();
        }
        // Taken nodes never asked to drain are in service still. Those
        // whose drain was refused may be, or not (an answer lost on the
        // way back, a restart): they are counted out, so sending theirs
        // again takes out no node not counted, as long as the count keeps
        // the floor. A first drain needs a place of its own.
        let never_asked = |rollout: &Self, node: usize| {
            let record = &rollout.state.nodes[node];
            record.phase == NodePhase::Draining
                && record.drain_asked_at.is_none()
                && record.foreign.is_none()
        };
        let unasked = self
            .census
            .nodes_in(&[NodePhase::Draining])
            .filter(|&node| never_asked(self, node))
            .count();
        let out = self.out_for_any_reason().saturating_sub(unasked);
        let may_be_out = self.state.nodes.len().saturating_sub(floor);
        let mut room = may_be_out.checked_sub(out);
        let (mut sent, mut held) = (Vec::new(), Vec::new());
        for node in nodes {
            match room {
                Some(_) if !never_asked(self, node) => sent.push(node),
                Some(places) if places > 0 => {
                    room = Some(places - 1);
                    sent.push(node);
                }
                _ => held.push(node),
            }
        }
        if held.is_empty() {
            return sent;
        }
        // Watch every node in service, to see one return.
        self.want_pending_costs = true;
        self.hold_drains_at_floor(now, &held);
        sent
    }

    /// Says which taken nodes wait for their drain at the floor, and why.
    fn hold_drains_at_floor(&mut self, now: Timestamp, held: &[usize]) {
        let Some(floor) = self.describe_floor() else {
            return;
        };
        let elsewhere: Vec<(NodeId, String)> = self
            .held_only_elsewhere()
            .take(LISTED)
            .map(|(node, why)| (self.state.nodes[node].id.clone(), why.clone()))
            .collect();
        let nodes = self.ids_of(held);
        self.say_once(
            now,
            Said::DrainsHeldAtFloor {
                nodes,
                floor,
                elsewhere,
            },
        );
    }

    /// The session holds at the floor: says so, naming the nodes out and
    /// why, with the effective numbers, and checks again at the next
    /// observation of the nodes.
    pub(super) fn hold_at_floor(&mut self, now: Timestamp) {
        let Some(floor) = self.describe_floor() else {
            return;
        };
        let out_phases: Vec<NodePhase> = NodePhase::ALL
            .into_iter()
            .filter(|phase| phase.is_out_of_service())
            .collect();
        let mut out: Vec<(usize, String)> = self
            .census
            .nodes_in(&out_phases)
            .map(|node| {
                (
                    node,
                    format!("{} by this session", self.state.nodes[node].phase.as_str()),
                )
            })
            .collect();
        out.extend(
            self.held_only_elsewhere()
                .map(|(node, why)| (node, why.clone())),
        );
        out.extend(
            self.state
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, record)| record.phase == NodePhase::Failed)
                .map(|(node, _)| (node, "failed".to_string())),
        );
        out.sort();
        let listed: Vec<(NodeId, String)> = out
            .iter()
            .take(LISTED)
            .map(|(node, why)| (self.state.nodes[*node].id.clone(), why.clone()))
            .collect();
        let total = self.state.nodes.len();
        let in_service = total.saturating_sub(out.len());
        self.say_once(
            now,
            Said::HeldAtFloor {
                floor,
                in_service,
                out: listed,
                more: out.len().saturating_sub(LISTED),
            },
        );
        // Look again once the last observation is stale.
        let again = self.pending_costs_at.unwrap_or(now) + self.pending_costs_max_age();
        self.timers.set(
            Timer::FloorCheck,
            again.max(now + self.state.policy.poll_interval),
        );
    }
}
