//! `SlurmWorkloadManager` against a real Slurm 22.05 cluster started by the
//! test itself (see `slurm_harness`): the workload manager conformance suite,
//! a busy node running a real batch job, and the error paths.
#![cfg(feature = "slurm")]
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod slurm_harness;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crus_backends::slurm::{NodeNaming, SlurmConfig, SlurmWorkloadManager};
use crus_core::ports::{WorkloadManager, WorkloadState};
use crus_core::testkit::{self, WorkloadManagerFixture};
use crus_core::{Error, NodeId, Timestamp};

use slurm_harness::SlurmCluster;

fn manager(cluster: &SlurmCluster) -> SlurmWorkloadManager {
    SlurmWorkloadManager::new(SlurmConfig {
        conf: Some(cluster.conf()),
        command_timeout: Duration::from_secs(10),
        ..SlurmConfig::default()
    })
}

/// How long the busy node's job runs: long enough for the suite's earlier
/// checks (a few seconds against a local Slurm, with margin for a loaded
/// machine) plus the observed Draining, short enough to keep the test quick.
const BUSY_JOB: &str = "sleep 12";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_against_real_slurm() {
    let started = Instant::now();
    let mut cluster = SlurmCluster::start(3);
    let up = started.elapsed();
    let busy = cluster.nodes[2].clone();
    cluster.submit_running_job(&busy, BUSY_JOB);
    let slurm = manager(&cluster);

    // The busy node reports when its job should end (its 5-minute limit).
    let reported = slurm
        .node_states(&[NodeId::from(busy.as_str())])
        .await
        .unwrap();
    assert_eq!(reported[0].state, WorkloadState::Allocated, "{reported:?}");
    let end = reported[0]
        .jobs_end_by
        .expect("a running job has an end time");
    let from_now = end.saturating_since(Timestamp::now());
    assert!(
        from_now > Duration::from_secs(200) && from_now <= Duration::from_secs(300),
        "end {end} is {from_now:?} from now"
    );

    let fixture = WorkloadManagerFixture {
        idle_nodes: cluster.nodes[..2]
            .iter()
            .map(|n| NodeId::from(n.as_str()))
            .collect(),
        unknown_node: NodeId::from("node999"),
        busy_node: Some(NodeId::from(busy.as_str())),
        jobs_end_within: Duration::from_secs(20),
        settle_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(100),
    };
    let suite_started = Instant::now();
    if let Err(failure) = testkit::workload_manager::run_all(&slurm, &fixture).await {
        panic!("{failure}");
    }
    eprintln!(
        "real Slurm: cluster up in {up:?}, conformance suite in {:?}, total {:?}",
        suite_started.elapsed(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nid_names_errors_and_fail_state_against_real_slurm() {
    let cluster = SlurmCluster::start(2);
    let slurm = manager(&cluster);
    let node = NodeId::from(cluster.nodes[0].as_str());

    // Draining or resuming a node Slurm does not know is NotFound, not success.
    let unknown = [NodeId::from("node999")];
    let error = slurm.drain(&unknown, "x").await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    let error = slurm.resume(&unknown).await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    // Slurm refuses a drain without a reason; crus says so before asking.
    let error = slurm
        .drain(std::slice::from_ref(&node), " ")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");

    // fail marks the node FAIL: Down, responding, with the reason as given.
    slurm
        .fail(std::slice::from_ref(&node), "bad dimm: slot 3")
        .await
        .unwrap();
    let shown = cluster.command("scontrol", &["-o", "show", "node", &cluster.nodes[0]]);
    assert!(shown.contains(" State=IDLE+FAIL "), "{shown}");
    let reported = slurm
        .node_states(std::slice::from_ref(&node))
        .await
        .unwrap();
    assert_eq!(reported[0].state, WorkloadState::Down);
    assert!(reported[0].responding);
    assert_eq!(reported[0].reason.as_deref(), Some("bad dimm: slot 3"));
    // An administrator's mark: no session of crus may resume this node.
    assert!(crus_core::rollout::held_by_someone_else(&reported[0]));
    // crus's own failure mark, as a session writes it, reads back as
    // crus's (byte for byte), so a later session may upgrade the node and
    // return it to service (issue 18's nodes failed by one session).
    let crus_mark = "crus:6c2d1a52-0f0e-4d7b-9c51-8a3f0e2b7d10: boot failed: no image";
    slurm
        .fail(std::slice::from_ref(&node), crus_mark)
        .await
        .unwrap();
    let reported = slurm
        .node_states(std::slice::from_ref(&node))
        .await
        .unwrap();
    assert_eq!(reported[0].reason.as_deref(), Some(crus_mark));
    assert!(!crus_core::rollout::held_by_someone_else(&reported[0]));
    slurm.resume(std::slice::from_ref(&node)).await.unwrap();
    let reported = slurm
        .node_states(std::slice::from_ref(&node))
        .await
        .unwrap();
    assert_eq!(reported[0].state, WorkloadState::Idle, "{reported:?}");
    assert_eq!(reported[0].reason, None);

    // Cray naming: xnames map to nidNNNNNN. This cluster names its nodes
    // nodeNNN, so a mapped xname is a node Slurm does not know.
    let mapped = SlurmWorkloadManager::new(SlurmConfig {
        conf: Some(cluster.conf()),
        node_names: NodeNaming::NidFromInventory(HashMap::from([(
            NodeId::from("x1000c0s0b0n0"),
            1,
        )])),
        ..SlurmConfig::default()
    });
    let reported = mapped
        .node_states(&[NodeId::from("x1000c0s0b0n0"), NodeId::from("x9")])
        .await
        .unwrap();
    assert!(
        reported
            .iter()
            .all(|node| node.state == WorkloadState::Unknown)
    );
}

#[tokio::test]
async fn a_hung_command_is_killed_and_unavailable() {
    // A fake scontrol that never answers, as with a wedged slurmctld.
    let bin = tempfile::tempdir().unwrap();
    let script = bin.path().join("scontrol");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let slurm = SlurmWorkloadManager::new(SlurmConfig {
        bin_dir: Some(bin.path().to_path_buf()),
        command_timeout: Duration::from_millis(300),
        ..SlurmConfig::default()
    });
    let started = Instant::now();
    let error = slurm.node_states(&[NodeId::from("n1")]).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(error.is_retryable(), "{error:?}");
    assert!(
        error.to_string().contains("did not finish within"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failing_command_reports_its_stderr() {
    let bin = tempfile::tempdir().unwrap();
    let script = bin.path().join("scontrol");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'slurm_update error: Access/permission denied' >&2\nexit 1\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let slurm = SlurmWorkloadManager::new(SlurmConfig {
        bin_dir: Some(bin.path().to_path_buf()),
        ..SlurmConfig::default()
    });
    let error = slurm.drain(&[NodeId::from("n1")], "why").await.unwrap_err();
    assert!(!error.is_retryable(), "{error:?}");
    assert!(
        error.to_string().contains("Access/permission denied"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_find_out_json_once_and_fall_back_to_formatted_output() {
    use crus_backends::slurm::ReadMode;
    use std::os::unix::fs::PermissionsExt;

    let mut cluster = SlurmCluster::start(2);
    let busy = cluster.nodes[1].clone();
    cluster.submit_running_job(&busy, BUSY_JOB);
    let nodes = [
        NodeId::from(cluster.nodes[0].as_str()),
        NodeId::from(busy.as_str()),
    ];

    // 22.05 has `sinfo --json`: the first read finds that out.
    let slurm = manager(&cluster);
    assert_eq!(slurm.read_mode(), None);
    let from_json = slurm.node_states(&nodes).await.unwrap();
    assert_eq!(slurm.read_mode(), Some(ReadMode::Json));
    assert_eq!(from_json[0].state, WorkloadState::Idle, "{from_json:?}");
    assert_eq!(
        from_json[1].state,
        WorkloadState::Allocated,
        "{from_json:?}"
    );
    assert!(from_json[1].jobs_end_by.is_some(), "{from_json:?}");

    // A Slurm whose sinfo rejects `--json` is read from formatted output,
    // with the same result; a controller that cannot be reached decides nothing.
    let bin = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        let path = bin.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("scontrol", r#"exec scontrol "$@""#);
    script("squeue", r#"exec squeue "$@""#);
    let old_slurm = SlurmWorkloadManager::new(SlurmConfig {
        bin_dir: Some(bin.path().to_path_buf()),
        ..slurm.config().clone()
    });
    script(
        "sinfo",
        "echo 'sinfo: error: Unable to contact slurm controller (connect failure)' >&2; exit 1",
    );
    let error = old_slurm.node_states(&nodes).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(old_slurm.read_mode(), None);
    script(
        "sinfo",
        r#"echo "sinfo: unrecognized option '--json'" >&2; exit 1"#,
    );
    let from_formatted = old_slurm.node_states(&nodes).await.unwrap();
    assert_eq!(old_slurm.read_mode(), Some(ReadMode::Formatted));
    assert_eq!(from_formatted, from_json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_puts_a_running_job_back_in_the_queue() {
    let mut cluster = SlurmCluster::start(2);
    let busy = cluster.nodes[0].clone();
    let job = cluster.submit_running_job(&busy, "sleep 300");
    let slurm = manager(&cluster);
    let node = NodeId::from(busy.as_str());
    // Drained first, as the rollout does, so the job cannot come straight back.
    slurm
        .drain(std::slice::from_ref(&node), "crus:test")
        .await
        .unwrap();
    slurm
        .requeue_jobs(std::slice::from_ref(&node))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reported = slurm
            .node_states(std::slice::from_ref(&node))
            .await
            .unwrap();
        if reported[0].state == WorkloadState::Drained {
            break;
        }
        assert!(Instant::now() < deadline, "{reported:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state = cluster.command("squeue", &["-h", "-j", &job, "-o", "%T %N"]);
    assert!(!state.contains(&busy), "job {job} still on {busy}: {state}");
    // Nothing left to requeue is not an error.
    slurm
        .requeue_jobs(std::slice::from_ref(&node))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_lists_running_and_pending_jobs_with_their_limits() {
    let mut cluster = SlurmCluster::start(2);
    let busy = cluster.nodes[0].clone();
    cluster.submit_running_job(&busy, "sleep 300");
    // Waits for the busy node: it needs both nodes, for at most 90 minutes.
    cluster.command(
        "sbatch",
        &[
            "--parsable",
            "-N",
            "2",
            "--exclusive",
            "-t",
            "1:30:00",
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 1",
        ],
    );
    // Held: pending whatever is free, one node for 2 days.
    cluster.command(
        "sbatch",
        &[
            "--parsable",
            "-H",
            "-N",
            "1",
            "-t",
            "2-00:00:00",
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 1",
        ],
    );
    let slurm = manager(&cluster);
    let queue = slurm.queue().await.unwrap();

    assert_eq!(queue.running.len(), 1, "{queue:?}");
    assert_eq!(queue.running[0].nodes, [NodeId::from(busy.as_str())]);
    assert_eq!(
        queue.running[0].time_limit,
        Some(Duration::from_secs(5 * 60))
    );
    let started = queue.running[0].started;
    assert!(
        Timestamp::now().saturating_since(started) < Duration::from_secs(120),
        "started {started}"
    );
    let mut pending: Vec<(u32, Option<Duration>)> = queue
        .pending
        .iter()
        .map(|job| (job.nodes, job.time_limit))
        .collect();
    pending.sort();
    assert_eq!(
        pending,
        [
            (1, Some(Duration::from_secs(2 * 24 * 3600))),
            (2, Some(Duration::from_secs(90 * 60))),
        ]
    );
    for job in &queue.pending {
        assert!(
            Timestamp::now().saturating_since(job.submitted) < Duration::from_secs(120),
            "{job:?}"
        );
    }
    // The harness keeps no accounting: no history, so no arrivals are learned.
    assert_eq!(queue.recent_since, None);
}

/// `steer_jobs` on real Slurm: weights are read per node, set per node
/// (several weights in one call), steer a new job to the lowest weight, and
/// what `scontrol reconfigure` does to weights set at run time is pinned
/// (Slurm puts back `slurm.conf`'s, which is why the rollout reads the raised
/// weights back and sets them again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_are_read_set_steer_jobs_and_reconfigure_resets_them() {
    let cluster = SlurmCluster::start(3);
    let slurm = manager(&cluster);
    let ids: Vec<NodeId> = cluster
        .nodes
        .iter()
        .map(|node| NodeId::from(node.as_str()))
        .collect();
    // slurm.conf gives no Weight=: Slurm's default is 1.
    assert_eq!(slurm.node_weights(&ids).await.unwrap(), vec![1, 1, 1]);
    slurm
        .set_weights(&[
            (ids[0].clone(), 1_000_001),
            (ids[1].clone(), 1_000_001),
            (ids[2].clone(), 1),
        ])
        .await
        .unwrap();
    assert_eq!(
        slurm.node_weights(&ids).await.unwrap(),
        vec![1_000_001, 1_000_001, 1]
    );
    // A one-node job anywhere lands on the lowest weight: the last node.
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
            "sleep 30",
        ],
    );
    let job = job.trim().split(';').next().unwrap_or_default().to_string();
    cluster.wait_running(std::slice::from_ref(&job));
    let on = cluster.command("squeue", &["-h", "-j", &job, "-o", "%N"]);
    assert_eq!(on.trim(), cluster.nodes[2], "job {job} ran on {on}");
    // An unknown node is refused, and nothing is half-read.
    let error = slurm
        .node_weights(&[ids[0].clone(), NodeId::from("node999")])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");

    cluster.command("scontrol", &["reconfigure"]);
    let mut after = Vec::new();
    for _ in 0..50 {
        after = slurm.node_weights(&ids).await.unwrap();
        if after == vec![1, 1, 1] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        after,
        vec![1, 1, 1],
        "scontrol reconfigure puts back slurm.conf's weights"
    );
    cluster.command("scancel", &[&job]);
}

/// An administrator's reason with the punctuation and spacing people use;
/// crus must write it back exactly.
const ADMIN_REASON: &str = "bad DIMM: slot 3,  see ticket #42 (\"ECC\") & call Bob; x=1";

/// Issue 21 on real Slurm: a node an administrator had `down` is put back
/// DOWN (not FAIL, not drained) with the reason byte for byte, and one that
/// was drained is put back drained; neither is left in service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_puts_nodes_back_down_or_drained_with_the_admins_reason() {
    let cluster = SlurmCluster::start(2);
    let slurm = manager(&cluster);
    let down = NodeId::from(cluster.nodes[0].as_str());
    let drained = NodeId::from(cluster.nodes[1].as_str());
    let reason_arg = format!("reason={ADMIN_REASON}");
    let node_arg = |name: &str| format!("nodename={name}");
    cluster.command(
        "scontrol",
        &[
            "update",
            &node_arg(&cluster.nodes[0]),
            "state=DOWN",
            &reason_arg,
        ],
    );
    cluster.command(
        "scontrol",
        &[
            "update",
            &node_arg(&cluster.nodes[1]),
            "state=DRAIN",
            &reason_arg,
        ],
    );
    let before = slurm
        .node_states(&[down.clone(), drained.clone()])
        .await
        .unwrap();
    assert_eq!(before[0].state, WorkloadState::Down, "{before:?}");
    assert_eq!(before[1].state, WorkloadState::Drained, "{before:?}");
    for node in &before {
        assert_eq!(node.reason.as_deref(), Some(ADMIN_REASON), "{before:?}");
    }

    // crus upgrades them (here: returned to service, as after a reboot)...
    slurm
        .resume(&[down.clone(), drained.clone()])
        .await
        .unwrap();
    // ...and puts each back as the report said, from what it kept.
    for node in &before {
        slurm
            .restore(
                std::slice::from_ref(&node.node),
                node.state,
                node.reason.as_deref().unwrap(),
            )
            .await
            .unwrap();
    }

    // Slurm marks a node set DOWN not responding until its next ping.
    let shown = cluster.show_node(&cluster.nodes[0]);
    assert!(
        shown.contains(" State=DOWN ") || shown.contains(" State=DOWN+NOT_RESPONDING "),
        "{shown}"
    );
    assert!(!shown.contains("FAIL"), "{shown}");
    assert!(
        shown.contains(&format!(" Reason={ADMIN_REASON} [root@")),
        "{shown}"
    );
    let shown = cluster.show_node(&cluster.nodes[1]);
    assert!(
        shown.contains(" State=IDLE+DRAIN ") || shown.contains(" State=IDLE+DRAIN+NOT_RESPONDING "),
        "{shown}"
    );
    let state_and_reason = |nodes: &[crus_core::ports::WorkloadNode]| -> Vec<_> {
        nodes
            .iter()
            .map(|node| (node.state, node.reason.clone()))
            .collect()
    };
    let after = slurm
        .node_states(&[down.clone(), drained.clone()])
        .await
        .unwrap();
    assert_eq!(state_and_reason(&after), state_and_reason(&before));
    let sinfo = cluster.command("sinfo", &["-N", "-h", "-o", "%N|%T|%E"]);
    assert!(
        sinfo.contains(&format!("{}|down|{ADMIN_REASON}\n", cluster.nodes[0]))
            || sinfo.contains(&format!("{}|down*|{ADMIN_REASON}\n", cluster.nodes[0])),
        "{sinfo}"
    );
    assert!(
        sinfo.contains(&format!("{}|drained|{ADMIN_REASON}\n", cluster.nodes[1]))
            || sinfo.contains(&format!("{}|drained*|{ADMIN_REASON}\n", cluster.nodes[1])),
        "{sinfo}"
    );
    // Again changes nothing: restore is idempotent.
    slurm
        .restore(
            std::slice::from_ref(&down),
            WorkloadState::Down,
            ADMIN_REASON,
        )
        .await
        .unwrap();
    let again = slurm.node_states(&[down, drained]).await.unwrap();
    assert_eq!(state_and_reason(&again), state_and_reason(&before));
}

/// Issue 20's image tags on real Slurm: features are read per node, the
/// image feature replaces an old one in both `AvailableFeatures` and
/// `ActiveFeatures` (the others kept), a job with
/// `--constraint=img_<template>` runs only on the tagged nodes, and the
/// original lists (an empty one included) are written back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_features_are_set_constrain_jobs_and_are_restored() {
    use crus_core::rollout::{image_feature, with_image_feature};

    let cluster = slurm_harness::SlurmCluster::start_with(slurm_harness::ClusterOptions {
        features: vec!["gpu".into(), "gpu,img_old".into(), String::new()],
        ..slurm_harness::ClusterOptions::new(3)
    });
    let slurm = manager(&cluster);
    let ids: Vec<NodeId> = cluster
        .nodes
        .iter()
        .map(|node| NodeId::from(node.as_str()))
        .collect();
    let strings = |list: &[&str]| list.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    let own = slurm.node_features(&ids).await.unwrap();
    assert_eq!(
        own,
        vec![strings(&["gpu"]), strings(&["gpu", "img_old"]), vec![]]
    );

    let template = "compute-image 2.0";
    let feature = image_feature(template);
    let tagged: Vec<(NodeId, Vec<String>)> = ids[..2]
        .iter()
        .zip(&own)
        .map(|(id, list)| (id.clone(), with_image_feature(list, template)))
        .collect();
    slurm.set_features(&tagged).await.unwrap();
    for node in &cluster.nodes[..2] {
        let shown = cluster.show_node(node);
        let expected = format!("gpu,{feature}");
        assert!(
            shown.contains(&format!(" AvailableFeatures={expected} "))
                && shown.contains(&format!(" ActiveFeatures={expected} ")),
            "{shown}"
        );
    }
    // Jobs asking for the image run on the tagged nodes only.
    let mut jobs = Vec::new();
    for _ in 0..3 {
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
                &format!("--constraint={feature}"),
                "--wrap",
                "sleep 3",
            ],
        );
        jobs.push(job.trim().split(';').next().unwrap_or_default().to_string());
    }
    let two = cluster.command(
        "sbatch",
        &[
            "--parsable",
            "-N",
            "2",
            "-t",
            "5",
            "-o",
            "/dev/null",
            &format!("--constraint={feature}"),
            "--wrap",
            "sleep 1",
        ],
    );
    let two = two.trim().split(';').next().unwrap_or_default().to_string();
    let started = Instant::now();
    let mut placed: HashMap<String, String> = HashMap::new();
    while placed.len() < 4 {
        for job in jobs.iter().chain([&two]) {
            let on = cluster.command("squeue", &["-h", "-j", job, "-t", "RUNNING", "-o", "%N"]);
            if !on.trim().is_empty() {
                placed.insert(job.clone(), on.trim().to_string());
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "jobs placed so far: {placed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (job, nodes) in &placed {
        assert!(
            !nodes.contains(&cluster.nodes[2]),
            "job {job} ran on {nodes}, which has no {feature}"
        );
    }

    // Back as they were, the empty list included.
    slurm
        .set_features(&[(ids[2].clone(), strings(&["scratch"]))])
        .await
        .unwrap();
    let restore: Vec<(NodeId, Vec<String>)> = ids.iter().cloned().zip(own.clone()).collect();
    slurm.set_features(&restore).await.unwrap();
    assert_eq!(slurm.node_features(&ids).await.unwrap(), own);
    let shown = cluster.show_node(&cluster.nodes[2]);
    // Slurm 22.05 shows a cleared active list as empty, not `(null)`.
    assert!(
        shown.contains(" AvailableFeatures=(null) ActiveFeatures=(null) ")
            || shown.contains(" AvailableFeatures=(null) ActiveFeatures= "),
        "{shown}"
    );
    // A name Slurm would read as an operator is refused before any change.
    let error = slurm
        .set_features(&[(ids[0].clone(), strings(&["a&b"]))])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    assert_eq!(slurm.node_features(&ids).await.unwrap(), own);
}

/// Issue 20's image tags: what Slurm 22.05 does to features set with
/// `scontrol update` on a `scontrol reconfigure` and on a restart of
/// `slurmctld` from its saved state, pinned: both put back slurm.conf's
/// lists, as they do weights (so the rollout reads the lists it set back
/// every minute and before it ends, and sets them again when they changed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_features_after_reconfigure_and_a_slurmctld_restart() {
    let mut cluster = slurm_harness::SlurmCluster::start_with(slurm_harness::ClusterOptions {
        features: vec!["gpu".into(), String::new()],
        ..slurm_harness::ClusterOptions::new(2)
    });
    let slurm = manager(&cluster);
    let ids: Vec<NodeId> = cluster
        .nodes
        .iter()
        .map(|node| NodeId::from(node.as_str()))
        .collect();
    let strings = |list: &[&str]| list.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    let own = vec![strings(&["gpu"]), vec![]];
    assert_eq!(slurm.node_features(&ids).await.unwrap(), own);
    let tagged = vec![strings(&["gpu", "img_new"]), strings(&["img_new"])];
    let set: Vec<(NodeId, Vec<String>)> = ids.iter().cloned().zip(tagged.clone()).collect();
    slurm.set_features(&set).await.unwrap();
    assert_eq!(slurm.node_features(&ids).await.unwrap(), tagged);

    cluster.command("scontrol", &["reconfigure"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_reconfigure = slurm.node_features(&ids).await.unwrap();
    eprintln!("features after scontrol reconfigure: {after_reconfigure:?}");

    slurm.set_features(&set).await.unwrap();
    cluster.restart_slurmctld();
    let mut after_restart = Vec::new();
    for _ in 0..50 {
        if let Ok(features) = slurm.node_features(&ids).await {
            after_restart = features;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("features after a slurmctld restart: {after_restart:?}");
    assert_eq!(after_reconfigure, own, "reconfigure");
    assert_eq!(after_restart, own, "restart");
}

/// The lines of `scontrol -o show reservation` naming crus's reservations.
fn crus_reservations(cluster: &SlurmCluster) -> Vec<String> {
    cluster
        .command("scontrol", &["-o", "show", "reservation"])
        .lines()
        .filter(|line| line.starts_with("ReservationName=crus_"))
        .map(str::to_string)
        .collect()
}

/// Submits a one-node exclusive job with a limit of `minutes`; its id.
fn submit_limited(cluster: &SlurmCluster, minutes: u32) -> String {
    let limit = minutes.to_string();
    let out = cluster.command(
        "sbatch",
        &[
            "--parsable",
            "--exclusive",
            "-N",
            "1",
            "-t",
            &limit,
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 300",
        ],
    );
    out.trim().split(';').next().unwrap_or_default().to_string()
}

/// `reserve_ahead` on real Slurm: a node reserved from 20 minutes on runs
/// a 5-minute job but not a 30-minute one; a reservation moves, one that
/// has begun is made again, a site's own is never touched, they outlive a
/// `slurmctld` restart, and removing them is idempotent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_keep_long_jobs_off_a_node_until_its_turn_and_are_removed() {
    let mut cluster = SlurmCluster::start(2);
    let slurm = manager(&cluster);
    let ids: Vec<NodeId> = cluster
        .nodes
        .iter()
        .map(|node| NodeId::from(node.as_str()))
        .collect();
    let (first, second) = (cluster.nodes[0].clone(), cluster.nodes[1].clone());
    assert!(slurm.reservations_supported().is_ok());
    let now = Timestamp::now();
    slurm
        .reserve_from(&[(ids[0].clone(), now + Duration::from_secs(20 * 60))])
        .await
        .unwrap();
    let lines = crus_reservations(&cluster);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        slurm.reserved_nodes(&ids).await.unwrap(),
        vec![ids[0].clone()]
    );
    assert!(
        lines[0].contains(&format!("Nodes={first} ")),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("MAINT") && lines[0].contains("IGNORE_JOBS"));

    // Two 30-minute jobs: one runs on the free node, the other waits
    // rather than outlast the reservation; a 5-minute job runs there.
    let long = [submit_limited(&cluster, 30), submit_limited(&cluster, 30)];
    cluster.wait_running(std::slice::from_ref(&long[0]));
    let short = submit_limited(&cluster, 5);
    cluster.wait_running(std::slice::from_ref(&short));
    let on = |job: &str| cluster.command("squeue", &["-h", "-j", job, "-o", "%T %N"]);
    assert_eq!(on(&long[0]).trim(), format!("RUNNING {second}"));
    assert!(
        on(&long[1]).trim().starts_with("PENDING"),
        "{}",
        on(&long[1])
    );
    assert_eq!(on(&short).trim(), format!("RUNNING {first}"));

    // Moved: still one reservation, starting later.
    let before = crus_reservations(&cluster);
    slurm
        .reserve_from(&[(ids[0].clone(), now + Duration::from_secs(40 * 60))])
        .await
        .unwrap();
    let after = crus_reservations(&cluster);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(before, after, "the start moved");

    // One that has begun cannot be moved in Slurm: it is made again, and
    // the node reads as in service (reserved, not unknown).
    slurm
        .reserve_from(&[(ids[1].clone(), Timestamp::now())])
        .await
        .unwrap();
    let states = slurm
        .node_states(std::slice::from_ref(&ids[1]))
        .await
        .unwrap();
    assert!(
        matches!(
            states[0].state,
            WorkloadState::Allocated | WorkloadState::Idle
        ),
        "{states:?}"
    );
    slurm
        .reserve_from(&[(ids[1].clone(), Timestamp::now() + Duration::from_secs(3600))])
        .await
        .unwrap();
    let lines = crus_reservations(&cluster);
    let second_line = lines
        .iter()
        .find(|line| line.contains(&format!("Nodes={second} ")))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(second_line.contains("State=INACTIVE"), "{second_line}");

    // A site's own reservation is not crus's to remove.
    cluster.command(
        "scontrol",
        &[
            "create",
            "reservation",
            "ReservationName=site_keep",
            &format!("Nodes={first}"),
            "StartTime=now+7200",
            "Duration=60",
            "Flags=MAINT",
            "Users=root",
        ],
    );
    // Kept in slurmctld's saved state, which it writes within seconds of a
    // change (one made just before a crash may be lost: the rollout reads
    // its reservations back and sets lost ones again).
    let saved = crus_reservations(&cluster);
    std::thread::sleep(Duration::from_secs(8));
    cluster.restart_slurmctld();
    assert_eq!(crus_reservations(&cluster), saved);

    slurm.unreserve(&ids).await.unwrap();
    assert_eq!(crus_reservations(&cluster), Vec::<String>::new());
    assert_eq!(
        slurm.reserved_nodes(&ids).await.unwrap(),
        Vec::<NodeId>::new()
    );
    slurm.unreserve(&ids).await.unwrap();
    let all = cluster.command("scontrol", &["-o", "show", "reservation"]);
    assert!(all.contains("ReservationName=site_keep"), "{all}");
    for job in long.iter().chain([&short]) {
        cluster.command("scancel", &[job]);
    }
}
