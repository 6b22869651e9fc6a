//! Dry runs: what a session would do, and for how long, touching nothing.
//!
//! The real [`Rollout`] state machine is driven in virtual time against a
//! model of the cluster built from one observation of the workload manager:
//! a node drains when its running jobs are expected to end, and boots in the
//! expected boot time. Every policy rule (order, failure domains, canary,
//! windows, strategy) is therefore applied exactly as a real session applies
//! it, and the plan is deterministic: same observation, same plan.
//!
//! A dry run is asked for by API clients, so what it may cost is bounded:
//! [`dry_run_within`] stops with [`DryRunStopped`] when the simulated session
//! outgrows the [`DryRunBudget`] (simulated time, passes of the engine) or
//! when the caller raises its cancellation flag (its deadline passed, its
//! request went away).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// How much a dry run may simulate before it gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunBudget {
    /// The longest simulated span a plan covers, from its start: a session
    /// expected to take longer is not planned.
    pub horizon: Duration,
    /// The most passes of the engine loop (each is one instant at which the
    /// engine is woken: a poll, a job end, a boot end). Bounds the CPU time
    /// of a plan whatever its simulated length.
    pub max_passes: u64,
}

impl Default for DryRunBudget {
    /// A year of simulated time and a million passes (a few seconds of CPU
    /// time at most); a plan of 100,000 nodes needs far fewer.
    fn default() -> Self {
        DryRunBudget {
            horizon: Duration::from_secs(366 * 24 * 3600),
            max_passes: 1_000_000,
        }
    }
}

/// Why a dry run stopped before its plan was complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DryRunStopped {
    /// The session would take longer than the budget can simulate; `field`
    /// names the request's setting that makes it so, `message` says what to do.
    #[error("{field}: {message}")]
    TooLong {
        /// The setting of the request to change, e.g. `policy.health.soak`.
        field: String,
        /// What the plan ran into and what to change.
        message: String,
    },
    /// The caller's cancellation flag was raised (its deadline passed or
    /// its request went away) before the plan was complete.
    #[error("the dry run was cancelled before its plan was complete")]
    Cancelled,
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
/// `observed` at `now`, with no bound but a cap of five million passes (a
/// plan that reaches it shows how far it got).
pub fn dry_run(
    spec: SessionSpec,
    policy: RolloutPolicy,
    members: Vec<NodeId>,
    observed: &[WorkloadNode],
    now: Timestamp,
    assumptions: &DryRunAssumptions,
) -> DryRun {
    let budget = DryRunBudget {
        horizon: Duration::MAX,
        max_passes: 5_000_000,
    };
    let never = AtomicBool::new(false);
    let mut simulation = Simulation::new(spec, policy, members, observed, now, assumptions);
    // Only the pass cap can stop it: the partial plan is the answer.
    let _ = simulation.run(&budget, &never);
    simulation.plan()
}

/// As [`dry_run`], within `budget`; stops early, with what to change, when
/// the session outgrows it, and as soon as `cancel` is raised (checked at
/// every pass of the engine, so a caller's deadline holds to a pass).
pub fn dry_run_within(
    input: DryRunInput,
    assumptions: &DryRunAssumptions,
    budget: &DryRunBudget,
    cancel: &AtomicBool,
) -> Result<DryRun, DryRunStopped> {
    let DryRunInput {
        spec,
        policy,
        members,
        observed,
        now,
    } = input;
    let mut simulation = Simulation::new(spec, policy, members, &observed, now, assumptions);
    simulation.run(budget, cancel)?;
    Ok(simulation.plan())
}

/// What a dry run plans from: the session, its policy as applied, the
/// starting group's members in inventory order, and the workload manager's
/// view of them at `now`. Gathered by the controller (IO), planned by
/// [`dry_run_within`] (CPU only), so the planning can run apart.
#[derive(Debug, Clone)]
pub struct DryRunInput {
    /// The session, its step size resolved.
    pub spec: SessionSpec,
    /// The policy it would run with.
    pub policy: RolloutPolicy,
    /// Its nodes.
    pub members: Vec<NodeId>,
    /// The workload manager's view of them.
    pub observed: Vec<WorkloadNode>,
    /// When the plan starts.
    pub now: Timestamp,
}

/// The engine driven against the model in virtual time.
struct Simulation {
    model: Model,
    rollout: Rollout,
    members: Vec<NodeId>,
    policy: RolloutPolicy,
    step_size: u32,
    rationale: Vec<String>,
    start: Timestamp,
    clock: Timestamp,
}

impl Simulation {
    fn new(
        spec: SessionSpec,
        policy: RolloutPolicy,
        members: Vec<NodeId>,
        observed: &[WorkloadNode],
        now: Timestamp,
        assumptions: &DryRunAssumptions,
    ) -> Simulation {
        let soak = policy
            .health
            .as_ref()
            .map_or(Duration::ZERO, |health| health.soak);
        let model = Model::new(observed, now, assumptions, soak);
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
        let rollout = Rollout::new(Uuid::nil(), spec, run_policy, now);
        Simulation {
            model,
            rollout,
            members,
            policy,
            step_size,
            rationale,
            start: now,
            clock: now,
        }
    }

    /// Drives the engine until the session finishes or `budget` or `cancel`
    /// stops it.
    fn run(&mut self, budget: &DryRunBudget, cancel: &AtomicBool) -> Result<(), DryRunStopped> {
        let mut passes: u64 = 0;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(DryRunStopped::Cancelled);
            }
            if passes >= budget.max_passes {
                return Err(self.too_long(budget, Limit::Passes(passes)));
            }
            if self.clock.saturating_since(self.start) > budget.horizon {
                return Err(self.too_long(budget, Limit::Horizon));
            }
            passes += 1;
            let clock = self.clock;
            self.rollout.handle_timeout(clock);
            // Everything asked at one instant is answered at that instant.
            loop {
                let mut answers = Vec::new();
                while let Some((id, action)) = self.rollout.poll_action() {
                    answers.push((id, Ok(self.model.answer(&action, clock, &self.members))));
                }
                if answers.is_empty() {
                    break;
                }
                self.rollout.handle_outcomes(clock, answers);
            }
            if self.rollout.is_finished() {
                return Ok(());
            }
            // Until the model's next job end, boot end or soak end, every
            // poll would read what was read already: skip to the first poll
            // after it.
            if let Some(change) = self.model.next_change_after(clock) {
                self.rollout.defer_polls(change);
            }
            let next = self
                .rollout
                .poll_timeout()
                .unwrap_or(clock + Duration::from_secs(1));
            self.clock = next.max(clock + Duration::from_millis(1));
        }
    }

    /// Why the session outgrew `budget`, naming the setting of the request
    /// most likely to blame.
    fn too_long(&self, budget: &DryRunBudget, limit: Limit) -> DryRunStopped {
        let reached = match limit {
            Limit::Horizon => format!(
                "The session would take longer than the {} a dry run simulates",
                humantime::format_duration(budget.horizon)
            ),
            Limit::Passes(passes) => format!(
                "The session needs more than the {passes} engine passes a dry run may take (it reached {} of simulated time)",
                humantime::format_duration(Duration::from_secs(
                    self.clock.saturating_since(self.start).as_secs()
                ))
            ),
        };
        let steps = u64::try_from(self.members.len())
            .unwrap_or(u64::MAX)
            .div_ceil(u64::from(self.step_size.max(1)))
            .max(1);
        let soak = self
            .policy
            .health
            .as_ref()
            .map_or(Duration::ZERO, |health| health.soak);
        let soaks = soak.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX));
        let latest_job_end = self
            .model
            .jobs_end
            .values()
            .max()
            .map(|end| end.saturating_since(self.start));
        let (field, cause) = if soaks >= budget.horizon / 2 || soak >= budget.horizon / 4 {
            (
                "policy.health.soak",
                format!(
                    "each of its {steps} step(s) soaks for {}; shorten policy.health.soak",
                    humantime::format_duration(soak)
                ),
            )
        } else if latest_job_end.is_some_and(|end| end >= budget.horizon / 2) {
            (
                "starting_label",
                format!(
                    "jobs on the starting group run for up to {} more; wait for them or choose a policy.drain_timeout",
                    humantime::format_duration(latest_job_end.unwrap_or_default())
                ),
            )
        } else if !self.policy.windows.is_empty() {
            (
                "policy.windows",
                "its maintenance windows leave too little time to take nodes; widen policy.windows"
                    .to_string(),
            )
        } else if matches!(limit, Limit::Passes(_))
            && self.policy.poll_interval < Duration::from_secs(1)
        {
            (
                "policy.poll_interval",
                format!(
                    "it polls every {}; poll less often",
                    humantime::format_duration(self.policy.poll_interval)
                ),
            )
        } else {
            (
                "upgrade_step_size",
                format!(
                    "its {steps} step(s) of {} node(s) add up; take more nodes per step",
                    self.step_size
                ),
            )
        };
        DryRunStopped::TooLong {
            field: field.to_string(),
            message: format!("{reached}: {cause}."),
        }
    }

    /// The plan, as far as the simulation went.
    fn plan(self) -> DryRun {
        let state = self.rollout.state();
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
        let finished = state.finished_at.unwrap_or(self.clock);
        DryRun {
            steps,
            nodes: state.nodes.len(),
            step_size: self.step_size,
            policy: self.policy,
            estimated_duration: finished.saturating_since(self.start),
            rationale: self.rationale,
        }
    }
}

/// Which bound of a [`DryRunBudget`] a simulation reached.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// Its simulated time passed the horizon.
    Horizon,
    /// It took this many passes.
    Passes(u64),
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
    /// Every time something the rollout observes changes: a job end, a boot
    /// end, the end of a booted node's soak.
    changes: BTreeSet<Timestamp>,
    boot_time: Duration,
    /// The policy's health soak: a node back at `t` is upgraded at the
    /// first poll after `t + soak`, with nothing new to see in between.
    soak: Duration,
}

impl Model {
    fn new(
        observed: &[WorkloadNode],
        now: Timestamp,
        assumptions: &DryRunAssumptions,
        soak: Duration,
    ) -> Model {
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
            soak,
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
                if !self.soak.is_zero() {
                    self.changes.insert(now + self.boot_time + self.soak);
                }
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

    fn soaking(soak_hours: u64) -> RolloutPolicy {
        RolloutPolicy {
            health: Some(crate::rollout::HealthGate {
                command: None,
                http: None,
                soak: Duration::from_secs(soak_hours * 3600),
            }),
            ..RolloutPolicy::default()
        }
    }

    fn input(policy: RolloutPolicy) -> DryRunInput {
        DryRunInput {
            spec: spec(2),
            policy,
            members: members(),
            observed: vec![busy("n1", 120)],
            now: Timestamp::from_secs(1_000_000),
        }
    }

    #[test]
    fn a_soak_longer_than_the_horizon_stops_the_plan_naming_the_soak() {
        let stopped = dry_run_within(
            input(soaking(9999)),
            &DryRunAssumptions::default(),
            &DryRunBudget::default(),
            &AtomicBool::new(false),
        )
        .unwrap_err();
        let DryRunStopped::TooLong { field, message } = stopped else {
            panic!("{stopped:?}");
        };
        assert_eq!(field, "policy.health.soak");
        assert!(message.contains("soaks for 1year 1month"), "{message}");
        assert!(message.contains("a dry run simulates"), "{message}");
    }

    #[test]
    fn a_soak_is_skipped_over_rather_than_polled_through() {
        // 2 steps soaking 100 days each: polled every 10 s that is 1.7
        // million passes; skipped over, a handful.
        let budget = DryRunBudget {
            horizon: Duration::MAX,
            max_passes: 1_000,
        };
        let plan = dry_run_within(
            input(soaking(2400)),
            &DryRunAssumptions::default(),
            &budget,
            &AtomicBool::new(false),
        )
        .unwrap();
        let days = plan.estimated_duration.as_secs() / 86_400;
        assert!((200..=201).contains(&days), "{days} days");
        // The same plan as the unbounded dry run.
        let unbounded = dry_run(
            spec(2),
            soaking(2400),
            members(),
            &[busy("n1", 120)],
            Timestamp::from_secs(1_000_000),
            &DryRunAssumptions::default(),
        );
        assert_eq!(plan, unbounded);
    }

    #[test]
    fn the_pass_budget_bounds_the_work_and_says_what_to_change() {
        let budget = DryRunBudget {
            horizon: Duration::MAX,
            max_passes: 3,
        };
        let stopped = dry_run_within(
            input(RolloutPolicy::default()),
            &DryRunAssumptions::default(),
            &budget,
            &AtomicBool::new(false),
        )
        .unwrap_err();
        let DryRunStopped::TooLong { field, message } = stopped else {
            panic!("{stopped:?}");
        };
        assert_eq!(field, "upgrade_step_size");
        assert!(message.contains("3 engine passes"), "{message}");
    }

    #[test]
    fn a_raised_cancellation_flag_stops_the_plan() {
        let stopped = dry_run_within(
            input(soaking(1)),
            &DryRunAssumptions::default(),
            &DryRunBudget::default(),
            &AtomicBool::new(true),
        )
        .unwrap_err();
        assert_eq!(stopped, DryRunStopped::Cancelled);
    }
}
