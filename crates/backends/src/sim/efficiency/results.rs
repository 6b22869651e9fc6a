//! Every figure of an efficiency run, as written to `efficiency.json`: raw
//! per trace, start point, step and policy, then means and worsts over the
//! start points, and the targets met or not.

use serde::{Deserialize, Serialize};

use super::forecast::{ForecastCheck, ForecastFigures};
use super::lower_bound::LowerBound;
use super::policies::Policy;
use super::simulation::JobFigures;

/// `continuous+drain_cost` makespan at most this times `crus-strict`'s.
pub const MAKESPAN_RATIO_TARGET: f64 = 0.5;
/// `continuous+drain_cost` drained-idle node-hours at most this times `crus-strict`'s.
pub const IDLE_RATIO_TARGET: f64 = 0.25;
/// `continuous+drain_cost` makespan at most this times the lower bound.
pub const LOWER_BOUND_RATIO_TARGET: f64 = 1.3;

/// The whole result of `crus bench efficiency` / `cargo bench --bench efficiency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EfficiencyReport {
    /// Always `"efficiency"`.
    pub benchmark: String,
    /// Where it ran.
    pub machine: Machine,
    /// What was run.
    pub settings: SettingsReport,
    /// What each figure means, in words.
    pub definitions: Definitions,
    /// Per trace, every figure.
    pub traces: Vec<TraceReport>,
    /// Broken invariants (more nodes out than the step, a node rebooted
    /// under a job, a node not upgraded). Empty in a good run.
    pub violations: Vec<String>,
    /// Things that make a figure less meaningful, without being wrong.
    pub warnings: Vec<String>,
    /// Simulated runs (baselines and upgrades).
    pub simulated_runs: usize,
    /// Wall-clock seconds the whole run took (informative only).
    pub wall_time_s: f64,
}

/// The machine the benchmark ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// The CPU model (Linux `/proc/cpuinfo`), or `unknown`.
    pub cpu_model: String,
    /// Worker threads used.
    pub workers: usize,
}

/// The settings, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsReport {
    /// Start points per trace.
    pub start_points: usize,
    /// Step sizes (most nodes out of service at once).
    pub steps: Vec<u32>,
    /// Policy names, in report order.
    pub policies: Vec<String>,
    /// Mean boot time.
    pub boot_time_s: f64,
    /// Boot times vary by up to this fraction either way.
    pub boot_jitter: f64,
    /// A node not back this long after its boot started fails.
    pub boot_timeout_s: f64,
    /// How long each run replays the trace before its start point.
    pub warmup_s: f64,
    /// The window's horizon after the start point.
    pub horizon_s: f64,
    /// Whether this was the `--quick` smoke run.
    pub quick: bool,
}

/// What each figure means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    /// The runs.
    pub runs: String,
    /// The comparison window of the job figures.
    pub window: String,
    /// Makespan.
    pub makespan: String,
    /// Drained-but-idle node-hours.
    pub drained_idle: String,
    /// Added waiting.
    pub added_wait: String,
    /// Bounded slowdown.
    pub slowdown: String,
    /// Max out of service.
    pub max_out_of_service: String,
    /// The lower bound and its derivation.
    pub lower_bound: String,
    /// The targets.
    pub targets: String,
    /// How forecasts are measured, and their targets.
    #[serde(default)]
    pub forecast: String,
}

/// Every figure of one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceReport {
    /// `nasa` or `synthetic`.
    pub trace: String,
    /// One line about it.
    pub description: String,
    /// Cluster size.
    pub nodes: usize,
    /// Per start point, raw figures.
    pub starts: Vec<StartReport>,
    /// Per policy and step, over the start points.
    pub aggregates: Vec<Aggregate>,
    /// Per step, the lower bound over the start points.
    pub lower_bounds: Vec<BoundAggregate>,
    /// Per step, the targets.
    pub targets: Vec<TargetCheck>,
    /// Forecast quality per policy and step.
    #[serde(default)]
    pub forecasts: Vec<ForecastCheck>,
}

/// Raw figures of one start point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartReport {
    /// Seconds from the trace's time zero (SWF submit times count from it).
    pub start_offset_s: f64,
    /// `day D HH:MM` of the trace.
    pub start_label: String,
    /// Nodes running a job at the start point.
    pub busy_nodes_at_start: usize,
    /// Jobs waiting in the queue at the start point.
    pub queued_jobs_at_start: usize,
    /// The no-upgrade baseline's job figures over the window.
    pub baseline: JobFigures,
    /// Per step, the lower bound on makespan.
    pub lower_bounds: Vec<StepBound>,
    /// Per policy and step.
    pub runs: Vec<RunReport>,
}

/// The lower bound for one step size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepBound {
    /// The step size.
    pub step: u32,
    /// The bound and its closed forms.
    pub bound: LowerBound,
}

/// One upgrade run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Policy name.
    pub policy: String,
    /// Step size.
    pub step: u32,
    /// Session creation to its end, seconds.
    pub makespan_s: f64,
    /// Makespan over the lower bound for this start and step.
    pub makespan_over_lower_bound: f64,
    /// Drained, jobless, not booting, integrated over time (node-hours).
    pub drained_idle_node_h: f64,
    /// Drained or booting, integrated over time (node-hours).
    pub out_of_service_node_h: f64,
    /// Where the step's capacity (step × makespan, node-hours) went: boots
    /// (boots × mean boot time).
    pub booting_node_h: f64,
    /// ... taken nodes still running their jobs (out of service, draining):
    /// out of service minus booting minus drained-idle.
    pub draining_node_h: f64,
    /// ... room under the step that held no node (step × makespan minus out
    /// of service): the barrier of `steps`, or nothing worth taking.
    pub unused_step_node_h: f64,
    /// Of the draining: waiting for jobs already running at the start point.
    pub draining_for_prior_jobs_node_h: f64,
    /// Of the draining: waiting for jobs that started on a node after the
    /// start point, before it was taken (the lower bound cannot see these).
    pub draining_for_new_jobs_node_h: f64,
    /// Most nodes out of service at once, as the simulator counted them.
    pub max_out_of_service: usize,
    /// Most nodes out of service and running no job at once (drained and
    /// idle, or booting): what the step bounds under drain ahead.
    #[serde(default)]
    pub max_idle_out_of_service: usize,
    /// Whether the run kept within its step: `max_out_of_service <= step`,
    /// or under drain ahead `max_idle_out_of_service <= step` and
    /// `max_out_of_service <= step + max_draining`.
    pub step_respected: bool,
    /// The window's jobs in this run.
    pub jobs: JobFigures,
    /// Window wait minus the baseline's, node-hours.
    pub added_wait_node_h: f64,
    /// Window wait minus the baseline's, job-hours.
    pub added_wait_job_h: f64,
    /// Mean bounded slowdown minus the baseline's.
    pub added_mean_bounded_slowdown: f64,
    /// Nodes upgraded.
    pub upgraded: usize,
    /// Nodes not upgraded (failed or skipped); 0 in a good run.
    pub not_upgraded: usize,
    /// Boots started.
    pub boots: u64,
    /// Boots of nodes running a job; 0 in a good run.
    pub reboots_with_running_jobs: u64,
    /// Jobs killed; 0 in a good run.
    pub jobs_killed: u64,
    /// The dry run's forecast from the start point and how it compared.
    #[serde(default)]
    pub forecast: Option<ForecastFigures>,
}

/// A figure's mean and worst (largest) over the start points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean over the start points.
    pub mean: f64,
    /// Largest over the start points.
    pub worst: f64,
}

impl Stat {
    /// Mean and largest of `values` (zeros for none).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Stat {
        let values: Vec<f64> = values.into_iter().collect();
        if values.is_empty() {
            return Stat {
                mean: 0.0,
                worst: 0.0,
            };
        }
        Stat {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            worst: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// One policy at one step, over the start points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Policy name.
    pub policy: String,
    /// Step size.
    pub step: u32,
    /// Start points aggregated.
    pub starts: usize,
    /// Makespan, seconds.
    pub makespan_s: Stat,
    /// Makespan over the lower bound.
    pub makespan_over_lower_bound: Stat,
    /// Drained-but-idle node-hours.
    pub drained_idle_node_h: Stat,
    /// Out-of-service node-hours.
    pub out_of_service_node_h: Stat,
    /// Booting node-hours.
    pub booting_node_h: Stat,
    /// Draining node-hours.
    pub draining_node_h: Stat,
    /// Unused step node-hours.
    pub unused_step_node_h: Stat,
    /// Draining for jobs running at the start point, node-hours.
    pub draining_for_prior_jobs_node_h: Stat,
    /// Draining for jobs that started later, node-hours.
    pub draining_for_new_jobs_node_h: Stat,
    /// Added window wait, node-hours.
    pub added_wait_node_h: Stat,
    /// Added window wait, job-hours.
    pub added_wait_job_h: Stat,
    /// Added mean bounded slowdown.
    pub added_mean_bounded_slowdown: Stat,
    /// Most nodes out of service at once, over every start point.
    pub max_out_of_service: usize,
    /// Whether every run kept within the step.
    pub step_respected: bool,
}

/// The lower bound at one step, over the start points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundAggregate {
    /// Step size.
    pub step: u32,
    /// The bound, seconds.
    pub makespan_s: Stat,
}

/// One target: a measured ratio against its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The measured ratio (`None` when the reference is zero).
    pub ratio: Option<f64>,
    /// The largest ratio at any single start point.
    pub worst_start_ratio: Option<f64>,
    /// The limit.
    pub limit: f64,
    /// Whether the ratio is within the limit.
    pub met: bool,
}

impl Check {
    /// `value / reference` against `limit`; a zero reference is met only by a zero value.
    fn ratio(value: f64, reference: f64, limit: f64, worst: Option<f64>) -> Check {
        let ratio = (reference > 0.0).then(|| value / reference);
        Check {
            ratio,
            worst_start_ratio: worst,
            limit,
            met: value <= limit * reference,
        }
    }
}

/// The targets at one step size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetCheck {
    /// Step size.
    pub step: u32,
    /// Mean makespan of `continuous+drain_cost` over `crus-strict`'s.
    pub makespan_vs_crus_strict: Check,
    /// Mean drained-idle node-hours of `continuous+drain_cost` over `crus-strict`'s.
    pub drained_idle_vs_crus_strict: Check,
    /// Mean over start points of `continuous+drain_cost` makespan over the lower bound.
    pub makespan_vs_lower_bound: Check,
    /// Not a target, a reading aid: the makespan ratio over only the start
    /// points with at least half the nodes running jobs (where the policies
    /// can differ at all), and how many there were.
    pub busy_starts: BusyStarts,
}

/// The makespan ratio on the busy start points only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusyStarts {
    /// Start points with at least half the nodes running jobs.
    pub count: usize,
    /// Mean makespan of `continuous+drain_cost` over `crus-strict`'s on them.
    pub makespan_vs_crus_strict: Option<f64>,
}

impl TraceReport {
    /// The aggregate of `policy` at `step`.
    pub fn aggregate(&self, policy: Policy, step: u32) -> Option<&Aggregate> {
        self.aggregates
            .iter()
            .find(|aggregate| aggregate.policy == policy.name() && aggregate.step == step)
    }

    /// Fills `aggregates`, `lower_bounds` and `targets` from `starts`.
    pub(super) fn summarise(&mut self, policies: &[Policy], steps: &[u32]) {
        let runs = |policy: Policy, step: u32| -> Vec<&RunReport> {
            self.starts
                .iter()
                .flat_map(|start| start.runs.iter())
                .filter(|run| run.policy == policy.name() && run.step == step)
                .collect()
        };
        let mut aggregates = Vec::new();
        for &step in steps {
            for &policy in policies {
                let runs = runs(policy, step);
                let stat =
                    |figure: fn(&RunReport) -> f64| Stat::of(runs.iter().map(|run| figure(run)));
                aggregates.push(Aggregate {
                    policy: policy.name().to_string(),
                    step,
                    starts: runs.len(),
                    makespan_s: stat(|run| run.makespan_s),
                    makespan_over_lower_bound: stat(|run| run.makespan_over_lower_bound),
                    drained_idle_node_h: stat(|run| run.drained_idle_node_h),
                    out_of_service_node_h: stat(|run| run.out_of_service_node_h),
                    booting_node_h: stat(|run| run.booting_node_h),
                    draining_node_h: stat(|run| run.draining_node_h),
                    unused_step_node_h: stat(|run| run.unused_step_node_h),
                    draining_for_prior_jobs_node_h: stat(|run| run.draining_for_prior_jobs_node_h),
                    draining_for_new_jobs_node_h: stat(|run| run.draining_for_new_jobs_node_h),
                    added_wait_node_h: stat(|run| run.added_wait_node_h),
                    added_wait_job_h: stat(|run| run.added_wait_job_h),
                    added_mean_bounded_slowdown: stat(|run| run.added_mean_bounded_slowdown),
                    max_out_of_service: runs
                        .iter()
                        .map(|run| run.max_out_of_service)
                        .max()
                        .unwrap_or(0),
                    step_respected: runs.iter().all(|run| run.step_respected),
                });
            }
        }
        self.lower_bounds = steps
            .iter()
            .map(|&step| BoundAggregate {
                step,
                makespan_s: Stat::of(self.starts.iter().flat_map(|start| {
                    start
                        .lower_bounds
                        .iter()
                        .filter(move |bound| bound.step == step)
                        .map(|bound| bound.bound.makespan_s)
                })),
            })
            .collect();
        self.targets = steps
            .iter()
            .filter_map(|&step| {
                let ours = runs(Policy::ContinuousDrainCost, step);
                let crus = runs(Policy::CrusStrict, step);
                if ours.is_empty() || crus.is_empty() {
                    return None;
                }
                let mean = |runs: &[&RunReport], figure: fn(&RunReport) -> f64| {
                    runs.iter().map(|run| figure(run)).sum::<f64>() / runs.len() as f64
                };
                // Per start point, ours over CRUS's (same start, same step).
                let worst_ratio = |figure: fn(&RunReport) -> f64| {
                    ours.iter()
                        .zip(&crus)
                        .filter(|(_, crus)| figure(crus) > 0.0)
                        .map(|(ours, crus)| figure(ours) / figure(crus))
                        .fold(None, |worst: Option<f64>, ratio| {
                            Some(worst.map_or(ratio, |worst| worst.max(ratio)))
                        })
                };
                let over_bound = Stat::of(ours.iter().map(|run| run.makespan_over_lower_bound));
                let busy: Vec<&StartReport> = self
                    .starts
                    .iter()
                    .filter(|start| 2 * start.busy_nodes_at_start >= self.nodes)
                    .collect();
                let busy_makespan = |policy: Policy| -> f64 {
                    busy.iter()
                        .flat_map(|start| start.runs.iter())
                        .filter(|run| run.policy == policy.name() && run.step == step)
                        .map(|run| run.makespan_s)
                        .sum()
                };
                let busy_crus = busy_makespan(Policy::CrusStrict);
                Some(TargetCheck {
                    step,
                    makespan_vs_crus_strict: Check::ratio(
                        mean(&ours, |run| run.makespan_s),
                        mean(&crus, |run| run.makespan_s),
                        MAKESPAN_RATIO_TARGET,
                        worst_ratio(|run| run.makespan_s),
                    ),
                    drained_idle_vs_crus_strict: Check::ratio(
                        mean(&ours, |run| run.drained_idle_node_h),
                        mean(&crus, |run| run.drained_idle_node_h),
                        IDLE_RATIO_TARGET,
                        worst_ratio(|run| run.drained_idle_node_h),
                    ),
                    makespan_vs_lower_bound: Check {
                        ratio: Some(over_bound.mean),
                        worst_start_ratio: Some(over_bound.worst),
                        limit: LOWER_BOUND_RATIO_TARGET,
                        met: over_bound.mean <= LOWER_BOUND_RATIO_TARGET,
                    },
                    busy_starts: BusyStarts {
                        count: busy.len(),
                        makespan_vs_crus_strict: (busy_crus > 0.0)
                            .then(|| busy_makespan(Policy::ContinuousDrainCost) / busy_crus),
                    },
                })
            })
            .collect();
        self.aggregates = aggregates;
        self.forecasts = steps
            .iter()
            .flat_map(|&step| policies.iter().map(move |&policy| (policy, step)))
            .map(|(policy, step)| {
                let figures: Vec<&ForecastFigures> = runs(policy, step)
                    .into_iter()
                    .filter_map(|run| run.forecast.as_ref())
                    .collect();
                super::forecast::check(policy.name(), step, &figures)
            })
            .collect();
    }
}
