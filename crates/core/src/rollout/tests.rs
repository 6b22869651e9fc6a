//! Transition tables of the rollout state machine, driven by hand.

use std::time::Duration;

use super::*;
use crate::ports::{BootHandle, WorkloadNode};

const POLL: Duration = Duration::from_secs(10);

fn spec(step: u32) -> SessionSpec {
    SessionSpec {
        failed_label: "failed".into(),
        starting_label: "compute".into(),
        upgrade_step_size: step,
        upgrade_template_id: "compute-image".into(),
        upgrading_label: "upgrading".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    }
}

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_secs(1_000_000 + seconds)
}

fn ids(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(|name| NodeId::from(*name)).collect()
}

fn take_actions(rollout: &mut Rollout) -> Vec<(ActionId, Action)> {
    std::iter::from_fn(|| rollout.poll_action()).collect()
}

fn workload(node: &str, state: WorkloadState, responding: bool) -> WorkloadNode {
    WorkloadNode {
        node: NodeId::from(node),
        state,
        responding,
        jobs_end_by: None,
        reason: None,
    }
}

fn boot(node: &str, state: NodeBootState) -> NodeBootStatus {
    NodeBootStatus {
        node: NodeId::from(node),
        state,
    }
}

fn phases(rollout: &Rollout) -> Vec<(String, NodePhase)> {
    rollout
        .state()
        .nodes
        .iter()
        .map(|node| (node.id.to_string(), node.phase))
        .collect()
}

/// A rollout of `nodes` at step size `step`, driven to the point where its
/// first step's drain was asked for. Returns the drain and observe actions.
fn started(nodes: &[&str], step: u32) -> (Rollout, Vec<(ActionId, Action)>) {
    let mut rollout = Rollout::new(Uuid::nil(), spec(step), RolloutPolicy::default(), t(0));
    // UPDATING from the start, as CRUS answered a new session.
    assert_eq!(rollout.status().state, SessionState::Updating);
    rollout.handle_timeout(t(0));
    assert_eq!(rollout.status().state, SessionState::Updating);
    let actions = take_actions(&mut rollout);
    assert_eq!(
        actions
            .iter()
            .map(|(_, action)| action.clone())
            .collect::<Vec<_>>(),
        [Action::ReadStartingGroup {
            label: "compute".into()
        }]
    );
    rollout.handle_outcome(t(0), actions[0].0, Ok(ActionOutput::Members(ids(nodes))));
    let actions = take_actions(&mut rollout);
    assert!(matches!(actions[..], [(_, Action::PrepareGroups { .. })]));
    rollout.handle_outcome(
        t(0),
        actions[0].0,
        Ok(ActionOutput::GroupsPrepared {
            cleared_failed: ids(&["old"]),
            cleared_upgrading: vec![],
        }),
    );
    // Every node is read once before the first step (issue 21): all idle.
    let actions = take_actions(&mut rollout);
    let [(read_id, Action::ObserveWorkload { nodes: read, .. })] = &actions[..] else {
        panic!("expected one read of every node, got {actions:?}");
    };
    assert_eq!(read.len(), nodes.len());
    let idle = read
        .iter()
        .map(|node| workload(node.as_str(), WorkloadState::Idle, true))
        .collect();
    rollout.handle_outcome(t(0), *read_id, Ok(ActionOutput::Workload(idle)));
    let actions = take_actions(&mut rollout);
    (rollout, actions)
}

#[test]
fn happy_path_follows_the_crus_procedure_step_by_step() {
    let (mut rollout, actions) = started(&["x1000c0s0b0n1", "x1000c0s0b0n0", "x1000c0s1b0n0"], 2);
    assert!(
        rollout
            .status()
            .messages
            .iter()
            .any(|m| m == "Cleared node group 'failed' (1 node from an earlier session)")
    );
    // Sorted snapshot, first step of two nodes: drain them, watch them.
    let [
        (
            drain_id,
            Action::Drain {
                nodes,
                reason,
                upgrading_label,
            },
        ),
        (observe_id, Action::ObserveWorkload { nodes: watched, .. }),
    ] = &actions[..]
    else {
        panic!("unexpected actions {actions:?}");
    };
    assert_eq!(*nodes, ids(&["x1000c0s0b0n0", "x1000c0s0b0n1"]));
    assert_eq!(*watched, *nodes);
    assert_eq!(reason, &format!("crus:{}", Uuid::nil()));
    assert_eq!(upgrading_label, "upgrading");
    rollout.handle_outcome(t(1), *drain_id, Ok(ActionOutput::Done));

    // One drained, one still running a job: no boot yet (CRUS's barrier).
    rollout.handle_outcome(
        t(1),
        *observe_id,
        Ok(ActionOutput::Workload(vec![
            workload("x1000c0s0b0n0", WorkloadState::Drained, true),
            workload("x1000c0s0b0n1", WorkloadState::Draining, true),
        ])),
    );
    assert!(take_actions(&mut rollout).is_empty());
    assert_eq!(rollout.poll_timeout(), Some(t(1) + POLL));
    rollout.handle_timeout(t(11));
    let actions = take_actions(&mut rollout);
    let [(observe_id, Action::ObserveWorkload { nodes, .. })] = &actions[..] else {
        panic!("unexpected actions {actions:?}");
    };
    assert_eq!(
        *nodes,
        ids(&["x1000c0s0b0n1"]),
        "only draining nodes are watched"
    );
    rollout.handle_outcome(
        t(11),
        *observe_id,
        Ok(ActionOutput::Workload(vec![workload(
            "x1000c0s0b0n1",
            WorkloadState::Drained,
            true,
        )])),
    );

    // Both drained: boot under a key derived from the upgrade id and step.
    let actions = take_actions(&mut rollout);
    let [
        (
            boot_id,
            Action::StartBoot {
                step: 0,
                boot: 0,
                request,
            },
        ),
    ] = &actions[..]
    else {
        panic!("unexpected actions {actions:?}");
    };
    assert_eq!(request.key, format!("crus-{}-step-0", Uuid::nil()));
    assert_eq!(request.template, "compute-image");
    assert_eq!(request.nodes, ids(&["x1000c0s0b0n0", "x1000c0s0b0n1"]));
    let handle = BootHandle {
        key: request.key.clone(),
        id: "bos-1".into(),
    };
    rollout.handle_outcome(
        t(12),
        *boot_id,
        Ok(ActionOutput::BootStarted(handle.clone())),
    );
    assert!(take_actions(&mut rollout).is_empty());
    rollout.handle_timeout(t(22));
    let actions = take_actions(&mut rollout);
    let [
        (
            status_id,
            Action::ObserveBoot {
                step: 0,
                boot: 0,
                handle: asked,
            },
        ),
    ] = &actions[..]
    else {
        panic!("unexpected actions {actions:?}");
    };
    assert_eq!(*asked, handle);

    // One boots, one fails: only that one fails.
    rollout.handle_outcome(
        t(22),
        *status_id,
        Ok(ActionOutput::BootStatus(vec![
            boot("x1000c0s0b0n0", NodeBootState::Ok),
            boot(
                "x1000c0s0b0n1",
                NodeBootState::Failed {
                    reason: "no image".into(),
                },
            ),
        ])),
    );
    let actions = take_actions(&mut rollout);
    let mut mark_failed = None;
    let mut observe = None;
    for (id, action) in &actions {
        match action {
            Action::MarkFailed {
                nodes,
                failed_label,
                ..
            } => {
                assert_eq!(failed_label, "failed");
                // The workload manager's mark starts with this session's
                // drain reason, so a later session knows crus wrote it.
                assert_eq!(
                    *nodes,
                    vec![(
                        NodeId::from("x1000c0s0b0n1"),
                        format!("crus:{}: boot failed: no image", rollout.state().upgrade_id)
                    )]
                );
                mark_failed = Some(*id);
            }
            Action::ObserveWorkload { nodes, .. } => {
                assert_eq!(*nodes, ids(&["x1000c0s0b0n0"]));
                observe = Some(*id);
            }
            other => panic!("unexpected action {other:?}"),
        }
    }
    let (Some(mark_failed), Some(observe)) = (mark_failed, observe) else {
        panic!("expected mark-failed and observe, got {actions:?}");
    };
    rollout.handle_outcome(t(23), mark_failed, Ok(ActionOutput::Done));
    // Booted but not answering yet: wait. Answering: resume.
    rollout.handle_outcome(
        t(23),
        observe,
        Ok(ActionOutput::Workload(vec![workload(
            "x1000c0s0b0n0",
            WorkloadState::Down,
            false,
        )])),
    );
    assert!(take_actions(&mut rollout).is_empty());
    rollout.handle_timeout(t(33));
    let actions = take_actions(&mut rollout);
    rollout.handle_outcome(
        t(33),
        actions[0].0,
        Ok(ActionOutput::Workload(vec![workload(
            "x1000c0s0b0n0",
            WorkloadState::Drained,
            true,
        )])),
    );
    let actions = take_actions(&mut rollout);
    let [(resume_id, Action::Resume { nodes, .. })] = &actions[..] else {
        panic!("unexpected actions {actions:?}");
    };
    assert_eq!(*nodes, ids(&["x1000c0s0b0n0"]));
    rollout.handle_outcome(t(34), *resume_id, Ok(ActionOutput::Done));

    // Step 0 finished; step 1 starts at once with the last node.
    assert_eq!(
        phases(&rollout),
        [
            ("x1000c0s0b0n0".to_string(), NodePhase::Done),
            ("x1000c0s0b0n1".to_string(), NodePhase::Failed),
            ("x1000c0s1b0n0".to_string(), NodePhase::Draining),
        ]
    );
    let messages = rollout.status().messages;
    assert!(
        messages.contains(&"Step 0 finished: 1 node upgraded, 1 failed".to_string()),
        "{messages:#?}"
    );
    assert!(
        messages.contains(&"Step 1 started: draining 1 node (x1000c0s1b0n0)".to_string()),
        "{messages:#?}"
    );
    assert_eq!(rollout.state().out_of_service(), 1);
    let counts = rollout
        .status()
        .nodes
        .expect("counts once the snapshot is taken");
    assert_eq!(
        (
            counts["total"],
            counts["done"],
            counts["failed"],
            counts["draining"],
            counts["pending"]
        ),
        (3, 1, 1, 1, 0)
    );
}

/// Drives a one-step rollout whose nodes all drain and boot fine, up to the
/// point where the nodes are resumed; returns it with the resume answered.
fn finish_one_step(rollout: &mut Rollout, now: Timestamp) {
    for _ in 0..20 {
        let actions = take_actions(rollout);
        if actions.is_empty() {
            if rollout.is_finished() {
                return;
            }
            let Some(deadline) = rollout.poll_timeout() else {
                return;
            };
            rollout.handle_timeout(deadline.max(now));
            continue;
        }
        for (id, action) in actions {
            let output = match &action {
                Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
                    nodes
                        .iter()
                        .map(|node| workload(node.as_str(), WorkloadState::Drained, true))
                        .collect(),
                ),
                Action::StartBoot { request, .. } => ActionOutput::BootStarted(BootHandle {
                    key: request.key.clone(),
                    id: "b".into(),
                }),
                Action::ObserveBoot { .. } => ActionOutput::BootStatus(
                    rollout
                        .state()
                        .nodes
                        .iter()
                        .map(|node| boot(node.id.as_str(), NodeBootState::Ok))
                        .collect(),
                ),
                _ => ActionOutput::Done,
            };
            rollout.handle_outcome(now, id, Ok(output));
        }
    }
}

#[test]
fn completes_in_ready_with_a_crus_style_last_message() {
    let (mut rollout, _) = started(&["a", "b"], 2);
    let mut rollout_fresh = Rollout::resume(rollout.state().clone());
    finish_one_step(&mut rollout_fresh, t(5));
    assert!(rollout_fresh.is_finished());
    let status = rollout_fresh.status();
    assert_eq!(status.state, SessionState::Ready);
    assert!(status.completed);
    // CRUS's last message word for word, the summary just before it.
    assert_eq!(
        status.messages.last().map(String::as_str),
        Some("Upgrade Session Completed")
    );
    assert_eq!(
        status.messages[status.messages.len() - 2],
        "2 of 2 nodes upgraded"
    );
    // The original (whose actions were never answered) is still running.
    assert!(!rollout.is_finished());
    assert!(rollout.take_dirty());
}

#[test]
fn a_new_session_is_updating_and_told_so_when_taken_up() {
    let mut rollout = Rollout::new(Uuid::nil(), spec(2), RolloutPolicy::default(), t(0));
    assert_eq!(rollout.status().state, SessionState::Updating);
    assert_eq!(rollout.status().started_at, None);
    rollout.handle_timeout(t(1));
    assert_eq!(rollout.status().started_at, Some(t(1)));
    let events = rollout.take_events();
    assert!(events.iter().any(|event| event.kind
        == EventKind::State {
            state: SessionState::Updating
        }));
}

#[test]
fn a_session_stored_as_created_resumes_as_updating() {
    let mut state = Rollout::new(Uuid::nil(), spec(2), RolloutPolicy::default(), t(0))
        .state()
        .clone();
    state.state = SessionState::Created;
    assert_eq!(status_of(&state).state, SessionState::Updating);
    let rollout = Rollout::resume(state);
    assert_eq!(rollout.state().state, SessionState::Updating);
}

#[test]
fn deleting_a_finished_session_makes_it_deleting() {
    let (rollout, _) = started(&["a", "b"], 2);
    let mut rollout = Rollout::resume(rollout.state().clone());
    finish_one_step(&mut rollout, t(5));
    assert_eq!(rollout.status().state, SessionState::Ready);
    let messages = rollout.status().messages;
    rollout.cancel(t(6));
    let status = rollout.status();
    assert_eq!(status.state, SessionState::Deleting);
    assert!(status.completed);
    // Nothing more to tell: the session is removed.
    assert_eq!(status.messages, messages);
}

#[test]
fn a_node_that_does_not_come_back_fails_alone_after_the_boot_timeout() {
    let (mut rollout, actions) = started(&["a", "b"], 2);
    rollout.handle_outcome(t(0), actions[0].0, Ok(ActionOutput::Done));
    rollout.handle_outcome(
        t(0),
        actions[1].0,
        Ok(ActionOutput::Workload(vec![
            workload("a", WorkloadState::Drained, true),
            workload("b", WorkloadState::Down, false),
        ])),
    );
    let actions = take_actions(&mut rollout);
    rollout.handle_outcome(
        t(1),
        actions[0].0,
        Ok(ActionOutput::BootStarted(BootHandle {
            key: "k".into(),
            id: "b".into(),
        })),
    );
    rollout.handle_timeout(t(11));
    let actions = take_actions(&mut rollout);
    rollout.handle_outcome(
        t(11),
        actions[0].0,
        Ok(ActionOutput::BootStatus(vec![
            boot("a", NodeBootState::Ok),
            boot("b", NodeBootState::InProgress),
        ])),
    );
    // `a` is verified and resumed; `b` keeps booting until the deadline.
    for (id, action) in take_actions(&mut rollout) {
        let output = match action {
            Action::ObserveWorkload { .. } => {
                ActionOutput::Workload(vec![workload("a", WorkloadState::Drained, true)])
            }
            _ => ActionOutput::Done,
        };
        rollout.handle_outcome(t(12), id, Ok(output));
    }
    for (id, _) in take_actions(&mut rollout) {
        rollout.handle_outcome(t(12), id, Ok(ActionOutput::Done));
    }
    assert_eq!(rollout.state().nodes[0].phase, NodePhase::Done);
    assert_eq!(rollout.state().nodes[1].phase, NodePhase::Booting);
    // Ten minutes from the boot service's acknowledgement (at t(1)).
    let deadline = t(1) + Duration::from_secs(600);
    // Polls keep coming before the deadline; the deadline is among the timers.
    let mut now = t(12);
    while now < deadline {
        let next = rollout.poll_timeout().expect("a timer while booting");
        assert!(next > now, "timer {next} not after {now}");
        assert!(
            next <= deadline,
            "the deadline {deadline} is among the timers, got {next}"
        );
        now = next;
        rollout.handle_timeout(now);
        // At the deadline too, the boot is looked at once more: only an
        // answer asked for since the deadline can say the node is late.
        for (id, action) in take_actions(&mut rollout) {
            assert!(matches!(action, Action::ObserveBoot { .. }), "{action:?}");
            assert_eq!(rollout.state().nodes[1].phase, NodePhase::Booting);
            rollout.handle_outcome(
                now,
                id,
                Ok(ActionOutput::BootStatus(vec![boot(
                    "b",
                    NodeBootState::InProgress,
                )])),
            );
        }
        if now >= deadline {
            break;
        }
    }
    assert_eq!(now, deadline);
    assert_eq!(rollout.state().nodes[1].phase, NodePhase::Failing);
    assert_eq!(
        rollout.state().nodes[1].reason.as_deref(),
        Some("did not come back within 10m of its boot starting")
    );
    let actions = take_actions(&mut rollout);
    assert!(matches!(&actions[..], [(_, Action::MarkFailed { nodes, .. })] if nodes.len() == 1));
}

/// The store refused to save the session after its boot was decided: the
/// controller holds every action until a save is taken, so the boot stays
/// queued while the clock runs on (an etcd leader election, a full disk).
/// The boot service was never asked, so no time-out can fail the nodes;
/// once the store takes the session, the boot goes out, and its timeout
/// counts from the boot service's acknowledgement.
#[test]
fn a_boot_held_back_by_a_refusing_store_does_not_time_out_before_it_is_asked_for() {
    let (mut rollout, actions) = started(&["a", "b"], 2);
    rollout.handle_outcome(
        t(0),
        actions[1].0,
        Ok(ActionOutput::Workload(vec![
            workload("a", WorkloadState::Drained, true),
            workload("b", WorkloadState::Drained, true),
        ])),
    );
    let held_until = t(0) + RolloutPolicy::default().boot_timeout * 3;
    let mut now = t(0);
    while now < held_until {
        now = (now + Duration::from_secs(60)).min(held_until);
        rollout.handle_timeout(now);
    }
    assert_eq!(
        phases(&rollout),
        [
            ("a".to_string(), NodePhase::Booting),
            ("b".to_string(), NodePhase::Booting)
        ]
    );
    let actions = take_actions(&mut rollout);
    assert!(
        !actions
            .iter()
            .any(|(_, action)| matches!(action, Action::MarkFailed { .. })),
        "{actions:?}"
    );
    let Some((start, _)) = actions
        .iter()
        .find(|(_, action)| matches!(action, Action::StartBoot { .. }))
    else {
        panic!("the held boot goes out once saved: {actions:?}")
    };
    rollout.handle_outcome(
        now,
        *start,
        Ok(ActionOutput::BootStarted(BootHandle {
            key: "k".into(),
            id: "held".into(),
        })),
    );
    // The timeout counts from the boot's start, not from its decision: the
    // nodes are still booting a minute before it runs out, and failed once
    // it has.
    let started = now;
    let deadline = started + RolloutPolicy::default().boot_timeout;
    let mut still_booting_before = false;
    while now < deadline + Duration::from_secs(60) {
        now = now + Duration::from_secs(30);
        rollout.handle_timeout(now);
        for (id, action) in take_actions(&mut rollout) {
            if matches!(action, Action::ObserveBoot { .. }) {
                rollout.handle_outcome(
                    now,
                    id,
                    Ok(ActionOutput::BootStatus(vec![
                        boot("a", NodeBootState::InProgress),
                        boot("b", NodeBootState::InProgress),
                    ])),
                );
            }
        }
        if now + Duration::from_secs(60) <= deadline {
            still_booting_before = phases(&rollout)
                .iter()
                .all(|(_, phase)| *phase == NodePhase::Booting);
            assert!(still_booting_before, "{:?} at {now}", phases(&rollout));
        }
    }
    assert!(still_booting_before);
    assert!(
        phases(&rollout)
            .iter()
            .all(|(_, phase)| *phase == NodePhase::Failing),
        "{:?}",
        phases(&rollout)
    );
}

/// The controller stalled past a boot's deadline (an etcd leader election
/// holds the store; the clock runs on). When it goes on, a workload read of
/// the nodes already verifying and a boot read are asked at once: the
/// workload read is answered first, then the boot read moves the other
/// node on to verifying. That node was not in the workload read, so the
/// read says nothing about it: it is read again, not failed (etcd_scale
/// failed 263–311 such nodes in about one run in four).
#[test]
fn a_node_booted_after_the_last_workload_read_was_asked_is_read_again_not_failed() {
    let (mut rollout, actions) = started(&["a", "b"], 2);
    rollout.handle_outcome(
        t(0),
        actions[1].0,
        Ok(ActionOutput::Workload(vec![
            workload("a", WorkloadState::Drained, true),
            workload("b", WorkloadState::Drained, true),
        ])),
    );
    // Answers: the boot starts; `a` is back at once (verifying, not yet
    // responding), `b` is still booting.
    let answer = |rollout: &mut Rollout, now: Timestamp, b_booted: bool, a_responding: bool| {
        for (id, action) in take_actions(rollout) {
            let output = match action {
                Action::StartBoot { .. } => ActionOutput::BootStarted(BootHandle {
                    key: "k".into(),
                    id: "boot-1".into(),
                }),
                Action::ObserveBoot { .. } => ActionOutput::BootStatus(vec![
                    boot("a", NodeBootState::Ok),
                    boot(
                        "b",
                        if b_booted {
                            NodeBootState::Ok
                        } else {
                            NodeBootState::InProgress
                        },
                    ),
                ]),
                Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
                    nodes
                        .iter()
                        .map(|node| workload(node.as_str(), WorkloadState::Drained, a_responding))
                        .collect(),
                ),
                _ => ActionOutput::Done,
            };
            rollout.handle_outcome(now, id, Ok(output));
        }
    };
    let mut now = t(1);
    rollout.handle_timeout(now);
    answer(&mut rollout, now, false, false);
    while now < t(60) {
        now = now + Duration::from_secs(10);
        rollout.handle_timeout(now);
        answer(&mut rollout, now, false, false);
    }
    assert_eq!(
        phases(&rollout),
        [
            ("a".to_string(), NodePhase::Verifying),
            ("b".to_string(), NodePhase::Booting)
        ]
    );
    // The stall: past the boot's deadline (10 minutes) with nothing asked.
    now = t(60) + RolloutPolicy::default().boot_timeout;
    rollout.handle_timeout(now);
    let mut asked = take_actions(&mut rollout);
    asked.sort_by_key(|(_, action)| !matches!(action, Action::ObserveWorkload { .. }));
    assert!(
        matches!(
            &asked[..],
            [
                (_, Action::ObserveWorkload { .. }),
                (_, Action::ObserveBoot { .. }),
                ..
            ]
        ),
        "{asked:?}"
    );
    for (id, action) in asked {
        let output = match action {
            Action::ObserveWorkload { nodes, .. } => {
                assert_eq!(nodes, ids(&["a"]), "b is booting, not read");
                ActionOutput::Workload(vec![workload("a", WorkloadState::Drained, true)])
            }
            Action::ObserveBoot { .. } => ActionOutput::BootStatus(vec![
                boot("a", NodeBootState::Ok),
                boot("b", NodeBootState::Ok),
            ]),
            _ => ActionOutput::Done,
        };
        rollout.handle_outcome(now, id, Ok(output));
    }
    now = now + Duration::from_secs(1);
    rollout.handle_timeout(now);
    assert_ne!(
        rollout.state().nodes[1].phase,
        NodePhase::Failing,
        "b was failed on a read that did not name it: {:?}",
        rollout.state().messages
    );
    // It is read, and found back.
    for _ in 0..5 {
        answer(&mut rollout, now, true, true);
        now = now + Duration::from_secs(10);
        rollout.handle_timeout(now);
    }
    answer(&mut rollout, now, true, true);
    assert!(
        rollout
            .state()
            .nodes
            .iter()
            .all(|node| node.phase != NodePhase::Failing && node.phase != NodePhase::Failed),
        "{:?}",
        phases(&rollout)
    );
}

#[test]
fn resuming_from_a_persisted_state_asks_again_for_the_boot_under_the_same_key() {
    let (mut rollout, actions) = started(&["a", "b"], 2);
    rollout.handle_outcome(
        t(0),
        actions[1].0,
        Ok(ActionOutput::Workload(vec![
            workload("a", WorkloadState::Drained, true),
            workload("b", WorkloadState::Drained, true),
        ])),
    );
    let actions = take_actions(&mut rollout);
    let [(_, Action::StartBoot { request: first, .. })] = &actions[..] else {
        panic!("{actions:?}")
    };
    // The controller persisted this state, then crashed before the boot was acknowledged.
    let persisted = serde_json::to_string(rollout.state()).unwrap();
    let mut resumed = Rollout::resume(serde_json::from_str(&persisted).unwrap());
    resumed.handle_timeout(t(30));
    let actions = take_actions(&mut resumed);
    let boots: Vec<&BootRequest> = actions
        .iter()
        .filter_map(|(_, action)| match action {
            Action::StartBoot { request, .. } => Some(request),
            _ => None,
        })
        .collect();
    assert_eq!(boots, [first]);
    assert!(
        actions
            .iter()
            .all(|(_, action)| !matches!(action, Action::Drain { .. })),
        "booting nodes are not drained again"
    );
}

#[test]
fn resuming_mid_drain_drains_again() {
    let (rollout, _) = started(&["a", "b", "c"], 2);
    let mut resumed = Rollout::resume(rollout.state().clone());
    resumed.handle_timeout(t(5));
    let actions = take_actions(&mut resumed);
    assert!(actions.iter().any(
        |(_, action)| matches!(action, Action::Drain { nodes, .. } if *nodes == ids(&["a", "b"]))
    ));
}

#[test]
fn deleting_releases_nodes_not_yet_booted_and_takes_no_new_ones() {
    let (mut rollout, first_actions) = started(&["a", "b", "c"], 2);
    rollout.handle_outcome(t(0), first_actions[0].0, Ok(ActionOutput::Done));
    rollout.cancel(t(1));
    assert_eq!(rollout.status().state, SessionState::Deleting);
    let actions = take_actions(&mut rollout);
    let resume = actions.iter().find_map(|(id, action)| match action {
        Action::Resume { nodes, .. } => Some((*id, nodes.clone())),
        _ => None,
    });
    let (resume_id, nodes) = resume.expect("a resume of the drained nodes");
    assert_eq!(nodes, ids(&["a", "b"]));
    rollout.handle_outcome(t(2), resume_id, Ok(ActionOutput::Done));
    assert_eq!(actions.len(), 1, "{actions:?}");
    // The session does not clean up while its first observation is unanswered.
    assert!(take_actions(&mut rollout).is_empty());
    rollout.handle_outcome(t(2), first_actions[1].0, Ok(ActionOutput::Workload(vec![])));
    let actions = take_actions(&mut rollout);
    assert!(
        matches!(&actions[..], [(_, Action::ClearUpgradingGroup { .. })]),
        "{actions:?}"
    );
    rollout.handle_outcome(t(3), actions[0].0, Ok(ActionOutput::Done));
    assert!(rollout.is_finished());
    assert_eq!(
        rollout.status().state,
        SessionState::Deleting,
        "a deleted session never reads READY"
    );
    assert_eq!(rollout.state().count(NodePhase::Skipped), 2);
    assert_eq!(
        rollout.state().count(NodePhase::Pending),
        1,
        "the third node was never touched"
    );
}

#[test]
fn cancelling_before_the_snapshot_finishes_at_once() {
    let mut rollout = Rollout::new(Uuid::nil(), spec(2), RolloutPolicy::default(), t(0));
    rollout.cancel(t(0));
    assert!(rollout.is_finished());
    assert!(take_actions(&mut rollout).is_empty());
}

#[test]
fn an_empty_starting_group_completes_without_touching_anything() {
    let mut rollout = Rollout::new(Uuid::nil(), spec(2), RolloutPolicy::default(), t(0));
    rollout.handle_timeout(t(0));
    let actions = take_actions(&mut rollout);
    rollout.handle_outcome(t(0), actions[0].0, Ok(ActionOutput::Members(vec![])));
    let actions = take_actions(&mut rollout);
    assert!(matches!(
        &actions[..],
        [(_, Action::ClearUpgradingGroup { .. })]
    ));
    rollout.handle_outcome(t(0), actions[0].0, Ok(ActionOutput::Done));
    assert!(rollout.is_finished());
    assert!(rollout.status().messages[0].contains("has no members"));
}

#[test]
fn a_refused_session_action_is_reported_once_and_retried_later() {
    let mut rollout = Rollout::new(Uuid::nil(), spec(2), RolloutPolicy::default(), t(0));
    let refusal = ActionError {
        kind: ActionErrorKind::NotFound,
        message: "group 'compute' not found".into(),
    };
    rollout.handle_timeout(t(0));
    for round in 0..3 {
        let now = t(round * 30);
        let actions = take_actions(&mut rollout);
        assert!(
            matches!(&actions[..], [(_, Action::ReadStartingGroup { .. })]),
            "round {round}: {actions:?}"
        );
        rollout.handle_outcome(now, actions[0].0, Err(refusal.clone()));
        assert!(
            take_actions(&mut rollout).is_empty(),
            "not repeated at once"
        );
        assert_eq!(rollout.poll_timeout(), Some(now + Duration::from_secs(30)));
        rollout.handle_timeout(now + Duration::from_secs(30));
    }
    let messages = rollout.status().messages;
    assert_eq!(
        messages,
        ["Reading group 'compute' failed: group 'compute' not found; retrying every 30s"]
    );
}

#[test]
fn a_node_the_workload_manager_does_not_know_fails_without_blocking_its_step() {
    let (mut rollout, actions) = started(&["a", "ghost"], 2);
    rollout.handle_outcome(t(0), actions[0].0, Ok(ActionOutput::Done));
    rollout.handle_outcome(
        t(0),
        actions[1].0,
        Ok(ActionOutput::Workload(vec![
            workload("a", WorkloadState::Drained, true),
            workload("ghost", WorkloadState::Unknown, false),
        ])),
    );
    let actions = take_actions(&mut rollout);
    assert!(actions.iter().any(|(_, action)| matches!(action, Action::StartBoot { request, .. } if request.nodes == ids(&["a"]))));
    assert!(actions.iter().any(|(_, action)| matches!(action, Action::MarkFailed { nodes, .. } if nodes[0].0.as_str() == "ghost")));
}

#[test]
fn a_drain_sent_again_after_a_refusal_keeps_its_first_ask() {
    // `drain_timeout` counts from the first ask, however often it is refused.
    let (mut rollout, actions) = started(&["a"], 1);
    assert!(matches!(actions[0].1, Action::Drain { .. }), "{actions:?}");
    assert_eq!(rollout.state().nodes[0].drain_asked_at, Some(t(0)));
    rollout.handle_outcome(
        t(1),
        actions[0].0,
        Err(ActionError {
            kind: ActionErrorKind::Unavailable,
            message: "slurmctld is not answering".into(),
        }),
    );
    rollout.handle_timeout(t(60));
    let again = take_actions(&mut rollout);
    assert!(
        again.iter().any(
            |(_, action)| matches!(action, Action::Drain { nodes, .. } if *nodes == ids(&["a"]))
        ),
        "{again:?}"
    );
    assert_eq!(rollout.state().nodes[0].drain_asked_at, Some(t(0)));
}

#[test]
fn a_refused_batch_drain_is_split_so_only_the_unknown_node_fails() {
    let (mut rollout, actions) = started(&["a", "ghost"], 2);
    rollout.handle_outcome(
        t(0),
        actions[0].0,
        Err(ActionError {
            kind: ActionErrorKind::NotFound,
            message: "node ghost not found".into(),
        }),
    );
    let drains: Vec<(ActionId, Vec<NodeId>)> = take_actions(&mut rollout)
        .into_iter()
        .filter_map(|(id, action)| match action {
            Action::Drain { nodes, .. } => Some((id, nodes)),
            _ => None,
        })
        .collect();
    assert_eq!(
        drains
            .iter()
            .map(|(_, nodes)| nodes.clone())
            .collect::<Vec<_>>(),
        [ids(&["a"]), ids(&["ghost"])]
    );
    rollout.handle_outcome(t(1), drains[0].0, Ok(ActionOutput::Done));
    rollout.handle_outcome(
        t(1),
        drains[1].0,
        Err(ActionError {
            kind: ActionErrorKind::NotFound,
            message: "node ghost not found".into(),
        }),
    );
    assert_eq!(
        phases(&rollout),
        [
            ("a".to_string(), NodePhase::Draining),
            ("ghost".to_string(), NodePhase::Failing)
        ]
    );
}

#[test]
fn a_refused_boot_is_not_asked_for_again() {
    let (mut rollout, actions) = started(&["a"], 1);
    rollout.handle_outcome(t(0), actions[0].0, Ok(ActionOutput::Done));
    rollout.handle_outcome(
        t(0),
        actions[1].0,
        Ok(ActionOutput::Workload(vec![workload(
            "a",
            WorkloadState::Drained,
            true,
        )])),
    );
    let actions = take_actions(&mut rollout);
    assert!(matches!(&actions[..], [(_, Action::StartBoot { .. })]));
    rollout.handle_outcome(
        t(1),
        actions[0].0,
        Err(ActionError {
            kind: ActionErrorKind::Invalid,
            message: "bad template".into(),
        }),
    );
    let actions = take_actions(&mut rollout);
    assert!(
        matches!(&actions[..], [(_, Action::MarkFailed { .. })]),
        "{actions:?}"
    );
    rollout.handle_outcome(t(2), actions[0].0, Ok(ActionOutput::Done));
    let actions = take_actions(&mut rollout);
    assert!(
        matches!(&actions[..], [(_, Action::ClearUpgradingGroup { .. })]),
        "{actions:?}"
    );
}

#[test]
fn a_refused_drain_of_an_unknown_node_fails_it() {
    let (mut rollout, actions) = started(&["a"], 1);
    rollout.handle_outcome(
        t(0),
        actions[0].0,
        Err(ActionError {
            kind: ActionErrorKind::NotFound,
            message: "node a not found".into(),
        }),
    );
    assert_eq!(rollout.state().nodes[0].phase, NodePhase::Failing);
    assert_eq!(
        rollout.state().nodes[0].reason.as_deref(),
        Some("could not be drained: node a not found")
    );
}

#[test]
fn retryable_errors_are_told_once() {
    let (mut rollout, actions) = started(&["a"], 1);
    for _ in 0..3 {
        rollout.note_retry(t(0), &actions[0].1, "slurm is unavailable: timed out");
    }
    let count = rollout
        .status()
        .messages
        .iter()
        .filter(|m| m.starts_with("Draining 1 node failed, retrying"))
        .count();
    assert_eq!(count, 1);
}

#[test]
fn never_more_than_the_step_size_out_of_service() {
    let names: Vec<String> = (0..7).map(|n| format!("n{n}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (rollout, _) = started(&refs, 3);
    let mut rollout = Rollout::resume(rollout.state().clone());
    let mut now = t(1);
    for _ in 0..200 {
        assert!(rollout.state().out_of_service() <= 3);
        if rollout.is_finished() {
            break;
        }
        let actions = take_actions(&mut rollout);
        if actions.is_empty() {
            now = rollout.poll_timeout().expect("a timer").max(now);
            rollout.handle_timeout(now);
            continue;
        }
        for (id, action) in actions {
            let output = match &action {
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
                        .map(|node| boot(node.id.as_str(), NodeBootState::Ok))
                        .collect(),
                ),
                _ => ActionOutput::Done,
            };
            rollout.handle_outcome(now, id, Ok(output));
        }
    }
    let _ = rollout.take_dirty();
    assert!(rollout.is_finished());
    assert_eq!(rollout.state().steps.len(), 3);
    assert_eq!(rollout.state().count(NodePhase::Done), 7);
}

/// Drives a rollout of one node that never comes back after its boot, under
/// `policy`, answering every action as the cluster would and power restarts
/// with `power`; returns the power restarts asked for (time, operation) and
/// the final state.
fn drive_hung_node(
    policy: RolloutPolicy,
    power: impl Fn() -> Result<ActionOutput, ActionError>,
) -> (Vec<(Timestamp, PowerOperation)>, RolloutState) {
    let mut rollout = Rollout::new(Uuid::nil(), spec(1), policy, t(0));
    let mut restarts = Vec::new();
    let mut now = t(0);
    rollout.handle_timeout(now);
    for _ in 0..10_000 {
        for (id, action) in take_actions(&mut rollout) {
            let outcome = match &action {
                Action::ReadStartingGroup { .. } => Ok(ActionOutput::Members(ids(&["a"]))),
                Action::PrepareGroups { .. } => Ok(ActionOutput::GroupsPrepared {
                    cleared_failed: Vec::new(),
                    cleared_upgrading: Vec::new(),
                }),
                Action::ObserveWorkload { nodes, .. } => Ok(ActionOutput::Workload(
                    nodes
                        .iter()
                        .map(|node| workload(node.as_str(), WorkloadState::Drained, false))
                        .collect(),
                )),
                Action::StartBoot { request, .. } => Ok(ActionOutput::BootStarted(BootHandle {
                    key: request.key.clone(),
                    id: request.key.clone(),
                })),
                Action::ObserveBoot { .. } => Ok(ActionOutput::BootStatus(vec![boot(
                    "a",
                    NodeBootState::InProgress,
                )])),
                Action::PowerRestart { operation, .. } => {
                    restarts.push((now, *operation));
                    power()
                }
                _ => Ok(ActionOutput::Done),
            };
            rollout.handle_outcome(now, id, outcome);
        }
        if rollout.is_finished() {
            return (restarts, rollout.state().clone());
        }
        if rollout.has_work_in_flight() {
            continue;
        }
        now = rollout
            .poll_timeout()
            .expect("a timer while the node is awaited");
        rollout.handle_timeout(now);
    }
    panic!("the rollout did not finish");
}

fn power_works() -> Result<ActionOutput, ActionError> {
    Ok(ActionOutput::Done)
}

#[test]
fn a_hung_node_is_restarted_gracefully_then_by_force_then_fails() {
    let policy = RolloutPolicy {
        escalate_power_cycle: true,
        power_cycle_grace: Some(Duration::from_secs(120)),
        ..RolloutPolicy::default()
    };
    let (restarts, state) = drive_hung_node(policy, power_works);
    let operations: Vec<PowerOperation> = restarts.iter().map(|(_, op)| *op).collect();
    assert_eq!(
        operations,
        [
            PowerOperation::GracefulRestart,
            PowerOperation::ForceRestart
        ]
    );
    // Forced once the grace period passed, failed a boot timeout after that.
    assert_eq!(
        restarts[1].0.saturating_since(restarts[0].0),
        Duration::from_secs(120)
    );
    let node = &state.nodes[0];
    assert_eq!(node.phase, NodePhase::Failed);
    assert_eq!(node.power_restarts, 2);
    assert_eq!(node.escalation, None);
    assert_eq!(
        node.reason.as_deref(),
        Some(
            "did not come back after its boot, nor within 10m of a graceful and a forced power restart"
        )
    );
    assert!(
        state
            .messages
            .iter()
            .any(|message| message.contains("restarting it by force")),
        "{:?}",
        state.messages
    );
}

#[test]
fn without_escalation_a_hung_node_is_never_power_restarted() {
    let (restarts, state) = drive_hung_node(RolloutPolicy::default(), power_works);
    assert!(restarts.is_empty());
    assert_eq!(state.nodes[0].phase, NodePhase::Failed);
    assert_eq!(state.nodes[0].power_restarts, 0);
}

#[test]
fn a_power_restart_that_cannot_be_done_fails_the_node_at_once() {
    let policy = RolloutPolicy {
        escalate_power_cycle: true,
        ..RolloutPolicy::default()
    };
    let (restarts, state) = drive_hung_node(policy, || {
        Err(ActionError {
            kind: ActionErrorKind::NotSupported,
            message: "no power control".into(),
        })
    });
    assert_eq!(restarts.len(), 1, "no forced restart after a refusal");
    let node = &state.nodes[0];
    assert_eq!(node.phase, NodePhase::Failed);
    assert_eq!(node.power_restarts, 1);
    // It failed when the graceful restart was refused, at the boot timeout.
    assert_eq!(
        node.finished_at
            .map(|at| at.saturating_since(t(0)) < Duration::from_secs(660)),
        Some(true)
    );
    assert!(
        node.reason.as_deref().is_some_and(
            |reason| reason.contains("could not be power-restarted: no power control")
        ),
        "{:?}",
        node.reason
    );
}

/// The pause/resume storm (16 clients at 600 simulated seconds a second):
/// operators pause and resume every few seconds while the controller, held
/// up by them, answers each observation 200 s after asking. The node's boot
/// succeeds 6.4 minutes after it started; it must not be failed for missing
/// the 10-minute boot timeout because nobody looked in time.
#[test]
fn a_pause_resume_storm_with_late_answers_fails_no_node_that_came_back() {
    let booted_at = t(384);
    // What the site answers to an observation asked for at `asked`.
    let answer = |action: &Action, asked: Timestamp| match action {
        Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
            nodes
                .iter()
                .map(|node| {
                    if asked < t(1) {
                        workload(node.as_str(), WorkloadState::Drained, true)
                    } else if asked < booted_at {
                        workload(node.as_str(), WorkloadState::Down, false)
                    } else {
                        workload(node.as_str(), WorkloadState::Drained, true)
                    }
                })
                .collect(),
        ),
        Action::ObserveBoot { .. } => ActionOutput::BootStatus(vec![boot(
            "a",
            if asked < booted_at {
                NodeBootState::InProgress
            } else {
                NodeBootState::Ok
            },
        )]),
        Action::StartBoot { request, .. } => ActionOutput::BootStarted(BootHandle {
            key: request.key.clone(),
            id: "bos-1".into(),
        }),
        _ => ActionOutput::Done,
    };
    // Drained and the boot started at once, at t(0): its deadline is t(600).
    let (mut rollout, mut actions) = started(&["a"], 1);
    while !actions.is_empty() {
        for (id, action) in actions {
            let output = answer(&action, t(0));
            rollout.handle_outcome(t(0), id, Ok(output));
        }
        actions = take_actions(&mut rollout);
    }
    assert_eq!(rollout.state().nodes[0].phase, NodePhase::Booting);
    let mut waiting: Vec<(ActionId, Action, Timestamp)> = Vec::new();
    let mut now = t(0);
    let mut pause = true;
    while !rollout.is_finished() && now < t(3_600) {
        now = now + Duration::from_secs(5);
        let command = if pause {
            OperatorCommand::Pause
        } else {
            OperatorCommand::Resume { max_failures: None }
        };
        pause = !pause;
        let _ = rollout.apply_command(now, &command);
        rollout.handle_timeout(now);
        waiting.extend(
            take_actions(&mut rollout)
                .into_iter()
                .map(|(id, a)| (id, a, now)),
        );
        // Answers take 200 s to come back (until the storm ends at 15 min).
        let delay = if now < t(900) { 200 } else { 0 };
        let (due, later): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|(_, _, asked)| *asked + Duration::from_secs(delay) <= now);
        waiting = later;
        for (id, action, asked) in due {
            let output = answer(&action, asked);
            rollout.handle_outcome(now, id, Ok(output));
        }
        waiting.extend(
            take_actions(&mut rollout)
                .into_iter()
                .map(|(id, a)| (id, a, now)),
        );
        let node = &rollout.state().nodes[0];
        assert!(
            !matches!(node.phase, NodePhase::Failing | NodePhase::Failed),
            "failed at {now}: {:?}",
            node.reason
        );
    }
    assert!(rollout.is_finished(), "{:?}", rollout.state().messages);
    assert_eq!(rollout.state().nodes[0].phase, NodePhase::Done);
}

/// The next session takes a node an earlier one failed: the workload manager
/// still reports it down (the old failed mark), but with this session's drain
/// reason and responding. That is the node up, not a node that did not come back.
#[test]
fn a_node_failed_by_an_earlier_session_is_upgraded_and_resumed() {
    let (mut rollout, actions) = started(&["a"], 1);
    let ours = format!("crus:{}", Uuid::nil());
    let failed_mark = |responding: bool| WorkloadNode {
        reason: Some(ours.clone()),
        ..workload("a", WorkloadState::Down, responding)
    };
    let mut queue: Vec<(ActionId, Action)> = actions;
    let mut now = t(0);
    let mut resumed = false;
    for _ in 0..1_000 {
        for (id, action) in std::mem::take(&mut queue) {
            let output = match &action {
                // Down from the old mark all along; responding once booted.
                Action::ObserveWorkload { .. } => {
                    ActionOutput::Workload(vec![failed_mark(now >= t(100))])
                }
                Action::StartBoot { request, .. } => ActionOutput::BootStarted(BootHandle {
                    key: request.key.clone(),
                    id: "bos-1".into(),
                }),
                Action::ObserveBoot { .. } => ActionOutput::BootStatus(vec![boot(
                    "a",
                    if now >= t(100) {
                        NodeBootState::Ok
                    } else {
                        NodeBootState::InProgress
                    },
                )]),
                Action::Resume { nodes, .. } => {
                    resumed = nodes == &ids(&["a"]);
                    ActionOutput::Done
                }
                _ => ActionOutput::Done,
            };
            rollout.handle_outcome(now, id, Ok(output));
        }
        queue = take_actions(&mut rollout);
        if rollout.is_finished() {
            break;
        }
        if queue.is_empty() {
            now = rollout.poll_timeout().expect("a timer");
            rollout.handle_timeout(now);
            queue = take_actions(&mut rollout);
        }
    }
    assert_eq!(
        rollout.state().nodes[0].phase,
        NodePhase::Done,
        "{:?}",
        rollout.state().messages
    );
    assert!(resumed, "its old mark is cleared by the resume");
    assert!(now < t(200), "upgraded as soon as it was back, at {now}");
}

/// Every move of the node phase table, and nothing else: any other
/// (phase, input) pair is refused.
#[test]
fn the_node_phase_table_allows_exactly_its_moves() {
    use NodeInput as In;
    use NodePhase as P;
    let allowed: BTreeMap<(NodePhase, NodeInput), NodePhase> = [
        ((P::Pending, In::Take), P::Draining),
        ((P::Draining, In::Quiet), P::Drained),
        ((P::Draining, In::Force), P::Drained),
        ((P::Draining, In::Release), P::Releasing),
        ((P::Drained, In::Release), P::Releasing),
        ((P::Drained, In::Boot), P::Booting),
        ((P::Booting, In::Booted), P::Verifying),
        ((P::Booting, In::Retry), P::Drained),
        ((P::Verifying, In::Retry), P::Drained),
        ((P::Verifying, In::Healthy), P::Resuming),
        ((P::Draining, In::Fail), P::Failing),
        ((P::Drained, In::Fail), P::Failing),
        ((P::Booting, In::Fail), P::Failing),
        ((P::Verifying, In::Fail), P::Failing),
        ((P::Resuming, In::Returned), P::Done),
        ((P::Releasing, In::Returned), P::Skipped),
        ((P::Failing, In::MarkedFailed), P::Failed),
        ((P::Pending, In::LeaveAlone), P::Skipped),
        ((P::Draining, In::LeaveAlone), P::Skipped),
        ((P::Drained, In::LeaveAlone), P::Skipped),
        ((P::Booting, In::RollBack), P::Drained),
        ((P::Verifying, In::RollBack), P::Drained),
        ((P::Resuming, In::ReturnedReverted), P::Reverted),
        // revert_upgraded_on_halt: an upgraded node is taken again, and
        // is upgraded still if released before its boot back.
        ((P::Done, In::Revert), P::Draining),
        ((P::Releasing, In::ReturnedUpgraded), P::Done),
    ]
    .into_iter()
    .collect();
    for phase in NodePhase::ALL {
        for input in NodeInput::ALL {
            assert_eq!(
                phase.after(input),
                allowed.get(&(phase, input)).copied(),
                "{phase:?} by {input:?}"
            );
        }
    }
    // Terminal phases have no move out, but for an upgraded node taken
    // back by a halted session's revert; a node never goes back to pending.
    for input in NodeInput::ALL {
        for terminal in [P::Failed, P::Skipped, P::Reverted] {
            assert_eq!(terminal.after(input), None);
        }
        if input != In::Revert {
            assert_eq!(P::Done.after(input), None);
        }
        for phase in NodePhase::ALL {
            assert_ne!(phase.after(input), Some(P::Pending));
        }
    }
}

/// A move the table does not list leaves the node where it is, emits no
/// event, and is kept as a typed refusal.
#[test]
fn a_move_the_table_refuses_is_kept_and_changes_nothing() {
    let (mut rollout, _) = started(&["a", "b"], 2);
    rollout.take_events();
    assert_eq!(rollout.state().nodes[0].phase, NodePhase::Draining);
    rollout.move_node(0, NodeInput::Boot, t(1));
    assert_eq!(rollout.state().nodes[0].phase, NodePhase::Draining);
    assert_eq!(
        rollout.refused_moves(),
        [RefusedMove {
            node: NodeId::from("a"),
            from: NodePhase::Draining,
            input: NodeInput::Boot,
        }]
    );
    assert!(rollout.take_events().is_empty());
    assert_eq!(
        rollout.refused_moves()[0].to_string(),
        "node a: Boot is not a move from phase draining"
    );
}

mod boot_rate;
mod drain_ahead;
mod floor;
mod foreign;
mod gates;
mod hooks;
mod image_tags;
mod matching;
mod migration;
mod properties;
mod reserve_ahead;
mod revert_on_halt;
mod rollback;
mod state_timers;
mod step_lists;

/// The session lifecycle table: which inputs move the session from where.
#[test]
fn the_lifecycle_table_allows_exactly_its_moves() {
    use Lifecycle as L;
    let running = L::Running { hold: None };
    let held = [
        Hold::Paused,
        Hold::Halted,
        Hold::OutsideWindows,
        Hold::Gated,
    ]
    .map(|hold| L::Running { hold: Some(hold) });
    let finished = [Outcome::Upgraded, Outcome::SomeFailed, Outcome::Deleted]
        .map(|outcome| L::Finished { outcome });
    let inputs = [
        SessionInput::SnapshotTaken { empty: false },
        SessionInput::SnapshotTaken { empty: true },
        SessionInput::GroupsPrepared,
        SessionInput::Pause,
        SessionInput::Resume,
        SessionInput::Halt {
            reason: "3 nodes failed".into(),
        },
        SessionInput::Gate {
            reasons: vec!["an alert fires".into()],
        },
        SessionInput::GatesCleared,
        SessionInput::RevertUpgraded {
            reason: "3 nodes failed".into(),
        },
        SessionInput::Cancel,
        SessionInput::Settled,
        SessionInput::Finish,
    ];
    let expected = |from: L, input: &SessionInput| -> bool {
        match input {
            SessionInput::SnapshotTaken { .. } => from == L::Snapshot,
            SessionInput::GroupsPrepared => from == L::PreparingGroups,
            SessionInput::Pause | SessionInput::Resume => matches!(
                from,
                L::Snapshot | L::PreparingGroups | L::Running { .. } | L::Cleanup
            ),
            SessionInput::Halt { .. } | SessionInput::Gate { .. } | SessionInput::GatesCleared => {
                matches!(from, L::Running { .. })
            }
            // Only a halted session reverts its upgrades.
            SessionInput::RevertUpgraded { .. } => {
                from == L::Running {
                    hold: Some(Hold::Halted),
                }
            }
            SessionInput::Cancel => true,
            SessionInput::Settled => matches!(from, L::Running { .. } | L::Cancelling),
            SessionInput::Finish => !matches!(from, L::Finished { .. }),
        }
    };
    let lifecycles = [
        L::Snapshot,
        L::PreparingGroups,
        running,
        L::Cancelling,
        L::Cleanup,
    ]
    .into_iter()
    .chain(held)
    .chain(finished);
    for from in lifecycles {
        for input in &inputs {
            assert_eq!(
                from.allows(input),
                expected(from, input),
                "{from:?} by {input:?}"
            );
        }
    }
}

/// The questions the engine asks of where the session stands, over every
/// combination of the stored fields: each says exactly what the fields it
/// stands for said, and what that is in terms of the lifecycle, whatever
/// the windows.
#[test]
fn the_lifecycle_questions_say_what_the_stored_fields_say() {
    use Lifecycle as L;
    let base = Rollout::new(Uuid::nil(), spec(2), RolloutPolicy::default(), t(0))
        .state()
        .clone();
    let stages = [
        Stage::Snapshot,
        Stage::PrepareGroups,
        Stage::Running,
        Stage::Cleanup,
        Stage::Finished,
    ];
    let gate_hold = GateHold {
        since: t(0),
        reasons: vec!["an alert fires".into()],
    };
    let mut cases = 0;
    for stage in stages {
        for cancelled in [false, true] {
            for paused in [false, true] {
                for halted in [None, Some("3 nodes failed".to_string())] {
                    for gated in [None, Some(gate_hold.clone())] {
                        let mut state = base.clone();
                        state.stage = stage;
                        // Written together, by `Finish` alone.
                        state.completed = stage == Stage::Finished;
                        state.cancelled = cancelled;
                        state.paused = paused;
                        state.halted = halted.clone();
                        state.gated = gated.clone();
                        let rollout = Rollout::resume(state.clone());
                        let case = format!(
                            "{stage:?}, cancelled {cancelled}, paused {paused}, \
                             halted {halted:?}, gated {}",
                            gated.is_some()
                        );
                        // The fields each question stands for.
                        let running = stage == Stage::Running;
                        let halted = halted.is_some();
                        assert_eq!(rollout.is_finished(), state.completed, "{case}");
                        assert_eq!(rollout.deletion_requested(), cancelled, "{case}");
                        assert_eq!(rollout.is_paused(), paused, "{case}");
                        assert_eq!(rollout.is_halted(), halted, "{case}");
                        assert_eq!(rollout.halt_reason(), state.halted.as_deref(), "{case}");
                        assert_eq!(rollout.may_halt(), !halted && !cancelled, "{case}");
                        assert_eq!(rollout.is_running(), running && !cancelled, "{case}");
                        assert_eq!(rollout.running_or_cancelling(), running, "{case}");
                        assert_eq!(
                            rollout.stopped_taking(),
                            cancelled || paused || halted,
                            "{case}"
                        );
                        assert_eq!(
                            rollout.may_take_nodes(),
                            running && !cancelled && !paused && !halted,
                            "{case}"
                        );
                        // The same in terms of the lifecycle.
                        for outside_windows in [false, true] {
                            let lifecycle = Lifecycle::of(&state, outside_windows);
                            let case = format!("{case}: {lifecycle:?}");
                            assert_eq!(
                                lifecycle == L::Snapshot,
                                stage == Stage::Snapshot,
                                "{case}"
                            );
                            assert_eq!(
                                lifecycle == L::PreparingGroups,
                                stage == Stage::PrepareGroups,
                                "{case}"
                            );
                            assert_eq!(lifecycle == L::Cleanup, stage == Stage::Cleanup, "{case}");
                            assert_eq!(
                                rollout.is_finished(),
                                matches!(lifecycle, L::Finished { .. }),
                                "{case}"
                            );
                            assert_eq!(
                                rollout.is_running(),
                                matches!(lifecycle, L::Running { .. }),
                                "{case}"
                            );
                            assert_eq!(
                                rollout.running_or_cancelling(),
                                matches!(lifecycle, L::Running { .. } | L::Cancelling),
                                "{case}"
                            );
                            assert_eq!(
                                rollout.may_take_nodes(),
                                matches!(
                                    lifecycle,
                                    L::Running {
                                        hold: None | Some(Hold::Gated | Hold::OutsideWindows)
                                    }
                                ),
                                "{case}"
                            );
                            // Steering's question: running, not halted.
                            assert_eq!(
                                rollout.is_running() && !rollout.is_halted(),
                                matches!(lifecycle, L::Running { hold } if hold != Some(Hold::Halted)),
                                "{case}"
                            );
                            // What the lifecycle shows, the questions say
                            // (they say more: a halt or a pause under a
                            // deletion or a halt, in any lifecycle).
                            if matches!(
                                lifecycle,
                                L::Cancelling
                                    | L::Finished {
                                        outcome: Outcome::Deleted
                                    }
                            ) {
                                assert!(rollout.deletion_requested(), "{case}");
                            }
                            if let L::Running { hold: Some(hold) } = lifecycle {
                                assert_eq!(rollout.is_halted(), hold == Hold::Halted, "{case}");
                                assert!(
                                    rollout.stopped_taking()
                                        == (hold == Hold::Halted || hold == Hold::Paused),
                                    "{case}"
                                );
                            }
                        }
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 5 * 2 * 2 * 2 * 2);
}

/// The lifecycle as a session goes through it, read from the stored
/// fields; a move the table refuses changes nothing and is kept.
#[test]
fn a_session_moves_through_its_lifecycle_and_refused_moves_are_kept() {
    let mut rollout = Rollout::new(Uuid::nil(), spec(2), RolloutPolicy::default(), t(0));
    assert_eq!(rollout.lifecycle(), Lifecycle::Snapshot);
    let (mut rollout_started, _) = started(&["a", "b"], 2);
    assert_eq!(
        rollout_started.lifecycle(),
        Lifecycle::Running { hold: None }
    );
    rollout_started.pause(t(1), "requested by an operator");
    assert_eq!(
        rollout_started.lifecycle(),
        Lifecycle::Running {
            hold: Some(Hold::Paused)
        }
    );
    rollout_started.cancel(t(2));
    assert_eq!(rollout_started.lifecycle(), Lifecycle::Cancelling);
    assert!(rollout_started.refused_session_moves().is_empty());

    assert!(!rollout.transition(t(1), SessionInput::GroupsPrepared));
    assert_eq!(rollout.lifecycle(), Lifecycle::Snapshot);
    assert_eq!(
        rollout.refused_session_moves(),
        [RefusedSessionMove {
            from: Lifecycle::Snapshot,
            input: SessionInput::GroupsPrepared,
        }]
    );
    rollout.cancel(t(3));
    assert_eq!(
        rollout.lifecycle(),
        Lifecycle::Finished {
            outcome: Outcome::Deleted
        }
    );
}
