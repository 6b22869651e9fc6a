//! `crus.toml`: the configuration of `crus serve`, read with serde.
//!
//! Every section and key is optional; command-line flags override the file.
//! Unknown keys are refused with their name, so a typo does not silently fall
//! back to a default. `docs/crus.example.toml` is an annotated example.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where and how the server listens and stores sessions.
    pub server: ServerConfig,
    /// Which session store: SQLite (one replica) or etcd (several).
    pub store: StoreSection,
    /// The etcd cluster, when `store.kind = "etcd"`.
    pub etcd: EtcdSection,
    /// Who may call the API.
    pub auth: AuthSection,
    /// Defaults of every session's rollout policy.
    pub rollout: RolloutSection,
    /// Which backend implements each port.
    pub backends: BackendsSection,
    /// The simulated cluster, when a backend is `sim`.
    pub sim: SimSection,
    /// The inventory file, when `backends.inventory = "file"`.
    pub file: FileSection,
    /// Cray HSM, when `backends.inventory = "hsm"`.
    pub hsm: Option<ServiceSection>,
    /// Cray BOS, when `backends.boot = "bos"` (v2 sessions) or `"bos-v1"`
    /// (v1 sessions).
    pub bos: Option<ServiceSection>,
    /// Slurm, when `backends.workload_manager = "slurm"` or `backends.boot = "slurm-reboot"`.
    pub slurm: SlurmSection,
    /// Slurm's reboots, when `backends.boot = "slurm-reboot"`.
    pub slurm_reboot: SlurmRebootSection,
    /// How policies' health commands and HTTP probes are run.
    pub health: HealthSection,
    /// Redfish BMCs, when `backends.power = "redfish"`.
    pub redfish: Option<RedfishSection>,
    /// Kadeploy3, when `backends.boot` or `backends.power` is `"kadeploy"`.
    pub kadeploy: Option<KadeploySection>,
    /// Azure CycleCloud, when the inventory, the power or the boots are `cyclecloud`.
    pub cyclecloud: Option<CycleCloudSection>,
    /// `[[webhooks]]`: URLs that receive the rollout events as they happen.
    pub webhooks: Vec<WebhookSection>,
}

/// `[hsm]` and `[bos]`: where a Cray service is and how to authenticate to
/// it; `tenant` and `boot_timeout` are `[bos]`'s only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// Base URL, with the gateway prefix (e.g. `https://api-gw-service-nmn.local/apis/smd`).
    pub base_url: String,
    /// A file holding the bearer token (read at every call, so rotation works).
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// OAuth2 client-credentials token endpoint (Keycloak).
    pub oauth2_token_url: Option<String>,
    /// OAuth2 client id.
    pub oauth2_client_id: Option<String>,
    /// A file holding the OAuth2 client secret.
    pub oauth2_client_secret_file: Option<PathBuf>,
    /// A PEM bundle of CAs to trust (a site CA).
    pub ca_file: Option<PathBuf>,
    /// Timeout of each call.
    #[serde(default = "default_service_timeout", with = "humantime_duration")]
    pub timeout: Duration,
    /// Retries of a call that met a 5xx or no answer.
    #[serde(default = "default_service_retries")]
    pub retries: u32,
    /// `[bos]`: the tenant whose session templates and sessions crus uses,
    /// sent as `Cray-Tenant-Name` (BOS v2 only: v1 rejects tenants).
    #[serde(default)]
    pub tenant: Option<String>,
    /// `[bos]`: the boot timeout of sessions whose policy sets none, unless
    /// `rollout.boot_timeout` is set (see `boot_timeout.rs`).
    #[serde(default, with = "humantime_duration_option")]
    pub boot_timeout: Option<Duration>,
}

fn default_service_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_service_retries() -> u32 {
    3
}

/// `[redfish]`: node power through Redfish BMCs (see
/// `crus_backends::redfish`). Nodes are placed by `nodes` first, then by the
/// `bmc_url` and `system` templates (`{node}`, `{bmc}`, `{n}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedfishSection {
    /// The BMC URL template of every node not in `nodes`, e.g. `https://{bmc}`.
    pub bmc_url: Option<String>,
    /// The system template (matched to a system's `Id`, `Name` or `UUID`);
    /// absent: the BMC's only system.
    pub system: Option<String>,
    /// Nodes placed explicitly: node id = `{ bmc_url = "...", system = "..." }`.
    pub nodes: std::collections::BTreeMap<String, RedfishNodeSection>,
    /// `none`, `basic` or `session`.
    pub auth: String,
    /// The BMC account, for `basic` and `session`.
    pub username: Option<String>,
    /// A file holding its password (kept out of this file).
    pub password_file: Option<PathBuf>,
    /// Accept self-signed BMC certificates (anyone on the path could then
    /// impersonate a BMC).
    pub insecure: bool,
    /// A PEM bundle of CAs that signed the BMCs' certificates.
    pub ca_file: Option<PathBuf>,
    /// Timeout of each request.
    #[serde(with = "humantime_duration")]
    pub timeout: Duration,
    /// Retries of a read that met a 5xx or no answer.
    pub retries: u32,
    /// Requests in flight to one BMC at most.
    pub max_requests_per_bmc: usize,
    /// Restart with `PowerCycle` when offered, before `ForceRestart`.
    pub prefer_power_cycle: bool,
    /// How long a `ForceOff`-then-`On` restart waits for `Off`.
    #[serde(with = "humantime_duration")]
    pub power_off_wait: Duration,
}

/// One node of `[redfish.nodes]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedfishNodeSection {
    /// Its BMC's base URL.
    pub bmc_url: String,
    /// Its system (`Id`, `Name` or `UUID`); absent: the BMC's only system.
    #[serde(default)]
    pub system: Option<String>,
}

impl Default for RedfishSection {
    fn default() -> Self {
        let defaults = crus_backends::redfish::RedfishConfig::new();
        RedfishSection {
            bmc_url: None,
            system: None,
            nodes: std::collections::BTreeMap::new(),
            auth: "basic".into(),
            username: None,
            password_file: None,
            insecure: defaults.insecure,
            ca_file: None,
            timeout: defaults.timeout,
            retries: defaults.retries,
            max_requests_per_bmc: defaults.max_requests_per_bmc,
            prefer_power_cycle: defaults.prefer_power_cycle,
            power_off_wait: defaults.power_off_wait,
        }
    }
}

/// `[kadeploy]`: booting with Kadeploy3 deployments (see
/// `crus_backends::kadeploy`), when `backends.boot = "kadeploy"`, and its
/// power and reboot operations when `backends.power = "kadeploy"`. A
/// session's template is a Kadeploy environment, `name[:version][@user]`,
/// or an image location.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KadeploySection {
    /// The API root to which `/deployment` is appended, e.g.
    /// `https://api.grid5000.fr/4.0/sites/nantes`.
    pub base_url: String,
    /// The user deployments run as (the `X-Remote-Ident` header).
    pub user: Option<String>,
    /// The account of HTTP basic auth, from outside the site.
    pub username: Option<String>,
    /// A file holding that account's password (kept out of this file).
    pub password_file: Option<PathBuf>,
    /// A PEM bundle of CAs that signed the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Timeout of each request.
    #[serde(default = "default_kadeploy_timeout", with = "humantime_duration")]
    pub timeout: Duration,
    /// Retries of a request that may be repeated and met a 5xx or no answer.
    #[serde(default = "default_kadeploy_retries")]
    pub retries: u32,
    /// Where the authorized_keys file every deployed node gets is (so
    /// health checks can log in), sent to Kadeploy as it is: a path, a
    /// `server://` path or an http(s) URL that Kadeploy fetches itself; crus
    /// reads no file. `ssh_authorized_keys_file`, its earlier name, means
    /// the same.
    #[serde(alias = "ssh_authorized_keys_file")]
    pub ssh_authorized_keys: Option<String>,
    /// The DNS domain of Kadeploy's host names (`econome-8` is
    /// `econome-8.nantes.grid5000.fr`); absent: node ids are host names.
    pub host_domain: Option<String>,
    /// The block device to deploy on; absent: the cluster's default.
    pub block_device: Option<String>,
    /// The partition of the block device to deploy on; absent: the cluster's default.
    pub deploy_partition: Option<String>,
    /// The boot timeout of sessions whose policy sets none, unless
    /// `rollout.boot_timeout` is set (see `boot_timeout.rs`).
    #[serde(default, with = "humantime_duration_option")]
    pub boot_timeout: Option<Duration>,
    /// The API root of Kadeploy's `/power` and `/reboot`, for
    /// `backends.power = "kadeploy"`; absent: `base_url`.
    pub power_base_url: Option<String>,
}

fn default_kadeploy_timeout() -> Duration {
    crus_backends::kadeploy::KadeployConfig::new("").timeout
}

fn default_kadeploy_retries() -> u32 {
    crus_backends::kadeploy::KadeployConfig::new("").retries
}

/// `[cyclecloud]`: one Azure CycleCloud cluster (see
/// `crus_backends::cyclecloud`), when `backends.inventory`, `backends.power`
/// or `backends.boot` is `cyclecloud`; every one of them shares one client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CycleCloudSection {
    /// The CycleCloud server, e.g. `https://cyclecloud.example.com`.
    pub base_url: String,
    /// The cluster whose nodes crus upgrades.
    pub cluster: String,
    /// The CycleCloud account crus authenticates as.
    pub username: String,
    /// A file holding its password (kept out of this file).
    pub password_file: Option<PathBuf>,
    /// Or an environment variable holding it.
    pub password_env: Option<String>,
    /// A PEM bundle of CAs that signed the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (anyone on the path could then read the password).
    #[serde(default)]
    pub insecure: bool,
    /// Timeout of each request.
    #[serde(default = "default_cyclecloud_timeout", with = "humantime_duration")]
    pub timeout: Duration,
    /// Retries of a request that met a 5xx or no answer.
    #[serde(default = "default_cyclecloud_retries")]
    pub retries: u32,
    /// Pause between two reads of a node operation's progress.
    #[serde(
        default = "default_cyclecloud_poll_interval",
        with = "humantime_duration"
    )]
    pub poll_interval: Duration,
    /// How long a power call follows its node operation at most.
    #[serde(
        default = "default_cyclecloud_poll_timeout",
        with = "humantime_duration"
    )]
    pub poll_timeout: Duration,
    /// The JSON file keeping the groups crus creates (CycleCloud has no group
    /// API); absent: `cyclecloud-groups.json` beside `server.db`.
    pub state_file: Option<PathBuf>,
    /// The boot timeout of sessions whose policy sets none, unless
    /// `rollout.boot_timeout` is set (see `boot_timeout.rs`).
    #[serde(default, with = "humantime_duration_option")]
    pub boot_timeout: Option<Duration>,
}

/// The backend's own defaults, which the section's follow.
fn cyclecloud_defaults() -> crus_backends::cyclecloud::CycleCloudConfig {
    use crus_backends::cyclecloud::{CycleCloudConfig, PasswordSource};
    CycleCloudConfig::new("", "", "", PasswordSource::Static(String::new()))
}

fn default_cyclecloud_timeout() -> Duration {
    cyclecloud_defaults().timeout
}

fn default_cyclecloud_retries() -> u32 {
    cyclecloud_defaults().retries
}

fn default_cyclecloud_poll_interval() -> Duration {
    cyclecloud_defaults().poll_interval
}

fn default_cyclecloud_poll_timeout() -> Duration {
    cyclecloud_defaults().poll_timeout
}

impl CycleCloudSection {
    /// The groups file: `state_file`, or `cyclecloud-groups.json` in the
    /// directory of the session database `db`, which already holds what
    /// crus must keep across restarts.
    pub fn state_file_beside(&self, db: &Path) -> PathBuf {
        self.state_file
            .clone()
            .unwrap_or_else(|| db.with_file_name("cyclecloud-groups.json"))
    }
}

/// `[slurm]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSection {
    /// The `slurm.conf` to use (`SLURM_CONF`); Slurm's default when absent.
    pub conf: Option<PathBuf>,
    /// Where `scontrol` and `squeue` are; `PATH` when absent.
    pub bin_dir: Option<PathBuf>,
    /// How long one Slurm command may run.
    #[serde(with = "humantime_duration")]
    pub command_timeout: Duration,
    /// How node ids become Slurm names: `identity`, or `nid` (`nid000001` from
    /// each node's NID in the inventory file, as Cray systems name them).
    pub node_names: String,
}

impl Default for SlurmSection {
    fn default() -> Self {
        SlurmSection {
            conf: None,
            bin_dir: None,
            command_timeout: Duration::from_secs(30),
            node_names: "identity".into(),
        }
    }
}

/// `[slurm_reboot]`: booting with `scontrol reboot` (see
/// `crus_backends::slurm::SlurmRebootOrchestrator`): the template a session
/// names is written into the reboot reason as `image=<template>`, for the
/// site's `RebootProgram` to boot that image.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmRebootSection {
    /// The templates (images) the `RebootProgram` can boot; a boot naming
    /// another is refused before any node reboots. Empty: any one-word name.
    pub templates: Vec<String>,
    /// How far a node's clock may be behind crus's and its new `BootTime`
    /// still count as the reboot crus asked for.
    #[serde(with = "humantime_duration")]
    pub clock_skew: Duration,
    /// The boot timeout of sessions whose policy sets none, unless
    /// `rollout.boot_timeout` is set; keep it above slurm.conf's
    /// `ResumeTimeout` (see `boot_timeout.rs`).
    #[serde(with = "humantime_duration_option")]
    pub boot_timeout: Option<Duration>,
}

impl Default for SlurmRebootSection {
    fn default() -> Self {
        let defaults = crus_backends::slurm::SlurmRebootConfig::default();
        SlurmRebootSection {
            templates: Vec::new(),
            clock_skew: defaults.clock_skew,
            boot_timeout: None,
        }
    }
}

/// `[health]`: how the server runs a policy's `health.command` and
/// `health.http` on booted nodes (see `crus_backends::health`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSection {
    /// Whether policies may name a command, run on this server with its
    /// rights; off by default, so a token holder cannot run anything here.
    pub allow_commands: bool,
    /// How long one check may take before it counts as failed.
    #[serde(with = "humantime_duration")]
    pub timeout: Duration,
    /// The hosts a policy's `health.http` may name: host names,
    /// `*.domain`, `{node}` (the nodes themselves, the default) or `*` (any
    /// host: any token holder could make the server fetch any URL).
    pub allowed_http_hosts: Vec<String>,
}

impl Default for HealthSection {
    fn default() -> Self {
        let defaults = crus_backends::health::HealthProbeConfig::default();
        HealthSection {
            allow_commands: defaults.allow_commands,
            timeout: defaults.timeout,
            allowed_http_hosts: defaults.allowed_http_hosts,
        }
    }
}

impl HealthSection {
    /// Checks what the types alone do not.
    fn check(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::Invalid {
                key: "health.timeout".into(),
                message: "must be longer than zero".into(),
            });
        }
        for host in &self.allowed_http_hosts {
            let wildcard_domain = host.strip_prefix("*.");
            let name = wildcard_domain.unwrap_or(host);
            let fits = host == "*"
                || (!name.is_empty()
                    && !name.contains('*')
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._[]:{}".contains(c)));
            if !fits {
                return Err(ConfigError::Invalid {
                    key: "health.allowed_http_hosts".into(),
                    message: format!(
                        "{host:?} is not a host: write a host name (\"monitor.example.org\"), \"*.example.org\", \"{{node}}\" or \"*\", without scheme, port or path"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// `[[webhooks]]`: one URL that receives rollout events (see
/// `crus_backends::webhooks`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// Where events are POSTed.
    pub url: String,
    /// Event names to send; all when left out.
    #[serde(default)]
    pub events: Vec<String>,
    /// File holding the HMAC-SHA256 key of the `X-Crus-Signature-256`
    /// header (kept out of the configuration file, which is often readable).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// How long one POST may take.
    #[serde(default = "default_webhook_timeout", with = "humantime_duration")]
    pub timeout: Duration,
    /// Tries per event before it is given up.
    #[serde(default = "default_webhook_attempts")]
    pub max_attempts: u32,
    /// Events waiting for this URL at most; older ones are dropped beyond.
    #[serde(default = "default_webhook_queue")]
    pub queue: usize,
}

fn default_webhook_timeout() -> Duration {
    crus_backends::webhooks::WebhookConfig::new("").timeout
}

fn default_webhook_attempts() -> u32 {
    crus_backends::webhooks::WebhookConfig::new("").max_attempts
}

fn default_webhook_queue() -> usize {
    crus_backends::webhooks::WebhookConfig::new("").queue
}

impl WebhookSection {
    /// The hook, with its secret read from `secret_file`.
    pub fn to_config(&self) -> Result<crus_backends::webhooks::WebhookConfig, String> {
        let secret = match &self.secret_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    format!(
                        "webhooks: cannot read the secret_file {} of {}: {error}",
                        path.display(),
                        self.url
                    )
                })?;
                let secret = text.trim().to_string();
                if secret.is_empty() {
                    return Err(format!(
                        "webhooks: the secret_file {} of {} is empty",
                        path.display(),
                        self.url
                    ));
                }
                Some(secret)
            }
        };
        Ok(self.hook(secret))
    }

    /// The hook, signing with `secret`.
    fn hook(&self, secret: Option<String>) -> crus_backends::webhooks::WebhookConfig {
        crus_backends::webhooks::WebhookConfig {
            url: self.url.clone(),
            events: self.events.clone(),
            secret,
            timeout: self.timeout,
            max_attempts: self.max_attempts,
            queue: self.queue,
        }
    }
}

/// `[file]`: the inventory file crus owns (see `crus_backends::file_inventory`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSection {
    /// The JSON file with the nodes and groups.
    pub path: PathBuf,
}

impl Default for FileSection {
    fn default() -> Self {
        FileSection {
            path: PathBuf::from("inventory.json"),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// SQLite file holding the sessions.
    pub db: PathBuf,
    /// Log lines as `text` or `json`, or to the systemd journal (`journald`).
    pub log_format: LogFormat,
    /// A request taking longer than this is answered 503.
    #[serde(with = "humantime_duration")]
    pub request_timeout: Duration,
    /// Connections held open at most; at the limit a new one closes the
    /// connection idle the longest (or is answered 503 when none is idle).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, from their
    /// first byte, before its connection is closed.
    #[serde(with = "humantime_duration")]
    pub header_read_timeout: Duration,
    /// How long a connection may wait for its next (or first) request
    /// before it is closed.
    #[serde(with = "humantime_duration")]
    pub idle_timeout: Duration,
    /// Dry runs (`POST /session?dry_run=true`) planned at once at most; one
    /// more is answered 503.
    pub dry_runs_at_once: usize,
    /// How long one dry run may plan (at most `request_timeout`) before it
    /// is stopped and answered 503.
    #[serde(with = "humantime_duration")]
    pub dry_run_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let limits = crus_http::ServerLimits::default();
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            db: PathBuf::from("crus.db"),
            log_format: LogFormat::Text,
            request_timeout: limits.request_timeout,
            max_connections: limits.max_connections,
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            dry_runs_at_once: limits.dry_runs_at_once,
            dry_run_timeout: limits.dry_run_timeout,
        }
    }
}

impl ServerConfig {
    /// The limits the server enforces.
    pub fn limits(&self) -> crus_http::ServerLimits {
        crus_http::ServerLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            dry_runs_at_once: self.dry_runs_at_once,
            dry_run_timeout: self.dry_run_timeout,
            ..crus_http::ServerLimits::default()
        }
    }

    /// Checks what the types alone do not.
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("server.{key}"),
            message,
        };
        for (key, count) in [
            ("max_connections", self.max_connections),
            ("dry_runs_at_once", self.dry_runs_at_once),
        ] {
            if count == 0 || count > MAX_SERVER_COUNT {
                return Err(invalid(
                    key,
                    format!("{count} is not between 1 and {MAX_SERVER_COUNT}"),
                ));
            }
        }
        check_positive(
            "server",
            &[
                ("request_timeout", self.request_timeout),
                ("header_read_timeout", self.header_read_timeout),
                ("idle_timeout", self.idle_timeout),
                ("dry_run_timeout", self.dry_run_timeout),
            ],
        )
    }
}

/// The largest `server.max_connections` and `server.dry_runs_at_once`: far
/// beyond what one process serves well, and within what its semaphores count.
const MAX_SERVER_COUNT: usize = 1_000_000;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
    /// The systemd journal, each field its own (`CRUS_SESSION`, `CRUS_NODE`,
    /// `CRUS_STEP`); `text` under systemd (`JOURNAL_STREAM` set) means this.
    Journald,
}

/// `[store]`: where sessions are kept.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite` (the file `server.db`, one replica) or `etcd` (several
    /// replicas share the `[etcd]` cluster; one leads).
    pub kind: StoreKind,
}

/// Which session store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One SQLite file; one replica.
    #[default]
    Sqlite,
    /// An etcd cluster; several replicas, one of them leading (needs a
    /// build with `--features etcd`).
    Etcd,
}

/// What a `crus` built without the etcd feature says about `store.kind = "etcd"`.
pub const ETCD_NOT_BUILT: &str = "\"etcd\" needs a crus built with the etcd feature: \
     cargo build --release -p crus-cli --features etcd (the build needs protoc: \
     apt-get install protobuf-compiler); this build has only \"sqlite\"";

/// `[etcd]`: the cluster several replicas share, when `store.kind = "etcd"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdSection {
    /// Client URLs of the members, e.g. `http://10.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Prefix of every key crus writes; replicas with the same prefix share sessions.
    pub prefix: String,
    /// How long the leader's lease outlives its last keep-alive: a leader that
    /// dies is replaced about this long after. Whole seconds, at least 1 s.
    #[serde(with = "humantime_duration")]
    pub lease_ttl: Duration,
    /// How often the leader refreshes its lease; absent: a third of `lease_ttl`.
    #[serde(default, with = "humantime_duration_option")]
    pub keep_alive: Option<Duration>,
    /// How long to wait for a connection, and for each request.
    #[serde(with = "humantime_duration")]
    pub timeout: Duration,
    /// This replica's name in the leader key (for operators); absent:
    /// `<host name>-<process id>`.
    pub replica_name: Option<String>,
    /// PEM file of the CA that signed the members' certificates (`https://` endpoints).
    pub ca_file: Option<PathBuf>,
    /// PEM file of this client's certificate, when the members ask for one.
    pub cert_file: Option<PathBuf>,
    /// PEM file of that certificate's key.
    pub key_file: Option<PathBuf>,
    /// The etcd user, when etcd has authentication on.
    pub user: Option<String>,
    /// A file holding the user's password (kept out of this file).
    pub password_file: Option<PathBuf>,
}

impl Default for EtcdSection {
    fn default() -> Self {
        EtcdSection {
            endpoints: Vec::new(),
            prefix: "/crus/".into(),
            lease_ttl: Duration::from_secs(5),
            keep_alive: None,
            timeout: Duration::from_secs(5),
            replica_name: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            user: None,
            password_file: None,
        }
    }
}

impl EtcdSection {
    /// The keep-alive interval: `keep_alive`, or a third of the TTL.
    pub fn keep_alive_interval(&self) -> Duration {
        self.keep_alive.unwrap_or(self.lease_ttl / 3)
    }

    /// Checks what the types alone do not (only with `store.kind = "etcd"`).
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("etcd.{key}"),
            message,
        };
        if self.endpoints.is_empty() {
            return Err(invalid(
                "endpoints",
                "give the client URL of at least one member (e.g. [\"http://127.0.0.1:2379\"], or --etcd-endpoints)".into(),
            ));
        }
        if let Some(url) = self
            .endpoints
            .iter()
            .find(|url| !(url.starts_with("http://") || url.starts_with("https://")))
        {
            return Err(invalid(
                "endpoints",
                format!("{url:?} must start with http:// or https://"),
            ));
        }
        if !self.prefix.starts_with('/') {
            return Err(invalid(
                "prefix",
                format!("{:?} must start with /", self.prefix),
            ));
        }
        if self.lease_ttl < Duration::from_secs(1) || self.lease_ttl.subsec_nanos() != 0 {
            return Err(invalid(
                "lease_ttl",
                format!(
                    "{} is not a whole number of seconds of at least 1 s (etcd leases count seconds)",
                    humantime::format_duration(self.lease_ttl)
                ),
            ));
        }
        let keep_alive = self.keep_alive_interval();
        if keep_alive.is_zero() || keep_alive >= self.lease_ttl {
            return Err(invalid(
                "keep_alive",
                format!(
                    "{} must be more than zero and well under lease_ttl ({})",
                    humantime::format_duration(keep_alive),
                    humantime::format_duration(self.lease_ttl)
                ),
            ));
        }
        if self.timeout.is_zero() {
            return Err(invalid("timeout", "must be longer than zero".into()));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(invalid(
                "cert_file",
                "cert_file and key_file go together; give both or neither".into(),
            ));
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Err(invalid(
                "user",
                "user and password_file go together; give both or neither".into(),
            ));
        }
        Ok(())
    }
}

/// `[auth]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Static bearer tokens (prefer `tokens_file`, which keeps them out of this file).
    pub tokens: Vec<String>,
    /// A file with one static token per line (`#` comments and blank lines ignored).
    pub tokens_file: Option<PathBuf>,
    /// A file holding the HS256 secret of accepted JWTs.
    pub jwt_secret_file: Option<PathBuf>,
    /// A PEM public key (RS256 or ES256) of accepted JWTs.
    pub jwt_public_key_file: Option<PathBuf>,
    /// A JWKS document with the keys of accepted JWTs (chosen by `kid`).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL publishing the keys of accepted JWTs (Keycloak:
    /// `…/realms/<realm>/protocol/openid-connect/certs`): fetched at start,
    /// kept, and fetched again when a token names a `kid` they lack.
    pub jwks_url: Option<String>,
    /// PEM file of the CA that signed the JWKS URL's TLS certificate.
    pub jwks_ca_file: Option<PathBuf>,
    /// How long one fetch of the JWKS URL may take [default: 10s].
    #[serde(default, with = "humantime_duration_option")]
    pub jwks_timeout: Option<Duration>,
    /// The shortest time between two fetches of the JWKS URL for tokens
    /// naming an unknown `kid` [default: 1m].
    #[serde(default, with = "humantime_duration_option")]
    pub jwks_min_refetch_interval: Option<Duration>,
    /// Required `aud` of JWTs.
    pub audience: Option<String>,
    /// Required `iss` of JWTs.
    pub issuer: Option<String>,
    /// Accept every request without a token (a warning is logged at each start).
    pub no_auth: bool,
}

impl AuthSection {
    /// Checks the JWKS URL settings; errors name the key.
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("auth.{key}"),
            message,
        };
        match &self.jwks_url {
            Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                return Err(invalid(
                    "jwks_url",
                    format!("{url:?} is not an https:// (or http://) URL"),
                ));
            }
            Some(_) => {}
            None => {
                for (key, given) in [
                    ("jwks_ca_file", self.jwks_ca_file.is_some()),
                    ("jwks_timeout", self.jwks_timeout.is_some()),
                    (
                        "jwks_min_refetch_interval",
                        self.jwks_min_refetch_interval.is_some(),
                    ),
                ] {
                    if given {
                        return Err(invalid(
                            key,
                            "applies to auth.jwks_url, which is not given".to_string(),
                        ));
                    }
                }
            }
        }
        if self.jwks_timeout.is_some_and(|timeout| timeout.is_zero()) {
            return Err(invalid(
                "jwks_timeout",
                "must be longer than 0s".to_string(),
            ));
        }
        Ok(())
    }
}

/// `[rollout]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSection {
    /// A node not back this long after its boot started fails. Set, it is
    /// every session's default over the boot backend's own `boot_timeout`;
    /// absent, the boot backend's applies (see `boot_timeout.rs`).
    #[serde(with = "humantime_duration_option")]
    pub boot_timeout: Option<Duration>,
    /// How often the workload manager and boot orchestrator are polled.
    #[serde(with = "humantime_duration")]
    pub poll_interval: Duration,
}

impl Default for RolloutSection {
    fn default() -> Self {
        let policy = crus_core::rollout::RolloutPolicy::default();
        RolloutSection {
            boot_timeout: None,
            poll_interval: policy.poll_interval,
        }
    }
}

/// `[backends]`: which implementation serves each port.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendsSection {
    /// Groups and node facts: `sim`, `file`, `hsm` or `cyclecloud`.
    pub inventory: String,
    /// Drain and resume: `sim`, `slurm` or `none`.
    pub workload_manager: String,
    /// Booting: `sim`, `bos`, `bos-v1`, `slurm-reboot`, `kadeploy` or `cyclecloud`.
    pub boot: String,
    /// Power control, for escalation: `none`, `sim`, `redfish`,
    /// `cyclecloud` or `kadeploy`; absent:
    /// the simulator's when `boot` is `sim`, none otherwise.
    pub power: Option<String>,
}

impl Default for BackendsSection {
    fn default() -> Self {
        BackendsSection {
            inventory: "sim".into(),
            workload_manager: "sim".into(),
            boot: "sim".into(),
            power: None,
        }
    }
}

/// `[sim]`: the simulated cluster.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSection {
    /// Number of nodes.
    pub nodes: usize,
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
    /// Job trace: an SWF file, `nasa` (the bundled trace), `synthetic` or `none`.
    pub trace: String,
    /// Fraction of boots that fail.
    pub fail_rate: f64,
    /// Fraction of calls to the simulated backends (inventory, workload
    /// manager, boots, power) that fail: half before reaching the cluster,
    /// half as a timeout after taking effect.
    pub port_fault_rate: f64,
    /// Typical time a node takes to boot (each boot varies by ±25%).
    #[serde(with = "humantime_duration")]
    pub boot_time: Duration,
    /// File the simulated cluster keeps its state in, so it outlives the server.
    pub state: Option<PathBuf>,
    /// Seed of every random choice.
    pub seed: u64,
    /// The boot timeout of sessions whose policy sets none, unless
    /// `rollout.boot_timeout` is set (see `boot_timeout.rs`).
    #[serde(with = "humantime_duration_option")]
    pub boot_timeout: Option<Duration>,
    /// Fraction of session store writes made to fail (`--sim-store-fault-rate`,
    /// a hidden flag for fault-soak tests; not a configuration key).
    #[serde(skip)]
    pub store_fault_rate: f64,
}

impl Default for SimSection {
    fn default() -> Self {
        SimSection {
            nodes: 64,
            speed: 600.0,
            trace: "synthetic".into(),
            fail_rate: 0.0,
            port_fault_rate: 0.0,
            boot_time: Duration::from_secs(4 * 60),
            state: None,
            seed: 1,
            boot_timeout: None,
            store_fault_rate: 0.0,
        }
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (the message names the key).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// A value is out of range or names something unknown.
    #[error("{key}: {message}")]
    Invalid {
        /// The key, e.g. `backends.boot`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks values that the types alone do not.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        self.auth.check()?;
        if self.store.kind == StoreKind::Etcd {
            if !cfg!(feature = "etcd") {
                return Err(invalid("store.kind", ETCD_NOT_BUILT.into()));
            }
            self.etcd.check()?;
        }
        let backends = &self.backends;
        for (key, value, known) in [
            (
                "backends.inventory",
                &backends.inventory,
                &["sim", "file", "hsm", "cyclecloud"][..],
            ),
            (
                "backends.workload_manager",
                &backends.workload_manager,
                &["sim", "slurm", "none"][..],
            ),
            (
                "backends.boot",
                &backends.boot,
                &[
                    "sim",
                    "bos",
                    "bos-v1",
                    "slurm-reboot",
                    "kadeploy",
                    "cyclecloud",
                ][..],
            ),
        ] {
            if !known.contains(&value.as_str()) {
                return Err(invalid(
                    key,
                    format!("{value:?} is not one of {}", known.join(", ")),
                ));
            }
        }
        if !["identity", "nid"].contains(&self.slurm.node_names.as_str()) {
            return Err(invalid(
                "slurm.node_names",
                format!("{:?} is not one of identity, nid", self.slurm.node_names),
            ));
        }
        if let Some(template) = self
            .slurm_reboot
            .templates
            .iter()
            .find(|template| template.is_empty() || template.contains(char::is_whitespace))
        {
            return Err(invalid(
                "slurm_reboot.templates",
                format!(
                    "{template:?} is not a template name: it is handed to the RebootProgram as one word"
                ),
            ));
        }
        for (key, section, wanted) in [
            ("hsm", &self.hsm, backends.inventory == "hsm"),
            (
                "bos",
                &self.bos,
                ["bos", "bos-v1"].contains(&backends.boot.as_str()),
            ),
        ] {
            if wanted && section.is_none() {
                return Err(invalid(
                    key,
                    format!(
                        "the [{key}] section (base_url, and how to authenticate) is required by [backends]"
                    ),
                ));
            }
            if let Some(section) = section {
                check_base_url(key, &section.base_url)?;
            }
        }
        self.check_bos_keys()?;
        if let Some(power) = &backends.power
            && !["none", "sim", "redfish", "cyclecloud", "kadeploy"].contains(&power.as_str())
        {
            return Err(invalid(
                "backends.power",
                format!("{power:?} is not one of none, sim, redfish, cyclecloud, kadeploy"),
            ));
        }
        match &self.kadeploy {
            Some(kadeploy) => kadeploy.check()?,
            None if backends.boot == "kadeploy"
                || backends.power.as_deref() == Some("kadeploy") =>
            {
                let port = if backends.boot == "kadeploy" {
                    "backends.boot"
                } else {
                    "backends.power"
                };
                return Err(invalid(
                    "kadeploy",
                    format!(
                        "the [kadeploy] section (base_url, and the user or credentials) is required by {port} = \"kadeploy\""
                    ),
                ));
            }
            None => {}
        }
        match (&self.cyclecloud, self.cyclecloud_ports().first()) {
            (Some(cyclecloud), _) => cyclecloud.check()?,
            (None, Some(port)) => {
                return Err(invalid(
                    "cyclecloud",
                    format!(
                        "the [cyclecloud] section (base_url, cluster, username, and password_file or password_env) is required by {port} = \"cyclecloud\""
                    ),
                ));
            }
            (None, None) => {}
        }
        if let Some(redfish) = &self.redfish {
            redfish.check()?;
        } else if backends.power.as_deref() == Some("redfish") {
            return Err(invalid(
                "redfish",
                "the [redfish] section (bmc_url or nodes, and credentials) is required by backends.power = \"redfish\"".into(),
            ));
        }
        if self.sim.nodes == 0 {
            return Err(invalid("sim.nodes", "must be at least 1".into()));
        }
        if !(self.sim.speed > 0.0 && self.sim.speed.is_finite()) {
            return Err(invalid(
                "sim.speed",
                format!("{} is not a positive number", self.sim.speed),
            ));
        }
        if !(0.0..=1.0).contains(&self.sim.fail_rate) {
            return Err(invalid(
                "sim.fail_rate",
                format!("{} is not between 0 and 1", self.sim.fail_rate),
            ));
        }
        if !(0.0..=1.0).contains(&self.sim.store_fault_rate) {
            return Err(invalid(
                "--sim-store-fault-rate",
                format!("{} is not between 0 and 1", self.sim.store_fault_rate),
            ));
        }
        if !(0.0..=1.0).contains(&self.sim.port_fault_rate) {
            return Err(invalid(
                "sim.port_fault_rate",
                format!("{} is not between 0 and 1", self.sim.port_fault_rate),
            ));
        }
        if self.sim.boot_time.is_zero() {
            return Err(invalid("sim.boot_time", "must be longer than zero".into()));
        }
        for (index, hook) in self.webhooks.iter().enumerate() {
            // The secret file is read at start, not here: a check reads no file.
            if let Err(message) = hook.hook(None).validate() {
                return Err(invalid(&format!("webhooks[{index}]"), message));
            }
        }
        self.health.check()?;
        self.server.check()?;
        self.check_boot_timeouts()?;
        if self.rollout.poll_interval.is_zero() {
            return Err(invalid(
                "rollout.poll_interval",
                "must be longer than zero".into(),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// The `[backends]` keys set to `cyclecloud`, e.g. `backends.inventory`.
    pub fn cyclecloud_ports(&self) -> Vec<&'static str> {
        let backends = &self.backends;
        [
            ("backends.inventory", Some(backends.inventory.as_str())),
            ("backends.power", backends.power.as_deref()),
            ("backends.boot", Some(backends.boot.as_str())),
        ]
        .into_iter()
        .filter(|(_, value)| *value == Some("cyclecloud"))
        .map(|(key, _)| key)
        .collect()
    }
}

/// `{section}.base_url` is an HTTP(S) URL.
fn check_base_url(section: &str, base_url: &str) -> Result<(), ConfigError> {
    if base_url.starts_with("http://") || base_url.starts_with("https://") {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        key: format!("{section}.base_url"),
        message: format!("{base_url:?} must start with http:// or https://"),
    })
}

/// Each of `durations`, keys of `[section]`, is longer than zero.
fn check_positive(section: &str, durations: &[(&str, Duration)]) -> Result<(), ConfigError> {
    match durations.iter().find(|(_, duration)| duration.is_zero()) {
        Some((key, _)) => Err(ConfigError::Invalid {
            key: format!("{section}.{key}"),
            message: "must be longer than zero".into(),
        }),
        None => Ok(()),
    }
}

impl KadeploySection {
    /// Checks what the types alone do not; the password file is read at start.
    fn check(&self) -> Result<(), ConfigError> {
        check_base_url("kadeploy", &self.base_url)?;
        if self.username.is_some() != self.password_file.is_some() {
            return Err(ConfigError::Invalid {
                key: "kadeploy.username".into(),
                message:
                    "username and password_file (HTTP basic auth) go together; give both or neither"
                        .into(),
            });
        }
        if let Some(location) = &self.ssh_authorized_keys {
            crus_backends::kadeploy::check_authorized_keys_location(location).map_err(
                |message| ConfigError::Invalid {
                    key: "kadeploy.ssh_authorized_keys".into(),
                    message,
                },
            )?;
        }
        if let Some(power_base_url) = &self.power_base_url
            && !(power_base_url.starts_with("http://") || power_base_url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "kadeploy.power_base_url".into(),
                message: format!("{power_base_url:?} must start with http:// or https://"),
            });
        }
        check_positive("kadeploy", &[("timeout", self.timeout)])
    }
}

impl CycleCloudSection {
    /// Checks what the types alone do not; the files are read at start.
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("cyclecloud.{key}"),
            message: message.to_string(),
        };
        check_base_url("cyclecloud", &self.base_url)?;
        if self.cluster.trim().is_empty() {
            return Err(invalid(
                "cluster",
                "name the CycleCloud cluster crus upgrades",
            ));
        }
        if self.username.trim().is_empty() {
            return Err(invalid("username", "name the CycleCloud account crus uses"));
        }
        if self.password_file.is_some() == self.password_env.is_some() {
            return Err(invalid(
                "password_file",
                "give one of password_file (a file holding the password) or password_env (a variable holding it)",
            ));
        }
        check_positive(
            "cyclecloud",
            &[
                ("timeout", self.timeout),
                ("poll_interval", self.poll_interval),
                ("poll_timeout", self.poll_timeout),
            ],
        )
    }
}

impl RedfishSection {
    /// Checks what the types alone do not.
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("redfish.{key}"),
            message,
        };
        if !["none", "basic", "session"].contains(&self.auth.as_str()) {
            return Err(invalid(
                "auth",
                format!("{:?} is not one of none, basic, session", self.auth),
            ));
        }
        if self.auth != "none" && (self.username.is_none() || self.password_file.is_none()) {
            return Err(invalid(
                "auth",
                format!(
                    "auth = {:?} needs redfish.username and redfish.password_file",
                    self.auth
                ),
            ));
        }
        if self.bmc_url.is_none() && self.nodes.is_empty() {
            return Err(invalid(
                "bmc_url",
                "give bmc_url (a template such as \"https://{bmc}\") or [redfish.nodes]".into(),
            ));
        }
        let urls = self
            .bmc_url
            .iter()
            .chain(self.nodes.values().map(|node| &node.bmc_url));
        for url in urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "bmc_url",
                    format!("{url:?} must start with http:// or https://"),
                ));
            }
        }
        if self.max_requests_per_bmc == 0 || self.timeout.is_zero() {
            return Err(invalid(
                "max_requests_per_bmc",
                "max_requests_per_bmc and timeout must be more than zero".into(),
            ));
        }
        Ok(())
    }
}

/// Durations written as humantime text (`"10m"`, `"30s"`).
mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|error| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({error}; e.g. \"90s\", \"10m\")"
            ))
        })
    }
}

/// Optional durations written as humantime text.
mod humantime_duration_option {
    use std::time::Duration;

    use serde::Deserializer;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::humantime_duration::deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../../../../docs/crus.example.toml");
        let config: Config = toml::from_str(text).unwrap();
        config.check().unwrap();
        assert_eq!(config.server.listen.port(), 8080);
        // No server-wide boot timeout: the boot backend's (here the
        // simulator's 10 minutes) applies.
        assert_eq!(config.rollout.boot_timeout, None);
        assert_eq!(config.default_boot_timeout(), Duration::from_secs(600));
    }

    #[test]
    fn an_empty_file_means_the_defaults() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config, Config::default());
        config.check().unwrap();
    }

    #[test]
    fn mistakes_name_their_key() {
        let unknown = toml::from_str::<Config>("[server]\nlisten_on = \"0.0.0.0:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("listen_on"), "{unknown}");
        let bad_duration = toml::from_str::<Config>("[rollout]\nboot_timeout = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            bad_duration.contains("boot_timeout") || bad_duration.contains("soon"),
            "{bad_duration}"
        );
        let config: Config = toml::from_str("[backends]\nboot = \"pxe\"\n").unwrap();
        let error = config.check().unwrap_err().to_string();
        assert_eq!(
            error,
            "backends.boot: \"pxe\" is not one of sim, bos, bos-v1, slurm-reboot, kadeploy, cyclecloud"
        );
    }

    #[test]
    fn server_limits_and_allowed_probe_hosts_are_read_and_checked() {
        let defaults = Config::default();
        assert_eq!(defaults.server.max_connections, 1024);
        assert_eq!(defaults.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(defaults.server.idle_timeout, Duration::from_secs(60));
        assert_eq!(defaults.server.dry_runs_at_once, 2);
        assert_eq!(defaults.health.allowed_http_hosts, ["{node}"]);
        let config: Config = toml::from_str(
            "[server]\nmax_connections = 50\nheader_read_timeout = \"2s\"\nidle_timeout = \"5s\"\n\
             request_timeout = \"20s\"\ndry_runs_at_once = 4\ndry_run_timeout = \"3s\"\n\
             [health]\nallowed_http_hosts = [\"{node}\", \"*.mgmt.example.org\", \"monitor.example.org\"]\n",
        )
        .unwrap();
        config.check().unwrap();
        let limits = config.server.limits();
        assert_eq!(limits.max_connections, 50);
        assert_eq!(limits.header_read_timeout, Duration::from_secs(2));
        assert_eq!(limits.idle_timeout, Duration::from_secs(5));
        assert_eq!(limits.request_timeout, Duration::from_secs(20));
        assert_eq!(limits.dry_runs_at_once, 4);
        assert_eq!(limits.dry_run_timeout, Duration::from_secs(3));
        for (text, key) in [
            ("[server]\nmax_connections = 0\n", "server.max_connections"),
            (
                "[server]\ndry_runs_at_once = 0\n",
                "server.dry_runs_at_once",
            ),
            ("[server]\nidle_timeout = \"0s\"\n", "server.idle_timeout"),
            (
                "[server]\nheader_read_timeout = \"0s\"\n",
                "server.header_read_timeout",
            ),
            (
                "[health]\nallowed_http_hosts = [\"http://monitor.example.org/\"]\n",
                "health.allowed_http_hosts",
            ),
            (
                "[health]\nallowed_http_hosts = [\"mon*.example.org\"]\n",
                "health.allowed_http_hosts",
            ),
        ] {
            let config: Config = toml::from_str(text).unwrap();
            let error = config.check().unwrap_err().to_string();
            assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
        }
    }

    #[test]
    fn jwks_url_settings_are_read_and_checked() {
        let config: Config = toml::from_str(
            "[auth]\njwks_url = \"https://keycloak.local/realms/shasta/protocol/openid-connect/certs\"\n\
             jwks_ca_file = \"/etc/crus/ca.pem\"\njwks_timeout = \"5s\"\n\
             jwks_min_refetch_interval = \"2m\"\n",
        )
        .unwrap();
        config.check().unwrap();
        assert_eq!(config.auth.jwks_timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            config.auth.jwks_min_refetch_interval,
            Some(Duration::from_secs(120))
        );
        for (text, key) in [
            (
                "[auth]\njwks_url = \"keycloak.local/certs\"\n",
                "auth.jwks_url",
            ),
            (
                "[auth]\njwks_ca_file = \"/etc/crus/ca.pem\"\n",
                "auth.jwks_ca_file",
            ),
            (
                "[auth]\njwks_url = \"https://k/certs\"\njwks_timeout = \"0s\"\n",
                "auth.jwks_timeout",
            ),
        ] {
            let config: Config = toml::from_str(text).unwrap();
            let error = config.check().unwrap_err().to_string();
            assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
        }
    }

    #[test]
    fn the_simulated_port_fault_rate_is_read_and_checked() {
        let config: Config = toml::from_str("[sim]\nport_fault_rate = 0.2\n").unwrap();
        config.check().unwrap();
        assert_eq!(config.sim.port_fault_rate, 0.2);
        let config: Config = toml::from_str("[sim]\nport_fault_rate = 1.5\n").unwrap();
        let error = config.check().unwrap_err().to_string();
        assert_eq!(error, "sim.port_fault_rate: 1.5 is not between 0 and 1");
    }

    #[test]
    fn slurm_reboot_settings_are_read_and_checked() {
        let config: Config = toml::from_str(
            "[backends]\nboot = \"slurm-reboot\"\n\
             [slurm_reboot]\ntemplates = [\"compute-2.5\"]\nclock_skew = \"5s\"\n",
        )
        .unwrap();
        config.check().unwrap();
        assert_eq!(config.slurm_reboot.templates, ["compute-2.5"]);
        assert_eq!(config.slurm_reboot.clock_skew, Duration::from_secs(5));
        assert_eq!(
            Config::default().slurm_reboot.clock_skew,
            Duration::from_secs(10)
        );

        let unknown = toml::from_str::<Config>("[slurm_reboot]\nimage = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("image"), "{unknown}");
        let config: Config =
            toml::from_str("[slurm_reboot]\ntemplates = [\"compute 2.5\"]\n").unwrap();
        let error = config.check().unwrap_err().to_string();
        assert!(error.starts_with("slurm_reboot.templates: "), "{error}");
    }

    #[test]
    fn power_and_redfish_settings_are_read_and_checked() {
        let config: Config = toml::from_str(
            "[backends]\npower = \"redfish\"\n\
             [redfish]\nbmc_url = \"https://{bmc}\"\nsystem = \"Node{n}\"\n\
             username = \"root\"\npassword_file = \"/etc/crus/bmc\"\ntimeout = \"5s\"\n\
             [redfish.nodes]\nx1n0 = { bmc_url = \"https://10.0.0.1\", system = \"Self\" }\n",
        )
        .unwrap();
        config.check().unwrap();
        let redfish = config.redfish.unwrap();
        assert_eq!(redfish.auth, "basic");
        assert_eq!(redfish.timeout, Duration::from_secs(5));
        assert_eq!(redfish.nodes["x1n0"].system.as_deref(), Some("Self"));
        assert_eq!(Config::default().backends.power, None);

        for (text, key) in [
            ("[backends]\npower = \"ipmi\"\n", "backends.power"),
            ("[backends]\npower = \"redfish\"\n", "redfish"),
            ("[redfish]\nbmc_url = \"https://{bmc}\"\n", "redfish.auth"),
            ("[redfish]\nauth = \"none\"\n", "redfish.bmc_url"),
            (
                "[redfish]\nauth = \"none\"\nbmc_url = \"bmc\"\n",
                "redfish.bmc_url",
            ),
        ] {
            let config: Config = toml::from_str(text).unwrap();
            let error = config.check().unwrap_err().to_string();
            assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
        }
        // The example's [redfish] block, uncommented, is valid too.
        let example = include_str!("../../../../docs/crus.example.toml");
        let block: String = example
            .lines()
            .skip_while(|line| *line != "# [redfish]")
            .take_while(|line| line.starts_with('#'))
            .map(|line| format!("{}\n", line.trim_start_matches("# ")))
            .collect();
        assert!(block.contains("[redfish.nodes]"), "{block}");
        let config: Config = toml::from_str(&block).unwrap();
        config.check().unwrap();
        assert_eq!(config.redfish.unwrap().nodes.len(), 1);

        let unknown = toml::from_str::<Config>("[redfish]\npassword = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("password"), "{unknown}");
    }

    /// The example's commented-out block that starts at the line `# [{section}]`,
    /// one level of comment off (its notes stay comments).
    fn example_block(section: &str) -> String {
        let example = include_str!("../../../../docs/crus.example.toml");
        let header = format!("# [{section}]");
        let block: String = example
            .lines()
            .skip_while(|line| *line != header)
            .take_while(|line| line.starts_with('#'))
            .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or(line)))
            .collect();
        assert!(!block.is_empty(), "no {header} in the example");
        block
    }

    #[test]
    fn the_examples_hsm_and_bos_blocks_are_valid() {
        // The [hsm] block runs on into the [bos] block.
        let text = format!(
            "[backends]\ninventory = \"hsm\"\nboot = \"bos\"\n{}",
            example_block("hsm")
        );
        let config: Config = toml::from_str(&text).unwrap();
        config.check().unwrap();
        let bos = config.bos.as_ref().unwrap();
        assert_eq!(bos.tenant.as_deref(), Some("vcluster-blue"));
        assert_eq!(bos.boot_timeout, Some(Duration::from_secs(40 * 60)));
        assert_eq!(config.default_boot_timeout(), Duration::from_secs(40 * 60));
        assert_eq!(config.hsm.unwrap().tenant, None);
    }

    #[test]
    fn the_examples_kadeploy_and_cyclecloud_blocks_are_valid() {
        let text = format!(
            "[backends]\ninventory = \"cyclecloud\"\nboot = \"kadeploy\"\n{}{}",
            example_block("kadeploy"),
            example_block("cyclecloud")
        );
        let config: Config = toml::from_str(&text).unwrap();
        config.check().unwrap();
        let kadeploy = config.kadeploy.unwrap();
        assert_eq!(
            kadeploy.ssh_authorized_keys.as_deref(),
            Some("/home/crus/.ssh/authorized_keys")
        );
        assert_eq!(kadeploy.block_device.as_deref(), Some("/dev/sda"));
        let cyclecloud = config.cyclecloud.unwrap();
        assert!(cyclecloud.password_file.is_some() && cyclecloud.password_env.is_none());
        assert!(cyclecloud.state_file.is_some());
    }

    #[test]
    fn kadeploy_settings_are_read_and_checked() {
        let config: Config = toml::from_str(
            "[backends]\nboot = \"kadeploy\"\n\
             [kadeploy]\nbase_url = \"https://api.grid5000.fr/4.0/sites/nantes\"\nuser = \"crus\"\n\
             username = \"jdoe\"\npassword_file = \"/etc/crus/g5k\"\ntimeout = \"1m\"\n\
             host_domain = \"nantes.grid5000.fr\"\ndeploy_partition = \"3\"\n",
        )
        .unwrap();
        config.check().unwrap();
        let kadeploy = config.kadeploy.unwrap();
        assert_eq!(kadeploy.timeout, Duration::from_secs(60));
        assert_eq!(kadeploy.retries, 3);
        assert_eq!(kadeploy.deploy_partition.as_deref(), Some("3"));

        for (text, key) in [
            ("[backends]\nboot = \"kadeploy\"\n", "kadeploy"),
            ("[kadeploy]\nbase_url = \"api\"\n", "kadeploy.base_url"),
            (
                "[kadeploy]\nbase_url = \"http://k\"\nusername = \"jdoe\"\n",
                "kadeploy.username",
            ),
            (
                "[kadeploy]\nbase_url = \"http://k\"\ntimeout = \"0s\"\n",
                "kadeploy.timeout",
            ),
            // The keys themselves rather than where they are.
            (
                "[kadeploy]\nbase_url = \"http://k\"\nssh_authorized_keys = \"ssh-ed25519 AAAA crus@f\"\n",
                "kadeploy.ssh_authorized_keys",
            ),
            (
                "[kadeploy]\nbase_url = \"http://k\"\nssh_authorized_keys = \"ftp://f/keys\"\n",
                "kadeploy.ssh_authorized_keys",
            ),
            (
                "[kadeploy]\nbase_url = \"http://k\"\npower_base_url = \"k/kadeploy\"\n",
                "kadeploy.power_base_url",
            ),
            ("[backends]\npower = \"kadeploy\"\n", "kadeploy"),
        ] {
            let config: Config = toml::from_str(text).unwrap();
            let error = config.check().unwrap_err().to_string();
            assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
            if key == "kadeploy" {
                let port = if text.contains("power") {
                    "backends.power"
                } else {
                    "backends.boot"
                };
                assert!(error.contains(port), "{error}");
            }
        }
        // The authorized_keys location is kept as it is, under its name or
        // its earlier one, and no file is read: Kadeploy fetches it.
        for key in ["ssh_authorized_keys", "ssh_authorized_keys_file"] {
            for location in [
                "/home/crus/.ssh/authorized_keys",
                "server:///etc/kadeploy3/keys/crus",
                "https://frontend.nantes.grid5000.fr/~crus/authorized_keys",
            ] {
                let config: Config = toml::from_str(&format!(
                    "[kadeploy]\nbase_url = \"http://k\"\n{key} = \"{location}\"\n"
                ))
                .unwrap();
                config.check().unwrap();
                assert_eq!(
                    config.kadeploy.unwrap().ssh_authorized_keys.as_deref(),
                    Some(location)
                );
            }
        }
        // Kadeploy's power for escalation, with the boots of another backend.
        let config: Config = toml::from_str(
            "[backends]\npower = \"kadeploy\"\n\
             [kadeploy]\nbase_url = \"https://api.grid5000.fr/4.0/sites/nantes\"\n\
             power_base_url = \"https://api.grid5000.fr/4.0/sites/nantes/kadeploy\"\n",
        )
        .unwrap();
        config.check().unwrap();
        let unknown =
            toml::from_str::<Config>("[kadeploy]\nbase_url = \"http://k\"\npassword = \"x\"\n")
                .unwrap_err()
                .to_string();
        assert!(unknown.contains("password"), "{unknown}");
    }

    #[test]
    fn cyclecloud_settings_are_read_checked_and_default_the_state_file() {
        let config: Config = toml::from_str(
            "[server]\ndb = \"/var/lib/crus/crus.db\"\n\
             [backends]\ninventory = \"cyclecloud\"\npower = \"cyclecloud\"\nboot = \"cyclecloud\"\n\
             [cyclecloud]\nbase_url = \"https://cc.example.com\"\ncluster = \"hpc\"\n\
             username = \"crus\"\npassword_env = \"CC_PASSWORD\"\npoll_interval = \"2s\"\n",
        )
        .unwrap();
        config.check().unwrap();
        assert_eq!(
            config.cyclecloud_ports(),
            ["backends.inventory", "backends.power", "backends.boot"]
        );
        let cyclecloud = config.cyclecloud.as_ref().unwrap();
        assert_eq!(cyclecloud.poll_interval, Duration::from_secs(2));
        assert_eq!(cyclecloud.poll_timeout, Duration::from_secs(15 * 60));
        assert!(!cyclecloud.insecure);
        assert_eq!(
            cyclecloud.state_file_beside(&config.server.db),
            Path::new("/var/lib/crus/cyclecloud-groups.json")
        );

        let section =
            "[cyclecloud]\nbase_url = \"https://cc\"\ncluster = \"hpc\"\nusername = \"crus\"\n";
        for (text, key) in [
            (
                "[backends]\npower = \"cyclecloud\"\n".to_string(),
                "cyclecloud",
            ),
            (section.to_string(), "cyclecloud.password_file"),
            (
                format!("{section}password_file = \"/p\"\npassword_env = \"P\"\n"),
                "cyclecloud.password_file",
            ),
            (
                format!("{section}password_env = \"P\"\npoll_timeout = \"0s\"\n"),
                "cyclecloud.poll_timeout",
            ),
            (
                "[cyclecloud]\nbase_url = \"https://cc\"\ncluster = \"\"\nusername = \"crus\"\npassword_env = \"P\"\n".to_string(),
                "cyclecloud.cluster",
            ),
        ] {
            let config: Config = toml::from_str(&text).unwrap();
            let error = config.check().unwrap_err().to_string();
            assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
            if key == "cyclecloud" {
                assert!(error.contains("backends.power"), "{error}");
            }
        }
        let config: Config = toml::from_str("[backends]\npower = \"ipmi\"\n").unwrap();
        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("cyclecloud"), "{error}");
    }

    #[test]
    fn store_and_etcd_settings_are_read_and_checked() {
        assert_eq!(Config::default().store.kind, StoreKind::Sqlite);
        let config: Config = toml::from_str(
            "[store]\nkind = \"etcd\"\n\
             [etcd]\nendpoints = [\"http://10.0.0.1:2379\", \"https://10.0.0.2:2379\"]\n\
             lease_ttl = \"3s\"\nuser = \"crus\"\npassword_file = \"/etc/crus/etcd\"\n",
        )
        .unwrap();
        assert_eq!(config.store.kind, StoreKind::Etcd);
        assert_eq!(config.etcd.prefix, "/crus/");
        assert_eq!(config.etcd.keep_alive_interval(), Duration::from_secs(1));
        #[cfg(feature = "etcd")]
        {
            config.check().unwrap();
            for (text, key) in [
                ("[store]\nkind = \"etcd\"\n", "etcd.endpoints"),
                (
                    "[store]\nkind = \"etcd\"\n[etcd]\nendpoints = [\"10.0.0.1:2379\"]\n",
                    "etcd.endpoints",
                ),
                (
                    "[store]\nkind = \"etcd\"\n[etcd]\nendpoints = [\"http://a:1\"]\nlease_ttl = \"1500ms\"\n",
                    "etcd.lease_ttl",
                ),
                (
                    "[store]\nkind = \"etcd\"\n[etcd]\nendpoints = [\"http://a:1\"]\nkeep_alive = \"10s\"\n",
                    "etcd.keep_alive",
                ),
                (
                    "[store]\nkind = \"etcd\"\n[etcd]\nendpoints = [\"http://a:1\"]\ncert_file = \"c.pem\"\n",
                    "etcd.cert_file",
                ),
                (
                    "[store]\nkind = \"etcd\"\n[etcd]\nendpoints = [\"http://a:1\"]\nuser = \"crus\"\n",
                    "etcd.user",
                ),
            ] {
                let config: Config = toml::from_str(text).unwrap();
                let error = config.check().unwrap_err().to_string();
                assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
            }
        }
        #[cfg(not(feature = "etcd"))]
        {
            let error = config.check().unwrap_err().to_string();
            assert!(error.starts_with("store.kind: "), "{error}");
            assert!(error.contains("--features etcd"), "{error}");
        }
        // The [etcd] section is only checked when it is used.
        let unused: Config = toml::from_str("[etcd]\nendpoints = []\n").unwrap();
        unused.check().unwrap();
        let unknown = toml::from_str::<Config>("[store]\nkind = \"redis\"\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("redis"), "{unknown}");
        let unknown = toml::from_str::<Config>("[etcd]\npassword = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("password"), "{unknown}");
        // The example's [etcd] block, uncommented, is valid too.
        let block = example_block("etcd");
        let config: Config = toml::from_str(&format!("[store]\nkind = \"etcd\"\n{block}")).unwrap();
        assert_eq!(config.etcd.endpoints.len(), 3);
        assert_eq!(config.etcd.keep_alive, Some(Duration::from_secs(1)));
        #[cfg(feature = "etcd")]
        config.check().unwrap();
    }

    #[test]
    fn the_slurm_cluster_example_is_valid() {
        let text = include_str!("../../../../docs/examples/slurm-cluster.toml");
        let config: Config = toml::from_str(text).unwrap();
        config.check().unwrap();
        assert_eq!(config.backends.inventory, "file");
        assert_eq!(config.backends.workload_manager, "slurm");
        assert_eq!(config.backends.boot, "slurm-reboot");
        assert_eq!(config.slurm.node_names, "identity");
        assert!(config.slurm.conf.is_some());
        assert!(!config.slurm_reboot.templates.is_empty());
        assert!(config.auth.tokens_file.is_some());
        // The boot timeout is the reboot backend's, not a server-wide one.
        assert_eq!(config.rollout.boot_timeout, None);
        assert_eq!(
            config.slurm_reboot.boot_timeout,
            Some(Duration::from_secs(20 * 60))
        );
        assert_eq!(config.default_boot_timeout(), Duration::from_secs(20 * 60));
    }
}
