//! `KadeployBootOrchestrator` against wiremock answering with the shapes and
//! status codes of the Kadeploy3 API (4.0, behind a Grid'5000 site path):
//! the request it posts (the authorized_keys location sent as it is),
//! per-node results with failure reasons (a `ko` node's from `/state`, a run
//! that failed as a whole failing every node at once with `/error`'s text,
//! whatever shape its `nodes` has), cancel,
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

/// `GET /deployment/{WID}/state` answering `answer`, which must be read once.
async fn mount_state_once(server: &MockServer, answer: Value) {
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}/state"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(server)
        .await;
}

/// `GET /deployment/{WID}/error` answering `{}`, as for a run that did not
/// fail as a whole, which crus must not need.
async fn mount_empty_error_unread(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}/error"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(0)
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_ko_node_fails_with_the_error_and_step_kadeploy_recorded_in_its_state() {
    let server = MockServer::start().await;
    mount_deployment(&server, deployment(WID, true, &[HOST_8], &[HOST_9], &[])).await;
    // What `NodeState#set` leaves: the ok node's steps unset (null), the ko
    // node's error written by the logger as "<macro>-<micro>: <stderr>".
    mount_state_once(
        &server,
        json!({
            HOST_8: {"macro": null, "micro": null, "state": "ok"},
            HOST_9: {"macro": "SetDeploymentEnvUntrusted", "micro": "wait_reboot", "state": "ko",
                     "error": "SetDeploymentEnvUntrusted-wait_reboot: Unreachable after the reboot"}
        }),
    )
    .await;
    mount_empty_error_unread(&server).await;
    let reported = status_of(&server).await;
    assert_states(
        &reported,
        &[
            ("econome-8", NodeBootState::Ok),
            (
                "econome-9",
                NodeBootState::Failed {
                    reason: "SetDeploymentEnvUntrusted-wait_reboot: Unreachable after the reboot"
                        .to_string(),
                },
            ),
        ],
    );
}

#[tokio::test]
async fn a_ko_nodes_reason_names_its_step_and_falls_back_to_a_generic_one_only_without_error() {
    let server = MockServer::start().await;
    mount_deployment(&server, deployment(WID, true, &[], &[HOST_8, HOST_9], &[])).await;
    mount_state_once(
        &server,
        json!({
            HOST_8: {"macro": "BroadcastEnvKascade", "micro": "send_environment", "state": "ko",
                     "error": "Cannot write the image"},
            HOST_9: {"macro": "BootNewEnvKexec", "micro": "reboot", "state": "ko"}
        }),
    )
    .await;
    mount_empty_error_unread(&server).await;
    let reported = status_of(&server).await;
    assert_eq!(
        reported[0].state,
        NodeBootState::Failed {
            reason: "BroadcastEnvKascade-send_environment: Cannot write the image".to_string()
        }
    );
    assert!(
        matches!(&reported[1].state, NodeBootState::Failed { reason }
            if reason.contains("without saying why") && reason.contains("/logs")),
        "{:?}",
        reported[1]
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
async fn an_unreadable_state_resource_still_reports_the_ko_nodes_failed() {
    let server = MockServer::start().await;
    mount_deployment(&server, deployment(WID, true, &[], &[HOST_8, HOST_9], &[])).await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}/state"))))
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

/// A run that failed as a whole, as `work_get` shows it to its owner: no
/// `nodes` key at all (it adds them only when there is no error), and the
/// environment with no id once the run was freed.
fn failed_run(wid: &str) -> Value {
    json!({
        "wid": wid, "user": "crus", "done": true, "error": true, "start_time": 1467383724,
        "environment": {"id": null, "user": "deploy", "name": "debian11-min", "version": 2023011315u64},
        "time": 3.2
    })
}

/// `/error` of a run that failed on a file Kadeploy could not fetch: its own
/// error, so a 400 with `to_msg(errno) -- message` as text (`httpd.rb`).
fn grab_error(file: &str) -> ResponseTemplate {
    ResponseTemplate::new(400)
        .insert_header("X-Application-Error-Code", "5")
        .set_body_string(format!("Invalid file -- Unable to grab the file {file}\n"))
}

#[tokio::test]
async fn a_run_that_failed_as_a_whole_fails_every_node_at_once_with_the_text_of_its_error() {
    let server = MockServer::start().await;
    mount_environments(&server).await;
    mount_listing(&server, json!([])).await;
    mount_post_once(
        &server,
        ResponseTemplate::new(200).set_body_json(created(WID)),
    )
    .await;
    mount_deployment(&server, failed_run(WID)).await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}/error"))))
        .respond_with(grab_error("/home/crus/.ssh/authorized_keys"))
        .mount(&server)
        .await;
    let kadeploy = orchestrator(&config(&server));
    let handle = kadeploy
        .start_boot(&request("crus-s1-step-0"))
        .await
        .unwrap();
    // The first read already fails both: nothing is left to wait for.
    let reported = kadeploy.boot_status(&handle).await.unwrap();
    let reason = "Invalid file -- Unable to grab the file /home/crus/.ssh/authorized_keys";
    assert_states(
        &reported,
        &[
            (
                "econome-8",
                NodeBootState::Failed {
                    reason: reason.to_string(),
                },
            ),
            (
                "econome-9",
                NodeBootState::Failed {
                    reason: reason.to_string(),
                },
            ),
        ],
    );

    // A process that did not start it (a restarted controller) cannot name
    // the hosts, which Kadeploy does not show; it says why instead.
    let error = orchestrator(&config(&server))
        .boot_status(&handle)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains(reason) && error.to_string().contains("failed as a whole"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failed_run_shown_as_a_plain_list_of_hosts_fails_each_of_them() {
    let server = MockServer::start().await;
    // What other users than the owner see: `ret[:nodes] = info[:nodelist]`.
    let mut failed = failed_run(WID);
    failed["nodes"] = json!([HOST_8, HOST_9]);
    failed["user"] = json!("alice");
    mount_deployment(&server, failed).await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}/error"))))
        .respond_with(ResponseTemplate::new(500).set_body_string(
            "---- RuntimeError ----\nThe cache is broken\n---- Stack trace ----\n  x.rb:1\n",
        ))
        .mount(&server)
        .await;
    let reported = status_of(&server).await;
    assert_eq!(reported.len(), 2);
    for status in &reported {
        assert!(
            matches!(&status.state, NodeBootState::Failed { reason }
                if reason.contains("The cache is broken") && !reason.contains("----")),
            "{status:?}"
        );
    }
}

#[tokio::test]
async fn a_failed_run_whose_error_says_nothing_still_fails_its_nodes_with_a_generic_reason() {
    let server = MockServer::start().await;
    let mut failed = failed_run(WID);
    failed["nodes"] = json!([HOST_8]);
    mount_deployment(&server, failed).await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}/error"))))
        .respond_with(ResponseTemplate::new(200).set_body_string("\n"))
        .mount(&server)
        .await;
    let reported = status_of(&server).await;
    assert!(
        matches!(&reported[0].state, NodeBootState::Failed { reason }
            if reason.contains("failed as a whole")),
        "{reported:?}"
    );
}

#[tokio::test]
async fn a_successful_deployment_reads_neither_its_state_nor_its_error() {
    let server = MockServer::start().await;
    mount_deployment(&server, deployment(WID, true, &[HOST_8, HOST_9], &[], &[])).await;
    mount_empty_error_unread(&server).await;
    Mock::given(method("GET"))
        .and(path(site(&format!("/deployment/{WID}/state"))))
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
async fn status_of_an_unknown_deployment_is_not_found_for_404_405_and_invalid_workflow_id() {
    let server = MockServer::start().await;
    for (wid, status, body) in [
        ("D-unknown-404", 404, "Not Found"),
        ("D-unknown-405", 405, "Method Not Allowed"),
        // kadeploy-server itself: `kaerror(INVALID_WORKFLOW_ID)` as a 400.
        ("D-unknown-400", 400, "Invalid workflow ID\n"),
    ] {
        Mock::given(method("GET"))
            .and(path(site(&format!("/deployment/{wid}"))))
            .respond_with(ResponseTemplate::new(status).set_body_string(body))
            .expect(1)
            .mount(&server)
            .await;
    }
    let kadeploy = orchestrator(&config(&server));
    for wid in ["D-unknown-404", "D-unknown-405", "D-unknown-400"] {
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

/// A Kadeploy that keeps its environments and deployments, answering in the
/// shapes of the Kadeploy 3 server (`lib/kadeploy3/server/kaworkflow.rb`):
/// - a deployment is done after it was read `POLLS_TO_FINISH` times; its
///   hosts in `failing` then end `ko` with the error Kadeploy's logger
///   records in `/state` as `"<macro>-<micro>: <stderr>"` (`Debug::Logger#error`
///   in `server/debug.rb`, `NodeState#set` in `common/nodes.rb`), the others
///   `ok` with their steps unset (`Workflow#success!`, `server/workflow.rb`);
///   its `/error` answers `{}` (`work_get_error` returns nothing unless the
///   whole run failed; `{}` as the Grid'5000 API shows it, seed 003);
/// - a deployment whose `ssh_authorized_keys` is not in `fetchable` fails as
///   a whole at once, as when `GrabFile.grab_user_files` cannot fetch it
///   (`server/grabfile.rb`, `common/fetchfile.rb`): `work_get` gives its
///   owner no `nodes` (only added `if !error`) and other users a plain list
///   of hosts (`ret[:nodes] = info[:nodelist]`); `/error` answers the
///   `KadeployError` as text with a 400 (`do_METHOD` in `common/httpd.rb`:
///   `to_msg(errno) -- message`); `/state` answers nothing (`work_get_state`
///   breaks on error; nil is an empty text body).
#[derive(Clone, Default)]
struct FakeKadeploy {
    state: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    environments: Vec<Value>,
    deployments: Vec<FakeDeployment>,
    posts: usize,
    /// Hosts whose deployment ends `ko`.
    failing: Vec<String>,
    /// The authorized_keys locations Kadeploy can fetch; any other fails the
    /// run as a whole.
    fetchable: Vec<String>,
}

struct FakeDeployment {
    wid: String,
    user: String,
    hosts: Vec<String>,
    failing: Vec<String>,
    environment: Value,
    reads: u32,
    /// The error that ended the run as a whole, if one did.
    run_error: Option<String>,
}

const POLLS_TO_FINISH: u32 = 2;

/// The reason the fake's logger records for a failing host.
const FAKE_KO_ERROR: &str = "SetDeploymentEnvUntrusted-wait_reboot: Unreachable after the reboot";

impl FakeDeployment {
    fn done(&self) -> bool {
        self.run_error.is_some() || self.reads >= POLLS_TO_FINISH
    }

    /// `GET /deployment/{wid}` as `viewer` sees it.
    fn json(&self, viewer: &str) -> Value {
        let done = self.done();
        let mut answer = json!({
            "wid": self.wid, "user": self.user, "done": done,
            "error": self.run_error.is_some(), "start_time": 1467383724,
        });
        if viewer != self.user {
            answer["nodes"] = json!(self.hosts);
            return answer;
        }
        answer["environment"] = self.environment.clone();
        if self.run_error.is_none() {
            let (ko, ok): (Vec<&String>, Vec<&String>) = self
                .hosts
                .iter()
                .partition(|host| self.failing.contains(host));
            answer["logs"] = json!(true);
            answer["nodes"] = if done {
                json!({"ok": ok, "ko": ko})
            } else {
                json!({"ok": [], "ko": [], "processing": self.hosts})
            };
            answer["time"] = json!(62.11);
        }
        answer
    }

    /// `GET /deployment/{wid}/state`.
    fn states(&self) -> ResponseTemplate {
        if self.run_error.is_some() {
            return ResponseTemplate::new(200).set_body_string("\n");
        }
        let states: serde_json::Map<String, Value> = self
            .hosts
            .iter()
            .map(|host| {
                let state = if !self.done() {
                    json!({"macro": "SetDeploymentEnvUntrusted", "micro": "reboot", "state": "ok"})
                } else if self.failing.contains(host) {
                    json!({"macro": "SetDeploymentEnvUntrusted", "micro": "wait_reboot",
                           "state": "ko", "error": FAKE_KO_ERROR})
                } else {
                    json!({"macro": null, "micro": null, "state": "ok"})
                };
                (host.clone(), state)
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(states)
    }

    /// `GET /deployment/{wid}/error`.
    fn error(&self) -> ResponseTemplate {
        match &self.run_error {
            Some(error) => ResponseTemplate::new(400)
                .insert_header("X-Application-Error-Code", "5")
                .set_body_string(format!("{error}\n")),
            None => ResponseTemplate::new(200).set_body_json(json!({})),
        }
    }
}

impl Respond for FakeKadeploy {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
        let Some(rest) = request.url.path().strip_prefix(SITE) else {
            return ResponseTemplate::new(404);
        };
        let viewer = request
            .headers
            .get("X-Remote-Ident")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("crus")
            .to_string();
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
                let listed: Vec<Value> = state
                    .deployments
                    .iter()
                    .map(|deployment| deployment.json(&viewer))
                    .collect();
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
                // The keys file is fetched once the run started, so a file
                // that cannot be fetched fails the run, not the POST.
                let run_error = body["ssh_authorized_keys"].as_str().and_then(|keys| {
                    (!state.fetchable.iter().any(|fetchable| fetchable == keys))
                        .then(|| format!("Invalid file -- Unable to grab the file {keys}"))
                });
                let wid = format!("D-{}", uuid::Uuid::new_v4());
                state.posts += 1;
                let failing = state.failing.clone();
                state.deployments.push(FakeDeployment {
                    wid: wid.clone(),
                    user: viewer,
                    hosts: serde_json::from_value(body["nodes"].clone()).unwrap(),
                    failing,
                    environment: json!({"id": 1, "name": environment["name"],
                        "version": environment["version"], "user": environment["user"]}),
                    reads: 0,
                    run_error,
                });
                ResponseTemplate::new(200).set_body_json(created(&wid))
            }
            ("GET", ["deployment", wid, rest @ ..]) => {
                let Some(found) = state.deployments.iter_mut().find(|found| found.wid == *wid)
                else {
                    // `kaerror(INVALID_WORKFLOW_ID)` in `workflow_get`.
                    return ResponseTemplate::new(400)
                        .insert_header("X-Application-Error-Code", "1")
                        .set_body_string("Invalid workflow ID\n");
                };
                match rest {
                    [] => {
                        found.reads += 1;
                        ResponseTemplate::new(200).set_body_json(found.json(&viewer))
                    }
                    ["state"] => found.states(),
                    ["error"] => found.error(),
                    _ => ResponseTemplate::new(404),
                }
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

/// A wiremock server answering with `fake`.
async fn serve(fake: &FakeKadeploy) -> MockServer {
    let server = MockServer::start().await;
    fake.state.lock().unwrap().environments = vec![
        environment("debian11-min", 2023011315, "deploy"),
        environment("debian11-big", 2023011315, "deploy"),
    ];
    Mock::given(any())
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    server
}

/// `boot_status` of `handle` until no node is in progress (a few reads).
async fn final_states(
    kadeploy: &KadeployBootOrchestrator,
    handle: &BootHandle,
) -> Vec<NodeBootStatus> {
    for _ in 0..10 {
        let reported = kadeploy.boot_status(handle).await.unwrap();
        if reported
            .iter()
            .all(|status| status.state != NodeBootState::InProgress)
        {
            return reported;
        }
    }
    panic!("the deployment did not end");
}

#[tokio::test]
async fn on_the_stateful_kadeploy_a_ko_node_fails_alone_with_the_reason_in_its_state() {
    let fake = FakeKadeploy::default();
    fake.state.lock().unwrap().failing = vec![HOST_9.to_string()];
    let server = serve(&fake).await;
    let kadeploy = orchestrator(&config(&server));
    let handle = kadeploy
        .start_boot(&request("crus-s1-step-0"))
        .await
        .unwrap();
    let reported = final_states(&kadeploy, &handle).await;
    assert_states(
        &reported,
        &[
            ("econome-8", NodeBootState::Ok),
            (
                "econome-9",
                NodeBootState::Failed {
                    reason: FAKE_KO_ERROR.to_string(),
                },
            ),
        ],
    );
}

#[tokio::test]
async fn on_the_stateful_kadeploy_keys_it_cannot_fetch_fail_every_node_at_the_first_read() {
    let fake = FakeKadeploy::default();
    fake.state.lock().unwrap().fetchable = vec!["/home/crus/.ssh/authorized_keys".to_string()];
    let server = serve(&fake).await;
    let missing = "/home/crus/.ssh/no_such_keys";
    let config = KadeployConfig {
        ssh_authorized_keys: Some(missing.to_string()),
        ..config(&server)
    };
    let kadeploy = orchestrator(&config);
    let handle = kadeploy
        .start_boot(&request("crus-s1-step-0"))
        .await
        .unwrap();
    let reported = kadeploy.boot_status(&handle).await.unwrap();
    let reason = format!("Invalid file -- Unable to grab the file {missing}");
    assert_states(
        &reported,
        &[
            (
                "econome-8",
                NodeBootState::Failed {
                    reason: reason.clone(),
                },
            ),
            ("econome-9", NodeBootState::Failed { reason }),
        ],
    );
}

#[tokio::test]
async fn the_authorized_keys_location_is_sent_as_it_is_and_keys_text_is_refused() {
    for location in [
        "/home/crus/.ssh/authorized_keys",
        "server:///etc/kadeploy3/keys/crus",
        "https://frontend.nantes.grid5000.fr/~crus/authorized_keys",
    ] {
        let fake = FakeKadeploy::default();
        fake.state.lock().unwrap().fetchable = vec![location.to_string()];
        let server = serve(&fake).await;
        let config = KadeployConfig {
            ssh_authorized_keys: Some(location.to_string()),
            ..config(&server)
        };
        let kadeploy = orchestrator(&config);
        let handle = kadeploy
            .start_boot(&request("crus-s1-step-0"))
            .await
            .unwrap();
        let posted: Vec<Value> = server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|request| request.method.as_str() == "POST")
            .map(|request| serde_json::from_slice(&request.body).unwrap())
            .collect();
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0]["ssh_authorized_keys"], json!(location));
        let reported = final_states(&kadeploy, &handle).await;
        assert!(
            reported
                .iter()
                .all(|status| status.state == NodeBootState::Ok),
            "{location}: {reported:?}"
        );
    }
    for (keys, says) in [
        (
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake crus@frontend",
            "white space",
        ),
        ("ftp://frontend/keys", "server://"),
        ("", "empty"),
    ] {
        let config = KadeployConfig {
            ssh_authorized_keys: Some(keys.to_string()),
            ..KadeployConfig::new("https://api.grid5000.fr/4.0/sites/nantes")
        };
        let error = KadeployBootOrchestrator::new(&config).unwrap_err();
        assert!(
            matches!(&error, Error::Invalid { message }
                if message.contains("kadeploy.ssh_authorized_keys") && message.contains(says)),
            "{keys:?}: {error}"
        );
    }
}

#[tokio::test]
async fn the_conformance_suite_passes_against_a_stateful_kadeploy() {
    let fake = FakeKadeploy::default();
    let server = serve(&fake).await;
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

/// A node's record in `GET /nodes`, as the Kadeploy API document shows it.
fn node_record(state: &str, name: &str, version: u64, user: &str) -> Value {
    json!({"state": state, "user": "crus", "environment": {"name": name, "version": version, "user": user}})
}

#[tokio::test]
async fn current_images_say_which_nodes_run_the_template_s_environment() {
    let server = MockServer::start().await;
    // The site's Kadeploy serves the records under kadeploy/nodes only.
    Mock::given(method("GET"))
        .and(path(site("/nodes")))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(site("/kadeploy/nodes")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            HOST_8: node_record("deployed", "debian11-min", 2023011315, "deploy"),
            HOST_9: node_record("deployed", "debian11-min", 2022010100, "deploy"),
            "econome-10.nantes.grid5000.fr": node_record("deploying", "debian11-min", 2023011315, "deploy"),
            "econome-11.nantes.grid5000.fr": node_record("deployed", "debian11-big", 2023011315, "deploy"),
        })))
        .mount(&server)
        .await;
    // Without a version the template is the latest one listed.
    Mock::given(method("GET"))
        .and(path(site("/environments")))
        .and(query_param("last", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([environment(
            "debian11-min",
            2023011315,
            "deploy"
        )])))
        .mount(&server)
        .await;
    let kadeploy = orchestrator(&config(&server));
    kadeploy.current_images_supported().unwrap();
    let nodes: Vec<NodeId> = [
        "econome-8",
        "econome-9",
        "econome-10",
        "econome-11",
        "econome-12",
    ]
    .into_iter()
    .map(NodeId::from)
    .collect();
    let on = |images: Vec<crus_core::ports::NodeImage>| -> Vec<bool> {
        images.iter().map(|image| image.image.is_some()).collect()
    };
    let pinned = kadeploy.current_images(&nodes, TEMPLATE).await.unwrap();
    assert_eq!(pinned[0].image.as_deref(), Some(TEMPLATE));
    // n9 runs an older version, n10 is still being deployed, n11 runs
    // another environment, n12 is unknown to Kadeploy.
    assert_eq!(on(pinned), [true, false, false, false, false]);
    let latest = kadeploy
        .current_images(&nodes, "debian11-min@deploy")
        .await
        .unwrap();
    assert_eq!(on(latest), [true, false, false, false, false]);
    // Another environment: none runs it.
    let other = kadeploy
        .current_images(&nodes, "debian11-min:2022010100@deploy")
        .await
        .unwrap();
    assert_eq!(on(other), [false, true, false, false, false]);
    // An image URL is an anonymous environment: cannot tell, nothing asked.
    let requests = server.received_requests().await.unwrap().len();
    let image = kadeploy
        .current_images(
            &nodes,
            "http://frontend.nantes.grid5000.fr/~me/debian-base.tgz",
        )
        .await
        .unwrap();
    assert_eq!(on(image), [false; 5]);
    assert_eq!(server.received_requests().await.unwrap().len(), requests);
}
