//! The demo's results, as a table for people or JSON for programs.

use std::time::Duration;

use crus_backends::sim::SimCluster;
use crus_core::rollout::{NodePhase, RolloutState};
use crus_core::{NodeId, SessionSpec};
use serde::Serialize;

use super::DemoArgs;

/// What the demo measured.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Nodes in the starting group.
    pub nodes: usize,
    /// Nodes upgraded and back in service.
    pub upgraded: usize,
    /// Nodes whose upgrade failed.
    pub failed: usize,
    /// Steps taken.
    pub steps: usize,
    /// The session's step size.
    pub step_size: u32,
    /// Most nodes out of service at once because of the upgrade (failed nodes excluded).
    pub max_out_of_service: usize,
    /// Simulated seconds from the session's start to its end.
    pub makespan_s: f64,
    /// Node-seconds spent drained with no job, waiting (idle capacity the upgrade held).
    pub drained_idle_node_s: f64,
    /// Node boots the simulated cluster counted.
    pub boots: u64,
    /// Boots of nodes that were running a job (must be 0).
    pub reboots_with_running_jobs: u64,
    /// Jobs that ended during the simulation.
    pub jobs_completed: u64,
    /// The boot timeout used.
    pub boot_timeout_s: f64,
    /// The session's final state.
    pub state: String,
    /// Whether the session completed.
    pub completed: bool,
    /// The nodes that failed, by the session's account.
    pub failed_nodes: Vec<NodeId>,
    /// The members of the failed group at the end.
    pub failed_group: Vec<NodeId>,
    /// Nodes still drained at the end that are not failed (must be empty).
    pub left_drained: Vec<NodeId>,
    /// The seed used.
    pub seed: u64,
    /// The session's messages.
    pub messages: Vec<String>,
    /// The rollout policy the session ran with (the policy flags over the
    /// demo's defaults).
    pub policy: serde_json::Value,
}

impl Summary {
    /// Gathers the results of a finished session and the cluster it ran on.
    pub fn new(
        state: &RolloutState,
        sim: &SimCluster,
        spec: &SessionSpec,
        args: &DemoArgs,
        boot_timeout: Duration,
    ) -> Self {
        let report = sim.report();
        let failed_nodes: Vec<NodeId> = state
            .nodes
            .iter()
            .filter(|node| node.phase == NodePhase::Failed)
            .map(|node| node.id.clone())
            .collect();
        let mut failed_group = sim.group(&spec.failed_label).unwrap_or_default();
        failed_group.sort();
        let failed_marked = sim.failed_marked_nodes();
        let left_drained: Vec<NodeId> = sim
            .drained_nodes()
            .into_iter()
            .filter(|node| !failed_marked.contains(node))
            .collect();
        let makespan = match (state.started_at, state.finished_at) {
            (Some(start), Some(end)) => end.saturating_since(start),
            _ => Duration::ZERO,
        };
        Summary {
            nodes: state.nodes.len(),
            upgraded: state.count(NodePhase::Done),
            failed: failed_nodes.len(),
            steps: state.steps.len(),
            step_size: spec.upgrade_step_size,
            max_out_of_service: report.max_out_of_service,
            makespan_s: makespan.as_secs_f64(),
            drained_idle_node_s: report.drained_idle_node_s,
            boots: report.boots,
            reboots_with_running_jobs: report.reboots_with_running_jobs,
            jobs_completed: report.jobs_completed,
            boot_timeout_s: boot_timeout.as_secs_f64(),
            state: state.state.to_string(),
            completed: state.completed,
            failed_nodes,
            failed_group,
            left_drained,
            seed: args.seed,
            messages: state.messages.clone(),
            policy: serde_json::to_value(&state.policy).unwrap_or_default(),
        }
    }

    /// Prints a short table.
    pub fn print_table(&self) {
        let hours = |seconds: f64| format!("{:.1} h", seconds / 3600.0);
        let rows = [
            ("nodes", self.nodes.to_string()),
            ("upgraded", self.upgraded.to_string()),
            ("failed", self.failed.to_string()),
            (
                "steps",
                format!("{} (at most {} nodes each)", self.steps, self.step_size),
            ),
            ("max out of service", self.max_out_of_service.to_string()),
            ("makespan", hours(self.makespan_s)),
            (
                "drained idle",
                format!("{:.1} node-hours", self.drained_idle_node_s / 3600.0),
            ),
            ("boots", self.boots.to_string()),
            ("jobs completed", self.jobs_completed.to_string()),
            (
                "final state",
                format!("{} (completed: {})", self.state, self.completed),
            ),
        ];
        println!(
            "Rolling upgrade of a simulated cluster (seed {})",
            self.seed
        );
        for (name, value) in rows {
            println!("  {name:<20} {value}");
        }
        if !self.failed_nodes.is_empty() {
            let names: Vec<&str> = self.failed_nodes.iter().map(NodeId::as_str).collect();
            println!("  {:<20} {}", "failed nodes", names.join(", "));
        }
        // A finished session ends with CRUS's "Upgrade Session Completed";
        // the summary before it says how it went.
        if let [.., summary, last] = self.messages.as_slice()
            && last == crus_core::rollout::COMPLETED_MESSAGE
        {
            println!("  {:<20} {summary}", "outcome");
        }
        if let Some(last) = self.messages.last() {
            println!("  {:<20} {last}", "last message");
        }
    }
}
