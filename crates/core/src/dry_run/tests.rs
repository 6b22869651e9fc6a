use super::*;
use crate::ports::{WorkloadQueue, WorkloadState};
use crate::rollout::{Order, Strategy};

/// Whether any node of the plan would still be out of service at the end (never, by construction).
fn all_done(plan: &DryRun) -> bool {
    plan.steps.iter().all(|step| step.done_at >= step.starts_at)
}

pub(super) fn spec(step: u32) -> SessionSpec {
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
