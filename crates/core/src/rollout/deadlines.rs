//! When the rollout wants to be woken, and what is late when it is: boots
//! that did not come back in time (with power escalation) and drains that
//! outlast `drain_timeout`.
//!
//! Every wake-up is a [`Timer`]: [`Rollout::poll_timeout`] is the earliest
//! of the timers that count now, and walks no nodes. The due times that
//! follow from the state (a node due back, a drain's timeout) are set where
//! that state changes and rebuilt from it after a restart
//! (`state_timers.rs`); the checks here still judge each node exactly.

use super::*;

impl Rollout {
    /// When the rollout next wants [`Rollout::handle_timeout`] called, if no
    /// answer arrives first. `None` when it is only waiting for answers.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        // Invariant: after `advance(now)`, every deadline named here is later
        // than `now` or belongs to something not yet asked for, so the
        // controller never spins on a deadline that has passed.
        match self.lifecycle() {
            Lifecycle::Snapshot | Lifecycle::PreparingGroups | Lifecycle::Cleanup => {
                if self.has_work_in_flight() {
                    return None;
                }
                self.timers.earliest(|timer, _| {
                    matches!(
                        timer,
                        Timer::SessionRetry
                            | Timer::WeightRetry
                            | Timer::FeatureRetry
                            | Timer::ReserveRetry
                    )
                })
            }
            Lifecycle::Running { .. } | Lifecycle::Cancelling => {
                let observing_workload =
                    self.is_in_flight(|action| matches!(action, Action::ObserveWorkload { .. }));
                // Draining and verifying nodes are watched (all in active steps).
                let watching = self.census.count(NodePhase::Draining)
                    + self.census.count(NodePhase::Verifying)
                    > 0;
                let workload_armed = (watching || self.want_pending_costs) && !observing_workload;
                let gates_armed = self.gate_check_wanted();
                let boot_awaits_start = self.boot_awaits_start();
                self.timers.earliest(|timer, at| match timer {
                    Timer::WorkloadPoll => workload_armed,
                    Timer::NodeRetry(_)
                    | Timer::WindowOpens
                    | Timer::FloorCheck
                    | Timer::BootRate
                    | Timer::WeightRetry
                    | Timer::FeatureRetry
                    | Timer::ReserveRetry
                    | Timer::DrainTimeout(_)
                    | Timer::ForeignWait(_)
                    | Timer::HoldExpires => true,
                    Timer::WeightCheck => self.weight_check_armed(),
                    Timer::FeatureCheck => self.feature_check_armed(),
                    Timer::ReservationCheck => self.reservation_check_armed(),
                    Timer::GatePoll => gates_armed,
                    // A deadline already judged waits for an observation
                    // asked for since (its poll is due or in flight).
                    Timer::ComeBack(_) => at > self.judged_until,
                    Timer::BootPoll { step, boot } => self.boot_awaits_poll(step, boot),
                    // While running, only a boot waiting to start waits for
                    // the session's refusal delay.
                    Timer::SessionRetry => boot_awaits_start,
                })
            }
            Lifecycle::Finished { .. } => None,
        }
    }

    /// Skips the workload and boot polls, and the read-backs of weights and
    /// features, that would fall before `until`: the next of each is the
    /// first one of the poll schedule at or after `until`. For a simulation
    /// (the dry run) that knows nothing it observes changes before then, so
    /// the skipped polls could only have seen what was seen already; with
    /// 100,000 nodes each poll is costly.
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
        self.timers.reschedule(
            |timer| {
                matches!(
                    timer,
                    Timer::WorkloadPoll
                        | Timer::BootPoll { .. }
                        | Timer::WeightCheck
                        | Timer::FeatureCheck
                        | Timer::ReservationCheck
                )
            },
            first_at_or_after,
        );
    }

    /// Deals with the nodes of a step that did not come back in time: power
    /// restarts them when the policy escalates (gracefully, then by force),
    /// and retries or fails them once that is exhausted too.
    pub(super) fn check_boot_timeouts(&mut self, now: Timestamp, step_number: u32) {
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
                // Booted and waiting for its post_boot hooks (each bounded by
                // its own timeout): their time is not the boot's.
                if self.awaits_post_boot_hooks(node) {
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
                    Seen::NotAsked => {}
                }
            }
        }
        if observe_workload {
            self.timers.bring_forward(Timer::WorkloadPoll, now);
        }
        for (step, boot) in observe_boots {
            self.timers
                .bring_forward(Timer::BootPoll { step, boot }, now);
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
                    self.arm_come_back(node);
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
            // Its boot was asked for and never acknowledged: there is
            // nothing to ask about, and the deadline counts from when the
            // boot was asked for.
            NodePhase::Booting if boot.handle.is_none() && self.boot_given_out(step, number) => {
                return Seen::Yes;
            }
            // Its boot has not gone out yet (the store refused to save the
            // session, which holds every action, or a refusal's delay runs):
            // the boot service was never asked, so the node cannot be late.
            NodePhase::Booting if boot.handle.is_none() => return Seen::NotAsked,
            NodePhase::Booting => self.boot_seen_at.get(&(step, number)).copied(),
            // A read of the workload covers only the nodes it named: one
            // asked before the node entered its phase (or at that instant:
            // which came first is not known) did not name it. A boot read
            // answered after it, as after a stall of the store, moves
            // booted nodes on to verifying; that read says nothing of them.
            _ => {
                let entered = self.state.nodes[node].since;
                self.workload_seen_at.filter(|&at| at > entered)
            }
        };
        match seen_at {
            Some(at) if at >= deadline => Seen::Yes,
            _ if self.state.nodes[node].phase == NodePhase::Booting => Seen::AskBoot,
            _ => Seen::AskWorkload,
        }
    }

    /// Whether the start of boot `boot` of step `step` has been handed to
    /// the controller and not yet answered (queued is not enough: a queued
    /// action is held while the store refuses to save the session).
    fn boot_given_out(&self, step: u32, boot: u32) -> bool {
        self.in_flight.values().any(|action| {
            matches!(action, Action::StartBoot { step: s, boot: b, .. } if *s == step && *b == boot)
        })
    }

    /// When `node`, awaited after `boot`, must be back: the boot timeout
    /// after the boot service acknowledged the boot (after it was decided
    /// on, while unacknowledged), or after the power restart that followed.
    pub(super) fn come_back_deadline(&self, node: usize, boot: &StepBoot) -> Timestamp {
        let policy = &self.state.policy;
        match self.state.nodes[node].escalation {
            None => boot.started_at.unwrap_or(boot.requested_at) + policy.boot_timeout,
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
        self.arm_come_back(node);
        let policy = &self.state.policy;
        let said = if first {
            Said::RestartingGracefully {
                node: id,
                boot_timeout: policy.boot_timeout,
                grace: policy.graceful_restart_grace(),
            }
        } else {
            Said::RestartingByForce {
                node: id,
                grace: policy.graceful_restart_grace(),
            }
        };
        self.say(now, said);
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
    pub(super) fn check_drain_timeouts(&mut self, now: Timestamp, step_number: u32) {
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
            // A node its owner holds under `foreign_out_of_service: wait`
            // has its own deadline (see `check_foreign_waits`).
            .filter(|&node| !self.waits_for_owner(node))
            // Counted from its drain's ask: not while its pre_drain hooks
            // run or the floor holds it.
            .filter(|&node| {
                self.state.nodes[node]
                    .drain_asked_at
                    .is_some_and(|asked| now >= asked + timeout)
            })
            .collect();
        let waited = humantime::format_duration(timeout);
        for node in late {
            let id = self.state.nodes[node].id.clone();
            match action {
                OnDrainTimeout::Skip => {
                    self.state.nodes[node].reason = Some(format!(
                        "did not drain within {waited}; returned to service without upgrade"
                    ));
                    self.say(
                        now,
                        Said::DrainTimedOutSkipped {
                            node: id,
                            waited: timeout,
                        },
                    );
                    self.move_node(node, NodeInput::Release, now);
                }
                OnDrainTimeout::Force => {
                    self.state.nodes[node].forced = true;
                    self.say(
                        now,
                        Said::DrainTimedOutForced {
                            node: id,
                            waited: timeout,
                        },
                    );
                    self.move_node(node, NodeInput::Force, now);
                }
                OnDrainTimeout::Requeue => {
                    if self.requeued.insert(node) {
                        self.arm_drain_timers(node);
                        self.say(
                            now,
                            Said::DrainTimedOutRequeueing {
                                node: id.clone(),
                                waited: timeout,
                            },
                        );
                        self.queue(Action::RequeueJobs { nodes: vec![id] });
                    }
                }
                OnDrainTimeout::Wait => {}
            }
        }
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
    /// No: its boot has not been asked of the boot service yet.
    NotAsked,
}
