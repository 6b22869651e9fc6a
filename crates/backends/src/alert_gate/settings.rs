//! `[alert_gates]` of `crus.toml`: how the server asks the alert gates of
//! sessions and its own `[[gates]]`.

use std::time::Duration;

use serde::Deserialize;

use super::AlertGateConfig;
use crate::settings::{InvalidSetting, humantime_duration};

/// `[alert_gates]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertGateSettings {
    /// How long one query may take before its gate counts as unreachable
    /// (and blocks).
    #[serde(with = "humantime_duration")]
    pub timeout: Duration,
    /// The monitoring hosts a session's own gates may name (host names,
    /// `*.domain`, or `*`); the hosts of `[[gates]]` always may.
    pub allowed_hosts: Vec<String>,
}

impl Default for AlertGateSettings {
    fn default() -> Self {
        let defaults = AlertGateConfig::default();
        AlertGateSettings {
            timeout: defaults.timeout,
            allowed_hosts: defaults.allowed_hosts,
        }
    }
}

impl AlertGateSettings {
    /// Checks what the types alone do not.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.timeout.is_zero() {
            return Err(InvalidSetting::new(
                "alert_gates.timeout",
                "must be longer than zero",
            ));
        }
        for host in &self.allowed_hosts {
            let name = host.strip_prefix("*.").unwrap_or(host);
            let fits = host == "*"
                || (!name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c)));
            if !fits {
                return Err(InvalidSetting::new(
                    "alert_gates.allowed_hosts",
                    format!(
                        "{host:?} is not a host: write a host name (\"prometheus.example.org\"), \"*.example.org\" or \"*\", without scheme, port or path"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The gate client's settings.
    pub fn to_config(&self) -> AlertGateConfig {
        AlertGateConfig {
            timeout: self.timeout,
            allowed_hosts: self.allowed_hosts.clone(),
        }
    }
}
