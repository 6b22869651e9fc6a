//! A forecast whose model tells the engine what changed (reads name only the
//! nodes whose answer may change something) is the forecast of whole reads,
//! exactly, under every policy that reads the workload differently.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::sampling::sample_reading;
use super::simulation::Reads;
use super::*;
use crate::ports::{PastJob, PendingJob, RunningJob, WorkloadQueue, WorkloadState};
use crate::rollout::{Domain, FailureBudget, ForeignOutOfService, HealthGate, Order, Strategy};

const START: i64 = 1_700_000_000;

fn xname(index: usize) -> NodeId {
    let (node, rest) = (index % 2, index / 2);
    let (slot, chassis) = (rest % 4, rest / 4);
    NodeId::from(format!("x1000c{chassis}s{slot}b0n{node}").as_str())
}

/// 48 nodes: a third idle, most of the rest running jobs that end within
/// hours (some of them one job over several nodes), two drained by an
/// administrator and one down; wide and narrow jobs queued, and a steady
/// past of submissions, so jobs arrive while the session runs.
fn busy_machine(policy: RolloutPolicy, step: u32) -> DryRunInput {
    let now = Timestamp::from_secs(START);
    let members: Vec<NodeId> = (0..48).map(xname).collect();
    let observed = members
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let (state, reason) = match index {
                5 | 29 => (WorkloadState::Drained, Some("fan replaced".to_string())),
                17 => (WorkloadState::Down, Some("not responding".to_string())),
                _ if index % 3 == 0 => (WorkloadState::Idle, None),
                _ => (WorkloadState::Allocated, None),
            };
            WorkloadNode {
                node: node.clone(),
                state,
                responding: true,
                jobs_end_by: (state == WorkloadState::Allocated)
                    .then(|| now + Duration::from_secs(600 + 457 * index as u64)),
                reason,
            }
        })
        .collect();
    let running = (0..4)
        .map(|job| RunningJob {
            nodes: (0..3).map(|offset| xname(1 + job * 9 + offset)).collect(),
            started: now - Duration::from_secs(1800),
            time_limit: Some(Duration::from_secs(3 * 3600 + 600 * job as u64)),
        })
        .collect();
    let pending = vec![
        PendingJob {
            nodes: 24,
            time_limit: Some(Duration::from_secs(2 * 3600)),
            submitted: now - Duration::from_secs(60),
        },
        PendingJob {
            nodes: 2,
            time_limit: Some(Duration::from_secs(3600)),
            submitted: now,
        },
    ];
    let recent = (0..96)
        .map(|i| PastJob {
            submitted: now - Duration::from_secs(900 * (i + 1)),
            nodes: 1 + (i % 4) as u32,
            time_limit: Some(Duration::from_secs(3600 + 300 * (i % 5))),
            run_time: Some(Duration::from_secs(1200 + 240 * (i % 7))),
        })
        .collect();
    DryRunInput {
        spec: super::tests::spec(step),
        policy,
        members,
        observed,
        now,
        queue: Some(WorkloadQueue {
            running,
            pending,
            recent,
            ..WorkloadQueue::default()
        }),
        queue_note: None,
        images: Vec::new(),
        images_note: None,
    }
}

fn both_ways(input: &DryRunInput) -> (DryRun, DryRun) {
    let assumptions = DryRunAssumptions {
        samples: 5,
        ..DryRunAssumptions::default()
    };
    let budget = DryRunBudget::default();
    let never = AtomicBool::new(false);
    let plan = |reads| {
        sample_reading(input, &assumptions, &budget, &never, reads)
            .unwrap_or_else(|stopped| panic!("the plan stopped: {stopped:?}"))
    };
    (plan(Reads::Changes), plan(Reads::Whole))
}

#[test]
fn reading_only_what_changed_gives_the_forecast_of_whole_reads() {
    let continuous = |order| RolloutPolicy {
        strategy: Strategy::Continuous,
        order,
        ..RolloutPolicy::default()
    };
    let policies = [
        ("crus-strict", RolloutPolicy::default(), 8),
        (
            "steps+drain_cost",
            RolloutPolicy {
                order: Order::DrainCost,
                ..RolloutPolicy::default()
            },
            8,
        ),
        ("continuous+drain_cost", continuous(Order::DrainCost), 6),
        (
            "continuous+topology(spread=chassis)",
            RolloutPolicy {
                spread: Some(Domain::Chassis),
                ..continuous(Order::Topology)
            },
            6,
        ),
        (
            "steer_jobs+drain_ahead",
            RolloutPolicy {
                steer_jobs: true,
                drain_ahead: true,
                ..continuous(Order::DrainCost)
            },
            6,
        ),
        (
            "steer_jobs+reserve_ahead",
            RolloutPolicy {
                steer_jobs: true,
                reserve_ahead: true,
                ..continuous(Order::DrainCost)
            },
            6,
        ),
        (
            "health soak, foreign nodes skipped",
            RolloutPolicy {
                health: Some(HealthGate {
                    command: None,
                    http: None,
                    soak: Duration::from_secs(900),
                }),
                foreign_out_of_service: ForeignOutOfService::Skip,
                ..continuous(Order::DrainCost)
            },
            6,
        ),
        (
            "foreign nodes waited for, drain timeout",
            RolloutPolicy {
                foreign_out_of_service: ForeignOutOfService::Wait,
                drain_timeout: Some(Duration::from_secs(2 * 3600)),
                ..continuous(Order::DrainCost)
            },
            6,
        ),
        (
            "capacity floor",
            RolloutPolicy {
                min_available: Some(FailureBudget::Percent(75.0)),
                ..continuous(Order::DrainCost)
            },
            16,
        ),
    ];
    for (name, policy, step) in policies {
        let input = busy_machine(policy, step);
        let (changes, whole) = both_ways(&input);
        assert_eq!(changes, whole, "{name}: the forecasts differ");
        assert!(changes.samples > 1, "{name}: {changes:#?}");
        assert!(
            changes.estimated_duration > Duration::from_secs(3600),
            "{name}: the machine's jobs make it last: {changes:#?}"
        );
    }
}

#[test]
fn reads_name_only_the_nodes_that_changed() {
    let input = busy_machine(
        RolloutPolicy {
            strategy: Strategy::Continuous,
            order: Order::DrainCost,
            ..RolloutPolicy::default()
        },
        6,
    );
    let assumptions = DryRunAssumptions::default();
    let outlook = super::outlook::Outlook::learn(input.queue.as_ref(), input.now, 48);
    let nodes_read = |reads| {
        let mut run = super::simulation::Simulation::new(&input, &outlook, &assumptions, 0, reads);
        run.run(&DryRunBudget::default(), &AtomicBool::new(false))
            .unwrap_or_else(|stopped| panic!("the run stopped: {stopped:?}"));
        (run.nodes_read, run.outcome().duration)
    };
    let (changes, changes_took) = nodes_read(Reads::Changes);
    let (whole, whole_took) = nodes_read(Reads::Whole);
    assert_eq!(changes_took, whole_took);
    // Most reads repeat: the pending nodes' costs, read again before each
    // take, and the draining nodes, read at every poll.
    assert!(
        changes * 4 < whole,
        "{changes} nodes read from the changes, {whole} by whole reads"
    );
}
