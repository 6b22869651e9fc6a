//! Rollback of failed nodes: a node whose upgrade still fails after its
//! retries and power escalation is booted once more, with the policy's
//! rollback template (the image it ran before), and returned to service as
//! `reverted` when it comes back healthy. If that boot fails too, it fails
//! as any other node.
//!
//! The decision is written into the node's record (`rollback_reason`) and
//! its rollback boot into its step's boots, with the template, before the
//! boot is asked for (the controller persists before it acts): a restart
//! asks again for the same boot under the same key, so a node is never
//! booted back twice, and never forgotten.

use serde::{Deserialize, Serialize};

use super::*;

/// `rollback` in a session's policy: what failed nodes are booted back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The boot template of the image the nodes ran before (checked at
    /// creation, as `upgrade_template_id` is).
    pub template: String,
    /// When a node is booted back: `node_failed` (default), a node whose
    /// upgrade failed after its retries and power escalation.
    #[serde(default = "default_triggers")]
    pub on: Vec<RollbackTrigger>,
    /// Whether a session halted by its failure budget or an alert gate's
    /// `max_hold` also boots the nodes it already upgraded back to the
    /// rollback template, `batch` at a time (see `rollout/revert_on_halt.rs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revert_upgraded_on_halt: bool,
    /// With `revert_upgraded_on_halt`: how many upgraded nodes are booted
    /// back at once (default: the step size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
}

/// What makes a node be booted back to the rollback template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RollbackTrigger {
    /// Its upgrade failed: its boots (retries included) failed or it did not
    /// come back, even after power restarts.
    NodeFailed,
}

fn default_triggers() -> Vec<RollbackTrigger> {
    vec![RollbackTrigger::NodeFailed]
}

impl Rollback {
    /// Whether a node whose upgrade failed is booted back.
    pub fn on_node_failed(&self) -> bool {
        self.on.contains(&RollbackTrigger::NodeFailed)
    }

    /// What is wrong with it, one sentence each; empty when nothing is.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.template.trim().is_empty() {
            problems.push("template must name a boot template.".to_string());
        }
        if self.batch == Some(0) {
            problems.push("batch must be at least 1 (leave it out for the step size).".to_string());
        }
        if self.on.is_empty() {
            problems.push("on must name at least one trigger: node_failed.".to_string());
        }
        problems
    }
}

impl Rollout {
    /// The rollback template a node whose upgrade failed is booted back to,
    /// if the policy asks for it.
    fn rollback_template_on_failure(&self) -> Option<String> {
        self.state
            .policy
            .rollback
            .as_ref()
            .filter(|rollback| rollback.on_node_failed())
            .map(|rollback| rollback.template.clone())
    }

    /// The template the nodes of a boot are booted with: the session's, or
    /// the rollback template for a rollback boot.
    pub(super) fn template_of(&self, boot: &StepBoot) -> String {
        boot.template
            .clone()
            .unwrap_or_else(|| self.state.spec.upgrade_template_id.clone())
    }

    /// A node's upgrade failed for good (`reason`): boots it back to the
    /// rollback template when the policy asks and it was not booted back
    /// already; fails it otherwise.
    pub(super) fn upgrade_failed(&mut self, node: usize, reason: String, now: Timestamp) {
        let record = &self.state.nodes[node];
        let id = record.id.clone();
        if let Some(why) = record.revert_reason.clone() {
            let template = self.rollback_boot_template().unwrap_or_default();
            self.fail_node(
                node,
                format!("{why}; booting it back to template '{template}' failed: {reason}"),
                now,
            );
            return;
        }
        if let Some(why) = record.rollback_reason.clone() {
            let template = self.rollback_boot_template().unwrap_or_default();
            self.census.rollback_failed(node);
            self.fail_node(
                node,
                format!("{why}; booting it back to template '{template}' failed too: {reason}"),
                now,
            );
            return;
        }
        let Some(template) = self.rollback_template_on_failure() else {
            self.fail_node(node, reason, now);
            return;
        };
        self.say(
            now,
            Said::RollingBack {
                node: id,
                reason: reason.clone(),
                template,
            },
        );
        let record = &mut self.state.nodes[node];
        record.rollback_reason = Some(reason);
        record.healthy_since = None;
        // A health check's verdict on the new image says nothing of the old.
        record.reason = None;
        self.census.rollback_started(node);
        self.move_node(node, NodeInput::RollBack, now);
    }

    /// The input that ends a node's return to service: `reverted` when it
    /// was booted back to the rollback template.
    pub(super) fn returned_input(&self, node: usize) -> NodeInput {
        let record = &self.state.nodes[node];
        match record.phase {
            NodePhase::Resuming if record.is_booted_back() => NodeInput::ReturnedReverted,
            // Taken for a revert, released before its boot back: upgraded still.
            NodePhase::Releasing if record.revert_reason.is_some() => NodeInput::ReturnedUpgraded,
            _ => NodeInput::Returned,
        }
    }

    /// Before a reverted node's return is recorded: its reason says what
    /// happened, for the status, the events and the webhooks.
    pub(super) fn note_reverted(&mut self, node: usize) {
        let template = self.rollback_boot_template().unwrap_or_default();
        let record = &mut self.state.nodes[node];
        if let Some(why) = record
            .rollback_reason
            .as_ref()
            .or(record.revert_reason.as_ref())
        {
            record.reason = Some(format!(
                "{why}; booted back to template '{template}' and returned to service"
            ));
        }
    }

    /// Splits nodes about to be booted into those booted with the session's
    /// template and those booted back to the rollback template.
    pub(super) fn split_rollback_boots(&self, nodes: Vec<usize>) -> (Vec<usize>, Vec<usize>) {
        nodes
            .into_iter()
            .partition(|&node| !self.state.nodes[node].is_booted_back())
    }

    /// The rollback template, for a rollback boot's record.
    pub(super) fn rollback_boot_template(&self) -> Option<String> {
        self.state
            .policy
            .rollback
            .as_ref()
            .map(|rollback| rollback.template.clone())
    }
}

impl Rollout {
    /// The workload manager took `node` back (resumed or restored): it is
    /// done, or reverted when it was booted back to the rollback template.
    pub(super) fn returned(&mut self, node: usize, now: Timestamp) {
        let input = self.returned_input(node);
        if input == NodeInput::ReturnedReverted {
            self.note_reverted(node);
        }
        if input == NodeInput::ReturnedUpgraded {
            self.state.nodes[node].revert_reason = None;
        }
        self.move_node(node, input, now);
    }
}

impl NodeRecord {
    /// Whether the node is (to be) booted back to the rollback template:
    /// its upgrade failed (`rollback`), or the halted session reverts its
    /// upgrade (`revert_upgraded_on_halt`).
    pub fn is_booted_back(&self) -> bool {
        self.rollback_reason.is_some() || self.revert_reason.is_some()
    }
}
