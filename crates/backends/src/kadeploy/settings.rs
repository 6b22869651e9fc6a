//! `[kadeploy]` of `crus.toml`: where the Kadeploy3 API is, who crus is to
//! it and the deployment options of every boot, read with serde and turned
//! into a [`KadeployConfig`] (the password read from its file).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::config::{KadeployBasicAuth, KadeployConfig, check_authorized_keys_location};
use crate::settings::{
    InvalidSetting, check_http_url, check_positive, humantime_duration, read_secret,
};

/// `[kadeploy]`: booting with Kadeploy3 deployments, and its power and
/// reboot operations. A session's template is a Kadeploy environment,
/// `name[:version][@user]`, or an image location.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KadeploySettings {
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
    #[serde(default = "default_timeout", with = "humantime_duration")]
    pub timeout: Duration,
    /// Retries of a request that may be repeated and met a 5xx or no answer.
    #[serde(default = "default_retries")]
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
    /// `rollout.boot_timeout` is set; absent:
    /// [`KadeploySettings::DEFAULT_BOOT_TIMEOUT`].
    #[serde(default, with = "crate::settings::humantime_duration_option")]
    pub boot_timeout: Option<Duration>,
    /// The API root of Kadeploy's `/power` and `/reboot`, for
    /// `backends.power = "kadeploy"`; absent: `base_url`.
    pub power_base_url: Option<String>,
}

/// The backend's own defaults, which the section's follow.
fn default_timeout() -> Duration {
    KadeployConfig::new("").timeout
}

fn default_retries() -> u32 {
    KadeployConfig::new("").retries
}

impl KadeploySettings {
    /// A deployment reboots the node into the deployment environment,
    /// writes the image, and reboots it into the image; Kadeploy's own step
    /// timeouts allow several minutes per reboot and image copies of large
    /// environments take minutes more.
    pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

    /// The boot timeout of sessions whose policy sets none (unless the
    /// server sets one for all): `boot_timeout`, or the default.
    pub fn boot_timeout(&self) -> Duration {
        self.boot_timeout.unwrap_or(Self::DEFAULT_BOOT_TIMEOUT)
    }

    /// Checks what the types alone do not; the password file is read at start.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        check_http_url("kadeploy.base_url", &self.base_url)?;
        if self.username.is_some() != self.password_file.is_some() {
            return Err(InvalidSetting::new(
                "kadeploy.username",
                "username and password_file (HTTP basic auth) go together; give both or neither",
            ));
        }
        if let Some(location) = &self.ssh_authorized_keys {
            check_authorized_keys_location(location)
                .map_err(|message| InvalidSetting::new("kadeploy.ssh_authorized_keys", message))?;
        }
        if let Some(power_base_url) = &self.power_base_url {
            check_http_url("kadeploy.power_base_url", power_base_url)?;
        }
        check_positive("kadeploy", &[("timeout", self.timeout)])?;
        if let Some(timeout) = self.boot_timeout {
            check_positive("kadeploy", &[("boot_timeout", timeout)])?;
        }
        Ok(())
    }

    /// The settings of the `kadeploy` backends, with the password read from
    /// its file. The authorized_keys location is passed on as it is:
    /// Kadeploy fetches that file itself.
    pub fn to_config(&self) -> Result<KadeployConfig, InvalidSetting> {
        self.check()?;
        let basic_auth = match (&self.username, &self.password_file) {
            (Some(username), Some(file)) => Some(KadeployBasicAuth {
                username: username.clone(),
                password: read_secret(file, "kadeploy.password_file")?,
            }),
            _ => None,
        };
        tracing::info!(
            base_url = %self.base_url,
            user = ?self.user,
            basic_auth = basic_auth.is_some(),
            host_domain = ?self.host_domain,
            "booting with Kadeploy"
        );
        let mut config = KadeployConfig::new(self.base_url.clone());
        config.user = self.user.clone();
        config.basic_auth = basic_auth;
        config.ca_file = self.ca_file.clone();
        config.timeout = self.timeout;
        config.retries = self.retries;
        config.ssh_authorized_keys = self.ssh_authorized_keys.clone();
        config.host_domain = self.host_domain.clone();
        config.block_device = self.block_device.clone();
        config.deploy_partition = self.deploy_partition.clone();
        config.power_base_url = self.power_base_url.clone();
        Ok(config)
    }
}
