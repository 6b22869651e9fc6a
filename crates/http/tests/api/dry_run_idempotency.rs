//! `POST /session?dry_run=true` and the `Idempotency-Key` header.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use crus_core::store::{MemoryStore, SessionStore};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::common::{Setup, TOKEN, TestServer, session_body};

/// `POST /session` with `body` and, if given, an `Idempotency-Key`.
async fn create(
    server: &TestServer,
    body: &Value,
    key: Option<&str>,
) -> crate::common::TestResponse {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/session")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    server
        .send(
            request
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_answers_the_plan_and_touches_nothing() {
    let server = TestServer::new();
    let mut body = session_body("compute", 3);
    body["policy"] = json!({"order": "drain_cost"});
    let response = server.post_json("/session?dry_run=true", &body).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let plan = response.json();
    assert_eq!(plan["nodes"], 8, "{plan:#}");
    assert_eq!(plan["step_size"], 3, "{plan:#}");
    assert_eq!(plan["policy"]["order"], "drain_cost", "{plan:#}");
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "8 nodes in steps of 3: {plan:#}");
    let planned: usize = steps
        .iter()
        .map(|step| step["nodes"].as_array().unwrap().len())
        .sum();
    assert_eq!(planned, 8);
    assert!(
        steps
            .iter()
            .all(|step| step["done_at"].as_str() >= step["starts_at"].as_str())
    );
    assert!(
        plan["estimated_duration"]
            .as_str()
            .is_some_and(|text| !text.is_empty())
    );
    assert!(!plan["rationale"].as_array().unwrap().is_empty());

    // Nothing stored, nothing drained, nothing booted.
    assert_eq!(server.get("/session").await.json(), json!([]));
    assert_eq!(server.sim.report().boots, 0);
    assert!(server.sim.drained_nodes().is_empty());

    // `dry_run=false` is a plain creation.
    let created = server.post_json("/session?dry_run=false", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_refuses_what_a_creation_refuses() {
    let server = TestServer::new();
    let bad = server
        .post_json("/session?dry_run=true", &session_body("no-such-group", 2))
        .await;
    let problem = bad.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["errors"]["starting_label"].is_array(),
        "{problem:#}"
    );

    let malformed = server
        .post_json("/session?dry_run=maybe", &session_body("compute", 2))
        .await;
    let problem = malformed.problem(StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"].as_str().unwrap().contains("dry_run"),
        "{problem:#}"
    );

    // Overlap with an unfinished session: the same 409 as a creation.
    let first = server
        .post_json("/session", &session_body("compute", 2))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    server
        .post_json("/session?dry_run=true", &session_body("compute", 2))
        .await
        .problem(StatusCode::CONFLICT);
    assert_eq!(
        server
            .get("/session")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_repeat_with_the_same_key_and_body_returns_the_same_session() {
    let server = TestServer::new();
    let body = session_body("compute", 4);
    let first = create(&server, &body, Some("3f1c-key")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    // Same body, keys in another order: the same request.
    let reordered: Value = serde_json::from_str(&serde_json::to_string(&body).unwrap()).unwrap();
    let again = create(&server, &reordered, Some("3f1c-key")).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    assert_eq!(again.json()["upgrade_id"], first.json()["upgrade_id"]);
    assert_eq!(
        server
            .get("/session")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The same key with another body is refused, naming the header.
    let other = create(&server, &session_body("compute", 2), Some("3f1c-key")).await;
    let problem = other.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["errors"]["Idempotency-Key"].is_array(),
        "{problem:#}"
    );
    assert_eq!(
        server
            .get("/session")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Bad keys are 400 and change nothing.
    for key in ["", "has space", &"k".repeat(256)] {
        create(&server, &body, Some(key))
            .await
            .problem(StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        server
            .get("/session")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_key_each_request_is_a_new_session() {
    let server = TestServer::new();
    let mut first_group = Vec::new();
    let mut second_group = Vec::new();
    for (index, node) in server.sim.node_ids().into_iter().enumerate() {
        if index % 2 == 0 {
            first_group.push(node);
        } else {
            second_group.push(node);
        }
    }
    server.make_group("even", &first_group).await;
    server.make_group("odd", &second_group).await;
    assert_eq!(
        create(&server, &session_body("even", 2), None).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        create(&server, &session_body("odd", 2), None).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        server
            .get("/session")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn the_key_is_kept_with_the_session_across_a_restart() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let body = session_body("compute", 4);
    let first_id = {
        let server = TestServer::build(Setup {
            store: Some(store.clone()),
            ..Setup::default()
        });
        let first = create(&server, &body, Some("restart-key")).await;
        assert_eq!(first.status, StatusCode::CREATED);
        first.json()["upgrade_id"].clone()
    };
    // A new server (and controller) over the same store.
    let server = TestServer::build(Setup {
        store: Some(store),
        ..Setup::default()
    });
    let again = create(&server, &body, Some("restart-key")).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    assert_eq!(again.json()["upgrade_id"], first_id);
    let records = server.get("/session").await.json();
    assert_eq!(records.as_array().unwrap().len(), 1, "{records:#}");
}
