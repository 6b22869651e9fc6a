//! Webhooks on the real `crus serve --sim` binary: a session's events reach a
//! receiving server, signed, filtered as configured, and a receiver that
//! refuses everything delays nothing and is counted in `/metrics`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::*;

const TOKEN: &str = "webhook-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_s_events_reach_the_webhooks_signed_and_filtered() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/events"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/refuses"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&receiver)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("webhook.secret");
    std::fs::write(&secret_file, "hook-secret\n").unwrap();
    let config = dir.path().join("crus.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[webhooks]]
url = "{uri}/events"
events = ["state", "step_finished"]
secret_file = "{secret}"

[[webhooks]]
url = "{uri}/refuses"
max_attempts = 1
"#,
            uri = receiver.uri(),
            secret = secret_file.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        &[
            "--config",
            &config.display().to_string(),
            "--sim",
            "--sim-nodes",
            "4",
            "--sim-trace",
            "none",
            "--sim-speed",
            "3000",
            "--db",
            &path_in(dir.path(), "crus.db"),
            "--token",
            TOKEN,
        ],
        &[],
    );
    let client = client();
    let id = create_session(&client, &server.url, Some(TOKEN), &session_body(2)).await;
    wait_for(
        &client,
        &server.url,
        Some(TOKEN),
        &id,
        Duration::from_secs(60),
        |session| session["state"] == "READY",
    )
    .await;

    // Delivery is asynchronous: wait for the READY event to arrive.
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered = loop {
        let requests = receiver.received_requests().await.unwrap();
        let to_events: Vec<_> = requests
            .into_iter()
            .filter(|request| request.url.path() == "/events")
            .collect();
        let ready = to_events.iter().any(|request| {
            serde_json::from_slice::<Value>(&request.body).unwrap()["state"] == "READY"
        });
        if ready {
            break to_events;
        }
        assert!(Instant::now() < deadline, "the READY event never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut types = Vec::new();
    for request in &delivered {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["upgrade_id"], id.as_str());
        let kind = body["type"].as_str().unwrap().to_string();
        assert_eq!(
            request
                .headers
                .get("x-crus-event")
                .unwrap()
                .to_str()
                .unwrap(),
            kind
        );
        let signature = request.headers.get("x-crus-signature-256").unwrap();
        assert_eq!(
            signature.to_str().unwrap(),
            crus_backends::webhooks::sign("hook-secret", &request.body)
        );
        types.push(kind);
    }
    assert!(
        types
            .iter()
            .all(|kind| kind == "state" || kind == "step_finished"),
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|kind| *kind == "step_finished").count(),
        2,
        "{types:?}"
    );

    // The refusing hook was sent every event, unsigned, and counted as failed.
    let metrics = get_text(&client, &server.url, "/metrics", Some(TOKEN)).await;
    let delivered_line = format!(
        "crus_webhook_events_total{{url=\"{}/events\",outcome=\"delivered\"}}",
        receiver.uri()
    );
    assert!(metrics.contains(&delivered_line), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "crus_webhook_events_total{{url=\"{}/refuses\",outcome=\"failed\"}}",
            receiver.uri()
        )),
        "{metrics}"
    );
}

#[test]
fn a_bad_webhook_stops_the_server_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("crus.toml");
    std::fs::write(
        &config,
        "[[webhooks]]\nurl = \"http://127.0.0.1:9/\"\nevents = [\"nope\"]\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crus"))
        .args([
            "serve",
            "--sim",
            "--no-auth",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .arg("--db")
        .arg(dir.path().join("crus.db"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("webhooks[0]"), "{stderr}");
    assert!(stderr.contains("unknown event \"nope\""), "{stderr}");
}
