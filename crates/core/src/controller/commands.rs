//! The operator's requests to a running session: delete, pause, resume.

use uuid::Uuid;

use super::Controller;
use crate::error::{Error, Result};
use crate::rollout::{FailureBudget, Rollout};
use crate::session::SessionStatus;
use crate::store::OperatorCommand;

impl Controller {
    /// Asks session `upgrade_id` to stop safely and be removed. Returns its
    /// status after the request, or `None` if there is no such session.
    pub async fn request_delete(&self, upgrade_id: Uuid) -> Result<Option<SessionStatus>> {
        loop {
            let Some(mut record) = self.inner.store.get(upgrade_id).await? else {
                return Ok(None);
            };
            record.value.desired.delete = true;
            let mut rollout = Rollout::resume(record.value.rollout.clone());
            let finished_before = rollout.is_finished();
            rollout.cancel(self.inner.clock.now());
            match self
                .inner
                .store
                .update(&record.value, record.revision)
                .await
            {
                Ok(_) => {
                    if finished_before {
                        self.remove_record(upgrade_id).await?;
                    } else {
                        self.wake(upgrade_id);
                        self.start(upgrade_id);
                    }
                    return Ok(Some(rollout.status()));
                }
                Err(Error::Conflict { .. }) => continue,
                Err(Error::NotFound { .. }) => return Ok(None),
                Err(error) => return Err(error),
            }
        }
    }

    /// Asks session `upgrade_id` to take no new node until resumed; nodes in
    /// flight finish. `None` if there is no such session; `Some(Err)` with the
    /// reason when the session cannot be paused.
    pub async fn request_pause(
        &self,
        upgrade_id: Uuid,
    ) -> Result<Option<std::result::Result<SessionStatus, String>>> {
        self.request_command(upgrade_id, OperatorCommand::Pause)
            .await
    }

    /// Asks session `upgrade_id` to take nodes again after a pause or a halt,
    /// with a new failure budget if given.
    pub async fn request_resume(
        &self,
        upgrade_id: Uuid,
        max_failures: Option<FailureBudget>,
    ) -> Result<Option<std::result::Result<SessionStatus, String>>> {
        self.request_command(upgrade_id, OperatorCommand::Resume { max_failures })
            .await
    }

    async fn request_command(
        &self,
        upgrade_id: Uuid,
        command: OperatorCommand,
    ) -> Result<Option<std::result::Result<SessionStatus, String>>> {
        loop {
            let Some(mut record) = self.inner.store.get(upgrade_id).await? else {
                return Ok(None);
            };
            if record.value.desired.delete {
                return Ok(Some(Err("the session is being deleted".to_string())));
            }
            // Tried on a copy first, so a command that would be refused is
            // refused now, with its reason, instead of stored. Only the
            // commands are applied to the copy: its stored state may be
            // older than what the driving task knows of the nodes, so no
            // timeout is judged here (a node whose boot succeeded would be
            // reported failed).
            let mut rollout = Rollout::resume(record.value.rollout.clone());
            let now = self.inner.clock.now();
            let applied = record.value.rollout.commands_applied;
            for pending in record.value.desired.pending_commands(applied) {
                // A refused command changes nothing, as when it is applied.
                let _refused = rollout.record_command(now, pending);
            }
            if let Err(reason) = rollout.record_command(now, &command) {
                return Ok(Some(Err(reason)));
            }
            // Commands already applied are dropped as a new one is added, so
            // the record stays small however many an operator sends.
            record.value.desired.compact_commands(applied);
            record.value.desired.commands.push(command.clone());
            match self
                .inner
                .store
                .update(&record.value, record.revision)
                .await
            {
                Ok(_) => {
                    self.wake(upgrade_id);
                    // A session whose task ended (a server of an older
                    // build, an error) is taken up again.
                    if !rollout.is_finished() {
                        self.start(upgrade_id);
                    }
                    return Ok(Some(Ok(rollout.status())));
                }
                Err(Error::Conflict { .. }) => continue,
                Err(Error::NotFound { .. }) => return Ok(None),
                Err(error) => return Err(error),
            }
        }
    }
}
