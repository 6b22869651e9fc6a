//! `SlurmRebootOrchestrator` against a real Slurm 22.05 cluster started by the
//! test itself (see `slurm_harness`, whose RebootProgram restarts a node's
//! slurmd instead of rebooting the machine): the boot orchestrator
//! conformance suite, idempotency across a restart, failed reboots with
//! Slurm's reasons, and cancelling.
//!
//! One cluster serves every scenario, each on nodes of its own, and the slow
//! one (waiting for Slurm's ResumeTimeout) runs alongside the others, so the
//! file takes about as long as one timed-out reboot.
#![cfg(feature = "slurm")]
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod slurm_harness;

use std::time::{Duration, Instant};

use crus_backends::slurm::{SlurmConfig, SlurmRebootConfig, SlurmRebootOrchestrator};
use crus_core::NodeId;
use crus_core::ports::{BootHandle, BootOrchestrator, BootRequest, NodeBootState, NodeBootStatus};
use crus_core::testkit::{self, BootOrchestratorFixture};

use slurm_harness::{ClusterOptions, SlurmCluster};

const TEMPLATE: &str = "compute-image";

/// How long Slurm waits for a rebooting node; slurmctld notices on a coarse
/// timer, up to about 30 s later.
const RESUME_TIMEOUT: Duration = Duration::from_secs(10);

fn orchestrator(cluster: &SlurmCluster) -> SlurmRebootOrchestrator {
    SlurmRebootOrchestrator::new(
        SlurmConfig {
            conf: Some(cluster.conf()),
            command_timeout: Duration::from_secs(10),
            ..SlurmConfig::default()
        },
        SlurmRebootConfig {
            templates: Some([TEMPLATE.to_string()].into()),
            ..SlurmRebootConfig::default()
        },
    )
}

fn ids(names: &[String]) -> Vec<NodeId> {
    names
        .iter()
        .map(|name| NodeId::from(name.as_str()))
        .collect()
}

fn request(key: &str, nodes: &[String]) -> BootRequest {
    BootRequest {
        key: key.to_string(),
        template: TEMPLATE.to_string(),
        nodes: ids(nodes),
    }
}

/// Polls `boot_status` until every node is ok or failed.
async fn wait_settled(
    slurm: &SlurmRebootOrchestrator,
    handle: &BootHandle,
    limit: Duration,
) -> Vec<NodeBootStatus> {
    let started = Instant::now();
    loop {
        let reported = slurm.boot_status(handle).await.unwrap();
        if reported
            .iter()
            .all(|node| node.state != NodeBootState::InProgress)
        {
            return reported;
        }
        assert!(
            started.elapsed() < limit,
            "{handle:?} still in progress after {limit:?}: {reported:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboots_against_real_slurm() {
    let started = Instant::now();
    let mut cluster = SlurmCluster::start_with(ClusterOptions {
        resume_timeout: RESUME_TIMEOUT,
        // A node whose reboot timed out stays DOWN with Slurm's reason even
        // though its slurmd still answers (with 2, it would be put back).
        return_to_service: 1,
        ..ClusterOptions::new(6)
    });
    let nodes = cluster.nodes.clone();
    let (suite_nodes, restart_node, cancel_node, failing_nodes) =
        (&nodes[0..2], &nodes[2..3], &nodes[3..4], &nodes[4..6]);
    cluster.set_fail(&failing_nodes[0]);
    cluster.set_hang(&failing_nodes[1]);
    // Long enough to find the reboot still pending from a "restarted" process.
    cluster.set_reboot_delay(&restart_node[0], Duration::from_secs(4));
    let job = cluster.submit_running_job(&cancel_node[0], "sleep 60");
    let slurm = orchestrator(&cluster);

    let failures = async {
        let handle = slurm
            .start_boot(&request("crus-test-failures", failing_nodes))
            .await
            .unwrap();
        let reported =
            wait_settled(&slurm, &handle, RESUME_TIMEOUT + Duration::from_secs(45)).await;
        for status in &reported {
            let NodeBootState::Failed { reason } = &status.state else {
                panic!("{} should fail its reboot: {reported:?}", status.node);
            };
            assert!(reason.contains("reboot timed out"), "{reason}");
        }
        started.elapsed()
    };

    let others = async {
        // The conformance suite, on nodes of its own.
        let fixture = BootOrchestratorFixture {
            template: TEMPLATE.to_string(),
            nodes: ids(suite_nodes),
            boot_timeout: Duration::from_secs(40),
            poll_interval: Duration::from_millis(250),
        };
        if let Err(failure) = testkit::boot_orchestrator::run_all(&slurm, &fixture).await {
            panic!("{failure}");
        }
        let suite_done = started.elapsed();

        // The same key twice, at once and later: one reboot.
        let key = "crus-test-restart";
        let restart_request = request(key, restart_node);
        let (first, second) = tokio::join!(
            slurm.start_boot(&restart_request),
            slurm.start_boot(&restart_request)
        );
        let first = first.unwrap();
        assert_eq!(first, second.unwrap());
        // A new process that lost the handle finds the pending reboot by its
        // key, and one that kept it can read its progress.
        let restarted = orchestrator(&cluster);
        let found = restarted
            .start_boot(&request(key, restart_node))
            .await
            .unwrap();
        assert_eq!(found.key, key);
        let reported = wait_settled(&restarted, &first, Duration::from_secs(30)).await;
        assert_eq!(reported[0].state, NodeBootState::Ok, "{reported:?}");
        assert_eq!(
            wait_settled(&restarted, &found, Duration::from_secs(1)).await[0].state,
            NodeBootState::Ok
        );
        assert_eq!(
            slurm.start_boot(&request(key, restart_node)).await.unwrap(),
            first
        );

        // A reboot waiting for a job is cancelled; the job runs on.
        let handle = slurm
            .start_boot(&request("crus-test-cancel", cancel_node))
            .await
            .unwrap();
        let shown = cluster.show_node(&cancel_node[0]);
        assert!(shown.contains("+REBOOT_REQUESTED"), "{shown}");
        assert_eq!(
            slurm.boot_status(&handle).await.unwrap()[0].state,
            NodeBootState::InProgress
        );
        slurm.cancel_boot(&handle).await.unwrap();
        slurm.cancel_boot(&handle).await.unwrap();
        let shown = cluster.show_node(&cancel_node[0]);
        assert!(!shown.contains("REBOOT"), "{shown}");
        assert!(shown.contains(" State=ALLOCATED"), "{shown}");
        let reported = slurm.boot_status(&handle).await.unwrap();
        assert!(
            matches!(&reported[0].state, NodeBootState::Failed { reason } if reason.contains("cancelled")),
            "{reported:?}"
        );
        (suite_done, started.elapsed())
    };

    let (failures_done, (suite_done, others_done)) = tokio::join!(failures, others);
    cluster.command("scancel", &[&job]);

    // The harness log: one reboot of each node that rebooted, none of the
    // node whose RebootProgram failed or whose reboot was cancelled.
    let reboots = cluster.reboots();
    let count = |node: &str| reboots.iter().filter(|reboot| reboot.node == node).count();
    for node in suite_nodes.iter().chain(restart_node) {
        assert_eq!(count(node), 1, "{node}: {reboots:?}");
    }
    assert_eq!(count(&failing_nodes[0]), 0, "{reboots:?}");
    assert_eq!(count(&cancel_node[0]), 0, "{reboots:?}");
    let hung: Vec<_> = reboots
        .iter()
        .filter(|reboot| reboot.node == failing_nodes[1])
        .collect();
    assert!(hung.len() == 1 && hung[0].up_at.is_none(), "{reboots:?}");
    // The reason Slurm keeps on the node that failed is its own.
    let shown = cluster.show_node(&failing_nodes[0]);
    assert!(shown.contains("reboot timed out"), "{shown}");

    eprintln!(
        "real Slurm reboots: conformance suite done at {suite_done:?}, restart and cancel at \
         {others_done:?}, failures at {failures_done:?}, total {:?}",
        started.elapsed()
    );
}

/// `scontrol show node`'s ` State=` value, e.g. `IDLE+DRAIN`.
fn state_of(cluster: &SlurmCluster, node: &str) -> String {
    let line = cluster.show_node(node);
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("State="))
        .unwrap_or_default()
        .to_string()
}

/// Whether a ` State=` value is in service: no drain, not down, no reboot
/// under way (the states in which the scheduler may start a job).
fn in_service(state: &str) -> bool {
    let mut parts = state.split('+');
    let base = parts.next().unwrap_or_default();
    let flags: Vec<&str> = parts.collect();
    ["IDLE", "MIXED", "ALLOCATED", "COMPLETING"].contains(&base)
        && !flags
            .iter()
            .any(|flag| ["DRAIN", "REBOOT_REQUESTED", "REBOOT_ISSUED"].contains(flag))
}

/// Issue 21: a node an administrator drained, and one they took down, are
/// rebooted into the image and come back still out of service: Slurm never
/// shows them in service, polled every 50 ms through the reboot (with
/// `nextstate=RESUME` Slurm itself would return them when they register).
/// A node crus drained comes back in service as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_held_by_someone_else_come_back_from_their_reboot_still_held() {
    let cluster = SlurmCluster::start_with(ClusterOptions {
        // As `slurm_sessions_e2e`: with 2, Slurm returns any down node that
        // registers, which is what a reboot must not let it do.
        return_to_service: 2,
        ..ClusterOptions::new(3)
    });
    let (drained, down, own) = ("node001", "node002", "node003");
    for (node, state, reason) in [
        (drained, "DRAIN", "bad DIMM: slot 3"),
        (down, "DOWN", "PSU fault -- do NOT resume"),
        (own, "DRAIN", "crus:upgrade-1"),
    ] {
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
    let slurm = orchestrator(&cluster);
    let handle = slurm
        .start_boot(&request("crus-test-held", &cluster.nodes))
        .await
        .unwrap();

    let started = Instant::now();
    let mut seen: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    let reported = loop {
        for node in [drained, down, own] {
            let state = state_of(&cluster, node);
            let states = seen.entry(node).or_default();
            if states.last() != Some(&state) {
                states.push(state);
            }
        }
        let reported = slurm.boot_status(&handle).await.unwrap();
        if reported
            .iter()
            .all(|node| node.state != NodeBootState::InProgress)
        {
            break reported;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still rebooting after 60 s: {reported:?} {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for status in &reported {
        assert_eq!(status.state, NodeBootState::Ok, "{reported:?} {seen:?}");
    }
    for node in [drained, down, own] {
        assert_eq!(
            cluster.reboots().iter().filter(|r| r.node == node).count(),
            1,
            "{node}: {seen:?}"
        );
    }
    for node in [drained, down] {
        assert!(
            !seen[node].iter().any(|state| in_service(state)),
            "{node} was in service during its reboot: {:?}",
            seen[node]
        );
    }
    assert!(
        state_of(&cluster, drained).contains("DRAIN"),
        "{}",
        cluster.show_node(drained)
    );
    assert!(
        state_of(&cluster, down).starts_with("DOWN"),
        "{}",
        cluster.show_node(down)
    );
    // crus's own drain ends with the reboot, as before.
    cluster.wait("node003 back in service", Duration::from_secs(10), || {
        in_service(&state_of(&cluster, own))
    });

    // The image each node runs is the one a session recorded in Slurm, the
    // feature img_<template> (issue 20's tag); without one it is unknown.
    slurm.current_images_supported().unwrap();
    cluster.command(
        "scontrol",
        &[
            "update",
            "nodename=node003",
            "AvailableFeatures=img_compute_image",
            "ActiveFeatures=img_compute_image",
        ],
    );
    let images = slurm
        .current_images(&ids(&cluster.nodes), TEMPLATE)
        .await
        .unwrap();
    let found: Vec<Option<&str>> = images.iter().map(|i| i.image.as_deref()).collect();
    assert_eq!(found, [None, None, Some(TEMPLATE)], "{images:?}");
    eprintln!(
        "held nodes' reboots: {seen:?}\n{}\n{}",
        cluster.show_node(drained),
        cluster.show_node(down)
    );
}
