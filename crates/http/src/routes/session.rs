//! The CRUS session resource: `POST/GET /session`, `GET/DELETE /session/{upgrade_id}`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crus_core::{SessionSpec, SessionStatus};
use tracing::Instrument;
use uuid::Uuid;

use crate::json::SessionBody;
use crate::problem::{AppError, Problem};
use crate::state::AppState;

/// `POST /session`: checks the request against the site, stores the session
/// and starts it.
///
/// Beyond CRUS's schema checks (422), it refuses what CRUS accepted and then
/// retried forever: labels that are not distinct, a starting group that is
/// missing or empty, an unknown template (422), and nodes already in another
/// unfinished session (409).
#[utoipa::path(
    post,
    path = "/session",
    tag = "session",
    operation_id = "create_session",
    summary = "Create a session",
    description = "The creation of a session performs a rolling upgrade using the specified session template on the nodes specified in the starting group.",
    request_body(
        content = SessionSpec,
        content_type = "application/json",
        description = "A JSON object for creating a Session"
    ),
    responses(
        (status = 201, description = "The status of the CRUS session.", body = SessionStatus, content_type = "application/json"),
        (status = 400, description = "The body is not JSON, or not sent as application/json", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nodes of the starting group belong to another unfinished session", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The session is not valid; `errors` lists the problems by field", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "A backend failed while the session was checked", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_session(
    State(state): State<AppState>,
    SessionBody(spec): SessionBody,
) -> Result<(StatusCode, Json<SessionStatus>), AppError> {
    // Checked, stored and started in a task of its own: hyper drops this
    // handler when the client goes away (and the timeout layer when it runs
    // late), and a session stored but not started would wait for the next
    // restart to run.
    let creation = tokio::spawn(
        async move {
            let controller = state.controller();
            let status = {
                let _no_concurrent_create = state.create_lock().lock().await;
                controller.check_new_session(&spec).await?;
                controller
                    .create_session(spec, controller.default_policy().clone())
                    .await?
            };
            controller.start(status.upgrade_id);
            Ok::<_, AppError>(status)
        }
        .instrument(tracing::Span::current()),
    );
    let status = creation
        .await
        .map_err(|error| AppError::Internal(format!("session creation task failed: {error}")))??;
    tracing::info!(upgrade_id = %status.upgrade_id, starting_label = %status.starting_label, "session created");
    Ok((StatusCode::CREATED, Json(status)))
}

/// `GET /session`: every session, newest first.
#[utoipa::path(
    get,
    path = "/session",
    tag = "session",
    operation_id = "list_sessions",
    summary = "List sessions",
    description = "List all sessions, including those in progress and those complete, newest first.",
    responses(
        (status = 200, description = "A collection of Sessions", body = Vec<SessionStatus>, content_type = "application/json"),
    )
)]
pub(crate) async fn list_sessions(
    State(state): State<AppState>,
) -> Result<Json<Vec<SessionStatus>>, AppError> {
    let mut records = state.controller().store().list().await?;
    records.sort_by(|left, right| {
        let (left, right) = (&left.value.rollout, &right.value.rollout);
        right
            .created_at
            .cmp(&left.created_at)
            .then_with(|| left.upgrade_id.cmp(&right.upgrade_id))
    });
    Ok(Json(
        records.iter().map(|record| record.value.status()).collect(),
    ))
}

/// `GET /session/{upgrade_id}`: one session.
#[utoipa::path(
    get,
    path = "/session/{upgrade_id}",
    tag = "session",
    operation_id = "get_session",
    summary = "Retrieve session details by id",
    description = "Retrieve session details by upgrade_id.",
    params(("upgrade_id" = Uuid, Path, description = "Upgrade ID")),
    responses(
        (status = 200, description = "The status of the CRUS session.", body = SessionStatus, content_type = "application/json"),
        (status = 404, description = "No session has this id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_session(
    State(state): State<AppState>,
    upgrade_id: Result<Path<String>, PathRejection>,
) -> Result<Json<SessionStatus>, AppError> {
    let upgrade_id = parse_upgrade_id(upgrade_id)?;
    let record = state
        .controller()
        .store()
        .get(upgrade_id)
        .await?
        .ok_or(AppError::SessionNotFound)?;
    Ok(Json(record.value.status()))
}

/// `DELETE /session/{upgrade_id}`: asks the session to stop safely and be removed.
///
/// An unfinished session answers `DELETING` and is removed once its nodes are
/// back in service; a finished one is removed at once.
#[utoipa::path(
    delete,
    path = "/session/{upgrade_id}",
    tag = "session",
    operation_id = "delete_session",
    summary = "Delete session by id",
    description = "Delete session by upgrade_id. An unfinished session is stopped safely (state DELETING) and removed once its nodes are back in service; a finished one is removed at once.",
    params(("upgrade_id" = Uuid, Path, description = "Upgrade ID")),
    responses(
        (status = 200, description = "The status of the CRUS session.", body = SessionStatus, content_type = "application/json"),
        (status = 404, description = "No session has this id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_session(
    State(state): State<AppState>,
    upgrade_id: Result<Path<String>, PathRejection>,
) -> Result<Json<SessionStatus>, AppError> {
    let upgrade_id = parse_upgrade_id(upgrade_id)?;
    let status = state
        .controller()
        .request_delete(upgrade_id)
        .await?
        .ok_or(AppError::SessionNotFound)?;
    tracing::info!(%upgrade_id, state = %status.state, "session deletion requested");
    Ok(Json(status))
}

/// The session id of the path. CRUS answered 404 for any id it did not
/// have, well-formed or not, and so does this: an id that is not a UUID (or
/// not even decodable) names no session.
pub(crate) fn parse_upgrade_id(
    path: Result<Path<String>, PathRejection>,
) -> Result<Uuid, AppError> {
    let Path(text) = path.map_err(|_| AppError::SessionNotFound)?;
    Uuid::parse_str(&text).map_err(|_| AppError::SessionNotFound)
}
