//! Cray Boot Orchestration Service v2 (BOS) as the [`BootOrchestrator`]: one
//! BOS session per boot, named after the request's idempotency key, limited
//! to the request's nodes, with per-node results read from BOS components
//! (all pages of them, see `components.rs`).
//!
//! With a tenant ([`BosOrchestrator::with_tenant`]) every call carries the
//! `Cray-Tenant-Name` header, so BOS reads and starts the tenant's session
//! templates and sessions (the BOS API document, `V2TenantHeaderParam`).
//! BOS v1 sessions, which CSM releases before BOS v2 used, are in [`v1`].

mod components;
mod current_image;
mod session_name;
mod settings;
pub mod v1;

use std::collections::HashMap;

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::node::NodeId;
use crus_core::ports::{
    BootHandle, BootOrchestrator, BootRequest, NodeBootState, NodeBootStatus, NodeImage,
};
use serde::{Deserialize, Serialize};

use crate::service::{ServiceClient, ServiceConfig, ServiceError, path_segment};
use components::{Component, Paging, session_components};

pub use session_name::session_name;
pub use settings::BosSettings;

/// The backend name in errors.
const BACKEND: &str = "bos";

/// The header naming the tenant whose templates and sessions a call is about.
pub const TENANT_HEADER: &str = "Cray-Tenant-Name";

/// The reason given for a failed node whose BOS component carries no error.
const NO_ERROR_GIVEN: &str = "BOS marked the node failed without an error";

#[derive(Debug, Serialize)]
struct SessionCreate<'a> {
    name: &'a str,
    operation: &'static str,
    template_name: &'a str,
    limit: String,
}

/// The parts of a BOS v2 session crus reads.
#[derive(Debug, Deserialize)]
struct Session {
    #[serde(default)]
    limit: String,
    #[serde(default)]
    status: SessionStatus,
}

#[derive(Debug, Default, Deserialize)]
struct SessionStatus {
    /// `pending`, `running` or `complete`.
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<String>,
}

/// Boots nodes with BOS v2 sessions.
#[derive(Debug)]
pub struct BosOrchestrator {
    client: ServiceClient,
    /// How the components of a session are read, page by page; tests make
    /// pages small.
    paging: Paging,
}

impl BosOrchestrator {
    /// An orchestrator over the BOS at `config.base_url` (e.g.
    /// `https://api-gw-service-nmn.local/apis/bos`).
    ///
    /// [`Error::Invalid`] when the configuration cannot work (unreadable CA file).
    pub fn new(config: &ServiceConfig) -> Result<Self> {
        Ok(BosOrchestrator {
            client: ServiceClient::new(BACKEND, config)?,
            paging: Paging::default(),
        })
    }

    /// This orchestrator acting for tenant `tenant`: every call carries it
    /// as the `Cray-Tenant-Name` header. An empty tenant means none, as in BOS.
    ///
    /// [`Error::Invalid`] when `tenant` cannot be sent as a header value.
    pub fn with_tenant(mut self, tenant: &str) -> Result<Self> {
        if let Some(value) = tenant_header(tenant)? {
            self.client = self.client.with_header(TENANT_HEADER, value);
        }
        Ok(self)
    }

    async fn session(&self, name: &str) -> Result<Session> {
        let path = format!("/v2/sessions/{}", path_segment(name));
        self.client
            .get_json(&path, &[])
            .await
            .map_err(|error| session_error(name, error))
    }
}

/// `tenant` as a header value; `None` for no tenant.
fn tenant_header(tenant: &str) -> Result<Option<String>> {
    if tenant.is_empty() {
        return Ok(None);
    }
    // BOS tenant names are Kubernetes-style names; anything outside visible
    // ASCII would not survive as a header.
    if tenant.bytes().all(|byte| byte.is_ascii_graphic()) {
        Ok(Some(tenant.to_string()))
    } else {
        Err(Error::invalid(format!(
            "BOS tenant {tenant:?} cannot be sent as the {TENANT_HEADER} header: use letters, digits and punctuation, without spaces"
        )))
    }
}

/// The error for a call on session `name`: a 404 means BOS does not know it.
fn session_error(name: &str, error: ServiceError) -> Error {
    match error.status() {
        Some(404) => Error::not_found(format!("BOS session '{name}' ({error})")),
        _ => error.into(),
    }
}

/// Where one node stands, from its BOS component.
///
/// BOS computes `status.status` as `stable` once the phase is empty; it
/// disables a component when it is done with it, so only a disabled stable
/// component is booted (an enabled one may not have been picked up yet).
/// `on_hold` (PCS or CFS have no record of the node) never resolves by itself,
/// so it counts as a failure.
fn node_state(component: &Component) -> NodeBootState {
    let status = &component.status;
    let error = if component.error.is_empty() {
        NO_ERROR_GIVEN.to_string()
    } else {
        component.error.clone()
    };
    if status.status_override == "on_hold" || status.status == "on_hold" {
        NodeBootState::Failed {
            reason: format!("on hold: {}", component.error),
        }
    } else if status.status_override == "failed" || status.status == "failed" {
        NodeBootState::Failed { reason: error }
    } else if !component.enabled && (status.status == "stable" || status.phase.is_empty()) {
        NodeBootState::Ok
    } else {
        NodeBootState::InProgress
    }
}

#[async_trait]
impl BootOrchestrator for BosOrchestrator {
    async fn template_exists(&self, template: &str) -> Result<bool> {
        let path = format!("/v2/sessiontemplates/{}", path_segment(template));
        Ok(self.client.exists(&path).await?)
    }

    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
        let name = session_name(&request.key);
        let body = SessionCreate {
            name: &name,
            operation: "reboot",
            template_name: &request.template,
            limit: request
                .nodes
                .iter()
                .map(NodeId::as_str)
                .collect::<Vec<_>>()
                .join(","),
        };
        let handle = BootHandle {
            key: request.key.clone(),
            id: name.clone(),
        };
        match self
            .client
            .post_json::<_, serde_json::Value>("/v2/sessions", &body)
            .await
        {
            Ok(_) => Ok(handle),
            // The session of this key exists: an earlier call (or a retry of
            // this POST) started it. Read it to be sure it is there.
            Err(error) if error.status() == Some(409) => {
                self.session(&name).await?;
                Ok(handle)
            }
            // BOS answers a missing template with 400, not 404.
            Err(error)
                if error.status() == Some(400)
                    && error.detail().contains("Session Template Name invalid") =>
            {
                Err(Error::not_found(format!(
                    "BOS session template '{}' ({error})",
                    request.template
                )))
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        // The session says which nodes were asked for (its limit) and whether
        // BOS is done with it.
        let session = self.session(&handle.id).await?;
        let components = session_components(&self.client, &handle.id, self.paging).await?;
        let by_id: HashMap<&str, &Component> = components
            .iter()
            .map(|component| (component.id.as_str(), component))
            .collect();
        let complete = session.status.status == "complete";
        Ok(session
            .limit
            .split(',')
            .filter(|node| !node.is_empty())
            .map(|node| {
                let state = match by_id.get(node) {
                    Some(component) => node_state(component),
                    // A finished session that never took the node (locked,
                    // disabled, not in the template) will not boot it.
                    None if complete => NodeBootState::Failed {
                        reason: session.status.error.clone().unwrap_or_else(|| {
                            "the BOS session completed without booting this node".to_string()
                        }),
                    },
                    None => NodeBootState::InProgress,
                };
                NodeBootStatus {
                    node: NodeId::from(node),
                    state,
                }
            })
            .collect())
    }

    fn current_images_supported(&self) -> Result<()> {
        Ok(())
    }

    /// The session template each node runs, from its BOS component and the
    /// session that last booted it (the rule is in `current_image.rs`).
    async fn current_images(&self, nodes: &[NodeId], template: &str) -> Result<Vec<NodeImage>> {
        let _ = template;
        self.read_current_images(nodes).await
    }

    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        let path = format!("/v2/sessions/{}", path_segment(&handle.id));
        match self.client.delete(&path).await {
            Ok(()) => Ok(()),
            Err(error) if error.status() == Some(404) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests;
