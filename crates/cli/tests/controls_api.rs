//! crus's rollout controls on the real `crus serve --sim` binary: a session
//! created with a policy, its live events over SSE (with `Last-Event-ID`), and
//! pause, resume, nodes and watch through the `crus session` client.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::*;

const TOKEN: &str = "controls-token-0123456789";

/// Longest any one test waits for the server.
const LIMIT: Duration = Duration::from_secs(60);

fn start(dir: &tempfile::TempDir) -> Server {
    Server::start(
        &[
            "--sim",
            "--sim-nodes",
            "8",
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
    )
}

/// `crus session ARGS` against `server`: (success, stdout, stderr).
fn crus_session(server: &Server, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_crus"))
        .arg("session")
        .args(args)
        .env("CRUS_URL", &server.url)
        .env("CRUS_TOKEN", TOKEN)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One message of an event stream.
#[derive(Debug, Clone)]
struct Message {
    id: Option<u64>,
    event: String,
    data: Value,
}

/// An open event stream, read as it arrives.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(server: &Server, path: &str, last_event_id: Option<u64>) -> EventStream {
        // No whole-request timeout: the stream is meant to last; LIMIT bounds the reads.
        let http = reqwest::Client::new();
        let mut request = http.get(format!("{}{path}", server.url)).bearer_auth(TOKEN);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next message, `None` at the end of the stream.
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message {
                    id: None,
                    event: String::new(),
                    data: Value::Null,
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id:") {
                        message.id = Some(id.trim().parse().unwrap());
                        any = true;
                    } else if let Some(event) = line.strip_prefix("event:") {
                        message.event = event.trim().to_string();
                        any = true;
                    } else if let Some(data) = line.strip_prefix("data:") {
                        message.data = serde_json::from_str(data.trim()).unwrap();
                        any = true;
                    }
                }
                if any {
                    return Some(message);
                }
                continue;
            }
            let chunk = tokio::time::timeout(LIMIT, self.response.chunk())
                .await
                .expect("the stream sends something in time")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Messages up to and including the first for which `until` holds.
    async fn read_until(&mut self, until: impl Fn(&Message) -> bool) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Some(message) = self.next().await {
            let done = until(&message);
            messages.push(message);
            if done {
                return messages;
            }
        }
        panic!("the stream ended first: {messages:#?}");
    }
}

fn ids(messages: &[Message]) -> Vec<u64> {
    messages.iter().filter_map(|message| message.id).collect()
}

#[tokio::test]
async fn a_canary_session_streams_its_events_and_resumes_from_the_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir);
    let http = client();
    // Subscribed before the session exists: nothing it does is missed.
    let mut all = EventStream::open(&server, "/events", None).await;

    let mut body = session_body(2);
    body["policy"] = json!({"canary": {"size": 2}, "max_failures": 1});
    let created = http
        .post(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = created["upgrade_id"].as_str().unwrap().to_string();
    assert_eq!(created["policy"]["canary"]["size"], 2, "{created:#}");
    assert_eq!(created["policy"]["max_failures"], 1, "{created:#}");

    // The canary: two nodes, then the session pauses itself.
    let canary = all.read_until(|message| message.event == "paused").await;
    let kinds: Vec<&str> = canary
        .iter()
        .map(|message| message.event.as_str())
        .collect();
    assert!(kinds.contains(&"step_started"), "{kinds:?}");
    assert!(kinds.contains(&"node_phase"), "{kinds:?}");
    let canary_ids = ids(&canary);
    assert_eq!(canary_ids.len(), canary.len(), "every event has an id");
    assert!(
        canary_ids.windows(2).all(|pair| pair[0] < pair[1]),
        "{canary_ids:?}"
    );
    for message in &canary {
        assert_eq!(message.data["upgrade_id"], id.as_str());
        assert_eq!(message.data["type"], message.event.as_str());
    }
    let started = canary
        .iter()
        .find(|message| message.event == "step_started")
        .unwrap();
    assert_eq!(started.data["nodes"].as_array().unwrap().len(), 2);

    // Reconnecting after an event replays only the later ones.
    let middle = canary_ids[canary_ids.len() / 2];
    let paused_id = *canary_ids.last().unwrap();
    let mut session =
        EventStream::open(&server, &format!("/session/{id}/events"), Some(middle)).await;
    let replayed = session
        .read_until(|message| message.id == Some(paused_id))
        .await;
    assert_eq!(
        ids(&replayed),
        canary_ids
            .iter()
            .copied()
            .filter(|event| *event > middle)
            .collect::<Vec<_>>()
    );
    assert!(replayed.iter().all(|message| message.event != "gap"));

    // The session waits; an operator resumes it, and the same stream tells the rest.
    let status = wait_for(&http, &server.url, Some(TOKEN), &id, LIMIT, |s| {
        s["phase"] == "paused"
    })
    .await;
    assert_eq!(status["nodes"]["done"], 2, "{status:#}");
    let (ok, stdout, stderr) = crus_session(&server, &["resume", &id, "--format", "json"]);
    assert!(ok, "{stderr}");
    let resumed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(resumed["phase"], "running", "{resumed:#}");

    let rest = session
        .read_until(|message| message.event == "state" && message.data["state"] == "READY")
        .await;
    assert!(ids(&rest).iter().all(|event| *event > paused_id));
    assert!(rest.iter().any(|message| message.event == "resumed"));
    // After READY the session's stream ends.
    assert!(session.next().await.is_none());
}

#[tokio::test]
async fn the_cli_creates_with_a_policy_pauses_resumes_lists_nodes_and_watches() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir);
    let (ok, stdout, stderr) = crus_session(
        &server,
        &[
            "create",
            "--starting-label",
            "compute",
            "--upgrading-label",
            "crus-upgrading",
            "--failed-label",
            "crus-failed",
            "--upgrade-template-id",
            "compute-image",
            "--step-percent",
            "25",
            "--canary",
            "1",
            "--max-failures",
            "10%",
            "--order",
            "drain-cost",
            "--retries",
            "1",
            "--window",
            "00:00-00:00 UTC",
            "--format",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    let id = created["upgrade_id"].as_str().unwrap().to_string();
    assert_eq!(created["upgrade_step_size"], 2, "{created:#}");
    let policy = &created["policy"];
    assert_eq!(
        policy["canary"],
        json!({"size": 1, "pause_after": true}),
        "{policy:#}"
    );
    assert_eq!(policy["max_failures"], "10%", "{policy:#}");
    assert_eq!(policy["order"], "drain_cost", "{policy:#}");
    assert_eq!(policy["retries"], 1, "{policy:#}");
    assert_eq!(policy["windows"][0]["time_zone"], "UTC", "{policy:#}");

    // After the canary the session pauses itself; pausing again is no error.
    let http = client();
    wait_for(&http, &server.url, Some(TOKEN), &id, LIMIT, |s| {
        s["phase"] == "paused"
    })
    .await;
    let (ok, stdout, stderr) = crus_session(&server, &["pause", &id]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("phase                  paused"), "{stdout}");

    let (ok, stdout, stderr) = crus_session(&server, &["nodes", &id, "--format", "json"]);
    assert!(ok, "{stderr}");
    let nodes: Value = serde_json::from_str(&stdout).unwrap();
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 8);
    assert_eq!(
        nodes.iter().filter(|node| node["phase"] == "done").count(),
        1
    );
    let (ok, table, stderr) = crus_session(&server, &["nodes", &id]);
    assert!(ok, "{stderr}");
    assert!(table.starts_with("NODE"), "{table}");
    assert_eq!(table.lines().count(), 9, "{table}");

    let (ok, stdout, stderr) = crus_session(&server, &["resume", &id, "--max-failures", "2"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("phase                  running"),
        "{stdout}"
    );

    // watch follows the event stream until the session completes.
    let started = Instant::now();
    let (ok, stdout, stderr) = crus_session(&server, &["watch", &id]);
    assert!(ok, "{stderr}");
    assert!(started.elapsed() < LIMIT);
    assert!(stdout.contains("READY"), "{stdout}");
    assert!(stdout.contains("8 of 8 nodes upgraded"), "{stdout}");
    assert!(stderr.contains("Upgrade Session Completed"), "{stderr}");

    // Finished: a pause is refused with the server's reason.
    let (ok, _, stderr) = crus_session(&server, &["pause", &id]);
    assert!(!ok);
    assert!(stderr.contains("Conflict"), "{stderr}");
    let (ok, _, stderr) = crus_session(&server, &["nodes", "c926acf6-b5c6-411e-ba6c-ea0448cab2ee"]);
    assert!(!ok);
    assert!(stderr.contains("Not Found"), "{stderr}");
}
