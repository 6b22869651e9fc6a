//! The fault soak: session after session on the real `crus serve --sim`
//! binary with a fifth of every call to the simulated backends failing
//! (inventory, workload manager, boots, power; half before reaching the
//! cluster, half as a timeout after taking effect), optionally a share of
//! the session store's writes refused as a failing disk would
//! (`CRUS_SOAK_STORE_FAULT_RATE`), boots failing at random,
//! and operators pausing and resuming in bursts. After each session:
//! it finished, or halted by its failure budget and was deleted; no node is
//! left out of service by crus; no node was booted twice.
//!
//! Bounded in time: about `CRUS_SOAK_SECONDS` seconds of sessions (30 by
//! default), then the session in progress finishes. Run it longer with, e.g.,
//! `CRUS_SOAK_SECONDS=1800 cargo test -p crus-cli --all-features --test soak -- --nocapture`;
//! it prints its figures at the end.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crus_backends::sim::SimCluster;
use crus_core::NodeId;
use serde_json::json;

use common::*;

const TOKEN: &str = "soak-token-0123456789abcdef";

/// Nodes of the simulated cluster.
const NODES: usize = 24;

/// How long one session may take before the soak gives up on it.
const SESSION_LIMIT: Duration = Duration::from_secs(120);

/// The soak's length, from `CRUS_SOAK_SECONDS`.
fn soak_duration() -> Duration {
    let seconds = std::env::var("CRUS_SOAK_SECONDS")
        .ok()
        .map(|value| {
            value
                .parse::<u64>()
                .expect("CRUS_SOAK_SECONDS is a whole number of seconds")
        })
        .unwrap_or(30);
    Duration::from_secs(seconds)
}

/// The share of session store writes refused, from
/// `CRUS_SOAK_STORE_FAULT_RATE` (0 by default). With both store and port
/// faults, long runs have shown a session held for over two minutes (halted
/// while its state was unsaved, or waiting on retries): a liveness problem
/// still open, so CI soaks the ports only and the store's failures are
/// tested on their own (`store_failures.rs`, the controller's tests).
fn store_fault_rate() -> String {
    std::env::var("CRUS_SOAK_STORE_FAULT_RATE").unwrap_or_else(|_| "0".to_string())
}

/// Boots of each node so far, from the simulated cluster's state file.
fn boots(state: &Path) -> BTreeMap<NodeId, u32> {
    let cluster = SimCluster::inspect_state_file(state).unwrap();
    cluster
        .node_ids()
        .into_iter()
        .map(|node| {
            let boots = cluster.boot_count(&node);
            (node, boots)
        })
        .collect()
}

/// The nodes crus holds out of service while no session runs: drained
/// without being marked failed.
fn left_out_of_service(state: &Path) -> Vec<NodeId> {
    let cluster = SimCluster::inspect_state_file(state).unwrap();
    let failed = cluster.failed_marked_nodes();
    cluster
        .drained_nodes()
        .into_iter()
        .filter(|node| !failed.contains(node))
        .collect()
}

async fn post(client: &reqwest::Client, url: String) -> reqwest::StatusCode {
    match client.post(url).bearer_auth(TOKEN).send().await {
        Ok(response) => response.status(),
        Err(error) => panic!("the server does not answer: {error}"),
    }
}

/// Sends a request again while the server answers 503, which it does when
/// the faulty store refused the write (nothing was changed): a client
/// retries, as `Retry-After` says. Gives the last answer.
async fn until_not_503(mut send: impl AsyncFnMut() -> reqwest::Response) -> reqwest::Response {
    for _ in 0..50 {
        let response = send().await;
        if response.status() != 503 {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server answered 503 fifty times in a row");
}

/// Creates a session, again while the store refuses the write.
async fn create(client: &reqwest::Client, server: &str, body: &serde_json::Value) -> String {
    let response = until_not_503(async || {
        client
            .post(format!("{server}/session"))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    })
    .await;
    let status = response.status();
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 201, "POST /session: {created:#}");
    created["upgrade_id"].as_str().unwrap().to_string()
}

/// Whether `session` halted because more nodes failed than its budget (4).
fn halted_by_its_budget(session: &serde_json::Value) -> bool {
    let failed = session["nodes"]["failed"].as_u64().unwrap_or(0)
        + session["nodes"]["failing"].as_u64().unwrap_or(0);
    session["phase"] == "halted" && failed > 4
}

/// Figures of a soak, printed at its end.
#[derive(Debug, Default)]
struct Figures {
    sessions: u32,
    completed: u32,
    halted_and_deleted: u32,
    nodes_upgraded: u64,
    nodes_failed: u64,
    pauses_and_resumes: u32,
    largest_status_bytes: usize,
}

#[tokio::test]
async fn sessions_under_faults_finish_or_halt_leave_no_node_out_and_boot_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sim.json");
    let nodes = NODES.to_string();
    let _server = Server::start_logged(
        &[
            "--sim",
            "--sim-nodes",
            &nodes,
            "--sim-trace",
            "none",
            "--sim-speed",
            "600",
            "--sim-fail-rate",
            "0.1",
            "--sim-port-fault-rate",
            "0.2",
            "--sim-store-fault-rate",
            &store_fault_rate(),
            "--sim-state",
            &path_in(dir.path(), "sim.json"),
            "--db",
            &path_in(dir.path(), "crus.db"),
            "--token",
            TOKEN,
        ],
        // One worker thread: a long soak must not take more than one core.
        &[("TOKIO_WORKER_THREADS", "1")],
        &dir.path().join("crus.log"),
    );
    let server = _server.url.clone();
    let client = client();
    let started = Instant::now();
    let mut figures = Figures::default();

    while figures.sessions == 0 || started.elapsed() < soak_duration() {
        figures.sessions += 1;
        let before = boots(&state);
        let mut body = session_body(6);
        // Retries of refused store writes wait in wall time, ten simulated
        // minutes a second at 600x: a boot timeout of simulated hours keeps
        // such waits from failing nodes that booted.
        body["policy"] = json!({"max_failures": 4, "boot_timeout": "4h"});
        let id = create(&client, &server, &body).await;

        // A burst of pauses and resumes from several clients while nodes boot.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut burst = Vec::new();
        for client_number in 0..4 {
            let client = client.clone();
            let base = format!("{server}/session/{id}");
            burst.push(tokio::spawn(async move {
                for round in 0..10 {
                    let verb = if (round + client_number) % 2 == 0 {
                        "pause"
                    } else {
                        "resume"
                    };
                    let status = post(&client, format!("{base}/{verb}")).await;
                    // 409: the session finished or halted meanwhile; 503:
                    // the store refused to save the command.
                    assert!(
                        status.is_success() || status == 409 || status == 503,
                        "{verb}: {status}"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
        for task in burst {
            task.await.unwrap();
        }
        figures.pauses_and_resumes += 40;
        // The last word is a resume, whatever order the burst ended in.
        let resume = format!("{server}/session/{id}/resume");
        let status = until_not_503(async || {
            client
                .post(resume.clone())
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
        })
        .await
        .status();
        assert!(status.is_success() || status == 409, "resume: {status}");

        let ended = wait_for(
            &client,
            &server,
            Some(TOKEN),
            &id,
            SESSION_LIMIT,
            // A session is also shown halted while the store refuses its
            // state, and goes on by itself; only its failure budget ends it.
            // A completion the store has not taken yet is shown halted too:
            // only a stored one frees the nodes for the next session.
            |session| {
                (session["completed"] == true && session["phase"] != "halted")
                    || halted_by_its_budget(session)
            },
        )
        .await;
        let status_bytes = serde_json::to_vec(&ended).unwrap().len();
        figures.largest_status_bytes = figures.largest_status_bytes.max(status_bytes);
        if ended["completed"] == true {
            figures.completed += 1;
            assert_eq!(ended["state"], "READY", "{ended:#}");
            let counts = &ended["nodes"];
            figures.nodes_upgraded += counts["done"].as_u64().unwrap_or(0);
            figures.nodes_failed += counts["failed"].as_u64().unwrap_or(0);
            assert_eq!(
                counts["done"].as_u64().unwrap_or(0) + counts["failed"].as_u64().unwrap_or(0),
                NODES as u64,
                "every node upgraded or failed: {ended:#}"
            );
        } else {
            // Halted by its failure budget: 5 or more nodes failed.
            let failed = ended["nodes"]["failed"].as_u64().unwrap_or(0)
                + ended["nodes"]["failing"].as_u64().unwrap_or(0);
            assert!(failed > 4, "halted with {failed} failed: {ended:#}");
            figures.halted_and_deleted += 1;
            let deleted = until_not_503(async || {
                client
                    .delete(format!("{server}/session/{id}"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap()
            })
            .await;
            assert!(deleted.status().is_success(), "{}", deleted.status());
            let deadline = Instant::now() + SESSION_LIMIT;
            loop {
                let response = client
                    .get(format!("{server}/session/{id}"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap();
                if response.status() == 404 {
                    break;
                }
                assert!(Instant::now() < deadline, "session {id} was not removed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        let after = boots(&state);
        for (node, count) in &after {
            let earlier = before.get(node).copied().unwrap_or(0);
            assert!(
                *count <= earlier + 1,
                "session {} booted node {node} {} times",
                figures.sessions,
                count - earlier
            );
        }
        let out = left_out_of_service(&state);
        assert!(
            out.is_empty(),
            "session {} left nodes out of service: {out:?}",
            figures.sessions
        );
    }
    println!(
        "fault soak: {:?} of sessions on {NODES} nodes at 600x, 20% port faults, {} store write faults, 10% boot failures: {figures:?}",
        started.elapsed(),
        store_fault_rate()
    );
    assert!(figures.completed > 0, "{figures:?}");
}
