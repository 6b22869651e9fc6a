//! Builds the server from its settings: logging, auth, store, backends,
//! controller, listener; then serves until SIGINT or SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crus_backends::sim::{Faults, SimCluster, SimConfig, SyntheticWorkload, Workload};
use crus_backends::sqlite::SqliteStore;
use crus_core::clock::Clock;
use crus_core::controller::{Controller, ControllerConfig, EventLog};
use crus_core::ports::Ports;
use crus_core::rollout::RolloutPolicy;
use crus_core::store::{FaultyStore, SessionStore};
use crus_http::{AppState, Auth, AuthConfig, JwksUrlConfig, Leadership, Metrics, instrument_ports};

use crus_backends::service::{ServiceConfig, TokenSource};
use crus_backends::slurm::{NodeNaming, SlurmConfig, SlurmRebootConfig, SlurmRebootOrchestrator};

use crus_backends::cyclecloud::{
    CycleCloudBootOrchestrator, CycleCloudClient, CycleCloudConfig, CycleCloudInventory,
    CycleCloudPowerControl, PasswordSource,
};
use crus_backends::kadeploy::{
    KadeployBasicAuth, KadeployBootOrchestrator, KadeployConfig, KadeployPowerControl,
};
use crus_backends::redfish::RedfishPowerControl;

#[cfg(not(feature = "etcd"))]
use super::config::ETCD_NOT_BUILT;
use super::config::{
    AuthSection, Config, CycleCloudSection, KadeploySection, LogFormat, RedfishSection,
    ServiceSection, SimSection, SlurmRebootSection, SlurmSection, StoreKind,
};

/// Logs to standard error, as text or JSON, or to the journal (see `logging.rs`).
pub fn init_logging(format: LogFormat) {
    super::logging::init(format);
}

/// Starts everything and serves until a signal asks to stop.
pub async fn serve(settings: Config, jwt_secret: Option<String>) -> Result<(), String> {
    let auth = build_auth(&settings.auth, jwt_secret)?;
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
    let (ports, clock, redfish) = build_backends(&settings).await?;
    let metrics = Arc::new(Metrics::new());
    let ports = instrument_ports(ports, &metrics);
    let (controller, leadership, background): (_, _, Option<Background>) = match settings.store.kind
    {
        StoreKind::Sqlite => {
            let store = sqlite.ok_or("the session database was not opened")?;
            let controller = single_replica(&settings, store, ports, clock, &metrics).await?;
            (controller, Arc::new(Leadership::single()), None)
        }
        #[cfg(feature = "etcd")]
        StoreKind::Etcd => {
            let replica = super::replica::start(&settings, ports, clock, &metrics).await?;
            (replica.api, replica.leadership, Some(replica.background))
        }
        #[cfg(not(feature = "etcd"))]
        StoreKind::Etcd => return Err(format!("store.kind: {ETCD_NOT_BUILT}")),
    };

    let listener = tokio::net::TcpListener::bind(settings.server.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", settings.server.listen))?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("cannot read the listening address: {error}"))?;
    let shutdown = shutdown_signal();
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("crus listening on http://{address}");
    super::logging::log_events(controller.events());
    let state = AppState::new(controller.clone(), Arc::new(auth), metrics)
        .with_leadership(leadership)
        .with_limits(settings.server.limits());
    crus_http::serve(listener, state, shutdown)
        .await
        .map_err(|error| format!("the server failed: {error}"))?;
    // Every transition was committed before it was acted on, so stopping the
    // session tasks here loses nothing: the next start (or leader) resumes them.
    controller.stop_all();
    if let Some(background) = background {
        background.stop().await;
    }
    // BMCs have few session slots: give back the ones crus holds.
    if let Some(redfish) = redfish
        && let Err(error) = redfish.logout().await
    {
        tracing::warn!(%error, "could not end every Redfish session");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The settings every controller of this server runs with.
pub(super) fn controller_config(settings: &Config) -> ControllerConfig {
    ControllerConfig {
        default_policy: RolloutPolicy {
            boot_timeout: settings.default_boot_timeout(),
            poll_interval: settings.rollout.poll_interval,
            ..RolloutPolicy::default()
        },
        ..ControllerConfig::default()
    }
}

/// The session database, held for the process's life.
fn open_sqlite(settings: &Config) -> Result<Arc<dyn SessionStore>, String> {
    // Exclusive: a second server on the same file would drive the same
    // sessions (boot the same nodes); it refuses to start, naming the holder.
    let store = SqliteStore::open_exclusive(&settings.server.db).map_err(|error| {
        format!(
            "cannot open the session database {}: {error}",
            settings.server.db.display()
        )
    })?;
    let mut store: Arc<dyn SessionStore> = Arc::new(store);
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
    Ok(store)
}

/// The one replica, on SQLite: its controller drives every session, from
/// the stored unfinished ones on.
async fn single_replica(
    settings: &Config,
    store: Arc<dyn SessionStore>,
    ports: Ports,
    clock: Arc<dyn Clock>,
    metrics: &Arc<Metrics>,
) -> Result<Controller, String> {
    let controller = Controller::new(ports, store, clock, controller_config(settings));
    // Subscribed before sessions resume, so their first events are sent too.
    spawn_webhooks(settings, controller.events(), metrics)?;
    let resumed = controller
        .resume_all()
        .await
        .map_err(|error| format!("cannot read the stored sessions: {error}"))?;
    if resumed > 0 {
        tracing::info!(sessions = resumed, "resumed unfinished sessions");
    }
    Ok(controller)
}

/// A task running beside the HTTP server (a replica's election loop), told
/// to stop at shutdown.
pub(super) struct Background {
    /// Set to `true` to ask the task to stop.
    pub(super) stop: tokio::sync::watch::Sender<bool>,
    /// The task.
    pub(super) task: tokio::task::JoinHandle<()>,
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
pub(super) async fn ports_for_term(
    settings: &Config,
    metrics: &Arc<Metrics>,
    ports: &Ports,
    clock: &Arc<dyn Clock>,
) -> Result<(Ports, Arc<dyn Clock>), String> {
    if settings.sim.state.is_none() || !uses_sim(settings) {
        return Ok((ports.clone(), clock.clone()));
    }
    let (ports, clock, _redfish) = build_backends(settings).await?;
    Ok((instrument_ports(ports, metrics), clock))
}

/// Starts delivering rollout events from `events` to the `[[webhooks]]`
/// URLs, counting outcomes in `metrics`.
pub(super) fn spawn_webhooks(
    settings: &Config,
    events: &EventLog,
    metrics: &Arc<Metrics>,
) -> Result<(), String> {
    if settings.webhooks.is_empty() {
        return Ok(());
    }
    let hooks = settings
        .webhooks
        .iter()
        .map(|hook| hook.to_config())
        .collect::<Result<Vec<_>, _>>()?;
    for hook in &hooks {
        tracing::info!(url = %hook.url, events = ?hook.events, signed = hook.secret.is_some(), "webhook");
    }
    crus_backends::webhooks::spawn(
        hooks,
        events.subscribe(),
        Arc::new(WebhookMetrics(metrics.clone())),
    )?;
    Ok(())
}

/// Webhook outcomes as `crus_webhook_events_total`.
struct WebhookMetrics(Arc<Metrics>);

impl crus_backends::webhooks::DeliveryObserver for WebhookMetrics {
    fn delivered(&self, url: &str, _attempts: u32) {
        self.0.record_webhook(url, "delivered", 1);
    }
    fn failed(&self, url: &str, _why: &str) {
        self.0.record_webhook(url, "failed", 1);
    }
    fn dropped(&self, url: &str, count: u64) {
        self.0.record_webhook(url, "dropped", count);
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
/// Resolves at SIGINT or SIGTERM. SIGTERM is watched from this call on, not
/// from the first poll: the service manager may stop the server as soon as
/// it says it listens, and that stop must be graceful too.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            match terminate {
                Ok(mut terminate) => {
                    tokio::select! {
                        _ = interrupt => {}
                        _ = terminate.recv() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                    let _ = interrupt.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = interrupt.await;
        }
        tracing::info!("shutdown requested: no longer accepting requests");
    }
}

fn read_file(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the {what} {}: {error}", path.display()))
}

fn build_auth(section: &AuthSection, jwt_secret: Option<String>) -> Result<Auth, String> {
    let mut tokens = section.tokens.clone();
    if let Some(path) = &section.tokens_file {
        let text = read_file(path, "tokens file")?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_string),
        );
    }
    let mut secret = jwt_secret.map(String::into_bytes);
    if secret.is_none()
        && let Some(path) = &section.jwt_secret_file
    {
        secret = Some(
            read_file(path, "JWT secret file")?
                .trim_end()
                .as_bytes()
                .to_vec(),
        );
    }
    let config = AuthConfig {
        tokens,
        jwt_hs256_secret: secret,
        jwt_public_key_pem: match &section.jwt_public_key_file {
            Some(path) => Some(read_file(path, "JWT public key")?.into_bytes()),
            None => None,
        },
        jwks_json: match &section.jwks_file {
            Some(path) => Some(read_file(path, "JWKS file")?),
            None => None,
        },
        jwks_url: section.jwks_url.as_ref().map(|url| {
            let mut jwks_url = JwksUrlConfig::new(url.clone());
            jwks_url.ca_file.clone_from(&section.jwks_ca_file);
            if let Some(timeout) = section.jwks_timeout {
                jwks_url.timeout = timeout;
            }
            if let Some(interval) = section.jwks_min_refetch_interval {
                jwks_url.min_refetch_interval = interval;
            }
            jwks_url
        }),
        audience: section.audience.clone(),
        issuer: section.issuer.clone(),
        no_auth: section.no_auth,
    };
    Auth::new(config).map_err(|error| error.to_string())
}

/// The ports and the clock the controller runs on, and the Redfish power
/// control to log out of at shutdown. Each port comes from its own backend;
/// the simulated ones share one simulated cluster (and its clock).
async fn build_backends(
    settings: &Config,
) -> Result<(Ports, Arc<dyn Clock>, Option<Arc<RedfishPowerControl>>), String> {
    let backends = &settings.backends;
    let (sim_ports, clock): (Option<Ports>, Arc<dyn Clock>) = if uses_sim(settings) {
        let (ports, clock) = build_sim(&settings.sim)?;
        (Some(ports), clock)
    } else {
        (None, Arc::new(crus_core::clock::SystemClock))
    };
    let not_yet = |key: &str, value: &str| {
        format!(
            "{key} = {value:?} is not available in this build yet; available: see docs/crus.example.toml"
        )
    };
    // One client for every cyclecloud port: one connection pool, and the
    // password read once.
    let cyclecloud = match &settings.cyclecloud {
        Some(section) if !settings.cyclecloud_ports().is_empty() => Some(Arc::new(
            CycleCloudClient::new(cyclecloud_config(section, &settings.server.db)?)
                .map_err(|error| format!("[cyclecloud]: {error}"))?,
        )),
        _ => None,
    };
    let cyclecloud_client = |key: &str| {
        cyclecloud
            .clone()
            .ok_or_else(|| format!("{key} = \"cyclecloud\" needs the [cyclecloud] section"))
    };
    let mut file_inventory = None;
    let mut hsm_inventory = None;
    let inventory: Arc<dyn crus_core::ports::Inventory> =
        match (backends.inventory.as_str(), &sim_ports) {
            ("sim", Some(ports)) => ports.inventory.clone(),
            ("file", _) => {
                let inventory =
                    crus_backends::file_inventory::FileInventory::open(&settings.file.path)
                        .map_err(|error| format!("backends.inventory = \"file\": {error}"))?;
                file_inventory = Some(inventory.clone());
                Arc::new(inventory)
            }
            ("hsm", _) => {
                let config = service_config("hsm", settings.hsm.as_ref())?;
                let inventory = Arc::new(
                    crus_backends::hsm::HsmInventory::new(&config)
                        .map_err(|error| format!("[hsm]: {error}"))?,
                );
                hsm_inventory = Some((inventory.clone(), config.base_url.clone()));
                inventory
            }
            ("cyclecloud", _) => Arc::new(CycleCloudInventory::new(cyclecloud_client(
                "backends.inventory",
            )?)),
            (other, _) => return Err(not_yet("backends.inventory", other)),
        };
    // Built once for both Slurm ports: with `nid` names from HSM, building it
    // lists every node's NID.
    let slurm = if backends.workload_manager == "slurm" || backends.boot == "slurm-reboot" {
        let nids = match (&file_inventory, &hsm_inventory) {
            (Some(inventory), _) => NidSource::File(inventory),
            (None, Some((inventory, base_url))) => NidSource::Hsm {
                inventory,
                base_url,
            },
            (None, None) => NidSource::None,
        };
        Some(slurm_config(&settings.slurm, nids).await?)
    } else {
        None
    };
    let workload_manager: Arc<dyn crus_core::ports::WorkloadManager> = match (
        backends.workload_manager.as_str(),
        &sim_ports,
        &slurm,
    ) {
        ("sim", Some(ports), _) => ports.workload_manager.clone(),
        ("slurm", _, Some(slurm)) => Arc::new(crus_backends::slurm::SlurmWorkloadManager::new(
            slurm.clone(),
        )),
        ("none", _, _) => {
            tracing::warn!(
                "workload_manager = \"none\": nodes are rebooted without draining; use it only where nothing else runs jobs"
            );
            Arc::new(crus_backends::no_workload_manager::NoWorkloadManager)
        }
        (other, _, _) => return Err(not_yet("backends.workload_manager", other)),
    };
    let (boot_orchestrator, power_control) = match (backends.boot.as_str(), &sim_ports) {
        ("sim", Some(ports)) => (ports.boot_orchestrator.clone(), ports.power_control.clone()),
        ("bos", _) => {
            let config = service_config("bos", settings.bos.as_ref())?;
            let tenant = settings
                .bos
                .as_ref()
                .and_then(|bos| bos.tenant.as_deref())
                .unwrap_or_default();
            let bos: Arc<dyn crus_core::ports::BootOrchestrator> = Arc::new(
                crus_backends::bos::BosOrchestrator::new(&config)
                    .and_then(|bos| bos.with_tenant(tenant))
                    .map_err(|error| format!("[bos]: {error}"))?,
            );
            (bos, None)
        }
        ("bos-v1", _) => {
            let config = service_config("bos", settings.bos.as_ref())?;
            let bos: Arc<dyn crus_core::ports::BootOrchestrator> = Arc::new(
                crus_backends::bos::v1::BosV1Orchestrator::new(&config)
                    .map_err(|error| format!("[bos]: {error}"))?,
            );
            (bos, None)
        }
        ("slurm-reboot", _) => {
            let slurm = slurm.clone().ok_or_else(|| {
                "backends.boot = \"slurm-reboot\" needs the [slurm] settings".to_string()
            })?;
            let reboot: Arc<dyn crus_core::ports::BootOrchestrator> = Arc::new(
                SlurmRebootOrchestrator::new(slurm, slurm_reboot_config(&settings.slurm_reboot)),
            );
            (reboot, None)
        }
        ("kadeploy", _) => {
            let section = settings.kadeploy.as_ref().ok_or_else(|| {
                "backends.boot = \"kadeploy\" needs the [kadeploy] section".to_string()
            })?;
            let kadeploy: Arc<dyn crus_core::ports::BootOrchestrator> = Arc::new(
                KadeployBootOrchestrator::new(&kadeploy_config(section)?)
                    .map_err(|error| format!("[kadeploy]: {error}"))?,
            );
            (kadeploy, None)
        }
        ("cyclecloud", _) => {
            let reimage: Arc<dyn crus_core::ports::BootOrchestrator> = Arc::new(
                CycleCloudBootOrchestrator::new(cyclecloud_client("backends.boot")?),
            );
            (reimage, None)
        }
        (other, _) => return Err(not_yet("backends.boot", other)),
    };
    // Without backends.power, what crus did before it existed: the
    // simulator's power with simulated boots, none otherwise.
    let mut redfish = None;
    let power_control = match backends.power.as_deref() {
        None => power_control,
        Some("none") => None,
        Some("sim") => sim_ports
            .as_ref()
            .and_then(|ports| ports.power_control.clone()),
        Some("redfish") => {
            let section = settings.redfish.as_ref().ok_or_else(|| {
                "backends.power = \"redfish\" needs the [redfish] section".to_string()
            })?;
            let power = Arc::new(
                RedfishPowerControl::new(redfish_config(section)?)
                    .map_err(|error| format!("[redfish]: {error}"))?,
            );
            redfish = Some(power.clone());
            Some(power as Arc<dyn crus_core::ports::PowerControl>)
        }
        Some("cyclecloud") => Some(Arc::new(CycleCloudPowerControl::new(cyclecloud_client(
            "backends.power",
        )?)) as Arc<dyn crus_core::ports::PowerControl>),
        Some("kadeploy") => {
            let section = settings.kadeploy.as_ref().ok_or_else(|| {
                "backends.power = \"kadeploy\" needs the [kadeploy] section".to_string()
            })?;
            Some(Arc::new(
                KadeployPowerControl::new(&kadeploy_config(section)?)
                    .map_err(|error| format!("[kadeploy]: {error}"))?,
            ) as Arc<dyn crus_core::ports::PowerControl>)
        }
        Some(other) => return Err(not_yet("backends.power", other)),
    };
    let health_probe =
        crus_backends::health::SiteHealthProbe::new(crus_backends::health::HealthProbeConfig {
            allow_commands: settings.health.allow_commands,
            timeout: settings.health.timeout,
            allowed_http_hosts: settings.health.allowed_http_hosts.clone(),
        })
        .map_err(|error| format!("[health]: {error}"))?;
    if settings.health.allow_commands {
        tracing::warn!(
            "[health] allow_commands = true: sessions' health commands run on this server with its rights"
        );
    }
    Ok((
        Ports {
            inventory,
            workload_manager,
            boot_orchestrator,
            power_control,
            health_probe: Some(Arc::new(health_probe)),
        },
        clock,
        redfish,
    ))
}

/// Whether any port is the simulated cluster's.
fn uses_sim(settings: &Config) -> bool {
    let backends = &settings.backends;
    [
        &backends.inventory,
        &backends.workload_manager,
        &backends.boot,
    ]
    .iter()
    .any(|backend| backend.as_str() == "sim")
        || backends.power.as_deref() == Some("sim")
}

/// The Redfish settings of `backends.power = "redfish"`, with the password
/// read from its file.
fn redfish_config(
    section: &RedfishSection,
) -> Result<crus_backends::redfish::RedfishConfig, String> {
    use crus_backends::redfish::{NamingRule, RedfishAuth, RedfishConfig, SystemLocation};
    let credentials = || -> Result<(String, String), String> {
        let username = section.username.clone().ok_or_else(|| {
            format!(
                "redfish.username is required with auth = {:?}",
                section.auth
            )
        })?;
        let file = section.password_file.as_ref().ok_or_else(|| {
            format!(
                "redfish.password_file is required with auth = {:?}",
                section.auth
            )
        })?;
        Ok((username, read_secret(file, "redfish.password_file")?))
    };
    let auth = match section.auth.as_str() {
        "none" => RedfishAuth::None,
        "session" => {
            let (username, password) = credentials()?;
            RedfishAuth::Session { username, password }
        }
        _ => {
            let (username, password) = credentials()?;
            RedfishAuth::Basic { username, password }
        }
    };
    if section.insecure {
        tracing::warn!(
            "redfish.insecure = true: BMC certificates are not checked, so anyone on the path can impersonate a BMC"
        );
    }
    Ok(RedfishConfig {
        nodes: section
            .nodes
            .iter()
            .map(|(node, location)| {
                (
                    crus_core::NodeId::from(node.as_str()),
                    SystemLocation {
                        bmc_url: location.bmc_url.clone(),
                        system: location.system.clone(),
                    },
                )
            })
            .collect(),
        rule: section.bmc_url.as_ref().map(|bmc_url| NamingRule {
            bmc_url: bmc_url.clone(),
            system: section.system.clone(),
        }),
        auth,
        insecure: section.insecure,
        ca_file: section.ca_file.clone(),
        timeout: section.timeout,
        retries: section.retries,
        max_requests_per_bmc: section.max_requests_per_bmc,
        prefer_power_cycle: section.prefer_power_cycle,
        power_off_wait: section.power_off_wait,
        ..RedfishConfig::new()
    })
}

/// The contents of the file `path`, the value of the setting `key`.
fn read_setting_file(path: &Path, key: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|error| format!("{key}: cannot read {}: {error}", path.display()))
}

/// The contents of the secret file `path` (the setting `key`), without its
/// line ending; an unreadable or empty file is refused, naming the key.
fn read_secret(path: &Path, key: &str) -> Result<String, String> {
    let text = read_setting_file(path, key)?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(format!(
            "{key}: {} is empty; write the secret into it",
            path.display()
        ));
    }
    Ok(secret.to_string())
}

/// The settings of the `kadeploy` backends, with the password read from its
/// file. The authorized_keys location is passed on as it is: Kadeploy
/// fetches that file itself.
fn kadeploy_config(section: &KadeploySection) -> Result<KadeployConfig, String> {
    let basic_auth = match (&section.username, &section.password_file) {
        (Some(username), Some(file)) => Some(KadeployBasicAuth {
            username: username.clone(),
            password: read_secret(file, "kadeploy.password_file")?,
        }),
        (None, None) => None,
        _ => {
            return Err(
                "kadeploy.username and kadeploy.password_file go together; give both or neither"
                    .to_string(),
            );
        }
    };
    tracing::info!(
        base_url = %section.base_url,
        user = ?section.user,
        basic_auth = basic_auth.is_some(),
        host_domain = ?section.host_domain,
        "booting with Kadeploy"
    );
    let mut config = KadeployConfig::new(section.base_url.clone());
    config.user = section.user.clone();
    config.basic_auth = basic_auth;
    config.ca_file = section.ca_file.clone();
    config.timeout = section.timeout;
    config.retries = section.retries;
    config.ssh_authorized_keys = section.ssh_authorized_keys.clone();
    config.host_domain = section.host_domain.clone();
    config.block_device = section.block_device.clone();
    config.deploy_partition = section.deploy_partition.clone();
    config.power_base_url = section.power_base_url.clone();
    Ok(config)
}

/// The settings of the `cyclecloud` backends; the groups file defaults to
/// one beside the session database `db`.
fn cyclecloud_config(section: &CycleCloudSection, db: &Path) -> Result<CycleCloudConfig, String> {
    let password = match (&section.password_file, &section.password_env) {
        (Some(path), None) => {
            // Checked here so the error names the key; the client reads it again.
            read_secret(path, "cyclecloud.password_file")?;
            PasswordSource::File(path.clone())
        }
        (None, Some(variable)) => PasswordSource::Env(variable.clone()),
        _ => {
            return Err("cyclecloud: give one of password_file or password_env".to_string());
        }
    };
    if section.insecure {
        tracing::warn!(
            "cyclecloud.insecure = true: the server's certificate is not checked, so anyone on the path can read the password"
        );
    }
    let state_file = section.state_file_beside(db);
    tracing::info!(
        base_url = %section.base_url,
        cluster = %section.cluster,
        state_file = %state_file.display(),
        "CycleCloud cluster"
    );
    let mut config = CycleCloudConfig::new(
        section.base_url.clone(),
        section.cluster.clone(),
        section.username.clone(),
        password,
    )
    .with_state_file(state_file);
    config.ca_file = section.ca_file.clone();
    config.insecure = section.insecure;
    config.timeout = section.timeout;
    config.retries = section.retries;
    config.poll_interval = section.poll_interval;
    config.poll_timeout = section.poll_timeout;
    Ok(config)
}

/// The transport settings of a Cray service from its `[hsm]` or `[bos]` section.
fn service_config(key: &str, section: Option<&ServiceSection>) -> Result<ServiceConfig, String> {
    let section =
        section.ok_or_else(|| format!("the [{key}] section is required by [backends]"))?;
    let token = match (
        &section.token_file,
        &section.token_env,
        &section.oauth2_token_url,
    ) {
        (Some(path), None, None) => TokenSource::File(path.clone()),
        (None, Some(variable), None) => TokenSource::Env(variable.clone()),
        (None, None, Some(token_url)) => {
            let client_id = section.oauth2_client_id.clone().ok_or_else(|| {
                format!("{key}.oauth2_client_id is required with {key}.oauth2_token_url")
            })?;
            let secret_file = section.oauth2_client_secret_file.as_ref().ok_or_else(|| {
                format!("{key}.oauth2_client_secret_file is required with {key}.oauth2_token_url")
            })?;
            TokenSource::OAuth2ClientCredentials {
                token_url: token_url.clone(),
                client_id,
                client_secret: read_file(secret_file, "OAuth2 client secret")?
                    .trim()
                    .to_string(),
            }
        }
        (None, None, None) => TokenSource::None,
        _ => {
            return Err(format!(
                "{key}: give one of token_file, token_env or oauth2_token_url"
            ));
        }
    };
    let mut config = ServiceConfig::new(section.base_url.clone()).with_token(token);
    config.ca_file = section.ca_file.clone();
    config.timeout = section.timeout;
    config.retries = section.retries;
    Ok(config)
}

/// The reboot settings of `backends.boot = "slurm-reboot"`.
fn slurm_reboot_config(section: &SlurmRebootSection) -> SlurmRebootConfig {
    let templates = if section.templates.is_empty() {
        tracing::warn!(
            "slurm_reboot.templates is empty: any template a session names is handed to the RebootProgram; list the images it can boot to catch typos"
        );
        None
    } else {
        Some(section.templates.iter().cloned().collect())
    };
    SlurmRebootConfig {
        templates,
        clock_skew: section.clock_skew,
    }
}

/// Where `slurm.node_names = "nid"` finds each node's NID: the inventory
/// backend of the same server.
enum NidSource<'a> {
    /// `backends.inventory = "file"`: the NIDs in the file.
    File(&'a crus_backends::file_inventory::FileInventory),
    /// `backends.inventory = "hsm"`: the NIDs HSM lists at `base_url`.
    Hsm {
        inventory: &'a crus_backends::hsm::HsmInventory,
        base_url: &'a str,
    },
    /// An inventory that has no NIDs.
    None,
}

/// Slurm settings; `nid` naming reads each node's NID from the inventory.
///
/// The NIDs are read once, here, at start. A node added to the inventory
/// afterwards has no Slurm name until `crus serve` restarts; a drain or
/// resume naming it fails as for a node Slurm does not know. With HSM, a
/// start that cannot list the NIDs (HSM down after the client's retries,
/// wrong URL, refused token) is refused rather than running with no names.
async fn slurm_config(section: &SlurmSection, nids: NidSource<'_>) -> Result<SlurmConfig, String> {
    let node_names = match (section.node_names.as_str(), nids) {
        ("nid", NidSource::File(inventory)) => NodeNaming::NidFromInventory(
            inventory
                .nodes()
                .into_iter()
                .filter_map(|node| node.nid.map(|nid| (node.id, nid)))
                .collect(),
        ),
        (
            "nid",
            NidSource::Hsm {
                inventory,
                base_url,
            },
        ) => {
            let nids = inventory.node_nids().await.map_err(|error| {
                format!(
                    "slurm.node_names = \"nid\": cannot list the nodes' NIDs from HSM at {base_url} (hsm.base_url): {error}"
                )
            })?;
            if nids.is_empty() {
                tracing::warn!(
                    %base_url,
                    "slurm.node_names = \"nid\": HSM lists no node with a NID; every node will be unknown to Slurm"
                );
            } else {
                tracing::info!(nodes = nids.len(), "Slurm node names from the NIDs in HSM");
            }
            NodeNaming::NidFromInventory(nids)
        }
        ("nid", NidSource::None) => {
            return Err(
                "slurm.node_names = \"nid\" needs backends.inventory = \"file\" or \"hsm\""
                    .to_string(),
            );
        }
        _ => NodeNaming::Identity,
    };
    Ok(SlurmConfig {
        bin_dir: section.bin_dir.clone(),
        conf: section.conf.clone(),
        command_timeout: section.command_timeout,
        node_names,
    })
}

fn build_sim(section: &SimSection) -> Result<(Ports, Arc<dyn Clock>), String> {
    let workload = match section.trace.as_str() {
        "none" => Workload::None,
        "nasa" => Workload::nasa_ipsc().map_err(|error| format!("sim.trace: {error}"))?,
        "synthetic" => Workload::synthetic(&SyntheticWorkload {
            nodes: section.nodes,
            seed: section.seed,
            duration: Duration::from_secs(90 * 24 * 3600),
            ..SyntheticWorkload::default()
        }),
        path => Workload::from_swf_file(&PathBuf::from(path))
            .map_err(|error| format!("sim.trace: {error}"))?,
    };
    let config = SimConfig {
        nodes: section.nodes,
        seed: section.seed,
        workload,
        boot_time: section.boot_time,
        faults: Faults {
            boot_fail_rate: section.fail_rate,
            port_error_rate: section.port_fault_rate / 2.0,
            port_timeout_rate: section.port_fault_rate / 2.0,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let (sim, clock) = match &section.state {
        Some(path) => SimCluster::open_scaled_with_state_file(path, config, section.speed)
            .map_err(|error| {
                format!(
                    "cannot open the simulated cluster state {}: {error}",
                    path.display()
                )
            })?,
        None => {
            let clock = Arc::new(
                crus_backends::sim::ScaledClock::new(crus_core::Timestamp::now(), section.speed)
                    .map_err(|error| format!("sim.speed: {error}"))?,
            );
            let sim = SimCluster::new(config, clock.clone() as Arc<dyn Clock>)
                .map_err(|error| format!("cannot build the simulated cluster: {error}"))?;
            (sim, clock)
        }
    };
    tracing::info!(
        nodes = section.nodes,
        speed = section.speed,
        group = "compute",
        template = "compute-image",
        "simulated cluster ready"
    );
    Ok((sim.ports(), clock))
}
