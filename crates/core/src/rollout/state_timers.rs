//! The timers whose due time follows from the state: a node due back from
//! its boot, a drain's timeout, a foreign node's wait for its owner, a
//! hold's `max_hold`, the polls of the boots under way. Each is set or
//! cleared by one function that reads it off the state, called wherever
//! that state changes, so [`Rollout::poll_timeout`] reads every wake-up
//! from [`Timers`] instead of working these out from the nodes in flight.
//! `Timers` is not persisted: after a restart they are rebuilt from the
//! persisted state in one place, [`Rollout::arm_timers_from_state`].

use super::*;

impl Rollout {
    /// Rebuilds the timers that follow from a persisted state, for a
    /// rollout that carries on from it (after a restart, or on another
    /// host). Walks the nodes out of service and the boots under way, not
    /// every node.
    pub(super) fn arm_timers_from_state(&mut self) {
        let in_flight: Vec<usize> = self
            .census
            .nodes_in(&[
                NodePhase::Draining,
                NodePhase::Booting,
                NodePhase::Verifying,
            ])
            .collect();
        for node in in_flight {
            self.arm_come_back(node);
            self.arm_drain_timers(node);
        }
        // A boot acknowledged before the restart is polled at once.
        let acknowledged: Vec<(u32, u32)> = self
            .census
            .boots_booting()
            .filter(|&(step, boot)| {
                self.boot_of(step, boot)
                    .is_some_and(|boot| boot.handle.is_some())
            })
            .collect();
        for (step, boot) in acknowledged {
            self.timers
                .bring_forward(Timer::BootPoll { step, boot }, Timestamp::EPOCH);
        }
        self.arm_hold_expiry();
    }

    /// Sets when `node` is due back from its boot ([`Timer::ComeBack`])
    /// while it is booting or verifying and not healthy yet; clears it
    /// otherwise.
    pub(super) fn arm_come_back(&mut self, node: usize) {
        let record = &self.state.nodes[node];
        let awaited = matches!(record.phase, NodePhase::Booting | NodePhase::Verifying)
            && record.healthy_since.is_none();
        let due = record
            .step
            .zip(self.census.latest_boot(node))
            .filter(|_| awaited)
            .and_then(|(step, boot)| self.boot_of(step, boot))
            .map(|boot| self.come_back_deadline(node, boot));
        self.timers.set_or_clear(Timer::ComeBack(node), due);
    }

    /// Sets when draining `node` times out, when something is done then:
    /// its drain's `drain_timeout` under an `on_drain_timeout` that acts
    /// ([`Timer::DrainTimeout`]; not once its jobs were requeued), or its
    /// wait for its owner under `foreign_out_of_service: wait`
    /// ([`Timer::ForeignWait`]). Clears what no longer applies.
    pub(super) fn arm_drain_timers(&mut self, node: usize) {
        let record = &self.state.nodes[node];
        let policy = &self.state.policy;
        let waits_for_owner = self.waits_for_owner(node);
        let drain_due = policy
            .drain_timeout
            .filter(|_| {
                record.phase == NodePhase::Draining
                    && policy.on_drain_timeout != OnDrainTimeout::Wait
                    && !waits_for_owner
                    && !self.requeued.contains(&node)
            })
            .zip(record.drain_asked_at)
            .map(|(timeout, asked)| asked + timeout);
        let foreign_due = self.foreign_wait_deadline(node);
        self.timers
            .set_or_clear(Timer::DrainTimeout(node), drain_due);
        self.timers
            .set_or_clear(Timer::ForeignWait(node), foreign_due);
    }

    /// Sets when the gates' hold turns into a halt ([`Timer::HoldExpires`]),
    /// if it will; clears it otherwise.
    pub(super) fn arm_hold_expiry(&mut self) {
        let due = self.hold_expires_at();
        self.timers.set_or_clear(Timer::HoldExpires, due);
    }

    /// Whether boot `boot` of step `step` waits for its next poll: it has
    /// nodes booting, was acknowledged, and no start or poll of it is
    /// queued or in flight.
    pub(super) fn boot_awaits_poll(&self, step: u32, boot: u32) -> bool {
        self.booting_and_unasked(step, boot)
            && self
                .boot_of(step, boot)
                .is_some_and(|record| record.handle.is_some())
    }

    /// Whether a boot with nodes booting waits to be started (the session's
    /// refusal delay runs, or the next pass sends it).
    pub(super) fn boot_awaits_start(&self) -> bool {
        self.census.boots_booting().any(|(step, boot)| {
            self.booting_and_unasked(step, boot)
                && self
                    .boot_of(step, boot)
                    .is_some_and(|record| record.handle.is_none())
        })
    }

    /// Whether boot `boot` of active step `step` has nodes booting and
    /// nothing asked of it: no start or poll of it queued or in flight.
    fn booting_and_unasked(&self, step: u32, boot: u32) -> bool {
        self.census.is_booting(step, boot)
            && self.census.step_active(step)
            && !self.boot_in_flight(step, boot)
    }
}
