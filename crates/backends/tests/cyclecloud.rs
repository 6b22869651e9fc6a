//! The CycleCloud backends against a stateful mock of the CycleCloud REST
//! API, answering with the request and response shapes and the status codes
//! the API documents: node listings (all nodes, or one operation's by
//! `operation` or `request_id`), the cluster status with its node arrays,
//! `start`/`shutdown`/`deallocate` answered 202 with a `Location` and a
//! `NodeManagementResult`, 409 for a reused `requestId`, 404 for an unknown
//! cluster or operation. Node records use CycleCloud's node attributes
//! (`Name`, `Template`, `State`, `TargetState`, `Status`, `StatusMessage`).
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
        let node = |name: &str, array: &str, on: bool| MockNode {
            name: name.into(),
            array: array.into(),
            state: if on { "Started" } else { "Deallocated" }.into(),
            target: if on { "Started" } else { "Deallocated" }.into(),
            status: if on { "Ready" } else { "Off" }.into(),
            message: None,
            pending: 0,
        };
        CycleCloudMock(Arc::new(Mutex::new(State {
            nodes: vec![
                node("hpc-1", "hpc", true),
                node("hpc-2", "hpc", true),
                node("hpc-3", "hpc", true),
                node("htc-1", "htc", false),
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
                }
                (target, _) => {
                    node.state = target.into();
                    node.status = "Off".into();
                }
            }
        }
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
                    action @ ("start" | "shutdown" | "deallocate"),
                ],
            ) => state.manage(request, action),
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
async fn a_reimage_deallocates_then_starts_and_is_idempotent_under_its_key() {
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

    let posts = mock.posts();
    let accepted: Vec<&str> = posts
        .iter()
        .filter(|(_, _, status)| *status == 202)
        .map(|(action, _, _)| action.as_str())
        .collect();
    assert_eq!(accepted, ["deallocate", "start"], "{posts:?}");
    assert_eq!(
        posts[0].1, handle.id,
        "the handle is the deallocation's request id"
    );
}

#[tokio::test]
async fn refused_and_failed_nodes_fail_their_boot_and_the_others_boot() {
    let (server, mock) = CycleCloudMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let boots = CycleCloudBootOrchestrator::new(client_in(&server, &dir));
    {
        let mut state = mock.state();
        state.refuse.insert(
            ("deallocate".into(), "hpc-2".into()),
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
    // The refused node was not started.
    assert_eq!(state_of(&mock, "hpc-2"), "Started");
    let start = mock
        .state()
        .by_request
        .values()
        .find(|op| op.action == "start")
        .cloned()
        .unwrap();
    assert_eq!(start.nodes, ["hpc-1", "hpc-3"]);
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
    assert!(mock.posts().iter().all(|(action, _, _)| action != "start"));
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
