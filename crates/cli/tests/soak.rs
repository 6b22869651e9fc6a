//! The fault soak: session after session on the real `crus serve --sim`
//! binary with a fifth of every call to the simulated backends failing
//! (inventory, workload manager, boots, and power; half before reaching the
//! cluster, half as a timeout after taking effect), a tenth of boots hanging
//! until the session's power-cycle escalation restarts the node (so the power
//! port is called, and its faults met), and a fifth of the
//! session store's writes refused as a failing disk would
//! (`CRUS_SOAK_STORE_FAULT_RATE`, 0.2 by default), boots failing at random,
//! operators pausing and resuming in bursts, and a readiness probe. After
//! each session: it finished, or halted by its failure budget and was deleted; no node is
//! left out of service by crus; no node was booted twice; no session was
//! held by the store's refusals for longer than [`HOLD_LIMIT`].
//!
//! Bounded in time: about `CRUS_SOAK_SECONDS` seconds of sessions (30 by
//! default), then the session in progress finishes. Run it longer with, e.g.,
//! `CRUS_SOAK_SECONDS=1800 cargo test -p crus-cli --all-features --test soak -- --nocapture`;
//! it prints its figures at the end (the README's come from such a run).

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

/// The longest a session may be shown held by the store's refusals (halted,
/// its state unsaved) at one stretch. A fifth of writes refused makes a run
/// of refusals short (five in a row: one save in 3,000), and each retry
/// waits at most a few seconds of backoff; a longer hold is a liveness bug.
const HOLD_LIMIT: Duration = Duration::from_secs(30);

/// How often the soak probes `/readyz`, as an orchestrator would.
const READINESS_PROBE_PERIOD: Duration = Duration::from_secs(1);

/// The share of session store writes refused, from
/// `CRUS_SOAK_STORE_FAULT_RATE` (0.2 by default; 0 soaks the ports only).
fn store_fault_rate() -> String {
    std::env::var("CRUS_SOAK_STORE_FAULT_RATE").unwrap_or_else(|_| "0.2".to_string())
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
    /// Sessions created.
    sessions: u32,
    /// Sessions that completed (every node upgraded or failed).
    completed: u32,
    /// Sessions halted by their failure budget, then deleted.
    halted_and_deleted: u32,
    /// Nodes upgraded by completed sessions.
    nodes_upgraded: u64,
    /// Nodes failed by completed sessions.
    nodes_failed: u64,
    /// Boots the simulated cluster counted.
    nodes_booted: u64,
    /// Power operations (graceful or forced restarts) the simulated cluster
    /// took, one per node: escalations of hung boots. Never counted as boots.
    power_restarts: u64,
    /// Nodes booted twice by one session: always 0, or the soak fails.
    nodes_booted_twice: u32,
    /// Nodes left out of service after a session: always 0, or the soak fails.
    nodes_left_out_of_service: u32,
    /// Port calls that failed (injected errors and lost answers), by port,
    /// from the server's `crus_port_calls_total{outcome="unavailable"}`.
    port_faults: BTreeMap<String, u64>,
    /// Store writes refused, from `crus_store_refused_writes_total`.
    store_writes_refused: u64,
    /// The longest stretch a session was shown held by the store's refusals.
    longest_store_hold: Duration,
    /// The longest a session took, from its creation to its end.
    longest_session: Duration,
    /// Pause and resume requests sent.
    pauses_and_resumes: u32,
    /// The largest status served.
    largest_status_bytes: usize,
}

/// Whether `session` is shown held by the store: halted, not by its budget
/// (a completion the store has not taken is shown halted too).
fn held_by_the_store(session: &serde_json::Value) -> bool {
    session["phase"] == "halted" && !halted_by_its_budget(session)
}

/// Polls session `id` until it completed (as stored) or halted by its
/// budget, for at most [`SESSION_LIMIT`]; gives its last status and the
/// longest stretch it was shown held by the store's refusals.
async fn follow(client: &reqwest::Client, server: &str, id: &str) -> (serde_json::Value, Duration) {
    let started = Instant::now();
    let mut held_since: Option<Instant> = None;
    let mut longest_hold = Duration::ZERO;
    let mut last = serde_json::Value::Null;
    while started.elapsed() < SESSION_LIMIT {
        let response = client
            .get(format!("{server}/session/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await;
        if let Ok(response) = response
            && response.status().is_success()
            && let Ok(session) = response.json::<serde_json::Value>().await
        {
            if held_by_the_store(&session) {
                let since = *held_since.get_or_insert_with(Instant::now);
                longest_hold = longest_hold.max(since.elapsed());
                assert!(
                    since.elapsed() < HOLD_LIMIT,
                    "session {id} held by the store for over {HOLD_LIMIT:?}: {session:#}"
                );
            } else {
                held_since = None;
            }
            // A session is also shown halted while the store refuses its
            // state, and goes on by itself; only its failure budget ends it.
            // A completion the store has not taken yet is shown halted too:
            // only a stored one frees the nodes for the next session.
            if (session["completed"] == true && session["phase"] != "halted")
                || halted_by_its_budget(&session)
            {
                return (session, longest_hold);
            }
            last = session;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("session {id} did not end within {SESSION_LIMIT:?}; last seen: {last:#}");
}

/// Failed port calls by port, and refused store writes, as the server's
/// `/metrics` counts them.
async fn faults_counted(client: &reqwest::Client, server: &str) -> (BTreeMap<String, u64>, u64) {
    let metrics = get_text(client, server, "/metrics", Some(TOKEN)).await;
    let label = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let end = start + line[start..].find('"')?;
        Some(line[start..end].to_string())
    };
    let value = |line: &str| -> u64 {
        line.rsplit(' ')
            .next()
            .and_then(|value| value.parse::<f64>().ok())
            .map_or(0, |value| value as u64)
    };
    let mut ports = BTreeMap::new();
    let mut store = 0;
    for line in metrics.lines() {
        if line.starts_with("crus_port_calls_total{")
            && label(line, "outcome").as_deref() == Some("unavailable")
            && let Some(port) = label(line, "port")
        {
            *ports.entry(port).or_insert(0) += value(line);
        } else if line.starts_with("crus_store_refused_writes_total") {
            store += value(line);
        }
    }
    (ports, store)
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
            "--sim-never-return-rate",
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
    // A readiness probe, as an orchestrator runs one: while the store
    // refuses writes, each probe asks it for a write, and a write it takes
    // wakes the sessions held back (instead of their backoff, up to a minute).
    let probe = {
        let client = client.clone();
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                let _ = client.get(format!("{server}/readyz")).send().await;
                tokio::time::sleep(READINESS_PROBE_PERIOD).await;
            }
        })
    };
    let started = Instant::now();
    let mut figures = Figures::default();

    while figures.sessions == 0 || started.elapsed() < soak_duration() {
        figures.sessions += 1;
        let session_started = Instant::now();
        let before = boots(&state);
        let mut body = session_body(6);
        // Retries of refused store writes wait in wall time, ten simulated
        // minutes a second at 600x: a boot timeout of a simulated hour keeps
        // such waits from failing nodes that booted (a node is late only if
        // an observation after its deadline still misses it), and a hung
        // node is power-restarted (gracefully, then by force) after it.
        body["policy"] = json!({
            "max_failures": 4,
            "boot_timeout": "1h",
            "escalate_power_cycle": true,
            "power_cycle_grace": "30m",
        });
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

        let (ended, longest_hold) = follow(&client, &server, &id).await;
        figures.longest_store_hold = figures.longest_store_hold.max(longest_hold);
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

        figures.longest_session = figures.longest_session.max(session_started.elapsed());
        let after = boots(&state);
        for (node, count) in &after {
            let earlier = before.get(node).copied().unwrap_or(0);
            let booted = count.saturating_sub(earlier);
            figures.nodes_booted += u64::from(booted);
            if booted > 1 {
                figures.nodes_booted_twice += 1;
            }
            assert!(
                booted <= 1,
                "session {} booted node {node} {booted} times: {figures:?}",
                figures.sessions,
            );
        }
        let out = left_out_of_service(&state);
        figures.nodes_left_out_of_service += u32::try_from(out.len()).unwrap();
        assert!(
            out.is_empty(),
            "session {} left nodes out of service: {out:?}; {figures:?}",
            figures.sessions
        );
    }
    probe.abort();
    figures.power_restarts = SimCluster::inspect_state_file(&state)
        .unwrap()
        .report()
        .power_operations;
    (figures.port_faults, figures.store_writes_refused) = faults_counted(&client, &server).await;
    println!(
        "fault soak: {:?} of sessions on {NODES} nodes at 600x, 20% port faults, {} store write faults, 10% boot failures, 10% hung boots: {figures:#?}",
        started.elapsed(),
        store_fault_rate()
    );
    assert!(figures.completed > 0, "{figures:?}");
    if store_fault_rate() != "0" {
        assert!(figures.store_writes_refused > 0, "{figures:?}");
    }
    assert!(figures.port_faults.values().sum::<u64>() > 0, "{figures:?}");
    assert!(
        figures.power_restarts > 0,
        "no hung boot was power-restarted, so the power port went untested: {figures:?}"
    );
}
