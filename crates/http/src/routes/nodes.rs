//! `GET /session/{upgrade_id}/nodes` (a crus addition): where each node of a
//! session stands, for operators following a rollout node by node.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use crus_core::Timestamp;
use crus_core::rollout::{NodePhase, NodeRecord};
use serde::{Deserialize, Serialize};

use crate::problem::{AppError, Problem};
use crate::routes::session::parse_upgrade_id;
use crate::state::AppState;

/// One node of a session. Every field is always present (`null` when it does
/// not apply yet), so clients can rely on the shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "x1000c0s0b0n0", "phase": "booting", "since": "2026-11-23T18:40:00.000Z",
    "step": 0, "attempts": 1, "taken_at": "2026-11-23T18:31:12.000Z",
    "finished_at": null, "reason": null, "forced": false, "foreign_reason": null
}))]
pub struct NodeStatus {
    /// The node (its xname on a Cray system).
    pub id: String,
    /// Where it stands in its upgrade.
    pub phase: NodePhase,
    /// When it entered that phase.
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    /// The step it was taken in, from 0; `null` while pending.
    #[schema(minimum = 0)]
    pub step: Option<u32>,
    /// How many boots were started for it.
    #[schema(minimum = 0)]
    pub attempts: u32,
    /// When it was taken out of the pending nodes.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub taken_at: Option<Timestamp>,
    /// When its part in the session ended (done, failed or skipped).
    #[schema(value_type = Option<String>, format = DateTime)]
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

/// `GET /session/{upgrade_id}/nodes`: every node of the session, in the order
/// they are taken.
#[utoipa::path(
    get,
    path = "/session/{upgrade_id}/nodes",
    tag = "controls",
    operation_id = "list_session_nodes",
    summary = "List the nodes of a session",
    description = "Every node of the session with its phase, step, boot attempts and times, in the order the session takes them. Empty until the session has read its starting group.",
    params(("upgrade_id" = Uuid, Path, description = "Upgrade ID")),
    responses(
        (status = 200, description = "The session's nodes", body = Vec<NodeStatus>, content_type = "application/json"),
        (status = 404, description = "No session has this id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_session_nodes(
    State(state): State<AppState>,
    upgrade_id: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<NodeStatus>>, AppError> {
    let upgrade_id = parse_upgrade_id(upgrade_id)?;
    let record = state
        .controller()
        .store()
        .get(upgrade_id)
        .await?
        .ok_or(AppError::SessionNotFound)?;
    Ok(Json(
        record
            .value
            .rollout
            .nodes
            .iter()
            .map(NodeStatus::from)
            .collect(),
    ))
}
