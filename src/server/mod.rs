//! A crus server as a library call: from a [`Config`] (a `crus.toml`), the
//! ports, the session store, the leader election on etcd and the HTTP API,
//! served on a listener until a shutdown future completes.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = crus::server::Config::load("crus.toml".as_ref())?;
//! let listener = tokio::net::TcpListener::bind(config.server.listen).await?;
//! crus::server::Server::from_config(config)?
//!     .run(listener, async { let _ = tokio::signal::ctrl_c().await; })
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! `crus serve` is argument parsing plus this call.

mod assemble;
mod auth;
mod boot_timeout;
pub mod check;
mod config;
mod error;
mod event_log_lines;
#[cfg(test)]
mod example_configs;
mod listen;
#[cfg(feature = "etcd")]
mod replica;
mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crus_backends::redfish::RedfishPowerControl;
use crus_backends::sqlite::SqliteStore;
use crus_core::clock::Clock;
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::ports::Ports;
use crus_core::rollout::RolloutPolicy;
use crus_core::store::{FaultyStore, SessionStore, StatusView};
use crus_http::{AppState, Auth, Leadership, Metrics, instrument_ports};
use tokio::net::TcpListener;

pub use assemble::{Assembled, ports};
pub use config::{
    AuthSettings, BackendKind, BackendsSection, BootBackend, Config, ConfigError, ETCD_NOT_BUILT,
    InventoryBackend, LogFormat, PowerBackend, RolloutSection, ServerConfig, StoreKind,
    StoreSection, WorkloadManagerBackend,
};
/// How a server changes the process's log level (the `log_level` option).
pub use crus_http::LogLevelControl;
pub use error::{BackendError, ServerError};
pub use event_log_lines::spawn_event_logging;
pub use listen::bind;

/// A server to build from its configuration; see the [module docs](self).
pub struct Server {
    settings: Config,
    jwt_secret: Option<String>,
    log_level: Option<LogLevelControl>,
}

impl Server {
    /// A server for `config`, checked; nothing is opened yet.
    pub fn from_config(config: Config) -> Result<Server, ServerError> {
        config.check()?;
        Ok(Server {
            settings: config,
            jwt_secret: None,
            log_level: None,
        })
    }

    /// This server changing the process's log level with `control` when the
    /// `log_level` option is set (at start, from the stored options, and by
    /// `PATCH /options`); without it the option is stored only.
    pub fn with_log_level_control(mut self, control: LogLevelControl) -> Server {
        self.log_level = Some(control);
        self
    }

    /// This server with the HS256 secret of accepted JWTs given outside the
    /// configuration file (it wins over `auth.jwt_secret_file`).
    pub fn with_jwt_secret(mut self, secret: Option<String>) -> Server {
        self.jwt_secret = secret;
        self
    }

    /// Opens the store, makes the ports, resumes the stored sessions (or
    /// starts campaigning for leadership on etcd): everything but listening.
    pub async fn start(self) -> Result<Started, ServerError> {
        let settings = self.settings;
        let auth = auth::build(&settings.auth, self.jwt_secret)?;
        if settings.auth.no_auth {
            tracing::warn!(
                "authentication is off (--no-auth): every request is accepted; never expose this server"
            );
        }
        // The database is taken first: a second server on the same file
        // refuses to start before it touches anything else (the simulated
        // cluster's state file, a backend).
        let sqlite = match settings.store.kind {
            StoreKind::Sqlite => Some(open_sqlite(&settings)?),
            StoreKind::Etcd => None,
        };
        let assembled = assemble::ports(&settings).await?;
        let metrics = Arc::new(Metrics::new());
        let ports = instrument_ports(assembled.ports, &metrics);
        let clock = assembled.clock;
        let (controller, statuses, leadership, background) = match (settings.store.kind, sqlite) {
            (StoreKind::Sqlite, Some((store, statuses))) => {
                let controller = single_replica(&settings, store, ports, clock, &metrics).await?;
                (controller, statuses, Arc::new(Leadership::single()), None)
            }
            #[cfg(feature = "etcd")]
            (StoreKind::Etcd, _) => {
                let replica = replica::start(&settings, ports, clock, &metrics).await?;
                (
                    replica.api,
                    replica.statuses,
                    replica.leadership,
                    Some(replica.background),
                )
            }
            #[cfg(not(feature = "etcd"))]
            (StoreKind::Etcd, _) => {
                return Err(ServerError::EtcdNotBuilt);
            }
            (StoreKind::Sqlite, None) => {
                return Err(ServerError::StoreOpen {
                    path: settings.server.db.clone(),
                    source: crus_core::Error::Other {
                        backend: "sqlite",
                        source: "the session database was not opened".into(),
                    },
                });
            }
        };
        if let Some(control) = &self.log_level {
            apply_stored_log_level(&controller, control).await;
        }
        Ok(Started {
            settings,
            auth,
            metrics,
            controller,
            statuses,
            leadership,
            background,
            redfish: assembled.redfish,
            log_level: self.log_level,
        })
    }

    /// Starts the server and serves the API on `listener` until `shutdown`
    /// completes.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        self.start().await?.run(listener, shutdown).await
    }
}

/// A started server: its sessions run; [`run`](Started::run) serves the API.
pub struct Started {
    settings: Config,
    auth: Auth,
    metrics: Arc<Metrics>,
    controller: Controller,
    /// The statuses the API answers: the store's own view.
    statuses: Arc<dyn StatusView>,
    leadership: Arc<Leadership>,
    background: Option<Background>,
    redfish: Option<Arc<RedfishPowerControl>>,
    log_level: Option<LogLevelControl>,
}

impl Started {
    /// The controller driving this server's sessions (its event log feeds
    /// the log lines and webhooks).
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// Serves the API on `listener` until `shutdown` completes, then stops
    /// the sessions' tasks (the next start, or leader, resumes them). Every
    /// rollout event is logged meanwhile ([`spawn_event_logging`]).
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        spawn_event_logging(self.controller.events());
        let mut state = AppState::new(self.controller.clone(), Arc::new(self.auth), self.metrics)
            .with_status_view(self.statuses)
            .with_leadership(self.leadership)
            .with_limits(self.settings.server.limits());
        if let Some(control) = self.log_level {
            state = state.with_log_level_control(control);
        }
        crus_http::serve(listener, state, shutdown)
            .await
            .map_err(ServerError::Serve)?;
        // Every transition was committed before it was acted on, so stopping the
        // session tasks here loses nothing: the next start (or leader) resumes them.
        self.controller.stop_all();
        if let Some(background) = self.background {
            background.stop().await;
        }
        // BMCs have few session slots: give back the ones crus holds.
        if let Some(redfish) = self.redfish
            && let Err(error) = redfish.logout().await
        {
            tracing::warn!(%error, "could not end every Redfish session");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The settings every controller of this server runs with.
fn controller_config(settings: &Config) -> ControllerConfig {
    ControllerConfig {
        default_policy: RolloutPolicy {
            boot_timeout: settings.default_boot_timeout(),
            poll_interval: settings.rollout.poll_interval,
            max_boots_per_minute: settings.rollout.max_boots_per_minute,
            max_hold: settings.rollout.max_hold,
            // Every session gets the server's gates, before its own.
            gates: settings.gates.clone(),
            ..RolloutPolicy::default()
        },
        boot_backend: Some(settings.boot_backend_option_name().to_string()),
        ..ControllerConfig::default()
    }
}

/// Sets the log level the stored options ask for, if any: an option set
/// by `PATCH /options` outlives a restart. Unreadable options (the store
/// not answering yet) leave the level as started, said in the log.
async fn apply_stored_log_level(controller: &Controller, control: &LogLevelControl) {
    match controller.options().await {
        Ok(options) => {
            if let Some(directives) = options.log_level.as_deref()
                && let Err(error) = control(Some(directives))
            {
                tracing::warn!(%error, "the stored log_level option could not be applied");
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read the stored options; the log level is as started")
        }
    }
}

/// A session store and the status view of its records.
type StoreAndView = (Arc<dyn SessionStore>, Arc<dyn StatusView>);

/// The session database, held for the process's life, and its status view
/// (the statuses kept beside the records, read without the fault rate:
/// reads never fail on purpose).
fn open_sqlite(settings: &Config) -> Result<StoreAndView, ServerError> {
    // Exclusive: a second server on the same file would drive the same
    // sessions (boot the same nodes); it refuses to start, naming the holder.
    let store = SqliteStore::open_exclusive(&settings.server.db).map_err(|source| {
        ServerError::StoreOpen {
            path: settings.server.db.clone(),
            source,
        }
    })?;
    let store = Arc::new(store);
    let statuses: Arc<dyn StatusView> = store.clone();
    let mut store: Arc<dyn SessionStore> = store;
    let fault_rate = settings.sim.store_fault_rate;
    if fault_rate > 0.0 {
        tracing::warn!(
            fault_rate,
            "--sim-store-fault-rate: that share of session store writes fails on purpose"
        );
        store = Arc::new(FaultyStore::with_fault_rate(
            store,
            fault_rate,
            settings.sim.seed,
        ));
    }
    Ok((store, statuses))
}

/// The one replica, on SQLite: its controller drives every session, from
/// the stored unfinished ones on.
async fn single_replica(
    settings: &Config,
    store: Arc<dyn SessionStore>,
    ports: Ports,
    clock: Arc<dyn Clock>,
    metrics: &Arc<Metrics>,
) -> Result<Controller, ServerError> {
    let controller = Controller::new(ports, store, clock, controller_config(settings));
    // Subscribed before sessions resume, so their first events are sent too.
    webhooks::spawn(settings, controller.events(), metrics)?;
    let resumed = controller
        .resume_all()
        .await
        .map_err(ServerError::StoredSessions)?;
    if resumed > 0 {
        tracing::info!(sessions = resumed, "resumed unfinished sessions");
    }
    Ok(controller)
}

/// A task running beside the HTTP server (a replica's election loop), told
/// to stop at shutdown.
struct Background {
    /// Set to `true` to ask the task to stop.
    stop: tokio::sync::watch::Sender<bool>,
    /// The task.
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Asks the task to stop and waits for it, at most a few seconds (it
    /// gives leadership up, which needs etcd to answer).
    async fn stop(self) {
        self.stop.send_replace(true);
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the replica did not stop within 5 s; leaving it");
        }
    }
}

/// The ports and clock a leadership term drives sessions with.
///
/// A simulated cluster kept in a state file is what several replicas share
/// (it plays the real cluster): each term opens it again, to carry on from
/// what the previous leader left in it. Every other backend is a client of a
/// service outside this process, so the replica's own ports serve every term.
#[cfg(feature = "etcd")]
async fn ports_for_term(
    settings: &Config,
    metrics: &Arc<Metrics>,
    ports: &Ports,
    clock: &Arc<dyn Clock>,
) -> Result<(Ports, Arc<dyn Clock>), ServerError> {
    if settings.sim.state.is_none() || !settings.backends.uses_sim() {
        return Ok((ports.clone(), clock.clone()));
    }
    let assembled = assemble::ports(settings).await?;
    Ok((instrument_ports(assembled.ports, metrics), assembled.clock))
}
