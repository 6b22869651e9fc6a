//! `crus serve` end to end on a real Slurm 22.05 cluster of 8 nodes (started
//! by the test, see `slurm_harness`): a file inventory, Slurm drains and
//! Slurm's own reboots, real batch jobs on some nodes, and one node whose
//! reboot fails. The server is the built binary, driven over HTTP only.
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../backends/tests/slurm_harness/mod.rs"]
mod slurm_harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::{Server, client, session_body};
use slurm_harness::{ClusterOptions, SlurmCluster};

const TOKEN: &str = "slurm-e2e-token-0123456789";

/// The node whose RebootProgram fails.
const FAILING: &str = "node006";

/// Jobs running when the session starts: node and seconds. Steps take two
/// nodes in name order; node002's job holds up the first step (about 10 s
/// after the session starts) and node005's the third (which would start
/// about 8 s after the first finishes); the short ones end while earlier
/// steps run.
const JOBS: &[(&str, u64)] = &[
    ("node002", 15),
    ("node003", 8),
    ("node005", 30),
    ("node008", 5),
];

/// What one job wrote: when it started and ended, and whether it finished.
#[derive(Debug)]
struct JobRecord {
    started: SystemTime,
    ended: Option<SystemTime>,
    done: bool,
}

fn job_log(cluster: &SlurmCluster, node: &str) -> std::path::PathBuf {
    cluster.dir().join(format!("jobs/job-{node}.log"))
}

/// The job script: it records its own start and end, since this Slurm keeps
/// no accounting (`sacct` has nothing to say).
fn job_script(log: &Path, seconds: u64) -> String {
    let log = log.display();
    format!(
        "echo start $(date +%s.%N) >> {log}; sleep {seconds}; \
         echo end $(date +%s.%N) >> {log}; echo done >> {log}"
    )
}

fn read_job(log: &Path) -> JobRecord {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let time = |word: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(word))
            .map(|seconds| UNIX_EPOCH + Duration::from_secs_f64(seconds.trim().parse().unwrap()))
    };
    JobRecord {
        started: time("start ")
            .unwrap_or_else(|| panic!("{} has no start: {text:?}", log.display())),
        ended: time("end "),
        done: text.lines().any(|line| line == "done"),
    }
}

fn write_config(dir: &Path, cluster: &SlurmCluster) -> std::path::PathBuf {
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
# Longer than Slurm's ResumeTimeout plus its coarse check, so the failing
# node fails with Slurm's verdict, not crus's.
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

/// Polls the session until it is completed, for at most `limit`.
async fn wait_completed(http: &reqwest::Client, url: &str, id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    let mut last = Value::Null;
    while started.elapsed() < limit {
        let response = http
            .get(format!("{url}/session/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await;
        if let Ok(response) = response
            && response.status().is_success()
        {
            last = response.json().await.unwrap();
            if last["completed"] == true {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the session did not complete within {limit:?}; last seen: {last:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_reboot_of_a_real_slurm_cluster() {
    let started = Instant::now();
    let cluster = SlurmCluster::start_with(ClusterOptions {
        resume_timeout: Duration::from_secs(10),
        ..ClusterOptions::new(8)
    });
    cluster.set_fail(FAILING);
    std::fs::create_dir_all(cluster.dir().join("jobs")).unwrap();
    let jobs: Vec<String> = JOBS
        .iter()
        .map(|(node, seconds)| {
            cluster.submit_job(node, &job_script(&job_log(&cluster, node), *seconds))
        })
        .collect();
    cluster.wait_running(&jobs);
    let jobs_running = started.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cluster);
    // The rollout's own messages tell the story if the test fails; the
    // request log of the polling below would drown them.
    let server = Server::start(
        &["--config", &config.display().to_string()],
        &[("RUST_LOG", "warn,crus_core=info")],
    );
    let http = client();

    let created = http
        .post(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .json(&session_body(2))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = created["upgrade_id"].as_str().unwrap().to_string();
    let session = wait_completed(&http, &server.url, &id, Duration::from_secs(240)).await;
    let session_time = started.elapsed();
    assert_eq!(session["state"], "READY", "{session:#}");

    // Every node but the failing one rebooted exactly once; it never did.
    let reboots = cluster.reboots();
    for node in &cluster.nodes {
        let count = reboots.iter().filter(|reboot| &reboot.node == node).count();
        let expected = usize::from(node != FAILING);
        assert_eq!(
            count, expected,
            "{node} rebooted {count} times: {reboots:?}"
        );
    }

    // No node went down while its job ran, and every job finished.
    for (node, _) in JOBS {
        let job = read_job(&job_log(&cluster, node));
        assert!(job.done, "the job on {node} did not finish: {job:?}");
        let ended = job.ended.unwrap();
        for reboot in reboots.iter().filter(|reboot| &reboot.node == node) {
            assert!(
                reboot.down_at > ended || reboot.down_at < job.started,
                "{node} went down at {:?}, while its job ran ({job:?})",
                reboot.down_at
            );
        }
    }
    let queue = cluster.command("squeue", &["-h"]);
    assert!(queue.trim().is_empty(), "jobs left: {queue}");

    // In Slurm: all in service but the failing node, which crus keeps out
    // with its own reason.
    let states = cluster.command("sinfo", &["-N", "-h", "-o", "%N %T"]);
    let states: BTreeMap<&str, &str> = states
        .lines()
        .filter_map(|line| line.split_once(' '))
        .collect();
    for node in &cluster.nodes {
        let state = states.get(node.as_str()).copied().unwrap_or("missing");
        if node == FAILING {
            assert!(
                ["fail", "down", "drained", "down*"].contains(&state),
                "{node} should stay out of service, but is {state}"
            );
        } else {
            assert_eq!(state, "idle", "{node}: {states:?}");
        }
    }
    let shown = cluster.show_node(FAILING);
    // crus's mark: the session's drain reason, then why the node failed.
    assert!(
        shown.contains("Reason=crus:") && shown.contains(": boot failed"),
        "{shown}"
    );

    // In the inventory file: the failing node in the failed group, nobody
    // left in the upgrading group.
    let inventory: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("inventory.json")).unwrap())
            .unwrap();
    assert_eq!(
        inventory["groups"]["crus-failed"],
        serde_json::json!([FAILING]),
        "{inventory:#}"
    );
    let upgrading = &inventory["groups"]["crus-upgrading"];
    assert!(
        upgrading.is_null() || upgrading.as_array().is_some_and(Vec::is_empty),
        "{inventory:#}"
    );

    assert_eq!(server.terminate(), Some(0));
    eprintln!(
        "real Slurm end to end: jobs running after {jobs_running:?}, session READY after \
         {session_time:?}, total {:?}",
        started.elapsed()
    );
}
