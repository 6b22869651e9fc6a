//! The loop that drives one session: persist, act, feed back, wait.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Notify;
use uuid::Uuid;

use super::{Controller, execute, lock};
use crate::error::{Error, Result};
use crate::rollout::{Action, ActionError, ActionId, ActionOutput, Rollout};
use crate::session::SessionPhase;
use crate::store::{ChangedNodes, Desired, Revision, SessionDelta, SessionRecord};

/// A boxed future answering one action attempt.
type Attempt = Pin<Box<dyn Future<Output = (ActionId, Action, u32, Result<ActionOutput>)> + Send>>;

impl Controller {
    /// Drives session `upgrade_id` in the current task until it finishes (or,
    /// if it was deleted, until it is stopped and removed).
    pub async fn drive(&self, upgrade_id: Uuid) -> Result<()> {
        let waker = lock(&self.inner.wakers)
            .entry(upgrade_id)
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        let result = self.drive_loop(upgrade_id, &waker).await;
        lock(&self.inner.wakers).remove(&upgrade_id);
        self.inner.config.store_health.release(upgrade_id);
        result
    }

    async fn drive_loop(&self, upgrade_id: Uuid, waker: &Notify) -> Result<()> {
        let clock = &self.inner.clock;
        let Some(record) = self
            .with_store_retries(|| self.inner.store.get(upgrade_id))
            .await?
        else {
            return Err(Error::not_found(format!("session {upgrade_id}")));
        };
        let mut revision = record.revision;
        let mut desired = record.value.desired;
        let mut rollout = Rollout::resume(record.value.rollout);
        if let Some(members) = lock(&self.inner.admitted_members).remove(&upgrade_id) {
            rollout.snapshot_from_admission(members);
        }
        let mut attempts: FuturesUnordered<Attempt> = FuturesUnordered::new();
        let mut next_command_check = clock.now() + self.inner.config.command_poll_interval;
        // While the store refuses the session's state: how many tries failed
        // in a row, and when to try again. Nothing is acted on meanwhile
        // (persist before act), but answers to what is in flight are taken.
        let mut refused_saves: u32 = 0;
        let mut retry_save_at = tokio::time::Instant::now();
        // A write the store takes (another session's, a readiness probe's)
        // ends the wait: the store works again, so there is no reason to
        // hold the session until its backoff ends.
        let mut writes_taken = self.inner.config.store_health.writes_taken();
        // A new or resumed rollout has queued nothing yet: let it act now,
        // not after the first wait.
        rollout.handle_timeout(clock.now());

        loop {
            if desired.delete {
                rollout.cancel(clock.now());
            }
            let applied = rollout.state().commands_applied;
            rollout.apply_commands(clock.now(), desired.pending_commands(applied));
            let unsaved = refused_saves > 0;
            let due = !unsaved || tokio::time::Instant::now() >= retry_save_at;
            if (rollout.take_dirty() || unsaved) && due {
                match self.persist(&mut rollout, revision, &mut desired).await {
                    Ok(Persisted::At(new_revision)) => {
                        revision = new_revision;
                        self.saved_again(upgrade_id, &mut refused_saves);
                    }
                    Ok(Persisted::Gone) => return Ok(()),
                    Ok(Persisted::DesiredChanged(new_revision)) => {
                        revision = new_revision;
                        self.saved_again(upgrade_id, &mut refused_saves);
                        continue;
                    }
                    Err(error) => {
                        refused_saves = refused_saves.saturating_add(1);
                        let delay = self.inner.config.retry.delay(refused_saves);
                        retry_save_at = tokio::time::Instant::now() + delay;
                        tracing::error!(%upgrade_id, %error, attempt = refused_saves, "the session store refused to save the session; nothing is done until it does; retrying in {}", humantime::format_duration(delay));
                        // Only writes taken after this refusal end the wait.
                        writes_taken.borrow_and_update();
                        rollout.note_store_refusal(clock.now(), &error.to_string());
                        let mut status = rollout.status();
                        status.phase = Some(SessionPhase::Halted);
                        self.inner.config.store_health.hold(status);
                    }
                }
            }
            let unsaved = refused_saves > 0;
            if !unsaved {
                // Told once persisted: a reader never hears of a transition the
                // store could still lose.
                self.inner.events.publish(rollout.take_events());
                if rollout.is_finished() && !rollout.has_work_in_flight() && attempts.is_empty() {
                    if rollout.state().cancelled {
                        self.remove_record(upgrade_id).await?;
                    }
                    return Ok(());
                }
                while let Some((id, action)) = rollout.poll_action() {
                    attempts.push(self.attempt(id, action, 0, Duration::ZERO));
                }
            }

            let now = clock.now();
            let wake_at = rollout
                .poll_timeout()
                .map_or(next_command_check, |deadline| {
                    deadline.min(next_command_check)
                });
            let sleep = if unsaved {
                // Only the next try matters: the rollout may have work queued
                // that it cannot be given, and would ask to be woken at once.
                tokio::time::sleep_until(retry_save_at)
            } else {
                tokio::time::sleep(clock.wall_duration(wake_at.saturating_since(now)))
            };
            tokio::select! {
                Some(first) = attempts.next() => {
                    // Answers already in are handled together: one pass over
                    // the session and one persist, not one per answer.
                    let mut ready = vec![first];
                    while let Some(Some(more)) = attempts.next().now_or_never() {
                        ready.push(more);
                    }
                    let mut outcomes = Vec::with_capacity(ready.len());
                    for (id, action, attempt, result) in ready {
                        match result {
                            Err(error) if error.is_retryable() => {
                                rollout.note_retry(clock.now(), &action, &error.to_string());
                                let attempt = attempt + 1;
                                let delay = self.inner.config.retry.delay(attempt);
                                tracing::warn!(%upgrade_id, %error, attempt, "{}: retrying in {}", action.describe(), humantime::format_duration(delay));
                                // The wait is on the ports' clock: a simulated
                                // cluster at 600x is asked again 600 times
                                // sooner, as its own time runs (the identity
                                // for real backends).
                                attempts.push(self.attempt(id, action, attempt, clock.wall_duration(delay)));
                            }
                            Err(error) => {
                                tracing::warn!(%upgrade_id, %error, "{} failed", action.describe());
                                outcomes.push((id, Err(ActionError::from(&error))));
                            }
                            Ok(output) => outcomes.push((id, Ok(output))),
                        }
                    }
                    if !outcomes.is_empty() {
                        rollout.handle_outcomes(clock.now(), outcomes);
                    }
                }
                () = sleep => {
                    let now = clock.now();
                    if now >= next_command_check {
                        next_command_check = now + self.inner.config.command_poll_interval;
                        self.read_desired(upgrade_id, &mut desired).await;
                    }
                    rollout.handle_timeout(now);
                }
                () = waker.notified() => {
                    self.read_desired(upgrade_id, &mut desired).await;
                    rollout.handle_timeout(clock.now());
                    // An operator's request (a resume) tries the store again now.
                    retry_save_at = tokio::time::Instant::now();
                }
                Ok(()) = writes_taken.changed(), if unsaved => {
                    retry_save_at = tokio::time::Instant::now();
                }
            }
        }
    }

    /// The store took the session's state: what was held back while it
    /// refused may go ahead, and the API shows the stored status again.
    fn saved_again(&self, upgrade_id: Uuid, refused_saves: &mut u32) {
        if *refused_saves > 0 {
            tracing::info!(%upgrade_id, "the session store took the session's state again; carrying on");
            *refused_saves = 0;
            self.inner.config.store_health.release(upgrade_id);
        }
    }

    /// One attempt at `action`, after waiting `delay`.
    fn attempt(&self, id: ActionId, action: Action, attempt: u32, delay: Duration) -> Attempt {
        let ports = self.inner.ports.clone();
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let result = execute(&ports, &action).await;
            (id, action, attempt, result)
        })
    }

    /// Writes the rollout's state, keeping operator requests written
    /// meanwhile: the header and the nodes that changed since the last write
    /// (the node list keeps them), which the store writes alone when it
    /// keeps nodes apart.
    async fn persist(
        &self,
        rollout: &mut Rollout,
        mut revision: Revision,
        desired: &mut Desired,
    ) -> Result<Persisted> {
        let upgrade_id = rollout.state().upgrade_id;
        let mut desired_changed = false;
        loop {
            // Applied commands are not written again: the record's size does
            // not grow with the number of pauses and resumes.
            desired.compact_commands(rollout.state().commands_applied);
            let header = SessionRecord {
                rollout: rollout.header_state(),
                desired: desired.clone(),
            };
            let changed = rollout.state().nodes.unwritten_changes();
            let delta = SessionDelta {
                header: &header,
                rollout: rollout.state(),
                changed: changed
                    .as_deref()
                    .map_or(ChangedNodes::All, ChangedNodes::Only),
            };
            // Not retried here: the caller holds the session back, and says
            // why, until the store takes it.
            let written = self.inner.store.update_delta(&delta, revision).await;
            if written.is_ok() {
                rollout.mark_nodes_written();
            }
            match written {
                Ok(new_revision) if desired_changed => {
                    return Ok(Persisted::DesiredChanged(new_revision));
                }
                Ok(new_revision) => return Ok(Persisted::At(new_revision)),
                Err(Error::NotFound { .. }) => {
                    tracing::info!(%upgrade_id, "session record removed; stopping");
                    return Ok(Persisted::Gone);
                }
                Err(Error::Conflict { .. }) => {
                    // Only the API writes besides us, and only `desired`: take
                    // its request and write our state over the rest. The caller
                    // hands the request to the rollout before acting on anything.
                    let Some(current) = self
                        .with_store_retries(|| self.inner.store.get_desired(upgrade_id))
                        .await?
                    else {
                        return Ok(Persisted::Gone);
                    };
                    revision = current.revision;
                    if current.value != *desired {
                        *desired = current.value;
                        desired_changed = true;
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Takes the operator's requests from the stored record. A store that
    /// cannot be read keeps the requests known already: the session goes on
    /// (or waits for the store) rather than stopping for good.
    async fn read_desired(&self, upgrade_id: Uuid, desired: &mut Desired) {
        match self.inner.store.get_desired(upgrade_id).await {
            Ok(Some(record)) => *desired = record.value,
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%upgrade_id, %error, "cannot read the operator's requests from the session store; trying again later");
            }
        }
    }

    pub(super) async fn remove_record(&self, upgrade_id: Uuid) -> Result<()> {
        // A refused removal is tried again with backoff, as a refused save
        // is: this task is the only one that removes a deleted session, so
        // giving up would leave it shown as being deleted until a restart.
        let mut refused: u32 = 0;
        loop {
            let Some(record) = self
                .with_store_retries(|| self.inner.store.get(upgrade_id))
                .await?
            else {
                return Ok(());
            };
            match self
                .with_store_retries(|| self.inner.store.delete(upgrade_id, record.revision))
                .await
            {
                Ok(()) | Err(Error::NotFound { .. }) => return Ok(()),
                Err(Error::Conflict { .. }) => continue,
                Err(error) => {
                    refused = refused.saturating_add(1);
                    let delay = self.inner.config.retry.delay(refused);
                    tracing::error!(%upgrade_id, %error, attempt = refused, "the session store refused to remove the deleted session; retrying in {}", humantime::format_duration(delay));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Repeats a store call while it fails with a retryable error: nothing
    /// may be acted on before it is persisted, so the session waits.
    async fn with_store_retries<T, F, Fut>(&self, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(error) if error.is_retryable() => {
                    attempt += 1;
                    let delay = self.inner.config.retry.delay(attempt);
                    tracing::warn!(%error, attempt, "session store unavailable; retrying in {}", humantime::format_duration(delay));
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }
}

/// How a persist ended.
enum Persisted {
    /// Written at this revision.
    At(Revision),
    /// Written at this revision, and the operator's request changed meanwhile.
    DesiredChanged(Revision),
    /// The record no longer exists.
    Gone,
}
