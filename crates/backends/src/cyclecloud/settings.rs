//! `[cyclecloud]` of `crus.toml`: the CycleCloud server, cluster and
//! account, read with serde and turned into a [`CycleCloudConfig`], with the
//! groups file placed beside the session database unless given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::config::{CycleCloudConfig, PasswordSource};
use crate::settings::{
    InvalidSetting, check_http_url, check_positive, humantime_duration, read_secret,
};

/// `[cyclecloud]`: one Azure CycleCloud cluster, when the inventory, the
/// power or the boots are `cyclecloud`; every one of them shares one client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CycleCloudSettings {
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
    #[serde(default = "default_timeout", with = "humantime_duration")]
    pub timeout: Duration,
    /// Retries of a request that met a 5xx or no answer.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Pause between two reads of a node operation's progress.
    #[serde(default = "default_poll_interval", with = "humantime_duration")]
    pub poll_interval: Duration,
    /// How long a power call follows its node operation at most.
    #[serde(default = "default_poll_timeout", with = "humantime_duration")]
    pub poll_timeout: Duration,
    /// The JSON file keeping the groups crus creates (CycleCloud has no group
    /// API); absent: `cyclecloud-groups.json` beside `server.db`.
    pub state_file: Option<PathBuf>,
    /// The boot timeout of sessions whose policy sets none, unless
    /// `rollout.boot_timeout` is set; absent:
    /// [`CycleCloudSettings::DEFAULT_BOOT_TIMEOUT`].
    #[serde(default, with = "crate::settings::humantime_duration_option")]
    pub boot_timeout: Option<Duration>,
}

/// The backend's own defaults, which the section's follow.
fn defaults() -> CycleCloudConfig {
    CycleCloudConfig::new("", "", "", PasswordSource::Static(String::new()))
}

fn default_timeout() -> Duration {
    defaults().timeout
}

fn default_retries() -> u32 {
    defaults().retries
}

fn default_poll_interval() -> Duration {
    defaults().poll_interval
}

fn default_poll_timeout() -> Duration {
    defaults().poll_timeout
}

impl CycleCloudSettings {
    /// A reimage terminates the virtual machine and starts a fresh one; the
    /// allocation, the boot and CycleCloud's node preparation (cluster-init)
    /// commonly take 10 to 20 minutes.
    pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

    /// The boot timeout of sessions whose policy sets none (unless the
    /// server sets one for all): `boot_timeout`, or the default.
    pub fn boot_timeout(&self) -> Duration {
        self.boot_timeout.unwrap_or(Self::DEFAULT_BOOT_TIMEOUT)
    }

    /// The groups file: `state_file`, or `cyclecloud-groups.json` in the
    /// directory of the session database `db`, which already holds what
    /// crus must keep across restarts.
    pub fn state_file_beside(&self, db: &Path) -> PathBuf {
        self.state_file
            .clone()
            .unwrap_or_else(|| db.with_file_name("cyclecloud-groups.json"))
    }

    /// Checks what the types alone do not; the files are read at start.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        let invalid =
            |key: &str, message: &str| InvalidSetting::new(format!("cyclecloud.{key}"), message);
        check_http_url("cyclecloud.base_url", &self.base_url)?;
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
        )?;
        if let Some(timeout) = self.boot_timeout {
            check_positive("cyclecloud", &[("boot_timeout", timeout)])?;
        }
        Ok(())
    }

    /// The settings of the `cyclecloud` backends; the groups file defaults
    /// to one beside the session database `db`. A password file is read
    /// here, so a missing or empty one is refused naming its key.
    pub fn to_config(&self, db: &Path) -> Result<CycleCloudConfig, InvalidSetting> {
        self.check()?;
        let password = match (&self.password_file, &self.password_env) {
            (Some(path), None) => {
                // Read here so the error names the key; the client reads it again.
                read_secret(path, "cyclecloud.password_file")?;
                PasswordSource::File(path.clone())
            }
            (None, Some(variable)) => PasswordSource::Env(variable.clone()),
            _ => {
                return Err(InvalidSetting::new(
                    "cyclecloud.password_file",
                    "give one of password_file or password_env",
                ));
            }
        };
        if self.insecure {
            tracing::warn!(
                "cyclecloud.insecure = true: the server's certificate is not checked, so anyone on the path can read the password"
            );
        }
        let state_file = self.state_file_beside(db);
        tracing::info!(
            base_url = %self.base_url,
            cluster = %self.cluster,
            state_file = %state_file.display(),
            "CycleCloud cluster"
        );
        let mut config = CycleCloudConfig::new(
            self.base_url.clone(),
            self.cluster.clone(),
            self.username.clone(),
            password,
        )
        .with_state_file(state_file);
        config.ca_file = self.ca_file.clone();
        config.insecure = self.insecure;
        config.timeout = self.timeout;
        config.retries = self.retries;
        config.poll_interval = self.poll_interval;
        config.poll_timeout = self.poll_timeout;
        Ok(config)
    }
}
