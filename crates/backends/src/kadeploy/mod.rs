//! Kadeploy3 (Grid'5000-style sites) as the [`BootOrchestrator`]: one
//! deployment (`POST /deployment`) per boot, polled through
//! `GET /deployment/{wid}` and its `ok` / `ko` / `processing` host lists,
//! a `ko` node's reason from `GET /deployment/{wid}/state`, a run that failed
//! as a whole failing all its nodes with `GET /deployment/{wid}/error`
//! (see `deployment.rs`), cancelled with `DELETE /deployment/{wid}`,
//! templates checked in `GET /environments`. Kadeploy's power and reboot
//! operations are the [`PowerControl`](crus_core::ports::PowerControl)
//! [`KadeployPowerControl`] (see `power.rs`).
//!
//! A template is a registered environment `name[:version][@user]`
//! (`debian11-min`, `debian11-min:2023011315@deploy`) or an image location
//! (`http://frontend/~me/debian-base.tgz`, also `https://`, `file://`,
//! `server://`; kind and compression come from the file's suffix). See
//! `idempotency.rs` for how a boot is found again under its key.
//!
//! ```no_run
//! use crus_backends::kadeploy::{KadeployBootOrchestrator, KadeployConfig};
//!
//! let mut config = KadeployConfig::new("https://api.grid5000.fr/4.0/sites/nantes");
//! config.user = Some("crus".to_string());
//! config.host_domain = Some("nantes.grid5000.fr".to_string());
//! let _orchestrator = KadeployBootOrchestrator::new(&config)?;
//! # Ok::<(), crus_core::Error>(())
//! ```

mod client;
mod config;
mod current_image;
mod deployment;
mod environment;
mod error;
mod hosts;
mod idempotency;
mod power;
mod settings;

use std::collections::BTreeSet;

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::ports::{BootHandle, BootOrchestrator, BootRequest, NodeBootStatus, NodeImage};
use serde_json::Value;

use client::KadeployClient;
use deployment::{Created, Deployment, DeploymentRequest, FailureReasons, listed_deployments};
use environment::{ListedEnvironment, Template, listing_query};
use error::KadeployError;
use hosts::HostNames;
use idempotency::Ledger;

pub use config::{KadeployBasicAuth, KadeployConfig, check_authorized_keys_location};
pub use power::KadeployPowerControl;
pub use settings::KadeploySettings;

/// Where deployments are created, listed and read.
const DEPLOYMENT: &str = "deployment";

/// Boots nodes with Kadeploy3 deployments.
#[derive(Debug)]
pub struct KadeployBootOrchestrator {
    client: KadeployClient,
    names: HostNames,
    /// The user deployments are started as, to adopt only its own.
    user: Option<String>,
    ssh_authorized_keys: Option<String>,
    block_device: Option<String>,
    deploy_partition: Option<String>,
    /// The boots this process started, by key (see `idempotency.rs`).
    ledger: Ledger,
}

impl KadeployBootOrchestrator {
    /// An orchestrator over the Kadeploy API at `config.base_url`.
    ///
    /// [`Error::Invalid`] when the configuration cannot work (a base URL
    /// that is not one, an unreadable CA file, an `ssh_authorized_keys` that
    /// is not a location Kadeploy fetches from).
    pub fn new(config: &KadeployConfig) -> Result<Self> {
        if let Some(location) = &config.ssh_authorized_keys {
            check_authorized_keys_location(location).map_err(|problem| KadeployError::Config {
                message: format!("kadeploy.ssh_authorized_keys {problem}"),
            })?;
        }
        Ok(KadeployBootOrchestrator {
            client: KadeployClient::new(config)?,
            names: HostNames::new(config.host_domain.as_deref()),
            user: config.user.clone(),
            ssh_authorized_keys: config.ssh_authorized_keys.clone(),
            block_device: config.block_device.clone(),
            deploy_partition: config.deploy_partition.clone(),
            ledger: Ledger::default(),
        })
    }

    /// Whether the registered environment `template` is listed.
    async fn environment_listed(&self, template: &Template) -> Result<bool, KadeployError> {
        let Template::Registered {
            name,
            version,
            user,
        } = template
        else {
            // Kadeploy reads an image only when it deploys it, so there is
            // nothing to ask beforehand; a missing file fails the deployment.
            return Ok(true);
        };
        let query = listing_query(name, *version, user.as_deref());
        let listing: Value = self.client.get_json(&["environments"], &query).await?;
        let Value::Array(items) = listing else {
            return Err(KadeployError::Decode {
                method: reqwest::Method::GET,
                path: "/environments".to_string(),
                message: "expected an array of environments".to_string(),
            });
        };
        Ok(items
            .into_iter()
            .filter_map(|item| serde_json::from_value::<ListedEnvironment>(item).ok())
            .any(|listed| template.matches(&listed)))
    }

    /// The unfinished deployment of `hosts` with `template` by crus's user,
    /// if Kadeploy lists one.
    async fn running_deployment(
        &self,
        hosts: &BTreeSet<&str>,
        template: &Template,
    ) -> Result<Option<Deployment>, KadeployError> {
        let listing = match self.client.get_json::<Value>(&[DEPLOYMENT], &[]).await {
            Ok(listing) => listing,
            // A server without the listing cannot have a deployment to adopt;
            // the ledger still covers repeats within this process.
            Err(error) if matches!(error.status(), Some(404 | 405)) => {
                tracing::warn!(%error, "kadeploy lists no deployments; a boot cannot be found again after a restart");
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        Ok(listed_deployments(listing)
            .into_iter()
            .find(|deployment| deployment.is_running(hosts, template, self.user.as_deref())))
    }

    /// Why the failed nodes of `deployment` failed: the run's error when
    /// it failed as a whole, each `ko` node's state otherwise. An unreadable
    /// answer does not hide the nodes' states, it only leaves the reason vague.
    async fn failure_reasons(&self, deployment: &Deployment) -> FailureReasons {
        let wid = deployment.wid.as_str();
        if deployment.error {
            return match self.client.get_text(&[DEPLOYMENT, wid, "error"]).await {
                Ok(answer) => FailureReasons::from_run_error(answer.status, &answer.text),
                // An exception other than Kadeploy's own ends the run with a
                // 500 and its message (`httpd.rb`): still the run's error.
                Err(KadeployError::Status {
                    status, message, ..
                }) => FailureReasons::from_run_error(status, &message),
                Err(error) => FailureReasons::unreadable("error", error.to_string()),
            };
        }
        if !deployment.has_failed_nodes() {
            return FailureReasons::default();
        }
        match self
            .client
            .get_json::<Value>(&[DEPLOYMENT, wid, "state"], &[])
            .await
        {
            Ok(answer) => FailureReasons::from_states(&answer),
            Err(error) => FailureReasons::unreadable("state", error.to_string()),
        }
    }
}

/// The error for a call on deployment `wid`: one that says Kadeploy does
/// not know it (see [`KadeployError::is_unknown_workflow`]) means it does
/// not exist.
fn deployment_error(wid: &str, error: KadeployError) -> Error {
    if error.is_unknown_workflow() {
        Error::not_found(format!("Kadeploy deployment '{wid}' ({error})"))
    } else {
        error.into()
    }
}

#[async_trait]
impl BootOrchestrator for KadeployBootOrchestrator {
    fn current_images_supported(&self) -> Result<()> {
        Ok(())
    }

    /// Whether each node runs `template`, from the environment Kadeploy
    /// last deployed on it (the rule is in `current_image.rs`).
    async fn current_images(
        &self,
        nodes: &[crus_core::NodeId],
        template: &str,
    ) -> Result<Vec<NodeImage>> {
        self.read_current_images(nodes, template).await
    }

    async fn template_exists(&self, template: &str) -> Result<bool> {
        let parsed = Template::parse(template)?;
        Ok(self.environment_listed(&parsed).await?)
    }

    /// Idempotent under `request.key`; see `idempotency.rs` for how, and
    /// why a POST whose outcome is unknown is never repeated blindly.
    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
        let template = Template::parse(&request.template)?;
        if request.nodes.is_empty() {
            return Err(Error::invalid(
                "a Kadeploy deployment needs at least one node; the boot request has none",
            ));
        }
        let host_list: Vec<String> = request
            .nodes
            .iter()
            .map(|node| self.names.host(node))
            .collect();
        let hosts: BTreeSet<&str> = host_list.iter().map(String::as_str).collect();
        let handle = |wid: &str| BootHandle {
            key: request.key.clone(),
            id: wid.to_string(),
        };

        let mut ledger = self.ledger.lock().await;
        if let Some(wid) = ledger.find(&request.key, &hosts, &request.template)? {
            return Ok(handle(&wid));
        }
        // Kadeploy answers an unknown environment with a 500 and a Ruby
        // backtrace, which crus could not tell from an outage.
        if !self.environment_listed(&template).await? {
            return Err(KadeployError::NoSuchEnvironment {
                template: request.template.clone(),
            }
            .into());
        }
        if let Some(deployment) = self.running_deployment(&hosts, &template).await? {
            tracing::info!(wid = %deployment.wid, key = %request.key, "adopting a running Kadeploy deployment");
            ledger.record(&request.key, &hosts, &request.template, &deployment.wid);
            return Ok(handle(&deployment.wid));
        }

        let body = DeploymentRequest {
            nodes: &host_list,
            environment: template.to_request(),
            ssh_authorized_keys: self.ssh_authorized_keys.as_deref(),
            block_device: self.block_device.as_deref(),
            deploy_partition: self.deploy_partition.as_deref(),
        };
        let outcome = self
            .client
            .post_json::<_, Created>(&[DEPLOYMENT], &body)
            .await;
        let cause = match outcome {
            Ok(created) => {
                ledger.record(&request.key, &hosts, &request.template, &created.wid);
                return Ok(handle(&created.wid));
            }
            // No answer, a 5xx a gateway may send after the server took the
            // request, or a success whose wid crus cannot read: the
            // deployment may exist. Look, do not repeat.
            Err(error @ (KadeployError::Transport { .. } | KadeployError::Decode { .. })) => {
                error.to_string()
            }
            Err(error) if error.status().is_some_and(|status| status >= 500) => error.to_string(),
            Err(error) => return Err(error.into()),
        };
        match self.running_deployment(&hosts, &template).await {
            Ok(Some(deployment)) => {
                ledger.record(&request.key, &hosts, &request.template, &deployment.wid);
                Ok(handle(&deployment.wid))
            }
            Ok(None) => Err(KadeployError::PostOutcomeUnknown {
                hosts: host_list.join(","),
                cause,
            }
            .into()),
            Err(lookup) => Err(KadeployError::PostOutcomeUnknown {
                hosts: host_list.join(","),
                cause: format!("{cause}; then listing the deployments failed: {lookup}"),
            }
            .into()),
        }
    }

    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        let deployment: Deployment = self
            .client
            .get_json(&[DEPLOYMENT, &handle.id], &[])
            .await
            .map_err(|error| deployment_error(&handle.id, error))?;
        let reasons = self.failure_reasons(&deployment).await;
        let requested = if deployment.hides_its_hosts() {
            self.ledger.hosts_of(&handle.key, &handle.id).await
        } else {
            None
        };
        if deployment.error && requested.is_none() && deployment.hides_its_hosts() {
            return Err(KadeployError::RunFailedHostsUnknown {
                wid: handle.id.clone(),
                reason: reasons.of_run(),
            }
            .into());
        }
        Ok(deployment.node_states(&self.names, &reasons, requested.as_ref()))
    }

    /// Idempotent: a deployment Kadeploy no longer knows (404, the 405 the
    /// 4.0 API answers for an unknown id, or kadeploy-server's 400 "Invalid
    /// workflow ID") is already gone, which is what cancelling wants.
    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        match self.client.delete(&[DEPLOYMENT, &handle.id]).await {
            Ok(()) => Ok(()),
            Err(error) if error.is_unknown_workflow() => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}
