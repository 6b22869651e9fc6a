//! Site hooks on the real `crus serve --sim` binary: a command hook that
//! writes what it was given runs once for every node (and once per step),
//! only where `[hooks] allow_commands = true`; an HTTP hook posts each
//! node's body to the site's URL, and each run reaches the webhooks (as
//! `hook` events) and `/metrics`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::*;

const TOKEN: &str = "hooks-token-0123456789";

/// `crus serve --sim` with 4 nodes and `config` as its crus.toml.
fn serve(dir: &Path, config: &str) -> Server {
    let file = dir.join("crus.toml");
    std::fs::write(&file, config).unwrap();
    Server::start(
        &[
            "--config",
            &file.display().to_string(),
            "--sim",
            "--sim-nodes",
            "4",
            "--sim-trace",
            "none",
            "--sim-speed",
            "3000",
            "--db",
            &path_in(dir, "crus.db"),
            "--token",
            TOKEN,
        ],
        &[],
    )
}

fn with_hooks(hooks: Value) -> Value {
    let mut body = session_body(2);
    body["policy"] = json!({ "hooks": hooks });
    body
}

async fn until_ready(client: &reqwest::Client, server: &Server, id: &str) -> Value {
    wait_for(
        client,
        &server.url,
        Some(TOKEN),
        id,
        Duration::from_secs(90),
        |session| session["state"] == "READY",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_hook_runs_once_per_node_with_the_node_session_and_template() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hook.log");
    let server = serve(dir.path(), "[hooks]\nallow_commands = true\n");
    let writes = |what: &str| {
        json!([
            "/bin/sh",
            "-c",
            format!("echo \"{what}\" >> '{}'", log.display())
        ])
    };
    let body = with_hooks(json!([
        {
            "at": "pre_boot",
            "command": writes("$CRUS_HOOK|${CRUS_NODE-}|$CRUS_SESSION|$CRUS_TEMPLATE"),
            "timeout": "30s"
        },
        {
            "at": "post_boot",
            "per": "step",
            "command": writes("$CRUS_HOOK|${CRUS_NODE-none}|$CRUS_SESSION|$CRUS_TEMPLATE|$CRUS_NODES"),
        }
    ]));
    let client = client();
    let id = create_session(&client, &server.url, Some(TOKEN), &body).await;
    let finished = until_ready(&client, &server, &id).await;
    assert!(said(&finished, "4 of 4 nodes upgraded"), "{finished:#}");

    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let per_node: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("pre_boot|"))
        .collect();
    let per_step: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("post_boot|"))
        .collect();
    assert_eq!(per_node.len(), 4, "{lines:?}");
    let mut nodes = BTreeSet::new();
    for line in per_node {
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields[2], id, "{line}");
        assert_eq!(fields[3], "compute-image", "{line}");
        assert!(!fields[1].is_empty(), "{line}");
        nodes.insert(fields[1].to_string());
    }
    // Every node once.
    assert_eq!(nodes.len(), 4, "{lines:?}");
    // Once per step, with the step's two nodes and no CRUS_NODE.
    assert_eq!(per_step.len(), 2, "{lines:?}");
    let mut stepped = BTreeSet::new();
    for line in per_step {
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields[1], "none", "{line}");
        assert_eq!(fields[2], id, "{line}");
        let names: Vec<&str> = fields[4].split(' ').collect();
        assert_eq!(names.len(), 2, "{line}");
        stepped.extend(names.into_iter().map(str::to_string));
    }
    assert_eq!(stepped, nodes);
    // The messages tell each hook's start and end.
    assert!(
        finished["messages"].as_array().unwrap().iter().any(|m| m
            .as_str()
            .unwrap()
            .contains("post_boot hook")
            && m.as_str().unwrap().ends_with("finished")),
        "{finished:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_hook_is_refused_where_the_site_does_not_allow_commands() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), "");
    let body = with_hooks(json!([{ "at": "pre_boot", "command": ["/bin/true"] }]));
    let response = client()
        .post(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    assert!(text.contains("policy.hooks"), "{text}");
    assert!(text.contains("allow_commands = true"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_hook_posts_each_node_s_body() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crus-hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let webhooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/events"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&webhooks)
        .await;
    let dir = tempfile::tempdir().unwrap();
    // HTTP hooks need no allow_commands, only their host allowed.
    let server = serve(
        dir.path(),
        &format!(
            "[hooks]\nallowed_http_hosts = [\"127.0.0.1\"]\n\n\
             [[webhooks]]\nurl = \"{}/events\"\nevents = [\"hook\"]\n",
            webhooks.uri()
        ),
    );
    let body = with_hooks(json!([{
        "at": "post_boot",
        "http": { "url": format!("{}/crus-hook", receiver.uri()) },
        "timeout": "10s"
    }]));
    let client = client();
    let id = create_session(&client, &server.url, Some(TOKEN), &body).await;
    let finished = until_ready(&client, &server, &id).await;
    assert!(said(&finished, "4 of 4 nodes upgraded"), "{finished:#}");

    let bodies: Vec<Value> = receiver
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| serde_json::from_slice(&request.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 4, "{bodies:#?}");
    let mut nodes = BTreeSet::new();
    for body in &bodies {
        assert_eq!(body["hook"], "post_boot");
        assert_eq!(body["per"], "node");
        assert_eq!(body["session"], id.as_str());
        assert_eq!(body["template"], "compute-image");
        assert_eq!(body["nodes"], json!([body["node"].clone()]));
        nodes.insert(body["node"].as_str().unwrap().to_string());
    }
    assert_eq!(nodes.len(), 4, "{bodies:#?}");

    // Each run reached the webhook as it started and as it finished.
    let mut events: Vec<Value> = Vec::new();
    for _ in 0..100 {
        events = webhooks
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|request| serde_json::from_slice(&request.body).unwrap())
            .collect();
        if events.len() >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(events.len(), 8, "{events:#?}");
    for state in ["running", "finished"] {
        let told: BTreeSet<&str> = events
            .iter()
            .filter(|event| event["state"] == state)
            .map(|event| {
                assert_eq!(event["type"], "hook", "{event:#}");
                assert_eq!(event["point"], "post_boot", "{event:#}");
                assert_eq!(event["upgrade_id"], id.as_str(), "{event:#}");
                event["nodes"][0].as_str().unwrap()
            })
            .collect();
        assert_eq!(told.len(), 4, "{state}: {events:#?}");
    }
    // And /metrics counts the runs by point and outcome.
    let metrics = get_text(&client, &server.url, "/metrics", Some(TOKEN)).await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("crus_port_calls_total{")
                && line.contains("port=\"hook_runner\"")
                && line.contains("operation=\"post_boot\"")
                && line.contains("outcome=\"ok\"")
                && line.ends_with(" 4")),
        "{metrics}"
    );
}
