//! `AppState`: what every handler shares — the controller, authentication and metrics.

use std::fmt;
use std::sync::Arc;

use crus_core::controller::Controller;
use crus_core::store::{RecordStatuses, StatusView};

use crate::auth::Auth;
use crate::leadership::Leadership;
use crate::limits::ServerLimits;
use crate::metrics::Metrics;

/// The state the router hands to every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Creates, runs and deletes sessions; also holds the store and the ports.
    controller: Controller,
    /// The session statuses `GET /session` and `GET /session/{id}` answer:
    /// by default decoded from the controller's store's records; a store
    /// with a faster view of its own is given with
    /// [`AppState::with_status_view`].
    statuses: Arc<dyn StatusView>,
    /// Checks the bearer token of every non-public request.
    auth: Arc<Auth>,
    /// Counts requests and exposes `/metrics`. The same instance should count
    /// the port calls ([`crate::instrument_ports`]), so one scrape shows both.
    metrics: Arc<Metrics>,
    /// Turns true when the server begins to shut down: event streams never
    /// end by themselves, and a graceful shutdown waits for every response,
    /// so they end when this changes.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// Whether this replica leads (always, with one replica), for `/readyz`
    /// and `/metrics`.
    leadership: Arc<Leadership>,
    /// What one client may take of the server.
    limits: Arc<ServerLimits>,
    /// One permit per dry run that may be planned at once; a plan holds its
    /// permit until it stops, even after its request went away.
    dry_runs: Arc<tokio::sync::Semaphore>,
    /// Changes the log level at once (`PATCH /options`); `None` when the
    /// embedder gave no way to (the option is then stored only).
    log_level: Option<LogLevelControl>,
}

/// Sets the process's log level: `Some(directives)` as `RUST_LOG` takes
/// them, `None` back to the level the process started with; an error says
/// why the directives were not applied.
pub type LogLevelControl = Arc<dyn Fn(Option<&str>) -> Result<(), String> + Send + Sync>;

impl AppState {
    /// State for a server whose sessions `controller` runs.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # fn demo(ports: crus_core::ports::Ports, store: Arc<dyn crus_core::store::SessionStore>) -> Result<(), crus_http::AuthError> {
    /// use crus_core::clock::SystemClock;
    /// use crus_core::controller::{Controller, ControllerConfig};
    /// use crus_http::{AppState, Auth, AuthConfig, Metrics, instrument_ports};
    ///
    /// let metrics = Arc::new(Metrics::new());
    /// let ports = instrument_ports(ports, &metrics);
    /// let controller = Controller::new(ports, store, Arc::new(SystemClock), ControllerConfig::default());
    /// let auth = Auth::new(AuthConfig { tokens: vec!["s3cret".into()], ..AuthConfig::default() })?;
    /// let state = AppState::new(controller, Arc::new(auth), metrics);
    /// # Ok(()) }
    /// ```
    pub fn new(controller: Controller, auth: Arc<Auth>, metrics: Arc<Metrics>) -> Self {
        let statuses = Arc::new(RecordStatuses::new(Arc::clone(controller.store())));
        AppState {
            controller,
            statuses,
            auth,
            metrics,
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
            leadership: Arc::new(Leadership::single()),
            dry_runs: Arc::new(tokio::sync::Semaphore::new(
                ServerLimits::default().dry_runs_at_once,
            )),
            limits: Arc::new(ServerLimits::default()),
            log_level: None,
        }
    }

    /// The same state, answering session statuses from `statuses`, which must
    /// be the view of the controller's store (the store itself for the
    /// stores crus ships: `Arc::new(store)` coerced twice), so the API reads
    /// what the controller wrote.
    pub fn with_status_view(mut self, statuses: Arc<dyn StatusView>) -> Self {
        self.statuses = statuses;
        self
    }

    /// The session statuses the API answers.
    pub fn statuses(&self) -> &Arc<dyn StatusView> {
        &self.statuses
    }

    /// The same state, changing the log level with `control` when the
    /// `log_level` option changes.
    pub fn with_log_level_control(mut self, control: LogLevelControl) -> Self {
        self.log_level = Some(control);
        self
    }

    /// Applies the `log_level` option (`None`: the level the process started
    /// with), if this server can change its level; a failure is logged.
    pub(crate) fn apply_log_level(&self, directives: Option<&str>) {
        let Some(control) = &self.log_level else {
            return;
        };
        match control(directives) {
            Ok(()) => tracing::info!(
                log_level = directives.unwrap_or("(as started)"),
                "log level changed"
            ),
            Err(error) => tracing::warn!(%error, "the log level option could not be applied"),
        }
    }

    /// The same state, enforcing `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: ServerLimits) -> Self {
        self.dry_runs = Arc::new(tokio::sync::Semaphore::new(
            limits
                .dry_runs_at_once
                .min(tokio::sync::Semaphore::MAX_PERMITS),
        ));
        self.limits = Arc::new(limits);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &ServerLimits {
        &self.limits
    }

    /// The permits of dry runs planned at once.
    pub(crate) fn dry_runs(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.dry_runs
    }

    /// The same state, reporting the role `leadership` tells (one replica
    /// among several); without it the server is the only replica and leads.
    pub fn with_leadership(mut self, leadership: Arc<Leadership>) -> Self {
        self.leadership = leadership;
        self
    }

    /// This replica's role.
    pub fn leadership(&self) -> &Arc<Leadership> {
        &self.leadership
    }

    /// The controller.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// The authentication in force.
    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Ends the event streams of every router built from this state (and its
    /// clones); [`crate::serve`] calls it when its shutdown signal arrives.
    pub fn begin_shutdown(&self) {
        self.closing.send_replace(true);
    }

    /// Told when [`AppState::begin_shutdown`] is called.
    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AppState")
            .field("controller", &self.controller)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}
