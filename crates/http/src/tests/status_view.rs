//! `GET /session` and `GET /session/{id}` answer from the state's
//! [`StatusView`], the read model apart from the session store.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use crus_backends::sim::{SimCluster, SimConfig};
use crus_core::Timestamp;
use crus_core::clock::TokioClock;
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::store::{MemoryStore, StatusView};
use tower::ServiceExt;
use uuid::Uuid;

use crate::{AppState, Auth, AuthConfig, Metrics, app};

const TOKEN: &str = "status-view-token-0123456789";

/// A view that knows one session the store does not: what a view fed
/// beside the store would answer, told apart from the store's own records.
struct OneSession {
    id: Uuid,
    status: String,
}

#[async_trait]
impl StatusView for OneSession {
    async fn get_status(&self, upgrade_id: Uuid) -> crus_core::Result<Option<String>> {
        Ok((upgrade_id == self.id).then(|| self.status.clone()))
    }

    async fn list_statuses(&self) -> crus_core::Result<Vec<String>> {
        Ok(vec![self.status.clone()])
    }
}

fn state() -> AppState {
    let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)));
    let sim = SimCluster::new(
        SimConfig {
            nodes: 4,
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
    AppState::new(controller, Arc::new(auth), Arc::new(Metrics::new()))
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn the_session_reads_answer_from_the_status_view_given() {
    let id = Uuid::new_v4();
    let status = format!(r#"{{"upgrade_id":"{id}","from":"the view"}}"#);
    let plain = state();
    // Without a view of its own, the store's records answer: it has none.
    assert_eq!(get(&plain, "/session").await, (StatusCode::OK, "[]".into()));
    assert_eq!(
        get(&plain, &format!("/session/{id}")).await.0,
        StatusCode::NOT_FOUND
    );

    let viewed = plain.with_status_view(Arc::new(OneSession {
        id,
        status: status.clone(),
    }));
    assert_eq!(
        get(&viewed, "/session").await,
        (StatusCode::OK, format!("[{status}]"))
    );
    assert_eq!(
        get(&viewed, &format!("/session/{id}")).await,
        (StatusCode::OK, status)
    );
}

#[tokio::test]
async fn metrics_count_sessions_and_nodes_from_the_status_view_not_the_records() {
    let id = Uuid::new_v4();
    let spec = crus_core::SessionSpec {
        failed_label: "failed".into(),
        starting_label: "compute".into(),
        upgrade_step_size: 2,
        upgrade_template_id: "compute-image".into(),
        upgrading_label: "upgrading".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    };
    let mut session = crus_core::SessionStatus::created(id, &spec);
    session.state = crus_core::SessionState::Updating;
    session.phase = Some(crus_core::session::SessionPhase::Gated);
    session.nodes = Some(
        [("pending", 3), ("draining", 2), ("total", 5)]
            .into_iter()
            .map(|(phase, count)| (phase.to_string(), count))
            .collect(),
    );
    // The store holds no record: what the scrape counts is the view's.
    let viewed = state().with_status_view(Arc::new(OneSession {
        id,
        status: serde_json::to_string(&session).unwrap(),
    }));
    let (code, text) = get(&viewed, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    for expected in [
        r#"crus_sessions{state="UPDATING"} 1"#,
        r#"crus_nodes{phase="pending"} 3"#,
        r#"crus_nodes{phase="draining"} 2"#,
        r#"crus_nodes{phase="done"} 0"#,
        "crus_sessions_gated 1",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
}
