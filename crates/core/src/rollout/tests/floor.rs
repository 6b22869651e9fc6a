//! The capacity floor, `min_available` (issue 21).

use super::foreign::{DIMM, Site, drive, record, session};
use super::*;

#[test]
fn the_floor_holds_the_session_naming_who_is_out_and_goes_on_by_itself() {
    let mut site = Site::new(&["a", "b", "c", "d", "e"]);
    site.admin("c", WorkloadState::Drained, DIMM);
    let policy = RolloutPolicy {
        min_available: Some(FailureBudget::Count(4)),
        ..RolloutPolicy::default()
    };
    let mut rollout = session(policy, 2);
    let holding = |rollout: &Rollout| {
        rollout
            .state()
            .messages
            .iter()
            .any(|message| message.starts_with("Holding at the capacity floor"))
    };
    let now = drive(&mut rollout, &mut site, t(0), holding);
    let message = rollout
        .state()
        .messages
        .iter()
        .find(|message| message.starts_with("Holding"))
        .unwrap()
        .clone();
    assert!(
        message.contains("keeps 4 of 5 nodes in service, 4 are"),
        "{message}"
    );
    assert!(
        message.contains(&format!("c (drained: {DIMM:?})")),
        "{message}"
    );
    assert_eq!(rollout.state().out_of_service(), 0, "nothing taken");
    // Its administrator returns it: the session goes on, one node at a time.
    site.returns("c");
    drive(&mut rollout, &mut site, now, |rollout| {
        assert!(
            rollout.state().out_of_service() <= 1,
            "the floor was crossed"
        );
        false
    });
    assert!(rollout.is_finished());
    for node in ["a", "b", "c", "d", "e"] {
        assert_eq!(record(&rollout, node).phase, NodePhase::Done);
    }
}

#[test]
fn a_percentage_floor_rounds_down_so_a_small_group_still_upgrades() {
    let mut site = Site::new(&["a", "b", "c"]);
    let policy = RolloutPolicy {
        min_available: Some(FailureBudget::Percent(90.0)),
        ..RolloutPolicy::default()
    };
    let mut rollout = session(policy, 3);
    drive(&mut rollout, &mut site, t(0), |rollout| {
        assert!(
            rollout.state().out_of_service() <= 1,
            "the floor was crossed"
        );
        false
    });
    assert!(rollout.is_finished());
    assert_eq!(rollout.state().count(NodePhase::Done), 3);
    assert!(
        rollout.state().messages[0].contains("keeps at least 2 of 3 nodes (90%) in service"),
        "{:?}",
        rollout.state().messages
    );
}

/// A session of a, b and c keeping 2 in service, in a sliding window of 2,
/// with a per-node pre_drain hook that runs while an administrator drains
/// c: the hook of a ends once the session has read c (watching the nodes
/// in service for room to take more). Deleted then if `cancel`. Returns
/// the session and the time reached.
fn hook_outlasted_by_an_admin_drain(site: &mut Site, cancel: bool) -> (Rollout, Timestamp) {
    let policy = RolloutPolicy {
        min_available: Some(FailureBudget::Count(2)),
        hooks: vec![Hook {
            at: HookPoint::PreDrain,
            per: HookScope::Node,
            command: Some(vec!["pre-drain".to_string()]),
            http: None,
            timeout: Duration::from_secs(3600),
            idempotent: false,
            on_failure: HookOnFailure::FailNode,
        }],
        strategy: Strategy::Continuous,
        ..RolloutPolicy::default()
    };
    let mut rollout = session(policy, 2);
    let mut now = t(0);
    rollout.handle_timeout(now);
    let mut hook = None;
    let mut admin_read = false;
    for _ in 0..200 {
        let actions = take_actions(&mut rollout);
        if actions.is_empty() {
            now = rollout
                .poll_timeout()
                .unwrap_or(now + POLL)
                .max(now + Duration::from_secs(1));
            rollout.handle_timeout(now);
        }
        for (id, action) in actions {
            let output = match &action {
                Action::RunHook { .. } if hook.is_none() => {
                    // While it runs, an administrator drains c.
                    site.admin("c", WorkloadState::Drained, DIMM);
                    hook = Some(id);
                    continue;
                }
                Action::ObserveWorkload { nodes, .. } => {
                    admin_read |= hook.is_some() && nodes.iter().any(|node| node.as_str() == "c");
                    site.execute(&action)
                }
                _ => site.execute(&action),
            };
            rollout.handle_outcome(now, id, Ok(output));
        }
        if admin_read && let Some(id) = hook.take() {
            if cancel {
                rollout.cancel(now);
            }
            rollout.handle_outcome(now, id, Ok(ActionOutput::HookRan(None)));
            return (rollout, now);
        }
    }
    panic!(
        "the session never read c while the hook ran: {:?}",
        rollout.state().messages
    );
}

#[test]
fn a_node_drained_by_an_administrator_while_a_pre_drain_hook_runs_holds_the_drain_at_the_floor() {
    // Found by the property test: a taken node was drained after its hook,
    // though an administrator had drained another since, and the floor
    // (2 of 3 in service) was crossed.
    let mut site = Site::new(&["a", "b", "c"]);
    let (mut rollout, now) = hook_outlasted_by_an_admin_drain(&mut site, false);
    let now = drive(&mut rollout, &mut site, now, |rollout| {
        rollout
            .state()
            .messages
            .iter()
            .any(|message| message.starts_with("Holding the drain of a"))
    });
    assert!(site.drained.is_empty(), "drained {:?}", site.drained);
    let message = rollout
        .state()
        .messages
        .iter()
        .find(|message| message.starts_with("Holding the drain"))
        .unwrap();
    assert!(
        message.contains("keeps 2 of 3 nodes in service")
            && message.contains(&format!("c (drained: {DIMM:?})"))
            && message.ends_with("It is drained when a node returns to service"),
        "{message}"
    );
    assert_eq!(record(&rollout, "a").phase, NodePhase::Draining);
    assert_eq!(record(&rollout, "a").drain_asked_at, None);

    // A restart keeps the hold: the drain was never asked for.
    let stored = serde_json::to_string(rollout.state()).unwrap();
    let mut rollout = Rollout::resume(serde_json::from_str(&stored).unwrap());
    let passes = std::cell::Cell::new(0);
    let now = drive(&mut rollout, &mut site, now, |_| {
        passes.set(passes.get() + 1);
        passes.get() > 50
    });
    assert!(site.drained.is_empty(), "drained {:?}", site.drained);

    // Its administrator returns c: a is drained, and the session goes on
    // within the floor.
    site.returns("c");
    drive(&mut rollout, &mut site, now, |rollout| {
        assert!(
            rollout.state().out_of_service() <= 1,
            "the floor was crossed"
        );
        false
    });
    assert!(rollout.is_finished(), "{:?}", rollout.state().messages);
    assert_eq!(site.drained[0].as_str(), "a");
    for node in ["a", "b", "c"] {
        assert_eq!(record(&rollout, node).phase, NodePhase::Done);
    }
    assert!(
        rollout.refused_moves().is_empty(),
        "{:?}",
        rollout.refused_moves()
    );
}

#[test]
fn a_session_deleted_while_the_floor_holds_a_drain_returns_nothing_to_service() {
    let mut site = Site::new(&["a", "b", "c"]);
    let (mut rollout, now) = hook_outlasted_by_an_admin_drain(&mut site, true);
    drive(&mut rollout, &mut site, now, |_| false);
    assert!(rollout.is_finished(), "{:?}", rollout.state().messages);
    assert!(site.drained.is_empty(), "drained {:?}", site.drained);
    assert!(site.resumed.is_empty(), "resumed {:?}", site.resumed);
    let a = record(&rollout, "a");
    assert_eq!(a.phase, NodePhase::Skipped);
    assert_eq!(
        a.reason.as_deref(),
        Some("session deleted before the node was drained; it was left as it was")
    );
    assert_eq!(site.nodes[&NodeId::from("c")].reason.as_deref(), Some(DIMM));
}
