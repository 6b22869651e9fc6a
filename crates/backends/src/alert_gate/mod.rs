//! The site's monitoring as alert gates (a policy's `gates` and the
//! server's `[[gates]]`): a Prometheus instant query, or Alertmanager's
//! firing alerts. Each answer is what blocks now; a gate that cannot be
//! asked is an error, and the session holds (fail closed).

mod alertmanager;
mod hosts;
mod prometheus;
mod settings;

pub use settings::AlertGateSettings;

use std::time::Duration;

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::ports::{AlertGate, GateCheck};

use hosts::AllowedHosts;

/// The backend name in errors and logs.
const BACKEND: &str = "alert_gate";

/// At most this many firing alerts or series are named in a session's
/// messages; the rest are counted.
const NAMED_AT_MOST: usize = 5;

/// How [`SiteAlertGate`] asks the monitoring (`[alert_gates]` in `crus.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertGateConfig {
    /// How long one query may take before the gate counts as unreachable.
    pub timeout: Duration,
    /// The hosts a session's gate may name: host names, `*.domain`, or `*`
    /// for any. Any API client can name a gate URL, so none is allowed
    /// unless the site says so (the server's own gates always are).
    pub allowed_hosts: Vec<String>,
}

impl Default for AlertGateConfig {
    fn default() -> Self {
        AlertGateConfig {
            timeout: Duration::from_secs(10),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Asks Prometheus and Alertmanager over HTTP.
#[derive(Debug, Clone)]
pub struct SiteAlertGate {
    allowed_hosts: AllowedHosts,
    client: reqwest::Client,
}

impl SiteAlertGate {
    /// A gate client with `config`, which also asks the hosts of
    /// `server_gates` (the server's own); fails only if no HTTP client can
    /// be built.
    pub fn new(config: AlertGateConfig, server_gates: &[GateCheck]) -> Result<SiteAlertGate> {
        let mut allowed = config.allowed_hosts.clone();
        allowed.extend(
            server_gates
                .iter()
                .filter_map(|gate| hosts::host_of(url_of(gate)).ok()),
        );
        let client = crate::transport::HttpClientSettings::new(config.timeout)
            // A redirect could take a gate where its URL could not.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| Error::Other {
                backend: BACKEND,
                source: format!("cannot build the alert gates' HTTP client: {error}").into(),
            })?;
        Ok(SiteAlertGate {
            allowed_hosts: AllowedHosts::new(&allowed),
            client,
        })
    }
}

fn url_of(gate: &GateCheck) -> &str {
    match gate {
        GateCheck::Prometheus { url, .. } | GateCheck::Alertmanager { url, .. } => url,
    }
}

/// `a, b, c, and 4 more`.
fn named(mut items: Vec<String>) -> Vec<String> {
    if items.len() > NAMED_AT_MOST {
        let more = items.len() - NAMED_AT_MOST;
        items.truncate(NAMED_AT_MOST);
        items.push(format!("and {more} more"));
    }
    items
}

/// `name{a="1",b="2"}` from a label set, the name label first.
fn labelled(name_label: &str, labels: &serde_json::Map<String, serde_json::Value>) -> String {
    let name = labels
        .get(name_label)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let rest: Vec<String> = labels
        .iter()
        .filter(|(key, _)| key.as_str() != name_label)
        .map(|(key, value)| format!("{key}={:?}", value.as_str().unwrap_or_default()))
        .collect();
    if rest.is_empty() {
        if name.is_empty() {
            "{}".to_string()
        } else {
            name.to_string()
        }
    } else {
        format!("{name}{{{}}}", rest.join(","))
    }
}

#[async_trait]
impl AlertGate for SiteAlertGate {
    async fn blocking(&self, gate: &GateCheck) -> Result<Vec<String>> {
        if let Some(why) = self.allowed_hosts.refusal(url_of(gate)) {
            return Err(Error::invalid(why));
        }
        let blocking = match gate {
            GateCheck::Prometheus {
                url,
                query,
                block_when,
            } => prometheus::blocking(&self.client, url, query, *block_when).await?,
            GateCheck::Alertmanager { url, filter } => {
                alertmanager::blocking(&self.client, url, filter).await?
            }
        };
        Ok(named(blocking))
    }

    fn refuses(&self, gate: &GateCheck) -> Option<String> {
        self.allowed_hosts.refusal(url_of(gate))
    }
}

#[cfg(test)]
mod tests;
