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

/// The image a node runs now, in the orchestrator's own terms: the name
/// of the template (BOS session template, Kadeploy environment, CycleCloud
/// image) it was last booted into, when the orchestrator can tell. When
/// the node runs the template asked about, `image` is that template, as
/// written in the request, whatever the orchestrator's own spelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeImage {
    /// The node.
    pub node: NodeId,
    /// The template it runs now; `None` when the orchestrator cannot say
    /// (never booted through it, a boot in progress or failed): such a node
    /// is upgraded as any other.
    pub image: Option<String>,
}

/// What [`BootOrchestrator::current_images`] answers by default: this
/// backend cannot tell which image a node runs.
pub fn current_images_not_supported(backend: &'static str) -> Error {
    Error::NotSupported {
        backend,
        operation: "reading the image a node runs now (policy skip_matching)",
    }
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

    /// Whether [`BootOrchestrator::current_images`] can answer, asked
    /// without IO when a session with `skip_matching` is created: `Err`
    /// with [`Error::NotSupported`] naming the backend when it cannot (the
    /// default), so the creation is refused instead of upgrading every node.
    fn current_images_supported(&self) -> Result<()> {
        Err(current_images_not_supported("this boot orchestrator"))
    }

    /// The image each of `nodes` runs now, one entry per node (the capability
    /// behind `skip_matching`); a node that runs `template` (by the
    /// orchestrator's rules: a Kadeploy environment without a version is its
    /// latest) answers `template` itself. Read-only, so idempotent.
    ///
    /// [`Error::NotSupported`] by default.
    async fn current_images(&self, nodes: &[NodeId], template: &str) -> Result<Vec<NodeImage>> {
        let _ = (nodes, template);
        self.current_images_supported()?;
        Err(current_images_not_supported("this boot orchestrator"))
    }

    /// Stops the boot `handle` where the orchestrator can. Idempotent.
    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        let _ = handle;
        Err(Error::NotSupported {
            backend: "boot orchestrator",
            operation: "cancelling a boot",
        })
    }
}
