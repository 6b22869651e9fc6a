//! Boots started through the simulated boot orchestrator, kept by their
//! idempotency key like BOS sessions are by name.

use crus_core::Timestamp;
use crus_core::ports::{BootHandle, NodeBootState, NodeBootStatus};
use serde::{Deserialize, Serialize};

/// One boot and each of its nodes' progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct BootRecord {
    /// The handle given out for it.
    pub handle: BootHandle,
    /// The template booted.
    pub template: String,
    /// When it started.
    pub started: Timestamp,
    /// Whether it was cancelled (nodes already booting carry on, as in BOS).
    pub cancelled: bool,
    /// Each node's progress, in request order (duplicates removed).
    pub nodes: Vec<NodeBootStatus>,
}

impl BootRecord {
    /// Sets the state of the node at `position`, if its boot has not ended yet:
    /// a boot ends once.
    pub fn finish(&mut self, position: usize, state: NodeBootState) {
        if let Some(entry) = self.nodes.get_mut(position) {
            if entry.state == NodeBootState::InProgress {
                entry.state = state;
            }
        }
    }
}
