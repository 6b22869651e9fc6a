//! `crus serve` with the inventory, power and boots all `cyclecloud`, as a
//! real process, on a fake CycleCloud (wiremock keeping its nodes and node
//! operations; each operation takes a couple of listings): the node array
//! is the session's group, each step is a reimage of the step's nodes only
//! (under request ids derived from the step) that leaves every node on a
//! fresh VM from the array's current image: the `Fixed` nodes terminated,
//! then started, the others removed, then created again under their names,
//! none deallocated (the fake keeps a deallocated node's old disk, as
//! CycleCloud does); the password comes from the environment variable the
//! config names, and the groups crus creates are kept in the file beside
//! the session database.
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
/// The image every node's OS disk came from before the session.
const OLD_IMAGE: &str = "almalinux-8-hpc-2024";
/// The nodes of the array kept in the cluster when terminated.
const FIXED_NODES: [&str; 2] = ["hpc-1", "hpc-2"];
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
    fixed: bool,
    /// The image its OS disk came from; `None` once terminated.
    image: Option<String>,
    /// Leaves the cluster once terminated (`remove`, or not `Fixed`).
    removing: bool,
}

impl FakeNode {
    fn record(&self) -> Value {
        let status = match self.state.as_str() {
            "Started" => "Ready",
            "Deallocated" => "Off",
            moving => moving,
        };
        json!({"Name": self.name, "Template": self.array, "State": self.state,
               "TargetState": self.target, "Status": status, "Fixed": self.fixed})
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
            fixed: FIXED_NODES.contains(&name),
            image: Some(OLD_IMAGE.into()),
            removing: false,
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
                match node.state.as_str() {
                    // A terminated VM's disk is gone; the next VM's comes
                    // from the array's image (all arrays here boot IMAGE or
                    // are left alone).
                    "Terminated" => node.image = None,
                    "Started" if node.image.is_none() => node.image = Some(IMAGE.into()),
                    _ => {}
                }
            }
        }
        self.nodes
            .retain(|node| !(node.state == "Terminated" && (node.removing || !node.fixed)));
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
            "deallocate" => ("Deallocated", "Deallocating"),
            _ => ("Terminated", "Terminating"),
        };
        for node in self
            .nodes
            .iter_mut()
            .filter(|node| names.contains(&node.name))
        {
            node.target = target.into();
            node.removing |= action == "remove";
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

    /// `POST .../nodes/create`: one new node per set, named by its
    /// `nameFormat`, started from its array's image.
    fn create(&mut self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let request_id = body["requestId"].as_str().unwrap().to_string();
        if self.operations.contains_key(&request_id) {
            return ResponseTemplate::new(409);
        }
        let mut names = Vec::new();
        let mut results = Vec::new();
        for set in body["sets"].as_array().unwrap() {
            let name = set["nameFormat"].as_str().unwrap().to_string();
            assert_eq!(set["count"], 1, "{set}");
            if self.nodes.iter().any(|node| node.name == name) {
                results.push(json!({"added": 0, "message": "the name is taken"}));
                continue;
            }
            results.push(json!({"added": 1}));
            self.nodes.push(FakeNode {
                name: name.clone(),
                array: set["nodearray"].as_str().unwrap().into(),
                state: "Acquiring".into(),
                target: "Started".into(),
                pending: LISTINGS_PER_OPERATION,
                fixed: false,
                image: None,
                removing: false,
            });
            names.push(name);
        }
        self.operations
            .insert(request_id.clone(), ("create".into(), names.clone()));
        self.posts.push(("create".into(), names));
        ResponseTemplate::new(202)
            .set_body_json(json!({"operationId": request_id, "sets": results}))
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
                    action @ ("start" | "deallocate" | "shutdown" | "terminate" | "remove"),
                ],
            ) => state.manage(request, action),
            ("POST", ["clusters", _, "nodes", "create"]) => state.create(request),
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

    // Each node of the array reimaged once: a `Fixed` one terminated, then
    // started; the other removed, then created again; none deallocated,
    // the other array never touched.
    let posts = fake.0.lock().unwrap().posts.clone();
    let touching = |node: &str| -> Vec<&str> {
        posts
            .iter()
            .filter(|(_, nodes)| nodes.iter().any(|name| name == node))
            .map(|(action, _)| action.as_str())
            .collect()
    };
    for node in ARRAY_NODES {
        let expected = if FIXED_NODES.contains(&node) {
            ["terminate", "start"]
        } else {
            ["remove", "create"]
        };
        assert_eq!(touching(node), expected, "{node}: {posts:?}");
    }
    assert!(touching(OTHER_NODE).is_empty(), "{posts:?}");
    let nodes: Vec<(String, String, String, Option<String>)> = fake
        .0
        .lock()
        .unwrap()
        .nodes
        .iter()
        .map(|node| {
            let at = (node.name.clone(), node.array.clone());
            (at.0, at.1, node.state.clone(), node.image.clone())
        })
        .collect();
    assert_eq!(nodes.len(), ARRAY_NODES.len() + 1, "{nodes:?}");
    for (name, array, state, image) in &nodes {
        assert_eq!(state, "Started", "{nodes:?}");
        let expected = if name == OTHER_NODE { OLD_IMAGE } else { IMAGE };
        assert_eq!(image.as_deref(), Some(expected), "{name}: {nodes:?}");
        assert_eq!(array, if name == OTHER_NODE { "htc" } else { "hpc" });
    }

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
