//! The routes of the API, one file per resource, and which of them are public.

pub(crate) mod controls;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod nodes;
pub(crate) mod openapi;
pub(crate) mod options;
pub(crate) mod session;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::auth::require_auth;
use crate::state::AppState;

/// Where the Cray API gateway mounted CRUS; every route is served under it too,
/// so clients configured with either base URL work.
pub const GATEWAY_PREFIX: &str = "/apis/crus";

/// Paths answered without authentication: probes must work without a token.
pub(crate) const PUBLIC_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Every route, relative to one base (the root or [`GATEWAY_PREFIX`]).
pub(crate) fn api(state: &AppState) -> Router<AppState> {
    let protected = Router::new()
        .route(
            "/session",
            get(session::list_sessions).post(session::create_session),
        )
        .route(
            "/session/{upgrade_id}",
            get(session::get_session).delete(session::delete_session),
        )
        .route("/session/{upgrade_id}/pause", post(controls::pause_session))
        .route(
            "/session/{upgrade_id}/resume",
            post(controls::resume_session),
        )
        .route(
            "/session/{upgrade_id}/nodes",
            get(nodes::list_session_nodes),
        )
        .route(
            "/session/{upgrade_id}/events",
            get(events::stream_session_events),
        )
        .route("/events", get(events::stream_events))
        .route(
            "/options",
            get(options::get_options).patch(options::patch_options),
        )
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/metrics", get(crate::metrics::get_metrics))
        // route_layer: only matched routes ask for a token, so an unknown
        // path is a 404 rather than a 401.
        .route_layer(from_fn_with_state(state.auth().clone(), require_auth));
    let public = Router::new()
        .route(PUBLIC_PATHS[0], get(health::healthz))
        .route(PUBLIC_PATHS[1], get(health::readyz));
    public.merge(protected)
}
