//! The CRUS session routes: every status code they answer, on both prefixes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use crus_backends::sim::faulty_ports;
use crus_core::ports::{Inventory, Ports};
use crus_core::{Error, NodeFacts, NodeId};
use crus_http::{NOT_FOUND_DETAIL, VALIDATION_DETAIL};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{PREFIXES, Setup, TOKEN, TestServer, session_body};

fn session_path(prefix: &str) -> String {
    format!("{prefix}/session")
}

#[tokio::test(start_paused = true)]
async fn create_returns_201_with_the_crus_status() {
    for prefix in PREFIXES {
        let server = TestServer::new();
        let body = session_body("compute", 4);
        let response = server.post_json(&session_path(prefix), &body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        assert_eq!(response.content_type(), "application/json");
        let status = response.json();
        for field in [
            "failed_label",
            "starting_label",
            "upgrade_step_size",
            "upgrade_template_id",
            "upgrading_label",
            "workload_manager_type",
        ] {
            assert_eq!(status[field], body[field], "{field}");
        }
        // As CRUS answered: never CREATED.
        assert_eq!(status["state"], "UPDATING", "{status}");
        assert_eq!(status["kind"], "ComputeUpgradeSession");
        assert_eq!(status["completed"], false);
        assert_eq!(status["api_version"], env!("CARGO_PKG_VERSION"));
        assert!(status["messages"].is_array());
        let id = Uuid::parse_str(status["upgrade_id"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 4);
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_runs_to_ready_and_completed() {
    for prefix in PREFIXES {
        let server = TestServer::new();
        let created = server
            .post_json(&session_path(prefix), &session_body("compute", 3))
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
        let id = created.json()["upgrade_id"].as_str().unwrap().to_string();

        tokio::time::sleep(Duration::from_secs(3600)).await;

        let response = server.get(&format!("{prefix}/session/{id}")).await;
        assert_eq!(response.status, StatusCode::OK);
        let status = response.json();
        assert_eq!(status["state"], "READY", "{status}");
        assert_eq!(status["completed"], true);
        // CRUS's last message word for word; the summary just before it.
        let messages = status["messages"].as_array().unwrap();
        assert_eq!(messages[messages.len() - 1], "Upgrade Session Completed");
        assert_eq!(messages[messages.len() - 2], "8 of 8 nodes upgraded");
        for node in server.sim.node_ids() {
            assert_eq!(server.sim.boot_count(&node), 1, "{node}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn unparseable_bodies_and_wrong_content_types_are_400() {
    for prefix in PREFIXES {
        let server = TestServer::new();
        let cases: [(Option<&str>, &str); 5] = [
            (Some("application/json"), "{not json"),
            (Some("application/json"), ""),
            (Some("text/plain"), r#"{"starting_label":"compute"}"#),
            (Some("application/x-www-form-urlencoded"), "a=b"),
            (None, r#"{"starting_label":"compute"}"#),
        ];
        for (content_type, body) in cases {
            let mut request = Request::builder()
                .method(Method::POST)
                .uri(session_path(prefix))
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
            if let Some(content_type) = content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            let response = server
                .send(request.body(Body::from(body.to_string())).unwrap())
                .await;
            let problem = response.problem(StatusCode::BAD_REQUEST);
            assert!(problem.get("errors").is_none());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn json_content_types_with_parameters_are_accepted() {
    let server = TestServer::new();
    let response = server
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/session")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")
                .body(Body::from(session_body("compute", 2).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
}

#[tokio::test(start_paused = true)]
async fn bodies_over_the_limit_are_413() {
    for prefix in PREFIXES {
        let server = TestServer::new();
        let mut body = session_body("compute", 2);
        body["starting_label"] = Value::from("x".repeat(crus_http::BODY_LIMIT + 1));
        let bytes = serde_json::to_vec(&body).unwrap();
        // Announced by Content-Length (refused before reading) and not (refused while reading).
        for announce_length in [true, false] {
            let mut request = Request::builder()
                .method(Method::POST)
                .uri(session_path(prefix))
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, "application/json");
            if announce_length {
                request = request.header(header::CONTENT_LENGTH, bytes.len());
            }
            let response = server
                .send(request.body(Body::from(bytes.clone())).unwrap())
                .await;
            response.problem(StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn schema_problems_are_422_by_field_like_crus() {
    let valid = session_body("compute", 2);
    let mut cases: Vec<(Value, &str)> = Vec::new();
    for field in valid.as_object().unwrap().keys() {
        let mut missing = valid.clone();
        missing.as_object_mut().unwrap().remove(field);
        cases.push((missing, field));
    }
    for (field, bad) in [
        ("starting_label", json!(7)),
        ("upgrading_label", json!("")),
        ("failed_label", json!(null)),
        ("upgrade_step_size", json!(0)),
        ("upgrade_step_size", json!(-1)),
        ("upgrade_step_size", json!("4")),
        ("upgrade_step_size", json!(1.5)),
        ("workload_manager_type", json!("pbs")),
        ("surprise", json!(true)),
    ] {
        let mut body = valid.clone();
        body[field] = bad;
        cases.push((body, field));
    }
    for prefix in PREFIXES {
        let server = TestServer::new();
        for (body, field) in &cases {
            let response = server.post_json(&session_path(prefix), body).await;
            let problem = response.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem["detail"], VALIDATION_DETAIL);
            let errors = problem["errors"].as_object().unwrap();
            assert!(errors.contains_key(*field), "{field}: {problem}");
            assert!(errors[*field][0].is_string());
        }
        // Not an object at all.
        let response = server.post_json(&session_path(prefix), &json!([1])).await;
        response.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(server.get(&session_path(prefix)).await.json() == json!([]));
    }
}

#[tokio::test(start_paused = true)]
async fn the_exact_crus_422_body() {
    let server = TestServer::new();
    let mut body = session_body("compute", 2);
    body.as_object_mut().unwrap().remove("upgrading_label");
    let response = server.post_json("/session", &body).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        std::str::from_utf8(&response.body).unwrap(),
        r#"{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"Input data was understood, but failed validation. Re-run request with valid input values for the fields indicated in the response.","errors":{"upgrading_label":["Missing data for required field."]}}"#
    );
}

#[tokio::test(start_paused = true)]
async fn site_problems_are_422_by_field() {
    for prefix in PREFIXES {
        let server = TestServer::new();
        server.make_group("empty", &[]).await;
        let mut same_labels = session_body("compute", 2);
        same_labels["upgrading_label"] = json!("compute");
        let mut unknown_template = session_body("compute", 2);
        unknown_template["upgrade_template_id"] = json!("no-such-image");
        for (body, field) in [
            (same_labels, "upgrading_label"),
            (session_body("no-such-group", 2), "starting_label"),
            (session_body("empty", 2), "starting_label"),
            (unknown_template, "upgrade_template_id"),
        ] {
            let response = server.post_json(&session_path(prefix), &body).await;
            let problem = response.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem["detail"], VALIDATION_DETAIL);
            assert!(problem["errors"][field].is_array(), "{field}: {problem}");
        }
        assert_eq!(server.get(&session_path(prefix)).await.json(), json!([]));
    }
}

#[tokio::test(start_paused = true)]
async fn overlapping_sessions_are_409_naming_the_other() {
    for prefix in PREFIXES {
        let server = TestServer::new();
        let nodes = server.sim.node_ids();
        server.make_group("some", &nodes[..2]).await;
        let first = server
            .post_json(&session_path(prefix), &session_body("compute", 2))
            .await;
        assert_eq!(first.status, StatusCode::CREATED);
        let first_id = first.json()["upgrade_id"].as_str().unwrap().to_string();
        for starting in ["compute", "some"] {
            let response = server
                .post_json(&session_path(prefix), &session_body(starting, 2))
                .await;
            let problem = response.problem(StatusCode::CONFLICT);
            assert!(
                problem["detail"].as_str().unwrap().contains(&first_id),
                "{problem}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn list_is_every_session_newest_first() {
    let server = TestServer::new();
    let nodes = server.sim.node_ids();
    let mut ids = Vec::new();
    for (index, chunk) in nodes.chunks(2).enumerate() {
        let label = format!("part-{index}");
        server.make_group(&label, chunk).await;
        let created = server.post_json("/session", &session_body(&label, 1)).await;
        assert_eq!(created.status, StatusCode::CREATED);
        ids.push(created.json()["upgrade_id"].clone());
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    ids.reverse();
    for prefix in PREFIXES {
        let response = server.get(&session_path(prefix)).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.content_type(), "application/json");
        let listed: Vec<Value> = response.json().as_array().unwrap().clone();
        let listed_ids: Vec<Value> = listed.iter().map(|s| s["upgrade_id"].clone()).collect();
        assert_eq!(listed_ids, ids);
        assert!(listed.iter().all(|s| s["kind"] == "ComputeUpgradeSession"));
    }
}

#[tokio::test(start_paused = true)]
async fn get_returns_the_session() {
    let server = TestServer::new();
    let created = server
        .post_json("/session", &session_body("compute", 2))
        .await
        .json();
    let id = created["upgrade_id"].as_str().unwrap();
    for prefix in PREFIXES {
        let response = server.get(&format!("{prefix}/session/{id}")).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.content_type(), "application/json");
        let status = response.json();
        assert_eq!(status["upgrade_id"], created["upgrade_id"]);
        assert_eq!(status["starting_label"], "compute");
    }
}

#[tokio::test(start_paused = true)]
async fn unknown_ids_are_404_like_crus() {
    let server = TestServer::new();
    let random = Uuid::new_v4().to_string();
    for prefix in PREFIXES {
        for id in [random.as_str(), "not-a-uuid", "%FF%FE", "12345"] {
            for method in [Method::GET, Method::DELETE] {
                let response = server
                    .call(method.clone(), &format!("{prefix}/session/{id}"))
                    .await;
                let problem = response.problem(StatusCode::NOT_FOUND);
                assert_eq!(
                    problem,
                    json!({
                        "type": "about:blank",
                        "title": "Not Found",
                        "status": 404,
                        "detail": NOT_FOUND_DETAIL,
                    })
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn delete_answers_deleting_then_the_session_goes() {
    for prefix in PREFIXES {
        let server = TestServer::new();
        let created = server
            .post_json(&session_path(prefix), &session_body("compute", 2))
            .await
            .json();
        let path = format!(
            "{prefix}/session/{}",
            created["upgrade_id"].as_str().unwrap()
        );
        // Let the session take its first nodes.
        tokio::time::sleep(Duration::from_secs(30)).await;

        let response = server.delete(&path).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.content_type(), "application/json");
        let status = response.json();
        assert_eq!(status["state"], "DELETING");
        assert_eq!(status["upgrade_id"], created["upgrade_id"]);
        assert_eq!(server.get(&path).await.json()["state"], "DELETING");

        tokio::time::sleep(Duration::from_secs(3600)).await;
        server.get(&path).await.problem(StatusCode::NOT_FOUND);
        server.delete(&path).await.problem(StatusCode::NOT_FOUND);
        assert!(server.sim.drained_nodes().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn deleting_a_finished_session_removes_it_at_once() {
    let server = TestServer::new();
    let created = server
        .post_json("/session", &session_body("compute", 4))
        .await
        .json();
    let path = format!(
        "/apis/crus/session/{}",
        created["upgrade_id"].as_str().unwrap()
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(server.get(&path).await.json()["state"], "READY");

    let response = server.delete(&path).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["completed"], true);
    // As CRUS answered every DELETE, then removed the session.
    assert_eq!(response.json()["state"], "DELETING");
    server.get(&path).await.problem(StatusCode::NOT_FOUND);
    server.delete(&path).await.problem(StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn a_created_session_is_updating_in_every_answer() {
    let server = TestServer::new();
    let created = server
        .post_json("/session", &session_body("compute", 4))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["state"], "UPDATING");
    let id = created.json()["upgrade_id"].as_str().unwrap().to_string();
    let one = server.get(&format!("/session/{id}")).await.json();
    assert_eq!(one["state"], "UPDATING");
    let listed = server.get("/session").await.json();
    assert_eq!(listed[0]["state"], "UPDATING");
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_backend_is_503_with_retry_after() {
    let server = TestServer::build(Setup {
        wrap_ports: Some(Box::new(|ports| faulty_ports(&ports, 1.0, 7))),
        ..Setup::default()
    });
    for prefix in PREFIXES {
        let response = server
            .post_json(&session_path(prefix), &session_body("compute", 2))
            .await;
        response.part_problem(StatusCode::SERVICE_UNAVAILABLE, "Inventory unavailable");
        assert!(response.headers.contains_key(header::RETRY_AFTER));
    }
    let metrics = server.get("/metrics").await;
    let text = std::str::from_utf8(&metrics.body).unwrap();
    assert!(
        text.lines()
            .any(|line| line.starts_with("crus_port_calls_total{")
                && line.contains(r#"port="inventory""#)
                && line.contains(r#"outcome="unavailable""#)),
        "{text}"
    );
}

/// An inventory whose every answer is an error no retry fixes.
struct BrokenInventory;

#[async_trait]
impl Inventory for BrokenInventory {
    async fn group_members(&self, _: &str) -> crus_core::Result<Vec<NodeId>> {
        Err(Error::invalid("secret internal detail"))
    }
    async fn create_group(&self, _: &str) -> crus_core::Result<()> {
        Err(Error::invalid("secret internal detail"))
    }
    async fn add_members(&self, _: &str, _: &[NodeId]) -> crus_core::Result<()> {
        Err(Error::invalid("secret internal detail"))
    }
    async fn remove_members(&self, _: &str, _: &[NodeId]) -> crus_core::Result<()> {
        Err(Error::invalid("secret internal detail"))
    }
    async fn node_facts(&self, _: &[NodeId]) -> crus_core::Result<Vec<NodeFacts>> {
        Err(Error::invalid("secret internal detail"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_backend_is_502_without_its_details() {
    let server = TestServer::build(Setup {
        wrap_ports: Some(Box::new(|ports| Ports {
            inventory: Arc::new(BrokenInventory),
            ..ports
        })),
        ..Setup::default()
    });
    for prefix in PREFIXES {
        let response = server
            .post_json(&session_path(prefix), &session_body("compute", 2))
            .await;
        let problem = response.part_problem(StatusCode::BAD_GATEWAY, "Inventory failed");
        assert!(!problem.to_string().contains("secret"), "{problem}");
    }
}

#[tokio::test(start_paused = true)]
async fn labels_hsm_would_refuse_are_422_by_field_before_any_backend_is_asked() {
    // Any inventory: the rule is HSM's, checked before the inventory is
    // asked (this one would answer 502).
    let server = TestServer::build(Setup {
        wrap_ports: Some(Box::new(|ports| Ports {
            inventory: Arc::new(BrokenInventory),
            ..ports
        })),
        ..Setup::default()
    });
    for path in [
        "/session",
        "/session?dry_run=true",
        "/apis/crus/session?dry_run=true",
    ] {
        for field in ["starting_label", "upgrading_label", "failed_label"] {
            for bad in ["compute nodes", "grp/1", "r\u{e9}seau", "a,b"] {
                let mut body = session_body("compute", 2);
                body[field] = json!(bad);
                let response = server.post_json(path, &body).await;
                let problem = response.problem(StatusCode::UNPROCESSABLE_ENTITY);
                assert_eq!(problem["detail"], VALIDATION_DETAIL);
                let errors = problem["errors"].as_object().unwrap();
                assert_eq!(errors.keys().collect::<Vec<_>>(), [field], "{problem}");
                let message = errors[field][0].as_str().unwrap();
                assert!(message.contains("^[-a-z0-9:._]+$"), "{message}");
                assert!(message.contains("lower-cased"), "{message}");
            }
        }
    }
    assert_eq!(server.get("/session").await.json(), json!([]));
}

#[tokio::test(start_paused = true)]
async fn upper_case_labels_name_the_group_hsm_would_name() {
    let server = TestServer::new();
    let mut body = session_body("Compute", 2);
    body["upgrading_label"] = json!("CRUS-Upgrading");
    let plan = server.post_json("/session?dry_run=true", &body).await;
    assert_eq!(plan.status, StatusCode::OK, "{:?}", plan.body);
    let created = server.post_json("/session", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let status = created.json();
    assert_eq!(status["starting_label"], "compute");
    assert_eq!(status["upgrading_label"], "crus-upgrading");
}
