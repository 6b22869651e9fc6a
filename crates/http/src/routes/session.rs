//! The CRUS session resource: `POST/GET /session`, `GET/DELETE /session/{upgrade_id}`.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use crus_core::controller::AdmissionRequest;
use crus_core::dry_run::DryRun;
use crus_core::store::Idempotency;
use crus_core::{SessionSpec, SessionStatus};
use tracing::Instrument;
use uuid::Uuid;

use crate::json::JsonBody;
use crate::problem::{AppError, Problem};
use crate::state::AppState;

/// The query of `POST /session`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CreateQuery {
    /// Plan the session instead of creating it: 200 with the plan (steps,
    /// nodes, expected times, rationale), nothing stored, no node touched.
    #[serde(default)]
    dry_run: Option<bool>,
}

/// The header that makes a creation safe to repeat.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `POST /session`: checks the request against the site, stores the session
/// and starts it; with `?dry_run=true`, plans it instead.
///
/// Beyond CRUS's schema checks (422), it refuses what CRUS accepted and then
/// retried forever: labels that are not distinct, a starting group that is
/// missing or empty, an unknown template (422), and nodes already in another
/// unfinished session (409).
///
/// With an `Idempotency-Key`, a repeat of the same request answers 201 with
/// the session the first one created (as it is now), and a reuse of the key
/// with another request is refused (422). The key is kept with the session,
/// so this holds across restarts, for as long as the session is kept.
#[utoipa::path(
    post,
    path = "/session",
    tag = "session",
    operation_id = "create_session",
    summary = "Create a session",
    description = "The creation of a session performs a rolling upgrade using the specified session template on the nodes specified in the starting group. With `?dry_run=true` nothing is created: the answer (200) is the plan, from the workload manager's current view of the starting group and of its jobs (running, queued, and the arrivals of the last day where the workload manager reports them), assuming 5-minute boots and that jobs with no known end end within a day. It is a forecast: `estimated_duration` is the median of seeded sampled runs, `p10`/`p90` its range, `dominated_by` what the time goes to, and each step has `done_at_p10`/`done_at_p90` and `dominated_by`. With an `Idempotency-Key` header (1 to 255 visible ASCII characters), repeating the same request returns the session the first one created (201); the same key with another request is refused (422).",
    params(
        CreateQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the creation safe to repeat: the same key and body return the same session"),
    ),
    request_body(
        content = SessionSpec,
        content_type = "application/json",
        description = "A JSON object for creating a Session"
    ),
    responses(
        (status = 200, description = "The plan of a dry run (`?dry_run=true`); nothing was created.", body = DryRun, content_type = "application/json"),
        (status = 201, description = "The status of the CRUS session.", body = SessionStatus, content_type = "application/json"),
        (status = 400, description = "The body is not JSON, or not sent as application/json; or the query or the Idempotency-Key is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nodes of the starting group belong to another unfinished session", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The session is not valid, or the Idempotency-Key was used with another request, or (dry run) the session would take longer than a plan can simulate; `errors` lists the problems by field", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "A backend failed while the session was checked; the title names it (`Inventory failed`, `Boot service failed`, `Workload manager failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A backend or the session store is unavailable; or, for a dry run, the server plans as many dry runs as it may at once, or the plan did not finish in time (retry after `Retry-After` seconds)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_session(
    State(state): State<AppState>,
    query: Result<Query<CreateQuery>, QueryRejection>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let Query(query) = query.map_err(|rejection| {
        AppError::BadRequest(format!(
            "The query is not valid: {}. Use `?dry_run=true` or `?dry_run=false`.",
            rejection.body_text()
        ))
    })?;
    let idempotency_key = idempotency_key(&headers)?;
    let spec = SessionSpec::from_json(&body).map_err(AppError::Invalid)?;
    if query.dry_run == Some(true) {
        let plan = crate::dry_run::plan(&state, spec).await?;
        return Ok((StatusCode::OK, Json(plan)).into_response());
    }
    // Checked, stored and started in a task of its own: hyper drops this
    // handler when the client goes away (and the timeout layer when it runs
    // late), and a session stored but not started would wait for the next
    // restart to run.
    let creation = tokio::spawn(
        async move {
            let controller = state.controller();
            let request = AdmissionRequest::new(spec)
                .with_idempotency(idempotency_key.map(|key| Idempotency { key, request: body }));
            let admitted = controller.admit(request).await?;
            if admitted.created {
                controller.start(admitted.status.upgrade_id);
            }
            Ok::<_, AppError>((admitted.status, admitted.created))
        }
        .instrument(tracing::Span::current()),
    );
    let (status, created) = creation
        .await
        .map_err(|error| AppError::Internal(format!("session creation task failed: {error}")))??;
    if created {
        tracing::info!(upgrade_id = %status.upgrade_id, starting_label = %status.starting_label, "session created");
    } else {
        tracing::info!(upgrade_id = %status.upgrade_id, "repeated creation: the session its Idempotency-Key created");
    }
    Ok((StatusCode::CREATED, Json(status)).into_response())
}

/// The `Idempotency-Key` header, if sent: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(AppError::BadRequest(
            "The Idempotency-Key header must be 1 to 255 visible ASCII characters (a UUID is a good key).".to_string(),
        ));
    }
    Ok(Some(key.to_string()))
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
pub(crate) async fn list_sessions(State(state): State<AppState>) -> Result<Response, AppError> {
    // The statuses as the JSON array `Json(Vec<SessionStatus>)` would write,
    // shared with the store (no copy of a listing of thousands).
    let statuses = state.statuses().list_statuses_json().await?;
    let unsaved = state.controller().unsaved_statuses();
    if !unsaved.is_empty() {
        return Ok(json_response(Body::from(with_unsaved(&statuses, unsaved)?)));
    }
    Ok(json_response(Body::from(Bytes::from_owner(SharedJson(
        statuses,
    )))))
}

/// The stored listing with the sessions the store refused to save shown as
/// they stand in memory (halted, saying why): decoded only while the store
/// refuses writes.
fn with_unsaved(stored: &str, unsaved: Vec<SessionStatus>) -> Result<String, AppError> {
    let mut listing: Vec<serde_json::Value> = serde_json::from_str(stored)
        .map_err(|error| AppError::Internal(format!("the stored listing is not JSON: {error}")))?;
    for status in unsaved {
        let id = status.upgrade_id.to_string();
        let value = serde_json::to_value(&status)
            .map_err(|error| AppError::Internal(format!("cannot encode a status: {error}")))?;
        if let Some(entry) = listing
            .iter_mut()
            .find(|entry| entry.get("upgrade_id").and_then(|id| id.as_str()) == Some(id.as_str()))
        {
            *entry = value;
        }
    }
    serde_json::to_string(&listing)
        .map_err(|error| AppError::Internal(format!("cannot encode the listing: {error}")))
}

/// JSON shared with the store, as a response body.
struct SharedJson(Arc<str>);

impl AsRef<[u8]> for SharedJson {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
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
) -> Result<Response, AppError> {
    let upgrade_id = parse_upgrade_id(upgrade_id)?;
    if let Some(status) = state.controller().unsaved_status(upgrade_id) {
        return Ok(Json(status).into_response());
    }
    let status = state
        .statuses()
        .get_status(upgrade_id)
        .await?
        .ok_or(AppError::SessionNotFound)?;
    Ok(json_response(Body::from(status)))
}

/// A 200 answer of JSON the store encoded already, with the headers
/// `Json` would have set.
fn json_response(body: Body) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
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
