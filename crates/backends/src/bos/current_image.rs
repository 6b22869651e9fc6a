//! The image a node runs now, as BOS v2 records it (`skip_matching`).
//!
//! BOS keeps, per component, the boot artifacts it wants the node to run
//! (`desired_state.boot_artifacts`: kernel, initrd, kernel parameters), the
//! ones the node reported booting (`actual_state.boot_artifacts`), and the
//! BOS session that last acted on it (`session`). A session names its
//! session template (`template_name`). The rule crus applies:
//!
//! a node runs session template `T` when its component names a session
//! whose `template_name` is `T` and whose operation is `boot` or `reboot`,
//! BOS is done with it (`enabled: false`, status `stable`: neither `failed`
//! nor `on_hold`), and its actual boot artifacts are its desired ones (a
//! kernel is set and kernel, initrd and parameters are equal: it booted
//! what that session asked).
//!
//! Anything else (no session, a session BOS no longer has, a shutdown, a
//! boot in progress or failed, artifacts that differ) is "cannot tell", and
//! such a node is upgraded as any other: skipping is only for nodes known
//! to be done. A template edited after that session booted the node is not
//! noticed (BOS keeps no digest of the template in the component).

use std::collections::HashMap;

use crus_core::error::Result;
use crus_core::node::NodeId;
use crus_core::ports::NodeImage;
use serde::Deserialize;

use super::BosOrchestrator;
use crate::service::path_segment;

/// How many component ids one `GET /v2/components?ids=` names: the answer
/// then holds at most this many components, and the URL stays short.
const IDS_PER_REQUEST: usize = 100;

/// The parts of a BOS v2 component that tell which image it runs.
#[derive(Debug, Deserialize)]
struct ImagedComponent {
    id: String,
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    session: String,
    #[serde(default)]
    actual_state: BootState,
    #[serde(default)]
    desired_state: BootState,
    #[serde(default)]
    status: Status,
}

#[derive(Debug, Default, Deserialize)]
struct BootState {
    #[serde(default)]
    boot_artifacts: BootArtifacts,
}

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
struct BootArtifacts {
    #[serde(default)]
    kernel: String,
    #[serde(default)]
    kernel_parameters: String,
    #[serde(default)]
    initrd: String,
}

#[derive(Debug, Default, Deserialize)]
struct Status {
    #[serde(default)]
    phase: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    status_override: String,
}

/// The parts of a BOS v2 session that name what it booted.
#[derive(Debug, Deserialize)]
struct BootSession {
    #[serde(default)]
    operation: String,
    #[serde(default)]
    template_name: String,
}

impl ImagedComponent {
    /// The session whose template it runs, if BOS shows it booted and settled.
    fn settled_session(&self) -> Option<&str> {
        let status = &self.status;
        let stable = status.status_override.is_empty()
            && (status.status == "stable" || (status.status.is_empty() && status.phase.is_empty()));
        let actual = &self.actual_state.boot_artifacts;
        let booted_as_desired =
            !actual.kernel.is_empty() && *actual == self.desired_state.boot_artifacts;
        (!self.enabled && stable && booted_as_desired && !self.session.is_empty())
            .then_some(self.session.as_str())
    }
}

impl BosOrchestrator {
    /// The session template each of `nodes` runs, by the rule above.
    pub(super) async fn read_current_images(&self, nodes: &[NodeId]) -> Result<Vec<NodeImage>> {
        let mut sessions: HashMap<String, Option<String>> = HashMap::new();
        let mut settled: HashMap<String, String> = HashMap::new();
        for chunk in nodes.chunks(IDS_PER_REQUEST) {
            let ids = chunk
                .iter()
                .map(NodeId::as_str)
                .collect::<Vec<_>>()
                .join(",");
            let components: Vec<ImagedComponent> = self
                .client
                .get_json("/v2/components", &[("ids", ids.as_str())])
                .await?;
            for component in &components {
                if let Some(session) = component.settled_session() {
                    settled.insert(component.id.clone(), session.to_string());
                    sessions.entry(session.to_string()).or_default();
                }
            }
        }
        for (name, template) in sessions.iter_mut() {
            *template = self.booted_template(name).await?;
        }
        Ok(nodes
            .iter()
            .map(|node| NodeImage {
                node: node.clone(),
                image: settled
                    .get(node.as_str())
                    .and_then(|session| sessions.get(session).cloned().flatten()),
            })
            .collect())
    }

    /// The template session `name` booted nodes into; `None` when BOS no
    /// longer has it (completed sessions are cleaned up after a while) or
    /// it did not boot them (a shutdown).
    async fn booted_template(&self, name: &str) -> Result<Option<String>> {
        let path = format!("/v2/sessions/{}", path_segment(name));
        match self.client.get_json::<BootSession>(&path, &[]).await {
            Ok(session)
                if matches!(session.operation.as_str(), "boot" | "reboot")
                    && !session.template_name.is_empty() =>
            {
                Ok(Some(session.template_name))
            }
            Ok(_) => Ok(None),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests;
