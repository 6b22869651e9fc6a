//! crus-http: the CRUS-compatible REST API of `crus serve`.
//!
//! - [`app`] builds the axum [`Router`]: the CRUS session routes
//!   (`POST/GET /session`, `GET/DELETE /session/{upgrade_id}`), crus's
//!   additions (`POST /session/{upgrade_id}/pause` and `/resume`,
//!   `GET /session/{upgrade_id}/nodes`, and the server-sent event streams
//!   `GET /session/{upgrade_id}/events` and `GET /events`), probes
//!   (`/healthz`, `/readyz`), the server-wide options (`GET`/`PATCH /options`),
//!   `/openapi.json` and `/metrics`, each served at
//!   the root and under the API gateway prefix `/apis/crus`.
//! - The web dashboard: static files at `/ui/` (public; the page signs in
//!   with a bearer token), `/` redirects there.
//! - [`serve`] runs it on a listener until a shutdown future completes,
//!   within the [`ServerLimits`] of the state (connections, header and idle
//!   timeouts, request timeout, dry runs).
//! - [`Auth`] checks bearer tokens (static tokens or JWTs); [`Metrics`]
//!   exposes Prometheus metrics, and [`instrument_ports`] counts backend calls.
//!
//! Every error is an RFC 7807 problem document ([`Problem`]) served as
//! `application/problem+json`, shaped like real CRUS's.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn demo(state: crus_http::AppState) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let shutdown = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! crus_http::serve(listener, state, shutdown).await
//! # }
//! ```

mod auth;
mod connections;
mod dry_run;
mod json;
mod leadership;
mod limits;
mod metrics;
mod problem;
mod request_id;
mod routes;
mod state;
mod ui;

use std::io;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use auth::{Auth, AuthConfig, AuthError, AuthFailure, AuthSettings, JwksUrlConfig, Principal};
pub use json::JsonBody;
pub use leadership::Leadership;
pub use limits::ServerLimits;
pub use metrics::{Instrumented, Metrics, OPENMETRICS_CONTENT_TYPE, instrument_ports};
pub use problem::{AppError, NOT_FOUND_DETAIL, PROBLEM_JSON, Problem, VALIDATION_DETAIL};
pub use request_id::MAX_REQUEST_ID_LEN;
pub use routes::GATEWAY_PREFIX;
pub use routes::openapi::document as openapi_document;
pub use state::{AppState, LogLevelControl};

/// Largest request body accepted; a session is a few hundred bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Longest a request may take before it is answered 503, unless the
/// state's [`ServerLimits::request_timeout`] says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Name of the request id header, read from the client (when it is 1 to
/// [`MAX_REQUEST_ID_LEN`] visible ASCII characters) or generated (UUID v4).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The router of the whole API over `state`, every route at the root and
/// under [`GATEWAY_PREFIX`].
///
/// Every request gets an `x-request-id` (the client's if it is a
/// reasonable id, or a new UUID v4), echoed in the response and recorded in
/// its tracing span; it is counted in [`Metrics`], limited to [`BODY_LIMIT`]
/// bytes and to the state's [`ServerLimits::request_timeout`].
pub fn app(state: AppState) -> Router {
    let api = routes::api(&state);
    let request_timeout = state.limits().request_timeout;
    let middleware = ServiceBuilder::new()
        .layer(from_fn(request_id::drop_unacceptable_ids))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::extract::Request| {
                    let request_id = request
                        .headers()
                        .get(REQUEST_ID_HEADER)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %request_id,
                    )
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(from_fn_with_state(
            state.metrics().clone(),
            metrics::track_requests,
        ))
        .layer(from_fn(problem::problem_bodies))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ));
    Router::new()
        .merge(api.clone())
        .merge(ui::router())
        .nest(GATEWAY_PREFIX, api)
        .fallback(problem::no_route)
        .layer(middleware)
        .with_state(state)
}

/// Serves [`app`]`(state)` on `listener` until `shutdown` completes, then
/// stops accepting connections and waits for requests in flight to finish.
///
/// Connections are held to the state's [`ServerLimits`]: at most
/// `max_connections` (at the limit a new one displaces the connection idle
/// the longest, or is answered 503 when none is idle), closed after
/// `header_read_timeout` without a whole request head and after
/// `idle_timeout` without a request; accept errors (too many open files)
/// are retried with a back-off.
///
/// Sessions are run by the state's controller, not by the server: resume
/// stored sessions ([`crus_core::controller::Controller::resume_all`]) before
/// serving.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving the CRUS API");
    }
    let router = app(state.clone());
    let limits = state.limits().clone();
    // Event streams would hold a graceful shutdown open for ever: end them
    // as soon as it begins.
    let shutdown = async move {
        shutdown.await;
        state.begin_shutdown();
    };
    connections::serve(listener, router, &limits, shutdown).await
}

#[cfg(test)]
mod tests;
