//! One node of a session as the API shows it (`GET /session/{id}/nodes`,
//! a crus addition): where it stands in its upgrade. Here, beside
//! [`SessionStatus`](super::SessionStatus), so a client reads it without
//! the HTTP server's crate.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::rollout::{NodePhase, NodeRecord};

/// One node of a session. Every field is always present (`null` when it does
/// not apply yet), so clients can rely on the shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "id": "x1000c0s0b0n0", "phase": "booting", "since": "2026-11-23T18:40:00.000Z",
    "step": 0, "attempts": 1, "taken_at": "2026-11-23T18:31:12.000Z",
    "finished_at": null, "reason": null, "forced": false, "foreign_reason": null
})))]
pub struct NodeStatus {
    /// The node (its xname on a Cray system).
    pub id: String,
    /// Where it stands in its upgrade.
    pub phase: NodePhase,
    /// When it entered that phase.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: Timestamp,
    /// The step it was taken in, from 0; `null` while pending.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub step: Option<u32>,
    /// How many boots were started for it.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub attempts: u32,
    /// When it was taken out of the pending nodes.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub taken_at: Option<Timestamp>,
    /// When its part in the session ended (done, failed or skipped).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// Whether it was rebooted with jobs still running (`on_drain_timeout: force`).
    pub forced: bool,
    /// The reason someone else had it out of service with (drained,
    /// draining or down), byte for byte, when they had: crus never resumes
    /// such a node (`reason` says what crus did with it).
    #[serde(default)]
    pub foreign_reason: Option<String>,
}

impl From<&NodeRecord> for NodeStatus {
    fn from(node: &NodeRecord) -> Self {
        NodeStatus {
            id: node.id.to_string(),
            phase: node.phase,
            since: node.since,
            step: node.step,
            attempts: node.attempts,
            taken_at: node.taken_at,
            finished_at: node.finished_at,
            reason: node.reason.clone(),
            forced: node.forced,
            foreign_reason: node.foreign.as_ref().map(|mark| mark.reason.clone()),
        }
    }
}
