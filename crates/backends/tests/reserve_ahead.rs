//! `reserve_ahead` on the simulated cluster: a job that would outlast a
//! node's planned turn does not start there while one that ends in time
//! does, the upgrade is not held by jobs started after it began, and no
//! node keeps a reservation after the session ends, is deleted, pauses, or
//! its controller crashed and another finished it.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use crus_backends::sim::{SimCluster, SimConfig, Workload};
use crus_core::clock::{Clock, TokioClock};
use crus_core::controller::Controller;
use crus_core::ports::WorkloadState;
use crus_core::rollout::{Order, RolloutPolicy, Strategy};
use crus_core::store::{MemoryStore, SessionStore};
use uuid::Uuid;

use common::*;

/// Four nodes booting in one minute: node 0 busy until 1,000 s, the others
/// idle; mid-session a long job (3,000 s) arrives at 30 s and a short one
/// (limit 200 s) at 40 s, while the step of one holds node 1.
fn cluster(clock: &Arc<TokioClock>) -> SimCluster {
    sim(
        SimConfig {
            nodes: 4,
            workload: Workload::Jobs(vec![
                one_node_job(1, 0, 1000, 1000),
                one_node_job(2, 30, 3000, 3000),
                one_node_job(3, 40, 100, 200),
            ]),
            boot_time: Duration::from_secs(60),
            boot_jitter: 0.0,
            ..SimConfig::default()
        },
        clock,
    )
}

fn reserving_policy(reserve_ahead: bool) -> RolloutPolicy {
    RolloutPolicy {
        strategy: Strategy::Continuous,
        order: Order::DrainCost,
        reserve_ahead,
        ..policy()
    }
}

/// Sleeps until session `id` completed or was removed; the time taken.
async fn until_completed(store: &Arc<MemoryStore>, id: Uuid) -> Duration {
    let began = tokio::time::Instant::now();
    for _ in 0..8640 {
        match store.get(id).await.unwrap() {
            Some(record) if !record.value.rollout.completed => {}
            _ => return began.elapsed(),
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    panic!("session {id} not done after a day");
}

fn assert_nothing_reserved(sim: &SimCluster) {
    for node in sim.node_ids() {
        assert_eq!(sim.reservation_of(&node), None, "node {node} left reserved");
    }
}

async fn started(
    sim: &SimCluster,
    clock: &Arc<TokioClock>,
    store: &Arc<MemoryStore>,
    reserve_ahead: bool,
) -> (Controller, Uuid) {
    let controller = controller(sim, store.clone(), clock);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let session = controller
        .create_session(spec(1), reserving_policy(reserve_ahead))
        .await
        .unwrap();
    controller.start(session.upgrade_id);
    (controller, session.upgrade_id)
}

/// What runs where at 50 s, and how long the upgrade took.
async fn upgrade(reserve_ahead: bool) -> ([WorkloadState; 4], Duration) {
    let clock = clock();
    let sim = cluster(&clock);
    let store = memory_store();
    let (_controller, id) = started(&sim, &clock, &store, reserve_ahead).await;
    tokio::time::sleep(Duration::from_secs(45)).await;
    let states = [
        workload_state(&sim, &sim.node_ids()[0]).await,
        workload_state(&sim, &sim.node_ids()[1]).await,
        workload_state(&sim, &sim.node_ids()[2]).await,
        workload_state(&sim, &sim.node_ids()[3]).await,
    ];
    if reserve_ahead {
        let now = clock.now();
        // Node 1 is taken (drained, so unreserved); the others wait for their turn.
        assert_eq!(sim.reservation_of(&sim.node_ids()[1]), None);
        for node in [0, 2, 3] {
            let from = sim.reservation_of(&sim.node_ids()[node]);
            assert!(from.is_some_and(|from| from > now), "node {node}: {from:?}");
        }
    }
    let took = until_completed(&store, id).await + Duration::from_secs(45);
    let record = store.get(id).await.unwrap().unwrap();
    check_completed(&record.value.rollout, &sim, 1).unwrap();
    assert_nothing_reserved(&sim);
    (states, took)
}

#[tokio::test(start_paused = true)]
async fn without_reservations_a_job_started_mid_session_holds_the_upgrade() {
    let (states, took) = upgrade(false).await;
    // The long job took node 2 at 30 s; the short one node 3.
    assert_eq!(states[2], WorkloadState::Allocated);
    assert_eq!(states[3], WorkloadState::Allocated);
    assert!(took > Duration::from_secs(3000), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn with_reservations_only_jobs_that_end_in_time_start_on_nodes_still_to_upgrade() {
    let (states, took) = upgrade(true).await;
    // The short job ends before node 2's turn: it runs there. The long one
    // would not: it waits (node 3 stays idle, node 1 is being upgraded).
    assert_eq!(states[1], WorkloadState::Down, "node 1 booting");
    assert_eq!(states[2], WorkloadState::Allocated);
    assert_eq!(states[3], WorkloadState::Idle);
    // Node 0's own job (until 1,000 s) is the last wait.
    assert!(took < Duration::from_secs(1500), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn reservations_are_removed_when_the_session_is_deleted() {
    let clock = clock();
    let sim = cluster(&clock);
    let store = memory_store();
    let (controller, id) = started(&sim, &clock, &store, true).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(sim.reservation_of(&sim.node_ids()[3]).is_some());
    controller.request_delete(id).await.unwrap();
    until_completed(&store, id).await;
    assert!(store.get(id).await.unwrap().is_none());
    assert_nothing_reserved(&sim);
}

#[tokio::test(start_paused = true)]
async fn reservations_are_removed_while_the_session_is_paused_and_set_again_after() {
    let clock = clock();
    let sim = cluster(&clock);
    let store = memory_store();
    let (controller, id) = started(&sim, &clock, &store, true).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let node3 = sim.node_ids()[3].clone();
    assert!(sim.reservation_of(&node3).is_some());
    controller
        .request_pause(id)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_nothing_reserved(&sim);
    controller
        .request_resume(id, None)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    // Node 3, idle, was taken at once; node 0 runs its job until 1,000 s.
    assert!(sim.reservation_of(&sim.node_ids()[0]).is_some());
    until_completed(&store, id).await;
    assert_nothing_reserved(&sim);
}

#[tokio::test(start_paused = true)]
async fn reservations_the_workload_manager_lost_are_set_again_within_a_check_interval() {
    let clock = clock();
    let sim = cluster(&clock);
    let store = memory_store();
    let (_controller, id) = started(&sim, &clock, &store, true).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let node0 = sim.node_ids()[0].clone();
    assert!(sim.reservation_of(&node0).is_some());
    // slurmctld crashed before saving them.
    sim.lose_reservations();
    assert_nothing_reserved(&sim);
    tokio::time::sleep(crus_core::rollout::RESERVATION_CHECK_INTERVAL + Duration::from_secs(20))
        .await;
    assert!(sim.reservation_of(&node0).is_some());
    until_completed(&store, id).await;
    assert_nothing_reserved(&sim);
}

#[tokio::test(start_paused = true)]
async fn reservations_left_by_a_crashed_controller_are_removed_by_the_one_that_resumes() {
    let clock = clock();
    let sim = cluster(&clock);
    let store = memory_store();
    let (first, id) = started(&sim, &clock, &store, true).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    // The first controller dies with its reservations in place.
    first.stop_all();
    drop(first);
    let reserved = sim
        .node_ids()
        .iter()
        .filter(|node| sim.reservation_of(node).is_some())
        .count();
    assert_eq!(reserved, 3, "nodes 0, 2 and 3");
    let second = controller(&sim, store.clone() as Arc<dyn SessionStore>, &clock);
    second.drive(id).await.unwrap();
    let record = store.get(id).await.unwrap().unwrap();
    assert!(record.value.rollout.completed);
    check_completed(&record.value.rollout, &sim, 1).unwrap();
    assert_nothing_reserved(&sim);
}
