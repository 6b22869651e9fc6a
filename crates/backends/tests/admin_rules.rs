//! The rules that keep crus from undoing an administrator (issue 21), each
//! on the simulated cluster through the controller, in virtual time:
//! `foreign_out_of_service: skip` and `wait`, the capacity floor
//! (`min_available`) and the boot rate (`max_boots_per_minute`). The default
//! rule, `upgrade_and_restore`, is `foreign.rs`'s.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use crus_backends::sim::{SimCluster, SimConfig, Workload};
use crus_core::controller::Controller;
use crus_core::ports::WorkloadState;
use crus_core::rollout::{
    FailureBudget, ForeignOutOfService, NodePhase, RolloutPolicy, RolloutState,
};
use crus_core::store::{MemoryStore, SessionStore};

use common::*;

const TICK: Duration = Duration::from_secs(10);

/// A cluster of `nodes` idle nodes (drains are immediate, boots take the
/// simulator's 4 minutes), its store and its controller.
fn cluster(nodes: usize) -> (SimCluster, Arc<MemoryStore>, Controller) {
    let clock = clock();
    let sim = sim(
        SimConfig {
            nodes,
            seed: 11,
            workload: Workload::None,
            ..SimConfig::default()
        },
        &clock,
    );
    let store = memory_store();
    let controller = controller(&sim, store.clone(), &clock);
    (sim, store, controller)
}

/// Starts a session and lets virtual time run until it ends, calling
/// `each_tick` with the time since the start every 10 s; the session's
/// final state.
async fn run_session(
    controller: &Controller,
    store: &MemoryStore,
    step: u32,
    policy: RolloutPolicy,
    mut each_tick: impl AsyncFnMut(Duration),
) -> RolloutState {
    let id = controller
        .create_session(spec(step), policy)
        .await
        .unwrap()
        .upgrade_id;
    controller.start(id);
    let mut elapsed = Duration::ZERO;
    while elapsed < Duration::from_secs(24 * 3600) {
        tokio::time::sleep(TICK).await;
        elapsed += TICK;
        each_tick(elapsed).await;
        let stored = store.get(id).await.unwrap().unwrap().value.rollout;
        if stored.completed {
            return stored;
        }
    }
    panic!("the session did not end within a day");
}

/// How many nodes of `sim` are in service (idle or running a job).
fn in_service(sim: &SimCluster, nodes: usize) -> usize {
    (0..nodes)
        .filter(|&index| {
            matches!(
                sim.workload_view(&node(index)).unwrap().0,
                WorkloadState::Idle | WorkloadState::Allocated
            )
        })
        .count()
}

#[tokio::test(start_paused = true)]
async fn under_skip_nodes_someone_else_holds_are_never_touched_and_say_why() {
    let (sim, store, controller) = cluster(6);
    sim.admin_drain(&node(1), "bad DIMM").await.unwrap();
    sim.admin_down(&node(2), "PSU fault").await.unwrap();
    let policy = RolloutPolicy {
        foreign_out_of_service: ForeignOutOfService::Skip,
        ..policy()
    };
    let sim_in_test = sim.clone();
    let state = run_session(&controller, &store, 2, policy, async |elapsed| {
        // An administrator drains a node still pending, during the session.
        if elapsed == TICK {
            sim_in_test
                .admin_drain(&node(5), "admin: fan noise")
                .await
                .unwrap();
        }
    })
    .await;
    for (index, reason) in [(1, "bad DIMM"), (2, "PSU fault"), (5, "admin: fan noise")] {
        let record = record(&state, &node(index));
        assert_eq!(record.phase, NodePhase::Skipped, "{:?}", state.messages);
        let said = record.reason.as_deref().unwrap_or_default();
        assert!(said.contains(reason), "skipped saying {said:?}");
        assert_eq!(sim.boot_count(&node(index)), 0, "never booted");
    }
    assert_eq!(
        sim.workload_view(&node(1)).unwrap(),
        (WorkloadState::Drained, Some("bad DIMM".to_string()))
    );
    assert_eq!(
        sim.workload_view(&node(2)).unwrap(),
        (WorkloadState::Down, Some("PSU fault".to_string()))
    );
    assert_eq!(
        sim.workload_view(&node(5)).unwrap(),
        (WorkloadState::Drained, Some("admin: fan noise".to_string()))
    );
    for index in [0, 3, 4] {
        assert_eq!(record(&state, &node(index)).phase, NodePhase::Done);
        assert_eq!(sim.boot_count(&node(index)), 1);
        assert_eq!(
            sim.workload_view(&node(index)).unwrap().0,
            WorkloadState::Idle
        );
    }
}

#[tokio::test(start_paused = true)]
async fn under_wait_a_node_returned_in_time_is_upgraded_and_one_never_returned_is_left_alone() {
    let (sim, store, controller) = cluster(4);
    sim.admin_drain(&node(0), "reseating a cable")
        .await
        .unwrap();
    sim.admin_drain(&node(3), "bad DIMM").await.unwrap();
    let drain_timeout = Duration::from_secs(2 * 3600);
    let policy = RolloutPolicy {
        foreign_out_of_service: ForeignOutOfService::Wait,
        drain_timeout: Some(drain_timeout),
        ..policy()
    };
    let sim_in_test = sim.clone();
    let mut boots_before_return = None;
    let state = run_session(&controller, &store, 4, policy, async |elapsed| {
        if elapsed == Duration::from_secs(3600) {
            boots_before_return = Some(sim_in_test.boot_count(&node(0)));
            sim_in_test.admin_return(&node(0)).await.unwrap();
        }
    })
    .await;
    assert_eq!(
        boots_before_return,
        Some(0),
        "not booted while its owner held it"
    );
    let returned = record(&state, &node(0));
    assert_eq!(returned.phase, NodePhase::Done, "{:?}", state.messages);
    assert_eq!(sim.boot_count(&node(0)), 1);
    assert_eq!(
        sim.workload_view(&node(0)).unwrap().0,
        WorkloadState::Idle,
        "returned to service by its owner, then drained and resumed by crus"
    );
    let held = record(&state, &node(3));
    assert_eq!(held.phase, NodePhase::Skipped, "{:?}", state.messages);
    assert_eq!(sim.boot_count(&node(3)), 0);
    assert_eq!(
        sim.workload_view(&node(3)).unwrap(),
        (WorkloadState::Drained, Some("bad DIMM".to_string()))
    );
    let waited = held
        .finished_at
        .unwrap()
        .saturating_since(held.taken_at.unwrap());
    assert!(
        waited >= drain_timeout,
        "left alone only after drain_timeout: waited {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_floor_holds_while_an_administrator_has_a_node_out_and_goes_on_when_it_returns() {
    const NODES: usize = 8;
    let (sim, store, controller) = cluster(NODES);
    sim.admin_down(&node(3), "PSU fault").await.unwrap();
    let policy = RolloutPolicy {
        min_available: Some(FailureBudget::Count(7)),
        ..policy()
    };
    let sim_in_test = sim.clone();
    let store_in_test = store.clone();
    let mut fewest_in_service = NODES;
    let mut held_saying = None;
    let state = run_session(&controller, &store, 4, policy, async |elapsed| {
        let now_in_service = in_service(&sim_in_test, NODES);
        if elapsed <= Duration::from_secs(3600) {
            assert_eq!(
                sim_in_test.boot_starts(),
                vec![],
                "nothing booted while the floor leaves no room"
            );
            assert_eq!(now_in_service, NODES - 1, "crus took nothing");
        } else {
            fewest_in_service = fewest_in_service.min(now_in_service);
        }
        if elapsed == Duration::from_secs(3600) {
            let sessions = store_in_test.list().await.unwrap();
            held_saying = sessions[0]
                .value
                .rollout
                .messages
                .iter()
                .find(|message| message.contains("capacity floor"))
                .cloned();
            sim_in_test.admin_return(&node(3)).await.unwrap();
        }
    })
    .await;
    let said = held_saying.expect("the session says it holds at the floor");
    assert!(said.contains("min_available keeps 7"), "{said}");
    assert!(
        said.contains(node(3).as_str()),
        "names the node out: {said}"
    );
    assert_eq!(
        fewest_in_service,
        NODES - 1,
        "one node out at a time, never more"
    );
    for index in 0..NODES {
        assert_eq!(record(&state, &node(index)).phase, NodePhase::Done);
        assert_eq!(sim.boot_count(&node(index)), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn boots_go_out_no_faster_than_the_boot_rate() {
    const NODES: usize = 12;
    const RATE: usize = 2;
    let (sim, store, controller) = cluster(NODES);
    let policy = RolloutPolicy {
        max_boots_per_minute: Some(RATE as u32),
        ..policy()
    };
    let state = run_session(&controller, &store, NODES as u32, policy, async |_| {}).await;
    assert!(
        state.nodes.iter().all(|node| node.phase == NodePhase::Done),
        "{:?}",
        state.messages
    );
    let starts = sim.boot_starts();
    let booted: usize = starts.iter().map(|(_, nodes)| nodes).sum();
    assert_eq!(booted, NODES);
    for (index, (start, _)) in starts.iter().enumerate() {
        let within_a_minute: usize = starts[index..]
            .iter()
            .take_while(|(at, _)| at.saturating_since(*start) < Duration::from_secs(60))
            .map(|(_, nodes)| nodes)
            .sum();
        assert!(
            within_a_minute <= RATE,
            "{within_a_minute} nodes' boots within a minute of {start:?}: {starts:?}"
        );
    }
    let (first, _) = starts[0];
    let (last, _) = starts[starts.len() - 1];
    assert!(
        last.saturating_since(first) >= Duration::from_secs(5 * 60),
        "12 boots at 2 a minute take at least 5 minutes: {starts:?}"
    );
}
