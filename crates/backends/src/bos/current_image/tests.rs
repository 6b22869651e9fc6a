//! The image a node runs, read from BOS v2 components and sessions as the
//! BOS API documents them (wiremock).

use std::time::Duration;

use crus_core::node::NodeId;
use crus_core::ports::{BootOrchestrator, NodeImage};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::bos::BosOrchestrator;
use crate::service::ServiceConfig;

fn config(server: &MockServer) -> ServiceConfig {
    let mut config = ServiceConfig::new(server.uri());
    config.retries = 1;
    config.retry_base_delay = Duration::from_millis(1);
    config.timeout = Duration::from_secs(5);
    config
}

const NEW: (&str, &str, &str) = (
    "s3://boot-images/new/kernel",
    "s3://boot-images/new/initrd",
    "console=ttyS0 root=new",
);
const OLD: (&str, &str, &str) = (
    "s3://boot-images/old/kernel",
    "s3://boot-images/old/initrd",
    "console=ttyS0 root=old",
);

fn artifacts((kernel, initrd, params): (&str, &str, &str)) -> Value {
    json!({"kernel": kernel, "initrd": initrd, "kernel_parameters": params})
}

/// A V2Component as `GET /v2/components` answers it.
fn component(
    id: &str,
    session: &str,
    actual: Value,
    desired: Value,
    status: &str,
    enabled: bool,
) -> Value {
    json!({
        "id": id,
        "actual_state": {"boot_artifacts": actual, "bss_token": "t", "last_updated": "2026-12-01T10:00:00Z"},
        "desired_state": {"boot_artifacts": desired, "configuration": "cfs-1", "bss_token": "t", "last_updated": "2026-12-01T09:50:00Z"},
        "staged_state": {},
        "last_action": {"last_updated": "2026-12-01T10:00:00Z", "action": "actual_state_cleanup", "failed": false},
        "event_stats": {"power_on_attempts": 1, "power_off_graceful_attempts": 1, "power_off_forceful_attempts": 0},
        "status": {"phase": "", "status": status, "status_override": ""},
        "enabled": enabled,
        "error": "",
        "session": session,
        "retry_policy": 3
    })
}

fn node(name: &str) -> NodeId {
    NodeId::from(name)
}

#[tokio::test]
async fn a_node_runs_the_template_of_the_session_that_booted_it_as_desired() {
    let server = MockServer::start().await;
    let ids = "x1c0s0b0n0,x1c0s0b0n1,x1c0s0b0n2,x1c0s0b0n3,x1c0s0b0n4,x1c0s0b0n5";
    Mock::given(method("GET"))
        .and(path("/v2/components"))
        .and(query_param("ids", ids))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            // Booted by session a into what it asked for, settled.
            component(
                "x1c0s0b0n0",
                "a",
                artifacts(NEW),
                artifacts(NEW),
                "stable",
                false
            ),
            // Booted by session old, on the old template.
            component(
                "x1c0s0b0n1",
                "old",
                artifacts(OLD),
                artifacts(OLD),
                "stable",
                false
            ),
            // Session a asked for the new image, the node still runs the old one.
            component(
                "x1c0s0b0n2",
                "a",
                artifacts(OLD),
                artifacts(NEW),
                "stable",
                false
            ),
            // Still being booted by session a.
            component(
                "x1c0s0b0n3",
                "a",
                artifacts(OLD),
                artifacts(NEW),
                "power_on_called",
                true
            ),
            // Its session was cleaned up: cannot tell.
            component(
                "x1c0s0b0n4",
                "gone",
                artifacts(NEW),
                artifacts(NEW),
                "stable",
                false
            ),
            // n5 is not a BOS component at all.
        ])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/sessions/a"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "a", "operation": "reboot", "template_name": "compute-2.5",
            "limit": "x1c0s0b0n0,x1c0s0b0n2,x1c0s0b0n3", "stage": false,
            "components": "x1c0s0b0n0,x1c0s0b0n2,x1c0s0b0n3", "include_disabled": false,
            "status": {"status": "running", "start_time": "2026-12-01T09:50:00Z", "end_time": null, "error": null}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/sessions/old"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "old", "operation": "boot", "template_name": "compute-2.4",
            "limit": "", "stage": false, "components": "x1c0s0b0n1", "include_disabled": false,
            "status": {"status": "complete", "start_time": "2026-11-01T09:50:00Z", "end_time": "2026-11-01T10:10:00Z", "error": null}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/sessions/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "type": "about:blank", "title": "The resource was not found",
            "detail": "Session 'gone' does not exist", "status": 404
        })))
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    bos.current_images_supported().unwrap();
    let nodes: Vec<NodeId> = ids.split(',').map(node).collect();
    let images = bos.current_images(&nodes, "compute-2.5").await.unwrap();
    let image = |image: Option<&str>| image.map(str::to_string);
    assert_eq!(
        images,
        [
            NodeImage {
                node: node("x1c0s0b0n0"),
                image: image(Some("compute-2.5"))
            },
            NodeImage {
                node: node("x1c0s0b0n1"),
                image: image(Some("compute-2.4"))
            },
            NodeImage {
                node: node("x1c0s0b0n2"),
                image: None
            },
            NodeImage {
                node: node("x1c0s0b0n3"),
                image: None
            },
            NodeImage {
                node: node("x1c0s0b0n4"),
                image: None
            },
            NodeImage {
                node: node("x1c0s0b0n5"),
                image: None
            },
        ]
    );
}

#[tokio::test]
async fn a_shutdown_session_does_not_say_which_image_runs() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/components"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([component(
            "x1c0s0b0n0",
            "off",
            artifacts(NEW),
            artifacts(NEW),
            "stable",
            false
        ),])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/sessions/off"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "off", "operation": "shutdown", "template_name": "compute-2.5",
            "status": {"status": "complete"}
        })))
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    let images = bos
        .current_images(&[node("x1c0s0b0n0")], "compute-2.5")
        .await
        .unwrap();
    assert_eq!(images[0].image, None);
}

#[tokio::test]
async fn an_outage_is_an_error_not_an_unknown_image() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/components"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let bos = BosOrchestrator::new(&config(&server)).unwrap();
    assert!(
        bos.current_images(&[node("x1c0s0b0n0")], "compute-2.5")
            .await
            .is_err()
    );
}
