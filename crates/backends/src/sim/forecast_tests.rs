//! The dry run's forecast against what the simulated cluster then does
//! (issue 27): the forecast reads the simulator's queue and recent past
//! through the workload manager port, never the trace's future jobs.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use crus_core::clock::{Clock, TokioClock};
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::dry_run::{DryRun, DryRunAssumptions, forecast};
use crus_core::ports::WorkloadManager;
use crus_core::rollout::{Order, RolloutPolicy, Strategy};
use crus_core::store::{MemoryStore, SessionStore};
use crus_core::{SessionSpec, Timestamp};

use super::*;

const EPOCH: Timestamp = Timestamp::from_secs(1_700_000_000);
const BOOT: Duration = Duration::from_secs(600);

fn job(id: u64, submit_s: u64, nodes: u32, run_s: u64) -> TraceJob {
    TraceJob {
        id,
        submit: Duration::from_secs(submit_s),
        run_time: Duration::from_secs(run_s),
        nodes,
        requested_time: Duration::from_secs(run_s),
    }
}

fn spec(step: u32) -> SessionSpec {
    SessionSpec {
        failed_label: "crus-failed".into(),
        starting_label: "compute".into(),
        upgrade_step_size: step,
        upgrade_template_id: "compute-image".into(),
        upgrading_label: "crus-upgrading".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    }
}

/// Builds `config`'s cluster, runs it `start` into its jobs, asks the dry
/// run for a forecast of an upgrade at `step` under `policy`, then runs that
/// upgrade: the forecast and the actual makespan.
async fn forecast_then_run(
    config: SimConfig,
    start: Duration,
    step: u32,
    policy: RolloutPolicy,
) -> (DryRun, Duration) {
    let clock = Arc::new(TokioClock::starting_at(EPOCH));
    let cluster = SimCluster::new(config, clock.clone() as Arc<dyn Clock>).unwrap();
    tokio::time::sleep(start).await;
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let controller = Controller::new(
        cluster.ports(),
        store,
        clock.clone() as Arc<dyn Clock>,
        ControllerConfig::default(),
    );
    let input = controller
        .prepare_dry_run(spec(step), &policy)
        .await
        .unwrap();
    let assumptions = DryRunAssumptions {
        boot_time: BOOT,
        boot_time_spread: 0.0,
        ..DryRunAssumptions::default()
    };
    let plan = forecast(input, &assumptions);
    let started = clock.now();
    let status = controller.create_session(spec(step), policy).await.unwrap();
    controller.drive(status.upgrade_id).await.unwrap();
    (plan, clock.now().saturating_since(started))
}

fn hours(duration: Duration) -> f64 {
    duration.as_secs_f64() / 3600.0
}

/// Within `share` of `actual`.
fn close(forecast: Duration, actual: Duration, share: f64) -> bool {
    (forecast.as_secs_f64() - actual.as_secs_f64()).abs() <= share * actual.as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn the_simulated_workload_manager_reports_its_queue_and_past_not_its_future() {
    let clock = Arc::new(TokioClock::starting_at(EPOCH));
    let cluster = SimCluster::new(
        SimConfig {
            nodes: 4,
            workload: Workload::Jobs(vec![
                job(1, 0, 2, 600),
                job(2, 0, 4, 3600),
                job(3, 60, 1, 60),
                job(4, 7200, 1, 60),
            ]),
            ..SimConfig::default()
        },
        clock as Arc<dyn Clock>,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(300)).await;
    let queue = cluster.queue().await.unwrap();
    // Job 1 runs on 2 nodes; job 3 backfilled and ended; job 2 waits.
    assert_eq!(queue.running.len(), 1);
    assert_eq!(queue.running[0].nodes.len(), 2);
    assert_eq!(queue.running[0].time_limit, Some(Duration::from_secs(600)));
    assert_eq!(queue.pending.len(), 1);
    assert_eq!(queue.pending[0].nodes, 4);
    assert_eq!(queue.pending[0].time_limit, Some(Duration::from_secs(3600)));
    assert_eq!(queue.recent_since, Some(EPOCH));
    // Job 4 is still to be submitted: it is not shown.
    assert_eq!(queue.recent.len(), 3);
    let run_times: Vec<Option<Duration>> = queue.recent.iter().map(|job| job.run_time).collect();
    assert_eq!(run_times, [None, None, Some(Duration::from_secs(60))]);
}

#[tokio::test(start_paused = true)]
async fn a_queue_of_wide_jobs_lengthens_the_forecast_as_it_lengthens_the_run() {
    // 16 nodes; half run a job for another hour when the upgrade starts.
    let busy = vec![job(1, 0, 8, 3660)];
    let mut queued = busy.clone();
    // Two jobs as wide as the cluster, waiting for the busy half: each takes
    // every node for two hours as soon as the upgrade gives them back.
    queued.push(job(2, 30, 16, 7200));
    queued.push(job(3, 40, 16, 7200));
    let config = |jobs| SimConfig {
        nodes: 16,
        workload: Workload::Jobs(jobs),
        boot_time: BOOT,
        boot_jitter: 0.0,
        ..SimConfig::default()
    };
    let policy = RolloutPolicy {
        boot_timeout: Duration::from_secs(1800),
        ..RolloutPolicy::default()
    };
    let start = Duration::from_secs(60);
    let (quiet_plan, quiet_run) = forecast_then_run(config(busy), start, 4, policy.clone()).await;
    let (queued_plan, queued_run) = forecast_then_run(config(queued), start, 4, policy).await;

    // The queue makes the run hours longer, and the forecast says so.
    assert!(
        queued_run >= quiet_run + Duration::from_secs(2 * 3600),
        "run {:.2} h with the queue, {:.2} h without",
        hours(queued_run),
        hours(quiet_run)
    );
    assert!(
        queued_plan.estimated_duration
            >= quiet_plan.estimated_duration + Duration::from_secs(2 * 3600),
        "forecast {:.2} h with the queue, {:.2} h without",
        hours(queued_plan.estimated_duration),
        hours(quiet_plan.estimated_duration)
    );
    for (plan, actual) in [(&quiet_plan, quiet_run), (&queued_plan, queued_run)] {
        assert!(
            close(plan.estimated_duration, actual, 0.15),
            "forecast {:.2} h, actual {:.2} h: {:#?}",
            hours(plan.estimated_duration),
            hours(actual),
            plan.rationale
        );
    }
    assert!(
        queued_plan
            .rationale
            .iter()
            .any(|line| line.contains("2 queued job(s)")),
        "{:#?}",
        queued_plan.rationale
    );
}

#[tokio::test(start_paused = true)]
async fn the_forecast_range_contains_the_actual_with_known_arrivals() {
    // A day of a steady seeded workload, then the upgrade: the forecast
    // learns the arrivals from that day and draws job ends from the jobs
    // that ended in it (they run 1-2x shorter than their limits).
    let workload = SyntheticWorkload {
        nodes: 32,
        utilisation: 0.8,
        seed: 11,
        duration: Duration::from_secs(3 * 24 * 3600),
    };
    let config = SimConfig {
        nodes: 32,
        workload: Workload::synthetic(&workload),
        boot_time: BOOT,
        boot_jitter: 0.0,
        ..SimConfig::default()
    };
    let policy = RolloutPolicy {
        strategy: Strategy::Continuous,
        order: Order::DrainCost,
        boot_timeout: Duration::from_secs(1800),
        ..RolloutPolicy::default()
    };
    let (plan, actual) = forecast_then_run(config, Duration::from_secs(24 * 3600), 8, policy).await;
    assert!(plan.samples > 1, "{plan:#?}");
    assert!(plan.p10 < plan.p90, "{plan:#?}");
    assert!(
        plan.p10 <= actual && actual <= plan.p90 + Duration::from_secs(1),
        "actual {:.2} h outside p10 {:.2} h - p90 {:.2} h (median {:.2} h)",
        hours(actual),
        hours(plan.p10),
        hours(plan.p90),
        hours(plan.estimated_duration)
    );
    assert!(
        plan.rationale
            .iter()
            .any(|line| line.contains("arrivals are forecast"))
    );
    assert!(!plan.dominated_by.is_empty());
    for step in &plan.steps {
        assert!(step.done_at_p10 <= step.done_at_p90, "{step:?}");
        assert!(step.dominated_by.is_some(), "{step:?}");
    }
}
