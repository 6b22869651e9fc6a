//! Helpers shared by the end-to-end tests of the controller on the simulated cluster.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crus_backends::sim::{SimCluster, SimConfig, TraceJob};
use crus_core::clock::{Clock, TokioClock};
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::ports::WorkloadState;
use crus_core::rollout::{NodePhase, RolloutPolicy, RolloutState};
use crus_core::store::{MemoryStore, SessionStore};
use crus_core::{NodeId, SessionSpec, Timestamp};

/// The session every test runs: the sim's `compute` group, `compute-image` template.
pub fn spec(step: u32) -> SessionSpec {
    SessionSpec {
        failed_label: "crus-failed".into(),
        starting_label: "compute".into(),
        upgrade_step_size: step,
        upgrade_template_id: "compute-image".into(),
        upgrading_label: "crus-upgrading".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    }
}

/// A policy whose boot timeout suits the sim's default 4-minute boots.
pub fn policy() -> RolloutPolicy {
    RolloutPolicy {
        boot_timeout: Duration::from_secs(15 * 60),
        ..RolloutPolicy::default()
    }
}

/// A tokio clock starting at a fixed time.
pub fn clock() -> Arc<TokioClock> {
    Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)))
}

/// A simulated cluster on `clock`.
pub fn sim(config: SimConfig, clock: &Arc<TokioClock>) -> SimCluster {
    SimCluster::new(config, clock.clone() as Arc<dyn Clock>).expect("a valid sim config")
}

/// A controller for `sim` on `store`.
pub fn controller(
    sim: &SimCluster,
    store: Arc<dyn SessionStore>,
    clock: &Arc<TokioClock>,
) -> Controller {
    Controller::new(
        sim.ports(),
        store,
        clock.clone(),
        ControllerConfig::default(),
    )
}

/// A fresh in-memory store.
pub fn memory_store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new())
}

/// Checks the invariants DESIGN.md lists for a session that ran to completion
/// on `sim`, and returns a description of the first one broken.
pub fn check_completed(state: &RolloutState, sim: &SimCluster, step: u32) -> Result<(), String> {
    check_completed_allowing(state, sim, step, 1)
}

/// As [`check_completed`], for sessions that may boot a node up to
/// `max_boots` times (a policy with boot retries).
pub fn check_completed_allowing(
    state: &RolloutState,
    sim: &SimCluster,
    step: u32,
    max_boots: u32,
) -> Result<(), String> {
    let report = sim.report();
    if !state.completed {
        return Err("session did not complete".into());
    }
    if report.max_out_of_service > step as usize {
        return Err(format!(
            "{} nodes out of service at once, step is {step}",
            report.max_out_of_service
        ));
    }
    if report.reboots_with_running_jobs != 0 {
        return Err(format!(
            "{} reboots of nodes running jobs",
            report.reboots_with_running_jobs
        ));
    }
    let mut starting: Vec<NodeId> = sim.group("compute").unwrap_or_default();
    starting.sort();
    let mut in_session: Vec<NodeId> = state.nodes.iter().map(|node| node.id.clone()).collect();
    in_session.sort();
    if starting != in_session {
        return Err("the session's nodes are not the starting group".into());
    }
    for node in &state.nodes {
        if !matches!(
            node.phase,
            NodePhase::Done | NodePhase::Failed | NodePhase::Reverted
        ) {
            return Err(format!(
                "node {} ended {:?}, neither upgraded, reverted nor failed",
                node.id, node.phase
            ));
        }
        let boots = sim.boot_count(&node.id);
        if matches!(node.phase, NodePhase::Done | NodePhase::Reverted) && boots == 0 {
            return Err(format!("upgraded node {} was never booted", node.id));
        }
        if boots > max_boots {
            return Err(format!(
                "node {} booted {boots} times, at most {max_boots} allowed",
                node.id
            ));
        }
    }
    let failed: BTreeSet<NodeId> = state
        .nodes
        .iter()
        .filter(|node| node.phase == NodePhase::Failed)
        .map(|node| node.id.clone())
        .collect();
    let failed_group: BTreeSet<NodeId> = sim
        .group("crus-failed")
        .unwrap_or_default()
        .into_iter()
        .collect();
    if failed != failed_group {
        return Err(format!(
            "failed group {failed_group:?} is not the failed nodes {failed:?}"
        ));
    }
    let failed_marked: BTreeSet<NodeId> = sim.failed_marked_nodes().into_iter().collect();
    if failed_marked != failed {
        return Err(format!(
            "nodes marked failed in the workload manager {failed_marked:?} are not the failed nodes {failed:?}"
        ));
    }
    let left_drained: Vec<NodeId> = sim
        .drained_nodes()
        .into_iter()
        .filter(|node| !failed.contains(node))
        .collect();
    if !left_drained.is_empty() {
        return Err(format!("nodes left drained: {left_drained:?}"));
    }
    if !sim.group("crus-upgrading").unwrap_or_default().is_empty() {
        return Err("the upgrading group is not empty".into());
    }
    Ok(())
}

/// The simulated cluster's node at `index` (its xname).
pub fn node(index: usize) -> NodeId {
    NodeId::from(crus_backends::sim::xname_of(index).unwrap().to_string())
}

/// The session's record of node `id`.
pub fn record<'a>(state: &'a RolloutState, id: &NodeId) -> &'a crus_core::rollout::NodeRecord {
    state.nodes.iter().find(|record| &record.id == id).unwrap()
}

/// A one-node trace job submitted at `submit_s`, running `run_s` within a
/// limit of `requested_s` (seconds).
pub fn one_node_job(id: u64, submit_s: u64, run_s: u64, requested_s: u64) -> TraceJob {
    TraceJob {
        id,
        submit: Duration::from_secs(submit_s),
        run_time: Duration::from_secs(run_s),
        nodes: 1,
        requested_time: Duration::from_secs(requested_s),
    }
}

/// What the simulated workload manager says `node` is doing.
pub async fn workload_state(sim: &SimCluster, node: &NodeId) -> WorkloadState {
    sim.ports()
        .workload_manager
        .node_states(std::slice::from_ref(node))
        .await
        .expect("the simulator answers")[0]
        .state
}
