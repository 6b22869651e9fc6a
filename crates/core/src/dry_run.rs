//! Dry runs: what a session would do, and for how long, touching nothing.
//!
//! The real [`Rollout`] state machine is driven in virtual time against a
//! model of the machine built from one reading of the workload manager: the
//! group's nodes and the jobs on them, the jobs queued, and the jobs expected
//! to arrive (learned from the recent past the workload manager reports).
//! Every policy rule (order, failure domains, canary, windows, strategy) is
//! therefore applied exactly as a real session applies it.
//!
//! The answer is a forecast: what is uncertain (when jobs end within their
//! limits, which jobs arrive, how long boots take) is drawn in a bounded
//! number of seeded runs, and the plan reports the median duration with its
//! 10th and 90th percentiles and the part that dominates. The same input
//! always gives the same forecast.
//!
//! A dry run is asked for by API clients, so what it may cost is bounded:
//! [`dry_run_within`] stops with [`DryRunStopped`] when the simulated session
//! outgrows the [`DryRunBudget`] (simulated time, passes of the engine over
//! all sampled runs) or when the caller raises its cancellation flag (its
//! deadline passed, its request went away).

mod attribution;
mod left_out;
mod machine;
mod outlook;
mod safety;
mod sampling;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use left_out::{PlannedFloor, SkippedNode};

use crate::node::NodeId;
use crate::ports::{NodeImage, WorkloadNode, WorkloadQueue, WorkloadState};
use crate::rollout::{Rollout, RolloutPolicy};
use crate::session::SessionSpec;
use crate::time::Timestamp;
use attribution::Split;
use machine::{Machine, MachineSettings, NodeTrace};
use outlook::Outlook;
pub use safety::{PlannedGates, PlannedRollback, planned_gates, planned_rollback};
use sampling::sample;

/// What the model assumes where the cluster does not say.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRunAssumptions {
    /// How long one boot takes, on average.
    pub boot_time: Duration,
    /// Boots vary uniformly by this share of `boot_time` either way (0.1:
    /// ±10%).
    pub boot_time_spread: f64,
    /// When jobs with no known end are taken to end, counted from the start.
    pub unknown_job_end: Duration,
    /// How many seeded runs a forecast samples when something is uncertain
    /// (one when nothing is).
    pub samples: u32,
}

impl Default for DryRunAssumptions {
    fn default() -> Self {
        DryRunAssumptions {
            boot_time: Duration::from_secs(5 * 60),
            boot_time_spread: 0.1,
            unknown_job_end: Duration::from_secs(24 * 3600),
            samples: 15,
        }
    }
}

/// How much a dry run may simulate before it gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunBudget {
    /// The longest simulated span a plan covers, from its start: a session
    /// expected to take longer is not planned.
    pub horizon: Duration,
    /// The most passes of the engine loop over all sampled runs (each is
    /// one instant at which the engine is woken: a poll, a job end or
    /// arrival, a boot end). Bounds the CPU time of a plan whatever its
    /// simulated length; when it runs out after some sampled runs are
    /// complete, the forecast is made from those.
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
    /// Its nodes, in the order they were taken (in the median sampled run).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub nodes: Vec<NodeId>,
    /// When it is expected to start.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub starts_at: Timestamp,
    /// When its last node is expected to be back in service (median run).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub done_at: Timestamp,
    /// The 10th percentile of when this step is done, over the sampled runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub done_at_p10: Option<Timestamp>,
    /// The 90th percentile of when this step is done, over the sampled runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub done_at_p90: Option<Timestamp>,
    /// What this step's time goes to: its boot, or waiting for its jobs
    /// ("waiting for jobs that end by 2026-12-06 14:20 UTC").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dominated_by: Option<String>,
}

/// The outcome of a dry run: a forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRun {
    /// The steps in the order they would start (in the median sampled run).
    pub steps: Vec<PlannedStep>,
    /// Nodes the session would upgrade.
    pub nodes: usize,
    /// The effective step size.
    pub step_size: u32,
    /// The policy as it would be applied.
    pub policy: RolloutPolicy,
    /// How long the session is expected to take: the median of the sampled runs.
    #[serde(with = "humantime_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "3h 12m"))]
    pub estimated_duration: Duration,
    /// The 10th percentile of the duration over the sampled runs: one run in
    /// ten is faster.
    #[serde(default, with = "humantime_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "2h 50m"))]
    pub p10: Duration,
    /// The 90th percentile of the duration: one run in ten is slower.
    #[serde(default, with = "humantime_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "3h 40m"))]
    pub p90: Duration,
    /// How many seeded runs the forecast sampled (one when nothing is uncertain).
    #[serde(default)]
    pub samples: u32,
    /// The part of the session that dominates its duration, e.g. "waiting
    /// for jobs that end by 2026-12-06 14:20 UTC" or "boot rounds".
    #[serde(default)]
    pub dominated_by: String,
    /// Why the nodes come in this order, and what the estimate assumes.
    pub rationale: Vec<String>,
    /// Nodes the session would leave alone, with why: held out of service
    /// by someone else under `foreign_out_of_service: skip`, or already on
    /// the target image under `skip_matching` (issue 21; absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedNode>,
    /// The capacity floor as it applies to this group (absent without
    /// `min_available`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<PlannedFloor>,
    /// At most this many node boots are requested in any minute (absent
    /// without `max_boots_per_minute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_boots_per_minute: Option<u32>,
    /// The rollback the session would apply, if its policy has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<PlannedRollback>,
    /// The alert gates the session would check, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<PlannedGates>,
}

/// Plans `spec` under `policy` for nodes `members`, whose workload state is
/// `observed` at `now` (the queue unknown), with no bound but a cap of five
/// million passes (a plan that reaches it shows how far it got).
pub fn dry_run(
    spec: SessionSpec,
    policy: RolloutPolicy,
    members: Vec<NodeId>,
    observed: &[WorkloadNode],
    now: Timestamp,
    assumptions: &DryRunAssumptions,
) -> DryRun {
    forecast(
        DryRunInput {
            spec,
            policy,
            members,
            observed: observed.to_vec(),
            now,
            queue: None,
            queue_note: None,
            images: Vec::new(),
            images_note: None,
        },
        assumptions,
    )
}

/// As [`dry_run`] from everything `input` holds (its queue too), with no
/// bound but a cap of five million passes.
pub fn forecast(input: DryRunInput, assumptions: &DryRunAssumptions) -> DryRun {
    let budget = DryRunBudget {
        horizon: Duration::MAX,
        max_passes: 5_000_000,
    };
    let never = AtomicBool::new(false);
    match sample(&input, assumptions, &budget, &never) {
        Ok(plan) => plan,
        // Only the pass cap can stop it: the first run's partial plan is the answer.
        Err(_) => {
            let outlook = Outlook::learn(input.queue.as_ref(), input.now, input.members.len());
            let mut simulation = Simulation::new(&input, &outlook, assumptions, 0);
            let _ = simulation.run(&budget, &never);
            let outcome = simulation.outcome();
            combine(&input, &outlook, vec![outcome], 1, simulation.rationale)
        }
    }
}

/// As [`forecast`], within `budget`; stops early, with what to change, when
/// the session outgrows it, and as soon as `cancel` is raised (checked at
/// every pass of the engine, so a caller's deadline holds to a pass).
pub fn dry_run_within(
    input: DryRunInput,
    assumptions: &DryRunAssumptions,
    budget: &DryRunBudget,
    cancel: &AtomicBool,
) -> Result<DryRun, DryRunStopped> {
    sample(&input, assumptions, budget, cancel)
}

/// What a dry run plans from: the session, its policy as applied, the
/// starting group's members in inventory order, and the workload manager's
/// view of them and of its jobs at `now`. Gathered by the controller (IO),
/// planned by [`dry_run_within`] (CPU only), so the planning can run apart.
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
    /// The workload manager's jobs (running, queued, recent), when it can
    /// tell; without them the forecast knows only the nodes' job ends.
    pub queue: Option<WorkloadQueue>,
    /// Why the queue is missing, when reading it failed, for the rationale.
    pub queue_note: Option<String>,
    /// The image each node runs now, as the boot orchestrator tells it:
    /// read only under `skip_matching` (empty otherwise, or when it could
    /// not be read).
    pub images: Vec<NodeImage>,
    /// Why the images are missing under `skip_matching`, when reading them
    /// failed, for the rationale.
    pub images_note: Option<String>,
}

/// What one sampled run gave.
struct Outcome {
    duration: Duration,
    skipped: Vec<SkippedNode>,
    steps: Vec<PlannedStep>,
    traces: HashMap<NodeId, NodeTrace>,
    split: Split,
}

/// The value at quantile `q` of `sorted` (nearest rank).
fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((last as f64) * q).round() as usize).copied()
}

/// The forecast from the sampled runs' `outcomes` (at least one) of `planned` runs.
fn combine(
    input: &DryRunInput,
    outlook: &Outlook,
    mut outcomes: Vec<Outcome>,
    planned: u32,
    mut rationale: Vec<String>,
) -> DryRun {
    outcomes.sort_by_key(|outcome| outcome.duration);
    let durations: Vec<Duration> = outcomes.iter().map(|outcome| outcome.duration).collect();
    let median_index = outcomes.len() / 2;
    let p10 = quantile(&durations, 0.1).unwrap_or_default();
    let p90 = quantile(&durations, 0.9).unwrap_or_default();
    let samples = u32::try_from(outcomes.len()).unwrap_or(u32::MAX);
    // Per step number, when it is done in each run.
    let mut done: HashMap<u32, Vec<Timestamp>> = HashMap::new();
    for outcome in &outcomes {
        for step in &outcome.steps {
            done.entry(step.step).or_default().push(step.done_at);
        }
    }
    for times in done.values_mut() {
        times.sort_unstable();
    }
    let Some(median) = outcomes.get_mut(median_index) else {
        // Never: every caller passes at least one outcome.
        return DryRun {
            steps: Vec::new(),
            nodes: input.members.len(),
            step_size: input.spec.upgrade_step_size,
            policy: input.policy.clone(),
            estimated_duration: Duration::ZERO,
            p10,
            p90,
            samples,
            dominated_by: String::new(),
            rationale,
            skipped: Vec::new(),
            floor: left_out::planned_floor(&input.policy, input.members.len()),
            max_boots_per_minute: input.policy.max_boots_per_minute,
            rollback: planned_rollback(&input.policy, input.spec.upgrade_step_size),
            gates: planned_gates(&input.policy),
        };
    };
    let estimated_duration = median.duration;
    let dominated_by = median.split.dominant();
    let mut steps = std::mem::take(&mut median.steps);
    for step in &mut steps {
        let times = done.get(&step.step).map_or(&[][..], |times| &times[..]);
        if samples > 1 {
            step.done_at_p10 = quantile(times, 0.1);
            step.done_at_p90 = quantile(times, 0.9);
        }
        step.dominated_by = Some(step_dominance(&step.nodes, &median.traces));
    }
    rationale
        .extend(outlook.rationale(input.queue.as_ref().map_or(0, |queue| queue.pending.len())));
    if let Some(note) = &input.queue_note {
        rationale.push(note.clone());
    }
    let floor = left_out::planned_floor(&input.policy, input.members.len());
    rationale.extend(left_out::rationale(floor.as_ref(), &input.policy));
    if let Some(note) = &input.images_note {
        rationale.push(note.clone());
    }
    let skipped = std::mem::take(&mut median.skipped);
    if !skipped.is_empty() {
        rationale.push(format!(
            "{} node(s) would be left alone (see skipped).",
            skipped.len()
        ));
    }
    let text =
        |duration: Duration| humantime::format_duration(Duration::from_secs(duration.as_secs()));
    rationale.push(if samples > 1 {
        format!(
            "Forecast from {samples} sampled runs{}: median {}, 10% of runs under {}, 10% over {}; dominated by {dominated_by}.",
            if samples < planned {
                format!(" (of {planned}; the dry run's budget allowed no more)")
            } else {
                String::new()
            },
            text(estimated_duration),
            text(p10),
            text(p90)
        )
    } else {
        format!("Nothing in the forecast is uncertain: one run, dominated by {dominated_by}.")
    });
    DryRun {
        steps,
        nodes: input.members.len(),
        step_size: input.spec.upgrade_step_size,
        policy: input.policy.clone(),
        estimated_duration,
        p10,
        p90,
        samples,
        dominated_by,
        rationale,
        skipped,
        floor,
        max_boots_per_minute: input.policy.max_boots_per_minute,
        rollback: planned_rollback(&input.policy, input.spec.upgrade_step_size),
        gates: planned_gates(&input.policy),
    }
}

/// What a step's time goes to, from its nodes' traces: waiting for its
/// slowest job when that took longer than its longest boot, else the boot.
fn step_dominance(nodes: &[NodeId], traces: &HashMap<NodeId, NodeTrace>) -> String {
    let mut wait = Duration::ZERO;
    let mut last_end = None;
    let mut boot = Duration::ZERO;
    for trace in nodes.iter().filter_map(|node| traces.get(node)) {
        if let (Some(from), Some(to)) = (trace.drained_at, trace.quiet_at)
            && to.saturating_since(from) > wait
        {
            wait = to.saturating_since(from);
            last_end = Some(to);
        }
        if let (Some(from), Some(to)) = (trace.boot_at, trace.back_at) {
            boot = boot.max(to.saturating_since(from));
        }
    }
    match last_end {
        Some(end) if wait > boot => format!(
            "waiting for jobs that end by {}",
            attribution::clock_time(end)
        ),
        _ => "boot".to_string(),
    }
}

/// The engine driven against one sampled run's machine in virtual time.
struct Simulation {
    machine: Machine,
    rollout: Rollout,
    members: Vec<NodeId>,
    policy: RolloutPolicy,
    step_size: u32,
    rationale: Vec<String>,
    start: Timestamp,
    clock: Timestamp,
    passes: u64,
}

impl Simulation {
    fn new(
        input: &DryRunInput,
        outlook: &Outlook,
        assumptions: &DryRunAssumptions,
        run: u32,
    ) -> Simulation {
        let policy = input.policy.clone();
        let soak = policy
            .health
            .as_ref()
            .map_or(Duration::ZERO, |health| health.soak);
        let machine = Machine::new(
            &input.members,
            &input.observed,
            input.queue.as_ref(),
            outlook,
            input.now,
            MachineSettings {
                boot_time: assumptions.boot_time,
                boot_spread: assumptions.boot_time_spread,
                unknown_job_end: assumptions.unknown_job_end,
                soak,
            },
            run,
        );
        let mut machine = machine;
        machine.set_images(&input.images);
        let mut rationale = policy_rationale(&policy);
        let busy = input
            .observed
            .iter()
            .filter(|node| {
                matches!(
                    node.state,
                    WorkloadState::Allocated | WorkloadState::Draining
                )
            })
            .count();
        rationale.push(format!(
            "Estimate: {busy} busy node(s) drain when their jobs end (by their time limits unless recent jobs show otherwise); a boot takes {}.",
            humantime::format_duration(assumptions.boot_time)
        ));
        if machine.unknown_ends > 0 {
            rationale.push(format!(
                "{} node(s) run jobs with no known end; the estimate assumes they end within a day.",
                machine.unknown_ends
            ));
        }
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
        let step_size = input.spec.upgrade_step_size;
        let rollout = Rollout::new(Uuid::nil(), input.spec.clone(), run_policy, input.now);
        Simulation {
            machine,
            rollout,
            members: input.members.clone(),
            policy,
            step_size,
            rationale,
            start: input.now,
            clock: input.now,
            passes: 0,
        }
    }

    /// Drives the engine until the session finishes or `budget` or `cancel`
    /// stops it.
    fn run(&mut self, budget: &DryRunBudget, cancel: &AtomicBool) -> Result<(), DryRunStopped> {
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(DryRunStopped::Cancelled);
            }
            if self.passes >= budget.max_passes {
                return Err(self.too_long(budget, Limit::Passes(budget.max_passes)));
            }
            if self.clock.saturating_since(self.start) > budget.horizon {
                return Err(self.too_long(budget, Limit::Horizon));
            }
            self.passes += 1;
            let clock = self.clock;
            self.machine.advance_to(clock);
            let before = self.progress();
            self.rollout.handle_timeout(clock);
            // Everything asked at one instant is answered at that instant.
            loop {
                let mut answers = Vec::new();
                while let Some((id, action)) = self.rollout.poll_action() {
                    answers.push((id, Ok(self.machine.answer(&action, clock))));
                }
                if answers.is_empty() {
                    break;
                }
                self.rollout.handle_outcomes(clock, answers);
            }
            if self.rollout.is_finished() {
                return Ok(());
            }
            // Until the machine's next job end, arrival, boot end or soak
            // end, every poll would read what was read already: skip to the
            // first poll after it. Only once the engine made no progress in
            // this pass, though: a node that just moved on (booted, now
            // verifying; a step just finished) is looked at again at the
            // next poll whatever the machine does.
            if self.progress() == before
                && let Some(change) = self.machine.next_change_after(clock)
            {
                self.rollout.defer_polls(change);
            }
            let next = self
                .rollout
                .poll_timeout()
                .unwrap_or(clock + Duration::from_secs(1));
            self.clock = next.max(clock + Duration::from_millis(1));
        }
    }

    /// How far the engine has come: its nodes per phase and its steps. The
    /// same before and after a pass when the pass changed nothing.
    fn progress(&self) -> (Vec<usize>, usize) {
        let state = self.rollout.state();
        (
            crate::rollout::NodePhase::ALL
                .iter()
                .map(|&phase| state.count(phase))
                .collect(),
            state.steps.len(),
        )
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
            .machine
            .latest_initial_job_end()
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

    /// The run's outcome, as far as it went.
    fn outcome(&self) -> Outcome {
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
                done_at_p10: None,
                done_at_p90: None,
                dominated_by: None,
            })
            .collect();
        let finished = state.finished_at.unwrap_or(self.clock);
        let traces: Vec<(NodeId, NodeTrace)> = self
            .machine
            .traces()
            .map(|(id, trace)| (id.clone(), trace))
            .collect();
        let only: Vec<NodeTrace> = traces.iter().map(|(_, trace)| *trace).collect();
        Outcome {
            duration: finished.saturating_since(self.start),
            skipped: left_out::skipped_nodes(state),
            steps,
            split: attribution::split(&only, self.start, finished),
            traces: traces.into_iter().collect(),
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

/// Why the nodes come in the order they do, as the policy says.
fn policy_rationale(policy: &RolloutPolicy) -> Vec<String> {
    use crate::rollout::{Order, Strategy};
    let mut lines = vec![match policy.order {
        Order::Inventory => {
            "Nodes in inventory order (cabinet, chassis, slot, node), as CRUS.".to_string()
        }
        Order::DrainCost => "Idle nodes first, then nodes whose jobs end soonest.".to_string(),
        Order::Topology => format!(
            "Idle nodes first, then nodes whose jobs end soonest, {}.",
            match (policy.spread, policy.align) {
                (Some(domain), _) => format!("never two of one {} out at once", domain.as_str()),
                (None, Some(domain)) => format!("a whole {} at a time", domain.as_str()),
                (None, None) => "by location".to_string(),
            }
        ),
    }];
    lines.push(match policy.strategy {
        Strategy::Steps => "Each step waits for its slowest drain, then boots, before the next starts (CRUS's barrier).".to_string(),
        Strategy::Continuous => "A node is taken as soon as another is back; each boots as soon as it is drained.".to_string(),
    });
    lines.extend(crate::rollout::hooks_plan(&policy.hooks));
    lines
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
    fn the_plan_lists_the_hooks_it_would_run() {
        let now = Timestamp::from_secs(1_000_000);
        let policy = RolloutPolicy {
            hooks: vec![crate::rollout::Hook {
                at: crate::rollout::HookPoint::PreBoot,
                per: crate::rollout::HookScope::Step,
                command: Some(vec!["/opt/site/fw.sh".into()]),
                http: None,
                timeout: Duration::from_secs(600),
                idempotent: false,
                on_failure: crate::rollout::HookOnFailure::Halt,
            }],
            ..RolloutPolicy::default()
        };
        let plan = dry_run(
            spec(2),
            policy,
            members(),
            &[],
            now,
            &DryRunAssumptions::default(),
        );
        assert_eq!(plan.steps.len(), 2);
        assert!(
            plan.rationale.iter().any(|line| line
                == "Runs the pre_boot hook `/opt/site/fw.sh` for each step's nodes together once \
                    quiet, before its boot (within 10m; a failure fails its nodes and halts the \
                    session); the forecast counts no time for it."),
            "{:?}",
            plan.rationale
        );
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
            queue: None,
            queue_note: None,
            images: Vec::new(),
            images_note: None,
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

    fn queue_of(pending: Vec<crate::ports::PendingJob>) -> WorkloadQueue {
        WorkloadQueue {
            pending,
            ..WorkloadQueue::default()
        }
    }

    #[test]
    fn a_queued_job_as_wide_as_the_group_delays_the_second_step() {
        let now = Timestamp::from_secs(1_000_000);
        let mut with_queue = input(RolloutPolicy::default());
        let without = dry_run_within(
            with_queue.clone(),
            &DryRunAssumptions::default(),
            &DryRunBudget::default(),
            &AtomicBool::new(false),
        )
        .unwrap();
        // Waiting for all 4 nodes, 3 hours: it starts once step 0 gives n1
        // and n2 back, and step 1 waits for it.
        with_queue.queue = Some(queue_of(vec![crate::ports::PendingJob {
            nodes: 4,
            time_limit: Some(Duration::from_secs(3 * 3600)),
            submitted: now,
        }]));
        let queued = dry_run_within(
            with_queue,
            &DryRunAssumptions::default(),
            &DryRunBudget::default(),
            &AtomicBool::new(false),
        )
        .unwrap();
        let minutes = |plan: &DryRun| plan.estimated_duration.as_secs() / 60;
        assert!(
            (125..=140).contains(&minutes(&without)),
            "{}",
            minutes(&without)
        );
        assert!(
            (305..=325).contains(&minutes(&queued)),
            "{}",
            minutes(&queued)
        );
        assert!(
            queued
                .dominated_by
                .starts_with("waiting for jobs that end by"),
            "{}",
            queued.dominated_by
        );
        assert!(
            queued.steps[1]
                .dominated_by
                .as_deref()
                .is_some_and(|text| text.starts_with("waiting for jobs")),
            "{:?}",
            queued.steps[1]
        );
        assert!(
            queued
                .rationale
                .iter()
                .any(|line| line.contains("1 queued job(s)"))
        );
    }

    #[test]
    fn uncertain_job_ends_give_a_range_and_the_same_input_the_same_forecast() {
        let now = Timestamp::from_secs(1_000_000);
        let mut uncertain = input(RolloutPolicy::default());
        // n1's job started an hour ago with a 3-hour limit; recent jobs ran
        // 40% to 100% of their limits.
        uncertain.observed = vec![busy("n1", 120)];
        let mut queue = queue_of(Vec::new());
        queue.running = vec![crate::ports::RunningJob {
            nodes: vec![NodeId::from("n1")],
            started: Timestamp::from_secs(1_000_000 - 3600),
            time_limit: Some(Duration::from_secs(3 * 3600)),
        }];
        queue.recent = (4..=10)
            .map(|tenths| crate::ports::PastJob {
                submitted: now - Duration::from_secs(7200),
                nodes: 8,
                time_limit: Some(Duration::from_secs(1000)),
                run_time: Some(Duration::from_secs(100 * tenths)),
            })
            .collect();
        uncertain.queue = Some(queue);
        let assumptions = DryRunAssumptions {
            boot_time_spread: 0.0,
            ..DryRunAssumptions::default()
        };
        let plan = forecast(uncertain.clone(), &assumptions);
        assert_eq!(plan.samples, 15);
        assert!(
            plan.p10 < plan.estimated_duration && plan.estimated_duration < plan.p90,
            "{plan:#?}"
        );
        // The job ends between 1.2 h and 3 h from its start: the upgrade
        // takes between about 20 minutes and 2 hours.
        assert!(plan.p10 >= Duration::from_secs(15 * 60), "{plan:#?}");
        assert!(plan.p90 <= Duration::from_secs(135 * 60), "{plan:#?}");
        assert!(
            plan.steps[0].done_at_p10 < plan.steps[0].done_at_p90,
            "{plan:#?}"
        );
        assert_eq!(plan, forecast(uncertain, &assumptions));
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

#[cfg(test)]
mod arrival_tests {
    //! Arrivals keep the machine changing; the engine must still move on at its own pace.
    use super::*;
    use crate::ports::{PastJob, PendingJob};
    use crate::rollout::{Order, Strategy};

    #[test]
    fn steady_arrivals_do_not_hold_the_engine_back_between_its_own_steps() {
        // 16 idle nodes, steps of 4, 10-minute boots, and a light load of
        // 2-node jobs every 30 minutes: four boot rounds, about 41 minutes.
        // (Polls deferred to the next arrival once made each step wait for
        // it: 1 h 48 min.)
        let now = Timestamp::from_secs(1_000_000);
        let members: Vec<NodeId> = (0..16)
            .map(|i| NodeId::from(format!("n{i:02}").as_str()))
            .collect();
        let observed: Vec<WorkloadNode> = members
            .iter()
            .map(|node| WorkloadNode {
                node: node.clone(),
                state: WorkloadState::Idle,
                responding: true,
                jobs_end_by: None,
                reason: None,
            })
            .collect();
        let recent = (0..48)
            .map(|i| PastJob {
                submitted: now - Duration::from_secs(1800 * (i + 1)),
                nodes: 2,
                time_limit: Some(Duration::from_secs(1200)),
                run_time: Some(Duration::from_secs(1200)),
            })
            .collect();
        let input = DryRunInput {
            spec: SessionSpec {
                failed_label: "f".into(),
                starting_label: "c".into(),
                upgrade_step_size: 4,
                upgrade_template_id: "i".into(),
                upgrading_label: "u".into(),
                workload_manager_type: "slurm".into(),
                policy: None,
            },
            policy: RolloutPolicy {
                order: Order::DrainCost,
                strategy: Strategy::Continuous,
                ..RolloutPolicy::default()
            },
            members,
            observed,
            now,
            queue: Some(WorkloadQueue {
                recent,
                recent_since: Some(now - Duration::from_secs(24 * 3600)),
                pending: Vec::<PendingJob>::new(),
                ..WorkloadQueue::default()
            }),
            queue_note: None,
            images: Vec::new(),
            images_note: None,
        };
        let plan = forecast(
            input,
            &DryRunAssumptions {
                boot_time: Duration::from_secs(600),
                boot_time_spread: 0.0,
                ..DryRunAssumptions::default()
            },
        );
        let minutes = plan.estimated_duration.as_secs() / 60;
        assert!((40..=45).contains(&minutes), "{minutes} min: {plan:#?}");
        assert!(
            plan.dominated_by.starts_with("boot rounds"),
            "{}",
            plan.dominated_by
        );
    }
}
