//! Operator controls of a running session (crus additions to CRUS):
//! `POST /session/{upgrade_id}/pause` and `POST /session/{upgrade_id}/resume`.
//!
//! Both are requests: the controller applies them at its next turn, and the
//! status answered already shows the phase asked for.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use crus_core::SessionStatus;
use crus_core::rollout::FailureBudget;
use crus_core::session::FieldErrors;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::OptionalJsonBody;
use crate::problem::{AppError, Problem};
use crate::routes::session::parse_upgrade_id;
use crate::state::AppState;

/// The optional body of `POST /session/{upgrade_id}/resume`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"max_failures": "10%"}))]
pub struct ResumeRequest {
    /// A new failure budget for the rest of the session: a count of nodes
    /// (`3`) or a percentage of the starting group (`"10%"`). Needed to resume
    /// a session that halted because its budget was spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<FailureBudget>,
}

impl ResumeRequest {
    /// Reads a body, reporting problems by field like `POST /session` does.
    fn from_json(value: &Value) -> Result<ResumeRequest, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut request = ResumeRequest::default();
        let Some(object) = value.as_object() else {
            errors.insert(
                "body".to_string(),
                vec!["Must be a JSON object.".to_string()],
            );
            return Err(errors);
        };
        for (key, field) in object {
            let outcome = match key.as_str() {
                "max_failures" if field.is_null() => Ok(()),
                "max_failures" => FailureBudget::parse(field).map(|budget| {
                    request.max_failures = Some(budget);
                }),
                _ => Err("Unknown field.".to_string()),
            };
            if let Err(message) = outcome {
                errors.entry(key.clone()).or_default().push(message);
            }
        }
        if errors.is_empty() {
            Ok(request)
        } else {
            Err(errors)
        }
    }
}

/// `POST /session/{upgrade_id}/pause`: take no new node until resumed.
#[utoipa::path(
    post,
    path = "/session/{upgrade_id}/pause",
    tag = "controls",
    operation_id = "pause_session",
    summary = "Pause a session",
    description = "Asks the session to take no new node out of service until it is resumed; nodes already out of service finish their upgrade. The answer shows `phase: paused` at once; the controller applies the request at its next turn.",
    params(("upgrade_id" = Uuid, Path, description = "Upgrade ID")),
    responses(
        (status = 200, description = "The status of the session, paused.", body = SessionStatus, content_type = "application/json"),
        (status = 404, description = "No session has this id", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The session cannot be paused: it has finished or is being deleted; `detail` says why. Pausing a paused session is not an error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The session store failed to read or save the command; nothing was changed. Retry after `Retry-After` seconds (`GET /readyz` tells when the store takes writes again)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn pause_session(
    State(state): State<AppState>,
    upgrade_id: Result<Path<String>, PathRejection>,
) -> Result<Json<SessionStatus>, AppError> {
    let upgrade_id = parse_upgrade_id(upgrade_id)?;
    let answer = state.controller().request_pause(upgrade_id).await?;
    let status = accepted(answer)?;
    tracing::info!(%upgrade_id, "session pause requested");
    Ok(Json(status))
}

/// `POST /session/{upgrade_id}/resume`: take nodes again after a pause or a halt.
#[utoipa::path(
    post,
    path = "/session/{upgrade_id}/resume",
    tag = "controls",
    operation_id = "resume_session",
    summary = "Resume a paused or halted session",
    description = "Asks a paused session, or one halted because more nodes failed than its failure budget allows, to take nodes again. The body is optional; its `max_failures` replaces the session's failure budget (a halted session usually needs a larger one).",
    params(("upgrade_id" = Uuid, Path, description = "Upgrade ID")),
    request_body(
        content = Option<ResumeRequest>,
        content_type = "application/json",
        description = "Optional: a new failure budget"
    ),
    responses(
        (status = 200, description = "The status of the session, running.", body = SessionStatus, content_type = "application/json"),
        (status = 400, description = "The body is not JSON, or not sent as application/json", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No session has this id", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The session cannot be resumed: it has finished or is being deleted, or more nodes failed than the failure budget (raise `max_failures`); `detail` says why. Resuming a running session is not an error", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body is not valid; `errors` lists the problems by field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The session store failed to read or save the command; nothing was changed. Retry after `Retry-After` seconds (`GET /readyz` tells when the store takes writes again)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn resume_session(
    State(state): State<AppState>,
    upgrade_id: Result<Path<String>, PathRejection>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Json<SessionStatus>, AppError> {
    let upgrade_id = parse_upgrade_id(upgrade_id)?;
    let request = match body {
        Some(value) => ResumeRequest::from_json(&value).map_err(AppError::Invalid)?,
        None => ResumeRequest::default(),
    };
    let answer = state
        .controller()
        .request_resume(upgrade_id, request.max_failures)
        .await?;
    let status = accepted(answer)?;
    tracing::info!(%upgrade_id, max_failures = ?request.max_failures, "session resume requested");
    Ok(Json(status))
}

/// The controller's answer to a command as the API's: no session is a 404, a
/// refusal a 409 with the controller's reason.
fn accepted(answer: Option<Result<SessionStatus, String>>) -> Result<SessionStatus, AppError> {
    match answer {
        None => Err(AppError::SessionNotFound),
        Some(Err(reason)) => Err(AppError::Refused(reason)),
        Some(Ok(status)) => Ok(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resume_bodies_are_checked_by_field() {
        assert_eq!(
            ResumeRequest::from_json(&json!({"max_failures": 3})).ok(),
            Some(ResumeRequest {
                max_failures: Some(FailureBudget::Count(3))
            })
        );
        assert_eq!(
            ResumeRequest::from_json(&json!({"max_failures": null})).ok(),
            Some(ResumeRequest::default())
        );
        let errors = ResumeRequest::from_json(&json!({"max_failures": "lots", "colour": 1}))
            .err()
            .unwrap_or_default();
        assert_eq!(
            errors.keys().collect::<Vec<_>>(),
            ["colour", "max_failures"]
        );
        assert!(ResumeRequest::from_json(&json!([1])).is_err());
    }
}
