//! Reverting a halted session's upgrades (`rollback: { template,
//! revert_upgraded_on_halt: true, batch: N }`): once the failure budget or
//! an alert gate's `max_hold` halts the session, the nodes it already
//! upgraded (`done`) are booted back to the rollback template, at most
//! `batch` at a time (default: the step size), and reported `reverted`.
//!
//! A revert is an upgrade with another template: each batch is a step of
//! its own, under the same rules (one step at a time under `steps`, at most
//! `batch` out of service under `continuous`, the capacity floor, the boot
//! rate); its nodes, back in service and running jobs, are drained first.
//! The alert gates and the maintenance windows do not hold it: it is what
//! the site asked for when they did.
//!
//! Every decision is persisted before it is acted on: the session's
//! `reverting` mark, and for each node its `revert_reason` with its move
//! back to `draining` and into its revert step (written together, before its
//! drain is asked for); its boot back is a step boot like any other, stored
//! with its template before it is asked for. A restart finds each node where
//! it was, so none is booted back twice or forgotten.
//!
//! A pause does not start a revert, and a paused revert takes no new node.
//! An operator's resume ends it (nodes in flight finish their revert) and
//! the upgrade goes on. A delete takes no new node and returns those not yet
//! booted back to service, upgraded as they were.

use serde::{Deserialize, Serialize};

use super::*;

/// A halted session booting its upgraded nodes back to the rollback template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertOnHalt {
    /// When the revert started (the halt).
    pub since: Timestamp,
    /// Why the session halted.
    pub reason: String,
}

impl Rollout {
    /// Whether the policy boots the upgraded nodes back when the session halts.
    fn reverts_on_halt(&self) -> bool {
        self.state
            .policy
            .rollback
            .as_ref()
            .is_some_and(|rollback| rollback.revert_upgraded_on_halt)
    }

    /// How many upgraded nodes are booted back at once.
    fn revert_batch(&self) -> usize {
        self.state
            .policy
            .rollback
            .as_ref()
            .and_then(|rollback| rollback.batch)
            .and_then(|batch| usize::try_from(batch).ok())
            .unwrap_or_else(|| self.step_size())
            .max(1)
    }

    /// Whether the session is reverting and may take upgraded nodes now.
    fn reverting_now(&self) -> bool {
        // Halted and paused shows as halted, but the pause stops the revert
        // too, until an operator resumes the session.
        self.state.reverting.is_some() && self.is_running() && self.is_halted() && !self.is_paused()
    }

    /// Whether upgraded nodes still wait to be booted back: the session does
    /// not settle meanwhile (a paused revert waits for an operator).
    pub(super) fn revert_owed(&self) -> bool {
        self.state.reverting.is_some()
            && self.is_halted()
            && !self.deletion_requested()
            && self.census.done().any(|node| !self.revert_leaves(node))
    }

    /// Whether the revert leaves upgraded `node` as it is: someone else
    /// holds it, as last read, and the policy leaves such nodes alone
    /// (`foreign_out_of_service: skip`), so crus never drains it. It is
    /// booted back if its owner returns it while the revert goes on.
    fn revert_leaves(&self, node: usize) -> bool {
        self.state.policy.foreign_out_of_service == ForeignOutOfService::Skip
            && self.held_elsewhere.contains_key(&node)
    }

    /// The session just halted (`reason`) by its failure budget or an alert
    /// gate's `max_hold`: starts booting its upgraded nodes back when the
    /// policy asks for it.
    pub(super) fn revert_upgraded_after_halt(&mut self, now: Timestamp) {
        if !self.reverts_on_halt() || self.state.reverting.is_some() || self.deletion_requested() {
            return;
        }
        let Some(reason) = self.halt_reason().map(str::to_string) else {
            return;
        };
        if !self.transition(now, SessionInput::RevertUpgraded { reason }) {
            return;
        }
        let template = self.rollback_boot_template().unwrap_or_default();
        let upgraded = self.census.count(NodePhase::Done);
        self.say(
            now,
            Said::Reverting {
                count: upgraded,
                template,
                batch: self.revert_batch(),
            },
        );
    }

    /// How many upgraded nodes may be taken back now, before the floor.
    fn revert_capacity(&self) -> usize {
        let batch = self.revert_batch();
        match self.state.policy.strategy {
            Strategy::Steps if self.census.any_active_step() => 0,
            Strategy::Steps => batch,
            Strategy::Continuous => batch.saturating_sub(self.census.out_of_service()),
        }
    }

    /// Takes the next upgraded nodes to boot back, as a step of their own.
    /// Returns whether it took any.
    pub(super) fn start_revert_batch(&mut self, now: Timestamp) -> bool {
        if !self.reverting_now() {
            return false;
        }
        let capacity = self.revert_capacity();
        if capacity == 0 {
            return false;
        }
        // A node whose step is still being worked on is taken once it is over.
        let left: Vec<usize> = if self.held_elsewhere.is_empty() {
            Vec::new()
        } else {
            self.census
                .done()
                .filter(|&node| self.revert_leaves(node))
                .collect()
        };
        for node in left {
            let why = self.held_elsewhere.get(&node).cloned().unwrap_or_default();
            let id = self.state.nodes[node].id.clone();
            self.say_once(now, Said::RevertLeavesHeld { node: id, why });
        }
        let census = &self.census;
        let nodes = &self.state.nodes;
        let eligible = |node: &usize| {
            nodes[*node]
                .step
                .is_none_or(|step| !census.step_active(step))
                && !self.revert_leaves(*node)
        };
        if !census.done().any(|node| eligible(&node)) {
            return false;
        }
        let Some(capacity) = self.capacity_above_floor(now, capacity) else {
            return false;
        };
        let census = &self.census;
        let nodes = &self.state.nodes;
        let taken: Vec<usize> = census
            .done()
            .filter(|node| {
                nodes[*node]
                    .step
                    .is_none_or(|step| !census.step_active(step))
                    && !self.revert_leaves(*node)
            })
            .take(capacity)
            .collect();
        let why = format!(
            "upgraded, then booted back because the session halted: {}",
            self.state
                .reverting
                .as_ref()
                .map(|revert| revert.reason.as_str())
                .unwrap_or_default()
        );
        let number = u32::try_from(self.state.steps.len()).unwrap_or(u32::MAX);
        self.census.step_started(number);
        for &node in &taken {
            let record = &mut self.state.nodes[node];
            record.step = Some(number);
            record.revert_reason = Some(why.clone());
            record.reason = None;
            record.healthy_since = None;
            self.move_node(node, NodeInput::Revert, now);
        }
        let ids = self.ids_of(&taken);
        let template = self.rollback_boot_template().unwrap_or_default();
        self.say(
            now,
            Said::RevertStepStarted {
                step: number,
                nodes: ids.clone(),
                template,
            },
        );
        self.emit(
            now,
            EventKind::StepStarted {
                step: number,
                nodes: ids,
            },
        );
        self.state.steps.push(Step {
            number,
            nodes: taken,
            started_at: now,
            boots: Vec::new(),
            finished: false,
            hooks: Vec::new(),
        });
        true
    }
}
