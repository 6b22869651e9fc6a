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
mod capacity_floor;
mod commands;
mod drive;
mod dry_runs;
mod events;
mod executor;
mod foreign_wait;
mod options;
mod refusals;
mod retry;
mod skip_matching;
mod stored_events;
mod wlm_capabilities;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
use crate::error::Result;
use crate::node::NodeId;
use crate::ports::Ports;
use crate::rollout::{Rollout, RolloutPolicy, Stage};
use crate::session::{SessionSpec, SessionStatus};
use crate::store::{Desired, SessionRecord, SessionStore, StoreHealth, WatchedStore};
use crate::time::Timestamp;

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
    /// The starting group as admission read it, for each session admitted
    /// here and not yet taken up by its task: the session's snapshot is
    /// taken from it, so the group is read once.
    admitted_members: Mutex<HashMap<Uuid, Vec<NodeId>>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Controller")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

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
                admitted_members: Mutex::new(HashMap::new()),
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
        // Whoever drives these sessions next reads their groups: members
        // read here may be old by then.
        lock(&self.inner.admitted_members).clear();
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

    /// Wakes the task driving `upgrade_id`, so it re-reads operator requests now.
    pub fn wake(&self, upgrade_id: Uuid) {
        if let Some(waker) = lock(&self.inner.wakers).get(&upgrade_id) {
            waker.notify_one();
        }
    }

    /// The current time by the controller's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }
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
