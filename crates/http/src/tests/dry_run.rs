//! Dry runs within the server's limits: as many at once as allowed, then 503.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use crus_backends::sim::{SimCluster, SimConfig};
use crus_core::Timestamp;
use crus_core::clock::TokioClock;
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::store::MemoryStore;
use tower::ServiceExt;

use crate::{AppState, Auth, AuthConfig, Metrics, ServerLimits, app};

const TOKEN: &str = "dry-run-token-0123456789";

fn state(limits: ServerLimits, nodes: usize) -> AppState {
    let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)));
    let sim = SimCluster::new(
        SimConfig {
            nodes,
            ..SimConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    let controller = Controller::new(
        sim.ports(),
        Arc::new(MemoryStore::new()),
        clock,
        ControllerConfig::default(),
    );
    let auth = Auth::new(AuthConfig {
        tokens: vec![TOKEN.to_string()],
        ..AuthConfig::default()
    })
    .unwrap();
    AppState::new(controller, Arc::new(auth), Arc::new(Metrics::new())).with_limits(limits)
}

async fn dry_run(
    state: &AppState,
    step_size: u32,
) -> (StatusCode, Option<String>, serde_json::Value) {
    let body = serde_json::json!({
        "failed_label": "compute-failed",
        "starting_label": "compute",
        "upgrade_step_size": step_size,
        "upgrade_template_id": "compute-image",
        "upgrading_label": "compute-upgrading",
        "workload_manager_type": "slurm"
    });
    let request = Request::builder()
        .method(Method::POST)
        .uri("/session?dry_run=true")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, retry_after, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_dry_run_beyond_the_number_planned_at_once_is_503_with_retry_after() {
    let state = state(
        ServerLimits {
            dry_runs_at_once: 1,
            ..ServerLimits::default()
        },
        8,
    );
    let (status, _, plan) = dry_run(&state, 4).await;
    assert_eq!(status, StatusCode::OK, "{plan:#}");

    // One dry run being planned (its permit held), a second is refused.
    let planning = state.dry_runs().clone().try_acquire_owned().unwrap();
    let (status, retry_after, problem) = dry_run(&state, 4).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem:#}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("1 dry run(s) already"), "{detail}");

    drop(planning);
    let (status, _, plan) = dry_run(&state, 4).await;
    assert_eq!(status, StatusCode::OK, "{plan:#}");
}

#[tokio::test]
async fn a_dry_run_that_overruns_its_time_is_stopped_and_503() {
    // No time at all to plan 2,000 steps: stopped at a pass.
    let state = state(
        ServerLimits {
            dry_run_timeout: std::time::Duration::ZERO,
            ..ServerLimits::default()
        },
        2000,
    );
    let (status, _, problem) = dry_run(&state, 1).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem:#}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("did not finish within"), "{detail}");
    // Its permit is given back once the planning stopped.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(state.dry_runs().available_permits(), 2);
}
