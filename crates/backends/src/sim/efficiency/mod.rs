//! The rollout-efficiency benchmark (issue 7, part 1): replays a job trace in
//! the simulator, in virtual time, and upgrades the whole cluster from many
//! start points under CRUS's own policy and crus's, measuring what each
//! costs the machine's users.
//!
//! Both `cargo bench -p crus-backends --bench efficiency` and
//! `crus bench efficiency` call [`run`]; they differ only in how they parse
//! their arguments. A run is deterministic: same settings, same figures.
//!
//! For every trace and start point there is one no-upgrade baseline and one
//! upgrade run per policy and step size. Every run builds the cluster
//! [`EfficiencySettings::warmup`] before its start point (the simulator
//! starts empty), replays the trace to the start point, then (upgrade runs)
//! creates a session of the whole `compute` group and lets the real
//! [`Controller`](crus_core::controller::Controller) drive it, and finally
//! replays on until every job of the comparison window has started. The
//! figures and the targets are defined in [`Definitions`], which the output
//! carries.
//!
//! The simulated runs need a tokio runtime with a paused clock, which needs
//! tokio's `test-util` feature; this library does not turn that on for every
//! user of the crate, so the caller passes a [`RuntimeFactory`] that builds
//! one (`tokio::runtime::Builder::new_current_thread().enable_time()
//! .start_paused(true).build()`).

mod baseline;
mod forecast;
mod ledger;
mod lower_bound;
mod policies;
mod results;
mod simulation;
mod step_check;
mod table;
#[cfg(test)]
mod tests;
mod traces;
mod upgrade;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use forecast::{
    FORECAST_COVERAGE_TARGET, FORECAST_ERROR_TARGET, ForecastCheck, ForecastFigures,
};
pub use lower_bound::{DERIVATION as LOWER_BOUND_DERIVATION, LowerBound, makespan_lower_bound};
pub use policies::Policy;
pub use results::{
    Aggregate, BoundAggregate, BusyStarts, Check, Definitions, EfficiencyReport, IDLE_RATIO_TARGET,
    LOWER_BOUND_RATIO_TARGET, MAKESPAN_RATIO_TARGET, Machine, RunReport, SettingsReport,
    StartReport, Stat, StepBound, TargetCheck, TraceReport,
};
pub use simulation::JobFigures;
pub use traces::TraceChoice;

use super::{SwfError, SyntheticWorkload};
use baseline::BaselineRun;
use simulation::RunSetup;
use traces::LoadedTrace;
use upgrade::UpgradeRun;

/// Builds a tokio runtime whose clock is paused (see the module documentation).
pub type RuntimeFactory = dyn Fn() -> std::io::Result<tokio::runtime::Runtime> + Sync;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct EfficiencySettings {
    /// The traces to replay.
    pub traces: Vec<TraceChoice>,
    /// Start points per trace, spread evenly over it (at least 10 for the
    /// real run; the same for every policy).
    pub start_points: usize,
    /// Step sizes.
    pub steps: Vec<u32>,
    /// Policies compared; the targets need `crus-strict` and `continuous+drain_cost`.
    pub policies: Vec<Policy>,
    /// Mean boot time of a node (10 minutes).
    pub boot_time: Duration,
    /// Boot times vary uniformly by this fraction either way (0: exact).
    pub boot_jitter: f64,
    /// A node not back this long after its boot started fails (30 minutes).
    pub boot_timeout: Duration,
    /// How long the trace is replayed before each start point, so the
    /// cluster is as busy as the trace makes it (24 hours).
    pub warmup: Duration,
    /// The comparison window's horizon: jobs submitted up to this long after
    /// the start point are compared (48 hours).
    pub horizon: Duration,
    /// The synthetic trace.
    pub synthetic: SyntheticWorkload,
    /// Seed of the simulator's draws (boot durations).
    pub seed: u64,
    /// Worker threads (each runs one simulated run at a time).
    pub workers: usize,
    /// Whether this is the `--quick` smoke run (recorded in the output).
    pub quick: bool,
}

impl EfficiencySettings {
    /// The full benchmark on `traces`: 12 start points, steps 8, 16 and 32,
    /// every policy, 10-minute boots.
    pub fn full(traces: Vec<TraceChoice>) -> Self {
        EfficiencySettings {
            traces,
            start_points: 12,
            steps: vec![8, 16, 32],
            policies: Policy::ALL.to_vec(),
            boot_time: Duration::from_secs(10 * 60),
            boot_jitter: 0.0,
            boot_timeout: Duration::from_secs(30 * 60),
            warmup: Duration::from_secs(24 * 3600),
            horizon: Duration::from_secs(48 * 3600),
            synthetic: SyntheticWorkload {
                nodes: 128,
                utilisation: 0.85,
                seed: 7,
                duration: Duration::from_secs(30 * 24 * 3600),
            },
            seed: 1,
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            quick: false,
        }
    }

    /// A smoke run: the same on 2 start points of a 6-day synthetic trace
    /// (when synthetic is chosen) with a 24-hour window.
    pub fn quick(traces: Vec<TraceChoice>) -> Self {
        let full = EfficiencySettings::full(traces);
        EfficiencySettings {
            start_points: 2,
            horizon: Duration::from_secs(24 * 3600),
            synthetic: SyntheticWorkload {
                duration: Duration::from_secs(6 * 24 * 3600),
                ..full.synthetic.clone()
            },
            quick: true,
            ..full
        }
    }
}

/// Why the benchmark could not run. Broken invariants are not errors: they
/// are reported in [`EfficiencyReport::violations`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EfficiencyError {
    /// The bundled trace could not be read.
    #[error("cannot read the trace: {0}")]
    Trace(#[source] SwfError),
    /// A runtime for a simulated run could not be built.
    #[error("cannot start an async runtime for a simulated run: {0}")]
    Runtime(#[source] std::io::Error),
    /// The simulator or the controller failed.
    #[error("{context}: {error}")]
    Simulation {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        error: crus_core::Error,
    },
    /// A figure could not be measured as defined (window too short, a job
    /// start unobserved, runs that should be identical are not).
    #[error("{0}")]
    Measurement(String),
    /// The results could not be written.
    #[error("cannot write {path}: {error}")]
    Output {
        /// The file.
        path: String,
        /// The error.
        #[source]
        error: std::io::Error,
    },
}

impl EfficiencyError {
    fn simulation(context: &str, error: crus_core::Error) -> Self {
        EfficiencyError::Simulation {
            context: context.to_string(),
            error,
        }
    }
}

/// What one simulated run is.
#[derive(Debug, Clone, Copy)]
enum CaseKind {
    /// No upgrade.
    Baseline,
    /// An upgrade under `policy` at `step`.
    Upgrade {
        /// The policy.
        policy: Policy,
        /// The step size.
        step: u32,
    },
}

/// One simulated run to make.
#[derive(Debug, Clone)]
struct Case {
    /// Index into the loaded traces.
    trace: usize,
    /// Index into that trace's start points.
    start: usize,
    /// What to run.
    kind: CaseKind,
    /// How.
    setup: RunSetup,
}

/// What one simulated run gave.
#[derive(Debug, Clone)]
enum CaseOutput {
    Baseline(BaselineRun),
    Upgrade(Box<UpgradeRun>),
}

/// Runs the benchmark: every simulated run on `settings.workers` threads,
/// each on a runtime from `new_runtime`, calling `progress(done, total)`
/// after each. Returns every figure; see [`EfficiencyReport`].
pub fn run(
    settings: &EfficiencySettings,
    new_runtime: &RuntimeFactory,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<EfficiencyReport, EfficiencyError> {
    let wall = Instant::now();
    let loaded: Vec<LoadedTrace> = settings
        .traces
        .iter()
        .map(|choice| traces::load(choice, &settings.synthetic))
        .collect::<Result<_, _>>()?;
    let mut starts: Vec<Vec<Duration>> = Vec::new();
    let mut cases = Vec::new();
    for (trace_index, trace) in loaded.iter().enumerate() {
        let points = traces::start_points(
            &trace.jobs,
            settings.start_points,
            settings.warmup,
            settings.horizon,
        )?;
        for (start_index, &start) in points.iter().enumerate() {
            let setup = RunSetup {
                jobs: trace.jobs.clone(),
                nodes: trace.nodes,
                start,
                warmup: settings.warmup,
                horizon: settings.horizon,
                boot_time: settings.boot_time,
                boot_jitter: settings.boot_jitter,
                seed: settings.seed,
            };
            let kinds = std::iter::once(CaseKind::Baseline).chain(settings.steps.iter().flat_map(
                |&step| {
                    settings
                        .policies
                        .iter()
                        .map(move |&policy| CaseKind::Upgrade { policy, step })
                },
            ));
            cases.extend(kinds.map(|kind| Case {
                trace: trace_index,
                start: start_index,
                kind,
                setup: setup.clone(),
            }));
        }
        starts.push(points);
    }

    let outputs = run_cases(&cases, settings, new_runtime, progress)?;
    let mut report = assemble(settings, &loaded, &starts, &cases, outputs)?;
    report.wall_time_s = wall.elapsed().as_secs_f64();
    Ok(report)
}

/// Runs every case on the worker threads; outputs in case order.
fn run_cases(
    cases: &[Case],
    settings: &EfficiencySettings,
    new_runtime: &RuntimeFactory,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<CaseOutput>, EfficiencyError> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let outputs: Mutex<Vec<Option<Result<CaseOutput, EfficiencyError>>>> =
        Mutex::new((0..cases.len()).map(|_| None).collect());
    let workers = settings.workers.clamp(1, cases.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= cases.len() || failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let output = run_case(&cases[index], settings, new_runtime);
                    if output.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    outputs
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[index] = Some(output);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, cases.len());
                }
            });
        }
    });
    let outputs = outputs
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut results = Vec::with_capacity(cases.len());
    for output in outputs {
        match output {
            Some(Ok(output)) => results.push(output),
            Some(Err(error)) => return Err(error),
            // Only left undone after another case failed, which returned above.
            None => {
                return Err(EfficiencyError::Measurement(
                    "a simulated run was not made".to_string(),
                ));
            }
        }
    }
    Ok(results)
}

fn run_case(
    case: &Case,
    settings: &EfficiencySettings,
    new_runtime: &RuntimeFactory,
) -> Result<CaseOutput, EfficiencyError> {
    let runtime = new_runtime().map_err(EfficiencyError::Runtime)?;
    runtime.block_on(async {
        match case.kind {
            CaseKind::Baseline => baseline::run_baseline(&case.setup)
                .await
                .map(CaseOutput::Baseline),
            CaseKind::Upgrade { policy, step } => {
                upgrade::run_upgrade(&case.setup, policy, step, settings.boot_timeout)
                    .await
                    .map(|run| CaseOutput::Upgrade(Box::new(run)))
            }
        }
    })
}

/// Puts the outputs together into the report.
fn assemble(
    settings: &EfficiencySettings,
    loaded: &[LoadedTrace],
    starts: &[Vec<Duration>],
    cases: &[Case],
    outputs: Vec<CaseOutput>,
) -> Result<EfficiencyReport, EfficiencyError> {
    let hours = |seconds: f64| seconds / 3600.0;
    let shortest_boot = settings
        .boot_time
        .mul_f64(1.0 - settings.boot_jitter.clamp(0.0, 1.0));
    let mut violations = Vec::new();
    let mut warnings = Vec::new();
    let mut trace_reports = Vec::new();
    for (trace_index, trace) in loaded.iter().enumerate() {
        let mut start_reports = Vec::new();
        for (start_index, &start) in starts[trace_index].iter().enumerate() {
            let label = traces::label(start);
            let here = |case: &Case| case.trace == trace_index && case.start == start_index;
            let mut baseline = None;
            let mut upgrades = Vec::new();
            for (case, output) in cases.iter().zip(&outputs) {
                if !here(case) {
                    continue;
                }
                match (case.kind, output) {
                    (CaseKind::Baseline, CaseOutput::Baseline(run)) => baseline = Some(run),
                    (CaseKind::Upgrade { policy, step }, CaseOutput::Upgrade(run)) => {
                        upgrades.push((policy, step, run));
                    }
                    _ => {
                        return Err(EfficiencyError::Measurement(
                            "a simulated run gave the wrong kind of result".to_string(),
                        ));
                    }
                }
            }
            let baseline = baseline.ok_or_else(|| {
                EfficiencyError::Measurement(format!(
                    "{} {label}: no baseline run",
                    trace.choice.name()
                ))
            })?;
            let lower_bounds: Vec<StepBound> = settings
                .steps
                .iter()
                .map(|&step| StepBound {
                    step,
                    bound: makespan_lower_bound(
                        &baseline.snapshot.job_ends,
                        step as usize,
                        shortest_boot,
                    ),
                })
                .collect();
            let mut runs = Vec::new();
            for (policy, step, run) in upgrades {
                let context = format!(
                    "{} {label}, {} at step {step}",
                    trace.choice.name(),
                    policy.name()
                );
                if run.snapshot != baseline.snapshot {
                    return Err(EfficiencyError::Measurement(format!(
                        "{context}: the cluster at the start point differs from the baseline's; \
                         the simulation is not deterministic, so no comparison holds"
                    )));
                }
                let bound = lower_bounds
                    .iter()
                    .find(|bound| bound.step == step)
                    .map_or(0.0, |bound| bound.bound.makespan_s);
                let makespan_s = run.makespan.as_secs_f64();
                let out_of_service_node_h = hours(run.at_finish.out_of_service_node_s);
                let drained_idle_node_h = hours(run.at_finish.drained_idle_node_s);
                let booting_node_h =
                    hours(run.at_finish.boots as f64 * settings.boot_time.as_secs_f64());
                let step_exceeded = step_check::step_exceeded(
                    policy,
                    step,
                    step_check::OutOfService {
                        all: run.at_finish.max_out_of_service,
                        running_nothing: run.at_finish.max_idle_out_of_service,
                    },
                );
                let report = RunReport {
                    policy: policy.name().to_string(),
                    step,
                    makespan_s,
                    makespan_over_lower_bound: if bound > 0.0 { makespan_s / bound } else { 1.0 },
                    drained_idle_node_h,
                    out_of_service_node_h,
                    booting_node_h,
                    draining_node_h: (out_of_service_node_h - booting_node_h - drained_idle_node_h)
                        .max(0.0),
                    unused_step_node_h: (f64::from(step) * hours(makespan_s)
                        - out_of_service_node_h)
                        .max(0.0),
                    draining_for_prior_jobs_node_h: hours(run.drain_wait_prior_node_s),
                    draining_for_new_jobs_node_h: hours(run.drain_wait_new_node_s),
                    max_out_of_service: run.at_finish.max_out_of_service,
                    max_idle_out_of_service: run.at_finish.max_idle_out_of_service,
                    step_respected: step_exceeded.is_none(),
                    jobs: run.jobs,
                    added_wait_node_h: run.jobs.wait_node_h - baseline.jobs.wait_node_h,
                    added_wait_job_h: run.jobs.wait_job_h - baseline.jobs.wait_job_h,
                    added_mean_bounded_slowdown: run.jobs.mean_bounded_slowdown
                        - baseline.jobs.mean_bounded_slowdown,
                    upgraded: run.upgraded,
                    not_upgraded: run.not_upgraded,
                    boots: run.at_finish.boots,
                    reboots_with_running_jobs: run.at_finish.reboots_with_running_jobs,
                    jobs_killed: run.at_finish.jobs_killed,
                    forecast: Some(run.forecast.clone()),
                };
                if let Some(why) = step_exceeded {
                    violations.push(format!("{context}: {why}"));
                }
                if report.reboots_with_running_jobs > 0 || report.jobs_killed > 0 {
                    violations.push(format!(
                        "{context}: {} boots of nodes running jobs, {} jobs killed",
                        report.reboots_with_running_jobs, report.jobs_killed
                    ));
                }
                if report.not_upgraded > 0 {
                    violations.push(format!(
                        "{context}: {} nodes not upgraded",
                        report.not_upgraded
                    ));
                }
                if run.makespan > settings.horizon {
                    warnings.push(format!(
                        "{context}: the upgrade took {:.1} h, longer than the {:.0} h window, so \
                         jobs submitted after the window that it delayed are not counted",
                        hours(makespan_s),
                        hours(settings.horizon.as_secs_f64())
                    ));
                }
                runs.push(report);
            }
            start_reports.push(StartReport {
                start_offset_s: start.as_secs_f64(),
                start_label: label,
                busy_nodes_at_start: baseline.snapshot.busy_nodes,
                queued_jobs_at_start: baseline.snapshot.queued.len(),
                baseline: baseline.jobs,
                lower_bounds,
                runs,
            });
        }
        let mut trace_report = TraceReport {
            trace: trace.choice.name(),
            description: trace.description.clone(),
            nodes: trace.nodes,
            starts: start_reports,
            aggregates: Vec::new(),
            lower_bounds: Vec::new(),
            targets: Vec::new(),
            forecasts: Vec::new(),
        };
        trace_report.summarise(&settings.policies, &settings.steps);
        trace_reports.push(trace_report);
    }
    Ok(EfficiencyReport {
        benchmark: "efficiency".to_string(),
        machine: Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: cpu_model(),
            workers: settings.workers,
        },
        settings: SettingsReport {
            start_points: settings.start_points,
            steps: settings.steps.clone(),
            policies: settings
                .policies
                .iter()
                .map(|policy| policy.name().to_string())
                .collect(),
            boot_time_s: settings.boot_time.as_secs_f64(),
            boot_jitter: settings.boot_jitter,
            boot_timeout_s: settings.boot_timeout.as_secs_f64(),
            warmup_s: settings.warmup.as_secs_f64(),
            horizon_s: settings.horizon.as_secs_f64(),
            quick: settings.quick,
        },
        definitions: definitions(settings),
        traces: trace_reports,
        violations,
        warnings,
        simulated_runs: cases.len(),
        wall_time_s: 0.0,
    })
}

/// The CPU model from `/proc/cpuinfo`, or `unknown` elsewhere.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn definitions(settings: &EfficiencySettings) -> Definitions {
    let hours = |duration: Duration| duration.as_secs_f64() / 3600.0;
    Definitions {
        runs: format!(
            "Per trace, {} start points spread evenly over the trace (the midpoints of equal \
             slices, after {:.0} h of trace and before the last {:.0} h). Each run builds the \
             simulated cluster {:.0} h before its start point (the simulator starts empty) and \
             replays the trace to it, so every run of one start point sees the same cluster \
             there (checked). Upgrade runs then create a session of all nodes and let the \
             controller drive it; the baseline does nothing. Boots take {:.0} min (jitter \
             {:.0}%); jobs are scheduled FCFS with EASY backfilling on the lowest free nodes.",
            settings.start_points,
            hours(settings.warmup),
            hours(settings.horizon),
            hours(settings.warmup),
            settings.boot_time.as_secs_f64() / 60.0,
            settings.boot_jitter * 100.0
        ),
        window: format!(
            "The jobs compared at a start point s are those waiting in the queue at s plus \
             those submitted in [s, s + {:.0} h). The set is the same in the baseline and every \
             upgrade run (their histories are identical up to s); every run continues until \
             all of them have started, and each job's wait is counted in full, from its \
             submission to its start.",
            hours(settings.horizon)
        ),
        makespan: "From the session's creation at the start point to its end (every node \
                   upgraded and back in service, groups cleaned up)."
            .to_string(),
        drained_idle: "Node-hours during which a node was drained by the upgrade, ran no job \
                       and was not booting: capacity the upgrade held idle."
            .to_string(),
        added_wait: "Over the window's jobs, the sum of nodes x wait (node-hours; also plain \
                     job-hours) in the upgrade run minus the same sum in the no-upgrade \
                     baseline from the same start point."
            .to_string(),
        slowdown: "Mean over the window's jobs of the bounded slowdown max(1, (wait + run) / \
                   max(run, 10 s)); 'added' is the upgrade run's mean minus the baseline's."
            .to_string(),
        max_out_of_service: "The most nodes drained, draining or booting at once, as the \
                             simulator counted them; must never exceed the step (checked, \
                             violations listed). Under drain_ahead the step bounds the nodes \
                             out of service and running nothing (max_idle_out_of_service), \
                             and all of them are at most the step plus max_draining (the \
                             step size here)."
            .to_string(),
        lower_bound: lower_bound::DERIVATION.to_string(),
        targets: format!(
            "At every step size, continuous+drain_cost against crus-strict: mean makespan <= \
             {MAKESPAN_RATIO_TARGET} x, mean drained-idle node-hours <= {IDLE_RATIO_TARGET} x \
             (means over the start points), and the mean over start points of its makespan over \
             the lower bound <= {LOWER_BOUND_RATIO_TARGET}."
        ),
        forecast: format!(
            "Before each upgrade run the dry run forecasts it from the same state (nodes, \
             running jobs, queue and the last 24 h of submissions the simulated workload manager \
             reports; the trace's future jobs hidden), with the bench's boot time and jitter as \
             its boot assumption. Targets, for every trace, policy and step: median over the \
             start points of |forecast median - actual makespan| / actual <= {:.0}%, and the \
             actual inside the forecast's p10-p90 at >= {:.0}% of the start points.",
            FORECAST_ERROR_TARGET * 100.0,
            FORECAST_COVERAGE_TARGET * 100.0
        ),
    }
}
