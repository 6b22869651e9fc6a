//! One pass over the session: moves it forward as far as it can go
//! without an answer, and ends it.

use super::*;

impl Rollout {
    /// Lets time pass: checks timeouts and asks for whatever is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.advance(now);
    }

    /// Moves the session forward as far as it can go without an answer, and
    /// queues the actions now owed.
    pub(super) fn advance(&mut self, now: Timestamp) {
        self.judged_until = self.judged_until.max(now);
        // Refusals whose delay has passed are due now; forget them so they
        // are not reported as deadlines again.
        self.timers.clear_passed(now, |timer| {
            matches!(
                timer,
                Timer::NodeRetry(_) | Timer::SessionRetry | Timer::BootRate | Timer::FloorCheck
            )
        });
        match self.lifecycle() {
            Lifecycle::Snapshot => {
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
                    if self.images_owed() {
                        self.queue(self.read_images_action());
                    } else if let Some(members) = self.admitted_members.take() {
                        self.take_snapshot(now, members);
                    } else {
                        let label = self.state.spec.starting_label.clone();
                        self.queue(Action::ReadStartingGroup { label });
                    }
                }
            }
            Lifecycle::PreparingGroups => {
                if self.idle_at_session_level(now) {
                    self.queue(Action::PrepareGroups {
                        upgrading_label: self.state.spec.upgrading_label.clone(),
                        failed_label: self.state.spec.failed_label.clone(),
                    });
                }
            }
            // Deleting, nodes in flight finish and the others go back.
            Lifecycle::Running { .. } | Lifecycle::Cancelling => self.advance_running(now),
            Lifecycle::Cleanup
                if self.weights_owed() || self.features_owed() || self.reservations_owed() =>
            {
                self.queue_weight_actions(now);
                self.queue_feature_actions(now);
                self.queue_reservation_actions(now);
            }
            Lifecycle::Cleanup => {
                if self.idle_at_session_level(now) {
                    let label = self.state.spec.upgrading_label.clone();
                    self.queue(Action::ClearUpgradingGroup { label });
                }
            }
            Lifecycle::Finished { .. } => {}
        }
    }

    fn advance_running(&mut self, now: Timestamp) {
        // Several passes: finishing a step may start the next one at once.
        loop {
            let active = self.census.active_steps();
            // Only a node whose come-back timer has fired can be late: with
            // none due, no step's booting nodes need a look this pass.
            let come_back_due = self
                .timers
                .any_due(now, |timer| matches!(timer, Timer::ComeBack(_)));
            for &step in &active {
                if come_back_due {
                    self.check_boot_timeouts(now, step);
                }
                self.check_drain_timeouts(now, step);
                self.check_foreign_waits(now, step);
                if self.deletion_requested() {
                    self.release_unbooted(now, step);
                }
                self.tend_hooks(now, step);
                self.request_boots(now, step);
            }
            self.check_failure_budget(now);
            self.check_max_hold(now);
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
            while self.start_revert_batch(now) {}
            let started = u32::try_from(self.state.steps.len()).unwrap_or(u32::MAX);
            for step in first_new..started {
                self.check_drain_timeouts(now, step);
                self.tend_hooks(now, step);
            }
            self.tend_drain_ahead(now);
            let pending_left = self.census.any_pending();
            if !self.census.any_active_step()
                && (self.deletion_requested() || !pending_left)
                && self.state.drained_ahead.is_empty()
                && !self.revert_owed()
            {
                self.transition(now, SessionInput::Settled);
                self.advance(now);
                return;
            }
            break;
        }
        // Drain costs are wanted of pending nodes only. A want left from an
        // earlier pass (a node drained ahead, since taken, asked for them)
        // once the last pending node is taken is owed to no node: it would
        // keep the next workload poll armed with nothing to ask, a deadline
        // always due, and the controller would wake the session at once for
        // ever.
        if !self.census.any_pending() {
            self.want_pending_costs = false;
        }
        self.queue_running_actions(now);
        self.queue_ahead_returns(now);
        self.queue_weight_actions(now);
        self.queue_feature_actions(now);
        self.queue_reservation_actions(now);
        self.queue_gate_check(now);
    }

    /// Halts the session once more nodes failed than the budget allows.
    fn check_failure_budget(&mut self, now: Timestamp) {
        if !self.may_halt() {
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
            self.revert_upgraded_after_halt(now);
        }
    }

    pub(super) fn halt(&mut self, now: Timestamp, reason: String) {
        self.say(
            now,
            Said::Halted {
                reason: reason.clone(),
            },
        );
        self.emit(
            now,
            EventKind::Halted {
                reason: reason.clone(),
            },
        );
        self.transition(now, SessionInput::Halt { reason });
    }

    pub(super) fn finish(&mut self, now: Timestamp) {
        if self.is_finished() {
            return;
        }
        self.transition(now, SessionInput::Finish);
        let upgraded = self.state.count(NodePhase::Done);
        let failed = self.state.count(NodePhase::Failed);
        let reverted = self.state.count(NodePhase::Reverted);
        if self.deletion_requested() {
            self.say(now, Said::Deleted { upgraded, failed });
        } else {
            let summary = Summary {
                upgraded,
                total: self.state.nodes.len(),
                reverted,
                rollback_template: self.rollback_boot_template().unwrap_or_default(),
                failed,
                failed_label: self.state.spec.failed_label.clone(),
            };
            self.say(now, Said::Summary(summary));
            // CRUS's last message, word for word: clients match it.
            self.say(now, Said::Completed);
            self.set_state(SessionState::Ready, now);
        }
    }

    pub(super) fn fail_node(&mut self, node: usize, reason: String, now: Timestamp) {
        let id = self.state.nodes[node].id.clone();
        self.say(
            now,
            Said::NodeFailed {
                node: id,
                reason: reason.clone(),
            },
        );
        self.state.nodes[node].reason = Some(reason);
        self.move_node(node, NodeInput::Fail, now);
    }
}
