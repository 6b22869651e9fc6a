//! The session as the CRUS API shows it, derived from the rollout's state.

use super::*;

/// The CRUS view of a rollout state.
pub fn status_of(state: &RolloutState) -> SessionStatus {
    let spec = &state.spec;
    SessionStatus {
        api_version: state.api_version.clone(),
        completed: state.completed,
        failed_label: spec.failed_label.clone(),
        kind: KIND.to_string(),
        messages: state.messages.clone(),
        starting_label: spec.starting_label.clone(),
        state: state.state.served(),
        upgrade_id: state.upgrade_id,
        upgrade_step_size: spec.upgrade_step_size,
        upgrade_template_id: spec.upgrade_template_id.clone(),
        upgrading_label: spec.upgrading_label.clone(),
        workload_manager_type: spec.workload_manager_type.clone(),
        nodes: node_counts(state),
        phase: Some(phase_of(state)),
        policy: Some(state.policy.clone()),
        created_at: Some(state.created_at),
        started_at: state.started_at,
        finished_at: state.finished_at,
        gate_hold: crate::session::gate_hold_of(state),
        reverting: crate::session::revert_of(state),
    }
}

/// Where a session stands, beyond CRUS's `state`.
pub fn phase_of(state: &RolloutState) -> SessionPhase {
    if state.completed {
        if state.count(NodePhase::Failed) > 0 {
            SessionPhase::Failed
        } else {
            SessionPhase::Succeeded
        }
    } else if state.cancelled {
        SessionPhase::Cancelling
    } else if state.halted.is_some() {
        SessionPhase::Halted
    } else if state.paused {
        SessionPhase::Paused
    } else if state.gated.is_some() {
        SessionPhase::Gated
    } else {
        SessionPhase::Running
    }
}

/// Nodes by phase, with `total`; `None` before the snapshot is taken.
fn node_counts(state: &RolloutState) -> Option<std::collections::BTreeMap<String, u64>> {
    if state.nodes.is_empty() {
        return None;
    }
    // `reverted` is counted only where a node can be reverted (a rollback
    // policy), so the counts of every other session read as they always
    // have, also those a store keeps as an earlier release wrote them.
    let can_revert = state.policy.rollback.is_some();
    let mut counts: std::collections::BTreeMap<String, u64> = NodePhase::ALL
        .iter()
        .filter(|phase| can_revert || **phase != NodePhase::Reverted)
        .map(|phase| (phase.as_str().to_string(), 0))
        .collect();
    for node in &state.nodes {
        *counts.entry(node.phase.as_str().to_string()).or_default() += 1;
    }
    counts.insert("total".to_string(), state.nodes.len() as u64);
    Some(counts)
}
