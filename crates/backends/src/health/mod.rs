//! The site's health checks of booted nodes (a policy's `health.command`
//! and `health.http`), run by the server between "the workload manager says
//! the node is back" and "the node counts as upgraded".
//!
//! A check that fails is an answer, not an error: the node stays in
//! verification, its soak restarts, and if it never passes it fails after
//! the boot timeout with the check's last answer as its reason.

mod command;
mod http;
mod settings;

pub use settings::HealthSettings;

use std::time::Duration;

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::node::NodeId;
use crus_core::ports::{HealthCheck, HealthProbe};

use crate::transport::HttpClientSettings;

/// The backend name in errors and logs.
const BACKEND: &str = "health";

/// How [`SiteHealthProbe`] runs checks (`[health]` in `crus.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthProbeConfig {
    /// Whether policies may name a command. A command runs on the crus
    /// server with the server's rights, so it is off unless the site turns
    /// it on: any client with a token could otherwise run anything there.
    pub allow_commands: bool,
    /// How long one command or HTTP probe may take before it counts as
    /// failed (a command is killed).
    pub timeout: Duration,
    /// The hosts an HTTP probe may GET: host names, `*.domain` for every
    /// host of a domain, `{node}` for the nodes themselves (a template such
    /// as `http://{node}:9100/healthy`), `*` for any host. Any API client
    /// can name a probe URL, so only the nodes are allowed unless the site
    /// says otherwise.
    pub allowed_http_hosts: Vec<String>,
}

impl Default for HealthProbeConfig {
    fn default() -> Self {
        HealthProbeConfig {
            allow_commands: false,
            timeout: Duration::from_secs(30),
            allowed_http_hosts: vec![http::NODE_PLACEHOLDER.to_string()],
        }
    }
}

/// Runs health commands with `/bin/sh` and HTTP probes with GET.
#[derive(Debug, Clone)]
pub struct SiteHealthProbe {
    config: HealthProbeConfig,
    /// `config.allowed_http_hosts`, ready to match.
    allowed_hosts: http::AllowedHosts,
    client: reqwest::Client,
}

impl SiteHealthProbe {
    /// A prober with `config`; fails only if no HTTP client can be built
    /// (no TLS roots on this system).
    pub fn new(config: HealthProbeConfig) -> Result<SiteHealthProbe> {
        let allowed_hosts = http::AllowedHosts::new(&config.allowed_http_hosts);
        let client = HttpClientSettings::new(config.timeout)
            .redirect(http::redirect_policy(allowed_hosts.clone()))
            .build()
            .map_err(|error| Error::Other {
                backend: BACKEND,
                source: format!("cannot build the health probes' HTTP client: {error}").into(),
            })?;
        Ok(SiteHealthProbe {
            config,
            allowed_hosts,
            client,
        })
    }

    fn command_refusal() -> String {
        "This server does not run health commands: a command would run on the crus server \
         with its rights. The site may allow them with `allow_commands = true` in the \
         [health] section of crus.toml; an HTTP probe (`health.http`) needs no such setting."
            .to_string()
    }
}

#[async_trait]
impl HealthProbe for SiteHealthProbe {
    async fn probe(&self, node: &NodeId, check: &HealthCheck) -> Result<Option<String>> {
        if let Some(command) = &check.command {
            if !self.config.allow_commands {
                return Ok(Some(Self::command_refusal()));
            }
            if let Some(failure) = command::run(command, node, self.config.timeout).await? {
                return Ok(Some(failure));
            }
        }
        if let Some(template) = &check.http
            && let Some(failure) =
                http::get(&self.client, &self.allowed_hosts, template, node).await
        {
            return Ok(Some(failure));
        }
        Ok(None)
    }

    fn refuses(&self, check: &HealthCheck) -> Option<String> {
        if check.command.is_some() && !self.config.allow_commands {
            return Some(Self::command_refusal());
        }
        check
            .http
            .as_deref()
            .and_then(|template| self.allowed_hosts.refusal(template))
    }
}

#[cfg(test)]
mod tests;
