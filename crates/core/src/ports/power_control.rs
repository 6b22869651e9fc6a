//! `PowerControl`: node power, for escalation when a node does not come back (Redfish).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::node::NodeId;

/// A node's power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    /// Powered on.
    On,
    /// Powered off.
    Off,
    /// Powering on.
    PoweringOn,
    /// Powering off.
    PoweringOff,
    /// The controller cannot tell.
    Unknown,
}

/// A power operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerOperation {
    /// Power on.
    On,
    /// Power off at once.
    ForceOff,
    /// Ask the operating system to shut down.
    GracefulShutdown,
    /// Ask the operating system to restart.
    GracefulRestart,
    /// Restart at once.
    ForceRestart,
}

/// Reads and changes node power.
#[async_trait]
pub trait PowerControl: Send + Sync {
    /// The power state of each of `nodes`, in the same order.
    async fn power_state(&self, nodes: &[NodeId]) -> Result<Vec<PowerState>>;

    /// Applies `operation` to `nodes`. Idempotent for `On` and `ForceOff`;
    /// restarts restart again when repeated.
    async fn power(&self, nodes: &[NodeId], operation: PowerOperation) -> Result<()>;
}
