//! `KadeployPowerControl` against a stateful wiremock Kadeploy3 that follows
//! its native power and reboot API (seed 003's table: `reboot` POST, `power`
//! PUT and GET; Kadeploy 3's `doc/api/power.api` and `reboot.api`): the
//! request each operation sends, power states read from a power-status run,
//! nodes Kadeploy cannot tell about, and the conformance suite.
#![cfg(feature = "kadeploy")]
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crus_backends::kadeploy::{KadeployConfig, KadeployPowerControl};
use crus_core::ports::{PowerControl, PowerOperation, PowerState};
use crus_core::testkit::{self, PowerControlFixture};
use crus_core::{Error, NodeId};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Where the Grid'5000 API serves a site's native Kadeploy API.
const NATIVE: &str = "/4.0/sites/nantes/kadeploy";
const DOMAIN: &str = "nantes.grid5000.fr";
const HOST_8: &str = "econome-8.nantes.grid5000.fr";
const HOST_9: &str = "econome-9.nantes.grid5000.fr";

/// One node's power in the fake.
#[derive(Debug, Clone, Copy)]
struct NodePower {
    on: bool,
    /// After a reboot: off for the next power-status run, then on.
    rebooting: bool,
}

/// A power-status run (`GET /power?nodes=…`): the power status command's
/// output per host, taken when it started.
struct StatusRun {
    outputs: BTreeMap<String, Option<String>>,
    reads: u32,
}

#[derive(Default)]
struct FakeState {
    nodes: BTreeMap<String, NodePower>,
    runs: BTreeMap<String, StatusRun>,
    /// Hosts whose power status command fails (`ko` in the run).
    no_status: Vec<String>,
    /// When set, every power-status run fails as a whole with this error.
    run_error: Option<String>,
    /// `(method, path, body)` of every PUT and POST.
    operations: Vec<(String, String, Value)>,
}

/// A Kadeploy answering its native power and reboot operations as the
/// Kadeploy 3 server does (`lib/kadeploy3/server/kapower.rb`, `kareboot.rb`,
/// `kaworkflow.rb`):
/// - `PUT /power` (`status` `on`|`off`, `level` `soft`|`hard`|`very_hard`)
///   and `POST /reboot` (`kind` one of `set_pxe`, `simple`, `deploy_env`,
///   `recorded_env`; `level` as above) answer `{wid, resources}`; a value out
///   of those is a `KadeployError` (`INVALID_OPTION`), a 400;
/// - `GET /power?nodes=…` starts a power-status run (`power_get`) and answers
///   its `{wid, resources}`; `GET /power/{wid}` is `work_get`: not done at
///   the first read, then done with the hosts `ok` or `ko`;
///   `GET /power/{wid}/state` is `NodeState#states`: each `ok` host's power
///   status command output as `out` (`parallel_get_power_status` in
///   `server/microsteps.rb`), its steps unset (null) by `Workflow#success!`;
///   a host without a power status command is `ko` with that error;
/// - a run that failed as a whole shows `error: true` and no `nodes`, and
///   `/error` answers its text with a 400 (`common/httpd.rb`);
/// - an unknown host is `INVALID_NODELIST`, a 400 "Invalid node list".
#[derive(Clone, Default)]
struct FakeKadeployPower {
    state: Arc<Mutex<FakeState>>,
}

fn workflow(wid: &str, kind: &str) -> Value {
    json!({"wid": wid, "resources": {
        "resource": format!("/{kind}/{wid}"),
        "state": format!("/{kind}/{wid}/state"),
        "error": format!("/{kind}/{wid}/error"),
    }})
}

fn kadeploy_error(text: &str, errno: u32) -> ResponseTemplate {
    ResponseTemplate::new(400)
        .insert_header("X-Application-Error-Code", errno.to_string().as_str())
        .set_body_string(format!("{text}\n"))
}

impl FakeState {
    /// The hosts of an operation, or `None` when one is unknown (or none
    /// is given), which Kadeploy refuses.
    fn hosts(&self, hosts: &[String]) -> Option<Vec<String>> {
        if hosts.is_empty() || hosts.iter().any(|host| !self.nodes.contains_key(host)) {
            return None;
        }
        Some(hosts.to_vec())
    }

    fn operate(&mut self, request: &Request, kind: &str) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        self.operations.push((
            request.method.to_string(),
            request.url.path().to_string(),
            body.clone(),
        ));
        let hosts: Vec<String> = serde_json::from_value(body["nodes"].clone()).unwrap_or_default();
        let hosts = match self.hosts(&hosts) {
            Some(hosts) => hosts,
            None => return kadeploy_error("Invalid node list", 2),
        };
        let level = body["level"].as_str().unwrap_or("soft");
        if !["soft", "hard", "very_hard"].contains(&level) {
            return kadeploy_error("Invalid option in the request -- level", 4);
        }
        let prefix = if kind == "power" {
            let on = match body["status"].as_str() {
                Some("on") => true,
                Some("off") => false,
                _ => return kadeploy_error("Invalid option in the request -- status", 4),
            };
            for host in &hosts {
                self.nodes.insert(
                    host.clone(),
                    NodePower {
                        on,
                        rebooting: false,
                    },
                );
            }
            "P"
        } else {
            let known = ["set_pxe", "simple", "deploy_env", "recorded_env"];
            if !body["kind"]
                .as_str()
                .is_some_and(|kind| known.contains(&kind))
            {
                return kadeploy_error("Invalid option in the request -- kind", 4);
            }
            for host in &hosts {
                self.nodes.insert(
                    host.clone(),
                    NodePower {
                        on: false,
                        rebooting: true,
                    },
                );
            }
            "R"
        };
        let wid = format!("{prefix}-{}", uuid::Uuid::new_v4());
        ResponseTemplate::new(200).set_body_json(workflow(&wid, kind))
    }

    fn start_status(&mut self, request: &Request) -> ResponseTemplate {
        let asked: Vec<String> = request
            .url
            .query_pairs()
            .filter(|(key, _)| key == "nodes")
            .map(|(_, value)| value.to_string())
            .collect();
        let hosts = match self.hosts(&asked) {
            Some(hosts) => hosts,
            None => return kadeploy_error("Invalid node list", 2),
        };
        let mut outputs = BTreeMap::new();
        for host in hosts {
            let node = self.nodes.get_mut(&host).unwrap();
            let output = (!self.no_status.contains(&host))
                .then(|| format!("Chassis Power is {}", if node.on { "on" } else { "off" }));
            // A rebooting node shows off once, then is back on.
            if node.rebooting {
                node.rebooting = false;
                node.on = true;
            }
            outputs.insert(host, output);
        }
        let wid = format!("P-{}", uuid::Uuid::new_v4());
        self.runs
            .insert(wid.clone(), StatusRun { outputs, reads: 0 });
        ResponseTemplate::new(200).set_body_json(workflow(&wid, "power"))
    }

    fn read_run(&mut self, wid: &str, rest: &[&str]) -> ResponseTemplate {
        let run_error = self.run_error.clone();
        let Some(run) = self.runs.get_mut(wid) else {
            return kadeploy_error("Invalid workflow ID", 1);
        };
        match (rest, &run_error) {
            ([], Some(_)) => ResponseTemplate::new(200).set_body_json(json!({
                "wid": wid, "user": "crus", "done": true, "error": true, "start_time": 1467383724,
            })),
            ([], None) => {
                run.reads += 1;
                let done = run.reads > 1;
                let hosts_where = |reported: bool| -> Vec<&String> {
                    run.outputs
                        .iter()
                        .filter(|(_, output)| output.is_some() == reported)
                        .map(|(host, _)| host)
                        .collect()
                };
                let (ok, ko) = (hosts_where(true), hosts_where(false));
                let nodes = if done {
                    json!({"ok": ok, "ko": ko})
                } else {
                    json!({"ok": [], "ko": [], "processing": run.outputs.keys().collect::<Vec<_>>()})
                };
                ResponseTemplate::new(200).set_body_json(json!({
                    "wid": wid, "user": "crus", "done": done, "error": false,
                    "start_time": 1467383724, "logs": false, "nodes": nodes, "time": 0.5,
                }))
            }
            (["state"], _) => {
                let states: serde_json::Map<String, Value> = run
                    .outputs
                    .iter()
                    .map(|(host, output)| {
                        let state = match output {
                            Some(out) => {
                                json!({"macro": null, "micro": null, "state": "ok", "out": out})
                            }
                            None => json!({"macro": "Status", "micro": "power", "state": "ko",
                                "error": "Status-power: power_status command is not provided"}),
                        };
                        (host.clone(), state)
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(states)
            }
            (["error"], Some(error)) => kadeploy_error(error, 14),
            (["error"], None) => ResponseTemplate::new(200).set_body_string("\n"),
            _ => ResponseTemplate::new(404),
        }
    }
}

impl Respond for FakeKadeployPower {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
        let Some(rest) = request.url.path().strip_prefix(NATIVE) else {
            return ResponseTemplate::new(404);
        };
        let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("PUT", ["power"]) => state.operate(request, "power"),
            ("POST", ["reboot"]) => state.operate(request, "reboot"),
            ("GET", ["power"]) => state.start_status(request),
            ("GET", ["power", wid, rest @ ..]) => state.read_run(wid, rest),
            _ => ResponseTemplate::new(405).set_body_string("Method Not Allowed"),
        }
    }
}

/// The fake with both hosts on, served by wiremock.
async fn serve(fake: &FakeKadeployPower) -> MockServer {
    {
        let mut state = fake.state.lock().unwrap();
        for host in [HOST_8, HOST_9] {
            state.nodes.insert(
                host.to_string(),
                NodePower {
                    on: true,
                    rebooting: false,
                },
            );
        }
    }
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    server
}

/// Boots through the Grid'5000 API, power through its native path.
fn config(server: &MockServer) -> KadeployConfig {
    KadeployConfig {
        user: Some("crus".to_string()),
        host_domain: Some(DOMAIN.to_string()),
        retries: 1,
        retry_base_delay: Duration::from_millis(1),
        timeout: Duration::from_secs(5),
        power_base_url: Some(format!("{}{NATIVE}", server.uri())),
        ..KadeployConfig::new(format!("{}/4.0/sites/nantes", server.uri()))
    }
}

fn nodes() -> Vec<NodeId> {
    vec![NodeId::from("econome-8"), NodeId::from("econome-9")]
}

#[tokio::test]
async fn the_conformance_suite_passes_against_a_stateful_kadeploy() {
    let fake = FakeKadeployPower::default();
    let server = serve(&fake).await;
    let power = KadeployPowerControl::new(&config(&server)).unwrap();
    let fixture = PowerControlFixture {
        nodes: nodes(),
        settle_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(10),
    };
    if let Err(failure) = testkit::power_control::run_all(&power, &fixture).await {
        panic!("{failure}");
    }
}

#[tokio::test]
async fn each_operation_sends_the_documented_request_with_its_level() {
    let fake = FakeKadeployPower::default();
    let server = serve(&fake).await;
    let power = KadeployPowerControl::new(&config(&server)).unwrap();
    let cases = [
        (
            PowerOperation::GracefulRestart,
            "POST",
            "reboot",
            json!({"kind": "simple", "level": "soft"}),
        ),
        (
            PowerOperation::ForceRestart,
            "POST",
            "reboot",
            json!({"kind": "simple", "level": "hard"}),
        ),
        (
            PowerOperation::GracefulShutdown,
            "PUT",
            "power",
            json!({"status": "off", "level": "soft"}),
        ),
        (
            PowerOperation::ForceOff,
            "PUT",
            "power",
            json!({"status": "off", "level": "hard"}),
        ),
        (
            PowerOperation::On,
            "PUT",
            "power",
            json!({"status": "on", "level": "soft"}),
        ),
    ];
    for (operation, method, resource, fields) in cases {
        fake.state.lock().unwrap().operations.clear();
        power.power(&nodes(), operation).await.unwrap();
        let operations = fake.state.lock().unwrap().operations.clone();
        assert_eq!(operations.len(), 1, "{operation:?}: {operations:?}");
        let (sent_method, sent_path, body) = &operations[0];
        assert_eq!(sent_method, method, "{operation:?}");
        assert_eq!(sent_path, &format!("{NATIVE}/{resource}"), "{operation:?}");
        let mut expected = fields.clone();
        expected["nodes"] = json!([HOST_8, HOST_9]);
        // Nodes another Kadeploy operation holds are left out without it.
        expected["force"] = json!(true);
        assert_eq!(body, &expected, "{operation:?}");
    }
    // Nothing to do for no nodes, and nothing is sent.
    fake.state.lock().unwrap().operations.clear();
    power
        .power(&[], PowerOperation::ForceRestart)
        .await
        .unwrap();
    assert!(power.power_state(&[]).await.unwrap().is_empty());
    assert!(fake.state.lock().unwrap().operations.is_empty());
}

#[tokio::test]
async fn power_state_reads_each_nodes_status_output_and_unknown_where_kadeploy_cannot_tell() {
    let fake = FakeKadeployPower::default();
    let server = serve(&fake).await;
    let power = KadeployPowerControl::new(&config(&server)).unwrap();
    power
        .power(&[NodeId::from("econome-8")], PowerOperation::ForceOff)
        .await
        .unwrap();
    assert_eq!(
        power.power_state(&nodes()).await.unwrap(),
        vec![PowerState::Off, PowerState::On]
    );

    // No power status command for a node: it is ko in the run, unknown here.
    fake.state.lock().unwrap().no_status = vec![HOST_9.to_string()];
    assert_eq!(
        power.power_state(&nodes()).await.unwrap(),
        vec![PowerState::Off, PowerState::Unknown]
    );

    // A run that failed as a whole (all nodes busy elsewhere, say): unknown.
    fake.state.lock().unwrap().run_error =
        Some("No element has been modified -- All the nodes have been discarded ...".to_string());
    assert_eq!(
        power.power_state(&nodes()).await.unwrap(),
        vec![PowerState::Unknown, PowerState::Unknown]
    );
}

#[tokio::test]
async fn a_node_kadeploy_does_not_know_is_refused_with_its_error() {
    let fake = FakeKadeployPower::default();
    let server = serve(&fake).await;
    let power = KadeployPowerControl::new(&config(&server)).unwrap();
    let unknown = [NodeId::from("econome-99")];
    let error = power
        .power(&unknown, PowerOperation::ForceRestart)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Invalid { message } if message.contains("Invalid node list")),
        "{error}"
    );
    let error = power.power_state(&unknown).await.unwrap_err();
    assert!(
        matches!(&error, Error::Invalid { message } if message.contains("Invalid node list")),
        "{error}"
    );
}

#[tokio::test]
async fn without_power_base_url_power_goes_to_base_url() {
    let fake = FakeKadeployPower::default();
    let server = serve(&fake).await;
    let config = KadeployConfig {
        power_base_url: None,
        ..KadeployConfig::new(format!("{}{NATIVE}", server.uri()))
    };
    let power = KadeployPowerControl::new(&KadeployConfig {
        host_domain: Some(DOMAIN.to_string()),
        ..config
    })
    .unwrap();
    assert_eq!(
        power.power_state(&nodes()).await.unwrap(),
        vec![PowerState::On, PowerState::On]
    );
}
