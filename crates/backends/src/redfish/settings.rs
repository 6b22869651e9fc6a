//! `[redfish]` of `crus.toml`: where each node's BMC and system are and how
//! to log in, read with serde and turned into a [`RedfishConfig`] (the
//! password read from its file, the `auth` name mapped to [`RedfishAuth`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::config::{NamingRule, RedfishAuth, RedfishConfig, SystemLocation};
use crate::setting_choice::setting_choice;
use crate::settings::{InvalidSetting, humantime_duration, read_secret};

setting_choice!(
    /// `redfish.auth`: how crus logs in to the BMCs.
    RedfishAuthKind, "redfish.auth", {
        /// No credentials.
        None = "none",
        /// HTTP Basic authentication on every request.
        Basic = "basic",
        /// A Redfish session (`X-Auth-Token`) per BMC.
        Session = "session",
    }
);

/// `[redfish]`: node power through Redfish BMCs. Nodes are placed by
/// `nodes` first, then by the `bmc_url` and `system` templates (`{node}`,
/// `{bmc}`, `{n}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedfishSettings {
    /// The BMC URL template of every node not in `nodes`, e.g. `https://{bmc}`.
    pub bmc_url: Option<String>,
    /// The system template (matched to a system's `Id`, `Name` or `UUID`);
    /// absent: the BMC's only system.
    pub system: Option<String>,
    /// Nodes placed explicitly: node id = `{ bmc_url = "...", system = "..." }`.
    pub nodes: BTreeMap<String, RedfishNodeSettings>,
    /// `none`, `basic` or `session`.
    pub auth: RedfishAuthKind,
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
pub struct RedfishNodeSettings {
    /// Its BMC's base URL.
    pub bmc_url: String,
    /// Its system (`Id`, `Name` or `UUID`); absent: the BMC's only system.
    #[serde(default)]
    pub system: Option<String>,
}

impl Default for RedfishSettings {
    fn default() -> Self {
        let defaults = RedfishConfig::new();
        RedfishSettings {
            bmc_url: None,
            system: None,
            nodes: BTreeMap::new(),
            auth: RedfishAuthKind::Basic,
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

impl RedfishSettings {
    /// Checks what the types alone do not; the password file is read at start.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        let invalid =
            |key: &str, message: String| InvalidSetting::new(format!("redfish.{key}"), message);
        if self.auth != RedfishAuthKind::None
            && (self.username.is_none() || self.password_file.is_none())
        {
            return Err(invalid(
                "auth",
                format!(
                    "auth = {:?} needs redfish.username and redfish.password_file",
                    self.auth.name()
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

    /// The power control's settings, with the password read from its file.
    pub fn to_config(&self) -> Result<RedfishConfig, InvalidSetting> {
        self.check()?;
        let credentials = || -> Result<(String, String), InvalidSetting> {
            let required = |key: &str| {
                InvalidSetting::new(
                    format!("redfish.{key}"),
                    format!("is required with auth = {:?}", self.auth.name()),
                )
            };
            let username = self.username.clone().ok_or_else(|| required("username"))?;
            let file = self
                .password_file
                .as_ref()
                .ok_or_else(|| required("password_file"))?;
            Ok((username, read_secret(file, "redfish.password_file")?))
        };
        let auth = match self.auth {
            RedfishAuthKind::None => RedfishAuth::None,
            RedfishAuthKind::Session => {
                let (username, password) = credentials()?;
                RedfishAuth::Session { username, password }
            }
            RedfishAuthKind::Basic => {
                let (username, password) = credentials()?;
                RedfishAuth::Basic { username, password }
            }
        };
        if self.insecure {
            tracing::warn!(
                "redfish.insecure = true: BMC certificates are not checked, so anyone on the path can impersonate a BMC"
            );
        }
        Ok(RedfishConfig {
            nodes: self
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
            rule: self.bmc_url.as_ref().map(|bmc_url| NamingRule {
                bmc_url: bmc_url.clone(),
                system: self.system.clone(),
            }),
            auth,
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            timeout: self.timeout,
            retries: self.retries,
            max_requests_per_bmc: self.max_requests_per_bmc,
            prefer_power_cycle: self.prefer_power_cycle,
            power_off_wait: self.power_off_wait,
            ..RedfishConfig::new()
        })
    }
}
