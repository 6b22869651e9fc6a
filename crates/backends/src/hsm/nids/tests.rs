//! Tests of the NID listing against wiremock.

use std::collections::HashMap;
use std::time::Duration;

use crus_core::error::Error;
use crus_core::node::NodeId;
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::hsm::HsmInventory;
use crate::service::ServiceConfig;

fn config(uri: String) -> ServiceConfig {
    let mut config = ServiceConfig::new(uri);
    config.retries = 1;
    config.retry_base_delay = Duration::from_millis(1);
    config.timeout = Duration::from_secs(5);
    config
}

#[tokio::test]
async fn node_nids_lists_every_node_with_a_nid_in_one_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/hsm/v2/State/Components"))
        .and(query_param("type", "Node"))
        .and(query_param("nidonly", "true"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"Components": [
                {"ID": "x1000c0s0b0n0", "Type": "Node", "NID": 1},
                {"ID": "x1000c0s0b0n1", "Type": "Node", "NID": 2},
                // A node HSM has not given a NID yet: left out.
                {"ID": "x1000c0s1b0n0", "Type": "Node"},
                // Whole components, as an HSM that ignores `nidonly` sends them.
                {"ID": "x3000c0s19b1n0", "Type": "Node", "State": "Ready", "Role": "Application",
                 "Enabled": true, "NID": 49169248}
            ]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let hsm = HsmInventory::new(&config(server.uri())).unwrap();
    let nids = hsm.node_nids().await.unwrap();
    assert_eq!(
        nids,
        HashMap::from([
            (NodeId::from("x1000c0s0b0n0"), 1),
            (NodeId::from("x1000c0s0b0n1"), 2),
            (NodeId::from("x3000c0s19b1n0"), 49_169_248),
        ])
    );
}

#[tokio::test]
async fn node_nids_of_an_empty_hsm_is_empty() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/hsm/v2/State/Components"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Components": []})))
        .mount(&server)
        .await;
    let hsm = HsmInventory::new(&config(server.uri())).unwrap();
    assert!(hsm.node_nids().await.unwrap().is_empty());
}

#[tokio::test]
async fn node_nids_of_an_unreachable_or_failing_hsm_is_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/hsm/v2/State/Components"))
        .respond_with(ResponseTemplate::new(503))
        .expect(2)
        .mount(&server)
        .await;
    let hsm = HsmInventory::new(&config(server.uri())).unwrap();
    let error = hsm.node_nids().await.unwrap_err();
    assert!(
        matches!(error, Error::Unavailable { backend: "hsm", .. }),
        "{error:?}"
    );

    // Nothing listens on a port just freed.
    let address = server.address().to_owned();
    drop(server);
    let hsm = HsmInventory::new(&config(format!("http://{address}"))).unwrap();
    let error = hsm.node_nids().await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
}
