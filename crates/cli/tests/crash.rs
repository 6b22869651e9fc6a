//! Crash safety of `crus serve`: kill -9 while nodes drain, and again while
//! they boot; restarted on the same files, the session completes, every node
//! booted exactly once, none left drained.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use crus_backends::sim::SimCluster;
use serde_json::Value;

use common::*;

#[tokio::test]
async fn killed_twice_mid_session_the_server_resumes_without_repeating_a_boot() {
    let dir = tempfile::tempdir().unwrap();
    let db = path_in(dir.path(), "crus.db");
    let state = path_in(dir.path(), "sim.json");
    // The NASA trace starts with a whole-machine job of 1451 s: at 600x the
    // first step drains for about 2.4 s; boots take 20 simulated minutes (2 s).
    let args = [
        "--sim",
        "--no-auth",
        "--db",
        &db,
        "--sim-state",
        &state,
        "--sim-nodes",
        "8",
        "--sim-trace",
        "nasa",
        "--sim-speed",
        "600",
        "--sim-boot-time",
        "20m",
        "--boot-timeout",
        "2h",
        "--poll-interval",
        "10s",
    ];
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
    assert_eq!(finished["state"], "READY");
    assert!(
        said(
            &finished,
            "Upgrade Session Completed: 8 of 8 nodes upgraded"
        ),
        "{finished:#}"
    );
    assert_eq!(server.terminate(), Some(0));

    let cluster = SimCluster::inspect_state_file(std::path::Path::new(&state)).unwrap();
    let report = cluster.report();
    for node in cluster.node_ids() {
        assert_eq!(
            cluster.boot_count(&node),
            1,
            "node {node} booted {} times",
            cluster.boot_count(&node)
        );
    }
    assert_eq!(report.boots, 8);
    assert_eq!(report.reboots_with_running_jobs, 0);
    assert!(
        cluster.drained_nodes().is_empty(),
        "left drained: {:?}",
        cluster.drained_nodes()
    );
    assert_eq!(cluster.group("crus-failed").unwrap_or_default(), Vec::new());
    assert!(report.max_out_of_service <= 4);
}
