//! Nodes already on the target image (`skip_matching`, issue 21): left
//! alone at the snapshot, reported skipped, never drained, also after a
//! restart from the persisted state.

use super::foreign::{Site, drive, record, session};
use super::*;

fn skipping() -> RolloutPolicy {
    RolloutPolicy {
        skip_matching: true,
        ..RolloutPolicy::default()
    }
}

fn on_target(site: &mut Site, nodes: &[&str]) {
    for node in nodes {
        site.images
            .insert(NodeId::from(*node), "compute-image".to_string());
    }
}

#[test]
fn nodes_already_on_the_template_are_skipped_and_never_drained() {
    let mut site = Site::new(&["a", "b", "c", "d"]);
    on_target(&mut site, &["b", "d"]);
    site.images
        .insert(NodeId::from("c"), "compute-image-old".to_string());
    let mut rollout = session(skipping(), 1);
    drive(&mut rollout, &mut site, t(0), |_| false);
    assert!(rollout.is_finished());
    for node in ["b", "d"] {
        let record = record(&rollout, node);
        assert_eq!(record.phase, NodePhase::Skipped);
        assert_eq!(record.reason.as_deref(), Some(ALREADY_ON_TARGET_IMAGE));
        assert!(
            !site.drained.contains(&NodeId::from(node)),
            "{node} drained"
        );
    }
    for node in ["a", "c"] {
        assert_eq!(record(&rollout, node).phase, NodePhase::Done);
    }
    let status = rollout.status();
    assert!(
        status
            .messages
            .iter()
            .any(|m| m.contains("2 nodes already on template 'compute-image'")),
        "{:?}",
        status.messages
    );
    // Two steps of one node: only the two nodes to upgrade are counted.
    assert!(
        status
            .messages
            .iter()
            .any(|m| m.starts_with("Upgrading 2 nodes of group 'compute' in 2 steps")),
        "{:?}",
        status.messages
    );
}

#[test]
fn without_skip_matching_every_node_is_upgraded_as_crus_did() {
    let mut site = Site::new(&["a", "b"]);
    on_target(&mut site, &["a", "b"]);
    let mut rollout = session(RolloutPolicy::default(), 2);
    rollout.handle_timeout(t(0));
    let actions = take_actions(&mut rollout);
    assert!(matches!(
        actions[..],
        [(_, Action::ReadStartingGroup { .. })]
    ));
    for (id, action) in actions {
        rollout.handle_outcome(t(0), id, Ok(site_answer(&mut site, &action)));
    }
    drive(&mut rollout, &mut site, t(0), |_| false);
    for node in ["a", "b"] {
        assert_eq!(record(&rollout, node).phase, NodePhase::Done);
    }
    assert_eq!(site.drained.len(), 2);
}

fn site_answer(site: &mut Site, action: &Action) -> ActionOutput {
    match action {
        Action::ReadStartingGroup { .. } => ActionOutput::Members(ids(&["a", "b"])),
        other => panic!("unexpected {other:?} for {:?}", site.images),
    }
}

#[test]
fn a_group_entirely_on_the_template_has_nothing_to_upgrade() {
    let mut site = Site::new(&["a", "b"]);
    on_target(&mut site, &["a", "b"]);
    let mut rollout = session(skipping(), 2);
    drive(&mut rollout, &mut site, t(0), |_| false);
    assert!(rollout.is_finished());
    assert!(site.drained.is_empty());
    assert_eq!(rollout.status().state, SessionState::Ready);
    assert!(
        rollout
            .status()
            .messages
            .iter()
            .any(|m| m.contains("is already on the target image: nothing to upgrade"))
    );
}

#[test]
fn a_restart_keeps_the_decision_and_never_drains_a_skipped_node() {
    let mut site = Site::new(&["a", "b", "c"]);
    on_target(&mut site, &["a"]);
    let mut rollout = session(skipping(), 1);
    // Up to the first drain, then a new controller takes the stored state up.
    drive(&mut rollout, &mut site, t(0), |rollout| {
        rollout.state().count(NodePhase::Draining) > 0
    });
    assert_eq!(record(&rollout, "a").phase, NodePhase::Skipped);
    let stored = serde_json::to_string(rollout.state()).unwrap();
    // Meanwhile the orchestrator would now say otherwise: the decision
    // taken is the one kept.
    site.images.remove(&NodeId::from("a"));
    let mut resumed = Rollout::resume(serde_json::from_str(&stored).unwrap());
    drive(&mut resumed, &mut site, t(60), |_| false);
    assert!(resumed.is_finished());
    assert_eq!(record(&resumed, "a").phase, NodePhase::Skipped);
    assert!(!site.drained.contains(&NodeId::from("a")));
    for node in ["b", "c"] {
        assert_eq!(record(&resumed, node).phase, NodePhase::Done);
    }
}

#[test]
fn a_restart_before_the_images_are_read_asks_for_them_again() {
    let mut rollout = session(skipping(), 1);
    rollout.handle_timeout(t(0));
    let actions = take_actions(&mut rollout);
    rollout.handle_outcome(
        t(0),
        actions[0].0,
        Ok(ActionOutput::Members(ids(&["a", "b"]))),
    );
    let actions = take_actions(&mut rollout);
    assert!(
        matches!(&actions[..], [(_, Action::ReadCurrentImages { nodes, .. })] if *nodes == ids(&["a", "b"])),
        "{actions:?}"
    );
    assert_eq!(rollout.state().stage, Stage::Snapshot);
    let stored = serde_json::to_string(rollout.state()).unwrap();
    let mut resumed = Rollout::resume(serde_json::from_str(&stored).unwrap());
    resumed.handle_timeout(t(5));
    let actions = take_actions(&mut resumed);
    assert!(
        matches!(&actions[..], [(_, Action::ReadCurrentImages { .. })]),
        "{actions:?}"
    );
    // An orchestrator that cannot tell: every node is upgraded, and the
    // messages say why.
    resumed.handle_outcome(
        t(5),
        actions[0].0,
        Err(ActionError {
            kind: ActionErrorKind::NotSupported,
            message: "slurm-reboot does not support reading the image".into(),
        }),
    );
    assert_eq!(resumed.state().stage, Stage::PrepareGroups);
    assert!(
        resumed
            .status()
            .messages
            .iter()
            .any(|m| m.starts_with("Cannot tell which nodes are already on the target image"))
    );
}
