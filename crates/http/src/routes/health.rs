//! Probes for orchestrators: `/healthz` (the process answers) and `/readyz`
//! (it can reach its session store, and whether it leads). Both are public,
//! so probes need no token.

use std::time::Duration;

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

/// The body of a successful readiness probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReadyStatus {
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `ok`: the session store answered (with etcd, a quorum read).
    #[schema(example = "ok")]
    pub store: &'static str,
    /// `leader` (drives the sessions; the only replica with SQLite) or
    /// `follower` (serves the API; another replica drives the sessions).
    #[schema(example = "leader")]
    pub role: &'static str,
    /// With a JWKS URL (`--jwks-url`): `ok` once its keys were fetched,
    /// `unavailable` before (every JWT is then refused; static tokens still
    /// work). Absent without a JWKS URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "ok")]
    pub auth_keys: Option<&'static str>,
}

/// How long `/readyz` waits for the store: a store without quorum may take
/// its whole request timeout to fail, longer than probes wait.
const STORE_CHECK_LIMIT: Duration = Duration::from_secs(2);

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

/// `GET /readyz`: 200 with the replica's role when the session store
/// answers, 503 when it does not (with etcd: no quorum), or when it refused
/// the last write and still refuses one (a file made read-only, removed or
/// replaced): reads alone would not tell.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    summary = "Readiness probe",
    responses(
        (status = 200, description = "The server can reach its session store", body = ReadyStatus, content_type = "application/json"),
        (status = 503, description = "The session store does not answer, or refuses writes (the detail says why)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<ReadyStatus>, AppError> {
    // A point read of an id that never exists: one round trip, whatever the
    // number of sessions (a list would read them all).
    let store = state.controller().store().clone();
    match tokio::time::timeout(STORE_CHECK_LIMIT, store.get(Uuid::nil())).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(AppError::NotReady(error)),
        Err(_) => {
            return Err(AppError::NotReady(crus_core::Error::unavailable(
                "store",
                format!("the session store did not answer within {STORE_CHECK_LIMIT:?}"),
            )));
        }
    }
    // The last write failed: ask the store whether it would take one now
    // (a write that changes no session), so readiness comes back as soon as
    // the store does, even while no session writes.
    if state.controller().store_health().failure().is_some() {
        match tokio::time::timeout(STORE_CHECK_LIMIT, store.check_writable()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(AppError::StoreRefusesWrites(error.to_string())),
            Err(_) => {
                return Err(AppError::StoreRefusesWrites(format!(
                    "the session store did not take a write within {STORE_CHECK_LIMIT:?}"
                )));
            }
        }
    }
    Ok(Json(ReadyStatus {
        status: "ready",
        store: "ok",
        role: state.leadership().role(),
        auth_keys: state
            .auth()
            .jwks_url_keys_available()
            .map(|available| if available { "ok" } else { "unavailable" }),
    }))
}
