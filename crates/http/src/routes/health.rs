//! Probes for orchestrators: `/healthz` (the process answers) and `/readyz`
//! (it can reach its session store). Both are public, so probes need no token.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use uuid::Uuid;

use crate::problem::{AppError, Problem};
use crate::state::AppState;

/// The body of a successful probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProbeStatus {
    /// `ok` for liveness, `ready` for readiness.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `GET /healthz`: always 200 while the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    summary = "Liveness probe",
    responses(
        (status = 200, description = "The server is alive", body = ProbeStatus, content_type = "application/json"),
    )
)]
pub(crate) async fn healthz() -> Json<ProbeStatus> {
    Json(ProbeStatus { status: "ok" })
}

/// `GET /readyz`: 200 when the session store answers, 503 when it does not.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    summary = "Readiness probe",
    responses(
        (status = 200, description = "The server can reach its session store", body = ProbeStatus, content_type = "application/json"),
        (status = 503, description = "The session store does not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<ProbeStatus>, AppError> {
    // A point read of an id that never exists: one round trip, whatever the
    // number of sessions (a list would read them all).
    state
        .controller()
        .store()
        .get(Uuid::nil())
        .await
        .map_err(AppError::NotReady)?;
    Ok(Json(ProbeStatus { status: "ready" }))
}
