//! Tests of the HSM inventory against wiremock: each call's request and
//! answer handling, and the conformance suite against a stateful fake HSM.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crus_core::error::Error;
use crus_core::node::NodeId;
use crus_core::ports::Inventory;
use crus_core::testkit::{self, InventoryFixture};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::HsmInventory;
use crate::service::ServiceConfig;

fn config(server: &MockServer) -> ServiceConfig {
    let mut config = ServiceConfig::new(server.uri());
    config.retries = 2;
    config.retry_base_delay = Duration::from_millis(1);
    config.timeout = Duration::from_secs(5);
    config
}

fn problem(status: u16, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "type": "about:blank", "title": "x", "detail": detail, "status": status
    }))
}

#[tokio::test]
async fn group_members_reads_ids_of_the_lower_cased_label() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/hsm/v2/groups/blue"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "label": "blue", "description": "", "members": {"ids": ["x1c0s1b0n0", "x1c0s1b0n1"]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let hsm = HsmInventory::new(&config(&server)).unwrap();
    let members = hsm.group_members("Blue").await.unwrap();
    assert_eq!(
        members,
        vec![NodeId::from("x1c0s1b0n0"), NodeId::from("x1c0s1b0n1")]
    );
}

#[tokio::test]
async fn missing_group_is_not_found_and_create_conflict_is_conflict() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/hsm/v2/groups/red"))
        .respond_with(problem(404, "No such group: red"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hsm/v2/groups"))
        .and(body_json(
            json!({"label": "red", "description": "created by crus", "members": {"ids": []}}),
        ))
        .respond_with(problem(
            409,
            "operation would conflict with an existing group that has the same label.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let hsm = HsmInventory::new(&config(&server)).unwrap();
    let error = hsm.group_members("red").await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("No such group: red"), "{error}");
    let error = hsm.create_group("RED").await.unwrap_err();
    assert!(matches!(error, Error::Conflict { .. }), "{error:?}");
}

#[tokio::test]
async fn add_members_posts_each_node_and_accepts_already_a_member() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hsm/v2/groups/blue/members"))
        .and(body_json(json!({"id": "x1c0s1b0n0"})))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!([{"URI": "/hsm/v2/groups/blue/members/x1c0s1b0n0"}])),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hsm/v2/groups/blue/members"))
        .and(body_json(json!({"id": "x1c0s1b0n1"})))
        .respond_with(problem(
            409,
            "operation would conflict with an existing member in the same group.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let hsm = HsmInventory::new(&config(&server)).unwrap();
    hsm.add_members("blue", &["x1c0s1b0n0".into(), "x1c0s1b0n1".into()])
        .await
        .unwrap();
}

#[tokio::test]
async fn remove_members_tells_missing_member_from_missing_group() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/hsm/v2/groups/blue/members/x1c0s1b0n0"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"code": 0, "message": "deleted 1 entry"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/hsm/v2/groups/blue/members/x1c0s1b0n1"))
        .respond_with(problem(404, "group has no such member."))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/hsm/v2/groups/gone/members/x1c0s1b0n0"))
        .respond_with(problem(404, "No such group: gone"))
        .expect(1)
        .mount(&server)
        .await;
    let hsm = HsmInventory::new(&config(&server)).unwrap();
    hsm.remove_members("blue", &["x1c0s1b0n0".into(), "x1c0s1b0n1".into()])
        .await
        .unwrap();
    let error = hsm
        .remove_members("gone", &["x1c0s1b0n0".into()])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn server_errors_are_retried_then_unavailable_and_client_errors_are_not() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/hsm/v2/groups/blue"))
        .respond_with(problem(503, "DB query failed."))
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/hsm/v2/groups/bad"))
        .respond_with(problem(400, "Invalid group label."))
        .expect(1)
        .mount(&server)
        .await;
    let hsm = HsmInventory::new(&config(&server)).unwrap();
    let error = hsm.group_members("blue").await.unwrap_err();
    assert!(
        matches!(error, Error::Unavailable { backend: "hsm", .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("/hsm/v2/groups/blue"), "{error}");
    let error = hsm.group_members("bad").await.unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut config = ServiceConfig::new(format!("http://{address}"));
    config.retry_base_delay = Duration::from_millis(1);
    let hsm = HsmInventory::new(&config).unwrap();
    let error = hsm.group_members("blue").await.unwrap_err();
    assert!(
        matches!(error, Error::Unavailable { backend: "hsm", .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn node_facts_queries_components_and_keeps_the_request_order() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/hsm/v2/State/Components"))
        .and(query_param("type", "Node"))
        .and(query_param("id", "x1c0s1b0n1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"Components": [
                {"ID": "x1c0s1b0n0", "Type": "Node", "State": "Ready", "Enabled": true, "NID": 1},
                {"ID": "x1c0s1b0n1", "Type": "Node", "State": "Off", "Enabled": false, "NID": 2}
            ]})),
        )
        .mount(&server)
        .await;
    let hsm = HsmInventory::new(&config(&server)).unwrap();
    let facts = hsm
        .node_facts(&["x1c0s1b0n1".into(), "x1c0s1b0n0".into()])
        .await
        .unwrap();
    assert_eq!(facts[0].id, NodeId::from("x1c0s1b0n1"));
    assert_eq!(facts[0].nid, Some(2));
    assert!(!facts[0].enabled);
    assert_eq!(facts[1].state.as_deref(), Some("Ready"));
    assert!(facts[1].enabled);
    let error = hsm
        .node_facts(&["x1c0s1b0n1".into(), "x9c0s0b0n0".into()])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
}

/// A fake HSM holding groups in memory, answering as `hms-smd` does.
struct FakeHsm {
    groups: Mutex<BTreeMap<String, Vec<String>>>,
    nodes: Vec<String>,
}

impl FakeHsm {
    fn answer(&self, request: &Request) -> ResponseTemplate {
        let mut groups = self
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let segments: Vec<&str> = request
            .url
            .path()
            .trim_start_matches('/')
            .split('/')
            .collect();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["hsm", "v2", "groups", label]) => match groups.get(*label) {
                Some(ids) => ResponseTemplate::new(200).set_body_json(json!({
                    "label": label, "description": "", "members": {"ids": ids}
                })),
                None => problem(404, &format!("No such group: {label}")),
            },
            ("POST", ["hsm", "v2", "groups"]) => {
                let label = body["label"].as_str().unwrap_or_default().to_string();
                if groups.contains_key(&label) {
                    return problem(
                        409,
                        "operation would conflict with an existing group that has the same label.",
                    );
                }
                groups.insert(label.clone(), Vec::new());
                ResponseTemplate::new(201)
                    .set_body_json(json!([{"URI": format!("/hsm/v2/groups/{label}")}]))
            }
            ("POST", ["hsm", "v2", "groups", label, "members"]) => {
                let Some(ids) = groups.get_mut(*label) else {
                    return problem(404, &format!("No such group: {label}"));
                };
                let id = body["id"].as_str().unwrap_or_default().to_string();
                if ids.contains(&id) {
                    return problem(
                        409,
                        "operation would conflict with an existing member in the same group.",
                    );
                }
                ids.push(id);
                ResponseTemplate::new(201).set_body_json(json!([{"URI": "x"}]))
            }
            ("DELETE", ["hsm", "v2", "groups", label, "members", id]) => {
                let Some(ids) = groups.get_mut(*label) else {
                    return problem(404, &format!("No such group: {label}"));
                };
                let before = ids.len();
                ids.retain(|member| member != id);
                if ids.len() == before {
                    return problem(404, "group has no such member.");
                }
                ResponseTemplate::new(200)
                    .set_body_json(json!({"code": 0, "message": "deleted 1 entry"}))
            }
            ("GET", ["hsm", "v2", "State", "Components"]) => {
                let components: Vec<Value> = request
                    .url
                    .query_pairs()
                    .filter(|(key, _)| key == "id")
                    .filter(|(_, id)| self.nodes.iter().any(|node| node == id))
                    .map(|(_, id)| json!({"ID": id, "Type": "Node", "State": "Ready", "Enabled": true}))
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({"Components": components}))
            }
            _ => problem(400, "unexpected request"),
        }
    }
}

impl Respond for FakeHsm {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.answer(request)
    }
}

#[tokio::test]
async fn passes_the_inventory_conformance_suite() {
    let server = MockServer::start().await;
    let nodes = vec!["x1000c0s0b0n0".to_string(), "x1000c0s0b0n1".to_string()];
    let fake = FakeHsm {
        groups: Mutex::new(BTreeMap::from([("compute".to_string(), nodes.clone())])),
        nodes: nodes.clone(),
    };
    Mock::given(wiremock::matchers::any())
        .respond_with(fake)
        .mount(&server)
        .await;
    let hsm = HsmInventory::new(&config(&server)).unwrap();
    let fixture = InventoryFixture::new("compute", nodes.into_iter().map(NodeId::from).collect());
    if let Err(failure) = testkit::inventory::run_all(&hsm, &fixture).await {
        panic!("{failure}");
    }
}
