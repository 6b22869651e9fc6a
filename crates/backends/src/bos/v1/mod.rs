//! Cray Boot Orchestration Service **v1** sessions as the [`BootOrchestrator`],
//! for CSM releases before BOS v2 (the original CRUS booted through them).
//!
//! # Calls
//!
//! - template check: `GET /v1/sessiontemplate/{name}` (404: no such template);
//! - boot: `POST /v1/session {"operation": "reboot", "templateName", "limit"}`
//!   with the step's nodes as the comma-separated limit; BOS answers 201 with
//!   the session's `links` (`/v1/session/<id>`) and its BOA `job`;
//! - progress: `GET /v1/session/{id}/status` (the boot sets and whether BOA is
//!   done), then `GET /v1/session/{id}/status/{boot_set}` for each boot set,
//!   whose phases list the nodes per category (see `progress.rs`);
//! - cancel: `DELETE /v1/session/{id}`.
//!
//! BOS v1 has a known bug (CSM's "Manage a BOS Session"): some sessions
//! answer `GET /v1/session/{id}` with 404 although `GET /v1/session` lists
//! them. So a 404 is only taken as "no such session" once the listing agrees.
//!
//! BOS v1 rejects a non-empty `Cray-Tenant-Name` on its session and status
//! calls, so this backend has no tenant.
//!
//! # Idempotency
//!
//! A v1 session has no name crus can choose: every POST starts another BOA
//! job. So:
//!
//! - the boot id (see `handle.rs`) carries the BOS session id and the nodes,
//!   and the caller stores it with the step before it asks for progress: a
//!   restarted crus follows that session and starts none;
//! - in one process, keys are remembered: `start_boot` with a key it has
//!   seen returns the first handle;
//! - for a key it has not seen (a restart between BOS's answer to the POST
//!   and the caller storing the handle, or a POST whose answer was lost and
//!   is retried), BOS's sessions are searched first: one that is not
//!   complete, reboots the same template and whose boot set status lists
//!   exactly the request's nodes is taken over instead of starting a second.
//!
//! Remaining window: a session BOA has not yet written a status for (its
//! first seconds), or one hit by the describe bug, cannot be recognised, and
//! a second one is started. The nodes are drained for the boot already, so
//! the cost is a second reboot of them, not a lost job.

mod handle;
mod progress;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::node::NodeId;
use crus_core::ports::{BootHandle, BootOrchestrator, BootRequest, NodeBootState, NodeBootStatus};
use serde::{Deserialize, Serialize};

use super::BACKEND;
use crate::service::{ServiceClient, ServiceConfig, ServiceError, path_segment};
use handle::BootId;
use progress::{BootSetStatus, SessionStatus};

/// `POST /v1/session`.
#[derive(Debug, Serialize)]
struct SessionCreate<'a> {
    operation: &'static str,
    #[serde(rename = "templateName")]
    template_name: &'a str,
    limit: String,
}

/// The answer to `POST /v1/session`: where the session is.
#[derive(Debug, Deserialize)]
struct Created {
    #[serde(default)]
    job: String,
    #[serde(default)]
    links: Vec<Link>,
}

#[derive(Debug, Deserialize)]
struct Link {
    #[serde(default)]
    href: String,
    #[serde(default)]
    rel: String,
}

/// `GET /v1/session/{id}`: the parts crus reads.
#[derive(Debug, Deserialize)]
struct Description {
    #[serde(default)]
    complete: bool,
    #[serde(default)]
    operation: String,
    #[serde(default, rename = "templateName")]
    template_name: Option<String>,
    /// What CRUS sent, "DEPRECATED - use templateName", holding the name.
    #[serde(default, rename = "templateUuid")]
    template_uuid: Option<String>,
}

/// Boots nodes with BOS v1 sessions.
#[derive(Debug)]
pub struct BosV1Orchestrator {
    client: ServiceClient,
    /// Boots started (or taken over) by this process, by idempotency key.
    started: Mutex<HashMap<String, BootHandle>>,
}

impl BosV1Orchestrator {
    /// An orchestrator over the BOS at `config.base_url` (e.g.
    /// `https://api-gw-service-nmn.local/apis/bos`).
    ///
    /// [`Error::Invalid`] when the configuration cannot work (unreadable CA file).
    pub fn new(config: &ServiceConfig) -> Result<Self> {
        Ok(BosV1Orchestrator {
            client: ServiceClient::new(BACKEND, config)?,
            started: Mutex::new(HashMap::new()),
        })
    }

    fn remembered(&self, key: &str) -> Option<BootHandle> {
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn remember(&self, handle: &BootHandle) {
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(handle.key.clone(), handle.clone());
    }

    /// The ids of every v1 session BOS has.
    async fn session_ids(&self) -> Result<Vec<String>> {
        Ok(self.client.get_json("/v1/session", &[]).await?)
    }

    /// `GET /v1/session/{id}`; `None` on a 404, which may be the describe bug.
    async fn describe(&self, id: &str) -> Result<Option<Description>> {
        let path = format!("/v1/session/{}", path_segment(id));
        match self.client.get_json(&path, &[]).await {
            Ok(description) => Ok(Some(description)),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The session's status and its boot sets' statuses; `None` while the
    /// session has no status (BOA has not started) or does not exist.
    async fn statuses(&self, id: &str) -> Result<Option<(SessionStatus, Vec<BootSetStatus>)>> {
        let path = format!("/v1/session/{}/status", path_segment(id));
        let session: SessionStatus = match self.client.get_json(&path, &[]).await {
            Ok(session) => session,
            Err(error) if error.status() == Some(404) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let mut boot_sets = Vec::with_capacity(session.boot_sets.len());
        for boot_set in &session.boot_sets {
            let path = format!(
                "/v1/session/{}/status/{}",
                path_segment(id),
                path_segment(boot_set)
            );
            // BOS in CSM 1.0 answered this GET with 201: any 2xx is read.
            match self.client.get_json(&path, &[]).await {
                Ok(status) => boot_sets.push(status),
                // Not written yet by BOA: its nodes have not started.
                Err(error) if error.status() == Some(404) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Some((session, boot_sets)))
    }

    /// Whether BOS knows session `id`, asking the listing when the
    /// description is missing (the describe bug).
    async fn exists(&self, id: &str) -> Result<bool> {
        if self.describe(id).await?.is_some() {
            return Ok(true);
        }
        Ok(self.session_ids().await?.iter().any(|listed| listed == id))
    }

    /// A session that is not complete, reboots `request.template` and whose
    /// status lists exactly `request.nodes`: one started for this request by
    /// a process that stopped before its caller stored the handle.
    async fn find_started(&self, request: &BootRequest) -> Result<Option<String>> {
        let wanted: BTreeSet<&str> = request.nodes.iter().map(NodeId::as_str).collect();
        for id in self.session_ids().await? {
            // A session hit by the describe bug cannot be checked: skipped.
            let Some(description) = self.describe(&id).await? else {
                continue;
            };
            let template = description
                .template_name
                .as_deref()
                .or(description.template_uuid.as_deref());
            if description.complete
                || !description.operation.eq_ignore_ascii_case("reboot")
                || template != Some(request.template.as_str())
            {
                continue;
            }
            let Some((_, boot_sets)) = self.statuses(&id).await? else {
                continue;
            };
            let listed: BTreeSet<&str> = boot_sets.iter().flat_map(BootSetStatus::nodes).collect();
            if listed == wanted {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }
}

/// The session id in BOS's answer to a POST: the last segment of its
/// `session` link (`/v1/session/<id>`), or else its BOA job name minus `boa-`.
fn created_session_id(created: &Created) -> Option<String> {
    let from_link = created
        .links
        .iter()
        .find(|link| link.rel == "session")
        .or_else(|| created.links.first())
        .and_then(|link| link.href.trim_end_matches('/').rsplit('/').next())
        .filter(|id| !id.is_empty() && *id != "session");
    let from_job = created.job.strip_prefix("boa-").filter(|id| !id.is_empty());
    from_link.or(from_job).map(str::to_string)
}

/// Checks what the limit and the boot id need of the request's nodes.
fn check_request(request: &BootRequest) -> Result<()> {
    if request.nodes.is_empty() {
        // An empty limit would reboot every node of the template.
        return Err(Error::invalid(
            "a BOS v1 boot needs at least one node: an empty limit would reboot every node of the session template",
        ));
    }
    if let Some(node) = request
        .nodes
        .iter()
        .find(|node| node.as_str().is_empty() || node.as_str().contains(','))
    {
        return Err(Error::invalid(format!(
            "node id {:?} cannot be part of a BOS limit (empty, or with a ',')",
            node.as_str()
        )));
    }
    Ok(())
}

#[async_trait]
impl BootOrchestrator for BosV1Orchestrator {
    /// BOS v1 keeps no per-node record of what a node booted (it has no
    /// components, only sessions and their BOA jobs): it cannot tell.
    fn current_images_supported(&self) -> Result<()> {
        Err(crus_core::ports::current_images_not_supported("bos v1"))
    }

    async fn template_exists(&self, template: &str) -> Result<bool> {
        let path = format!("/v1/sessiontemplate/{}", path_segment(template));
        Ok(self.client.exists(&path).await?)
    }

    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
        check_request(request)?;
        if let Some(handle) = self.remembered(&request.key) {
            return Ok(handle);
        }
        let handle = |session: String| BootHandle {
            key: request.key.clone(),
            id: BootId {
                session,
                nodes: request.nodes.clone(),
            }
            .encode(),
        };
        if let Some(session) = self.find_started(request).await? {
            tracing::info!(key = %request.key, %session, "taking over the BOS v1 session already rebooting these nodes");
            let handle = handle(session);
            self.remember(&handle);
            return Ok(handle);
        }
        let body = SessionCreate {
            operation: "reboot",
            template_name: &request.template,
            limit: request
                .nodes
                .iter()
                .map(NodeId::as_str)
                .collect::<Vec<_>>()
                .join(","),
        };
        let created: Created = match self.client.post_json("/v1/session", &body).await {
            Ok(created) => created,
            Err(error) if error.status() == Some(404) => {
                return Err(Error::not_found(format!(
                    "BOS session template '{}' ({error})",
                    request.template
                )));
            }
            Err(error) => return Err(error.into()),
        };
        let session = created_session_id(&created).ok_or_else(|| {
            Error::from(ServiceError::Decode {
                service: BACKEND,
                method: "POST",
                path: "/v1/session".into(),
                message: format!(
                    "the answer names no session (no links, no job): {created:?}; find the session with `cray bos v1 session list` and check BOS's version"
                ),
            })
        })?;
        let handle = handle(session);
        self.remember(&handle);
        Ok(handle)
    }

    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        let Some(boot) = BootId::decode(&handle.id) else {
            return Err(Error::not_found(format!(
                "BOS v1 boot '{}' (not a boot id this backend hands out)",
                handle.id
            )));
        };
        match self.statuses(&boot.session).await? {
            Some((session, boot_sets)) => {
                let complete = progress::is_complete(&session, &boot_sets);
                Ok(progress::node_states(&boot.nodes, complete, &boot_sets))
            }
            // No status: BOA has not started yet, or BOS has no such session.
            None if self.exists(&boot.session).await? => Ok(boot
                .nodes
                .iter()
                .map(|node| NodeBootStatus {
                    node: node.clone(),
                    state: NodeBootState::InProgress,
                })
                .collect()),
            None => Err(Error::not_found(format!(
                "BOS v1 session '{}'",
                boot.session
            ))),
        }
    }

    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        // An id this backend never handed out names nothing to stop.
        let Some(boot) = BootId::decode(&handle.id) else {
            return Ok(());
        };
        let path = format!("/v1/session/{}", path_segment(&boot.session));
        match self.client.delete(&path).await {
            Ok(()) => Ok(()),
            Err(error) if error.status() == Some(404) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests;
