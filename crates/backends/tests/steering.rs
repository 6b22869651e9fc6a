//! `steer_jobs` on the simulated cluster: new jobs land on upgraded nodes
//! while nodes still to upgrade stand free, and every node gets its own
//! weight back when the session ends, is deleted, or its workload manager
//! forgot the raised weights midway.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use crus_backends::sim::{SimCluster, SimConfig, Workload};
use crus_core::ports::WorkloadState;
use crus_core::rollout::{Order, RolloutPolicy, Strategy, WEIGHT_RAISE};
use crus_core::store::SessionStore;

use common::*;

/// Four nodes booting in one minute: node 0 busy for long, node 1's job ends
/// at 100 s (its limit says much later), nodes 2 and 3 idle; a one-node job
/// arrives at 110 s, when node 2 is upgraded and node 1 is free but still
/// to upgrade (node 3 holds the step of one).
fn cluster(clock: &std::sync::Arc<crus_core::clock::TokioClock>) -> SimCluster {
    sim(
        SimConfig {
            nodes: 4,
            workload: Workload::Jobs(vec![
                one_node_job(1, 0, 5000, 5000),
                one_node_job(2, 0, 100, 5000),
                one_node_job(3, 110, 1000, 1000),
            ]),
            boot_time: Duration::from_secs(60),
            boot_jitter: 0.0,
            ..SimConfig::default()
        },
        clock,
    )
}

fn steering_policy(steer_jobs: bool) -> RolloutPolicy {
    RolloutPolicy {
        strategy: Strategy::Continuous,
        order: Order::DrainCost,
        steer_jobs,
        ..policy()
    }
}

/// Where job 3 runs at 130 s: `(node 1, node 2)` states.
async fn where_the_new_job_runs(steer_jobs: bool) -> (WorkloadState, WorkloadState) {
    let clock = clock();
    let sim = cluster(&clock);
    let nodes = sim.node_ids();
    let store = memory_store();
    let controller = controller(&sim, store.clone(), &clock);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let session = controller
        .create_session(spec(1), steering_policy(steer_jobs))
        .await
        .unwrap();
    controller.start(session.upgrade_id);
    tokio::time::sleep(Duration::from_secs(125)).await;
    let seen = (
        workload_state(&sim, &nodes[1]).await,
        workload_state(&sim, &nodes[2]).await,
    );
    if steer_jobs {
        assert_eq!(sim.weight_of(&nodes[1]), Some(1 + WEIGHT_RAISE));
        assert_eq!(
            sim.weight_of(&nodes[2]),
            Some(1),
            "upgraded: its own weight"
        );
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn without_steering_the_new_job_takes_a_node_still_to_upgrade() {
    assert_eq!(
        where_the_new_job_runs(false).await,
        (WorkloadState::Allocated, WorkloadState::Idle)
    );
}

#[tokio::test(start_paused = true)]
async fn with_steering_a_job_submitted_mid_session_starts_on_an_upgraded_node() {
    assert_eq!(
        where_the_new_job_runs(true).await,
        (WorkloadState::Idle, WorkloadState::Allocated)
    );
}

/// Every node has Slurm's default weight again.
fn assert_own_weights(sim: &SimCluster) {
    for node in sim.node_ids() {
        assert_eq!(sim.weight_of(&node), Some(1), "node {node}");
    }
}

#[tokio::test(start_paused = true)]
async fn weights_are_restored_when_the_session_ends_even_after_the_workload_manager_forgot_them() {
    let clock = clock();
    let sim = cluster(&clock);
    let store = memory_store();
    let controller = controller(&sim, store.clone(), &clock);
    let session = controller
        .create_session(spec(1), steering_policy(true))
        .await
        .unwrap();
    let id = session.upgrade_id;
    controller.start(id);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let node0 = sim.node_ids()[0].clone();
    assert_eq!(sim.weight_of(&node0), Some(1 + WEIGHT_RAISE));
    // slurmctld restarts: the raised weights are lost, and set again within
    // a check interval.
    sim.restart_workload_manager();
    assert_eq!(sim.weight_of(&node0), Some(1));
    tokio::time::sleep(crus_core::rollout::WEIGHT_CHECK_INTERVAL + Duration::from_secs(20)).await;
    assert_eq!(sim.weight_of(&node0), Some(1 + WEIGHT_RAISE));
    while !store
        .get(id)
        .await
        .unwrap()
        .is_some_and(|record| record.value.rollout.completed)
    {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    assert_own_weights(&sim);
}

#[tokio::test(start_paused = true)]
async fn weights_are_restored_when_the_session_is_deleted() {
    let clock = clock();
    let sim = cluster(&clock);
    let store = memory_store();
    let controller = controller(&sim, store.clone(), &clock);
    let session = controller
        .create_session(spec(1), steering_policy(true))
        .await
        .unwrap();
    let id = session.upgrade_id;
    controller.start(id);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(sim.weight_of(&sim.node_ids()[0]), Some(1 + WEIGHT_RAISE));
    controller.request_delete(id).await.unwrap();
    for _ in 0..8640 {
        match store.get(id).await.unwrap() {
            None => break,
            Some(record) if record.value.rollout.completed => {}
            Some(record) => {
                let _ = record;
            }
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    if let Some(record) = store.get(id).await.unwrap() {
        panic!(
            "not removed a day after its deletion: {:#?}",
            record.value.rollout
        );
    }
    assert_own_weights(&sim);
}

#[tokio::test(start_paused = true)]
async fn weights_are_restored_by_a_controller_resuming_after_a_crash() {
    let clock = clock();
    let sim = cluster(&clock);
    let store = memory_store();
    let first = controller(&sim, store.clone(), &clock);
    let session = first
        .create_session(spec(1), steering_policy(true))
        .await
        .unwrap();
    let id = session.upgrade_id;
    first.start(id);
    tokio::time::sleep(Duration::from_secs(30)).await;
    // The first controller dies with the raised weights in place.
    first.stop_all();
    drop(first);
    let node0 = sim.node_ids()[0].clone();
    assert_eq!(sim.weight_of(&node0), Some(1 + WEIGHT_RAISE));
    let second = controller(&sim, store.clone(), &clock);
    second.drive(id).await.unwrap();
    assert!(
        store
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .value
            .rollout
            .completed
    );
    assert_own_weights(&sim);
}
