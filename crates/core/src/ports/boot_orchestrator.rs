//! `BootOrchestrator`: booting nodes into a new image (BOS, Kadeploy, CycleCloud).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::node::NodeId;

/// A request to boot (reboot) nodes with a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootRequest {
    /// Idempotency key chosen by the caller: a second request with the same key
    /// finds the boot the first one started instead of starting another.
    pub key: String,
    /// Template (BOS session template, Kadeploy environment, image) to boot.
    pub template: String,
    /// Nodes to boot.
    pub nodes: Vec<NodeId>,
}

/// A started boot, as the orchestrator names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BootHandle {
    /// The idempotency key it was started under.
    pub key: String,
    /// The orchestrator's own id for it (BOS session name, Kadeploy workflow id).
    pub id: String,
}

/// Where one node's boot stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NodeBootState {
    /// Still booting.
    InProgress,
    /// Booted into the template.
    Ok,
    /// Did not boot.
    Failed {
        /// Why, as the orchestrator says.
        reason: String,
    },
}

/// One node's boot progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeBootStatus {
    /// The node.
    pub node: NodeId,
    /// Where its boot stands.
    pub state: NodeBootState,
}

/// Boots nodes into a template and reports per-node results.
#[async_trait]
pub trait BootOrchestrator: Send + Sync {
    /// Whether template `template` exists.
    async fn template_exists(&self, template: &str) -> Result<bool>;

    /// Starts booting `request.nodes` with `request.template`.
    ///
    /// Idempotent under `request.key`: when a boot with that key exists, its
    /// handle is returned and nothing new is started.
    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle>;

    /// Progress of every node of the boot `handle`, one entry per node.
    ///
    /// [`Error::NotFound`] when the orchestrator does not know the boot.
    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>>;

    /// Stops the boot `handle` where the orchestrator can. Idempotent.
    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        let _ = handle;
        Err(Error::NotSupported {
            backend: "boot orchestrator",
            operation: "cancelling a boot",
        })
    }
}
