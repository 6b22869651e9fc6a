//! Whole sessions of `crus serve` on a real Slurm 22.05 cluster (started by
//! the test, see `slurm_harness`), for what an administrator and the
//! scheduler see in Slurm itself (issues 20 and 21): nodes an administrator
//! took out of service keep their state and exact reason through a session,
//! a delete and a `kill -9` of crus; scheduling weights crus raises are
//! restored whatever ends the session; reservations crus makes
//! (`reserve_ahead`) are removed whatever ends it; image tags (`img_<template>`) are
//! on exactly the nodes a session upgraded, whatever ends it. Every assertion reads `scontrol` or
//! `sinfo`; the server is the built binary, driven over HTTP only, booting
//! with Slurm's own reboots (`slurm-reboot`).
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../backends/tests/slurm_harness/mod.rs"]
mod slurm_harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Server, client, create_session, said, session_body, wait_for};
use slurm_harness::{ClusterOptions, SlurmCluster};

const TOKEN: &str = "slurm-sessions-e2e-token-0123456789";

/// An administrator's reasons, with the spacing and punctuation people
/// type: Slurm must show them byte for byte after crus is done.
const DRAINED_BEFORE: &str = "bad DIMM: slot 3,  see ticket #42 (\"ECC\") & call Bob; x=1";
const DOWN_BEFORE: &str = "PSU fault -- do NOT resume!  [rack 7]";
const DRAINED_DURING: &str = "health check: /scratch 99% full, 'df -h' ; owner=ops";

/// How long a whole session may take on the harness: a handful of steps of
/// 2-second reboots, with a 1-second poll.
const SESSION_LIMIT: Duration = Duration::from_secs(120);

/// The crus.toml and inventory of a server on `cluster`, in `dir`.
fn write_config(dir: &Path, cluster: &SlurmCluster) -> PathBuf {
    let nodes: Vec<Value> = cluster
        .nodes
        .iter()
        .map(|node| serde_json::json!({ "id": node }))
        .collect();
    let inventory = serde_json::json!({
        "nodes": nodes,
        "groups": { "compute": cluster.nodes },
    });
    let inventory_path = dir.join("inventory.json");
    std::fs::write(&inventory_path, inventory.to_string()).unwrap();
    let config = format!(
        r#"[server]
db = "{db}"

[auth]
tokens = ["{TOKEN}"]

[rollout]
boot_timeout = "2m"
poll_interval = "1s"

[backends]
inventory = "file"
workload_manager = "slurm"
boot = "slurm-reboot"

[file]
path = "{inventory}"

[slurm]
conf = "{conf}"
command_timeout = "20s"
node_names = "identity"

[slurm_reboot]
templates = ["compute-image"]
"#,
        db = dir.join("crus.db").display(),
        inventory = inventory_path.display(),
        conf = cluster.conf().display(),
    );
    let path = dir.join("crus.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A `crus serve` on `config`, its log in `dir/crus-N.log`.
fn serve(config: &Path, dir: &Path, run: usize) -> Server {
    Server::start_logged(
        &["--config", &config.display().to_string()],
        &[("RUST_LOG", "warn,crus_core=info")],
        &dir.join(format!("crus-{run}.log")),
    )
}

/// The session body with `policy`, `step` nodes at a time.
fn body(step: u32, policy: Value) -> Value {
    let mut body = session_body(step);
    body["policy"] = policy;
    body
}

/// `scontrol update nodename=NODE state=STATE reason=REASON`, as an admin types it.
fn admin_marks(cluster: &SlurmCluster, node: &str, state: &str, reason: &str) {
    cluster.command(
        "scontrol",
        &[
            "update",
            &format!("nodename={node}"),
            &format!("state={state}"),
            &format!("reason={reason}"),
        ],
    );
}

/// Each node's `sinfo` state (`%T`, `*` and all) and reason (`%E`).
fn sinfo(cluster: &SlurmCluster) -> BTreeMap<String, (String, String)> {
    cluster
        .command("sinfo", &["-N", "-h", "-o", "%N|%T|%E"])
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '|');
            let node = fields.next()?.to_string();
            let state = fields.next()?.to_string();
            let reason = fields.next()?.to_string();
            Some((node, (state, reason)))
        })
        .collect()
}

/// Asserts that Slurm shows `node` in `state` (`sinfo %T`, without the
/// not-responding `*`) with `reason` byte for byte, in `sinfo` and in
/// `scontrol show node`.
fn assert_held(cluster: &SlurmCluster, node: &str, state: &str, reason: &str) {
    let shown = sinfo(cluster);
    let (found, found_reason) = &shown[node];
    assert_eq!(
        (found.trim_end_matches('*'), found_reason.as_str()),
        (state, reason),
        "{node} in sinfo: {shown:?}"
    );
    let line = cluster.show_node(node);
    assert!(
        line.contains(&format!(" Reason={reason} [")),
        "{node}'s reason is not byte for byte {reason:?}: {line}"
    );
}

/// Watches `sinfo` every 100 ms from another thread and records every state
/// each node was seen in, so a test can tell a node was never in service.
struct Watcher {
    seen: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(conf: PathBuf) -> Watcher {
        let seen: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let output = std::process::Command::new("sinfo")
                        .args(["-N", "-h", "-o", "%N|%T"])
                        .env("SLURM_CONF", &conf)
                        .output();
                    if let Ok(output) = output {
                        let text = String::from_utf8_lossy(&output.stdout).into_owned();
                        let mut seen = seen.lock().unwrap();
                        for line in text.lines() {
                            if let Some((node, state)) = line.split_once('|') {
                                let states = seen.entry(node.to_string()).or_default();
                                if states.last().map(String::as_str) != Some(state) {
                                    states.push(state.to_string());
                                }
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Watcher {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The states `node` went through, in order (repeats folded).
    fn states_of(&self, node: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .get(node)
            .cloned()
            .unwrap_or_default()
    }

    /// Asserts that, from the first time `node` was seen out of service
    /// (`held`: its owner's mark), it was never in service (idle, mixed,
    /// allocated or completing), not even for a moment: `slurm-reboot`
    /// reboots such a node so that Slurm keeps it out of service (no
    /// `nextstate=RESUME`), and crus never resumes it.
    fn assert_not_returned_by_crus(&self, node: &str, held: &str) {
        let states = self.states_of(node);
        let Some(from) = states.iter().position(|state| state.starts_with(held)) else {
            panic!("{node} was never seen {held}: {states:?}");
        };
        let in_service = |state: &str| {
            ["idle", "mixed", "allocated", "completing"].contains(&state.trim_end_matches('*'))
        };
        assert!(
            !states[from..].iter().any(|state| in_service(state)),
            "{node} was in service during the session: {states:?}"
        );
        // The end state is `assert_held`'s to check: the watcher samples
        // every 100 ms and may not have seen the last change yet.
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The session `id` until `done`, with the token.
async fn session_until(
    http: &reqwest::Client,
    server: &Server,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(http, &server.url, Some(TOKEN), id, limit, done).await
}

/// `DELETE /session/{id}`, then waits until the session is gone (its nodes
/// back as they were).
async fn delete_and_wait_gone(http: &reqwest::Client, server: &Server, id: &str) {
    let url = format!("{}/session/{id}", server.url);
    let response = http.delete(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "DELETE answered {}",
        response.status()
    );
    let started = Instant::now();
    loop {
        let status = http
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status();
        if status == 404 {
            return;
        }
        assert!(
            started.elapsed() < SESSION_LIMIT,
            "the deleted session is still there after {SESSION_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How many times `node` rebooted so far.
fn reboots_of(cluster: &SlurmCluster, node: &str) -> usize {
    cluster
        .reboots()
        .iter()
        .filter(|reboot| reboot.node == node)
        .count()
}

/// Issue 21: an administrator drains node001 and takes node002 down before
/// the session, and drains node004 while it runs; with the default
/// `upgrade_and_restore` each is upgraded and left exactly as the
/// administrator had it, and the down node is never in service meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_marks_before_and_during_a_session_are_kept_byte_for_byte() {
    let started = Instant::now();
    let cluster = SlurmCluster::start(4);
    admin_marks(&cluster, "node001", "DRAIN", DRAINED_BEFORE);
    admin_marks(&cluster, "node002", "DOWN", DOWN_BEFORE);
    let watcher = Watcher::start(cluster.conf());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cluster);
    let server = serve(&config, dir.path(), 0);
    let http = client();

    let id = create_session(&http, &server.url, Some(TOKEN), &session_body(2)).await;
    session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        said(s, "Step 0: boot of")
    })
    .await;
    // The second step's node004, drained by someone else before crus gets to it.
    admin_marks(&cluster, "node004", "DRAIN", DRAINED_DURING);
    let session = session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        s["completed"] == true
    })
    .await;

    assert_held(&cluster, "node001", "drained", DRAINED_BEFORE);
    assert_held(&cluster, "node002", "down", DOWN_BEFORE);
    assert_held(&cluster, "node004", "drained", DRAINED_DURING);
    let shown = sinfo(&cluster);
    assert_eq!(shown["node003"].0, "idle", "{shown:?}\n{session:#}");
    for node in &cluster.nodes {
        assert_eq!(reboots_of(&cluster, node), 1, "{node}: {session:#}");
    }
    watcher.assert_not_returned_by_crus("node002", "down");
    watcher.assert_not_returned_by_crus("node004", "drained");
    watcher.assert_not_returned_by_crus("node001", "drained");
    assert_eq!(server.terminate(), Some(0));
    eprintln!(
        "admin marks kept through a session in {:?}",
        started.elapsed()
    );
}

/// Issue 21: `DELETE /session/{id}` while the administrator's nodes are
/// being upgraded puts them back as they were, and crus's own drains back
/// in service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_marks_are_kept_after_a_delete_mid_session() {
    let cluster = SlurmCluster::start(4);
    admin_marks(&cluster, "node001", "DRAIN", DRAINED_BEFORE);
    admin_marks(&cluster, "node002", "DOWN", DOWN_BEFORE);
    let watcher = Watcher::start(cluster.conf());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cluster);
    let server = serve(&config, dir.path(), 0);
    let http = client();

    let id = create_session(&http, &server.url, Some(TOKEN), &session_body(2)).await;
    session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        said(s, "Step 0: boot of")
    })
    .await;
    admin_marks(&cluster, "node004", "DRAIN", DRAINED_DURING);
    delete_and_wait_gone(&http, &server, &id).await;

    assert_held(&cluster, "node001", "drained", DRAINED_BEFORE);
    assert_held(&cluster, "node002", "down", DOWN_BEFORE);
    assert_held(&cluster, "node004", "drained", DRAINED_DURING);
    let shown = sinfo(&cluster);
    assert_eq!(
        shown["node003"].0.trim_end_matches('*'),
        "idle",
        "{shown:?}"
    );
    watcher.assert_not_returned_by_crus("node002", "down");
    watcher.assert_not_returned_by_crus("node004", "drained");
    assert_eq!(server.terminate(), Some(0));
}

/// Issue 21: crus killed (`kill -9`) while the administrator's nodes reboot,
/// then restarted on the same files: the session completes and they are
/// left exactly as the administrator had them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_marks_are_kept_after_kill_9_and_restart() {
    let cluster = SlurmCluster::start(4);
    admin_marks(&cluster, "node001", "DRAIN", DRAINED_BEFORE);
    admin_marks(&cluster, "node002", "DOWN", DOWN_BEFORE);
    let watcher = Watcher::start(cluster.conf());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cluster);
    let server = serve(&config, dir.path(), 0);
    let http = client();

    let id = create_session(&http, &server.url, Some(TOKEN), &session_body(2)).await;
    session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        said(s, "Step 0: boot of")
    })
    .await;
    admin_marks(&cluster, "node004", "DRAIN", DRAINED_DURING);
    server.kill_9();

    let server = serve(&config, dir.path(), 1);
    let session = session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        s["completed"] == true
    })
    .await;
    assert_held(&cluster, "node001", "drained", DRAINED_BEFORE);
    assert_held(&cluster, "node002", "down", DOWN_BEFORE);
    assert_held(&cluster, "node004", "drained", DRAINED_DURING);
    let shown = sinfo(&cluster);
    assert_eq!(shown["node003"].0, "idle", "{shown:?}\n{session:#}");
    watcher.assert_not_returned_by_crus("node002", "down");
    watcher.assert_not_returned_by_crus("node004", "drained");
    assert_eq!(server.terminate(), Some(0));
}

/// The own weights of the steering tests' six nodes (slurm.conf): the first
/// step's nodes are the heaviest, so without steering Slurm would put a new
/// job on a node still to upgrade, and only steering puts it on an upgraded
/// one.
const OWN_WEIGHTS: [u32; 6] = [10, 10, 1, 1, 1, 1];

/// What `steer_jobs` adds to a waiting node's own weight (the engine's
/// `WEIGHT_RAISE`).
const RAISE: u32 = 1_000_000;

/// Six nodes with [`OWN_WEIGHTS`].
fn weighted_cluster() -> SlurmCluster {
    SlurmCluster::start_with(ClusterOptions {
        weights: OWN_WEIGHTS.to_vec(),
        ..ClusterOptions::new(6)
    })
}

/// Each node's `Weight=` in `scontrol show node`, in node order.
fn weights(cluster: &SlurmCluster) -> Vec<u32> {
    let output = cluster.command("scontrol", &["-o", "show", "node"]);
    let mut by_node: BTreeMap<String, u32> = BTreeMap::new();
    for line in output.lines() {
        let before_reason = line.split(" Reason=").next().unwrap_or_default();
        let name = before_reason
            .split_whitespace()
            .find_map(|field| field.strip_prefix("NodeName="));
        let weight = before_reason
            .split_whitespace()
            .find_map(|field| field.strip_prefix("Weight="));
        if let (Some(name), Some(weight)) = (name, weight) {
            by_node.insert(name.to_string(), weight.parse().unwrap());
        }
    }
    cluster.nodes.iter().map(|node| by_node[node]).collect()
}

/// Waits (up to `limit`) until the weights are `expected`; panics with the last seen.
async fn wait_weights(cluster: &SlurmCluster, expected: &[u32], limit: Duration) {
    let started = Instant::now();
    loop {
        let found = weights(cluster);
        if found == expected {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "weights are {found:?}, not {expected:?}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The session body with `steer_jobs`, two nodes a step.
fn steering_body() -> Value {
    body(2, serde_json::json!({ "steer_jobs": true }))
}

/// `sbatch` of a short one-node job anywhere; returns its id.
fn submit_anywhere(cluster: &SlurmCluster) -> String {
    let job = cluster.command(
        "sbatch",
        &[
            "--parsable",
            "-N",
            "1",
            "-t",
            "5",
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 2",
        ],
    );
    job.trim().split(';').next().unwrap_or_default().to_string()
}

/// Issue 20 on real Slurm: the session's waiting nodes get their own weight
/// plus the raise, each gets its own back when it returns to service, a job
/// submitted mid-session runs on an upgraded node (where Slurm alone would
/// have put it on a waiting one), and no raised weight is left at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steering_weights_are_raised_restored_and_send_a_new_job_to_an_upgraded_node() {
    let started = Instant::now();
    let mut cluster = weighted_cluster();
    assert_eq!(weights(&cluster), OWN_WEIGHTS);
    // Holds the second step's node003 (draining) while the test submits.
    let holder = cluster.submit_running_job("node003", "sleep 20");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cluster);
    let server = serve(&config, dir.path(), 0);
    let http = client();

    let id = create_session(&http, &server.url, Some(TOKEN), &steering_body()).await;
    session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        said(s, "Step 0: boot of")
    })
    .await;
    // Every node of the session is raised while the first step boots
    // (its own nodes too: they are not back yet).
    let raised: Vec<u32> = OWN_WEIGHTS.iter().map(|own| own + RAISE).collect();
    wait_weights(&cluster, &raised, Duration::from_secs(10)).await;
    session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        said(s, "Step 0 finished")
    })
    .await;
    // The first step's nodes are back with their own weight; the others
    // still raised.
    let mut after_step_0 = raised.clone();
    after_step_0[..2].copy_from_slice(&OWN_WEIGHTS[..2]);
    wait_weights(&cluster, &after_step_0, Duration::from_secs(10)).await;

    let job = submit_anywhere(&cluster);
    cluster.wait_running(std::slice::from_ref(&job));
    let ran_on = cluster.command("squeue", &["-h", "-j", &job, "-o", "%N"]);
    assert!(
        ["node001", "node002"].contains(&ran_on.trim()),
        "job {job} ran on {ran_on:?}, not on an upgraded node; weights {:?}",
        weights(&cluster)
    );

    let session = session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        s["completed"] == true
    })
    .await;
    assert_eq!(session["state"], "READY", "{session:#}");
    assert_eq!(weights(&cluster), OWN_WEIGHTS, "{session:#}");
    let _ = holder;
    assert_eq!(server.terminate(), Some(0));
    eprintln!("steering on real Slurm in {:?}", started.elapsed());
}

/// Issue 20: weights crus raised are restored after a `kill -9` of crus and
/// its restart (the session completes), and after a `DELETE` mid-session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steering_weights_are_restored_after_kill_9_and_after_a_delete() {
    let cluster = weighted_cluster();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cluster);
    let server = serve(&config, dir.path(), 0);
    let http = client();
    let raised: Vec<u32> = OWN_WEIGHTS.iter().map(|own| own + RAISE).collect();

    let id = create_session(&http, &server.url, Some(TOKEN), &steering_body()).await;
    session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        said(s, "Step 0: boot of")
    })
    .await;
    wait_weights(&cluster, &raised, Duration::from_secs(10)).await;
    server.kill_9();
    // A crash leaves them raised: only the restarted server can restore them.
    assert_eq!(weights(&cluster), raised);
    let server = serve(&config, dir.path(), 1);
    let session = session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        s["completed"] == true
    })
    .await;
    assert_eq!(session["state"], "READY", "{session:#}");
    assert_eq!(weights(&cluster), OWN_WEIGHTS, "{session:#}");

    let id = create_session(&http, &server.url, Some(TOKEN), &steering_body()).await;
    session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        said(s, "Step 0: boot of")
    })
    .await;
    wait_weights(&cluster, &raised, Duration::from_secs(10)).await;
    delete_and_wait_gone(&http, &server, &id).await;
    assert_eq!(weights(&cluster), OWN_WEIGHTS);
    let shown = sinfo(&cluster);
    assert!(
        shown
            .values()
            .all(|(state, _)| state.trim_end_matches('*') == "idle"),
        "{shown:?}"
    );
    assert_eq!(server.terminate(), Some(0));
}

/// Issue 20: `scontrol reconfigure` and a restart of `slurmctld` mid-session
/// put back slurm.conf's weights; the session sets its raised weights again
/// (within the engine's one-minute read-back) and leaves every node its own
/// weight at the end. A job on the last step's node keeps the session
/// running long enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steering_survives_reconfigure_and_a_slurmctld_restart() {
    let started = Instant::now();
    let mut cluster = weighted_cluster();
    let holder = cluster.submit_running_job("node006", "sleep 80");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cluster);
    let server = serve(&config, dir.path(), 0);
    let http = client();

    let id = create_session(&http, &server.url, Some(TOKEN), &steering_body()).await;
    session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        said(s, "Step 2 started")
    })
    .await;
    // node005 and node006 are the last step's: raised until it ends.
    let expected: Vec<u32> = OWN_WEIGHTS
        .iter()
        .enumerate()
        .map(|(node, own)| if node >= 4 { own + RAISE } else { *own })
        .collect();
    wait_weights(&cluster, &expected, Duration::from_secs(10)).await;
    cluster.command("scontrol", &["reconfigure"]);
    wait_weights(&cluster, &OWN_WEIGHTS, Duration::from_secs(10)).await;
    cluster.restart_slurmctld();
    // The nodes are UNKNOWN until their slurmd registers again; node006 is
    // then still draining: its job runs on through the restart.
    cluster.wait("node006 draining again", Duration::from_secs(40), || {
        sinfo(&cluster)["node006"].0.starts_with("draining")
    });
    wait_weights(&cluster, &expected, Duration::from_secs(75)).await;
    let session = session_until(&http, &server, &id, Duration::from_secs(150), |s| {
        s["completed"] == true
    })
    .await;
    assert_eq!(session["state"], "READY", "{session:#}");
    assert_eq!(weights(&cluster), OWN_WEIGHTS, "{session:#}");
    let _ = holder;
    assert_eq!(server.terminate(), Some(0));
    eprintln!(
        "steering through reconfigure and a slurmctld restart in {:?}",
        started.elapsed()
    );
}

/// The own features of the image-tag tests' four nodes (slurm.conf), two
/// with an older image's tag.
const OWN_FEATURES: [&str; 4] = ["gpu,img_old", "", "gpu", "img_old"];

/// The tag `image_features` gives the nodes it upgrades to `compute-image`.
const IMAGE_TAG: &str = "img_compute_image";

/// Four nodes with [`OWN_FEATURES`].
fn featured_cluster() -> SlurmCluster {
    SlurmCluster::start_with(ClusterOptions {
        features: OWN_FEATURES
            .iter()
            .map(|list| (*list).to_string())
            .collect(),
        ..ClusterOptions::new(4)
    })
}

/// Each node's `AvailableFeatures=` and `ActiveFeatures=` in `scontrol show
/// node`, in node order (`(null)` and an empty value both read as "").
fn features(cluster: &SlurmCluster) -> Vec<(String, String)> {
    let output = cluster.command("scontrol", &["-o", "show", "node"]);
    let mut by_node: BTreeMap<String, (String, String)> = BTreeMap::new();
    for line in output.lines() {
        let before_reason = line.split(" Reason=").next().unwrap_or_default();
        let field = |key: &str| {
            before_reason
                .split_whitespace()
                .find_map(|field| field.strip_prefix(key))
                .map(|value| if value == "(null)" { "" } else { value }.to_string())
        };
        if let (Some(name), Some(available), Some(active)) = (
            field("NodeName="),
            field("AvailableFeatures="),
            field("ActiveFeatures="),
        ) {
            by_node.insert(name, (available, active));
        }
    }
    cluster
        .nodes
        .iter()
        .map(|node| by_node[node].clone())
        .collect()
}

/// A node's own list with the image's tag in place of any `img_*`.
fn tagged(own: &str) -> String {
    own.split(',')
        .filter(|feature| !feature.is_empty() && !feature.starts_with("img_"))
        .chain([IMAGE_TAG])
        .collect::<Vec<_>>()
        .join(",")
}

/// What each node's features are to be: tagged where `upgraded`, its own
/// otherwise, in both lists.
fn expected_features(upgraded: &[bool]) -> Vec<(String, String)> {
    OWN_FEATURES
        .iter()
        .zip(upgraded)
        .map(|(own, upgraded)| {
            let list = if *upgraded {
                tagged(own)
            } else {
                (*own).to_string()
            };
            (list.clone(), list)
        })
        .collect()
}

/// Waits (up to `limit`) until the features are `expected`.
async fn wait_features(cluster: &SlurmCluster, expected: &[(String, String)], limit: Duration) {
    let started = Instant::now();
    loop {
        let found = features(cluster);
        if found == expected {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "features are {found:?}, not {expected:?}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Puts every node's features back to [`OWN_FEATURES`], as slurm.conf has them.
fn reset_features(cluster: &SlurmCluster) {
    for (node, own) in cluster.nodes.iter().zip(OWN_FEATURES) {
        cluster.command(
            "scontrol",
            &[
                "update",
                &format!("NodeName={node}"),
                &format!("AvailableFeatures={own}"),
                &format!("ActiveFeatures={own}"),
            ],
        );
    }
}

/// The session body with `image_features`, `step` nodes a step.
fn tagging_body(step: u32) -> Value {
    body(step, serde_json::json!({ "image_features": true }))
}

/// Issue 20's image tags through `crus serve` on real Slurm: a node is
/// tagged `img_<template>` (its old `img_*` gone, its other features kept,
/// in both lists) once it is upgraded, a job asking for the tag
/// (`--constraint`) runs only on an upgraded node while others stand idle,
/// and at the end every node carries the tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_features_tag_upgraded_nodes_and_constrain_jobs_to_them() {
    let started = Instant::now();
    let cluster = featured_cluster();
    assert_eq!(features(&cluster), expected_features(&[false; 4]));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cluster);
    let server = serve(&config, dir.path(), 0);
    let http = client();

    let id = create_session(&http, &server.url, Some(TOKEN), &tagging_body(1)).await;
    session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        said(s, "Step 0 finished")
    })
    .await;
    wait_features(
        &cluster,
        &expected_features(&[true, false, false, false]),
        Duration::from_secs(10),
    )
    .await;
    // node001 alone has the tag; node003 and node004 stand idle in service.
    let job = cluster.command(
        "sbatch",
        &[
            "--parsable",
            "-N",
            "1",
            "-t",
            "5",
            "-o",
            "/dev/null",
            &format!("--constraint={IMAGE_TAG}"),
            "--wrap",
            "sleep 5",
        ],
    );
    let job = job.trim().split(';').next().unwrap_or_default().to_string();
    let placed = Instant::now();
    let ran_on = loop {
        let on = cluster.command("squeue", &["-h", "-j", &job, "-o", "%N"]);
        let on = on.trim().to_string();
        if !on.is_empty() {
            break on;
        }
        // Pending until the scheduler places it (it runs 5 s, polled every 0.1 s).
        assert!(
            placed.elapsed() < Duration::from_secs(20),
            "job {job} not placed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ran_on, "node001", "job {job} ran on {ran_on}");

    let session = session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        s["completed"] == true
    })
    .await;
    assert_eq!(session["state"], "READY", "{session:#}");
    assert_eq!(
        features(&cluster),
        expected_features(&[true; 4]),
        "{session:#}"
    );
    assert_eq!(server.terminate(), Some(0));
    eprintln!("image tags on real Slurm in {:?}", started.elapsed());
}

/// Issue 20: after a `kill -9` of crus mid-session and its restart the
/// session completes with every node tagged; after a `DELETE` mid-session
/// the nodes it upgraded carry the tag and every other node has exactly its
/// own features.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_features_are_right_after_kill_9_and_after_a_delete() {
    let started = Instant::now();
    let cluster = featured_cluster();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cluster);
    let server = serve(&config, dir.path(), 0);
    let http = client();

    let id = create_session(&http, &server.url, Some(TOKEN), &tagging_body(1)).await;
    session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        said(s, "Step 1 started")
    })
    .await;
    server.kill_9();
    let server = serve(&config, dir.path(), 1);
    let session = session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        s["completed"] == true
    })
    .await;
    assert_eq!(session["state"], "READY", "{session:#}");
    assert_eq!(
        features(&cluster),
        expected_features(&[true; 4]),
        "{session:#}"
    );

    reset_features(&cluster);
    let id = create_session(&http, &server.url, Some(TOKEN), &tagging_body(1)).await;
    let before_delete = session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        said(s, "Step 1 started")
    })
    .await;
    delete_and_wait_gone(&http, &server, &id).await;
    // node001 was upgraded before the delete, node003 and node004 never
    // taken; node002, taken when it came, is upgraded or let go untouched
    // depending on how far its boot had gone.
    let found = features(&cluster);
    let upgraded = expected_features(&[true; 4]);
    let own = expected_features(&[false; 4]);
    assert_eq!(found[0], upgraded[0], "{before_delete:#}");
    assert!(found[1] == upgraded[1] || found[1] == own[1], "{found:?}");
    assert_eq!(found[2..], own[2..], "{found:?}");
    assert_eq!(server.terminate(), Some(0));
    eprintln!(
        "image tags after kill -9 and a delete in {:?}",
        started.elapsed()
    );
}

/// The names of crus's reservations in `scontrol show reservation`.
fn crus_reservations(cluster: &SlurmCluster) -> Vec<String> {
    cluster
        .command("scontrol", &["-o", "show", "reservation"])
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|field| field.strip_prefix("ReservationName="))
        .filter(|name| name.starts_with("crus_"))
        .map(str::to_string)
        .collect()
}

/// Waits (up to 20 s) until crus holds some reservation; returns them.
async fn wait_some_reservation(cluster: &SlurmCluster) -> Vec<String> {
    let started = Instant::now();
    loop {
        let found = crus_reservations(cluster);
        if !found.is_empty() {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no crus reservation after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The session body with `reserve_ahead`, two nodes a step.
fn reserving_body() -> Value {
    body(
        2,
        serde_json::json!({
            "strategy": "continuous", "order": "drain_cost", "reserve_ahead": true
        }),
    )
}

/// Issue 20 on real Slurm: a session with `reserve_ahead` reserves the
/// nodes still to upgrade (`crus_<node>` maintenance reservations) and
/// leaves none when it completes after a `kill -9` of crus and its
/// restart, or when it is deleted mid-session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_are_set_during_a_session_and_none_is_left_after_kill_9_or_a_delete() {
    let started = Instant::now();
    let mut cluster = SlurmCluster::start(6);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cluster);
    let server = serve(&config, dir.path(), 0);
    let http = client();

    // A job on node006 keeps it for the session's last turn.
    let holder = cluster.submit_running_job("node006", "sleep 25");
    let id = create_session(&http, &server.url, Some(TOKEN), &reserving_body()).await;
    let reserved = wait_some_reservation(&cluster).await;
    assert!(
        reserved.iter().all(|name| cluster
            .nodes
            .iter()
            .any(|node| name == &format!("crus_{node}"))),
        "{reserved:?}"
    );
    server.kill_9();
    // A crash leaves them: only the restarted server can remove them.
    assert!(!crus_reservations(&cluster).is_empty());
    let server = serve(&config, dir.path(), 1);
    let session = session_until(&http, &server, &id, SESSION_LIMIT, |s| {
        s["completed"] == true
    })
    .await;
    assert_eq!(session["state"], "READY", "{session:#}");
    assert_eq!(
        crus_reservations(&cluster),
        Vec::<String>::new(),
        "{session:#}"
    );
    let _ = holder;

    let holder = cluster.submit_running_job("node006", "sleep 25");
    let id = create_session(&http, &server.url, Some(TOKEN), &reserving_body()).await;
    wait_some_reservation(&cluster).await;
    delete_and_wait_gone(&http, &server, &id).await;
    assert_eq!(crus_reservations(&cluster), Vec::<String>::new());
    cluster.command("scancel", &[&holder]);
    assert_eq!(server.terminate(), Some(0));
    eprintln!("reservations on real Slurm in {:?}", started.elapsed());
}
