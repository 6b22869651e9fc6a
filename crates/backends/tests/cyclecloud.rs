//! The CycleCloud backends against a stateful mock of the CycleCloud REST
//! API, answering with the request and response shapes and the status codes
//! the API documents: node listings (all nodes, or one operation's by
//! `operation` or `request_id`), the cluster status with its node arrays,
//! `start`/`shutdown`/`deallocate`/`terminate`/`remove` answered 202 with a
//! `Location` and a `NodeManagementResult`, `create` answered 202 with a
//! `NodeCreationResult`, 409 for a reused `requestId`, 404 for an unknown
//! cluster or operation. Node records use CycleCloud's node attributes
//! (`Name`, `Template`, `State`, `TargetState`, `Status`, `StatusMessage`,
//! `Fixed`).
//!
//! The mock also models the VMs' OS disks, which the API documents through
//! its operations: each node carries the image its OS disk came from.
//! `deallocate` (and `start` of a deallocated node) keeps the disk;
//! `terminate` discards it, and a node started after it, or created, gets a
//! disk from its node array's current image. A terminated node that is not
//! `Fixed` is removed from the cluster, and `remove` removes any node it
//! terminates, so such a node comes back only by `create`.
#![cfg(feature = "cyclecloud")]
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crus_backends::cyclecloud::{
    CycleCloudBootOrchestrator, CycleCloudClient, CycleCloudConfig, CycleCloudInventory,
    CycleCloudPowerControl, PasswordSource,
};
use crus_core::ports::{
    BootHandle, BootOrchestrator, BootRequest, Inventory, NodeBootState, NodeBootStatus,
    PowerControl, PowerOperation, PowerState,
};
use crus_core::testkit::{
    self, BootOrchestratorFixture, InventoryFixture, PowerControlFixture, wait_until,
};
use crus_core::{Error, NodeId};
use serde_json::{Value, json};
use wiremock::matchers::{any, basic_auth};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const CLUSTER: &str = "hpc-cluster";
const USER: &str = "crus";
const PASSWORD: &str = "s3cret-password";

/// One node of the mock cluster.
#[derive(Debug, Clone)]
struct MockNode {
    name: String,
    array: String,
    state: String,
    target: String,
    status: String,
    message: Option<String>,
    /// Listings still to answer before the node reaches `target`.
    pending: u32,
    /// Kept in the cluster when terminated.
    fixed: bool,
    /// The image its OS disk came from; `None` while it has no disk.
    image: Option<String>,
    /// Taken out of the cluster once terminated, `Fixed` or not (`remove`).
    removing: bool,
}

#[derive(Debug, Clone)]
struct MockOperation {
    action: String,
    nodes: Vec<String>,
}

/// What the mock CycleCloud holds, and the faults it is told to inject.
#[derive(Debug, Default)]
struct State {
    nodes: Vec<MockNode>,
    /// Node arrays and the image each boots.
    arrays: Vec<(String, String)>,
    by_request: HashMap<String, MockOperation>,
    /// Operation id to request id.
    by_id: HashMap<String, String>,
    /// (action, node) that CycleCloud refuses, with the error it gives.
    refuse: HashMap<(String, String), String>,
    /// Nodes whose start ends `Failed`, with the status message.
    fail_start: HashMap<String, String>,
    /// GETs still to answer 503.
    failing_gets: u32,
    /// Listings a transition takes.
    steps: u32,
    /// Every POST: (action, requestId, answered status).
    posts: Vec<(String, String, u16)>,
    gets: u32,
}

#[derive(Debug, Clone)]
struct CycleCloudMock(Arc<Mutex<State>>);

impl CycleCloudMock {
    fn new() -> Self {
        let node = |name: &str, array: &str, on: bool, fixed: bool| MockNode {
            name: name.into(),
            array: array.into(),
            state: if on { "Started" } else { "Deallocated" }.into(),
            target: if on { "Started" } else { "Deallocated" }.into(),
            status: if on { "Ready" } else { "Off" }.into(),
            message: None,
            pending: 0,
            fixed,
            image: Some(format!("{array}-image-before-the-test")),
            removing: false,
        };
        CycleCloudMock(Arc::new(Mutex::new(State {
            // hpc-1 and hpc-2 are kept in the cluster (`Fixed`); hpc-3 and
            // htc-1 came from autoscaling and go when terminated.
            nodes: vec![
                node("hpc-1", "hpc", true, true),
                node("hpc-2", "hpc", true, true),
                node("hpc-3", "hpc", true, false),
                node("htc-1", "htc", false, false),
            ],
            arrays: vec![
                ("hpc".into(), "almalinux-8-hpc-2025".into()),
                ("htc".into(), "ubuntu-22.04-htc".into()),
            ],
            steps: 2,
            ..State::default()
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    fn posts(&self) -> Vec<(String, String, u16)> {
        self.state().posts.clone()
    }

    /// The actions CycleCloud accepted (202), in order.
    fn accepted(&self) -> Vec<String> {
        self.posts()
            .into_iter()
            .filter(|(_, _, status)| *status == 202)
            .map(|(action, _, _)| action)
            .collect()
    }

    /// The nodes of each accepted operation `action`, in order.
    fn operations(&self, action: &str) -> Vec<Vec<String>> {
        let state = self.state();
        state
            .posts
            .iter()
            .filter(|(posted, _, status)| posted == action && *status == 202)
            .map(|(_, request_id, _)| state.by_request[request_id].nodes.clone())
            .collect()
    }

    /// The nodes of the accepted operation `action`, of which there is one.
    fn operation_nodes(&self, action: &str) -> Vec<String> {
        let operations = self.operations(action);
        assert_eq!(operations.len(), 1, "one {action}: {operations:?}");
        operations[0].clone()
    }

    /// The image each node's OS disk came from (`None`: no disk), by name.
    fn images(&self) -> HashMap<String, Option<String>> {
        self.state()
            .nodes
            .iter()
            .map(|node| (node.name.clone(), node.image.clone()))
            .collect()
    }

    /// Changes the image node array `array` boots, as an administrator does
    /// in CycleCloud before a rollout.
    fn set_array_image(&self, array: &str, image: &str) {
        let mut state = self.state();
        let entry = state
            .arrays
            .iter_mut()
            .find(|(name, _)| name == array)
            .unwrap();
        entry.1 = image.into();
    }

    /// Lets every transition under way finish, as time passing would.
    fn settle(&self) {
        let mut state = self.state();
        while state.nodes.iter().any(|node| node.pending > 0) {
            state.advance();
        }
    }

    async fn start() -> (MockServer, CycleCloudMock) {
        let server = MockServer::start().await;
        let mock = CycleCloudMock::new();
        Mock::given(basic_auth(USER, PASSWORD))
            .respond_with(mock.clone())
            .mount(&server)
            .await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(401))
            .with_priority(10)
            .mount(&server)
            .await;
        (server, mock)
    }
}

fn record(node: &MockNode) -> Value {
    let mut record = json!({
        "Name": node.name,
        "Template": node.array,
        "State": node.state,
        "TargetState": node.target,
        "Status": node.status,
        "Fixed": node.fixed,
        "Hostname": node.name,
        "MachineType": "Standard_HB120rs_v3",
    });
    if let Some(message) = &node.message {
        record["StatusMessage"] = json!(message);
    }
    record
}

impl State {
    /// Every listing moves each node one step towards its target.
    fn advance(&mut self) {
        let fail_start = self.fail_start.clone();
        let images: HashMap<String, String> = self.arrays.iter().cloned().collect();
        for node in &mut self.nodes {
            if node.pending == 0 {
                continue;
            }
            node.pending -= 1;
            if node.pending > 0 {
                continue;
            }
            match (node.target.as_str(), fail_start.get(&node.name)) {
                ("Started", Some(message)) => {
                    node.state = "Failed".into();
                    node.status = "Failed".into();
                    node.message = Some(message.clone());
                }
                ("Started", None) => {
                    node.state = "Started".into();
                    node.status = "Ready".into();
                    // A VM without a disk (terminated, or new) gets one
                    // from its array's current image; a deallocated one
                    // boots its old disk.
                    if node.image.is_none() {
                        node.image = images.get(&node.array).cloned();
                    }
                }
                (target, _) => {
                    node.state = target.into();
                    node.status = "Off".into();
                    if target == "Terminated" {
                        node.image = None;
                    }
                }
            }
        }
        self.nodes.retain(|node| {
            let gone = node.state == "Terminated" && (node.removing || !node.fixed);
            !gone
        });
    }

    fn listing(&mut self, request: &Request) -> ResponseTemplate {
        self.advance();
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let request_id = match (query.get("operation"), query.get("request_id")) {
            (Some(id), _) => self.by_id.get(id).cloned(),
            (None, Some(request_id)) => Some(request_id.clone()),
            (None, None) => {
                let nodes: Vec<Value> = self.nodes.iter().map(record).collect();
                return ResponseTemplate::new(200).set_body_json(json!({ "nodes": nodes }));
            }
        };
        let Some(operation) = request_id.and_then(|id| self.by_request.get(&id)) else {
            return ResponseTemplate::new(404);
        };
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .filter(|node| operation.nodes.contains(&node.name))
            .map(record)
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "nodes": nodes,
            "operation": {"action": operation.action, "startTime": "2026-12-03T12:34:56Z"},
        }))
    }

    fn manage(&mut self, request: &Request, action: &str) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let request_id = body["requestId"].as_str().unwrap_or_default().to_string();
        let names: Vec<String> = body["names"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .map(|name| name.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if !self.nodes.iter().any(|node| names.contains(&node.name)) {
            // Invalid input: no node of the request is in the cluster.
            self.posts.push((action.into(), request_id, 409));
            return ResponseTemplate::new(409);
        }
        if self.by_request.contains_key(&request_id) {
            self.posts.push((action.into(), request_id, 409));
            return ResponseTemplate::new(409);
        }
        let (target, moving) = match action {
            "start" => ("Started", "Acquiring"),
            "deallocate" => ("Deallocated", "Deallocating"),
            // shutdown (every node's ShutdownPolicy is the default,
            // Terminate), terminate and remove.
            _ => ("Terminated", "Terminating"),
        };
        let id = uuid::Uuid::new_v4().to_string();
        let mut results = Vec::new();
        let mut matched = Vec::new();
        for node in self
            .nodes
            .iter_mut()
            .filter(|node| names.contains(&node.name))
        {
            matched.push(node.name.clone());
            if let Some(error) = self.refuse.get(&(action.to_string(), node.name.clone())) {
                results.push(
                    json!({"id": node.name, "name": node.name, "status": "Error", "error": error}),
                );
                continue;
            }
            results.push(json!({"id": node.name, "name": node.name, "status": "OK"}));
            let at_goal = match action {
                "start" => node.state == "Started",
                _ => node.state == target,
            };
            node.target = target.into();
            node.removing |= action == "remove";
            if !at_goal {
                node.state = moving.into();
                node.status = moving.into();
                node.message = None;
                node.pending = self.steps;
            }
        }
        self.by_request.insert(
            request_id.clone(),
            MockOperation {
                action: action.into(),
                nodes: matched,
            },
        );
        self.by_id.insert(id.clone(), request_id.clone());
        self.posts.push((action.into(), request_id, 202));
        let location = format!(
            "{}://{}/operations/{id}",
            request.url.scheme(),
            request.url.authority()
        );
        ResponseTemplate::new(202)
            .insert_header("Location", location.as_str())
            .set_body_json(json!({"operationId": id, "nodes": results}))
    }

    /// `POST .../nodes/create`: one node per set of count 1 named by its
    /// `nameFormat`, started from its array's current image; a set whose
    /// name is taken, whose array is unknown or that the test refuses adds
    /// nothing and says why.
    fn create(&mut self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let request_id = body["requestId"].as_str().unwrap_or_default().to_string();
        let sets = body["sets"].as_array().cloned().unwrap_or_default();
        if sets.is_empty() || self.by_request.contains_key(&request_id) {
            self.posts.push(("create".into(), request_id, 409));
            return ResponseTemplate::new(409);
        }
        let mut results = Vec::new();
        let mut created = Vec::new();
        for set in &sets {
            let name = set["nameFormat"].as_str().unwrap().to_string();
            let array = set["nodearray"].as_str().unwrap().to_string();
            assert_eq!(set["count"], 1, "one node per set: {set}");
            assert!(!name.contains('%'), "an exact name: {set}");
            let refusal = if self.nodes.iter().any(|node| node.name == name) {
                Some(format!("a node named {name} exists"))
            } else if !self.arrays.iter().any(|(known, _)| *known == array) {
                Some(format!("no node array {array}"))
            } else {
                self.refuse
                    .get(&("create".to_string(), name.clone()))
                    .cloned()
            };
            if let Some(message) = refusal {
                results.push(json!({"added": 0, "message": message}));
                continue;
            }
            results.push(json!({"added": 1}));
            created.push(name.clone());
            self.nodes.push(MockNode {
                name,
                array,
                state: "Acquiring".into(),
                target: "Started".into(),
                status: "Acquiring".into(),
                message: None,
                pending: self.steps,
                fixed: false,
                image: None,
                removing: false,
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.by_request.insert(
            request_id.clone(),
            MockOperation {
                action: "create".into(),
                nodes: created,
            },
        );
        self.by_id.insert(id.clone(), request_id.clone());
        self.posts.push(("create".into(), request_id, 202));
        let location = format!(
            "{}://{}/operations/{id}",
            request.url.scheme(),
            request.url.authority()
        );
        ResponseTemplate::new(202)
            .insert_header("Location", location.as_str())
            .set_body_json(json!({"operationId": id, "sets": results}))
    }

    fn status(&self) -> ResponseTemplate {
        let arrays: Vec<Value> = self
            .arrays
            .iter()
            .map(|(name, image)| {
                json!({
                    "name": name, "maxCount": 100, "maxCoreCount": 12000, "buckets": [],
                    "nodearray": {"Name": name, "ImageName": image, "MachineType": "Standard_HB120rs_v3"},
                })
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "maxCount": 100, "maxCoreCount": 12000, "nodearrays": arrays,
            "state": "Started", "targetState": "Started",
        }))
    }
}

impl Respond for CycleCloudMock {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state();
        let method = request.method.as_str();
        if method == "GET" {
            state.gets += 1;
            if state.failing_gets > 0 {
                state.failing_gets -= 1;
                return ResponseTemplate::new(503).set_body_string("Service Unavailable");
            }
        }
        let path = request.url.path().to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["operations", id]) => match state.by_id.get(*id) {
                Some(request_id) => {
                    let action = state.by_request[request_id].action.clone();
                    ResponseTemplate::new(200).set_body_json(
                        json!({"action": action, "startTime": "2026-12-03T12:34:56Z"}),
                    )
                }
                None => ResponseTemplate::new(404),
            },
            (_, ["clusters", cluster, ..]) if *cluster != CLUSTER => ResponseTemplate::new(404),
            ("GET", ["clusters", _, "nodes"]) => state.listing(request),
            ("GET", ["clusters", _, "status"]) => state.status(),
            (
                "POST",
                [
                    "clusters",
                    _,
                    "nodes",
                    action @ ("start" | "shutdown" | "deallocate" | "terminate" | "remove"),
                ],
            ) => state.manage(request, action),
            ("POST", ["clusters", _, "nodes", "create"]) => state.create(request),
            _ => ResponseTemplate::new(400),
        }
    }
}

fn config(server: &MockServer, state_file: &Path) -> CycleCloudConfig {
    CycleCloudConfig {
        timeout: Duration::from_secs(5),
        retries: 3,
        retry_base_delay: Duration::from_millis(1),
        poll_interval: Duration::from_millis(5),
        poll_timeout: Duration::from_secs(10),
        ..CycleCloudConfig::new(
            server.uri(),
            CLUSTER,
            USER,
            PasswordSource::Static(PASSWORD.into()),
        )
        .with_state_file(state_file)
    }
}

fn client(config: CycleCloudConfig) -> Arc<CycleCloudClient> {
    Arc::new(CycleCloudClient::new(config).unwrap())
}

/// A client of `server` with its state file in `dir`.
fn client_in(server: &MockServer, dir: &tempfile::TempDir) -> Arc<CycleCloudClient> {
    client(config(server, &dir.path().join("g.json")))
}

fn ids(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(|name| NodeId::from(*name)).collect()
}

/// Asserts that `result` failed with the core error variant `variant`,
/// whose text mentions `fragment`.
fn fails<T: std::fmt::Debug>(result: crus_core::Result<T>, variant: &str, fragment: &str) {
    let error = result.unwrap_err();
    let actual = match &error {
        Error::NotFound { .. } => "NotFound",
        Error::Conflict { .. } => "Conflict",
        Error::Invalid { .. } => "Invalid",
        Error::Unavailable { .. } => "Unavailable",
        _ => "another variant",
    };
    assert_eq!(actual, variant, "{error}");
    assert!(
        error.to_string().contains(fragment),
        "{error} should mention {fragment:?}"
    );
}

fn state_of(mock: &CycleCloudMock, name: &str) -> String {
    let state = mock.state();
    state
        .nodes
        .iter()
        .find(|node| node.name == name)
        .map(|node| node.state.clone())
        .unwrap()
}

async fn wait_for_boot(
    orchestrator: &CycleCloudBootOrchestrator,
    handle: &BootHandle,
) -> Vec<NodeBootStatus> {
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(5),
        || orchestrator.boot_status(handle),
        |statuses| {
            statuses
                .iter()
                .all(|status| status.state != NodeBootState::InProgress)
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn node_arrays_are_groups_and_the_listing_gives_node_facts() {
    let (server, _mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let inventory = CycleCloudInventory::new(client_in(&server, &dir));

    assert_eq!(
        inventory.group_members("hpc").await.unwrap(),
        ids(&["hpc-1", "hpc-2", "hpc-3"])
    );
    assert_eq!(
        inventory.group_members("htc").await.unwrap(),
        ids(&["htc-1"])
    );
    let facts = inventory
        .node_facts(&ids(&["htc-1", "hpc-2"]))
        .await
        .unwrap();
    assert_eq!(facts.len(), 2);
    assert_eq!(facts[0].id, NodeId::from("htc-1"));
    assert_eq!(facts[0].state.as_deref(), Some("Off"));
    assert!(facts[0].enabled);
    assert_eq!(facts[1].state.as_deref(), Some("Ready"));
    assert_eq!(facts[1].nid, None);

    let unknown = inventory
        .node_facts(&ids(&["hpc-1", "gpu-9"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&unknown, Error::NotFound { what } if what.contains("gpu-9")),
        "{unknown}"
    );
    fails(inventory.group_members("gpu").await, "NotFound", "");
}

#[tokio::test]
async fn groups_crus_creates_are_kept_in_the_state_file_across_instances() {
    let (server, _mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("groups.json");
    let first = CycleCloudInventory::new(client(config(&server, &state_file)));
    first.create_group("crus-upgrading").await.unwrap();
    first
        .add_members("crus-upgrading", &ids(&["hpc-2", "hpc-1", "hpc-2"]))
        .await
        .unwrap();
    first.create_group("crus-failed").await.unwrap();

    let second = CycleCloudInventory::new(client(config(&server, &state_file)));
    assert_eq!(
        second.group_members("crus-upgrading").await.unwrap(),
        ids(&["hpc-2", "hpc-1"])
    );
    assert!(
        second
            .group_members("crus-failed")
            .await
            .unwrap()
            .is_empty()
    );
    second
        .remove_members("crus-upgrading", &ids(&["hpc-2"]))
        .await
        .unwrap();
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(
        on_disk,
        json!({"groups": {"crus-failed": [], "crus-upgrading": ["hpc-1"]}})
    );
    assert!(!dir.path().join("groups.json.tmp").exists());

    fails(
        second.create_group("crus-failed").await,
        "Conflict",
        "crus created it",
    );
    fails(second.create_group("hpc").await, "Conflict", "node array");
    fails(
        second.add_members("hpc", &ids(&["htc-1"])).await,
        "Invalid",
        "is a node array",
    );
    fails(
        second.remove_members("hpc", &ids(&["hpc-1"])).await,
        "Invalid",
        "cannot remove members",
    );
    fails(
        second.add_members("crus-failed", &ids(&["gpu-9"])).await,
        "NotFound",
        "gpu-9",
    );
}

#[tokio::test]
async fn without_a_state_file_groups_cannot_be_created() {
    let (server, _mock) = CycleCloudMock::start().await;
    let mut config = config(&server, Path::new("unused"));
    config.state_file = None;
    let inventory = CycleCloudInventory::new(client(config));
    let error = inventory.create_group("crus-upgrading").await.unwrap_err();
    assert!(
        matches!(&error, Error::Invalid { message } if message.contains("state_file")),
        "{error}"
    );
    assert_eq!(inventory.group_members("hpc").await.unwrap().len(), 3);
}

#[tokio::test]
async fn power_operations_map_to_start_shutdown_and_deallocate_and_wait_until_done() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let power = CycleCloudPowerControl::new(client_in(&server, &dir));
    let nodes = ids(&["hpc-2", "hpc-1"]);

    power.power(&nodes, PowerOperation::ForceOff).await.unwrap();
    // The call returned once the operation was done, not merely accepted.
    assert_eq!(
        power.power_state(&nodes).await.unwrap(),
        vec![PowerState::Off, PowerState::Off]
    );
    assert_eq!(state_of(&mock, "hpc-1"), "Deallocated");
    assert_eq!(state_of(&mock, "hpc-3"), "Started");

    power.power(&nodes, PowerOperation::On).await.unwrap();
    assert_eq!(state_of(&mock, "hpc-2"), "Started");

    power
        .power(&nodes, PowerOperation::GracefulShutdown)
        .await
        .unwrap();
    assert_eq!(state_of(&mock, "hpc-1"), "Terminated");
    assert_eq!(
        power.power_state(&ids(&["hpc-1", "hpc-3"])).await.unwrap(),
        vec![PowerState::Off, PowerState::On]
    );

    power
        .power(&nodes, PowerOperation::ForceRestart)
        .await
        .unwrap();
    assert_eq!(state_of(&mock, "hpc-1"), "Started");
    let actions: Vec<String> = mock
        .posts()
        .into_iter()
        .filter(|(_, _, status)| *status == 202)
        .map(|(action, _, _)| action)
        .collect();
    // The restart's off step adopted the first deallocation: its request id
    // is the same, and the nodes, shut down since, are still off, which is
    // where it takes them; so only the start was submitted.
    assert_eq!(actions, ["deallocate", "start", "shutdown", "start"]);
    // The operations were followed by the operation id of their Location.
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .any(|request| request.url.query_pairs().any(|(key, _)| key == "operation"))
    );
}

#[tokio::test]
async fn a_reused_request_id_answered_409_is_adopted() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let power = CycleCloudPowerControl::new(client_in(&server, &dir));
    let nodes = ids(&["hpc-1"]);

    power.power(&nodes, PowerOperation::ForceOff).await.unwrap();
    // The same call again (a retry, a resumed controller): same request id.
    power.power(&nodes, PowerOperation::ForceOff).await.unwrap();
    let posts = mock.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(
        posts[0].1, posts[1].1,
        "the same call derives the same request id"
    );
    assert_eq!((posts[0].2, posts[1].2), (202, 409));
    assert_eq!(mock.state().by_request.len(), 1, "no second operation");

    // After the node was turned on since, the adopted deallocation is stale:
    // a fresh one is submitted under the next request id.
    power.power(&nodes, PowerOperation::On).await.unwrap();
    power.power(&nodes, PowerOperation::ForceOff).await.unwrap();
    assert_eq!(state_of(&mock, "hpc-1"), "Deallocated");
    let deallocations: Vec<(String, u16)> = mock
        .posts()
        .into_iter()
        .filter(|(action, _, _)| action == "deallocate")
        .map(|(_, request_id, status)| (request_id, status))
        .collect();
    assert_eq!(deallocations.len(), 4, "{deallocations:?}");
    assert_eq!(deallocations[2], (posts[0].1.clone(), 409));
    assert_eq!(deallocations[3].1, 202);
    assert_ne!(deallocations[3].0, posts[0].1);
}

#[tokio::test]
async fn a_409_for_a_request_never_made_is_invalid_input_not_adopted() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let power = CycleCloudPowerControl::new(client_in(&server, &dir));
    fails(
        power.power(&ids(&["gpu-9"]), PowerOperation::On).await,
        "Invalid",
        "409",
    );
    assert_eq!(mock.posts().len(), 1);
    assert!(mock.state().by_request.is_empty());
}

#[tokio::test]
async fn an_unreadable_ca_file_is_reported_when_the_client_is_made() {
    let (server, _mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut missing = config(&server, &dir.path().join("g.json"));
    missing.ca_file = Some(dir.path().join("no-such-ca.pem"));
    fails(CycleCloudClient::new(missing), "Invalid", "no-such-ca.pem");
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(
        &not_pem,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let mut garbled = config(&server, &dir.path().join("g.json"));
    garbled.ca_file = Some(not_pem);
    fails(CycleCloudClient::new(garbled), "Invalid", "ca.pem");
    let mut insecure = config(&server, &dir.path().join("g.json"));
    insecure.insecure = true;
    let inventory = CycleCloudInventory::new(client(insecure));
    assert_eq!(
        inventory.group_members("htc").await.unwrap(),
        ids(&["htc-1"])
    );
}

#[tokio::test]
async fn an_unknown_cluster_or_operation_is_not_found() {
    let (server, _mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = config(&server, &dir.path().join("g.json"));
    wrong.cluster = "no-such-cluster".into();
    let client = client(wrong);
    let inventory = CycleCloudInventory::new(Arc::clone(&client));
    let error = inventory.group_members("hpc").await.unwrap_err();
    assert!(
        matches!(&error, Error::NotFound { what } if what.contains("404") && what.contains("cyclecloud.cluster")),
        "{error}"
    );
    let power = CycleCloudPowerControl::new(Arc::clone(&client));
    fails(power.power_state(&ids(&["hpc-1"])).await, "NotFound", "");

    let right = CycleCloudBootOrchestrator::new(client_in(&server, &dir));
    let handle = BootHandle {
        key: "never-started".into(),
        id: uuid::Uuid::new_v4().to_string(),
    };
    fails(right.boot_status(&handle).await, "NotFound", "");
    fails(right.cancel_boot(&handle).await, "NotFound", "");
}

#[tokio::test]
async fn basic_auth_is_sent_and_a_refusal_says_so() {
    let (server, _mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let good = CycleCloudInventory::new(client_in(&server, &dir));
    assert_eq!(good.group_members("htc").await.unwrap(), ids(&["htc-1"]));
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|request| {
        request
            .headers
            .get("authorization")
            .is_some_and(|value| value.to_str().unwrap().starts_with("Basic "))
    }));

    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "wrong-password\n").unwrap();
    let mut bad = config(&server, &dir.path().join("g.json"));
    bad.password = PasswordSource::File(password_file);
    let error = CycleCloudInventory::new(client(bad))
        .group_members("htc")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Invalid { message } if message.contains("refused user \"crus\"") && message.contains("401")),
        "{error}"
    );

    let mut unset = config(&server, &dir.path().join("g.json"));
    unset.password = PasswordSource::Env("CRUS_TEST_NO_SUCH_VARIABLE".into());
    fails(CycleCloudClient::new(unset), "Invalid", "");
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    let (server, _mock) = CycleCloudMock::start().await;
    let config = config(&server, Path::new("g.json"));
    assert!(!format!("{config:?}").contains(PASSWORD));
    let client = client(config);
    assert!(!format!("{client:?}").contains(PASSWORD));
    assert!(format!("{client:?}").contains("<redacted>"));
}

#[tokio::test]
async fn gets_failing_with_5xx_are_retried() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let power = CycleCloudPowerControl::new(client_in(&server, &dir));
    mock.state().failing_gets = 2;
    assert_eq!(
        power.power_state(&ids(&["hpc-1", "htc-1"])).await.unwrap(),
        vec![PowerState::On, PowerState::Off]
    );
    assert_eq!(mock.state().gets, 3, "two 503s, then the answer");

    let mut no_retries = config(&server, &dir.path().join("g.json"));
    no_retries.retries = 0;
    let impatient = CycleCloudPowerControl::new(client(no_retries));
    mock.state().failing_gets = 1;
    let error = impatient.power_state(&ids(&["hpc-1"])).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(matches!(&error, Error::Unavailable { message, .. } if message.contains("503")));
}

#[tokio::test]
async fn templates_are_node_arrays_or_their_images() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let boots = CycleCloudBootOrchestrator::new(client_in(&server, &dir));
    assert!(boots.template_exists("hpc").await.unwrap());
    assert!(boots.template_exists("almalinux-8-hpc-2025").await.unwrap());
    assert!(!boots.template_exists("centos-7").await.unwrap());

    let wrong_array = BootRequest {
        key: "upgrade-1-batch-0".into(),
        template: "ubuntu-22.04-htc".into(),
        nodes: ids(&["hpc-1", "htc-1"]),
    };
    let error = boots.start_boot(&wrong_array).await.unwrap_err();
    assert!(
        matches!(&error, Error::Invalid { message } if message.contains("hpc-1 (node array hpc)")),
        "{error}"
    );
    let unknown = BootRequest {
        template: "centos-7".into(),
        ..wrong_array
    };
    fails(boots.start_boot(&unknown).await, "NotFound", "");
    assert!(mock.posts().is_empty(), "nothing was submitted");
}

#[tokio::test]
async fn a_reimage_terminates_then_starts_fixed_nodes_and_is_idempotent_under_its_key() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&server, &dir);
    let boots = CycleCloudBootOrchestrator::new(Arc::clone(&client));
    let request = BootRequest {
        key: "upgrade-7-batch-2".into(),
        template: "almalinux-8-hpc-2025".into(),
        nodes: ids(&["hpc-1", "hpc-2"]),
    };
    let handle = boots.start_boot(&request).await.unwrap();
    assert_eq!(handle.key, request.key);
    assert_eq!(boots.start_boot(&request).await.unwrap(), handle);
    let statuses = wait_for_boot(&boots, &handle).await;
    assert!(
        statuses
            .iter()
            .all(|status| status.state == NodeBootState::Ok),
        "{statuses:?}"
    );
    assert_eq!(statuses.len(), 2);

    // Another instance (a restarted crus) finds the same boot by its key.
    let restarted = CycleCloudBootOrchestrator::new(client);
    assert_eq!(restarted.start_boot(&request).await.unwrap(), handle);
    let statuses = restarted.boot_status(&handle).await.unwrap();
    assert!(
        statuses
            .iter()
            .all(|status| status.state == NodeBootState::Ok)
    );

    // hpc-1 and hpc-2 are `Fixed`: terminated (never deallocated, which
    // would keep their old disks), then started.
    let posts = mock.posts();
    assert_eq!(mock.accepted(), ["terminate", "start"], "{posts:?}");
    assert_eq!(mock.operation_nodes("terminate"), ["hpc-1", "hpc-2"]);
    assert_eq!(mock.operation_nodes("start"), ["hpc-1", "hpc-2"]);
    // The later start_boot calls resubmitted the termination under its
    // request id, which CycleCloud ignored (409).
    let terminations: Vec<&(String, String, u16)> = posts
        .iter()
        .filter(|(action, _, _)| action == "terminate")
        .collect();
    assert_eq!(terminations.len(), 3, "{posts:?}");
    assert!(
        terminations
            .iter()
            .all(|(_, request_id, _)| *request_id == terminations[0].1)
    );
    assert!(
        terminations[1..]
            .iter()
            .all(|(_, _, status)| *status == 409)
    );
}

#[tokio::test]
async fn a_boot_puts_every_node_on_a_fresh_vm_from_its_arrays_current_image() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&server, &dir);
    let old = Some("hpc-image-before-the-test".to_string());
    mock.set_array_image("hpc", "almalinux-8-hpc-2026");

    // The fake keeps disks as CycleCloud does: a power restart (deallocate,
    // start) brings a node back on its old disk, whatever the array says.
    let power = CycleCloudPowerControl::new(Arc::clone(&client));
    power
        .power(&ids(&["hpc-2"]), PowerOperation::ForceRestart)
        .await
        .unwrap();
    assert_eq!(mock.images()["hpc-2"], old);

    let boots = CycleCloudBootOrchestrator::new(client);
    let request = BootRequest {
        key: "upgrade-11-batch-0".into(),
        template: "almalinux-8-hpc-2026".into(),
        nodes: ids(&["hpc-3", "hpc-1", "hpc-2"]),
    };
    let handle = boots.start_boot(&request).await.unwrap();
    let statuses = wait_for_boot(&boots, &handle).await;
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|status| status.state == NodeBootState::Ok),
        "{statuses:?}"
    );
    let images = mock.images();
    for node in ["hpc-1", "hpc-2", "hpc-3"] {
        assert_eq!(
            images[node].as_deref(),
            Some("almalinux-8-hpc-2026"),
            "{node} should boot the array's new image: {images:?}"
        );
    }
    assert_eq!(
        images["htc-1"].as_deref(),
        Some("htc-image-before-the-test")
    );
    // The `Fixed` nodes were terminated and started; hpc-3, which a
    // termination removes from the cluster, was removed and created again
    // under its name in its array.
    assert_eq!(mock.operation_nodes("terminate"), ["hpc-1", "hpc-2"]);
    assert_eq!(
        mock.operations("start"),
        [vec!["hpc-2"], vec!["hpc-1", "hpc-2"]],
        "the power restart's, then the boot's"
    );
    assert_eq!(mock.operation_nodes("remove"), ["hpc-3"]);
    assert_eq!(mock.operation_nodes("create"), ["hpc-3"]);
    let state = mock.state();
    let recreated = state
        .nodes
        .iter()
        .find(|node| node.name == "hpc-3")
        .unwrap();
    assert_eq!(recreated.array, "hpc");
    let deallocations = state
        .posts
        .iter()
        .filter(|(action, _, _)| action == "deallocate")
        .count();
    assert_eq!(deallocations, 1, "only the power restart deallocated");
}

#[tokio::test]
async fn a_restarted_crus_resumes_a_reimage_without_terminating_or_removing_twice() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    mock.set_array_image("hpc", "almalinux-8-hpc-2026");
    let request = BootRequest {
        key: "upgrade-12-batch-0".into(),
        template: "hpc".into(),
        nodes: ids(&["hpc-1", "hpc-3"]),
    };
    let first = CycleCloudBootOrchestrator::new(client_in(&server, &dir));
    let handle = first.start_boot(&request).await.unwrap();
    // crus stops here; meanwhile CycleCloud terminates hpc-1 and removes
    // hpc-3, which is then no longer listed.
    drop(first);
    mock.settle();
    assert!(!mock.images().contains_key("hpc-3"));

    // A resumed controller that had not saved the handle starts the boot
    // again under its key: the same handle, nothing new submitted.
    let second = CycleCloudBootOrchestrator::new(client_in(&server, &dir));
    assert_eq!(second.start_boot(&request).await.unwrap(), handle);
    drop(second);
    assert_eq!(mock.accepted(), ["terminate", "remove"]);

    // One that had saved it follows it from the handle alone, and creates
    // hpc-3 again in its array.
    let third = CycleCloudBootOrchestrator::new(client_in(&server, &dir));
    let statuses = wait_for_boot(&third, &handle).await;
    assert!(
        statuses
            .iter()
            .all(|status| status.state == NodeBootState::Ok),
        "{statuses:?}"
    );
    let fourth = CycleCloudBootOrchestrator::new(client_in(&server, &dir));
    assert_eq!(fourth.start_boot(&request).await.unwrap(), handle);
    assert_eq!(fourth.boot_status(&handle).await.unwrap(), statuses);

    assert_eq!(
        mock.accepted(),
        ["terminate", "remove", "start", "create"],
        "{:?}",
        mock.posts()
    );
    let images = mock.images();
    assert_eq!(images["hpc-1"].as_deref(), Some("almalinux-8-hpc-2026"));
    assert_eq!(images["hpc-3"].as_deref(), Some("almalinux-8-hpc-2026"));
    assert_eq!(
        images["hpc-2"].as_deref(),
        Some("hpc-image-before-the-test"),
        "not in the boot"
    );
}

#[tokio::test]
async fn a_creation_that_adds_nothing_fails_its_node_with_cyclecloud_s_message() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let boots = CycleCloudBootOrchestrator::new(client_in(&server, &dir));
    mock.state().refuse.insert(
        ("create".into(), "hpc-3".into()),
        "Out of quota for Standard_HB120rs_v3".into(),
    );
    let request = BootRequest {
        key: "upgrade-13-batch-0".into(),
        template: "hpc".into(),
        nodes: ids(&["hpc-3"]),
    };
    let handle = boots.start_boot(&request).await.unwrap();
    let statuses = wait_for_boot(&boots, &handle).await;
    assert_eq!(
        statuses[0].state,
        NodeBootState::Failed {
            reason: "Out of quota for Standard_HB120rs_v3".into()
        }
    );
    // A restarted crus no longer knows CycleCloud's answer, and says so.
    let restarted = CycleCloudBootOrchestrator::new(client_in(&server, &dir));
    let statuses = restarted.boot_status(&handle).await.unwrap();
    assert!(
        matches!(&statuses[0].state, NodeBootState::Failed { reason } if reason.contains("did not create the node again in node array hpc")),
        "{statuses:?}"
    );
    // CycleCloud accepted the creation, whose one set added nothing.
    assert_eq!(mock.accepted(), ["remove", "create"]);
    assert!(!mock.images().contains_key("hpc-3"));
}

#[tokio::test]
async fn refused_and_failed_nodes_fail_their_boot_and_the_others_boot() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let boots = CycleCloudBootOrchestrator::new(client_in(&server, &dir));
    {
        let mut state = mock.state();
        state.refuse.insert(
            ("terminate".into(), "hpc-2".into()),
            "This node must be terminated before it can be removed".into(),
        );
        state
            .fail_start
            .insert("hpc-3".into(), "Cluster-init script failed".into());
    }
    let request = BootRequest {
        key: "upgrade-8-batch-0".into(),
        template: "hpc".into(),
        nodes: ids(&["hpc-1", "hpc-2", "hpc-3"]),
    };
    let handle = boots.start_boot(&request).await.unwrap();
    let statuses = wait_for_boot(&boots, &handle).await;
    let by_node: HashMap<&str, &NodeBootState> = statuses
        .iter()
        .map(|status| (status.node.as_str(), &status.state))
        .collect();
    assert_eq!(by_node["hpc-1"], &NodeBootState::Ok);
    assert_eq!(
        by_node["hpc-2"],
        &NodeBootState::Failed {
            reason: "This node must be terminated before it can be removed".into()
        }
    );
    assert_eq!(
        by_node["hpc-3"],
        &NodeBootState::Failed {
            reason: "Cluster-init script failed".into()
        }
    );
    // The refused node was not started; hpc-3 (not `Fixed`) was removed
    // and created again, and its creation failed.
    assert_eq!(state_of(&mock, "hpc-2"), "Started");
    assert_eq!(mock.operation_nodes("start"), ["hpc-1"]);
    assert_eq!(mock.operation_nodes("create"), ["hpc-3"]);
}

#[tokio::test]
async fn a_power_operation_with_refused_nodes_fails_naming_them() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let power = CycleCloudPowerControl::new(client_in(&server, &dir));
    mock.state()
        .refuse
        .insert(("deallocate".into(), "hpc-2".into()), "VM is locked".into());
    let error = power
        .power(&ids(&["hpc-1", "hpc-2"]), PowerOperation::ForceOff)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("hpc-2 (VM is locked)"),
        "{error}"
    );
    assert!(!error.to_string().contains("hpc-1 ("), "{error}");
}

#[tokio::test]
async fn a_cancelled_reimage_starts_nothing() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let boots = CycleCloudBootOrchestrator::new(client_in(&server, &dir));
    let request = BootRequest {
        key: "upgrade-9-batch-0".into(),
        template: "hpc".into(),
        nodes: ids(&["hpc-1"]),
    };
    let handle = boots.start_boot(&request).await.unwrap();
    boots.cancel_boot(&handle).await.unwrap();
    boots.cancel_boot(&handle).await.unwrap();
    let statuses = wait_for_boot(&boots, &handle).await;
    assert!(
        matches!(&statuses[0].state, NodeBootState::Failed { reason } if reason.contains("cancelled"))
    );
    assert_eq!(mock.accepted(), ["terminate"]);
}

#[tokio::test]
async fn conformance_suites_pass_against_the_mock() {
    let (server, _mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(config(&server, &dir.path().join("groups.json")));

    let inventory = CycleCloudInventory::new(Arc::clone(&client));
    let fixture = InventoryFixture::new("hpc", ids(&["hpc-1", "hpc-2", "hpc-3"]));
    if let Err(failure) = testkit::inventory::run_all(&inventory, &fixture).await {
        panic!("{failure}");
    }

    let power = CycleCloudPowerControl::new(Arc::clone(&client));
    let fixture = PowerControlFixture {
        nodes: ids(&["hpc-1", "hpc-2"]),
        settle_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(5),
    };
    if let Err(failure) = testkit::power_control::run_all(&power, &fixture).await {
        panic!("{failure}");
    }

    let boots = CycleCloudBootOrchestrator::new(client);
    let fixture = BootOrchestratorFixture {
        template: "almalinux-8-hpc-2025".into(),
        nodes: ids(&["hpc-1", "hpc-3"]),
        boot_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(5),
    };
    if let Err(failure) = testkit::boot_orchestrator::run_all(&boots, &fixture).await {
        panic!("{failure}");
    }
}
