//! Alert gates driven by hand: a blocking gate holds the session before any
//! node is taken, says what fires, and the session goes on when it clears;
//! a gate that cannot be asked blocks too; `max_hold` halts.

use super::*;
use crate::ports::{GateCheck, GateVerdict};

fn gate() -> GateCheck {
    GateCheck::Alertmanager {
        url: "http://alertmanager:9093".into(),
        filter: vec!["severity=critical".into()],
    }
}

fn gated_policy(max_hold: Option<Duration>) -> RolloutPolicy {
    RolloutPolicy {
        gates: vec![gate()],
        max_hold,
        ..RolloutPolicy::default()
    }
}

/// A rollout of three nodes, one per step, with `policy`, driven until its
/// groups are prepared; returns the actions then queued.
fn prepared(policy: RolloutPolicy) -> (Rollout, Vec<(ActionId, Action)>) {
    let mut rollout = Rollout::new(Uuid::nil(), spec(1), policy, t(0));
    rollout.handle_timeout(t(0));
    let actions = take_actions(&mut rollout);
    rollout.handle_outcome(
        t(0),
        actions[0].0,
        Ok(ActionOutput::Members(ids(&["n0", "n1", "n2"]))),
    );
    let actions = take_actions(&mut rollout);
    rollout.handle_outcome(
        t(0),
        actions[0].0,
        Ok(ActionOutput::GroupsPrepared {
            cleared_failed: vec![],
            cleared_upgrading: vec![],
        }),
    );
    // Every node is read once before the first step (issue 21): all idle.
    let actions = take_actions(&mut rollout);
    let [(read_id, Action::ObserveWorkload { nodes: read, .. })] = &actions[..] else {
        panic!("expected one read of every node, got {actions:?}");
    };
    let idle = read
        .iter()
        .map(|node| workload(node.as_str(), WorkloadState::Idle, true))
        .collect();
    rollout.handle_outcome(t(0), *read_id, Ok(ActionOutput::Workload(idle)));
    let actions = take_actions(&mut rollout);
    (rollout, actions)
}

fn firing(alerts: &[&str]) -> ActionOutput {
    ActionOutput::Gates(vec![GateVerdict {
        gate: gate().describe(),
        blocking: alerts.iter().map(|alert| alert.to_string()).collect(),
        unreachable: None,
    }])
}

fn only_gate_check(actions: &[(ActionId, Action)]) -> ActionId {
    match actions {
        [(id, Action::CheckGates { gates })] => {
            assert_eq!(gates, &[gate()]);
            *id
        }
        other => panic!("expected one gate check, got {other:?}"),
    }
}

fn taken(rollout: &Rollout) -> usize {
    rollout
        .state()
        .nodes
        .iter()
        .filter(|node| node.phase != NodePhase::Pending)
        .count()
}

#[test]
fn without_gates_nothing_is_asked() {
    let (_, actions) = prepared(RolloutPolicy::default());
    assert!(
        actions
            .iter()
            .all(|(_, action)| !matches!(action, Action::CheckGates { .. })),
        "{actions:?}"
    );
}

#[test]
fn the_gates_are_asked_before_the_first_node_is_taken_and_a_firing_alert_holds() {
    let (mut rollout, actions) = prepared(gated_policy(None));
    let check = only_gate_check(&actions);
    assert_eq!(taken(&rollout), 0);

    rollout.handle_outcome(t(1), check, Ok(firing(&["NodeDown{cluster=\"a\"}"])));
    assert!(take_actions(&mut rollout).is_empty());
    assert_eq!(taken(&rollout), 0);
    assert_eq!(
        rollout.lifecycle(),
        Lifecycle::Running {
            hold: Some(Hold::Gated)
        }
    );
    let status = rollout.status();
    assert_eq!(status.phase, Some(crate::session::SessionPhase::Gated));
    let held = status.messages.last().unwrap();
    assert!(held.starts_with("Held by alert gates: "), "{held}");
    assert!(held.contains("NodeDown{cluster=\"a\"}"), "{held}");
    let events = rollout.take_events();
    assert!(
        events
            .iter()
            .any(|event| matches!(&event.kind, EventKind::Gated { reasons } if reasons[0].contains("NodeDown"))),
        "{events:?}"
    );

    // Asked again at the next poll; still firing: still nothing taken, and
    // the same hold is not told twice.
    assert_eq!(rollout.poll_timeout(), Some(t(1) + POLL));
    rollout.handle_timeout(t(11));
    let check = only_gate_check(&take_actions(&mut rollout));
    let told = rollout.status().messages.len();
    rollout.handle_outcome(t(11), check, Ok(firing(&["NodeDown{cluster=\"a\"}"])));
    assert_eq!(taken(&rollout), 0);
    assert_eq!(rollout.status().messages.len(), told);

    // Cleared: the first node is taken at once.
    rollout.handle_timeout(t(21));
    let check = only_gate_check(&take_actions(&mut rollout));
    rollout.handle_outcome(t(21), check, Ok(firing(&[])));
    assert_eq!(taken(&rollout), 1);
    assert_eq!(rollout.lifecycle(), Lifecycle::Running { hold: None });
    assert!(
        rollout
            .status()
            .messages
            .iter()
            .any(|message| message.starts_with("Alert gates clear (held 20s)")),
        "{:?}",
        rollout.status().messages
    );
    let actions = take_actions(&mut rollout);
    assert!(
        actions.iter().any(
            |(_, action)| matches!(action, Action::Drain { nodes, .. } if *nodes == ids(&["n0"]))
        ),
        "{actions:?}"
    );
}

#[test]
fn a_gate_that_cannot_be_asked_holds_the_session() {
    let (mut rollout, actions) = prepared(gated_policy(None));
    let check = only_gate_check(&actions);
    rollout.handle_outcome(
        t(1),
        check,
        Ok(ActionOutput::Gates(vec![GateVerdict {
            gate: gate().describe(),
            blocking: vec![],
            unreachable: Some("connection refused".into()),
        }])),
    );
    assert_eq!(taken(&rollout), 0);
    let held = rollout.status().messages.last().unwrap().clone();
    assert!(held.contains("cannot be reached"), "{held}");
    assert!(held.contains("connection refused"), "{held}");

    // A refused check (the controller gave up) blocks the same way.
    rollout.handle_timeout(t(11));
    let check = only_gate_check(&take_actions(&mut rollout));
    rollout.handle_outcome(
        t(11),
        check,
        Err(ActionError {
            kind: ActionErrorKind::Unavailable,
            message: "timed out".into(),
        }),
    );
    assert_eq!(taken(&rollout), 0);
    assert!(rollout.state().gated.is_some());
}

#[test]
fn a_clear_answer_lets_nodes_be_taken_only_within_a_poll_interval() {
    let (mut rollout, actions) = prepared(gated_policy(None));
    let check = only_gate_check(&actions);
    rollout.handle_outcome(t(1), check, Ok(firing(&[])));
    assert_eq!(taken(&rollout), 1);
    // The node is drained, booted and back long after the clear answer: the
    // next node waits for a new one.
    let actions = take_actions(&mut rollout);
    for (id, action) in actions {
        match action {
            Action::Drain { .. } => rollout.handle_outcome(t(2), id, Ok(ActionOutput::Done)),
            Action::ObserveWorkload { .. } => rollout.handle_outcome(
                t(100),
                id,
                Ok(ActionOutput::Workload(vec![workload(
                    "n0",
                    WorkloadState::Drained,
                    true,
                )])),
            ),
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut now = 100;
    let mut checks = 0;
    // Boot, come back, resume; answer every gate check with a firing alert.
    for _ in 0..20 {
        for (id, action) in take_actions(&mut rollout) {
            let answer = match action {
                Action::StartBoot { request, .. } => ActionOutput::BootStarted(BootHandle {
                    key: request.key.clone(),
                    id: "b".into(),
                }),
                Action::ObserveBoot { .. } => {
                    ActionOutput::BootStatus(vec![boot("n0", NodeBootState::Ok)])
                }
                Action::ObserveWorkload { .. } => {
                    ActionOutput::Workload(vec![workload("n0", WorkloadState::Idle, true)])
                }
                Action::CheckGates { .. } => {
                    checks += 1;
                    firing(&["Maintenance"])
                }
                _ => ActionOutput::Done,
            };
            rollout.handle_outcome(t(now), id, Ok(answer));
        }
        now += 10;
        rollout.handle_timeout(t(now));
    }
    assert_eq!(rollout.state().nodes[0].phase, NodePhase::Done);
    assert!(checks > 0, "the gates were not asked before the next node");
    assert_eq!(taken(&rollout), 1, "{:?}", rollout.status().messages);
}

#[test]
fn max_hold_halts_a_session_held_too_long() {
    let (mut rollout, actions) = prepared(gated_policy(Some(Duration::from_secs(60))));
    let check = only_gate_check(&actions);
    rollout.handle_outcome(t(1), check, Ok(firing(&["Storm"])));
    assert!(
        rollout
            .status()
            .messages
            .last()
            .unwrap()
            .contains("or halts after 1m (max_hold)")
    );
    // The hold's end is a deadline.
    assert_eq!(rollout.poll_timeout(), Some(t(11)));
    let mut now = 1;
    while rollout.state().halted.is_none() && now < 200 {
        let wake = rollout.poll_timeout().unwrap();
        now = wake.saturating_since(t(0)).as_secs() as i64;
        rollout.handle_timeout(wake);
        for (id, action) in take_actions(&mut rollout) {
            assert!(matches!(action, Action::CheckGates { .. }), "{action:?}");
            rollout.handle_outcome(wake, id, Ok(firing(&["Storm"])));
        }
    }
    assert_eq!(now, 61);
    let halted = rollout.state().halted.clone().unwrap();
    assert!(
        halted.contains("max_hold") && halted.contains("Storm"),
        "{halted}"
    );
    assert_eq!(taken(&rollout), 0);
    // An operator's resume gives the gates another max_hold.
    rollout.apply_commands(t(70), &[OperatorCommand::Resume { max_failures: None }]);
    assert!(rollout.state().halted.is_none());
    assert_eq!(rollout.state().gated.as_ref().unwrap().since, t(70));
}

#[test]
fn a_stored_session_without_gates_loads_and_a_gated_one_round_trips() {
    let (mut rollout, actions) = prepared(gated_policy(Some(Duration::from_secs(600))));
    let check = only_gate_check(&actions);
    rollout.handle_outcome(t(1), check, Ok(firing(&["Storm"])));
    let json = serde_json::to_value(rollout.state()).unwrap();
    assert_eq!(
        json["policy"]["gates"][0]["alertmanager"],
        "http://alertmanager:9093"
    );
    assert_eq!(json["policy"]["max_hold"], "10m");
    let back: RolloutState = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(&back, rollout.state());
    // A restarted controller asks the gates again before taking anything.
    let mut resumed = Rollout::resume(back);
    resumed.handle_timeout(t(2));
    let actions = take_actions(&mut resumed);
    assert!(
        actions
            .iter()
            .any(|(_, action)| matches!(action, Action::CheckGates { .. })),
        "{actions:?}"
    );
    assert_eq!(taken(&resumed), 0);
}
