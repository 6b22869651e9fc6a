//! Tests of the BOS v1 orchestrator against a stateful wiremock BOS v1 whose
//! answers have the shapes of CSM's "Manage a BOS Session" page and the BOS
//! API document (v1 session create, list and describe, session and boot set
//! status), including the describe-404 bug and the refusal of a tenant.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crus_core::error::Error;
use crus_core::node::NodeId;
use crus_core::ports::{BootHandle, BootOrchestrator, BootRequest, NodeBootState};
use crus_core::testkit::{self, BootOrchestratorFixture};
use serde_json::{Value, json};
use wiremock::matchers::{any, body_json, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::BosV1Orchestrator;
use crate::service::ServiceConfig;

const TEMPLATE: &str = "cle-1.1.0";

/// Status polls of a session before BOA has written its status.
const POLLS_BEFORE_STATUS: u32 = 1;
/// Status polls after which every node has succeeded and BOA is done.
const POLLS_TO_BOOT: u32 = 3;

fn config(server: &MockServer) -> ServiceConfig {
    let mut config = ServiceConfig::new(server.uri());
    config.retries = 1;
    config.retry_base_delay = Duration::from_millis(1);
    config.timeout = Duration::from_secs(5);
    config
}

fn problem(status: u16, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(
        json!({"type": "about:blank", "title": "x", "detail": detail, "status": status}),
    )
}

fn nodes(ids: &[&str]) -> Vec<NodeId> {
    ids.iter().map(|id| NodeId::from(*id)).collect()
}

fn request(key: &str, ids: &[&str]) -> BootRequest {
    BootRequest {
        key: key.to_string(),
        template: TEMPLATE.to_string(),
        nodes: nodes(ids),
    }
}

/// One v1 session of the fake.
#[derive(Debug, Clone)]
struct FakeSession {
    template: String,
    limit: Vec<String>,
    /// `GET .../status` calls so far: BOA's progress.
    polls: u32,
    /// Nodes BOA fails in the boot phase, with the error it records.
    failing: Vec<(String, String)>,
}

/// A BOS v1 as CSM documents it.
#[derive(Debug, Default)]
struct FakeBosV1 {
    sessions: Mutex<Vec<(String, FakeSession)>>,
    /// Sessions whose describe answers 404 although they are listed.
    describe_bug: Mutex<BTreeSet<String>>,
    /// Nodes the next sessions fail, with BOA's error.
    failing: Mutex<Vec<(String, String)>>,
    posts: Mutex<u32>,
}

impl FakeBosV1 {
    fn session_ids(&self) -> Vec<String> {
        self.lock().iter().map(|(id, _)| id.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, FakeSession)>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn posts(&self) -> u32 {
        *self.posts.lock().unwrap()
    }

    fn create(&self, body: &Value) -> ResponseTemplate {
        let template = body["templateName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if template != TEMPLATE {
            return problem(404, &format!("Session Template '{template}' not found"));
        }
        if body["operation"] != "reboot" {
            return problem(400, "unexpected operation");
        }
        let limit = body["limit"].as_str().unwrap_or_default().to_string();
        let mut posts = self.posts.lock().unwrap();
        *posts += 1;
        let id = format!("9173f29f-29a4-424f-b974-{:012x}", *posts);
        self.lock().push((
            id.clone(),
            FakeSession {
                template: template.clone(),
                limit: limit.split(',').map(str::to_string).collect(),
                polls: 0,
                failing: self.failing.lock().unwrap().clone(),
            },
        ));
        // The seed's example output of `cray bos v1 session create`.
        ResponseTemplate::new(201).set_body_json(json!({
            "job": format!("boa-{id}"),
            "limit": limit,
            "links": [
                {"href": format!("/v1/session/{id}"), "jobId": format!("boa-{id}"), "rel": "session", "type": "GET"},
                {"href": format!("/v1/session/{id}/status"), "rel": "status", "type": "GET"}
            ],
            "operation": "reboot",
            "templateName": template
        }))
    }

    fn describe(&self, id: &str) -> ResponseTemplate {
        let not_found = problem(404, &format!("Session {id} could not be found"));
        if self.describe_bug.lock().unwrap().contains(id) {
            return not_found;
        }
        let sessions = self.lock();
        let Some((_, session)) = sessions.iter().find(|(listed, _)| listed == id) else {
            return not_found;
        };
        let complete = session.polls > POLLS_TO_BOOT;
        // The seed's example output of `cray bos v1 session describe`.
        ResponseTemplate::new(200).set_body_json(json!({
            "complete": complete,
            "error_count": 0,
            "in_progress": !complete,
            "job": format!("boa-{id}"),
            "operation": "reboot",
            "start_time": "2022-08-22T12:22:33.708209Z",
            "status_link": format!("/v1/session/{id}/status"),
            "stop_time": if complete { json!("2022-08-22 12:58:23.674867") } else { Value::Null },
            "templateName": session.template
        }))
    }

    fn metadata(complete: bool) -> Value {
        json!({"complete": complete, "error_count": 0, "in_progress": !complete,
               "start_time": "2022-08-22T12:22:33", "stop_time": if complete { json!("2022-08-22T12:58:23") } else { Value::Null }})
    }

    fn session_status(&self, id: &str) -> ResponseTemplate {
        let mut sessions = self.lock();
        let Some((_, session)) = sessions.iter_mut().find(|(listed, _)| listed == id) else {
            return problem(404, &format!("Session {id} could not be found"));
        };
        session.polls += 1;
        if session.polls <= POLLS_BEFORE_STATUS {
            // BOA has not posted the session's status yet.
            return problem(404, &format!("Status for session {id} could not be found"));
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "metadata": Self::metadata(session.polls > POLLS_TO_BOOT),
            "boot_sets": ["compute"],
            "id": id,
            "links": [{"href": format!("/v1/session/{id}/status/compute"), "rel": "Boot Set"}]
        }))
    }

    fn boot_set_status(&self, id: &str, boot_set: &str) -> ResponseTemplate {
        let sessions = self.lock();
        let Some((_, session)) = sessions.iter().find(|(listed, _)| listed == id) else {
            return problem(404, &format!("Session {id} could not be found"));
        };
        if boot_set != "compute" || session.polls <= POLLS_BEFORE_STATUS {
            return problem(404, &format!("Boot set {boot_set} could not be found"));
        }
        let done = session.polls > POLLS_TO_BOOT;
        let failing: Vec<&str> = session
            .failing
            .iter()
            .map(|(node, _)| node.as_str())
            .collect();
        let healthy: Vec<&str> = session
            .limit
            .iter()
            .map(String::as_str)
            .filter(|node| !failing.contains(node))
            .collect();
        let all: Vec<&str> = session.limit.iter().map(String::as_str).collect();
        let category = |name: &str, nodes: &[&str]| json!({"name": name, "node_list": nodes});
        let mut errors = serde_json::Map::new();
        for (node, error) in &session.failing {
            errors.insert(error.clone(), json!([node]));
        }
        let (shutdown, boot) = if done {
            (
                vec![category("Succeeded", &all)],
                vec![
                    category("Succeeded", &healthy),
                    category("Failed", &failing),
                ],
            )
        } else {
            (
                vec![category("In_progress", &all)],
                vec![category("Not_started", &all)],
            )
        };
        // The BOS API document's `V1BootSetStatus` example, one phase per
        // step of a reboot.
        ResponseTemplate::new(200).set_body_json(json!({
            "name": boot_set,
            "session": id,
            "metadata": Self::metadata(done),
            "phases": [
                {"name": "shutdown", "metadata": Self::metadata(done), "categories": shutdown, "errors": {}},
                {"name": "boot", "metadata": Self::metadata(done), "categories": boot,
                 "errors": if done { Value::Object(errors) } else { json!({}) }}
            ],
            "links": [{"href": format!("/v1/session/{id}/status/{boot_set}"), "rel": "self"}]
        }))
    }
}

/// The fake behind wiremock, shared with the test that inspects it.
struct Shared(Arc<FakeBosV1>);

impl Respond for Shared {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let fake = &self.0;
        // "Multi-tenancy is not supported for most BOS v1 endpoints. If this
        // parameter is set to a non-empty string, the request will be rejected."
        if request
            .headers
            .get("Cray-Tenant-Name")
            .is_some_and(|tenant| !tenant.is_empty())
        {
            return problem(
                400,
                "Multi-tenancy is not supported for this BOS v1 request.",
            );
        }
        let segments: Vec<&str> = request
            .url
            .path()
            .trim_start_matches('/')
            .split('/')
            .collect();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["v1", "sessiontemplate", name]) if *name == TEMPLATE => {
                ResponseTemplate::new(200).set_body_json(json!({
                    "name": name, "enable_cfs": true, "cfs": {"configuration": "compute-23.4.0"},
                    "boot_sets": {"compute": {"name": "compute", "type": "s3", "node_roles_groups": ["Compute"],
                                  "path": "s3://boot-images/9e3c75e1/manifest.json"}}
                }))
            }
            ("GET", ["v1", "sessiontemplate", name]) => {
                problem(404, &format!("Sessiontemplate {name} could not be found"))
            }
            ("POST", ["v1", "session"]) => fake.create(&body),
            ("GET", ["v1", "session"]) => ResponseTemplate::new(200).set_body_json(fake.session_ids()),
            ("GET", ["v1", "session", id]) => fake.describe(id),
            ("GET", ["v1", "session", id, "status"]) => fake.session_status(id),
            ("GET", ["v1", "session", id, "status", boot_set]) => fake.boot_set_status(id, boot_set),
            ("DELETE", ["v1", "session", id]) => {
                let mut sessions = fake.lock();
                let before = sessions.len();
                sessions.retain(|(listed, _)| listed != id);
                if sessions.len() < before {
                    ResponseTemplate::new(204)
                } else {
                    problem(404, &format!("Session {id} could not be found"))
                }
            }
            _ => problem(400, "unexpected request"),
        }
    }
}

async fn fake_bos() -> (MockServer, Arc<FakeBosV1>) {
    let server = MockServer::start().await;
    let fake = Arc::new(FakeBosV1::default());
    Mock::given(any())
        .respond_with(Shared(fake.clone()))
        .mount(&server)
        .await;
    (server, fake)
}

/// Polls `handle` until no node is in progress.
async fn settle(bos: &BosV1Orchestrator, handle: &BootHandle) -> Vec<NodeBootState> {
    for _ in 0..20 {
        let reported = bos.boot_status(handle).await.unwrap();
        if reported
            .iter()
            .all(|node| node.state != NodeBootState::InProgress)
        {
            return reported.into_iter().map(|node| node.state).collect();
        }
    }
    panic!("{handle:?} never settled");
}

#[tokio::test]
async fn passes_the_boot_orchestrator_conformance_suite() {
    let (server, _fake) = fake_bos().await;
    let bos = BosV1Orchestrator::new(&config(&server)).unwrap();
    let fixture = BootOrchestratorFixture {
        template: TEMPLATE.to_string(),
        nodes: nodes(&["x1000c0s0b0n0", "x1000c0s0b0n1"]),
        boot_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(10),
    };
    if let Err(failure) = testkit::boot_orchestrator::run_all(&bos, &fixture).await {
        panic!("{failure}");
    }
}

#[tokio::test]
async fn start_boot_posts_a_v1_reboot_limited_to_the_nodes_and_keeps_the_session_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/session"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/session"))
        .and(body_json(json!({"operation": "reboot", "templateName": TEMPLATE,
                              "limit": "x1c0s0b0n0,x1c0s0b0n1"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "job": "boa-34dddd18-1f53-4fd7-829e-3ac7b4e995c3",
            "limit": "x1c0s0b0n0,x1c0s0b0n1",
            "links": [{"href": "/v1/session/34dddd18-1f53-4fd7-829e-3ac7b4e995c3",
                       "jobId": "boa-34dddd18-1f53-4fd7-829e-3ac7b4e995c3", "rel": "session", "type": "GET"},
                      {"href": "/v1/session/34dddd18-1f53-4fd7-829e-3ac7b4e995c3/status", "rel": "status", "type": "GET"}],
            "operation": "reboot",
            "templateName": TEMPLATE
        })))
        .expect(1)
        .mount(&server)
        .await;
    let bos = BosV1Orchestrator::new(&config(&server)).unwrap();
    let request = request("crus-s1-step-0", &["x1c0s0b0n0", "x1c0s0b0n1"]);
    let handle = bos.start_boot(&request).await.unwrap();
    assert_eq!(
        handle,
        BootHandle {
            key: "crus-s1-step-0".into(),
            id: "bos-v1:34dddd18-1f53-4fd7-829e-3ac7b4e995c3:x1c0s0b0n0,x1c0s0b0n1".into(),
        }
    );
    // The same key again: the same session, no second POST.
    assert_eq!(bos.start_boot(&request).await.unwrap(), handle);
}

#[tokio::test]
async fn a_restarted_crus_takes_over_the_running_session_instead_of_starting_a_second() {
    let (server, fake) = fake_bos().await;
    let first = BosV1Orchestrator::new(&config(&server)).unwrap();
    let step = request("crus-s1-step-0", &["x1c0s0b0n0", "x1c0s0b0n1"]);
    let started = first.start_boot(&step).await.unwrap();
    // BOA has written the session's status (the status is read once).
    assert!(
        first
            .boot_status(&started)
            .await
            .unwrap()
            .iter()
            .all(|node| node.state == NodeBootState::InProgress)
    );

    // A new process, which never stored the handle (it stopped between the
    // POST and the persist), asks again under the same key.
    let second = BosV1Orchestrator::new(&config(&server)).unwrap();
    assert_eq!(second.start_boot(&step).await.unwrap(), started);
    assert_eq!(fake.posts(), 1, "no second BOS session");

    // Other nodes, or another template, are another boot.
    let other_nodes = request("crus-s1-step-1", &["x1c0s0b0n0"]);
    let other = second.start_boot(&other_nodes).await.unwrap();
    assert_ne!(other.id, started.id);
    assert_eq!(fake.posts(), 2);

    // A finished session is never taken over: its nodes booted before.
    let mut states = settle(&second, &started).await;
    states.dedup();
    assert_eq!(states, vec![NodeBootState::Ok]);
    let third = BosV1Orchestrator::new(&config(&server)).unwrap();
    let again = third.start_boot(&step).await.unwrap();
    assert_ne!(again.id, started.id);
    assert_eq!(fake.posts(), 3);
}

#[tokio::test]
async fn the_describe_404_bug_neither_loses_a_session_nor_matches_one() {
    let (server, fake) = fake_bos().await;
    let bos = BosV1Orchestrator::new(&config(&server)).unwrap();
    let step = request("crus-s1-step-0", &["x1c0s0b0n0"]);
    let handle = bos.start_boot(&step).await.unwrap();
    let session = fake.session_ids()[0].clone();
    fake.describe_bug.lock().unwrap().insert(session.clone());

    // Before BOA writes the status, the session is only in the listing:
    // still in progress, not "not found".
    let reported = bos.boot_status(&handle).await.unwrap();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].state, NodeBootState::InProgress);
    // It boots to the end although it cannot be described.
    assert_eq!(settle(&bos, &handle).await, vec![NodeBootState::Ok]);

    // A session that cannot be described is not recognised after a restart.
    let restarted = BosV1Orchestrator::new(&config(&server)).unwrap();
    let unfinished = request("crus-s1-step-1", &["x1c0s0b0n1"]);
    let first = restarted.start_boot(&unfinished).await.unwrap();
    let id = fake.session_ids()[1].clone();
    fake.describe_bug.lock().unwrap().insert(id);
    let after = BosV1Orchestrator::new(&config(&server)).unwrap();
    assert_ne!(after.start_boot(&unfinished).await.unwrap().id, first.id);
}

#[tokio::test]
async fn boot_status_reports_boa_failures_per_node_and_unknown_sessions_as_not_found() {
    let (server, fake) = fake_bos().await;
    fake.failing
        .lock()
        .unwrap()
        .push(("x1c0s0b0n1".into(), "Node(s) failed to power on".into()));
    let bos = BosV1Orchestrator::new(&config(&server)).unwrap();
    let handle = bos
        .start_boot(&request("crus-s1-step-0", &["x1c0s0b0n0", "x1c0s0b0n1"]))
        .await
        .unwrap();
    assert_eq!(
        settle(&bos, &handle).await,
        vec![
            NodeBootState::Ok,
            NodeBootState::Failed {
                reason: "BOS v1 boot phase: Node(s) failed to power on".into()
            }
        ]
    );

    let gone = BootHandle {
        key: "k".into(),
        id: "bos-v1:0b5e6c1e-0000-4000-8000-000000000000:x1c0s0b0n0".into(),
    };
    let error = bos.boot_status(&gone).await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");

    // Cancelling deletes the session, and is idempotent.
    bos.cancel_boot(&handle).await.unwrap();
    assert!(fake.session_ids().is_empty());
    bos.cancel_boot(&handle).await.unwrap();
}

#[tokio::test]
async fn requests_bos_v1_cannot_carry_are_refused_before_any_call() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(problem(500, "no call expected"))
        .expect(0)
        .mount(&server)
        .await;
    let bos = BosV1Orchestrator::new(&config(&server)).unwrap();
    for ids in [&[][..], &["x1,x2"][..]] {
        let error = bos.start_boot(&request("k", ids)).await.unwrap_err();
        assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    }
}
