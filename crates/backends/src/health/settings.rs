//! `[health]` of `crus.toml`: how the server runs a policy's health command
//! and HTTP probe, read with serde and turned into a [`HealthProbeConfig`].

use std::time::Duration;

use serde::Deserialize;

use super::HealthProbeConfig;
use crate::settings::{InvalidSetting, humantime_duration};

/// `[health]`: how the server runs a policy's `health.command` and
/// `health.http` on booted nodes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
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

impl Default for HealthSettings {
    fn default() -> Self {
        let defaults = HealthProbeConfig::default();
        HealthSettings {
            allow_commands: defaults.allow_commands,
            timeout: defaults.timeout,
            allowed_http_hosts: defaults.allowed_http_hosts,
        }
    }
}

impl HealthSettings {
    /// Checks what the types alone do not.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.timeout.is_zero() {
            return Err(InvalidSetting::new(
                "health.timeout",
                "must be longer than zero",
            ));
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
                return Err(InvalidSetting::new(
                    "health.allowed_http_hosts",
                    format!(
                        "{host:?} is not a host: write a host name (\"monitor.example.org\"), \"*.example.org\", \"{{node}}\" or \"*\", without scheme, port or path"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The probe's settings.
    pub fn to_config(&self) -> HealthProbeConfig {
        if self.allow_commands {
            tracing::warn!(
                "[health] allow_commands = true: sessions' health commands run on this server with its rights"
            );
        }
        HealthProbeConfig {
            allow_commands: self.allow_commands,
            timeout: self.timeout,
            allowed_http_hosts: self.allowed_http_hosts.clone(),
        }
    }
}
