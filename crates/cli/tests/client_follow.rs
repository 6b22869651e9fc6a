//! `crus::client::Client::follow` against a mock CRUS server: a server
//! without event streams (404 on `/events`) is polled until the session
//! completes, and a stream's events come typed until the session is deleted.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crus::client::{Client, Update};
use crus_core::rollout::EventKind;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ID: &str = "c926acf6-b5c6-411e-ba6c-ea0448cab2ee";

/// A session as a CRUS server answers it.
fn session(completed: bool) -> Value {
    json!({
        "api_version": "0.1.0", "completed": completed, "failed_label": "f",
        "kind": "ComputeUpgradeSession", "messages": [], "starting_label": "compute",
        "state": if completed { "READY" } else { "UPDATING" },
        "upgrade_id": ID, "upgrade_step_size": 4, "upgrade_template_id": "img",
        "upgrading_label": "u", "workload_manager_type": "slurm"
    })
}

/// Every update until following ends, the sessions as whether they completed.
async fn follow_all(client: &Client) -> Vec<String> {
    let mut follow = client.follow(ID, Duration::from_millis(10));
    let mut seen = Vec::new();
    while let Some(update) = follow.next().await.unwrap() {
        seen.push(match update {
            Update::Session(answer) => format!("session completed={}", answer.value.completed),
            Update::Event(event) => match event.kind {
                EventKind::Message { text } => format!("message {text}"),
                other => format!("event {}", other.name()),
            },
            Update::Removed => "removed".to_string(),
        });
    }
    seen
}

#[tokio::test]
async fn a_server_without_event_streams_is_polled_until_the_session_completes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/session/{ID}/events")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"status": 404})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/session/{ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(session(false)))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/session/{ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(session(true)))
        .mount(&server)
        .await;
    let client = Client::new(&server.uri(), None, Duration::from_secs(5)).unwrap();
    assert_eq!(
        follow_all(&client).await,
        [
            "session completed=false",
            "session completed=false",
            "session completed=true"
        ]
    );
}

#[tokio::test]
async fn a_streams_events_come_typed_until_the_session_is_deleted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/session/{ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(session(false)))
        .mount(&server)
        .await;
    let message = json!({
        "upgrade_id": ID, "at": "2026-11-23T18:40:00.000Z", "type": "message", "text": "Step 0 started"
    });
    let stream = format!(
        ": keep-alive\n\nid: 1\nevent: message\ndata: {message}\n\n\
         event: deleted\ndata: {{\"upgrade_id\": \"{ID}\"}}\n\n"
    );
    Mock::given(method("GET"))
        .and(path(format!("/session/{ID}/events")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(stream),
        )
        .mount(&server)
        .await;
    let client = Client::new(&server.uri(), None, Duration::from_secs(5)).unwrap();
    assert_eq!(
        follow_all(&client).await,
        [
            "session completed=false",
            "message Step 0 started",
            "removed"
        ]
    );
}
