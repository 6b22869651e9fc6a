//! Reserve ahead (`reserve_ahead`, issue 20): each node still to upgrade is
//! reserved from when the sliding window plans to take it.

use std::collections::BTreeMap;

use super::drain_ahead::{Cluster, settle};
use super::foreign::record;
use super::*;

fn policy() -> RolloutPolicy {
    RolloutPolicy {
        strategy: crate::rollout::Strategy::Continuous,
        order: Order::DrainCost,
        reserve_ahead: true,
        ..RolloutPolicy::default()
    }
}

/// The reservations `actions` leave, in order: set, moved or removed.
fn reservations_after(actions: &[Action]) -> BTreeMap<String, Timestamp> {
    let mut reserved = BTreeMap::new();
    for action in actions {
        match action {
            Action::Reserve { reservations } => {
                for (node, from) in reservations {
                    reserved.insert(node.to_string(), *from);
                }
            }
            Action::Unreserve { nodes } => {
                for node in nodes {
                    reserved.remove(node.as_str());
                }
            }
            _ => {}
        }
    }
    reserved
}

fn cluster() -> Cluster {
    use WorkloadState::{Allocated, Idle};
    [
        ("a", (Idle, None)),
        ("b", (Allocated, Some(1000))),
        ("c", (Allocated, Some(300))),
        ("d", (Allocated, Some(5000))),
    ]
    .into_iter()
    .collect()
}

#[test]
fn nodes_are_reserved_from_when_the_sliding_window_plans_to_take_them() {
    let mut rollout = Rollout::new(Uuid::nil(), spec(1), policy(), t(0));
    rollout.handle_timeout(t(0));
    let actions = settle(&mut rollout, t(0), &cluster());
    // The step of one takes a (idle) at once; its place frees a round
    // (FIRST_ROUND_GUESS, 600 s) later. Then, cheapest drain first: c
    // (jobs end at 300) at 600, b (1000) when c's round ends at 1200, d
    // when its own jobs end at 5000.
    assert_eq!(record(&rollout, "a").phase, NodePhase::Draining);
    let reserved = reservations_after(&actions);
    let expected: BTreeMap<String, Timestamp> = [("b", 1200), ("c", 600), ("d", 5000)]
        .into_iter()
        .map(|(node, at)| (node.to_string(), t(at)))
        .collect();
    assert_eq!(reserved, expected, "{actions:?}");
    // First a sweep of what a crashed process may have left, then the
    // reservations, and only then the first node is drained: a drain lets
    // the scheduler backfill, and it must not start long jobs on nodes not
    // reserved yet.
    let position = |wanted: fn(&Action) -> bool| {
        actions
            .iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("{actions:?}"))
    };
    let sweep = position(|action| matches!(action, Action::Unreserve { .. }));
    let reserve = position(|action| matches!(action, Action::Reserve { .. }));
    let drain = position(|action| matches!(action, Action::Drain { .. }));
    assert!(sweep < reserve && reserve < drain, "{actions:?}");
    assert_eq!(
        actions[sweep],
        Action::Unreserve {
            nodes: ids(&["a", "b", "c", "d"])
        }
    );
}

#[test]
fn reservations_stay_while_a_node_waits_for_its_place_and_a_pause_removes_them_all() {
    let mut rollout = Rollout::new(Uuid::nil(), spec(1), policy(), t(0));
    rollout.handle_timeout(t(0));
    let mut actions = settle(&mut rollout, t(0), &cluster());
    // a's drain ends (it was idle): its round begins; c's jobs end.
    let mut now_cluster = cluster();
    now_cluster.insert("a", (WorkloadState::Drained, None));
    now_cluster.insert("c", (WorkloadState::Idle, None));
    rollout.handle_timeout(t(400));
    actions.extend(settle(&mut rollout, t(400), &now_cluster));
    assert_eq!(record(&rollout, "a").phase, NodePhase::Booting);
    assert_eq!(record(&rollout, "c").phase, NodePhase::Pending);
    assert!(reservations_after(&actions).contains_key("c"));

    rollout
        .apply_command(t(500), &OperatorCommand::Pause)
        .unwrap();
    rollout.handle_timeout(t(500));
    actions.extend(settle(&mut rollout, t(500), &now_cluster));
    assert_eq!(reservations_after(&actions), BTreeMap::new(), "{actions:?}");
}

#[test]
fn without_support_for_reservations_the_session_goes_on_and_says_so_once() {
    let mut rollout = Rollout::new(Uuid::nil(), spec(1), policy(), t(0));
    rollout.handle_timeout(t(0));
    let cluster = cluster();
    let mut refused = 0;
    for _ in 0..50 {
        let actions = take_actions(&mut rollout);
        if actions.is_empty() {
            break;
        }
        for (id, action) in actions {
            let output = match &action {
                Action::Reserve { .. } | Action::Unreserve { .. } => {
                    refused += 1;
                    Err(ActionError {
                        kind: ActionErrorKind::NotSupported,
                        message: "no reservations here".into(),
                    })
                }
                Action::ReadStartingGroup { .. } => {
                    Ok(ActionOutput::Members(ids(&["a", "b", "c", "d"])))
                }
                Action::PrepareGroups { .. } => Ok(ActionOutput::GroupsPrepared {
                    cleared_failed: vec![],
                    cleared_upgrading: vec![],
                }),
                Action::ObserveWorkload { nodes, .. } => Ok(ActionOutput::Workload(
                    nodes
                        .iter()
                        .map(|node| super::drain_ahead::report(node.as_str(), &cluster))
                        .collect(),
                )),
                Action::StartBoot { .. } | Action::ObserveBoot { .. } => continue,
                _ => Ok(ActionOutput::Done),
            };
            rollout.handle_outcome(t(0), id, output);
        }
    }
    assert_eq!(refused, 1, "asked once, then never again");
    let said: Vec<&String> = rollout
        .state()
        .messages
        .iter()
        .filter(|message| message.contains("cannot reserve nodes"))
        .collect();
    assert_eq!(said.len(), 1, "{:?}", rollout.state().messages);
    assert_eq!(record(&rollout, "a").phase, NodePhase::Draining);
}

#[test]
fn reserve_ahead_needs_the_sliding_window_in_drain_cost_order() {
    use crate::rollout::Strategy;
    assert!(
        reserve_ahead_errors(
            Some(true),
            Some(Strategy::Continuous),
            Some(Order::DrainCost)
        )
        .is_empty()
    );
    assert!(reserve_ahead_errors(Some(false), None, None).is_empty());
    assert!(reserve_ahead_errors(None, None, None).is_empty());
    for (strategy, order) in [
        (None, None),
        (Some(Strategy::Continuous), Some(Order::Inventory)),
        (Some(Strategy::Steps), Some(Order::DrainCost)),
    ] {
        let errors = reserve_ahead_errors(Some(true), strategy, order);
        assert_eq!(errors.len(), 1, "{strategy:?} {order:?}");
        assert_eq!(errors[0].0, "reserve_ahead");
    }
}
