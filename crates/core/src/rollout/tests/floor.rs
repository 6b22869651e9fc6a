//! The capacity floor, `min_available` (issue 21).

use super::foreign::{DIMM, Mark, Site, drive, record, session};
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
    site.nodes.insert(
        NodeId::from("c"),
        Mark {
            state: WorkloadState::Idle,
            reason: None,
        },
    );
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
