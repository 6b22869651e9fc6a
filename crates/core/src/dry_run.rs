//! Dry runs: what a session would do, and for how long, touching nothing.
//!
//! The real [`Rollout`] state machine is driven in virtual time against a
//! model of the cluster built from one observation of the workload manager:
//! a node drains when its running jobs are expected to end, and boots in the
//! expected boot time. Every policy rule (order, failure domains, canary,
//! windows, strategy) is therefore applied exactly as a real session applies
//! it, and the plan is deterministic: same observation, same plan.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::node::NodeId;
use crate::ports::{BootHandle, NodeBootState, NodeBootStatus, WorkloadNode, WorkloadState};
use crate::rollout::{Action, ActionOutput, Rollout, RolloutPolicy};
use crate::session::SessionSpec;
use crate::time::Timestamp;

/// What the model assumes where the cluster does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunAssumptions {
    /// How long one boot takes.
    pub boot_time: Duration,
    /// When jobs with no known end are taken to end, counted from the start.
    pub unknown_job_end: Duration,
}

impl Default for DryRunAssumptions {
    fn default() -> Self {
        DryRunAssumptions {
            boot_time: Duration::from_secs(5 * 60),
            unknown_job_end: Duration::from_secs(24 * 3600),
        }
    }
}

/// One step of a dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedStep {
    /// Step number, from 0.
    pub step: u32,
    /// Its nodes, in the order they were taken.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub nodes: Vec<NodeId>,
    /// When it is expected to start.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub starts_at: Timestamp,
    /// When its last node is expected to be back in service.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub done_at: Timestamp,
}

/// The outcome of a dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRun {
    /// The steps in the order they would start.
    pub steps: Vec<PlannedStep>,
    /// Nodes the session would upgrade.
    pub nodes: usize,
    /// The effective step size.
    pub step_size: u32,
    /// The policy as it would be applied.
    pub policy: RolloutPolicy,
    /// How long the session is expected to take.
    #[serde(with = "humantime_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "3h 12m"))]
    pub estimated_duration: Duration,
    /// Why the nodes come in this order, and what the estimate assumes.
    pub rationale: Vec<String>,
}

/// Plans `spec` under `policy` for nodes `members`, whose workload state is
/// `observed` at `now`.
pub fn dry_run(
    spec: SessionSpec,
    policy: RolloutPolicy,
    members: Vec<NodeId>,
    observed: &[WorkloadNode],
    now: Timestamp,
    assumptions: &DryRunAssumptions,
) -> DryRun {
    let mut model = Model::new(observed, now, assumptions);
    let mut rationale = model.rationale(&policy);
    // A dry run cannot wait for an operator: a canary that would pause is
    // planned as if it were resumed at once.
    let mut run_policy = policy.clone();
    if let Some(canary) = run_policy.canary.as_mut()
        && canary.pause_after
    {
        canary.pause_after = false;
        rationale.push(
            "The canary step pauses the session; the plan assumes it is resumed at once."
                .to_string(),
        );
    }
    let step_size = spec.upgrade_step_size;
    let mut rollout = Rollout::new(Uuid::nil(), spec, run_policy, now);
    let mut clock = now;
    // Bounded: a plan longer than a year of polls is not a plan.
    for _ in 0..5_000_000 {
        rollout.handle_timeout(clock);
        // Everything asked at one instant is answered at that instant.
        loop {
            let mut answers = Vec::new();
            while let Some((id, action)) = rollout.poll_action() {
                answers.push((id, Ok(model.answer(&action, clock, &members))));
            }
            if answers.is_empty() {
                break;
            }
            rollout.handle_outcomes(clock, answers);
        }
        if rollout.is_finished() {
            break;
        }
        // Until the model's next job end or boot end, every poll would read
        // what was read already: skip to the first poll after it.
        if let Some(change) = model.next_change_after(clock) {
            rollout.defer_polls(change);
        }
        let next = rollout
            .poll_timeout()
            .unwrap_or(clock + Duration::from_secs(1));
        clock = next.max(clock + Duration::from_millis(1));
    }
    let state = rollout.state();
    let steps = state
        .steps
        .iter()
        .map(|step| PlannedStep {
            step: step.number,
            nodes: step
                .nodes
                .iter()
                .map(|&node| state.nodes[node].id.clone())
                .collect(),
            starts_at: step.started_at,
            done_at: step
                .nodes
                .iter()
                .filter_map(|&node| state.nodes[node].finished_at)
                .max()
                .unwrap_or(step.started_at),
        })
        .collect();
    let finished = state.finished_at.unwrap_or(clock);
    DryRun {
        steps,
        nodes: state.nodes.len(),
        step_size,
        policy,
        estimated_duration: finished.saturating_since(now),
        rationale,
    }
}

/// The cluster as the dry run imagines it.
struct Model {
    /// When each node's current jobs end; absent = idle.
    jobs_end: HashMap<NodeId, Timestamp>,
    /// Nodes with jobs of unknown end.
    unknown_ends: usize,
    /// When each booting node comes back.
    back_at: HashMap<NodeId, Timestamp>,
    /// The nodes of each boot, by key.
    boots: HashMap<String, Vec<NodeId>>,
    /// Every time something the rollout observes changes: a job end, a boot end.
    changes: BTreeSet<Timestamp>,
    boot_time: Duration,
}

impl Model {
    fn new(observed: &[WorkloadNode], now: Timestamp, assumptions: &DryRunAssumptions) -> Model {
        let mut jobs_end = HashMap::new();
        let mut unknown_ends = 0;
        for node in observed {
            if matches!(
                node.state,
                WorkloadState::Allocated | WorkloadState::Draining
            ) {
                let end = node.jobs_end_by.unwrap_or_else(|| {
                    unknown_ends += 1;
                    now + assumptions.unknown_job_end
                });
                jobs_end.insert(node.node.clone(), end);
            }
        }
        let changes = jobs_end.values().copied().collect();
        Model {
            jobs_end,
            unknown_ends,
            back_at: HashMap::new(),
            boots: HashMap::new(),
            changes,
            boot_time: assumptions.boot_time,
        }
    }

    /// The first time after `now` at which an observation would differ.
    fn next_change_after(&self, now: Timestamp) -> Option<Timestamp> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.changes
            .range((Excluded(now), Unbounded))
            .next()
            .copied()
    }

    fn rationale(&self, policy: &RolloutPolicy) -> Vec<String> {
        use crate::rollout::{Order, Strategy};
        let mut lines = vec![match policy.order {
            Order::Inventory => {
                "Nodes in inventory order (cabinet, chassis, slot, node), as CRUS.".to_string()
            }
            Order::DrainCost => "Idle nodes first, then nodes whose jobs end soonest.".to_string(),
            Order::Topology => format!(
                "Idle nodes first, then nodes whose jobs end soonest, {}.",
                match (policy.spread, policy.align) {
                    (Some(domain), _) =>
                        format!("never two of one {} out at once", domain.as_str()),
                    (None, Some(domain)) => format!("a whole {} at a time", domain.as_str()),
                    (None, None) => "by location".to_string(),
                }
            ),
        }];
        lines.push(match policy.strategy {
            Strategy::Steps => "Each step waits for its slowest drain, then boots, before the next starts (CRUS's barrier).".to_string(),
            Strategy::Continuous => "A node is taken as soon as another is back; each boots as soon as it is drained.".to_string(),
        });
        lines.push(format!(
            "Estimate: {} busy node(s) drain when their jobs' time limits end; a boot takes {}.",
            self.jobs_end.len(),
            humantime::format_duration(self.boot_time)
        ));
        if self.unknown_ends > 0 {
            lines.push(format!(
                "{} node(s) run jobs with no known end; the estimate assumes they end within a day.",
                self.unknown_ends
            ));
        }
        lines
    }

    fn answer(&mut self, action: &Action, now: Timestamp, members: &[NodeId]) -> ActionOutput {
        match action {
            Action::ReadStartingGroup { .. } => ActionOutput::Members(members.to_vec()),
            Action::PrepareGroups { .. } => ActionOutput::GroupsPrepared {
                cleared_failed: Vec::new(),
                cleared_upgrading: Vec::new(),
            },
            Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
                nodes
                    .iter()
                    .map(|node| {
                        let end = self.jobs_end.get(node).copied().filter(|end| *end > now);
                        let booted = self.back_at.get(node).is_some_and(|at| *at <= now);
                        WorkloadNode {
                            node: node.clone(),
                            state: match (end, booted) {
                                (_, true) => WorkloadState::Idle,
                                (Some(_), false) => WorkloadState::Draining,
                                (None, false) => WorkloadState::Drained,
                            },
                            responding: true,
                            jobs_end_by: end,
                            reason: None,
                        }
                    })
                    .collect(),
            ),
            Action::StartBoot { request, .. } => {
                for node in &request.nodes {
                    self.back_at.insert(node.clone(), now + self.boot_time);
                }
                self.changes.insert(now + self.boot_time);
                self.boots
                    .insert(request.key.clone(), request.nodes.clone());
                ActionOutput::BootStarted(BootHandle {
                    key: request.key.clone(),
                    id: request.key.clone(),
                })
            }
            Action::ObserveBoot { handle, .. } => ActionOutput::BootStatus(
                self.boots
                    .get(&handle.key)
                    .into_iter()
                    .flatten()
                    .map(|node| NodeBootStatus {
                        node: node.clone(),
                        state: if self.back_at.get(node).is_some_and(|at| *at <= now) {
                            NodeBootState::Ok
                        } else {
                            NodeBootState::InProgress
                        },
                    })
                    .collect(),
            ),
            Action::RequeueJobs { nodes } => {
                for node in nodes {
                    self.jobs_end.remove(node);
                }
                ActionOutput::Done
            }
            Action::Drain { .. }
            | Action::Resume { .. }
            | Action::MarkFailed { .. }
            | Action::PowerRestart { .. }
            | Action::ClearUpgradingGroup { .. } => ActionOutput::Done,
        }
    }
}

/// Whether any node of the plan would still be out of service at the end (never, by construction).
#[cfg(test)]
fn all_done(plan: &DryRun) -> bool {
    plan.steps.iter().all(|step| step.done_at >= step.starts_at)
}

mod humantime_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        // Whole seconds: a plan is not precise to the millisecond.
        serializer.collect_str(&humantime::format_duration(Duration::from_secs(
            duration.as_secs(),
        )))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{Order, Strategy};

    fn spec(step: u32) -> SessionSpec {
        SessionSpec {
            failed_label: "failed".into(),
            starting_label: "compute".into(),
            upgrade_step_size: step,
            upgrade_template_id: "image".into(),
            upgrading_label: "upgrading".into(),
            workload_manager_type: "slurm".into(),
            policy: None,
        }
    }

    fn busy(node: &str, ends_in_minutes: i64) -> WorkloadNode {
        WorkloadNode {
            node: NodeId::from(node),
            state: WorkloadState::Allocated,
            responding: true,
            jobs_end_by: Some(Timestamp::from_secs(1_000_000 + ends_in_minutes * 60)),
            reason: None,
        }
    }

    fn members() -> Vec<NodeId> {
        ["n1", "n2", "n3", "n4"]
            .into_iter()
            .map(NodeId::from)
            .collect()
    }

    #[test]
    fn crus_steps_wait_for_the_slowest_drain_and_drain_cost_reorders() {
        let now = Timestamp::from_secs(1_000_000);
        let observed = [busy("n1", 120), busy("n3", 10)];
        let assumptions = DryRunAssumptions::default();
        let crus = dry_run(
            spec(2),
            RolloutPolicy::default(),
            members(),
            &observed,
            now,
            &assumptions,
        );
        assert_eq!(crus.steps.len(), 2);
        assert_eq!(
            crus.steps[0].nodes,
            [NodeId::from("n1"), NodeId::from("n2")]
        );
        assert!(all_done(&crus));
        // n1's job ends at 120 min; n3's at 10 min: steps of 2 take about
        // 120 + 5 and then 5 more minutes.
        let minutes = crus.estimated_duration.as_secs() / 60;
        assert!((129..=133).contains(&minutes), "{minutes} min");

        let cheap = dry_run(
            spec(2),
            RolloutPolicy {
                order: Order::DrainCost,
                strategy: Strategy::Continuous,
                ..RolloutPolicy::default()
            },
            members(),
            &observed,
            now,
            &assumptions,
        );
        assert_eq!(
            cheap.steps[0].nodes,
            [NodeId::from("n2"), NodeId::from("n4")]
        );
        assert!(cheap.estimated_duration < crus.estimated_duration);
        assert!(cheap.rationale[0].contains("Idle nodes first"));
        // Same input, same plan.
        assert_eq!(
            cheap,
            dry_run(
                spec(2),
                cheap.policy.clone(),
                members(),
                &observed,
                now,
                &assumptions
            )
        );
    }
}
