//! One simulated run from a start point, shared by the no-upgrade baseline
//! and the upgrade runs: the cluster warms up on the trace, the state at the
//! start point is recorded, and after whatever happens from there the run
//! continues until every job of the comparison window has started.
//!
//! Runs of the same trace and start point are identical up to the start
//! point (same configuration, nothing acts on the cluster before it), which
//! [`StartSnapshot`] lets the caller check.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crus_core::Timestamp;
use crus_core::clock::{Clock, TokioClock};

use super::super::{SimCluster, SimConfig, SimReport, TraceJob, Workload};
use super::EfficiencyError;
use super::ledger::Observer;

/// The timestamp every run's clock starts at (any fixed time; fixed keeps
/// runs identical).
const SIMULATION_EPOCH: Timestamp = Timestamp::from_secs(1_798_761_600);

/// How far past the window's end a run may go for the window's jobs to
/// start; a queue that has not cleared by then means the load is unstable.
const TAIL_LIMIT: Duration = Duration::from_secs(14 * 24 * 3600);

/// What a run is made from.
#[derive(Debug, Clone)]
pub(super) struct RunSetup {
    /// The trace's jobs (submit times from the trace's start).
    pub jobs: Arc<Vec<TraceJob>>,
    /// Cluster size.
    pub nodes: usize,
    /// Where in the trace the upgrade starts.
    pub start: Duration,
    /// How long the cluster runs before the start point.
    pub warmup: Duration,
    /// Jobs submitted up to this long after the start point are compared.
    pub horizon: Duration,
    /// Mean boot time.
    pub boot_time: Duration,
    /// Spread of boot times (0: every boot takes `boot_time`).
    pub boot_jitter: f64,
    /// Seed of the simulator's draws.
    pub seed: u64,
}

/// The cluster at the start point.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StartSnapshot {
    /// The simulated time of the start point.
    pub at: Timestamp,
    /// Per node, in node order: how long after the start point its running
    /// job ends (its real run time), zero when idle.
    pub job_ends: Vec<Duration>,
    /// Nodes running a job.
    pub busy_nodes: usize,
    /// Trace numbers of the jobs waiting in the queue.
    pub queued: BTreeSet<u64>,
    /// How many jobs the window holds: those queued, those submitted at
    /// the start point that started at once, and those submitted later
    /// within the horizon.
    pub window_jobs: usize,
}

/// The compared jobs' waits and slowdowns in one run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobFigures {
    /// Jobs in the window.
    pub jobs: usize,
    /// Sum over them of nodes × wait, in node-hours.
    pub wait_node_h: f64,
    /// Sum of their waits, in job-hours.
    pub wait_job_h: f64,
    /// Mean bounded slowdown: `max(1, (wait + run) / max(run, 10 s))`.
    pub mean_bounded_slowdown: f64,
}

/// Jobs shorter than this count as this long in the bounded slowdown, so a
/// few seconds of wait do not make a huge slowdown of a tiny job (the
/// customary threshold of the Parallel Workloads Archive literature).
const SLOWDOWN_THRESHOLD: Duration = Duration::from_secs(10);

/// A running simulation, past its warm-up.
pub(super) struct Simulation {
    /// The cluster.
    pub cluster: SimCluster,
    /// Its clock (tokio's, paused).
    pub clock: Arc<TokioClock>,
    /// Watches the jobs.
    pub observer: Observer,
    /// The observer's task, aborted when the run ends.
    watcher: tokio::task::JoinHandle<()>,
    /// The start point.
    pub snapshot: StartSnapshot,
    /// Jobs submitted before this are compared only if queued at the start.
    window_end: Timestamp,
}

impl Drop for Simulation {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Simulation {
    /// Builds the cluster `warmup` before the start point, runs it to the
    /// start point and records it there. Must run on a runtime with a paused
    /// clock.
    pub async fn start(setup: &RunSetup) -> Result<Simulation, EfficiencyError> {
        let from = setup.start.saturating_sub(setup.warmup);
        // Jobs submitted after the window may still delay the window's jobs
        // (by backfilling), so they are kept, up to the tail limit.
        let until = setup.start + setup.horizon + TAIL_LIMIT;
        let jobs: Vec<TraceJob> = setup
            .jobs
            .iter()
            .filter(|job| job.submit >= from && job.submit < until)
            .cloned()
            .collect();
        let config = SimConfig {
            nodes: setup.nodes,
            seed: setup.seed,
            workload: Workload::Jobs(jobs),
            trace_offset: from,
            boot_time: setup.boot_time,
            boot_jitter: setup.boot_jitter,
            ..SimConfig::default()
        };
        let clock = Arc::new(TokioClock::starting_at(SIMULATION_EPOCH));
        let cluster = SimCluster::new(config, clock.clone() as Arc<dyn Clock>)
            .map_err(|error| EfficiencyError::simulation("building the cluster", error))?;
        let observer = Observer::new(cluster.clone());
        let watcher = tokio::spawn(observer.clone().watch(clock.clone()));

        tokio::time::sleep(setup.start - from).await;
        let snapshot = snapshot(&cluster, setup.horizon);
        let window_end = snapshot.at + setup.horizon;
        Ok(Simulation {
            cluster,
            clock,
            observer,
            watcher,
            snapshot,
            window_end,
        })
    }

    /// Whether a job submitted at `submitted` with trace number `trace_id`
    /// is in the window: queued at the start point, or submitted within the
    /// horizon after it.
    fn in_window(&self, trace_id: Option<u64>, submitted: Timestamp) -> bool {
        trace_id.is_some_and(|id| self.snapshot.queued.contains(&id))
            || (submitted >= self.snapshot.at && submitted < self.window_end)
    }

    /// Runs on until every job of the window has started, checks that the
    /// ledger saw every job the simulator started, and returns the window's
    /// figures with the simulator's report at the end.
    pub async fn finish(self) -> Result<(JobFigures, SimReport), EfficiencyError> {
        let expected = self.snapshot.window_jobs;
        let limit = self.window_end + TAIL_LIMIT;
        if self.clock.now() < self.window_end {
            tokio::time::sleep(self.clock.until(self.window_end)).await;
        }
        loop {
            self.observer.observe();
            let started = self
                .observer
                .jobs()
                .values()
                .filter(|job| self.in_window(job.trace_id, job.submitted))
                .count();
            if started >= expected {
                break;
            }
            if self.clock.now() >= limit {
                return Err(EfficiencyError::Measurement(format!(
                    "only {started} of the {expected} jobs of the window had started {} after its end; \
                     the load is more than the cluster can serve",
                    whole_days(TAIL_LIMIT)
                )));
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let report = self.cluster.report();
        let jobs = self.observer.jobs();
        if jobs.len() as u64 != report.jobs_started {
            return Err(EfficiencyError::Measurement(format!(
                "the job ledger saw {} job starts but the simulator counts {}: a job started and \
                 ended unobserved",
                jobs.len(),
                report.jobs_started
            )));
        }
        let window: Vec<_> = jobs
            .values()
            .filter(|job| self.in_window(job.trace_id, job.submitted))
            .collect();
        if window.len() != expected {
            return Err(EfficiencyError::Measurement(format!(
                "{} jobs of the window started, but it holds {expected}",
                window.len()
            )));
        }
        let hours = |seconds: f64| seconds / 3600.0;
        let wait_node_s: f64 = window
            .iter()
            .map(|job| job.nodes.len() as f64 * job.wait().as_secs_f64())
            .sum();
        let wait_job_s: f64 = window.iter().map(|job| job.wait().as_secs_f64()).sum();
        let slowdowns: f64 = window
            .iter()
            .map(|job| {
                let run = job.run_time.unwrap_or(Duration::ZERO);
                let slowdown =
                    (job.wait() + run).as_secs_f64() / run.max(SLOWDOWN_THRESHOLD).as_secs_f64();
                slowdown.max(1.0)
            })
            .sum();
        let figures = JobFigures {
            jobs: window.len(),
            wait_node_h: hours(wait_node_s),
            wait_job_h: hours(wait_job_s),
            mean_bounded_slowdown: if window.is_empty() {
                1.0
            } else {
                slowdowns / window.len() as f64
            },
        };
        Ok((figures, report))
    }
}

fn whole_days(duration: Duration) -> String {
    format!("{} days", duration.as_secs() / 86_400)
}

/// The cluster as it is now, the start point.
fn snapshot(cluster: &SimCluster, horizon: Duration) -> StartSnapshot {
    let model = cluster.lock();
    let now = model.now;
    let job_ends = model
        .nodes
        .iter()
        .map(|node| {
            node.job
                .and_then(|job| model.running.get(&job))
                .map_or(Duration::ZERO, |running| match running.job.run_time {
                    Some(run_time) => (running.started + run_time).saturating_since(now),
                    // A job that never ends: no upgrade ever finishes.
                    None => Duration::MAX,
                })
        })
        .collect();
    let busy_nodes = model.nodes.iter().filter(|node| node.job.is_some()).count();
    let queued: BTreeSet<u64> = model.queue.iter().filter_map(|job| job.trace_id).collect();
    let window_end = now + horizon;
    let started_at_once = model
        .running
        .values()
        .filter(|running| running.job.submitted >= now)
        .count();
    let arriving = model.arrivals[model.next_arrival.min(model.arrivals.len())..]
        .iter()
        .filter(|job| job.submitted < window_end)
        .count();
    StartSnapshot {
        at: now,
        job_ends,
        busy_nodes,
        window_jobs: queued.len() + started_at_once + arriving,
        queued,
    }
}
