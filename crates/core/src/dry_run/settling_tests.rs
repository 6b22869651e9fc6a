//! A forecast in which only boot times are uncertain stops sampling once its
//! first runs agree; one with jobs to draw makes every run.

use super::tests::spec;
use super::*;
use crate::ports::{PastJob, WorkloadQueue, WorkloadState};

const NOW: Timestamp = Timestamp::from_secs(1_000_000);

/// `count` nodes, every other one running a job that ends within the day.
fn half_busy(count: usize) -> DryRunInput {
    let members: Vec<NodeId> = (0..count)
        .map(|index| NodeId::from(format!("n{index:05}").as_str()))
        .collect();
    let observed = members
        .iter()
        .enumerate()
        .map(|(index, node)| WorkloadNode {
            node: node.clone(),
            state: if index % 2 == 0 {
                WorkloadState::Idle
            } else {
                WorkloadState::Allocated
            },
            responding: true,
            jobs_end_by: (index % 2 == 1)
                .then(|| NOW + Duration::from_secs((index as u64 * 7919) % 86_400)),
            reason: None,
        })
        .collect();
    DryRunInput {
        spec: spec(50),
        policy: RolloutPolicy::default(),
        members,
        observed,
        now: NOW,
        queue: None,
        queue_note: None,
        images: Vec::new(),
        images_note: None,
    }
}

/// Whether the plan's p10–p90 is as narrow as the spread that settles a
/// forecast.
fn range_is_settled(plan: &DryRun) -> bool {
    (plan.p90 - plan.p10).as_secs_f64() <= plan.estimated_duration.as_secs_f64() * 0.0025
}

/// Every boot takes the same time.
fn certain_boots() -> DryRunAssumptions {
    DryRunAssumptions {
        boot_time_spread: 0.0,
        ..DryRunAssumptions::default()
    }
}

#[test]
fn runs_that_agree_when_only_boots_are_uncertain_settle_the_forecast_at_three() {
    let plan = forecast(half_busy(600), &DryRunAssumptions::default());
    assert_eq!(plan.samples, 3, "{:#?}", plan.rationale);
    assert!(
        plan.rationale
            .iter()
            .any(|line| line.contains("agreed within")),
        "{:#?}",
        plan.rationale
    );
    assert!(plan.p10 <= plan.estimated_duration && plan.estimated_duration <= plan.p90);
    assert!(range_is_settled(&plan), "{plan:#?}");
}

#[test]
fn one_round_of_boots_varies_too_much_to_settle() {
    // Four idle nodes, one step: the upgrade is one boot round, ±10%.
    let mut input = half_busy(4);
    input.observed.iter_mut().for_each(|node| {
        node.state = WorkloadState::Idle;
        node.jobs_end_by = None;
    });
    input.spec = spec(4);
    let plan = forecast(input, &DryRunAssumptions::default());
    assert_eq!(plan.samples, 15, "{plan:#?}");
    assert!(plan.p10 < plan.p90, "{plan:#?}");
}

#[test]
fn arrivals_make_every_run_even_when_the_first_runs_agree() {
    // Certain boots, and a past of one-minute, one-node jobs: the runs
    // barely differ, but a forecast with jobs to draw makes them all.
    let mut input = half_busy(600);
    input.queue = Some(WorkloadQueue {
        recent: (0..48)
            .map(|half_hour| PastJob {
                submitted: NOW - Duration::from_secs(86_400 - half_hour * 1800),
                nodes: 1,
                time_limit: Some(Duration::from_secs(60)),
                run_time: Some(Duration::from_secs(60)),
            })
            .collect(),
        recent_since: Some(NOW - Duration::from_secs(86_400)),
        ..WorkloadQueue::default()
    });
    let plan = forecast(input, &certain_boots());
    assert_eq!(plan.samples, 15, "{:#?}", plan.rationale);
    assert!(
        range_is_settled(&plan),
        "the runs agree ({plan:#?}), and still all were made"
    );
}

#[test]
fn job_ends_to_draw_make_every_run_even_without_arrivals() {
    // Recent jobs ran 40% to 100% of their limits: the running jobs' ends
    // are drawn, and no arrivals are forecast (no history span).
    let mut input = half_busy(600);
    input.queue = Some(WorkloadQueue {
        running: input
            .observed
            .iter()
            .filter(|node| node.jobs_end_by.is_some())
            .take(20)
            .map(|node| crate::ports::RunningJob {
                nodes: vec![node.node.clone()],
                started: NOW - Duration::from_secs(600),
                time_limit: Some(Duration::from_secs(6 * 3600)),
            })
            .collect(),
        recent: (4..=10)
            .map(|tenths| PastJob {
                submitted: NOW - Duration::from_secs(7200),
                nodes: 1,
                time_limit: Some(Duration::from_secs(6 * 3600)),
                run_time: Some(Duration::from_secs(2160 * tenths)),
            })
            .collect(),
        ..WorkloadQueue::default()
    });
    let plan = forecast(input, &certain_boots());
    assert_eq!(plan.samples, 15, "{:#?}", plan.rationale);
}
