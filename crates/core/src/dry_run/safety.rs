//! What a dry run says of the session's safety nets: the rollback it would
//! apply (template, trigger, `revert_upgraded_on_halt` and its batch) and
//! the alert gates it would check, so an operator sees them before the
//! session starts. Read from the policy as applied; nothing is simulated.

use serde::{Deserialize, Serialize};

use crate::rollout::{RollbackTrigger, RolloutPolicy};

/// The rollback a session would apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedRollback {
    /// The template nodes are booted back to.
    pub template: String,
    /// What boots a node back: `node_failed`, a node whose upgrade failed.
    pub on: Vec<RollbackTrigger>,
    /// Whether a halt (failure budget or `max_hold`) boots the upgraded
    /// nodes back too.
    #[serde(default)]
    pub revert_upgraded_on_halt: bool,
    /// With `revert_upgraded_on_halt`: how many upgraded nodes are booted
    /// back at once (the step size unless the policy says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// The same, in one sentence.
    pub summary: String,
}

/// The alert gates a session would check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedGates {
    /// Each gate, described (`alertmanager URL (severity=critical)`).
    pub checks: Vec<String>,
    /// How long they may hold the session before it halts, if bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hold: Option<String>,
    /// The same, in one sentence.
    pub summary: String,
}

/// The rollback of `policy` for a session of step size `step_size`.
pub fn planned_rollback(policy: &RolloutPolicy, step_size: u32) -> Option<PlannedRollback> {
    let rollback = policy.rollback.as_ref()?;
    let batch = rollback
        .revert_upgraded_on_halt
        .then(|| rollback.batch.unwrap_or(step_size).max(1));
    let mut summary = format!(
        "A node whose upgrade fails (after its retries) is booted back to template '{}' and returned to service as reverted",
        rollback.template
    );
    if let Some(batch) = batch {
        summary.push_str(&format!(
            "; if the session halts (failure budget or max_hold), the nodes it upgraded are booted back too, at most {batch} at a time"
        ));
    }
    summary.push('.');
    Some(PlannedRollback {
        template: rollback.template.clone(),
        on: rollback.on.clone(),
        revert_upgraded_on_halt: rollback.revert_upgraded_on_halt,
        batch,
        summary,
    })
}

/// The alert gates of `policy` (the server's included, as applied).
pub fn planned_gates(policy: &RolloutPolicy) -> Option<PlannedGates> {
    if policy.gates.is_empty() {
        return None;
    }
    let checks: Vec<String> = policy.gates.iter().map(|gate| gate.describe()).collect();
    let max_hold = policy
        .max_hold
        .map(|hold| humantime::format_duration(hold).to_string());
    let bound = match &max_hold {
        Some(hold) => format!("; a hold longer than {hold} (max_hold) halts the session"),
        None => "; a hold lasts as long as they block".to_string(),
    };
    let summary = format!(
        "Checked before any node is taken and while nodes soak, holding the session while one blocks or cannot be asked: {}{bound}.",
        checks.join("; ")
    );
    Some(PlannedGates {
        checks,
        max_hold,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ports::GateCheck;
    use crate::rollout::Rollback;

    #[test]
    fn the_rollback_and_its_revert_are_described() {
        let mut policy = RolloutPolicy::default();
        assert_eq!(planned_rollback(&policy, 4), None);
        policy.rollback = Some(Rollback {
            template: "old".into(),
            on: vec![RollbackTrigger::NodeFailed],
            revert_upgraded_on_halt: true,
            batch: None,
        });
        let planned = planned_rollback(&policy, 4).unwrap();
        assert_eq!(planned.batch, Some(4));
        assert!(planned.revert_upgraded_on_halt);
        assert_eq!(
            planned.summary,
            "A node whose upgrade fails (after its retries) is booted back to template 'old' and returned to service as reverted; if the session halts (failure budget or max_hold), the nodes it upgraded are booted back too, at most 4 at a time."
        );
        let json = serde_json::to_value(&planned).unwrap();
        assert_eq!(json["on"], serde_json::json!(["node_failed"]));
    }

    #[test]
    fn the_gates_are_listed_with_their_max_hold() {
        let policy = RolloutPolicy {
            gates: vec![GateCheck::Alertmanager {
                url: "http://am:9093".into(),
                filter: vec!["severity=critical".into()],
            }],
            max_hold: Some(Duration::from_secs(7200)),
            ..RolloutPolicy::default()
        };
        let planned = planned_gates(&policy).unwrap();
        assert_eq!(
            planned.checks,
            ["alertmanager http://am:9093 (severity=critical)"]
        );
        assert_eq!(planned.max_hold.as_deref(), Some("2h"));
        assert!(
            planned.summary.ends_with("halts the session."),
            "{}",
            planned.summary
        );
        assert_eq!(planned_gates(&RolloutPolicy::default()), None);
    }
}
