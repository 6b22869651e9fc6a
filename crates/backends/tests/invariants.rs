//! Property tests: on random clusters, workloads, step sizes and faults, the
//! invariants of DESIGN.md hold for every session, run to completion or
//! deleted midway.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use std::time::Duration;

use crus_backends::sim::{Faults, SimConfig, SyntheticWorkload, Workload};
use crus_core::NodeId;
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::store::SessionStore;

use proptest::prelude::*;

use common::*;

#[derive(Debug, Clone)]
struct Scenario {
    nodes: usize,
    step: u32,
    seed: u64,
    busy: bool,
    boot_fail_rate: f64,
    never_return_rate: f64,
    port_error_rate: f64,
    /// Delete the session this long after it starts, if set.
    delete_after: Option<Duration>,
    /// The session's policy, as a client sends it.
    policy: serde_json::Value,
    /// Boot retries in that policy.
    retries: u32,
}

/// Random policies among those that always run to completion (a failure
/// budget or a canary pause waits for an operator; `controls.rs` tests those).
fn policies() -> impl Strategy<Value = (serde_json::Value, u32)> {
    (
        prop_oneof![Just("steps"), Just("continuous")],
        0usize..4,
        0u32..=2,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(strategy, order, retries, steer_jobs, reserve_ahead)| {
            let mut policy = serde_json::json!({
                "strategy": strategy, "retries": retries, "steer_jobs": steer_jobs
            });
            match order {
                0 => policy["order"] = "inventory".into(),
                1 => {
                    policy["order"] = "drain_cost".into();
                    // Only the sliding window in drain-cost order plans takes.
                    if strategy == "continuous" && reserve_ahead {
                        policy["reserve_ahead"] = true.into();
                    }
                }
                2 => {
                    policy["order"] = "topology".into();
                    policy["spread"] = "blade".into();
                }
                _ => {
                    policy["order"] = "topology".into();
                    policy["align"] = "chassis".into();
                }
            }
            (policy, retries)
        })
}

fn scenarios() -> impl Strategy<Value = Scenario> {
    (
        1usize..=24,
        1u32..=8,
        any::<u64>(),
        any::<bool>(),
        prop_oneof![Just(0.0), 0.0..0.4],
        prop_oneof![Just(0.0), 0.0..0.15],
        prop_oneof![Just(0.0), 0.0..0.3],
        prop_oneof![3 => Just(None), 1 => (0u64..6 * 3600).prop_map(|s| Some(Duration::from_secs(s)))],
        policies(),
    )
        .prop_map(|(nodes, step, seed, busy, boot_fail_rate, never_return_rate, port_error_rate, delete_after, (policy, retries))| Scenario {
            nodes,
            step,
            seed,
            busy,
            boot_fail_rate,
            never_return_rate,
            port_error_rate,
            delete_after,
            policy,
            retries,
        })
}

/// Runs one scenario on a fresh paused runtime and checks every invariant.
fn run(scenario: &Scenario) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(async {
        let clock = clock();
        let workload = if scenario.busy {
            Workload::synthetic(&SyntheticWorkload {
                nodes: scenario.nodes,
                seed: scenario.seed,
                duration: Duration::from_secs(2 * 24 * 3600),
                ..SyntheticWorkload::default()
            })
        } else {
            Workload::None
        };
        let sim = sim(
            SimConfig {
                nodes: scenario.nodes,
                seed: scenario.seed,
                workload,
                faults: Faults {
                    boot_fail_rate: scenario.boot_fail_rate,
                    never_return_rate: scenario.never_return_rate,
                    port_error_rate: scenario.port_error_rate,
                    ..Faults::default()
                },
                ..SimConfig::default()
            },
            &clock,
        );
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        let store = memory_store();
        let controller = Controller::new(
            sim.ports(),
            store.clone(),
            clock.clone(),
            ControllerConfig::default(),
        );
        let spec = crus_core::SessionSpec {
            policy: Some(
                crus_core::session::PolicyRequest::from_json(&scenario.policy)
                    .map_err(|errors| format!("{errors:?}"))?,
            ),
            ..spec(scenario.step)
        };
        let session = controller
            .create_session(spec, policy())
            .await
            .map_err(|e| e.to_string())?;
        let id = session.upgrade_id;
        // A livelocked session would never end: bound it in virtual time.
        let limit = Duration::from_secs(60 * 24 * 3600);
        let drive = tokio::time::timeout(limit, async {
            match scenario.delete_after {
                None => controller.drive(id).await,
                Some(after) => {
                    controller.start(id);
                    tokio::time::sleep(after).await;
                    controller.request_delete(id).await?;
                    while store.get(id).await?.is_some() {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    Ok(())
                }
            }
        });
        drive
            .await
            .map_err(|_| "session did not end within 60 simulated days".to_string())?
            .map_err(|e| e.to_string())?;

        let step = scenario.step;
        let report = sim.report();
        if report.max_out_of_service > step as usize {
            return Err(format!(
                "{} nodes out of service at once, step {step}",
                report.max_out_of_service
            ));
        }
        if report.reboots_with_running_jobs != 0 {
            return Err("a node was rebooted while running jobs".into());
        }
        // `steer_jobs`: every node has its own weight back, however it
        // ended; `reserve_ahead`: no node is left reserved.
        for node in sim.node_ids() {
            if sim.weight_of(&node) != Some(1) {
                return Err(format!(
                    "node {node} left with weight {:?}",
                    sim.weight_of(&node)
                ));
            }
            if let Some(from) = sim.reservation_of(&node) {
                return Err(format!("node {node} left reserved from {from}"));
            }
        }
        match store.get(id).await.map_err(|e| e.to_string())? {
            Some(record) => {
                if scenario.delete_after.is_some() && !record.value.rollout.completed {
                    return Err("a deleted session was not removed".into());
                }
                check_completed_allowing(&record.value.rollout, &sim, step, 1 + scenario.retries)
            }
            None => {
                if scenario.delete_after.is_none() {
                    return Err("the record of a completed session vanished".into());
                }
                // Deleted: nothing it drained stays drained, except nodes it failed.
                let failed: BTreeSet<NodeId> = sim
                    .group("crus-failed")
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let left: Vec<NodeId> = sim
                    .drained_nodes()
                    .into_iter()
                    .filter(|node| !failed.contains(node))
                    .collect();
                if !left.is_empty() {
                    return Err(format!("a deleted session left nodes drained: {left:?}"));
                }
                let marked: BTreeSet<NodeId> = sim.failed_marked_nodes().into_iter().collect();
                if marked != failed {
                    return Err(format!(
                        "failed group {failed:?} differs from nodes marked failed {marked:?}"
                    ));
                }
                if !sim.group("crus-upgrading").unwrap_or_default().is_empty() {
                    return Err("a deleted session left nodes in the upgrading group".into());
                }
                for node in sim.node_ids() {
                    if sim.boot_count(&node) > 1 + scenario.retries {
                        return Err(format!(
                            "node {node} booted more often than its retries allow"
                        ));
                    }
                }
                Ok(())
            }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn design_invariants_hold(scenario in scenarios()) {
        let result = run(&scenario);
        prop_assert!(result.is_ok(), "{:?}: {}", scenario, result.err().unwrap_or_default());
    }
}

/// The deletion path of the property test, pinned: deleting mid-drain resumes the drained nodes.
#[test]
fn deleting_mid_drain_leaves_nothing_drained() {
    let scenario = Scenario {
        nodes: 16,
        step: 8,
        seed: 5,
        busy: true,
        boot_fail_rate: 0.0,
        never_return_rate: 0.0,
        port_error_rate: 0.0,
        delete_after: Some(Duration::from_secs(30)),
        policy: serde_json::json!({}),
        retries: 0,
    };
    run(&scenario).unwrap();
}
