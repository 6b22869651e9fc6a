//! Nodes already on the target image (`skip_matching`, issue 21), on the
//! simulated cluster through the controller, in virtual time: a session
//! re-run after a partial one redoes nothing, and the nodes it skips are
//! neither drained nor booted.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use crus_backends::sim::{SimConfig, Workload};
use crus_core::controller::{AdmissionRequest, Controller};
use crus_core::ports::WorkloadState;
use crus_core::rollout::{ALREADY_ON_TARGET_IMAGE, NodePhase, RolloutState};
use crus_core::session::PolicyRequest;
use crus_core::store::SessionStore;
use uuid::Uuid;

use common::*;

/// Admits a session with `skip_matching` (through the same checks as
/// `POST /session`) and runs it to its end.
async fn run_skipping(
    controller: &Controller,
    store: &crus_core::store::MemoryStore,
) -> RolloutState {
    let mut spec = spec(2);
    spec.policy = Some(PolicyRequest {
        skip_matching: Some(true),
        boot_timeout: Some("15m".into()),
        ..PolicyRequest::default()
    });
    let admitted = controller.admit(AdmissionRequest::new(spec)).await.unwrap();
    let id: Uuid = admitted.status.upgrade_id;
    controller.start(id);
    for _ in 0..(24 * 360) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let stored = store.get(id).await.unwrap().unwrap().value.rollout;
        if stored.completed {
            return stored;
        }
    }
    panic!("the session did not end");
}

#[tokio::test(start_paused = true)]
async fn a_session_re_run_after_a_partial_one_redoes_nothing() {
    let clock = clock();
    let sim = sim(
        SimConfig {
            nodes: 6,
            seed: 11,
            workload: Workload::None,
            ..SimConfig::default()
        },
        &clock,
    );
    let store = memory_store();
    let controller = controller(&sim, store.clone(), &clock);
    // An earlier, partial session upgraded two nodes.
    sim.set_image(&node(1), "compute-image").await.unwrap();
    sim.set_image(&node(4), "compute-image").await.unwrap();
    // One runs another image: upgraded as any other.
    sim.set_image(&node(2), "compute-image-old").await.unwrap();

    let state = run_skipping(&controller, &store).await;
    for index in [1, 4] {
        let record = record(&state, &node(index));
        assert_eq!(record.phase, NodePhase::Skipped, "{:?}", state.messages);
        assert_eq!(record.reason.as_deref(), Some(ALREADY_ON_TARGET_IMAGE));
        assert_eq!(sim.boot_count(&node(index)), 0, "never booted");
        assert_eq!(
            sim.workload_view(&node(index)).unwrap(),
            (WorkloadState::Idle, None),
            "never drained"
        );
    }
    for index in [0, 2, 3, 5] {
        assert_eq!(record(&state, &node(index)).phase, NodePhase::Done);
        assert_eq!(sim.boot_count(&node(index)), 1);
        assert_eq!(sim.image_of(&node(index)).as_deref(), Some("compute-image"));
    }

    // The same session again: every node is on the template now.
    let again = run_skipping(&controller, &store).await;
    assert!(
        again
            .nodes
            .iter()
            .all(|record| record.phase == NodePhase::Skipped),
        "{:?}",
        again.messages
    );
    for index in 0..6 {
        assert!(sim.boot_count(&node(index)) <= 1, "nothing booted again");
    }
    assert!(
        again
            .messages
            .iter()
            .any(|message| message.contains("nothing to upgrade")),
        "{:?}",
        again.messages
    );
}
