//! `crus serve` with the inventory, power and boots all `cyclecloud`, as a
//! real process, on a fake CycleCloud (wiremock keeping its nodes and node
//! operations; each operation takes a couple of listings): the node array
//! is the session's group, each step is a reimage (deallocate, then start,
//! under request ids derived from the step) of the step's nodes only, the
//! password comes from the environment variable the config names, and the
//! groups crus creates are kept in the file beside the session database.
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod site_backends;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{any, basic_auth};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use common::Server;
use site_backends::{assert_no_members, session_body, start_failure, upgrade_all};

const CLUSTER: &str = "hpc";
const PASSWORD: &str = "cc-password";
const IMAGE: &str = "almalinux-8-hpc-2025";
/// The node array upgraded, and one that must be left alone.
const ARRAY_NODES: [&str; 3] = ["hpc-1", "hpc-2", "hpc-3"];
const OTHER_NODE: &str = "htc-1";
/// Listings a node operation takes to bring a node to its target.
const LISTINGS_PER_OPERATION: u32 = 2;

struct FakeNode {
    name: String,
    array: String,
    state: String,
    target: String,
    pending: u32,
}

impl FakeNode {
    fn record(&self) -> Value {
        let status = match self.state.as_str() {
            "Started" => "Ready",
            "Deallocated" => "Off",
            moving => moving,
        };
        json!({"Name": self.name, "Template": self.array, "State": self.state,
               "TargetState": self.target, "Status": status})
    }
}

#[derive(Default)]
struct FakeState {
    nodes: Vec<FakeNode>,
    /// By request id: the action and its nodes.
    operations: HashMap<String, (String, Vec<String>)>,
    /// Every accepted POST, in order: the action and its nodes.
    posts: Vec<(String, Vec<String>)>,
}

/// A CycleCloud of cluster [`CLUSTER`] with the arrays `hpc` and `htc`, all on.
#[derive(Clone)]
struct FakeCycleCloud(Arc<Mutex<FakeState>>);

impl FakeCycleCloud {
    fn new() -> Self {
        let node = |name: &str, array: &str| FakeNode {
            name: name.into(),
            array: array.into(),
            state: "Started".into(),
            target: "Started".into(),
            pending: 0,
        };
        let mut nodes: Vec<FakeNode> = ARRAY_NODES.iter().map(|name| node(name, "hpc")).collect();
        nodes.push(node(OTHER_NODE, "htc"));
        FakeCycleCloud(Arc::new(Mutex::new(FakeState {
            nodes,
            ..FakeState::default()
        })))
    }
}

impl FakeState {
    /// Each listing moves every moving node one listing closer to its target.
    fn listing(&mut self, request: &Request) -> ResponseTemplate {
        for node in self.nodes.iter_mut().filter(|node| node.pending > 0) {
            node.pending -= 1;
            if node.pending == 0 {
                node.state = node.target.clone();
            }
        }
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let Some(request_id) = query.get("request_id").or(query.get("operation")) else {
            let nodes: Vec<Value> = self.nodes.iter().map(FakeNode::record).collect();
            return ResponseTemplate::new(200).set_body_json(json!({ "nodes": nodes }));
        };
        let Some((action, names)) = self.operations.get(request_id) else {
            return ResponseTemplate::new(404);
        };
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .filter(|node| names.contains(&node.name))
            .map(FakeNode::record)
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "nodes": nodes,
            "operation": {"action": action, "startTime": "2026-12-03T12:34:56Z"},
        }))
    }

    fn manage(&mut self, request: &Request, action: &str) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let request_id = body["requestId"].as_str().unwrap().to_string();
        let names: Vec<String> = serde_json::from_value(body["names"].clone()).unwrap();
        if self.operations.contains_key(&request_id) {
            // What CycleCloud answers for a request id it has seen.
            return ResponseTemplate::new(409);
        }
        let (target, moving) = match action {
            "start" => ("Started", "Acquiring"),
            _ => ("Deallocated", "Deallocating"),
        };
        for node in self
            .nodes
            .iter_mut()
            .filter(|node| names.contains(&node.name))
        {
            node.target = target.into();
            if node.state != target {
                node.state = moving.into();
                node.pending = LISTINGS_PER_OPERATION;
            }
        }
        let results: Vec<Value> = names
            .iter()
            .map(|name| json!({"id": name, "name": name, "status": "OK"}))
            .collect();
        self.operations
            .insert(request_id.clone(), (action.to_string(), names.clone()));
        self.posts.push((action.to_string(), names));
        let location = format!(
            "{}://{}/operations/{request_id}",
            request.url.scheme(),
            request.url.authority()
        );
        ResponseTemplate::new(202)
            .insert_header("Location", location.as_str())
            .set_body_json(json!({"operationId": request_id, "nodes": results}))
    }
}

impl Respond for FakeCycleCloud {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.0.lock().unwrap();
        let path = request.url.path().to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            (_, ["clusters", cluster, ..]) if *cluster != CLUSTER => ResponseTemplate::new(404),
            ("GET", ["clusters", _, "nodes"]) => state.listing(request),
            ("GET", ["clusters", _, "status"]) => ResponseTemplate::new(200).set_body_json(json!({
                "state": "Started", "targetState": "Started",
                "nodearrays": [
                    {"name": "hpc", "nodearray": {"Name": "hpc", "ImageName": IMAGE}},
                    {"name": "htc", "nodearray": {"Name": "htc", "ImageName": "ubuntu-22.04-htc"}},
                ],
            })),
            (
                "POST",
                [
                    "clusters",
                    _,
                    "nodes",
                    action @ ("start" | "deallocate" | "shutdown"),
                ],
            ) => state.manage(request, action),
            _ => ResponseTemplate::new(400),
        }
    }
}

/// A config of every port but the workload manager on CycleCloud at
/// `base_url`, the password from `password`, the groups file left to default.
fn write_config(dir: &Path, base_url: &str, password: &str) -> std::path::PathBuf {
    let config = format!(
        "[server]\ndb = \"{db}\"\n\n[rollout]\npoll_interval = \"200ms\"\n\n\
         [backends]\ninventory = \"cyclecloud\"\nworkload_manager = \"none\"\n\
         boot = \"cyclecloud\"\npower = \"cyclecloud\"\n\n\
         [cyclecloud]\nbase_url = \"{base_url}\"\ncluster = \"{CLUSTER}\"\nusername = \"crus\"\n\
         {password}\ntimeout = \"5s\"\nretries = 1\n\
         poll_interval = \"100ms\"\npoll_timeout = \"10s\"\n",
        db = dir.join("crus.db").display(),
    );
    let path = dir.join("crus.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reimages_each_step_of_the_node_array_through_cyclecloud() {
    let cyclecloud = MockServer::start().await;
    let fake = FakeCycleCloud::new();
    Mock::given(basic_auth("crus", PASSWORD))
        .respond_with(fake.clone())
        .mount(&cyclecloud)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401))
        .with_priority(10)
        .mount(&cyclecloud)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &cyclecloud.uri(),
        "password_env = \"CRUS_TEST_CYCLECLOUD_PASSWORD\"",
    );
    let server = Server::start(
        &["--config", &config.display().to_string(), "--no-auth"],
        &[("CRUS_TEST_CYCLECLOUD_PASSWORD", PASSWORD)],
    );

    // Accepted only because backends.power gives the server a power control.
    let escalating = json!({"policy": {"escalate_power_cycle": true}});
    let body = session_body("hpc", IMAGE, 2, escalating);
    upgrade_all(&server.url, &body, ARRAY_NODES.len()).await;

    // Per step: its nodes deallocated, then the same nodes started; every
    // node of the array reimaged once, the other array never touched.
    let posts = fake.0.lock().unwrap().posts.clone();
    assert_eq!(posts.len(), 4, "two steps, two operations each: {posts:?}");
    let mut reimaged = Vec::new();
    for step in posts.chunks(2) {
        let [(first, deallocated), (second, started)] = step else {
            unreachable!("chunks of two");
        };
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("deallocate", "start"),
            "{posts:?}"
        );
        assert_eq!(deallocated, started, "{posts:?}");
        reimaged.extend(started.iter().cloned());
    }
    reimaged.sort();
    assert_eq!(reimaged, ARRAY_NODES);
    let states: Vec<(String, String)> = fake
        .0
        .lock()
        .unwrap()
        .nodes
        .iter()
        .map(|node| (node.name.clone(), node.state.clone()))
        .collect();
    assert!(
        states.iter().all(|(_, state)| state == "Started"),
        "{states:?}"
    );

    // The groups crus created live in the default file beside the database.
    let groups: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("cyclecloud-groups.json")).unwrap(),
    )
    .unwrap();
    let upgrading = &groups["groups"]["crus-upgrading"];
    assert!(upgrading.is_array(), "{groups:#}");
    assert_no_members(&groups, "crus-failed");
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn an_unreadable_password_file_stops_the_server_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "http://127.0.0.1:9",
        "password_file = \"/nonexistent/cyclecloud-password\"",
    );
    let stderr = start_failure(&config, &[]);
    assert!(
        stderr.contains("cyclecloud.password_file")
            && stderr.contains("/nonexistent/cyclecloud-password"),
        "{stderr}"
    );
}
