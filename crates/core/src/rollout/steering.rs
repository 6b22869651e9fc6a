//! Steering new jobs to upgraded nodes (`steer_jobs`): while the session
//! runs, the scheduling weight of every node still to upgrade is raised, so
//! the scheduler (lowest weight first, as Slurm) fills upgraded nodes before
//! the ones the session is about to drain; each node gets its own weight back
//! when it returns to service or fails, and every node when the session
//! halts, is deleted or ends.
//!
//! Each node's own weight is read before it is first raised and kept in its
//! record, so a controller resuming after a crash restores it exactly. Which
//! weights were set is not persisted: a resumed rollout sets every weight it
//! manages again, which is idempotent. Slurm forgets weights set by
//! `scontrol` when `slurmctld` restarts or is reconfigured, so the raised
//! weights are read back every [`WEIGHT_CHECK_INTERVAL`] and set again when
//! they changed.

use std::time::Duration;

use super::*;

/// Slurm's weight of a node nobody set one on.
pub const DEFAULT_WEIGHT: u32 = 1;

/// Added to a node's own weight while it waits for its upgrade: above the
/// weights sites use (Slurm's default is [`DEFAULT_WEIGHT`]), so every
/// upgraded node is preferred, while the site's own preferences among the
/// waiting nodes stay.
pub const WEIGHT_RAISE: u32 = 1_000_000;

/// How often the raised weights are read back, to set again those the
/// workload manager lost (a `slurmctld` restart, `scontrol reconfigure`).
pub const WEIGHT_CHECK_INTERVAL: Duration = Duration::from_secs(60);

impl Rollout {
    /// Whether the session is steering jobs now: asked for, supported, and
    /// running nodes through (not halted, deleted or ending).
    fn steering_now(&self) -> bool {
        self.state.policy.steer_jobs
            && !self.steering_unsupported
            && self.is_running()
            && !self.is_halted()
    }

    /// Whether the periodic read-back of the raised weights is to wake the
    /// session: only while steering, and not while a read is in flight.
    pub(super) fn weight_check_armed(&self) -> bool {
        self.steering_now()
            && !self.is_in_flight(|action| matches!(action, Action::ReadWeights { .. }))
    }

    /// Whether `node`'s weight is to be raised now: it still waits for its
    /// upgrade (once it is resuming its own weight comes back first).
    fn wants_raised(&self, node: usize) -> bool {
        self.steering_now()
            && matches!(
                self.state.nodes[node].phase,
                NodePhase::Pending
                    | NodePhase::Draining
                    | NodePhase::Drained
                    | NodePhase::Booting
                    | NodePhase::Verifying
            )
    }

    /// The weight `node` is to have, once its own weight is known.
    fn wanted_weight(&self, node: usize) -> Option<u32> {
        let own = self.state.nodes[node].own_weight?;
        Some(if self.wants_raised(node) {
            own.saturating_add(WEIGHT_RAISE)
        } else {
            own
        })
    }

    /// The weight `node` is still to be given: the one it is to have, when
    /// that is not the one this process last set.
    fn weight_to_set(&self, node: usize) -> Option<u32> {
        let wanted = self.wanted_weight(node)?;
        (self.weights_set.get(&node) != Some(&wanted)).then_some(wanted)
    }

    /// Whether `node`'s own weight is still to be read before it is raised.
    fn own_weight_unread(&self, node: usize) -> bool {
        self.state.nodes[node].own_weight.is_none() && self.wants_raised(node)
    }

    /// Whether some node's weight still differs from what it is to be, or
    /// is still to be read: a session does not end before they are all set.
    pub(super) fn weights_owed(&self) -> bool {
        if !self.state.policy.steer_jobs || self.steering_unsupported {
            return false;
        }
        (0..self.state.nodes.len())
            .any(|node| self.own_weight_unread(node) || self.weight_to_set(node).is_some())
    }

    /// Queues the weight reads and settings owed, one action of each kind at
    /// a time: the own weights still to read, the weights that differ from
    /// what the nodes' phases want, and the periodic check of raised ones.
    pub(super) fn queue_weight_actions(&mut self, now: Timestamp) {
        if !self.state.policy.steer_jobs || self.steering_unsupported {
            return;
        }
        if !self.timers.passed(Timer::WeightRetry, now) {
            return;
        }
        // Passed: forgotten, so it is not reported as a deadline again.
        self.timers.clear(Timer::WeightRetry);
        let reading = self.is_in_flight(|action| matches!(action, Action::ReadWeights { .. }));
        let setting = self.is_in_flight(|action| matches!(action, Action::SetWeights { .. }));
        let steering = self.steering_now();
        let check_due = steering && !reading && self.timers.passed(Timer::WeightCheck, now);
        let every_node = self.weights_rescan || steering != self.weights_scanned_steering;
        if !every_node && self.weights_touched.is_empty() && !check_due {
            return;
        }
        let candidates: Vec<usize> = if every_node {
            (0..self.state.nodes.len()).collect()
        } else {
            self.weights_touched.iter().copied().collect()
        };
        // Looked over only with nothing in flight: an answer that comes in
        // touches its nodes again (`weights_read`, `weights_applied`).
        if !setting && !reading {
            self.weights_rescan = false;
            self.weights_scanned_steering = steering;
            self.weights_touched.clear();
        }
        if !setting {
            let weights: Vec<(NodeId, u32)> = candidates
                .iter()
                .copied()
                .filter_map(|node| {
                    self.weight_to_set(node)
                        .map(|weight| (self.state.nodes[node].id.clone(), weight))
                })
                .collect();
            if !weights.is_empty() {
                self.queue(Action::SetWeights { weights });
            }
        }
        if reading {
            return;
        }
        let unread: Vec<usize> = candidates
            .into_iter()
            .filter(|&node| self.own_weight_unread(node))
            .collect();
        let to_read: Vec<usize> = if !unread.is_empty() {
            unread
        } else if check_due {
            self.timers
                .set(Timer::WeightCheck, now + WEIGHT_CHECK_INTERVAL);
            self.weights_set
                .keys()
                .copied()
                .filter(|&node| self.wants_raised(node))
                .collect()
        } else {
            Vec::new()
        };
        if !to_read.is_empty() {
            let nodes = self.ids_of(&to_read);
            self.queue(Action::ReadWeights { nodes });
        }
    }

    /// The weights read: a node's first reading is its own weight (kept in
    /// its record before anything is raised); a later one that differs from
    /// what was set means the workload manager lost it, and it is set again.
    pub(super) fn weights_read(&mut self, now: Timestamp, weights: &[(NodeId, u32)]) {
        let mut lost = 0;
        for (id, weight) in weights {
            let Some(&node) = self.index.get(id) else {
                continue;
            };
            self.weights_touched.insert(node);
            if self.state.nodes[node].own_weight.is_none() {
                self.state.nodes[node].own_weight = Some(*weight);
                self.dirty = true;
            } else if let Some(&set) = self.weights_set.get(&node)
                && set != *weight
            {
                self.weights_set.remove(&node);
                lost += 1;
            }
        }
        if lost > 0 {
            self.say_once(now, Said::WeightsLost);
        }
    }

    /// The weights were set as asked.
    pub(super) fn weights_applied(&mut self, weights: &[(NodeId, u32)]) {
        for (id, weight) in weights {
            if let Some(&node) = self.index.get(id) {
                self.weights_touched.insert(node);
                self.weights_set.insert(node, *weight);
            }
        }
    }

    /// A weight read or setting failed for good: without support for
    /// weights the session goes on without steering (said once); otherwise
    /// it is tried again after the policy's retry interval.
    pub(super) fn weights_refused(&mut self, now: Timestamp, action: &Action, error: &ActionError) {
        self.weights_rescan = true;
        if error.kind == ActionErrorKind::NotSupported {
            self.steering_unsupported = true;
            self.say_once(
                now,
                Said::WeightsUnsupported {
                    error: error.message.clone(),
                },
            );
            return;
        }
        self.retry_after_refusal(now, Timer::WeightRetry, action, error);
    }
}
