//! Kadeploy3's native power and reboot operations as the [`PowerControl`]:
//! what `escalate_power_cycle` restarts a node that does not come back with
//! on a site where Kadeploy is the only way to the nodes' power.
//!
//! The operations (Kadeploy 3 API, `doc/api/power.api` and `reboot.api`;
//! `server/kapower.rb`, `kareboot.rb`, `kaworkflow.rb`) are workflows like a
//! deployment, each answered with its `wid`:
//! - `PUT /power {nodes, status: "on"|"off", level}` powers nodes on or off;
//! - `POST /reboot {nodes, kind: "simple", level}` reboots them without
//!   touching their PXE profile (so a node in the middle of a deployment
//!   boots on into it);
//! - `GET /power?nodes=…` starts a power-status workflow; once
//!   `GET /power/{wid}` says it is `done`, `GET /power/{wid}/state` has each
//!   `ok` host's power status command output as `out` (`parallel_get_power_status`
//!   in `server/microsteps.rb`).
//!
//! `level` is Kadeploy's escalation level: `soft` (the site's soft command,
//! usually through the node's OS), then `hard` (the BMC), then `very_hard`;
//! Kadeploy moves to the next level itself when one fails. A graceful
//! restart is a `soft` reboot, a forced one a `hard` reboot; a graceful
//! shutdown is a `soft` power off, a forced one a `hard` power off.
//!
//! Every operation is sent with `force`: without it Kadeploy leaves out
//! nodes another of its operations is working on (`check_nodes_used` in
//! `server/workflow.rb`), and a node crus escalates is usually one whose
//! deployment is waiting for it to come back.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use crus_core::error::Result;
use crus_core::node::NodeId;
use crus_core::ports::{PowerControl, PowerOperation, PowerState};
use serde::Serialize;
use serde_json::Value;

use super::client::KadeployClient;
use super::config::KadeployConfig;
use super::deployment::{Created, Deployment, DeploymentNodes};
use super::error::KadeployError;
use super::hosts::HostNames;

/// Where power operations are started and power-status runs are read.
const POWER: &str = "power";
/// Where reboots are started.
const REBOOT: &str = "reboot";
/// The first pause between two reads of a power-status run; it doubles up
/// to [`MAX_STATUS_PAUSE`].
const FIRST_STATUS_PAUSE: Duration = Duration::from_millis(100);
const MAX_STATUS_PAUSE: Duration = Duration::from_secs(2);

/// Power and reboots through Kadeploy3.
#[derive(Debug)]
pub struct KadeployPowerControl {
    client: KadeployClient,
    names: HostNames,
    /// How long a power-status run may take before `power_state` gives up.
    status_timeout: Duration,
}

/// The body of `PUT /power`.
#[derive(Debug, Serialize)]
struct PowerRequest<'a> {
    nodes: &'a [String],
    status: &'static str,
    level: &'static str,
    force: bool,
}

/// The body of `POST /reboot`.
#[derive(Debug, Serialize)]
struct RebootRequest<'a> {
    nodes: &'a [String],
    kind: &'static str,
    level: &'static str,
    force: bool,
}

impl KadeployPowerControl {
    /// Power control through the Kadeploy API at `config.power_base_url`
    /// (or `config.base_url`), as `config.user`. A power-status run may take
    /// `config.timeout`.
    ///
    /// [`crus_core::Error::Invalid`] when the configuration cannot work.
    pub fn new(config: &KadeployConfig) -> Result<Self> {
        let mut power_config = config.clone();
        if let Some(base_url) = &config.power_base_url {
            power_config.base_url = base_url.clone();
        }
        Ok(KadeployPowerControl {
            client: KadeployClient::new(&power_config)?,
            names: HostNames::new(config.host_domain.as_deref()),
            status_timeout: config.timeout,
        })
    }

    fn hosts(&self, nodes: &[NodeId]) -> Vec<String> {
        nodes.iter().map(|node| self.names.host(node)).collect()
    }

    /// Waits until power-status run `wid` is done, and returns it.
    async fn finished_run(&self, wid: &str) -> Result<Deployment, KadeployError> {
        let deadline = tokio::time::Instant::now() + self.status_timeout;
        let mut pause = FIRST_STATUS_PAUSE;
        loop {
            let run: Deployment = self.client.get_json(&[POWER, wid], &[]).await?;
            if run.done || run.error {
                return Ok(run);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(KadeployError::PowerStatusTooSlow {
                    wid: wid.to_string(),
                    waited: self.status_timeout,
                });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(MAX_STATUS_PAUSE);
        }
    }
}

/// The power state a power status command's output says: `on` or `off` as a
/// word of it (`on`, `Chassis Power is on`, `Power: OFF`); anything else,
/// or both, is not known.
fn parse_power_output(output: &str) -> PowerState {
    let words: BTreeSet<String> = output
        .split(|character: char| !character.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect();
    match (words.contains("on"), words.contains("off")) {
        (true, false) => PowerState::On,
        (false, true) => PowerState::Off,
        _ => PowerState::Unknown,
    }
}

#[async_trait]
impl PowerControl for KadeployPowerControl {
    /// One power-status run for all of `nodes`. A node Kadeploy reports
    /// `ko` (no power status command, or it failed), leaves out (another
    /// operation is working on it), or whose output says neither `on` nor
    /// `off`, is [`PowerState::Unknown`]; so is every node of a run that
    /// failed as a whole.
    async fn power_state(&self, nodes: &[NodeId]) -> Result<Vec<PowerState>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let hosts = self.hosts(nodes);
        let query: Vec<(&str, String)> = hosts.iter().map(|host| ("nodes", host.clone())).collect();
        let started: Created = self.client.get_json(&[POWER], &query).await?;
        let run = self.finished_run(&started.wid).await?;
        if run.error {
            let why = match self.client.get_text(&[POWER, &run.wid, "error"]).await {
                Ok(answer) => answer.text,
                Err(error) => error.to_string(),
            };
            tracing::warn!(wid = %run.wid, error = %why.trim(), "a Kadeploy power-status run failed; the nodes' power is unknown");
            return Ok(vec![PowerState::Unknown; nodes.len()]);
        }
        let ok: BTreeSet<&str> = match &run.nodes {
            DeploymentNodes::ByState { ok, .. } => ok.iter().map(String::as_str).collect(),
            _ => BTreeSet::new(),
        };
        let states: Value = self
            .client
            .get_json(&[POWER, &run.wid, "state"], &[])
            .await?;
        Ok(hosts
            .iter()
            .map(|host| {
                if !ok.contains(host.as_str()) {
                    return PowerState::Unknown;
                }
                states
                    .get(host)
                    .and_then(|state| state.get("out"))
                    .and_then(Value::as_str)
                    .map_or(PowerState::Unknown, parse_power_output)
            })
            .collect())
    }

    /// Starts the Kadeploy operation for `operation` and returns once
    /// Kadeploy has taken it; the nodes get there while it runs.
    async fn power(&self, nodes: &[NodeId], operation: PowerOperation) -> Result<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        let hosts = self.hosts(nodes);
        let power = |status, level| PowerRequest {
            nodes: &hosts,
            status,
            level,
            force: true,
        };
        let reboot = |level| RebootRequest {
            nodes: &hosts,
            kind: "simple",
            level,
            force: true,
        };
        // Powering on or off twice leaves the nodes as once, so those are
        // sent again after no answer; a reboot is not.
        let _started: Created = match operation {
            PowerOperation::On => self.client.put_json(&[POWER], &power("on", "soft")).await?,
            PowerOperation::ForceOff => {
                self.client
                    .put_json(&[POWER], &power("off", "hard"))
                    .await?
            }
            PowerOperation::GracefulShutdown => {
                self.client
                    .put_json(&[POWER], &power("off", "soft"))
                    .await?
            }
            PowerOperation::GracefulRestart => {
                self.client.post_json(&[REBOOT], &reboot("soft")).await?
            }
            PowerOperation::ForceRestart => {
                self.client.post_json(&[REBOOT], &reboot("hard")).await?
            }
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_status_outputs_are_read_by_their_on_or_off_word() {
        for (output, expected) in [
            ("on", PowerState::On),
            ("off\n", PowerState::Off),
            ("Chassis Power is on", PowerState::On),
            ("Chassis Power is off", PowerState::Off),
            ("Power: OFF", PowerState::Off),
            ("", PowerState::Unknown),
            (
                "Error: Unable to establish IPMI v2 / RMCP+ session",
                PowerState::Unknown,
            ),
            ("online", PowerState::Unknown),
            ("on or off", PowerState::Unknown),
        ] {
            assert_eq!(parse_power_output(output), expected, "{output:?}");
        }
    }
}
