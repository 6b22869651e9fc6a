//! Placeholder, being written.
use serde::{Deserialize, Serialize};
/// Placeholder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    /// Placeholder.
    pub upgrade_id: uuid::Uuid,
}
