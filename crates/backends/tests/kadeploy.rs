//! `KadeployBootOrchestrator` against wiremock answering with the shapes and
//! status codes of the Kadeploy3 API (4.0, behind a Grid'5000 site path):
//! the request it posts, per-node results with failure reasons, cancel,
//! unknown deployments, malformed templates, credentials, idempotent
//! starts (twice, concurrently, after a restart, after a lost POST answer),
//! configuration errors, retries of what is safe to retry, and the
//! conformance suite against a stateful fake Kadeploy.
#![cfg(feature = "kadeploy")]
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crus_backends::kadeploy::{KadeployBasicAuth, KadeployBootOrchestrator, KadeployConfig};
use crus_core::ports::{BootHandle, BootOrchestrator, BootRequest, NodeBootState, NodeBootStatus};
use crus_core::testkit::{self, BootOrchestratorFixture};
use crus_core::{Error, NodeId};
use serde_json::{Value, json};
use wiremock::matchers::{any, body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Where the Grid'5000 API serves a site's Kadeploy.
const SITE: &str = "/4.0/sites/nantes";
const DOMAIN: &str = "nantes.grid5000.fr";
const TEMPLATE: &str = "debian11-min:2023011315@deploy";
const HOST_8: &str = "econome-8.nantes.grid5000.fr";
const HOST_9: &str = "econome-9.nantes.grid5000.fr";
const WID: &str = "D-eba50da3-e666-4d1e-b884-c9d4de8a3c3c";

fn config(server: &MockServer) -> KadeployConfig {
    KadeployConfig {
        user: Some("crus".to_string()),
        host_domain: Some(DOMAIN.to_string()),
        retries: 2,
        retry_base_delay: Duration::from_millis(1),
        timeout: Duration::from_secs(5),
        ..KadeployConfig::new(format!("{}{SITE}", server.uri()))
    }
}

fn orchestrator(config: &KadeployConfig) -> KadeployBootOrchestrator {
    KadeployBootOrchestrator::new(config).unwrap()
}

fn site(path_in_site: &str) -> String {
    format!("{SITE}{path_in_site}")
}

fn request(key: &str) -> BootRequest {
    BootRequest {
        key: key.to_string(),
        template: TEMPLATE.to_string(),
        nodes: vec![NodeId::from("econome-8"), NodeId::from("econome-9")],
    }
}

fn handle() -> BootHandle {
    BootHandle {
        key: "crus-s1-step-0".to_string(),
        id: WID.to_string(),
    }
}

/// A registered environment as `GET /environments` lists it.
fn environment(name: &str, version: u64, user: &str) -> Value {
    json!({
        "name": name, "version": version, "description": "Debian 11 (min)",
        "author": "support-staff@lists.grid5000.fr", "visibility": "public",
        "destructive": false, "os": "linux",
        "image": {"file": "server:///grid5000/images/debian11-min.tgz", "kind": "tar", "compression": "gzip"},
        "postinstalls": [], "boot": {"kernel": "/vmlinuz", "initrd": "/initrd.img"},
        "filesystem": "ext4", "partition_type": 131, "multipart": false, "user": user
    })
}

/// A deployment as `GET /deployment/{wid}` shows it.
fn deployment(wid: &str, done: bool, ok: &[&str], ko: &[&str], processing: &[&str]) -> Value {
    let mut nodes = json!({"ok": ok, "ko": ko});
    if !done {
        nodes["processing"] = json!(processing);
    }
    json!({
        "wid": wid, "user": "crus", "done": done, "error": false, "start_time": 1467383724,
        "environment": {"id": 1532, "user": "deploy", "name": "debian11-min", "version": 2023011315u64},
        "logs": true, "nodes": nodes, "time": 62.11
    })
}

fn created(wid: &str) -> Value {
    json!({"wid": wid, "resources": {
        "resource": format!("/deployment/{wid}/"),
        "error": format!("/deployment/{wid}/error"),
    }})
}

async fn mount_environments(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(site("/environments")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([environment(
            "debian11-min",
            2023011315,
            "deploy"
        )])))
        .mount(server)
        .await;
}

/// `GET /deployment/{WID}` answering `answer`.
async fn mount_deployment(server: &MockServer, answer: Value) {
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(server)
        .await;
}

async fn mount_listing(server: &MockServer, listing: Value) {
    Mock::given(method("GET"))
        .and(path(site("/deployment")))
        .respond_with(ResponseTemplate::new(200).set_body_json(listing))
        .mount(server)
        .await;
}

/// `GET /deployment` listing nothing the first time, then deployment
/// `WID` running on both hosts: what a POST whose answer was lost leaves.
async fn mount_listing_empty_until_posted(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(site("/deployment")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
    mount_listing(
        server,
        json!([deployment(WID, false, &[], &[], &[HOST_8, HOST_9])]),
    )
    .await;
}

/// `POST /deployment` answering `answer`, which must be sent exactly once.
async fn mount_post_once(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(site("/deployment")))
        .respond_with(answer)
        .expect(1)
        .mount(server)
        .await;
}

/// `boot_status` of [`handle`] with the default configuration.
async fn status_of(server: &MockServer) -> Vec<NodeBootStatus> {
    orchestrator(&config(server))
        .boot_status(&handle())
        .await
        .unwrap()
}

/// Asserts that `reported` is `expected`, node by node in order.
fn assert_states(reported: &[NodeBootStatus], expected: &[(&str, NodeBootState)]) {
    let reported: Vec<(&str, &NodeBootState)> = reported
        .iter()
        .map(|status| (status.node.as_str(), &status.state))
        .collect();
    let expected: Vec<(&str, &NodeBootState)> = expected
        .iter()
        .map(|(node, state)| (*node, state))
        .collect();
    assert_eq!(reported, expected);
}

#[tokio::test]
async fn a_boot_posts_nodes_environment_and_options_and_ends_with_every_node_ok() {
    let server = MockServer::start().await;
    mount_environments(&server).await;
    mount_listing(&server, json!([])).await;
    Mock::given(method("POST"))
        .and(path(site("/deployment")))
        .and(body_json(json!({
            "nodes": [HOST_8, HOST_9],
            "environment": {"kind": "database", "name": "debian11-min", "user": "deploy", "version": 2023011315u64},
            "ssh_authorized_keys": "/home/crus/.ssh/authorized_keys",
            "block_device": "/dev/sda",
            "deploy_partition": "3"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(created(WID)))
        .expect(1)
        .mount(&server)
        .await;
    mount_deployment(&server, deployment(WID, true, &[HOST_8, HOST_9], &[], &[])).await;
    let config = KadeployConfig {
        ssh_authorized_keys: Some("/home/crus/.ssh/authorized_keys".to_string()),
        block_device: Some("/dev/sda".to_string()),
        deploy_partition: Some("3".to_string()),
        ..config(&server)
    };
    let kadeploy = orchestrator(&config);

    let handle = kadeploy
        .start_boot(&request("crus-s1-step-0"))
        .await
        .unwrap();
    assert_eq!(
        handle,
        BootHandle {
            key: "crus-s1-step-0".to_string(),
            id: WID.to_string()
        }
    );
    let reported = kadeploy.boot_status(&handle).await.unwrap();
    assert_states(
        &reported,
        &[
            ("econome-8", NodeBootState::Ok),
            ("econome-9", NodeBootState::Ok),
        ],
    );
}

#[tokio::test]
async fn a_running_deployment_reports_its_processing_nodes_in_progress() {
    let server = MockServer::start().await;
    mount_deployment(&server, deployment(WID, false, &[HOST_8], &[], &[HOST_9])).await;
    let reported = status_of(&server).await;
    assert_states(
        &reported,
        &[
            ("econome-8", NodeBootState::Ok),
            ("econome-9", NodeBootState::InProgress),
        ],
    );
}

#[tokio::test]
async fn ko_nodes_fail_with_the_reason_from_the_error_resource() {
    let server = MockServer::start().await;
    mount_deployment(&server, deployment(WID, true, &[HOST_8], &[HOST_9], &[])).await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}/error"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({HOST_9: "Cannot connect to the node after the reboot (reboot_classical)"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let reported = status_of(&server).await;
    assert_states(
        &reported,
        &[
            ("econome-8", NodeBootState::Ok),
            (
                "econome-9",
                NodeBootState::Failed {
                    reason: "Cannot connect to the node after the reboot (reboot_classical)"
                        .to_string(),
                },
            ),
        ],
    );
}

#[tokio::test]
async fn a_workflow_that_failed_as_a_whole_fails_its_unfinished_nodes_with_its_error() {
    let server = MockServer::start().await;
    let mut failed = deployment(WID, false, &[HOST_8], &[], &[HOST_9]);
    failed["done"] = json!(true);
    failed["error"] = json!(true);
    mount_deployment(&server, failed).await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}/error"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!("the environment image cannot be fetched")),
        )
        .mount(&server)
        .await;
    let reported = status_of(&server).await;
    assert_states(
        &reported,
        &[
            ("econome-8", NodeBootState::Ok),
            (
                "econome-9",
                NodeBootState::Failed {
                    reason: "the environment image cannot be fetched".to_string(),
                },
            ),
        ],
    );
}

#[tokio::test]
async fn an_unreadable_error_resource_still_reports_the_ko_nodes_failed() {
    let server = MockServer::start().await;
    mount_deployment(&server, deployment(WID, true, &[], &[HOST_8, HOST_9], &[])).await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}/error"))))
        .respond_with(ResponseTemplate::new(403).set_body_string("Insufficient rights"))
        .mount(&server)
        .await;
    let reported = status_of(&server).await;
    assert_eq!(reported.len(), 2);
    for status in &reported {
        assert!(
            matches!(&status.state, NodeBootState::Failed { reason }
                if reason.contains("could not be read") && reason.contains("Insufficient rights")),
            "{status:?}"
        );
    }
}

#[tokio::test]
async fn a_successful_deployment_does_not_read_the_error_resource() {
    let server = MockServer::start().await;
    mount_deployment(&server, deployment(WID, true, &[HOST_8, HOST_9], &[], &[])).await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}/error"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(0)
        .mount(&server)
        .await;
    let reported = status_of(&server).await;
    assert!(
        reported
            .iter()
            .all(|status| status.state == NodeBootState::Ok)
    );
}

#[tokio::test]
async fn cancel_deletes_the_deployment_and_an_unknown_one_counts_as_cancelled() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(site(&format!("/deployment/{WID}"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"wid": WID})))
        .expect(1)
        .mount(&server)
        .await;
    // What the 4.0 API answers to a DELETE of an unknown deployment.
    Mock::given(method("DELETE"))
        .and(path(site("/deployment/D-gone")))
        .respond_with(
            ResponseTemplate::new(405)
                .insert_header("Allow", "POST,PUT,GET,HEAD")
                .set_body_string("Method Not Allowed"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let kadeploy = orchestrator(&config(&server));
    kadeploy.cancel_boot(&handle()).await.unwrap();
    let gone = BootHandle {
        key: "k".to_string(),
        id: "D-gone".to_string(),
    };
    kadeploy.cancel_boot(&gone).await.unwrap();
}

#[tokio::test]
async fn a_cancel_refused_for_another_reason_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(site(&format!("/deployment/{WID}"))))
        .respond_with(ResponseTemplate::new(403).set_body_string("Insufficient rights"))
        .mount(&server)
        .await;
    let error = orchestrator(&config(&server))
        .cancel_boot(&handle())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Invalid { message } if message.contains("Insufficient rights")),
        "{error}"
    );
}

#[tokio::test]
async fn status_of_an_unknown_deployment_is_not_found_for_404_and_405() {
    let server = MockServer::start().await;
    for (wid, status) in [("D-unknown-404", 404), ("D-unknown-405", 405)] {
        Mock::given(method("GET"))
            .and(path(site(&format!("/deployment/{wid}"))))
            .respond_with(ResponseTemplate::new(status).set_body_string("Not Found"))
            .expect(1)
            .mount(&server)
            .await;
    }
    let kadeploy = orchestrator(&config(&server));
    for wid in ["D-unknown-404", "D-unknown-405"] {
        let unknown = BootHandle {
            key: "k".to_string(),
            id: wid.to_string(),
        };
        let error = kadeploy.boot_status(&unknown).await.unwrap_err();
        assert!(
            matches!(&error, Error::NotFound { what } if what.contains(wid)),
            "{wid}: {error}"
        );
    }
}

#[tokio::test]
async fn malformed_templates_are_invalid_and_send_nothing() {
    let server = MockServer::start().await;
    let kadeploy = orchestrator(&config(&server));
    for (template, says) in [
        ("", "empty"),
        ("debian 11", "white space"),
        (":12", "name is empty"),
        ("debian11:latest", "not a whole number"),
        ("debian11@", "not a user name"),
        ("debian11@a@b", "not a user name"),
        ("images/debian11", "no '/'"),
        ("ftp://host/image.tgz", "must start with one of"),
        ("http://host/image.zip", "should end with one of"),
    ] {
        let boot = BootRequest {
            template: template.to_string(),
            ..request("k")
        };
        let error = kadeploy.start_boot(&boot).await.unwrap_err();
        assert!(
            matches!(&error, Error::Invalid { message } if message.contains(says)),
            "start_boot({template:?}) should be Invalid saying {says:?}: {error}"
        );
        let error = kadeploy.template_exists(template).await.unwrap_err();
        assert!(
            matches!(error, Error::Invalid { .. }),
            "template_exists({template:?}): {error}"
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn template_exists_filters_the_environments_listing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(site("/environments")))
        .and(query_param("name", "debian11-min"))
        .and(query_param("username", "deploy"))
        .and(query_param("version", "2023011315"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([environment(
            "debian11-min",
            2023011315,
            "deploy"
        )])))
        .mount(&server)
        .await;
    // Without a version, the latest one; a server that ignores the name
    // filter still cannot make another environment count.
    Mock::given(method("GET"))
        .and(path(site("/environments")))
        .and(query_param("last", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([environment(
            "debian11-big",
            3,
            "deploy"
        )])))
        .mount(&server)
        .await;
    let kadeploy = orchestrator(&config(&server));
    assert!(kadeploy.template_exists(TEMPLATE).await.unwrap());
    assert!(!kadeploy.template_exists("debian11-min").await.unwrap());
    assert!(kadeploy.template_exists("debian11-big").await.unwrap());
    // An image is read only when deployed: nothing to ask beforehand.
    let requests = server.received_requests().await.unwrap().len();
    assert!(
        kadeploy
            .template_exists("http://frontend.nantes.grid5000.fr/~me/debian-base.tgz")
            .await
            .unwrap()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), requests);
}

#[tokio::test]
async fn an_image_location_is_deployed_as_an_anonymous_environment() {
    let server = MockServer::start().await;
    mount_listing(&server, json!([])).await;
    Mock::given(method("POST"))
        .and(path(site("/deployment")))
        .and(body_json(json!({
            "nodes": [HOST_8],
            "environment": {"kind": "anonymous", "name": "debian-base", "image": {
                "file": "http://frontend.nantes.grid5000.fr/~me/debian-base.tar.xz",
                "kind": "tar", "compression": "xz"}}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(created(WID)))
        .expect(1)
        .mount(&server)
        .await;
    let boot = BootRequest {
        key: "image".to_string(),
        template: "http://frontend.nantes.grid5000.fr/~me/debian-base.tar.xz".to_string(),
        nodes: vec![NodeId::from("econome-8")],
    };
    let handle = orchestrator(&config(&server))
        .start_boot(&boot)
        .await
        .unwrap();
    assert_eq!(handle.id, WID);
}

#[tokio::test]
async fn credentials_go_with_every_request() {
    let server = MockServer::start().await;
    // "Basic " + base64("crus:secret").
    Mock::given(header("X-Remote-Ident", "crus"))
        .and(header("Authorization", "Basic Y3J1czpzZWNyZXQ="))
        .and(method("GET"))
        .and(path(site("/environments")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([environment(
            "debian11-min",
            2023011315,
            "deploy"
        )])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).set_body_string("Authentication failed"))
        .with_priority(10)
        .mount(&server)
        .await;
    let with_password = KadeployConfig {
        basic_auth: Some(KadeployBasicAuth {
            username: "crus".to_string(),
            password: "secret".to_string(),
        }),
        ..config(&server)
    };
    assert!(!format!("{with_password:?}").contains("secret"));
    assert!(
        orchestrator(&with_password)
            .template_exists(TEMPLATE)
            .await
            .unwrap()
    );

    // Without the password the server refuses, and the error says so and
    // is not retried.
    let error = orchestrator(&config(&server))
        .template_exists(TEMPLATE)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Invalid { message } if message.contains("401") && message.contains("basic_auth")),
        "{error}"
    );
}

#[tokio::test]
async fn start_boot_twice_with_one_key_starts_one_deployment() {
    let server = MockServer::start().await;
    mount_environments(&server).await;
    mount_listing(&server, json!([])).await;
    mount_post_once(
        &server,
        ResponseTemplate::new(200).set_body_json(created(WID)),
    )
    .await;
    let kadeploy = orchestrator(&config(&server));
    let first = kadeploy
        .start_boot(&request("crus-s1-step-0"))
        .await
        .unwrap();
    let again = kadeploy
        .start_boot(&request("crus-s1-step-0"))
        .await
        .unwrap();
    assert_eq!(first, again);

    // The key of that boot cannot name another one.
    let other_nodes = BootRequest {
        nodes: vec![NodeId::from("econome-10")],
        ..request("crus-s1-step-0")
    };
    let error = kadeploy.start_boot(&other_nodes).await.unwrap_err();
    assert!(
        matches!(&error, Error::Conflict { what } if what.contains(WID)),
        "{error}"
    );
}

#[tokio::test]
async fn concurrent_start_boots_with_one_key_start_one_deployment() {
    let server = MockServer::start().await;
    mount_environments(&server).await;
    mount_listing(&server, json!([])).await;
    mount_post_once(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(created(WID))
            .set_delay(Duration::from_millis(200)),
    )
    .await;
    let kadeploy = orchestrator(&config(&server));
    let boot = request("crus-s1-step-0");
    let (first, second) = tokio::join!(kadeploy.start_boot(&boot), kadeploy.start_boot(&boot));
    assert_eq!(first.unwrap(), second.unwrap());
}

#[test]
fn a_configuration_that_cannot_work_is_invalid_and_says_which_setting() {
    let missing_ca = KadeployConfig {
        ca_file: Some("/nonexistent/kadeploy-ca.pem".into()),
        ..KadeployConfig::new("https://api.grid5000.fr/4.0/sites/nantes")
    };
    for (config, says) in [
        (missing_ca, "kadeploy.ca_file"),
        (
            KadeployConfig::new("api.grid5000.fr/nantes"),
            "kadeploy.base_url",
        ),
    ] {
        let error = KadeployBootOrchestrator::new(&config).unwrap_err();
        assert!(
            matches!(&error, Error::Invalid { message } if message.contains(says)),
            "{error}"
        );
    }
}

#[tokio::test]
async fn after_a_restart_start_boot_adopts_the_running_deployment_of_its_nodes() {
    let server = MockServer::start().await;
    mount_environments(&server).await;
    let mut of_someone_else = deployment("D-other-user", false, &[], &[], &[HOST_8, HOST_9]);
    of_someone_else["user"] = json!("alice");
    mount_listing(
        &server,
        json!([
            // Finished: maybe an earlier rollout's, never adopted.
            deployment("D-finished", true, &[HOST_8, HOST_9], &[], &[]),
            // Other nodes.
            deployment("D-other-nodes", false, &[], &[], &[HOST_8]),
            of_someone_else,
            deployment(WID, false, &[HOST_9], &[], &[HOST_8]),
        ]),
    )
    .await;
    Mock::given(method("POST"))
        .and(path(site("/deployment")))
        .respond_with(ResponseTemplate::new(200).set_body_json(created("D-second")))
        .expect(0)
        .mount(&server)
        .await;
    // A new orchestrator: nothing in memory, as after a controller restart.
    let handle = orchestrator(&config(&server))
        .start_boot(&request("crus-s1-step-0"))
        .await
        .unwrap();
    assert_eq!(handle.id, WID);
}

#[tokio::test]
async fn a_post_whose_answer_is_lost_is_looked_for_before_anything_is_posted_again() {
    for (answer, timeout) in [
        // No answer within the timeout.
        (
            ResponseTemplate::new(200)
                .set_body_json(created(WID))
                .set_delay(Duration::from_secs(3)),
            Duration::from_millis(300),
        ),
        // A success whose body crus cannot read (a proxy's page).
        (
            ResponseTemplate::new(200).set_body_string("<html>proxy</html>"),
            Duration::from_secs(5),
        ),
    ] {
        let server = MockServer::start().await;
        mount_environments(&server).await;
        mount_listing_empty_until_posted(&server).await;
        mount_post_once(&server, answer).await;
        let config = KadeployConfig {
            timeout,
            ..config(&server)
        };
        let handle = orchestrator(&config)
            .start_boot(&request("crus-s1-step-0"))
            .await
            .unwrap();
        assert_eq!(handle.id, WID);
        // One POST, checked now rather than when the server is dropped.
        server.verify().await;
    }
}

#[tokio::test]
async fn a_post_that_failed_with_no_deployment_listed_is_retryable_and_not_repeated() {
    let server = MockServer::start().await;
    mount_environments(&server).await;
    mount_listing(&server, json!([])).await;
    mount_post_once(
        &server,
        ResponseTemplate::new(502).set_body_string("Bad Gateway"),
    )
    .await;
    let error = orchestrator(&config(&server))
        .start_boot(&request("crus-s1-step-0"))
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("502"), "{error}");
}

#[tokio::test]
async fn an_unknown_environment_is_not_found_and_nothing_is_posted() {
    let server = MockServer::start().await;
    mount_environments(&server).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("NoMethodError"))
        .expect(0)
        .mount(&server)
        .await;
    let boot = BootRequest {
        template: "debian42-min@deploy".to_string(),
        ..request("k")
    };
    let error = orchestrator(&config(&server))
        .start_boot(&boot)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::NotFound { what } if what.contains("debian42-min")),
        "{error}"
    );
}

#[tokio::test]
async fn a_5xx_on_a_get_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}"))))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(deployment(
            WID,
            true,
            &[HOST_8, HOST_9],
            &[],
            &[],
        )))
        .expect(1)
        .mount(&server)
        .await;
    let reported = status_of(&server).await;
    assert_eq!(reported.len(), 2);
    assert!(
        reported
            .iter()
            .all(|status| status.state == NodeBootState::Ok)
    );
}

#[tokio::test]
async fn a_5xx_that_persists_is_unavailable_after_the_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}"))))
        .respond_with(ResponseTemplate::new(500).set_body_string("Internal Server Error"))
        // The first try and the two retries of `config`.
        .expect(3)
        .mount(&server)
        .await;
    let error = orchestrator(&config(&server))
        .boot_status(&handle())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
}

/// A Kadeploy that keeps its environments and deployments; a deployment is
/// done with every node ok after it was read `POLLS_TO_FINISH` times.
#[derive(Clone, Default)]
struct FakeKadeploy {
    state: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    environments: Vec<Value>,
    deployments: Vec<FakeDeployment>,
    posts: usize,
}

struct FakeDeployment {
    wid: String,
    hosts: Vec<String>,
    environment: Value,
    reads: u32,
}

const POLLS_TO_FINISH: u32 = 2;

impl FakeDeployment {
    fn json(&self) -> Value {
        let done = self.reads >= POLLS_TO_FINISH;
        let mut answer = deployment(&self.wid, done, &[], &[], &[]);
        let hosts = json!(self.hosts);
        if done {
            answer["nodes"]["ok"] = hosts;
        } else {
            answer["nodes"]["processing"] = hosts;
        }
        answer["environment"] = self.environment.clone();
        answer
    }
}

impl Respond for FakeKadeploy {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
        let Some(rest) = request.url.path().strip_prefix(SITE) else {
            return ResponseTemplate::new(404);
        };
        let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["environments"]) => {
                let name = request
                    .url
                    .query_pairs()
                    .find(|(key, _)| key == "name")
                    .map(|(_, value)| value.to_string());
                let listed: Vec<Value> = state
                    .environments
                    .iter()
                    .filter(|environment| {
                        name.as_deref()
                            .is_none_or(|name| environment["name"] == json!(name))
                    })
                    .cloned()
                    .collect();
                ResponseTemplate::new(200).set_body_json(listed)
            }
            ("GET", ["deployment"]) => {
                let listed: Vec<Value> =
                    state.deployments.iter().map(FakeDeployment::json).collect();
                ResponseTemplate::new(200).set_body_json(listed)
            }
            ("POST", ["deployment"]) => {
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                let wanted = &body["environment"];
                let Some(environment) = state
                    .environments
                    .iter()
                    .find(|environment| environment["name"] == wanted["name"])
                    .cloned()
                else {
                    // What Kadeploy answers for an unknown environment.
                    return ResponseTemplate::new(500).set_body_string(
                        "---- NoMethodError ----\nprivate method `select' called",
                    );
                };
                let wid = format!("D-{}", uuid::Uuid::new_v4());
                state.posts += 1;
                state.deployments.push(FakeDeployment {
                    wid: wid.clone(),
                    hosts: serde_json::from_value(body["nodes"].clone()).unwrap(),
                    environment: json!({"id": 1, "name": environment["name"],
                        "version": environment["version"], "user": environment["user"]}),
                    reads: 0,
                });
                ResponseTemplate::new(200).set_body_json(created(&wid))
            }
            ("GET", ["deployment", wid]) => {
                match state.deployments.iter_mut().find(|found| found.wid == *wid) {
                    Some(found) => {
                        found.reads += 1;
                        ResponseTemplate::new(200).set_body_json(found.json())
                    }
                    None => ResponseTemplate::new(404).set_body_string("Not Found"),
                }
            }
            ("GET", ["deployment", _, "error"]) => {
                ResponseTemplate::new(200).set_body_json(json!({}))
            }
            ("DELETE", ["deployment", wid]) => {
                let before = state.deployments.len();
                state.deployments.retain(|found| found.wid != *wid);
                if state.deployments.len() < before {
                    ResponseTemplate::new(200).set_body_json(json!({"wid": wid}))
                } else {
                    ResponseTemplate::new(405).set_body_string("Method Not Allowed")
                }
            }
            _ => ResponseTemplate::new(405).set_body_string("Method Not Allowed"),
        }
    }
}

#[tokio::test]
async fn the_conformance_suite_passes_against_a_stateful_kadeploy() {
    let server = MockServer::start().await;
    let fake = FakeKadeploy::default();
    fake.state.lock().unwrap().environments = vec![
        environment("debian11-min", 2023011315, "deploy"),
        environment("debian11-big", 2023011315, "deploy"),
    ];
    Mock::given(any())
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    let kadeploy = orchestrator(&config(&server));
    let fixture = BootOrchestratorFixture {
        template: TEMPLATE.to_string(),
        nodes: vec![NodeId::from("econome-8"), NodeId::from("econome-9")],
        boot_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(10),
    };
    if let Err(failure) = testkit::boot_orchestrator::run_all(&kadeploy, &fixture).await {
        panic!("{failure}");
    }
    // One boot, started once although the suite asked for it three times.
    assert_eq!(fake.state.lock().unwrap().posts, 1);
}
