//! `Controller`: the async shell that runs rollouts against the ports.
//!
//! For each session it loops: persist the rollout's state if it changed,
//! then execute the actions it asks for, then feed back their answers or let
//! time pass. Persisting comes first, so a controller that crashes at any
//! point leaves a stored state from which a new controller asks again for
//! whatever was owed; the actions are idempotent, so nothing is done twice.
//!
//! Retryable errors ([`crate::Error::is_retryable`]) are retried here with
//! backoff, forever, and told once in the session's messages; other errors go
//! back to the rollout, which decides (fail the node, or report and retry later).

mod admission;
mod events;
mod executor;
mod image_features;
mod options;
mod persisted_nodes;
mod retry;
mod skip_matching;
mod stored_events;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use uuid::Uuid;

pub use admission::{AdmissionRefusal, AdmissionRequest, Admitted, CreateError};
pub use events::{EventLog, Missed, NumberedEvent};
pub use executor::execute;
pub use options::OptionsRefusal;
pub use retry::RetryPolicy;
pub use stored_events::events_between;

use crate::clock::Clock;
use crate::error::{Dependency, Error, PartFailure, Result};
use crate::ports::Ports;
use crate::rollout::{
    Action, ActionError, ActionId, ActionOutput, FailureBudget, Rollout, RolloutPolicy, Stage,
};
use crate::session::{SessionPhase, SessionSpec, SessionStatus};
use crate::store::{
    ChangedNodes, Desired, OperatorCommand, Revision, SessionDelta, SessionRecord, SessionStore,
    StoreHealth, WatchedStore,
};
use crate::time::Timestamp;
use persisted_nodes::PersistedNodes;

/// Settings of a [`Controller`].
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Backoff for retryable errors, from ports and from the store.
    pub retry: RetryPolicy,
    /// How often a running session re-reads its record for operator requests
    /// written by another process (in-process requests wake it at once).
    pub command_poll_interval: Duration,
    /// The policy of sessions created without one (from the server's configuration).
    pub default_policy: RolloutPolicy,
    /// Whether this controller drives sessions. `false` for a replica that
    /// only serves the API while another process (the leader) drives them:
    /// it stores sessions and operator requests, and [`Controller::start`]
    /// does nothing; the leader learns of them from the shared store.
    pub drive_sessions: bool,
    /// Whether the store takes writes, as this controller's writes find it;
    /// shared with whoever reports on it (readiness, metrics), and between
    /// the controllers of one process that write to the same store.
    pub store_health: Arc<StoreHealth>,
    /// The boot backend sessions boot through, as the server options name
    /// it (`bos`, `kadeploy`, `cyclecloud`, `slurm_reboot`, `sim`): whose
    /// default boot timeout of the options applies. `None`: none does.
    pub boot_backend: Option<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            retry: RetryPolicy::default(),
            command_poll_interval: Duration::from_secs(5),
            default_policy: RolloutPolicy::default(),
            drive_sessions: true,
            store_health: Arc::new(StoreHealth::new()),
            boot_backend: None,
        }
    }
}

/// Runs sessions: creates them, drives each to completion in its own task,
/// and resumes unfinished ones after a restart.
///
/// Dropping the controller stops every session task it started (the sessions
/// stay stored, and a new controller resumes them).
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

struct Inner {
    /// The site's backends.
    ports: Ports,
    /// Where sessions are persisted, watched by `config.store_health`.
    store: Arc<dyn SessionStore>,
    /// Source of `now`.
    clock: Arc<dyn Clock>,
    /// Settings.
    config: ControllerConfig,
    /// Session tasks started by [`Controller::start`]; aborted on drop.
    tasks: Mutex<JoinSet<()>>,
    /// Wakers of the sessions being driven, so requests take effect at once.
    wakers: Mutex<HashMap<Uuid, Arc<Notify>>>,
    /// Recent events of every session; shared when several controllers (one
    /// per leadership term of a replica) feed one stream.
    events: Arc<EventLog>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Controller")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A boxed future answering one action attempt.
type Attempt = Pin<Box<dyn Future<Output = (ActionId, Action, u32, Result<ActionOutput>)> + Send>>;

impl Controller {
    /// A controller acting through `ports`, persisting to `store`, reading time from `clock`.
    pub fn new(
        ports: Ports,
        store: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
        config: ControllerConfig,
    ) -> Self {
        Self::with_events(ports, store, clock, config, Arc::new(EventLog::default()))
    }

    /// As [`Controller::new`], publishing events to `events` (shared with
    /// whoever else holds it) instead of a log of its own.
    pub fn with_events(
        ports: Ports,
        store: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
        config: ControllerConfig,
        events: Arc<EventLog>,
    ) -> Self {
        let store: Arc<dyn SessionStore> =
            Arc::new(WatchedStore::new(store, Arc::clone(&config.store_health)));
        Controller {
            inner: Arc::new(Inner {
                ports,
                store,
                clock,
                config,
                tasks: Mutex::new(JoinSet::new()),
                wakers: Mutex::new(HashMap::new()),
                events,
            }),
        }
    }

    /// The store sessions are kept in.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// Whether the store takes writes, as the last write found it.
    pub fn store_health(&self) -> &Arc<StoreHealth> {
        &self.inner.config.store_health
    }

    /// The status of session `upgrade_id` as it stands in memory, when the
    /// store refused to save it: halted, its messages saying why. The
    /// stored status is older, and the API shows this one instead.
    ///
    /// Held in the shared [`ControllerConfig::store_health`], so a
    /// store-only controller (a replica's API) shows what the controller of
    /// the same process driving the session holds.
    pub fn unsaved_status(&self, upgrade_id: Uuid) -> Option<SessionStatus> {
        self.inner.config.store_health.held(upgrade_id)
    }

    /// Every status [`Controller::unsaved_status`] holds now.
    pub fn unsaved_statuses(&self) -> Vec<SessionStatus> {
        self.inner.config.store_health.held_all()
    }

    /// The policy of sessions created without one, as configured (the
    /// stored options may change it: see [`Controller::current_default_policy`]).
    pub fn default_policy(&self) -> &RolloutPolicy {
        &self.inner.config.default_policy
    }

    /// The ports the controller acts through.
    pub fn ports(&self) -> &Ports {
        &self.inner.ports
    }

    /// Recent events of every session driven here, and new ones as they happen.
    pub fn events(&self) -> &EventLog {
        &self.inner.events
    }

    /// Why this server cannot run the health command or HTTP probe that
    /// `spec`'s policy asks for, if it cannot.
    fn health_refusal(&self, spec: &SessionSpec) -> Option<String> {
        let check = spec.policy.as_ref()?.health.as_ref()?.check()?;
        match &self.inner.ports.health_probe {
            None => Some(
                "This server runs no health probes, so it cannot run the policy's command or \
                 HTTP probe; leave them out (the workload manager's view and the soak still apply)."
                    .to_string(),
            ),
            Some(prober) => prober.refuses(&check),
        }
    }

    /// Why this server will not run the hooks `spec`'s policy names, one
    /// sentence per hook it refuses.
    fn hook_refusals(&self, spec: &SessionSpec) -> Vec<String> {
        let Some(hooks) = spec
            .policy
            .as_ref()
            .and_then(|policy| policy.hooks.as_ref())
        else {
            return Vec::new();
        };
        hooks
            .iter()
            .enumerate()
            .filter_map(|(position, hook)| {
                let why = match &self.inner.ports.hook_runner {
                    None => Some("This server runs no hooks; leave them out.".to_string()),
                    Some(runner) => runner.refuses(hook),
                };
                why.map(|why| format!("Hook {position}: {why}"))
            })
            .collect()
    }

    /// Why this server will not ask the alert gates `spec`'s policy names,
    /// one sentence per gate it refuses.
    fn gate_refusals(&self, spec: &SessionSpec) -> Vec<String> {
        let Some(gates) = spec
            .policy
            .as_ref()
            .and_then(|policy| policy.gates.as_ref())
        else {
            return Vec::new();
        };
        if gates.is_empty() {
            return Vec::new();
        }
        match &self.inner.ports.alert_gate {
            None => vec![
                "This server asks no alert gates, so the session would hold for ever (gates \
                 fail closed); leave the gates out."
                    .to_string(),
            ],
            Some(alert_gate) => gates
                .iter()
                .enumerate()
                .filter_map(|(position, gate)| {
                    alert_gate
                        .refuses(gate)
                        .map(|why| format!("Gate {position}: {why}"))
                })
                .collect(),
        }
    }

    /// Stores a new session in state `CREATED` (it starts when [`Controller::start`]
    /// or [`Controller::drive`] takes it up), without the checks of
    /// [`Controller::admit`] and claiming no node: for tests and benches
    /// that set up sessions directly. Servers and embedders admit sessions.
    pub async fn create_session(
        &self,
        spec: SessionSpec,
        policy: RolloutPolicy,
    ) -> Result<SessionStatus> {
        let (spec, policy) = self.resolve_policy(spec, &policy).await?;
        let rollout = Rollout::new(Uuid::new_v4(), spec, policy, self.inner.clock.now());
        let record = SessionRecord {
            rollout: rollout.state().clone(),
            desired: Desired::default(),
        };
        self.inner.store.create(&record).await?;
        Ok(rollout.status())
    }

    /// The policy a session runs with: `base` (the server's defaults) with the
    /// request's `policy` over it; a `step_percent` becomes the step size, a
    /// share of the starting group as it is now.
    pub async fn resolve_policy(
        &self,
        spec: SessionSpec,
        base: &RolloutPolicy,
    ) -> Result<(SessionSpec, RolloutPolicy)> {
        let members = if spec.upgrade_step_size == 0 {
            self.inner
                .ports
                .inventory
                .group_members(&spec.starting_label)
                .await?
                .len()
        } else {
            0
        };
        Ok(admission::resolve_policy(spec, base, members))
    }

    /// What session `spec` would do, and for how long, touching nothing: the
    /// same checks as a creation, then a [`dry_run`](crate::dry_run::dry_run)
    /// from the workload manager's current view of the starting group.
    pub async fn dry_run(
        &self,
        spec: SessionSpec,
        base: &RolloutPolicy,
        assumptions: &crate::dry_run::DryRunAssumptions,
    ) -> std::result::Result<crate::dry_run::DryRun, AdmissionRefusal> {
        let input = self.prepare_dry_run(spec, base).await?;
        Ok(crate::dry_run::forecast(input, assumptions))
    }

    /// The IO half of a dry run: the same checks as a creation, the policy
    /// applied, the starting group and the workload manager's current view of
    /// it. Planning it ([`crate::dry_run::dry_run_within`]) is CPU only, so a
    /// server can run it apart from the tasks that answer requests.
    pub async fn prepare_dry_run(
        &self,
        spec: SessionSpec,
        base: &RolloutPolicy,
    ) -> std::result::Result<crate::dry_run::DryRunInput, AdmissionRefusal> {
        let examined = self.examine(spec, base).await?;
        let observed = self
            .inner
            .ports
            .workload_manager
            .node_states(&examined.members)
            .await
            .map_err(|error| {
                AdmissionRefusal::Failed(PartFailure::new(Dependency::WorkloadManager, error))
            })?;
        // The queue only sharpens the forecast: without it the plan is made
        // from the nodes' job ends, and says so.
        let (queue, queue_note) = match self.inner.ports.workload_manager.queue().await {
            Ok(queue) => (Some(queue), None),
            Err(crate::Error::NotSupported { .. }) => (
                None,
                Some(
                    "The workload manager does not report its queue: the forecast leaves out queued and arriving jobs."
                        .to_string(),
                ),
            ),
            Err(error) => (
                None,
                Some(format!(
                    "The workload manager's queue could not be read ({error}): the forecast leaves out queued and arriving jobs."
                )),
            ),
        };
        // Under skip_matching the plan leaves out the nodes already on the
        // target image, as a session would; without them, it says why.
        let (images, images_note) = if examined.policy.skip_matching {
            match self
                .inner
                .ports
                .boot_orchestrator
                .current_images(&examined.members, &examined.spec.upgrade_template_id)
                .await
            {
                Ok(images) => (images, None),
                Err(error) => (
                    Vec::new(),
                    Some(format!(
                        "Cannot tell which nodes are already on the target image ({error}): the plan upgrades every node."
                    )),
                ),
            }
        } else {
            (Vec::new(), None)
        };
        Ok(crate::dry_run::DryRunInput {
            spec: examined.spec,
            policy: examined.policy,
            members: examined.members,
            observed,
            now: self.inner.clock.now(),
            queue,
            queue_note,
            images,
            images_note,
        })
    }

    /// Drives session `upgrade_id` in a background task, unless one runs
    /// already or this controller does not drive sessions
    /// ([`ControllerConfig::drive_sessions`]).
    pub fn start(&self, upgrade_id: Uuid) {
        if !self.inner.config.drive_sessions || lock(&self.inner.wakers).contains_key(&upgrade_id) {
            return;
        }
        // Register the waker now, so a second start() before the task runs is a no-op.
        lock(&self.inner.wakers).insert(upgrade_id, Arc::new(Notify::new()));
        let controller = self.clone();
        let mut tasks = lock(&self.inner.tasks);
        // A long-running server starts many sessions: drop finished tasks so
        // the set only holds the running ones.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            if let Err(error) = controller.drive(upgrade_id).await {
                tracing::error!(%upgrade_id, %error, "session stopped: {error}");
            }
        });
    }

    /// Acts on `record` as another process stored it (a replica's API, seen
    /// through a store watch): starts driving the session when it is
    /// unfinished or being deleted and no task here drives it yet, and wakes
    /// the task that does, so it reads the operator's new requests now.
    /// Idempotent: calling it again for the same record changes nothing.
    pub fn take_up(&self, record: &SessionRecord) {
        let upgrade_id = record.upgrade_id();
        if record.rollout.stage == Stage::Finished && !record.desired.delete {
            return;
        }
        if lock(&self.inner.wakers).contains_key(&upgrade_id) {
            self.wake(upgrade_id);
        } else {
            self.start(upgrade_id);
        }
    }

    /// Stops every session task at once, wherever it is. What a task had not
    /// persisted is redone by the next controller to drive the session (every
    /// action is idempotent); for a replica whose leadership ended, whose
    /// tasks would otherwise retry writes the store now refuses.
    pub fn stop_all(&self) {
        lock(&self.inner.tasks).abort_all();
        // Aborted tasks do not unregister themselves.
        lock(&self.inner.wakers).clear();
        self.inner.config.store_health.release_all();
    }

    /// How many session tasks run now.
    pub fn running(&self) -> usize {
        lock(&self.inner.wakers).len()
    }

    /// Starts every stored session that has not finished. Returns how many.
    pub async fn resume_all(&self) -> Result<usize> {
        let records = self.inner.store.list().await?;
        let mut started = 0;
        for record in records {
            let unfinished = record.value.rollout.stage != Stage::Finished;
            if unfinished || record.value.desired.delete {
                self.start(record.value.upgrade_id());
                started += 1;
            }
        }
        Ok(started)
    }

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

    /// Wakes the task driving `upgrade_id`, so it re-reads operator requests now.
    pub fn wake(&self, upgrade_id: Uuid) {
        if let Some(waker) = lock(&self.inner.wakers).get(&upgrade_id) {
            waker.notify_one();
        }
    }

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
        let mut persisted = PersistedNodes::of(&record.value.rollout);
        let mut rollout = Rollout::resume(record.value.rollout);
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
                match self
                    .persist(&mut rollout, revision, &mut desired, &mut persisted)
                    .await
                {
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
    /// (`persisted`), which the store writes alone when it keeps nodes apart.
    async fn persist(
        &self,
        rollout: &mut Rollout,
        mut revision: Revision,
        desired: &mut Desired,
        persisted: &mut PersistedNodes,
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
            let changed = persisted.changes(rollout.state());
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
                persisted.written(rollout.state(), changed.as_deref());
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

    async fn remove_record(&self, upgrade_id: Uuid) -> Result<()> {
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

    /// The current time by the controller's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps are updated by single inserts/removes, so a panic
    // elsewhere cannot leave them inconsistent.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
