//! Drain ahead (`drain_ahead`, issue 20): nodes drained while their jobs
//! run, outside the step, and returned to service when they go quiet with
//! every place of the step held.

use std::collections::BTreeMap;

use super::*;

/// What the workload manager says of each node: its state and when its
/// jobs end.
pub(super) type Cluster = BTreeMap<&'static str, (WorkloadState, Option<i64>)>;

pub(super) fn report(node: &str, cluster: &Cluster) -> WorkloadNode {
    let (state, ends) = cluster[node];
    WorkloadNode {
        node: NodeId::from(node),
        state,
        responding: true,
        jobs_end_by: ends.map(t),
        reason: matches!(state, WorkloadState::Draining | WorkloadState::Drained)
            .then(|| format!("crus:{}", Uuid::nil())),
    }
}

/// Answers every queued action at `now` (drains and resumes done, the
/// workload as `cluster` says) until none is left; returns them.
pub(super) fn settle(rollout: &mut Rollout, now: Timestamp, cluster: &Cluster) -> Vec<Action> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        let actions = take_actions(rollout);
        if actions.is_empty() {
            return seen;
        }
        for (id, action) in actions {
            let output = match &action {
                Action::ReadStartingGroup { .. } => {
                    ActionOutput::Members(cluster.keys().map(|name| NodeId::from(*name)).collect())
                }
                Action::PrepareGroups { .. } => ActionOutput::GroupsPrepared {
                    cleared_failed: vec![],
                    cleared_upgrading: vec![],
                },
                Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
                    nodes
                        .iter()
                        .map(|node| report(node.as_str(), cluster))
                        .collect(),
                ),
                // Boots stay in flight: these tests end before any returns.
                Action::StartBoot { .. } | Action::ObserveBoot { .. } => {
                    seen.push(action);
                    continue;
                }
                _ => ActionOutput::Done,
            };
            rollout.handle_outcome(now, id, Ok(output));
            seen.push(action);
        }
    }
    panic!(
        "no end to the actions: {:?}\nmessages: {:?}",
        &seen[seen.len().saturating_sub(6)..],
        rollout.state().messages
    );
}

fn drained(actions: &[Action]) -> Vec<NodeId> {
    actions
        .iter()
        .flat_map(|action| match action {
            Action::Drain { nodes, .. } => nodes.clone(),
            _ => vec![],
        })
        .collect()
}

fn resumed(actions: &[Action]) -> Vec<NodeId> {
    actions
        .iter()
        .flat_map(|action| match action {
            Action::Resume { nodes, .. } => nodes.clone(),
            _ => vec![],
        })
        .collect()
}

fn ahead(rollout: &Rollout) -> Vec<String> {
    rollout
        .state()
        .drained_ahead
        .iter()
        .map(|&node| rollout.state().nodes[node].id.to_string())
        .collect()
}

fn policy(max_draining: Option<u32>) -> RolloutPolicy {
    RolloutPolicy {
        strategy: crate::rollout::Strategy::Continuous,
        order: Order::DrainCost,
        drain_ahead: true,
        max_draining,
        ..RolloutPolicy::default()
    }
}

#[test]
fn the_soonest_ending_nodes_drain_ahead_outside_the_step_and_a_quiet_one_with_no_place_goes_back() {
    use WorkloadState::{Allocated, Drained, Draining, Idle};
    let mut cluster: Cluster = [
        ("a", (Allocated, Some(100))),
        ("b", (Allocated, Some(200))),
        ("c", (Allocated, Some(300))),
        ("d", (Allocated, Some(400))),
    ]
    .into_iter()
    .collect();
    let mut rollout = Rollout::new(Uuid::nil(), spec(1), policy(None), t(0));
    rollout.handle_timeout(t(0));
    let actions = settle(&mut rollout, t(0), &cluster);
    // The step (1) takes the cheapest, a; b, whose jobs end next, drains
    // ahead (max_draining is the step size); c and d are left alone.
    assert_eq!(drained(&actions), ids(&["a", "b"]), "{actions:?}");
    assert_eq!(ahead(&rollout), ["b"]);
    assert_eq!(rollout.state().out_of_service(), 1, "b holds no place");
    assert_eq!(record(&rollout, "b").phase, NodePhase::Pending);

    // b's jobs end early, while a still drains and holds the only place:
    // b is quiet and out of service, so it goes back to service at once
    // (never more than the step drained and idle), and c drains ahead.
    cluster.insert("a", (Draining, Some(100)));
    cluster.insert("b", (Drained, None));
    rollout.handle_timeout(t(20));
    let actions = settle(&mut rollout, t(20), &cluster);
    assert_eq!(resumed(&actions), ids(&["b"]), "{actions:?}");
    assert_eq!(drained(&actions), ids(&["c"]), "{actions:?}");
    assert_eq!(ahead(&rollout), ["c"]);
    assert!(
        rollout
            .state()
            .messages
            .iter()
            .any(|message| message.starts_with("Returning 1 node drained ahead to service (b)")),
        "{:?}",
        rollout.state().messages
    );

    // a is drained and boots; c goes quiet: no place is free (a boots), so
    // c goes back too. b, idle in service, ranks first for the next place.
    cluster.insert("a", (Drained, None));
    cluster.insert("b", (Idle, None));
    cluster.insert("c", (Drained, None));
    rollout.handle_timeout(t(40));
    let actions = settle(&mut rollout, t(40), &cluster);
    assert_eq!(record(&rollout, "a").phase, NodePhase::Booting);
    assert_eq!(resumed(&actions), ids(&["c"]), "{actions:?}");
    assert!(rollout.state().out_of_service() <= 1);
}

#[test]
fn a_quiet_node_drained_ahead_takes_a_free_place_and_a_deleted_session_returns_the_rest() {
    use WorkloadState::{Allocated, Drained};
    let mut cluster: Cluster = [
        ("a", (Allocated, Some(100))),
        ("b", (Allocated, Some(200))),
        ("c", (Allocated, Some(300))),
    ]
    .into_iter()
    .collect();
    let mut rollout = Rollout::new(Uuid::nil(), spec(1), policy(Some(2)), t(0));
    rollout.handle_timeout(t(0));
    settle(&mut rollout, t(0), &cluster);
    assert_eq!(ahead(&rollout), ["b", "c"], "max_draining 2");
    assert_eq!(rollout.state().out_of_service(), 1);

    // Deleted: the nodes drained ahead go back to service, and the session
    // ends only once they are.
    cluster.insert("b", (Drained, None));
    rollout.cancel(t(10));
    rollout.handle_timeout(t(10));
    let actions = settle(&mut rollout, t(10), &cluster);
    let mut returned = resumed(&actions);
    returned.sort();
    assert!(
        returned.contains(&NodeId::from("b")) && returned.contains(&NodeId::from("c")),
        "{actions:?}"
    );
    assert!(ahead(&rollout).is_empty());
}

fn record<'a>(rollout: &'a Rollout, node: &str) -> &'a NodeRecord {
    rollout
        .state()
        .nodes
        .iter()
        .find(|record| record.id.as_str() == node)
        .unwrap()
}

/// A node of [`drive_to_the_end`]'s cluster: when its jobs end, whether
/// crus drained it, and when its boot started.
struct SimNode {
    jobs_end: i64,
    drained: bool,
    booted_at: Option<i64>,
}

/// How long a boot takes in [`drive_to_the_end`]'s cluster.
const BOOT_SECONDS: i64 = 300;

/// Runs `rollout` to its end against a small cluster whose jobs end at the
/// given times, waking it only when it asks to be woken (as the controller
/// does). Every time it settles with nothing asked for, its next deadline
/// must lie ahead: a deadline at or before now would have the controller
/// wake it again at once, for ever. Returns how many times it was woken.
fn drive_to_the_end(rollout: &mut Rollout, jobs_end: &[(&'static str, i64)]) -> usize {
    let mut cluster: BTreeMap<&'static str, SimNode> = jobs_end
        .iter()
        .map(|&(name, jobs_end)| {
            (
                name,
                SimNode {
                    jobs_end,
                    drained: false,
                    booted_at: None,
                },
            )
        })
        .collect();
    let mut now = 0;
    let mut wakes = 0;
    rollout.handle_timeout(t(now));
    for _ in 0..10_000 {
        let actions = take_actions(rollout);
        if !actions.is_empty() {
            for (id, action) in actions {
                let output = match &action {
                    Action::ReadStartingGroup { .. } => ActionOutput::Members(
                        cluster.keys().map(|name| NodeId::from(*name)).collect(),
                    ),
                    Action::PrepareGroups { .. } => ActionOutput::GroupsPrepared {
                        cleared_failed: vec![],
                        cleared_upgrading: vec![],
                    },
                    Action::Drain { nodes, .. } | Action::Resume { nodes, .. } => {
                        let drain = matches!(action, Action::Drain { .. });
                        for node in nodes {
                            if let Some(sim) = cluster.get_mut(node.as_str()) {
                                sim.drained = drain;
                            }
                        }
                        ActionOutput::Done
                    }
                    Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
                        nodes
                            .iter()
                            .map(|node| {
                                let sim = &cluster[node.as_str()];
                                let busy = now < sim.jobs_end;
                                let state = match (busy, sim.drained) {
                                    (true, true) => WorkloadState::Draining,
                                    (true, false) => WorkloadState::Allocated,
                                    (false, true) => WorkloadState::Drained,
                                    (false, false) => WorkloadState::Idle,
                                };
                                WorkloadNode {
                                    node: node.clone(),
                                    state,
                                    responding: true,
                                    jobs_end_by: busy.then(|| t(sim.jobs_end)),
                                    reason: sim.drained.then(|| format!("crus:{}", Uuid::nil())),
                                }
                            })
                            .collect(),
                    ),
                    Action::StartBoot { request, .. } => {
                        for node in &request.nodes {
                            if let Some(sim) = cluster.get_mut(node.as_str()) {
                                sim.booted_at = Some(now);
                            }
                        }
                        ActionOutput::BootStarted(BootHandle {
                            key: request.key.clone(),
                            id: request.key.clone(),
                        })
                    }
                    Action::ObserveBoot { .. } => ActionOutput::BootStatus(
                        cluster
                            .iter()
                            .filter_map(|(name, sim)| {
                                let started = sim.booted_at?;
                                let state = if now >= started + BOOT_SECONDS {
                                    NodeBootState::Ok
                                } else {
                                    NodeBootState::InProgress
                                };
                                Some(boot(name, state))
                            })
                            .collect(),
                    ),
                    _ => ActionOutput::Done,
                };
                rollout.handle_outcome(t(now), id, Ok(output));
            }
            continue;
        }
        if rollout.is_finished() {
            return wakes;
        }
        let deadline = rollout
            .poll_timeout()
            .expect("a running session with nothing in flight has a deadline");
        assert!(
            deadline > t(now),
            "at {now} s, with nothing asked for, the session asks to be woken at {deadline}, \
             which has passed: the controller would wake it at once, for ever\nmessages: {:?}",
            rollout.state().messages
        );
        now = deadline
            .saturating_since(t(0))
            .as_secs()
            .try_into()
            .unwrap();
        wakes += 1;
        rollout.handle_timeout(t(now));
    }
    panic!("no end after 10,000 inputs: {:?}", rollout.state().messages);
}

#[test]
fn a_session_draining_ahead_never_asks_to_be_woken_at_a_time_already_past() {
    // The step (1) takes a; b drains ahead, its jobs still running when a is
    // back, and is taken then. While b boots, no node is pending, draining or
    // verifying: the drain costs asked for while b was drained ahead are owed
    // to no node, and must not keep the next workload poll armed (it would
    // be due, and never asked for).
    let mut rollout = Rollout::new(Uuid::nil(), spec(1), policy(None), t(0));
    let wakes = drive_to_the_end(&mut rollout, &[("a", 100), ("b", 1000)]);
    assert!(rollout.state().completed, "{:?}", rollout.state().messages);
    assert!(rollout.state().drained_ahead.is_empty());
    // b's jobs' 1000 s and its boot's 300 s, polled every 10 s: about 130
    // polls; a session that spun would never have ended.
    assert!(
        wakes <= 2 * (1000 + BOOT_SECONDS as usize) / 10,
        "{wakes} wakes"
    );
}
