//! Nodes someone else took out of service (issue 21), on the simulated
//! cluster through the controller, in virtual time: drained or down by an
//! administrator before the session or during it, they end the session
//! with their state and their exact reason, and crus never resumes them.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use crus_backends::sim::{SimConfig, Workload};
use crus_core::ports::WorkloadState;
use crus_core::rollout::NodePhase;
use crus_core::store::SessionStore;

use common::*;

const DIMM: &str = "bad DIMM  slot 3 [ticket 42]";

#[tokio::test(start_paused = true)]
async fn administrators_drains_and_downs_survive_the_session_byte_for_byte() {
    let clock = clock();
    let sim = sim(
        SimConfig {
            nodes: 6,
            seed: 7,
            workload: Workload::None,
            ..SimConfig::default()
        },
        &clock,
    );
    let store = memory_store();
    let controller = controller(&sim, store.clone(), &clock);
    sim.admin_drain(&node(1), DIMM).await.unwrap();
    sim.admin_down(&node(2), "PSU fault").await.unwrap();
    let id = controller
        .create_session(spec(2), policy())
        .await
        .unwrap()
        .upgrade_id;
    controller.start(id);
    // During the session, an administrator drains a node still pending.
    tokio::time::sleep(Duration::from_secs(30)).await;
    sim.admin_drain(&node(5), "admin: fan noise").await.unwrap();
    let mut state = None;
    for _ in 0..(24 * 360) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let stored = store.get(id).await.unwrap().unwrap().value.rollout;
        if stored.completed {
            state = Some(stored);
            break;
        }
    }
    let state = state.expect("the session ends");
    assert_eq!(
        sim.workload_view(&node(1)).unwrap(),
        (WorkloadState::Drained, Some(DIMM.to_string()))
    );
    assert_eq!(
        sim.workload_view(&node(2)).unwrap(),
        (WorkloadState::Down, Some("PSU fault".to_string()))
    );
    assert_eq!(
        sim.workload_view(&node(5)).unwrap(),
        (WorkloadState::Drained, Some("admin: fan noise".to_string()))
    );
    for index in [1, 2, 5] {
        let record = record(&state, &node(index));
        assert_eq!(record.phase, NodePhase::Done, "{:?}", state.messages);
        assert!(record.foreign.is_some());
        assert_eq!(sim.boot_count(&node(index)), 1, "upgraded all the same");
    }
    for index in [0, 3, 4] {
        assert_eq!(
            sim.workload_view(&node(index)).unwrap().0,
            WorkloadState::Idle
        );
    }
}
