//! Operator requests to a session: delete, pause, resume.

use super::*;

impl Rollout {
    /// Deletion requested: take no new node, return nodes not yet booted to
    /// service, let boots in flight finish, then empty the upgrading group.
    /// The state is `DELETING` from now on, a finished session's too (as in
    /// CRUS, whose DELETE answered every session so before removing it).
    pub fn cancel(&mut self, now: Timestamp) {
        if self.deletion_requested() {
            return;
        }
        // Before its snapshot a session has nothing to clean up: it ends now.
        let at_snapshot = self.lifecycle() == Lifecycle::Snapshot;
        self.transition(now, SessionInput::Cancel);
        self.set_state(SessionState::Deleting, now);
        if !self.is_finished() {
            self.say(now, Said::DeletionRequested);
        }
        if at_snapshot {
            self.finish(now);
        }
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
        if self.is_finished() || self.deletion_requested() {
            return false;
        }
        if !self.is_paused() {
            self.transition(now, SessionInput::Pause);
            self.say(
                now,
                Said::Paused {
                    reason: reason.to_string(),
                },
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
        if self.is_finished() || self.deletion_requested() {
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
        // What a resume lifts: a pause, a halt, or both.
        if self.is_paused() || self.is_halted() {
            self.transition(now, SessionInput::Resume);
            self.say(now, Said::Resumed);
            self.emit(now, EventKind::Resumed);
        }
        Ok(())
    }

    /// Applies `pending`, the operator commands not applied yet, oldest
    /// first (see [`Desired::pending_commands`](crate::store::Desired::pending_commands)).
    pub fn apply_commands(&mut self, now: Timestamp, pending: &[OperatorCommand]) {
        for command in pending {
            if let Err(reason) = self.apply_command(now, command) {
                self.say_once(now, Said::RequestRefused { reason });
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
}
