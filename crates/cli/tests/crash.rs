//! Crash safety of `crus serve`: kill -9 while nodes drain, and again while
//! they boot; restarted on the same files, the session completes, every node
//! booted exactly once, none left drained.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use serde_json::Value;

use common::*;

#[tokio::test]
async fn killed_twice_mid_session_the_server_resumes_without_repeating_a_boot() {
    let dir = tempfile::tempdir().unwrap();
    let db = path_in(dir.path(), "crus.db");
    let state = path_in(dir.path(), "sim.json");
    let mut args = vec![
        "--sim",
        "--no-auth",
        "--db",
        &db,
        "--sim-state",
        &state,
        "--boot-timeout",
        "2h",
    ];
    args.extend(SMALL_NASA_CLUSTER);
    let http = client();

    let server = Server::start(&args, &[]);
    let created: Value = http
        .post(format!("{}/session", server.url))
        .json(&session_body(4))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["upgrade_id"].as_str().unwrap().to_string();
    let draining = wait_for(
        &http,
        &server.url,
        None,
        &id,
        Duration::from_secs(30),
        |s| said(s, "Step 0 started: draining"),
    )
    .await;
    assert!(
        !said(&draining, "Step 0: 4 nodes drained"),
        "killed while draining: {draining:#}"
    );
    server.kill_9();

    let server = Server::start(&args, &[]);
    let booting = wait_for(
        &http,
        &server.url,
        None,
        &id,
        Duration::from_secs(60),
        |s| said(s, "Step 0: boot of 4 nodes started"),
    )
    .await;
    assert!(
        !said(&booting, "Step 0 finished"),
        "killed while booting: {booting:#}"
    );
    server.kill_9();

    let server = Server::start(&args, &[]);
    let finished = wait_for(
        &http,
        &server.url,
        None,
        &id,
        Duration::from_secs(120),
        |s| s["completed"] == true,
    )
    .await;
    assert_all_eight_upgraded(&finished);
    assert_eq!(server.terminate(), Some(0));
    assert_every_node_booted_once(std::path::Path::new(&state));
}
