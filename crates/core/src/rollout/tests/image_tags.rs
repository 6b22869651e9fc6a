//! `image_features` driven by hand: upgraded nodes get `img_<template>` in
//! place of an older tag, the others keep exactly their own features, lists
//! lost by the workload manager are set again, and a resumed session sets
//! them from its record.

use std::collections::BTreeMap;

use super::*;

/// The workload manager's features, and the nodes whose boots fail.
struct Cluster {
    features: BTreeMap<NodeId, Vec<String>>,
    failing: Vec<NodeId>,
    /// Every list set, in order.
    sets: Vec<(NodeId, Vec<String>)>,
    /// Whether reads and settings answer "not supported".
    unsupported: bool,
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

fn cluster(own: &[(&str, &[&str])]) -> Cluster {
    Cluster {
        features: own
            .iter()
            .map(|(node, list)| (NodeId::from(*node), strings(list)))
            .collect(),
        failing: Vec::new(),
        sets: Vec::new(),
        unsupported: false,
    }
}

fn policy() -> RolloutPolicy {
    RolloutPolicy {
        image_features: true,
        ..RolloutPolicy::default()
    }
}

fn new_rollout(step: u32) -> Rollout {
    Rollout::new(Uuid::nil(), spec(step), policy(), t(0))
}

/// Answers `action` as `cluster` would; checks a list is set only once the
/// node's own features are in its record.
fn answer(
    rollout: &Rollout,
    cluster: &mut Cluster,
    action: &Action,
) -> Result<ActionOutput, ActionError> {
    let not_supported = || ActionError {
        kind: ActionErrorKind::NotSupported,
        message: "workload manager does not support setting node features".into(),
    };
    Ok(match action {
        Action::ReadStartingGroup { .. } => {
            ActionOutput::Members(cluster.features.keys().cloned().collect())
        }
        Action::PrepareGroups { .. } => ActionOutput::GroupsPrepared {
            cleared_failed: vec![],
            cleared_upgrading: vec![],
        },
        Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
            nodes
                .iter()
                .map(|node| workload(node.as_str(), WorkloadState::Drained, true))
                .collect(),
        ),
        Action::StartBoot { request, .. } => ActionOutput::BootStarted(BootHandle {
            key: request.key.clone(),
            id: request.key.clone(),
        }),
        Action::ObserveBoot { .. } => ActionOutput::BootStatus(
            rollout
                .state()
                .nodes
                .iter()
                .filter(|record| record.phase == NodePhase::Booting)
                .map(|record| {
                    let node = &record.id;
                    let state = if cluster.failing.contains(node) {
                        NodeBootState::Failed {
                            reason: "no image".into(),
                        }
                    } else {
                        NodeBootState::Ok
                    };
                    boot(node.as_str(), state)
                })
                .collect(),
        ),
        Action::ReadFeatures { .. } | Action::SetFeatures { .. } if cluster.unsupported => {
            return Err(not_supported());
        }
        Action::ReadFeatures { nodes } => ActionOutput::Features(
            nodes
                .iter()
                .map(|node| (node.clone(), cluster.features[node].clone()))
                .collect(),
        ),
        Action::SetFeatures { features } => {
            for (node, list) in features {
                let record = rollout
                    .state()
                    .nodes
                    .iter()
                    .find(|record| &record.id == node)
                    .unwrap();
                assert!(
                    record.own_features.is_some(),
                    "{node} set to {list:?} before its own features were read"
                );
                cluster.features.insert(node.clone(), list.clone());
                cluster.sets.push((node.clone(), list.clone()));
            }
            ActionOutput::Done
        }
        _ => ActionOutput::Done,
    })
}

/// Drives `rollout` against `cluster` until `stop` says so or it finishes
/// (at most `limit` simulated seconds past `now`); returns the time reached.
fn drive(
    rollout: &mut Rollout,
    cluster: &mut Cluster,
    mut now: Timestamp,
    limit: Duration,
    stop: impl Fn(&Rollout, &Cluster) -> bool,
) -> Timestamp {
    let end = now + limit;
    rollout.handle_timeout(now);
    while now < end && !rollout.is_finished() && !stop(rollout, cluster) {
        let actions = take_actions(rollout);
        if actions.is_empty() {
            now = match rollout.poll_timeout() {
                Some(deadline) if deadline > now => deadline,
                _ => now + Duration::from_secs(1),
            };
            rollout.handle_timeout(now);
            continue;
        }
        for (id, action) in actions {
            let output = answer(rollout, cluster, &action);
            rollout.handle_outcome(now, id, output);
        }
    }
    now
}

/// The phase of the node at `position`, once the snapshot is taken.
fn phase_of(rollout: &Rollout, position: usize) -> Option<NodePhase> {
    rollout.state().nodes.get(position).map(|node| node.phase)
}

fn tagged(own: &[&str]) -> Vec<String> {
    with_image_feature(&strings(own), "compute-image")
}

#[test]
fn upgraded_nodes_get_the_image_tag_in_place_of_the_old_one() {
    let mut cluster = cluster(&[("a", &["gpu", "img_old"]), ("b", &[]), ("c", &["bigmem"])]);
    let mut rollout = new_rollout(2);
    drive(
        &mut rollout,
        &mut cluster,
        t(0),
        Duration::from_secs(3600),
        |_, _| false,
    );
    assert!(rollout.is_finished());
    assert_eq!(rollout.state().count(NodePhase::Done), 3);
    assert_eq!(
        cluster.features[&NodeId::from("a")],
        strings(&["gpu", "img_compute_image"])
    );
    assert_eq!(
        cluster.features[&NodeId::from("b")],
        strings(&["img_compute_image"])
    );
    assert_eq!(cluster.features[&NodeId::from("c")], tagged(&["bigmem"]));
    // Each node's own list is kept in its record, for a restart.
    let own: Vec<Option<Vec<String>>> = rollout
        .state()
        .nodes
        .iter()
        .map(|node| node.own_features.clone())
        .collect();
    assert_eq!(
        own,
        vec![
            Some(strings(&["gpu", "img_old"])),
            Some(vec![]),
            Some(strings(&["bigmem"]))
        ]
    );
}

#[test]
fn without_the_policy_no_feature_is_read_or_set() {
    let mut cluster = cluster(&[("a", &["gpu"]), ("b", &[])]);
    let mut rollout = Rollout::new(Uuid::nil(), spec(2), RolloutPolicy::default(), t(0));
    let mut asked = Vec::new();
    let mut now = t(0);
    rollout.handle_timeout(now);
    while !rollout.is_finished() && now < t(3600) {
        let actions = take_actions(&mut rollout);
        if actions.is_empty() {
            now = rollout
                .poll_timeout()
                .map_or(now + Duration::from_secs(1), |d| {
                    d.max(now + Duration::from_secs(1))
                });
            rollout.handle_timeout(now);
            continue;
        }
        for (id, action) in actions {
            asked.push(action.clone());
            let output = answer(&rollout, &mut cluster, &action);
            rollout.handle_outcome(now, id, output);
        }
    }
    assert!(rollout.is_finished());
    assert!(
        !asked.iter().any(|action| matches!(
            action,
            Action::ReadFeatures { .. } | Action::SetFeatures { .. }
        )),
        "{asked:?}"
    );
    assert_eq!(cluster.features[&NodeId::from("a")], strings(&["gpu"]));
}

#[test]
fn a_failed_node_keeps_its_own_features() {
    let mut cluster = cluster(&[("a", &["gpu", "img_old"]), ("b", &["img_old"])]);
    cluster.failing.push(NodeId::from("b"));
    let mut rollout = new_rollout(2);
    drive(
        &mut rollout,
        &mut cluster,
        t(0),
        Duration::from_secs(3600),
        |_, _| false,
    );
    assert!(rollout.is_finished());
    assert_eq!(
        phases(&rollout),
        vec![
            ("a".into(), NodePhase::Done),
            ("b".into(), NodePhase::Failed)
        ]
    );
    assert_eq!(cluster.features[&NodeId::from("a")], tagged(&["gpu"]));
    assert_eq!(cluster.features[&NodeId::from("b")], strings(&["img_old"]));
    assert!(
        cluster
            .sets
            .iter()
            .all(|(node, list)| node.as_str() != "b" || list == &strings(&["img_old"])),
        "{:?}",
        cluster.sets
    );
}

#[test]
fn a_deleted_session_tags_only_what_it_upgraded() {
    let mut cluster = cluster(&[("a", &["gpu"]), ("b", &["img_old"]), ("c", &[])]);
    let mut rollout = new_rollout(1);
    let now = drive(
        &mut rollout,
        &mut cluster,
        t(0),
        Duration::from_secs(3600),
        |rollout, _| {
            phase_of(rollout, 0) == Some(NodePhase::Done)
                && phase_of(rollout, 1) == Some(NodePhase::Draining)
        },
    );
    rollout.cancel(now);
    drive(
        &mut rollout,
        &mut cluster,
        now,
        Duration::from_secs(3600),
        |_, _| false,
    );
    assert!(rollout.is_finished());
    assert_eq!(
        phases(&rollout),
        vec![
            ("a".into(), NodePhase::Done),
            ("b".into(), NodePhase::Skipped),
            ("c".into(), NodePhase::Pending)
        ]
    );
    assert_eq!(cluster.features[&NodeId::from("a")], tagged(&["gpu"]));
    assert_eq!(cluster.features[&NodeId::from("b")], strings(&["img_old"]));
    assert_eq!(cluster.features[&NodeId::from("c")], Vec::<String>::new());
}

#[test]
fn lists_the_workload_manager_lost_are_set_again() {
    let mut cluster = cluster(&[("a", &["gpu"]), ("b", &[])]);
    // One node a step; the second step's node holds the session long
    // enough for a read-back: its drain never ends until told.
    let mut rollout = new_rollout(1);
    let now = drive(
        &mut rollout,
        &mut cluster,
        t(0),
        Duration::from_secs(3600),
        |rollout, _| phase_of(rollout, 0) == Some(NodePhase::Done),
    );
    let now = drive(
        &mut rollout,
        &mut cluster,
        now,
        Duration::from_secs(3600),
        |_, cluster| cluster.features[&NodeId::from("a")] == tagged(&["gpu"]),
    );
    // A restart of slurmctld puts back slurm.conf's lists.
    cluster
        .features
        .insert(NodeId::from("a"), strings(&["gpu"]));
    let sets_before = cluster.sets.len();
    drive(
        &mut rollout,
        &mut cluster,
        now,
        Duration::from_secs(3600),
        |_, _| false,
    );
    assert!(rollout.is_finished());
    assert_eq!(cluster.features[&NodeId::from("a")], tagged(&["gpu"]));
    assert!(
        cluster.sets[sets_before..]
            .iter()
            .any(|(node, list)| node.as_str() == "a" && list == &tagged(&["gpu"])),
        "{:?}",
        cluster.sets
    );
    assert!(
        rollout
            .status()
            .messages
            .iter()
            .any(|message| message.contains("lost node features")),
        "{:?}",
        rollout.status().messages
    );
}

#[test]
fn a_loss_in_the_last_minute_is_made_good_before_the_end() {
    let mut cluster = cluster(&[("a", &["gpu"])]);
    let mut rollout = new_rollout(1);
    let now = drive(
        &mut rollout,
        &mut cluster,
        t(0),
        Duration::from_secs(3600),
        |_, cluster| cluster.features[&NodeId::from("a")] == tagged(&["gpu"]),
    );
    assert!(!rollout.is_finished());
    // Lost just after it was set, before any periodic read-back.
    cluster
        .features
        .insert(NodeId::from("a"), strings(&["gpu"]));
    drive(
        &mut rollout,
        &mut cluster,
        now,
        Duration::from_secs(3600),
        |_, _| false,
    );
    assert!(rollout.is_finished());
    assert_eq!(cluster.features[&NodeId::from("a")], tagged(&["gpu"]));
}

#[test]
fn a_resumed_session_sets_the_lists_from_its_record() {
    let mut cluster = cluster(&[("a", &["gpu"]), ("b", &["img_old"])]);
    let mut rollout = new_rollout(1);
    let now = drive(
        &mut rollout,
        &mut cluster,
        t(0),
        Duration::from_secs(3600),
        |_, cluster| cluster.features[&NodeId::from("a")] == tagged(&["gpu"]),
    );
    // A crash: the record is what the store holds; the workload manager
    // meanwhile has its lists back (a restart of slurmctld).
    let stored: RolloutState =
        serde_json::from_value(serde_json::to_value(rollout.state()).unwrap()).unwrap();
    cluster
        .features
        .insert(NodeId::from("a"), strings(&["gpu"]));
    let mut resumed = Rollout::resume(stored);
    drive(
        &mut resumed,
        &mut cluster,
        now,
        Duration::from_secs(3600),
        |_, _| false,
    );
    assert!(resumed.is_finished());
    assert_eq!(cluster.features[&NodeId::from("a")], tagged(&["gpu"]));
    assert_eq!(
        cluster.features[&NodeId::from("b")],
        tagged(&["img_old"]),
        "b was upgraded after the restart"
    );
}

#[test]
fn without_support_the_session_goes_on_untagged_and_says_so() {
    let mut cluster = cluster(&[("a", &["gpu"])]);
    cluster.unsupported = true;
    let mut rollout = new_rollout(1);
    drive(
        &mut rollout,
        &mut cluster,
        t(0),
        Duration::from_secs(3600),
        |_, _| false,
    );
    assert!(rollout.is_finished());
    assert_eq!(rollout.state().count(NodePhase::Done), 1);
    assert_eq!(cluster.features[&NodeId::from("a")], strings(&["gpu"]));
    assert!(
        rollout
            .status()
            .messages
            .iter()
            .any(|message| message.starts_with("image_features: the workload manager cannot")),
        "{:?}",
        rollout.status().messages
    );
}

#[test]
fn a_node_record_stored_before_image_features_loads() {
    let record: NodeRecord = serde_json::from_value(serde_json::json!({
        "id": "a",
        "phase": "done",
        "since": "2026-12-06T10:00:00Z",
        "own_weight": 3
    }))
    .unwrap();
    assert_eq!(record.own_features, None);
    let mut with = record.clone();
    with.own_features = Some(vec![]);
    let json = serde_json::to_value(&with).unwrap();
    assert_eq!(json["own_features"], serde_json::json!([]));
    assert!(
        serde_json::to_value(&record)
            .unwrap()
            .get("own_features")
            .is_none()
    );
}
