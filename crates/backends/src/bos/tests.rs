//! Tests of the BOS orchestrator against wiremock: each call's request and
//! answer handling, and the conformance suite against a stateful fake BOS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crus_core::error::Error;
use crus_core::node::NodeId;
use crus_core::ports::{BootHandle, BootOrchestrator, BootRequest, NodeBootState};
use crus_core::testkit::{self, BootOrchestratorFixture};
use serde_json::{Value, json};
use wiremock::matchers::{any, body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::BosOrchestrator;
use crate::service::ServiceConfig;

fn config(server: &MockServer) -> ServiceConfig {
    let mut config = ServiceConfig::new(server.uri());
    config.retries = 1;
    config.retry_base_delay = Duration::from_millis(1);
    config.timeout = Duration::from_secs(5);
    config
}

fn problem(status: u16, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"title": "x", "detail": detail, "status": status}))
}

fn request() -> BootRequest {
    BootRequest {
        key: "crus-s1-step-0".to_string(),
        template: "compute-2.5".to_string(),
        nodes: vec![NodeId::from("x1c0s0b0n0"), NodeId::from("x1c0s0b0n1")],
    }
}

fn session(status: &str, error: Value) -> Value {
    json!({"name": "crus-s1-step-0", "operation": "reboot", "template_name": "compute-2.5",
           "limit": "x1c0s0b0n0,x1c0s0b0n1", "status": {"status": status, "error": error}})
}

#[tokio::test]
async fn template_exists_reads_the_template() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/sessiontemplates/compute-2.5"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "compute-2.5"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/sessiontemplates/other"))
        .respond_with(problem(404, "Session template 'other' does not exist"))
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    assert!(bos.template_exists("compute-2.5").await.unwrap());
    assert!(!bos.template_exists("other").await.unwrap());
}

#[tokio::test]
async fn start_boot_posts_a_named_reboot_session_limited_to_the_nodes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/sessions"))
        .and(body_json(
            json!({"name": "crus-s1-step-0", "operation": "reboot",
                              "template_name": "compute-2.5", "limit": "x1c0s0b0n0,x1c0s0b0n1"}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(session("pending", Value::Null)))
        .expect(1)
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    let handle = bos.start_boot(&request()).await.unwrap();
    assert_eq!(
        handle,
        BootHandle {
            key: "crus-s1-step-0".into(),
            id: "crus-s1-step-0".into()
        }
    );
}

#[tokio::test]
async fn start_boot_adopts_an_existing_session_and_rejects_an_unknown_template() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/sessions"))
        .respond_with(problem(409, "Conflict"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/sessions/crus-s1-step-0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(session("running", Value::Null)))
        .expect(1)
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    let handle = bos.start_boot(&request()).await.unwrap();
    assert_eq!(handle.id, "crus-s1-step-0");

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/sessions"))
        .respond_with(problem(400, "Session Template Name invalid: compute-2.5"))
        .expect(1)
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    let error = bos.start_boot(&request()).await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn boot_status_maps_each_component() {
    let server = MockServer::start().await;
    let limit = "x1c0s0b0n0,x1c0s0b0n1,x1c0s0b0n2,x1c0s0b0n3,x1c0s0b0n4,x1c0s0b0n5";
    Mock::given(method("GET"))
        .and(path("/v2/sessions/s"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"name": "s", "limit": limit, "status": {"status": "running"}}),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/components"))
        .and(query_param("session", "s"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "x1c0s0b0n0", "enabled": false, "error": "", "status": {"phase": "", "status": "stable", "status_override": ""}},
            {"id": "x1c0s0b0n1", "enabled": false, "error": "cfs configuration failed", "status": {"phase": "", "status": "failed", "status_override": "failed"}},
            {"id": "x1c0s0b0n2", "enabled": false, "error": "Component information was not returned by pcs", "status": {"phase": "", "status": "on_hold", "status_override": "on_hold"}},
            {"id": "x1c0s0b0n3", "enabled": true, "error": "", "status": {"phase": "powering_on", "status": "power_on_called", "status_override": ""}},
            {"id": "x1c0s0b0n4", "enabled": true, "error": "", "status": {"phase": "", "status": "stable", "status_override": ""}}
        ])))
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    let handle = BootHandle {
        key: "k".into(),
        id: "s".into(),
    };
    let states: Vec<NodeBootState> = bos
        .boot_status(&handle)
        .await
        .unwrap()
        .into_iter()
        .map(|status| status.state)
        .collect();
    assert_eq!(
        states,
        vec![
            NodeBootState::Ok,
            NodeBootState::Failed {
                reason: "cfs configuration failed".into()
            },
            NodeBootState::Failed {
                reason: "on hold: Component information was not returned by pcs".into()
            },
            NodeBootState::InProgress,
            // Stable but still enabled: BOS has not picked it up yet.
            NodeBootState::InProgress,
            // Not yet set up by BOS.
            NodeBootState::InProgress,
        ]
    );
}

#[tokio::test]
async fn boot_status_of_a_finished_session_fails_nodes_it_never_took() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/sessions/crus-s1-step-0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(session(
            "complete",
            json!("No nodes were found to act upon."),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/components"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    let handle = BootHandle {
        key: "crus-s1-step-0".into(),
        id: "crus-s1-step-0".into(),
    };
    let reported = bos.boot_status(&handle).await.unwrap();
    assert_eq!(reported.len(), 2);
    assert!(reported.iter().all(|node| node.state
        == NodeBootState::Failed {
            reason: "No nodes were found to act upon.".into()
        }));
}

#[tokio::test]
async fn unknown_session_is_not_found_and_cancel_is_idempotent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/sessions/gone"))
        .respond_with(problem(404, "Session 'gone' does not exist"))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/sessions/gone"))
        .respond_with(problem(404, "Session 'gone' does not exist"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/sessions/live"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    let gone = BootHandle {
        key: "k".into(),
        id: "gone".into(),
    };
    let error = bos.boot_status(&gone).await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    bos.cancel_boot(&gone).await.unwrap();
    bos.cancel_boot(&BootHandle {
        key: "k".into(),
        id: "live".into(),
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn server_errors_are_retried_then_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/sessiontemplates/t"))
        .respond_with(problem(502, "Bad Gateway"))
        .expect(2)
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    let error = bos.template_exists("t").await.unwrap_err();
    assert!(
        matches!(error, Error::Unavailable { backend: "bos", .. }),
        "{error:?}"
    );
}

/// A fake BOS whose sessions boot every node after a few status polls.
struct FakeBos {
    template: String,
    /// Session name → (limit, polls so far).
    sessions: Mutex<HashMap<String, (String, u32)>>,
}

/// Polls of a session's components before its nodes are booted.
const POLLS_TO_BOOT: u32 = 2;

impl Respond for FakeBos {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let segments: Vec<&str> = request
            .url
            .path()
            .trim_start_matches('/')
            .split('/')
            .collect();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["v2", "sessiontemplates", name]) if *name == self.template => {
                ResponseTemplate::new(200).set_body_json(json!({"name": name}))
            }
            ("GET", ["v2", "sessiontemplates", name]) => {
                problem(404, &format!("Session template '{name}' does not exist"))
            }
            ("POST", ["v2", "sessions"]) => {
                let template = body["template_name"].as_str().unwrap_or_default();
                if template != self.template {
                    return problem(400, &format!("Session Template Name invalid: {template}"));
                }
                let name = body["name"].as_str().unwrap_or_default().to_string();
                if sessions.contains_key(&name) {
                    return problem(409, "Conflict");
                }
                let limit = body["limit"].as_str().unwrap_or_default().to_string();
                sessions.insert(name.clone(), (limit.clone(), 0));
                ResponseTemplate::new(201).set_body_json(
                    json!({"name": name, "limit": limit, "status": {"status": "pending"}}),
                )
            }
            ("GET", ["v2", "sessions", name]) => match sessions.get(*name) {
                Some((limit, polls)) => {
                    let status = if *polls >= POLLS_TO_BOOT {
                        "complete"
                    } else {
                        "running"
                    };
                    ResponseTemplate::new(200).set_body_json(
                        json!({"name": name, "limit": limit, "status": {"status": status}}),
                    )
                }
                None => problem(404, &format!("Session '{name}' does not exist")),
            },
            ("GET", ["v2", "components"]) => {
                let name = request
                    .url
                    .query_pairs()
                    .find(|(key, _)| key == "session")
                    .map(|(_, value)| value.to_string())
                    .unwrap_or_default();
                let Some((limit, polls)) = sessions.get_mut(&name) else {
                    return ResponseTemplate::new(200).set_body_json(json!([]));
                };
                *polls += 1;
                let booted = *polls > POLLS_TO_BOOT;
                let components: Vec<Value> = limit
                    .split(',')
                    .map(|id| {
                        if booted {
                            json!({"id": id, "enabled": false, "session": name, "error": "",
                                   "status": {"phase": "", "status": "stable", "status_override": ""}})
                        } else {
                            json!({"id": id, "enabled": true, "session": name, "error": "",
                                   "status": {"phase": "powering_on", "status": "power_on_called", "status_override": ""}})
                        }
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(components)
            }
            ("DELETE", ["v2", "sessions", name]) => match sessions.remove(*name) {
                Some(_) => ResponseTemplate::new(204),
                None => problem(404, &format!("Session '{name}' does not exist")),
            },
            _ => problem(400, "unexpected request"),
        }
    }
}

#[tokio::test]
async fn passes_the_boot_orchestrator_conformance_suite() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(FakeBos {
            template: "compute-2.5".to_string(),
            sessions: Mutex::new(HashMap::new()),
        })
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    let fixture = BootOrchestratorFixture {
        template: "compute-2.5".to_string(),
        nodes: vec![NodeId::from("x1000c0s0b0n0"), NodeId::from("x1000c0s0b0n1")],
        boot_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(10),
    };
    if let Err(failure) = testkit::boot_orchestrator::run_all(&bos, &fixture).await {
        panic!("{failure}");
    }
}

#[tokio::test]
async fn a_tenant_is_sent_as_cray_tenant_name_on_every_call() {
    let server = MockServer::start().await;
    // Without the header BOS would look at the templates and sessions of no
    // tenant: answer as if they did not exist.
    Mock::given(any())
        .respond_with(problem(404, "no tenant header"))
        .with_priority(10)
        .mount(&server)
        .await;
    let tenant = || header("Cray-Tenant-Name", "vcluster-blue");
    Mock::given(method("GET"))
        .and(path("/v2/sessiontemplates/compute-2.5"))
        .and(tenant())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "compute-2.5", "tenant": "vcluster-blue"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/sessions"))
        .and(tenant())
        .respond_with(ResponseTemplate::new(201).set_body_json(session("pending", Value::Null)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/sessions/crus-s1-step-0"))
        .and(tenant())
        .respond_with(ResponseTemplate::new(200).set_body_json(session("running", Value::Null)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/components"))
        .and(tenant())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/sessions/crus-s1-step-0"))
        .and(tenant())
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server))
        .unwrap()
        .with_tenant("vcluster-blue")
        .unwrap();
    assert!(bos.template_exists("compute-2.5").await.unwrap());
    let handle = bos.start_boot(&request()).await.unwrap();
    let reported = bos.boot_status(&handle).await.unwrap();
    assert!(
        reported
            .iter()
            .all(|node| node.state == NodeBootState::InProgress)
    );
    bos.cancel_boot(&handle).await.unwrap();

    // Without a tenant (or an empty one, BOS's "no tenant") no header is sent.
    let untenanted = BosOrchestrator::new(&config(&server))
        .unwrap()
        .with_tenant("")
        .unwrap();
    assert!(!untenanted.template_exists("compute-2.5").await.unwrap());
    let error = BosOrchestrator::new(&config(&server))
        .unwrap()
        .with_tenant("blue\nteam")
        .unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
}
