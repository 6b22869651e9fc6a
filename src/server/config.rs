//! `crus.toml`: the configuration of a crus server, read with serde.
//!
//! Every section and key is optional; command-line flags override the file.
//! Unknown keys are refused with their name, so a typo does not silently fall
//! back to a default. `docs/crus.example.toml` is an annotated example.
//!
//! Each backend's section is that backend's own settings type
//! (`crus_backends::bos`'s [`BosSettings`], `crus_backends::redfish`'s
//! [`RedfishSettings`], ...), with its defaults and checks; this file puts
//! them together and checks what ties them: a backend chosen in
//! `[backends]` has its section.

mod backends;
mod server;
mod store;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crus_backends::alert_gate::AlertGateSettings;
use crus_backends::bos::BosSettings;
use crus_backends::cyclecloud::CycleCloudSettings;
use crus_backends::etcd::EtcdSettings;
use crus_backends::file_inventory::FileInventorySettings;
use crus_backends::health::HealthSettings;
use crus_backends::hooks::HookSettings;
use crus_backends::hsm::HsmSettings;
use crus_backends::kadeploy::KadeploySettings;
use crus_backends::redfish::RedfishSettings;
use crus_backends::settings::{InvalidSetting, humantime_duration, humantime_duration_option};
use crus_backends::sim::SimSettings;
use crus_backends::slurm::{SlurmRebootSettings, SlurmSettings};
use crus_backends::webhooks::WebhookSettings;
use crus_core::ports::GateCheck;
use serde::Deserialize;

pub use backends::{
    BackendKind, BackendsSection, BootBackend, InventoryBackend, PowerBackend,
    WorkloadManagerBackend,
};
pub use crus_http::AuthSettings;
pub use server::{LogFormat, ServerConfig};
pub use store::{ETCD_NOT_BUILT, StoreKind, StoreSection};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where and how the server listens and stores sessions.
    pub server: ServerConfig,
    /// Which session store: SQLite (one replica) or etcd (several).
    pub store: StoreSection,
    /// The etcd cluster, when `store.kind = "etcd"`.
    pub etcd: EtcdSettings,
    /// Who may call the API.
    pub auth: AuthSettings,
    /// Defaults of every session's rollout policy.
    pub rollout: RolloutSection,
    /// Which backend implements each port.
    pub backends: BackendsSection,
    /// The simulated cluster, when a backend is `sim`.
    pub sim: SimSettings,
    /// The inventory file, when `backends.inventory = "file"`.
    pub file: FileInventorySettings,
    /// Cray HSM, when `backends.inventory = "hsm"`.
    pub hsm: Option<HsmSettings>,
    /// Cray BOS, when `backends.boot = "bos"` (v2 sessions) or `"bos-v1"`
    /// (v1 sessions).
    pub bos: Option<BosSettings>,
    /// Slurm, when `backends.workload_manager = "slurm"` or `backends.boot = "slurm-reboot"`.
    pub slurm: SlurmSettings,
    /// Slurm's reboots, when `backends.boot = "slurm-reboot"`.
    pub slurm_reboot: SlurmRebootSettings,
    /// How policies' health commands and HTTP probes are run.
    pub health: HealthSettings,
    /// How alert gates are asked, and which hosts sessions' gates may name.
    pub alert_gates: AlertGateSettings,
    /// Whether policies' site hook commands run on this server.
    pub hooks: HookSettings,
    /// `[[gates]]`: alert gates every session gets, before its own.
    pub gates: Vec<GateCheck>,
    /// Redfish BMCs, when `backends.power = "redfish"`.
    pub redfish: Option<RedfishSettings>,
    /// Kadeploy3, when `backends.boot` or `backends.power` is `"kadeploy"`.
    pub kadeploy: Option<KadeploySettings>,
    /// Azure CycleCloud, when the inventory, the power or the boots are `cyclecloud`.
    pub cyclecloud: Option<CycleCloudSettings>,
    /// `[[webhooks]]`: URLs that receive the rollout events as they happen.
    pub webhooks: Vec<WebhookSettings>,
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
    /// Every session's default `max_boots_per_minute` (a session's policy
    /// comes first); absent, boots are not paced.
    pub max_boots_per_minute: Option<u32>,
    /// Every session's default `max_hold` (a session's policy comes
    /// first): how long alert gates may hold a session before it halts for
    /// an operator. Absent (the default), a hold lasts as long as a gate
    /// blocks: a hold clears by itself when the alerts do, a halt waits for
    /// an operator, so only a site that wants that bound sets one.
    #[serde(with = "humantime_duration_option")]
    pub max_hold: Option<Duration>,
}

impl Default for RolloutSection {
    fn default() -> Self {
        let policy = crus_core::rollout::RolloutPolicy::default();
        RolloutSection {
            boot_timeout: None,
            poll_interval: policy.poll_interval,
            max_boots_per_minute: None,
            max_hold: None,
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

impl From<InvalidSetting> for ConfigError {
    fn from(setting: InvalidSetting) -> Self {
        ConfigError::Invalid {
            key: setting.key,
            message: setting.message,
        }
    }
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

    /// Checks values that the types alone do not: each section's own
    /// checks, and that a backend chosen in `[backends]` has its section.
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
        self.slurm.check()?;
        self.slurm_reboot.check()?;
        let required_by_backends = |key: &str| {
            invalid(
                key,
                format!(
                    "the [{key}] section (base_url, and how to authenticate) is required by [backends]"
                ),
            )
        };
        match &self.hsm {
            Some(hsm) => hsm.check("hsm")?,
            None if backends.inventory == InventoryBackend::Hsm => {
                return Err(required_by_backends("hsm"));
            }
            None => {}
        }
        match &self.bos {
            Some(bos) if backends.boot == BootBackend::BosV1 => bos.check_v1()?,
            Some(bos) => bos.check()?,
            None if matches!(backends.boot, BootBackend::Bos | BootBackend::BosV1) => {
                return Err(required_by_backends("bos"));
            }
            None => {}
        }
        let kadeploy_port = if backends.boot == BootBackend::Kadeploy {
            Some(BootBackend::KEY)
        } else if backends.power == Some(PowerBackend::Kadeploy) {
            Some(PowerBackend::KEY)
        } else {
            None
        };
        match (&self.kadeploy, kadeploy_port) {
            (Some(kadeploy), _) => kadeploy.check()?,
            (None, Some(port)) => {
                return Err(invalid(
                    "kadeploy",
                    format!(
                        "the [kadeploy] section (base_url, and the user or credentials) is required by {port} = \"kadeploy\""
                    ),
                ));
            }
            (None, None) => {}
        }
        match (&self.cyclecloud, backends.cyclecloud_ports().first()) {
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
        } else if backends.power == Some(PowerBackend::Redfish) {
            return Err(invalid(
                "redfish",
                "the [redfish] section (bmc_url or nodes, and credentials) is required by backends.power = \"redfish\"".into(),
            ));
        }
        self.sim.check()?;
        for (index, hook) in self.webhooks.iter().enumerate() {
            // The secret file is read at start, not here: a check reads no file.
            hook.check(index)?;
        }
        self.health.check()?;
        self.alert_gates.check()?;
        self.server.check()?;
        if self
            .rollout
            .boot_timeout
            .is_some_and(|timeout| timeout.is_zero())
        {
            return Err(invalid(
                "rollout.boot_timeout",
                "must be longer than zero".into(),
            ));
        }
        if self.rollout.max_boots_per_minute == Some(0) {
            return Err(invalid(
                "rollout.max_boots_per_minute",
                "must be at least 1 (leave it out for no limit)".into(),
            ));
        }
        if self.rollout.max_hold.is_some_and(|hold| hold.is_zero()) {
            return Err(invalid(
                "rollout.max_hold",
                "must be longer than zero (leave it out to hold for as long as a gate blocks)"
                    .into(),
            ));
        }
        if self.rollout.poll_interval.is_zero() {
            return Err(invalid(
                "rollout.poll_interval",
                "must be longer than zero".into(),
            ));
        }
        Ok(())
    }

    /// The `[backends]` keys set to `cyclecloud`, e.g. `backends.inventory`.
    pub fn cyclecloud_ports(&self) -> Vec<&'static str> {
        self.backends.cyclecloud_ports()
    }
}
