//! The model honours the scheduling weights `steer_jobs` sets, as Slurm does:
//! a job gets the lowest-weight free nodes, so a forecast with `steer_jobs`
//! sees new jobs go to the nodes already upgraded.
use std::time::Duration;

use super::arrival_tests::forecast_after_a_day;
use super::machine::{Machine, MachineSettings};
use super::outlook::Outlook;
use super::*;
use crate::ports::{PastJob, PendingJob, WorkloadQueue, WorkloadState};
use crate::rollout::{Action, ActionOutput};

const START: i64 = 1_000_000;

fn nodes(count: usize) -> Vec<NodeId> {
    (0..count)
        .map(|i| NodeId::from(format!("n{i:02}").as_str()))
        .collect()
}

fn settings() -> MachineSettings {
    MachineSettings {
        boot_time: Duration::from_secs(600),
        boot_spread: 0.0,
        unknown_job_end: Duration::from_secs(24 * 3600),
        soak: Duration::ZERO,
    }
}

#[test]
fn a_queued_job_starts_on_the_lowest_weight_free_node() {
    let now = Timestamp::from_secs(START);
    let members = nodes(4);
    // Every node runs a job that ends in 10 minutes; a one-node job waits.
    let observed: Vec<WorkloadNode> = members
        .iter()
        .map(|node| WorkloadNode {
            node: node.clone(),
            state: WorkloadState::Allocated,
            responding: true,
            jobs_end_by: Some(now + Duration::from_secs(600)),
            reason: None,
        })
        .collect();
    let queue = WorkloadQueue {
        pending: vec![PendingJob {
            nodes: 1,
            time_limit: Some(Duration::from_secs(3600)),
            submitted: now,
        }],
        ..WorkloadQueue::default()
    };
    let outlook = Outlook::learn(Some(&queue), now, members.len());
    let mut machine = Machine::new(
        &members,
        &observed,
        Some(&queue),
        &outlook,
        now,
        settings(),
        0,
    );
    // The first three are made less preferred, as steer_jobs makes the
    // nodes still to upgrade.
    let weights: Vec<(NodeId, u32)> = members[..3]
        .iter()
        .map(|node| (node.clone(), 1_000))
        .collect();
    assert_eq!(
        machine.answer(&Action::SetWeights { weights }, now),
        ActionOutput::Done
    );
    let read = machine.answer(
        &Action::ReadWeights {
            nodes: vec![members[0].clone(), members[3].clone()],
        },
        now,
    );
    assert_eq!(
        read,
        ActionOutput::Weights(vec![(members[0].clone(), 1_000), (members[3].clone(), 1)])
    );

    let later = now + Duration::from_secs(600);
    machine.advance_to(later);
    let ActionOutput::Workload(states) = machine.answer(
        &Action::ObserveWorkload {
            nodes: members.clone(),
            probe: None,
        },
        later,
    ) else {
        panic!("an observation answers with the nodes' states");
    };
    let allocated: Vec<&NodeId> = states
        .iter()
        .filter(|node| node.state == WorkloadState::Allocated)
        .map(|node| &node.node)
        .collect();
    // Without weights it would be n00, the lowest-numbered.
    assert_eq!(allocated, vec![&members[3]], "{states:#?}");
}

/// Sixteen nodes, the first eight running jobs that end in 15 minutes, the
/// others idle, with a steady stream of one-node, two-hour jobs (learned
/// from the recent past), planned with or without `steer_jobs`.
fn plan_under_arrivals(steer_jobs: bool) -> DryRun {
    let now = Timestamp::from_secs(START);
    let members = nodes(16);
    let observed: Vec<WorkloadNode> = members
        .iter()
        .enumerate()
        .map(|(position, node)| WorkloadNode {
            node: node.clone(),
            state: if position < 8 {
                WorkloadState::Allocated
            } else {
                WorkloadState::Idle
            },
            responding: true,
            jobs_end_by: (position < 8).then(|| now + Duration::from_secs(900)),
            reason: None,
        })
        .collect();
    let recent = (0..144)
        .map(|i| PastJob {
            submitted: now - Duration::from_secs(600 * (i + 1)),
            nodes: 1,
            time_limit: Some(Duration::from_secs(7200)),
            run_time: Some(Duration::from_secs(7200)),
        })
        .collect();
    forecast_after_a_day(
        observed,
        now,
        2,
        RolloutPolicy {
            steer_jobs,
            ..RolloutPolicy::default()
        },
        recent,
    )
}

#[test]
fn steering_jobs_to_upgraded_nodes_shortens_the_forecast() {
    let plain = plan_under_arrivals(false);
    let steered = plan_under_arrivals(true);
    // The idle half is taken first. Once the busy half's jobs end, each
    // arrival takes the lowest-numbered free node: unsteered, one still to
    // upgrade, which it then holds for two hours; steered, one already
    // upgraded, so the rest stay idle until their turn.
    assert!(
        steered.estimated_duration < plain.estimated_duration,
        "steered {:?} vs plain {:?}",
        steered.estimated_duration,
        plain.estimated_duration
    );
    assert!(
        steered.p90 < plain.p10,
        "steered p90 {:?} vs plain p10 {:?}",
        steered.p90,
        plain.p10
    );
}
