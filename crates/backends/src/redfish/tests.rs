//! Tests of the Redfish power control against wiremock: discovery, reset
//! types and their fallbacks, basic and session auth, retries; and the
//! conformance suite against a stateful fake BMC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crus_core::error::Error;
use crus_core::node::NodeId;
use crus_core::ports::{PowerControl, PowerOperation, PowerState};
use crus_core::testkit::{self, PowerControlFixture};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::{NamingRule, RedfishAuth, RedfishConfig, RedfishPowerControl};

/// A BMC whose systems `node1`, `node2`... keep a power state that reset
/// actions change at once, advertising `allowed` and answering 501 to `refused`.
#[derive(Debug)]
struct FakeBmc {
    states: Mutex<HashMap<String, String>>,
    allowed: Vec<&'static str>,
    refused: Vec<&'static str>,
    /// Every reset type posted, in order.
    resets: Mutex<Vec<String>>,
}

impl FakeBmc {
    fn new(systems: usize, allowed: &[&'static str], refused: &[&'static str]) -> Arc<Self> {
        Arc::new(FakeBmc {
            states: Mutex::new(
                (1..=systems)
                    .map(|index| (format!("id-{index}"), "On".to_string()))
                    .collect(),
            ),
            allowed: allowed.to_vec(),
            refused: refused.to_vec(),
            resets: Mutex::new(Vec::new()),
        })
    }

    fn resets(&self) -> Vec<String> {
        self.resets.lock().unwrap().clone()
    }

    /// Mounts the collection, the systems and their reset actions on `server`.
    async fn mount(self: &Arc<Self>, server: &MockServer) {
        let ids: Vec<String> = {
            let mut ids: Vec<String> = self.states.lock().unwrap().keys().cloned().collect();
            ids.sort();
            ids
        };
        Mock::given(method("GET"))
            .and(path("/redfish/v1/Systems"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "Members": ids.iter().map(|id| json!({"@odata.id": format!("/redfish/v1/Systems/{id}")})).collect::<Vec<_>>(),
            })))
            .mount(server)
            .await;
        for id in ids {
            Mock::given(method("GET"))
                .and(path(format!("/redfish/v1/Systems/{id}")))
                .respond_with(SystemGet(self.clone(), id.clone()))
                .mount(server)
                .await;
            Mock::given(method("POST"))
                .and(path(format!(
                    "/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset"
                )))
                .respond_with(ResetPost(self.clone(), id.clone()))
                .mount(server)
                .await;
        }
    }
}

struct SystemGet(Arc<FakeBmc>, String);

impl Respond for SystemGet {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let (bmc, id) = (&self.0, &self.1);
        let state = bmc.states.lock().unwrap()[id].clone();
        let number = id.trim_start_matches("id-");
        ResponseTemplate::new(200).set_body_json(json!({
            "@odata.id": format!("/redfish/v1/Systems/{id}"),
            "Id": id, "Name": format!("node{number}"), "UUID": format!("uuid-{number}"),
            "PowerState": state,
            "Actions": {"#ComputerSystem.Reset": {
                "target": format!("/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": bmc.allowed,
            }},
        }))
    }
}

struct ResetPost(Arc<FakeBmc>, String);

impl Respond for ResetPost {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let (bmc, id) = (&self.0, &self.1);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let reset_type = body["ResetType"].as_str().unwrap_or("").to_string();
        bmc.resets.lock().unwrap().push(reset_type.clone());
        if bmc.refused.contains(&reset_type.as_str()) {
            return ResponseTemplate::new(501).set_body_json(json!({"error": {
                "code": "Base.1.0.GeneralError",
                "message": format!("Power state {reset_type} is not supported"),
            }}));
        }
        let next = match reset_type.as_str() {
            "On" | "ForceOn" | "GracefulRestart" | "ForceRestart" | "PowerCycle" => "On",
            "ForceOff" | "GracefulShutdown" => "Off",
            _ => return ResponseTemplate::new(400),
        };
        bmc.states
            .lock()
            .unwrap()
            .insert(id.clone(), next.to_string());
        ResponseTemplate::new(204)
    }
}

const ALL: &[&str] = &[
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "PowerCycle",
];

fn config(server: &MockServer) -> RedfishConfig {
    RedfishConfig {
        rule: Some(NamingRule {
            bmc_url: server.uri(),
            system: Some("{node}".into()),
        }),
        retry_base_delay: Duration::from_millis(1),
        poll_interval: Duration::from_millis(5),
        power_off_wait: Duration::from_secs(5),
        ..RedfishConfig::new()
    }
}

fn nodes(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(|name| NodeId::from(*name)).collect()
}

#[tokio::test]
async fn conformance_suite_passes_against_a_fake_bmc() {
    let server = MockServer::start().await;
    let bmc = FakeBmc::new(3, ALL, &[]);
    bmc.mount(&server).await;
    let power = RedfishPowerControl::new(config(&server)).unwrap();
    let fixture = PowerControlFixture {
        nodes: nodes(&["node1", "node2", "node3"]),
        settle_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(10),
    };
    testkit::power_control::run_all(&power, &fixture)
        .await
        .unwrap();
    assert!(bmc.resets().contains(&"GracefulRestart".to_string()));
}

#[tokio::test]
async fn systems_are_found_by_name_uuid_or_id_and_states_read() {
    let server = MockServer::start().await;
    FakeBmc::new(2, ALL, &[]).mount(&server).await;
    let power = RedfishPowerControl::new(config(&server)).unwrap();
    let states = power
        .power_state(&nodes(&["node1", "uuid-2", "id-1"]))
        .await
        .unwrap();
    assert_eq!(states, [PowerState::On; 3]);

    let error = power.power_state(&nodes(&["node9"])).await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("node9") && text.contains("node1 (id-1)"),
        "{text}"
    );

    let unplaced = RedfishPowerControl::new(RedfishConfig::new()).unwrap();
    let error = unplaced.power_state(&nodes(&["node1"])).await.unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    assert!(error.to_string().contains("[redfish.nodes]"), "{error}");
}

#[tokio::test]
async fn a_refused_power_cycle_falls_back_to_force_restart() {
    let server = MockServer::start().await;
    let bmc = FakeBmc::new(1, ALL, &["PowerCycle"]);
    bmc.mount(&server).await;
    let power = RedfishPowerControl::new(RedfishConfig {
        prefer_power_cycle: true,
        ..config(&server)
    })
    .unwrap();
    let node = nodes(&["node1"]);
    power
        .power(&node, PowerOperation::ForceRestart)
        .await
        .unwrap();
    assert_eq!(bmc.resets(), ["PowerCycle", "ForceRestart"]);
    // A type refused once is not tried again on that system.
    power
        .power(&node, PowerOperation::ForceRestart)
        .await
        .unwrap();
    assert_eq!(bmc.resets(), ["PowerCycle", "ForceRestart", "ForceRestart"]);
}

#[tokio::test]
async fn a_system_without_restart_types_is_turned_off_then_on() {
    let server = MockServer::start().await;
    let bmc = FakeBmc::new(1, &["On", "ForceOff"], &[]);
    bmc.mount(&server).await;
    let power = RedfishPowerControl::new(config(&server)).unwrap();
    let node = nodes(&["node1"]);
    power
        .power(&node, PowerOperation::GracefulRestart)
        .await
        .unwrap();
    assert_eq!(bmc.resets(), ["ForceOff", "On"]);
    assert_eq!(power.power_state(&node).await.unwrap(), [PowerState::On]);

    // Nothing that powers off is offered: the error names what was tried and allowed.
    let server = MockServer::start().await;
    let bmc = FakeBmc::new(1, &["On"], &[]);
    bmc.mount(&server).await;
    let power = RedfishPowerControl::new(config(&server)).unwrap();
    let error = power
        .power(&node, PowerOperation::ForceRestart)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("ForceRestart (not allowed)") && text.contains("it allows On"),
        "{text}"
    );
    assert!(bmc.resets().is_empty(), "{:?}", bmc.resets());
}

#[tokio::test]
async fn on_and_off_are_not_sent_again_when_already_there() {
    let server = MockServer::start().await;
    let bmc = FakeBmc::new(1, ALL, &[]);
    bmc.mount(&server).await;
    let power = RedfishPowerControl::new(config(&server)).unwrap();
    let node = nodes(&["node1"]);
    power.power(&node, PowerOperation::On).await.unwrap();
    power.power(&node, PowerOperation::ForceOff).await.unwrap();
    power.power(&node, PowerOperation::ForceOff).await.unwrap();
    assert_eq!(bmc.resets(), ["ForceOff"]);
}

#[tokio::test]
async fn basic_auth_is_sent_and_a_refusal_names_the_bmc_and_what_to_check() {
    let server = MockServer::start().await;
    // "admin:password"
    Mock::given(header("authorization", "Basic YWRtaW46cGFzc3dvcmQ="))
        .and(path("/redfish/v1/Systems"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Members": []})))
        .mount(&server)
        .await;
    Mock::given(path("/redfish/v1/Systems"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    let with = |password: &str| {
        RedfishPowerControl::new(RedfishConfig {
            auth: RedfishAuth::Basic {
                username: "admin".into(),
                password: password.into(),
            },
            ..config(&server)
        })
        .unwrap()
    };
    let error = with("password")
        .power_state(&nodes(&["node1"]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");

    let error = with("wrong")
        .power_state(&nodes(&["node1"]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&server.uri()), "{text}");
    assert!(
        text.contains("redfish.username") && text.contains("\"admin\""),
        "{text}"
    );
    assert!(!text.contains("wrong"), "{text}");
}

#[tokio::test]
async fn session_auth_logs_in_once_again_after_a_401_and_logs_out() {
    let server = MockServer::start().await;
    let logins = Arc::new(Mutex::new(0u32));
    struct Login(Arc<Mutex<u32>>);
    impl Respond for Login {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            if body != json!({"UserName": "admin", "Password": "secret"}) {
                return ResponseTemplate::new(401);
            }
            let mut count = self.0.lock().unwrap();
            *count += 1;
            ResponseTemplate::new(201)
                .insert_header("X-Auth-Token", format!("token-{count}").as_str())
                .insert_header(
                    "Location",
                    format!("/redfish/v1/SessionService/Sessions/{count}").as_str(),
                )
                .set_body_json(json!({"Id": count.to_string()}))
        }
    }
    Mock::given(method("POST"))
        .and(path("/redfish/v1/SessionService/Sessions"))
        .respond_with(Login(logins.clone()))
        .mount(&server)
        .await;
    // The first session expires after one request.
    Mock::given(method("GET"))
        .and(path("/redfish/v1/Systems"))
        .and(header("X-Auth-Token", "token-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Members": []})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/redfish/v1/Systems"))
        .and(header("X-Auth-Token", "token-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Members": []})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/redfish/v1/Systems"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/redfish/v1/SessionService/Sessions/2"))
        .and(header("X-Auth-Token", "token-2"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let session = |password: &str| {
        RedfishPowerControl::new(RedfishConfig {
            auth: RedfishAuth::Session {
                username: "admin".into(),
                password: password.into(),
            },
            ..config(&server)
        })
        .unwrap()
    };
    let power = session("secret");
    // The node is not among the systems, so they are listed a second time,
    // which meets the expired session: one login again, then the answer.
    let error = power.power_state(&nodes(&["node1"])).await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert_eq!(*logins.lock().unwrap(), 2);
    power.logout().await.unwrap();
    // Logged out: a second logout sends nothing.
    power.logout().await.unwrap();

    let error = session("wrong")
        .power_state(&nodes(&["node1"]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    assert!(error.to_string().contains("session auth"), "{error}");
}

#[tokio::test]
async fn reads_are_retried_and_resets_are_not() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/redfish/v1/Systems"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    let bmc = FakeBmc::new(1, ALL, &[]);
    bmc.mount(&server).await;
    Mock::given(method("POST"))
        .and(path(
            "/redfish/v1/Systems/id-1/Actions/ComputerSystem.Reset",
        ))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let power = RedfishPowerControl::new(config(&server)).unwrap();
    let node = nodes(&["node1"]);
    assert_eq!(power.power_state(&node).await.unwrap(), [PowerState::On]);
    let error = power
        .power(&node, PowerOperation::ForceRestart)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Unavailable {
                backend: "redfish",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unreachable_bmc_is_unavailable_and_named() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let power = RedfishPowerControl::new(RedfishConfig {
        rule: Some(NamingRule {
            bmc_url: url.clone(),
            system: None,
        }),
        retries: 1,
        retry_base_delay: Duration::from_millis(1),
        ..RedfishConfig::new()
    })
    .unwrap();
    let error = power.power_state(&nodes(&["node1"])).await.unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains(&url), "{error}");
}

/// A BMC of `systems` systems answering each request after a pause, one
/// connection per request, counting the most requests it had in flight.
async fn slow_bmc(systems: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let most_seen = most.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (in_flight, most) = (in_flight.clone(), most.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Long enough for the requests let through to overlap.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
                let body = if path == "/redfish/v1/Systems" {
                    json!({"Members": (1..=systems)
                        .map(|index| json!({"@odata.id": format!("/redfish/v1/Systems/node{index}")}))
                        .collect::<Vec<_>>()})
                } else {
                    let id = path.rsplit('/').next().unwrap_or("");
                    json!({"@odata.id": path, "Id": id, "PowerState": "On"})
                };
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let body = body.to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, most_seen)
}

#[tokio::test]
async fn requests_to_one_bmc_host_are_bounded() {
    let (url, most) = slow_bmc(8).await;
    // Two spellings of the same BMC share its bound.
    let other_spelling = format!("{url}/");
    let mut config = RedfishConfig {
        rule: Some(NamingRule {
            bmc_url: url.clone(),
            system: Some("{node}".into()),
        }),
        max_requests_per_bmc: 2,
        ..RedfishConfig::new()
    };
    for index in 5..=8 {
        config.nodes.insert(
            NodeId::from(format!("node{index}")),
            super::SystemLocation {
                bmc_url: other_spelling.clone(),
                system: Some(format!("node{index}")),
            },
        );
    }
    let power = RedfishPowerControl::new(config).unwrap();
    let all: Vec<NodeId> = (1..=8)
        .map(|index| NodeId::from(format!("node{index}")))
        .collect();
    assert_eq!(power.power_state(&all).await.unwrap(), [PowerState::On; 8]);
    let most = most.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=2).contains(&most), "{most} requests in flight at once");
}
