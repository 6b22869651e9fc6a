//! A 10,000-node session on a real 3-member etcd cluster, driven by the
//! controller on the simulated cluster with step 500 (issue 25's
//! reproduction: the whole-record write of such a session was over etcd's
//! 1.5 MiB request limit, and the session stopped with 500 nodes out of
//! service). The etcd leader is killed (and restarted) in the middle; the
//! session completes.

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a failure should stop them loudly.

mod common;
mod etcd_harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crus_backends::etcd::{EtcdConfig, EtcdStore, etcd_client};
use crus_backends::sim::{ScaledClock, SimCluster, SimConfig};
use crus_core::Timestamp;
use crus_core::clock::Clock;
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::rollout::{NodePhase, Stage};
use crus_core::store::{SessionStore, StatusView};
use etcd_harness::EtcdCluster;

const NODES: usize = 10_000;
const STEP: u32 = 500;

/// The index of the member that leads the etcd cluster now.
async fn leader_member(cluster: &EtcdCluster) -> Option<usize> {
    for (index, endpoint) in cluster.endpoint_list().into_iter().enumerate() {
        let Ok(mut client) = etcd_client::Client::connect([endpoint], None).await else {
            continue;
        };
        if let Ok(status) = client.status().await
            && status.header().map(|header| header.member_id()) == Some(status.leader())
        {
            return Some(index);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10000_node_session_with_step_500_completes_through_a_leader_kill() {
    let mut cluster = EtcdCluster::start().await;
    let store = Arc::new(
        EtcdStore::connect(&EtcdConfig {
            endpoints: cluster.endpoint_list(),
            prefix: "/crus-scale/".into(),
            ..EtcdConfig::default()
        })
        .await
        .unwrap(),
    );
    // 600 simulated seconds a wall second: a 4-minute boot takes 0.4 s.
    let clock: Arc<dyn Clock> =
        Arc::new(ScaledClock::new(Timestamp::from_secs(1_800_000_000), 600.0).unwrap());
    let sim = SimCluster::new(
        SimConfig {
            nodes: NODES,
            ..SimConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    let controller = Controller::new(
        sim.ports(),
        store.clone() as Arc<dyn SessionStore>,
        clock,
        ControllerConfig::default(),
    );
    let session = controller
        .create_session(common::spec(STEP), common::policy())
        .await
        .unwrap();
    let id = session.upgrade_id;
    let started = Instant::now();
    let driver = tokio::spawn({
        let controller = controller.clone();
        async move { controller.drive(id).await }
    });

    // Kill the etcd leader once a few steps are done.
    let mut killed = None;
    while killed.is_none() && !driver.is_finished() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the session did not reach its fifth step in 5 minutes"
        );
        let Ok(Some(record)) = store.get(id).await else {
            continue;
        };
        if record.value.rollout.count(NodePhase::Done) >= 5 * STEP as usize {
            let leader = leader_member(&cluster).await.expect("a leader");
            cluster.kill_member(leader);
            killed = Some(leader);
            // A crash and a restart: a new leader is elected meanwhile, and
            // the old one rejoins as a follower. (Left dead, its endpoint
            // costs every client call that picks it a timeout: the session
            // goes on, ten times slower.)
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.start_member(leader);
        }
    }
    // Then follow it to its end, saying how far it got if it does not end.
    let mut done = 0;
    while !driver.is_finished() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Ok(Some(record)) = store.get(id).await {
            done = record.value.rollout.count(NodePhase::Done);
            eprintln!(
                "{:>5.0} s: {done} nodes done, stage {:?}",
                started.elapsed().as_secs_f64(),
                record.value.rollout.stage
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the session did not complete in 10 minutes ({done} nodes done)"
        );
    }
    driver
        .await
        .unwrap()
        .expect("the controller drives the session to its end");
    assert!(
        killed.is_some(),
        "the leader was killed in the middle of the session"
    );

    let record = store.get(id).await.unwrap().unwrap().value;
    assert_eq!(record.rollout.stage, Stage::Finished);
    assert_eq!(record.rollout.nodes.len(), NODES);
    // The nodes not upgraded, by phase and reason, so a failure says why.
    let mut not_done: std::collections::BTreeMap<String, usize> = Default::default();
    for node in record.rollout.nodes.iter() {
        if node.phase != NodePhase::Done {
            let why = format!(
                "{:?}: {}",
                node.phase,
                node.reason.as_deref().unwrap_or("-")
            );
            *not_done.entry(why).or_default() += 1;
        }
    }
    assert_eq!(
        record.rollout.count(NodePhase::Done),
        NODES,
        "every node upgraded; the others, by phase and reason: {not_done:#?}; last messages: {:#?}",
        record.rollout.messages
    );
    let status = store.get_status(id).await.unwrap().unwrap();
    assert!(status.contains("\"total\":10000"), "{status}");
    println!(
        "10,000 nodes, step 500, on etcd: {:.1} s, leader killed (member {})",
        started.elapsed().as_secs_f64(),
        killed.unwrap_or_default()
    );
}
