//! Arrivals keep the machine changing; the engine must still move on at its own pace.
use super::*;
use crate::ports::{PastJob, PendingJob};
use crate::ports::{WorkloadQueue, WorkloadState};
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
        .into_iter()
        .map(|node| WorkloadNode {
            node,
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
    let plan = forecast_after_a_day(observed, now, 4, RolloutPolicy::default(), recent);
    let minutes = plan.estimated_duration.as_secs() / 60;
    assert!((40..=45).contains(&minutes), "{minutes} min: {plan:#?}");
    assert!(
        plan.dominated_by.starts_with("boot rounds"),
        "{}",
        plan.dominated_by
    );
}

/// The forecast, with exact 10-minute boots, of a continuous session of
/// `step` ordered by drain cost (`policy` for the rest) over the nodes
/// `observed` at `now`, after a day in which `recent` were submitted.
pub(super) fn forecast_after_a_day(
    observed: Vec<WorkloadNode>,
    now: Timestamp,
    step: u32,
    policy: RolloutPolicy,
    recent: Vec<PastJob>,
) -> DryRun {
    let input = DryRunInput {
        spec: SessionSpec {
            failed_label: "f".into(),
            starting_label: "c".into(),
            upgrade_step_size: step,
            upgrade_template_id: "i".into(),
            upgrading_label: "u".into(),
            workload_manager_type: "slurm".into(),
            policy: None,
        },
        policy: RolloutPolicy {
            order: Order::DrainCost,
            strategy: Strategy::Continuous,
            ..policy
        },
        members: observed.iter().map(|node| node.node.clone()).collect(),
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
    forecast(
        input,
        &DryRunAssumptions {
            boot_time: Duration::from_secs(600),
            boot_time_spread: 0.0,
            ..DryRunAssumptions::default()
        },
    )
}
