//! A crus-http server over a simulated cluster, driven with `oneshot` (no socket).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use crus_backends::sim::{SimCluster, SimConfig};
use crus_core::clock::TokioClock;
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::ports::Ports;
use crus_core::store::{MemoryStore, SessionStore};
use crus_core::{NodeId, Timestamp};
use crus_http::{AppState, Auth, AuthConfig, Metrics, app, instrument_ports};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The static token every test server accepts.
pub const TOKEN: &str = "test-token-0123456789";

/// Both bases every route is served under.
pub const PREFIXES: [&str; 2] = ["", "/apis/crus"];

/// How to build a [`TestServer`].
pub struct Setup {
    /// Nodes of the simulated cluster (all in group `compute`).
    pub nodes: usize,
    /// The session store (a fresh memory store by default).
    pub store: Option<Arc<dyn SessionStore>>,
    /// Replaces the sim's ports (to inject failures).
    pub wrap_ports: Option<Box<dyn FnOnce(Ports) -> Ports>>,
    /// Authentication (the static [`TOKEN`] by default).
    pub auth: AuthConfig,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            nodes: 8,
            store: None,
            wrap_ports: None,
            auth: AuthConfig {
                tokens: vec![TOKEN.to_string()],
                ..AuthConfig::default()
            },
        }
    }
}

/// The router and what it runs on.
pub struct TestServer {
    /// The router under test.
    pub app: Router,
    /// The simulated cluster behind it.
    pub sim: SimCluster,
    /// The state the router was built from.
    pub state: AppState,
}

impl TestServer {
    /// A server with the default [`Setup`].
    pub fn new() -> Self {
        Self::build(Setup::default())
    }

    /// A server as `setup` says. Must run inside a tokio runtime (the
    /// controller spawns its session tasks there).
    pub fn build(setup: Setup) -> Self {
        let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)));
        let sim = SimCluster::new(
            SimConfig {
                nodes: setup.nodes,
                ..SimConfig::default()
            },
            clock.clone(),
        )
        .unwrap();
        let metrics = Arc::new(Metrics::new());
        let mut ports = sim.ports();
        if let Some(wrap) = setup.wrap_ports {
            ports = wrap(ports);
        }
        let ports = instrument_ports(ports, &metrics);
        let store = setup
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::new()) as Arc<dyn SessionStore>);
        let controller = Controller::new(ports, store, clock, ControllerConfig::default());
        let auth = Auth::new(setup.auth).unwrap();
        let state = AppState::new(controller, Arc::new(auth), metrics);
        TestServer {
            app: app(state.clone()),
            sim,
            state,
        }
    }

    /// Sends `request` as it is.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `method path` with the test token and no body.
    pub async fn call(&self, method: Method, path: &str) -> TestResponse {
        self.send(
            Request::builder()
                .method(method)
                .uri(path)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// `GET path` with the test token.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.call(Method::GET, path).await
    }

    /// `DELETE path` with the test token.
    pub async fn delete(&self, path: &str) -> TestResponse {
        self.call(Method::DELETE, path).await
    }

    /// `POST path` with the test token and `body` as JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> TestResponse {
        self.send(
            Request::builder()
                .method(Method::POST)
                .uri(path)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
    }

    /// Creates group `label` in the sim holding `nodes`.
    pub async fn make_group(&self, label: &str, nodes: &[NodeId]) {
        let inventory = self.sim.ports().inventory;
        inventory.create_group(label).await.unwrap();
        if !nodes.is_empty() {
            inventory.add_members(label, nodes).await.unwrap();
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {:?}", self.body))
    }

    /// The Content-Type header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .map_or("", |value| value.to_str().unwrap())
    }

    /// Asserts this is a problem response of `status` and returns its body.
    #[track_caller]
    pub fn problem(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {:?}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        let problem = self.json();
        assert_eq!(problem["type"], "about:blank");
        assert_eq!(problem["status"], status.as_u16());
        let title = problem["title"].as_str().unwrap_or_default();
        // A failing part's 502 or 503 is titled by the part (`Inventory
        // failed`); every other problem by its status.
        let part_title = matches!(status.as_u16(), 502 | 503)
            && PART_TITLES.iter().any(|part| {
                title == format!("{part} failed") || title == format!("{part} unavailable")
            });
        assert!(
            title == status.canonical_reason().unwrap() || part_title,
            "title {title:?} of a {status}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|detail| !detail.is_empty())
        );
        problem
    }

    /// Asserts this is a problem response of `status` titled `title` (a
    /// failing part's) and returns its body.
    #[track_caller]
    pub fn part_problem(&self, status: StatusCode, title: &str) -> Value {
        let problem = self.problem(status);
        assert_eq!(problem["title"], title, "{problem}");
        problem
    }
}

/// The parts a 502 or 503 may name in its title.
const PART_TITLES: [&str; 5] = [
    "Inventory",
    "Workload manager",
    "Boot service",
    "Power control",
    "Session store",
];

/// A valid session body upgrading group `starting` of the sim.
pub fn session_body(starting: &str, step: u32) -> Value {
    json!({
        "failed_label": format!("{starting}-failed"),
        "starting_label": starting,
        "upgrade_step_size": step,
        "upgrade_template_id": "compute-image",
        "upgrading_label": format!("{starting}-upgrading"),
        "workload_manager_type": "slurm"
    })
}
