//! Alert gates: the site's monitoring holds the session while it reports
//! trouble. Nodes are taken only within a poll interval of a check that
//! found every gate clear; a gate that blocks, or cannot be asked (fail
//! closed), holds the session until it clears, and `max_hold` bounds how
//! long before the session halts for an operator.

use super::*;

impl Rollout {
    fn has_gates(&self) -> bool {
        !self.state.policy.gates.is_empty()
    }

    /// Whether the gates let nodes be taken now. Without a clear answer
    /// asked for within the last poll interval, one is asked for and
    /// nothing is taken until it comes.
    pub(super) fn gates_let_take(&mut self, now: Timestamp) -> bool {
        if !self.has_gates() {
            return true;
        }
        if self.state.gated.is_some() {
            return false;
        }
        let fresh = self
            .gates_clear_at
            .is_some_and(|at| now < at + self.state.policy.poll_interval);
        if !fresh {
            self.want_gate_check = true;
        }
        fresh
    }

    /// Whether a check of the gates is wanted: nodes wait to be taken, or
    /// soak after their boot, or a hold waits to clear, and the session
    /// could take nodes once they clear.
    pub(super) fn gate_check_wanted(&self) -> bool {
        self.has_gates()
            && self.may_take_nodes()
            && (self.want_gate_check
                || self.state.gated.is_some()
                || self.census.count(NodePhase::Verifying) > 0)
            && !self.is_in_flight(|action| matches!(action, Action::CheckGates { .. }))
    }

    /// Queues a check of the gates when one is wanted and due.
    pub(super) fn queue_gate_check(&mut self, now: Timestamp) {
        if self.gate_check_wanted() && self.timers.passed(Timer::GatePoll, now) {
            let gates = self.state.policy.gates.clone();
            let id = self.queue(Action::CheckGates { gates });
            self.asked_at.insert(id, now);
        }
    }

    /// When a hold by the gates turns into a halt (`max_hold`), if it will.
    pub(super) fn hold_expires_at(&self) -> Option<Timestamp> {
        let hold = self.state.gated.as_ref()?;
        let max_hold = self.state.policy.max_hold?;
        self.may_halt().then(|| hold.since + max_hold)
    }

    /// Halts a session the gates held for longer than `max_hold`.
    pub(super) fn check_max_hold(&mut self, now: Timestamp) {
        let Some(expires) = self.hold_expires_at() else {
            return;
        };
        if now < expires {
            return;
        }
        let reasons = self
            .state
            .gated
            .as_ref()
            .map(|hold| hold.reasons.join("; "))
            .unwrap_or_default();
        let max_hold = self
            .state
            .policy
            .max_hold
            .map(humantime::format_duration)
            .map(|text| text.to_string())
            .unwrap_or_default();
        self.halt(
            now,
            format!("alert gates held the session for {max_hold} (max_hold): {reasons}"),
        );
        self.revert_upgraded_after_halt(now);
    }

    /// What the gates answered to a check asked for at `asked_at`.
    pub(super) fn observe_gates(
        &mut self,
        now: Timestamp,
        asked_at: Option<Timestamp>,
        verdicts: &[GateVerdict],
    ) {
        self.timers
            .set(Timer::GatePoll, now + self.state.policy.poll_interval);
        self.want_gate_check = false;
        // A session deleted or ended meanwhile is held by nothing.
        if !self.is_running() {
            return;
        }
        let reasons: Vec<String> = verdicts.iter().filter_map(GateVerdict::reason).collect();
        if reasons.is_empty() {
            self.gates_clear_at = self.gates_clear_at.max(asked_at);
            if let Some(hold) = self.state.gated.clone()
                && self.transition(now, SessionInput::GatesCleared)
            {
                let held =
                    std::time::Duration::from_secs(now.saturating_since(hold.since).as_secs());
                self.say(now, Said::GatesCleared { held });
                self.emit(now, EventKind::GatesCleared);
            }
            return;
        }
        self.gates_clear_at = None;
        let before = self.state.gated.as_ref().map(|hold| hold.reasons.clone());
        if before.as_ref() == Some(&reasons) {
            return;
        }
        if !self.transition(
            now,
            SessionInput::Gate {
                reasons: reasons.clone(),
            },
        ) {
            return;
        }
        let said = match before {
            None => Said::Gated {
                reasons: reasons.clone(),
                max_hold: self.state.policy.max_hold,
            },
            Some(_) => Said::StillGated {
                reasons: reasons.clone(),
            },
        };
        self.say(now, said);
        self.emit(now, EventKind::Gated { reasons });
    }
}
