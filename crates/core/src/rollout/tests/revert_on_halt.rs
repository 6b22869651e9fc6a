//! Reverting a halted session's upgrades (`rollback: { template,
//! revert_upgraded_on_halt: true, batch }`), driven by hand against a small
//! boot service that remembers every boot by its key, with restarts from
//! what was last persisted.

use std::collections::BTreeMap;

use super::*;
use crate::ports::{GateCheck, GateVerdict};

const ROLLBACK: &str = "old-image";
const NEW: &str = "compute-image";

fn revert_policy(batch: Option<u32>) -> RolloutPolicy {
    RolloutPolicy {
        max_failures: Some(FailureBudget::Count(0)),
        rollback: Some(Rollback {
            template: ROLLBACK.into(),
            on: vec![RollbackTrigger::NodeFailed],
            revert_upgraded_on_halt: true,
            batch,
        }),
        ..RolloutPolicy::default()
    }
}

/// The boot service: each boot by key, in the order first asked for, with
/// its template and nodes; a boot asked for again under its key is the
/// same boot.
#[derive(Default)]
struct BootService {
    boots: BTreeMap<String, (usize, String, Vec<NodeId>)>,
}

impl BootService {
    /// The templates `node` was booted with, in the order of its boots.
    fn history(&self, node: &str) -> Vec<String> {
        let mut boots: Vec<&(usize, String, Vec<NodeId>)> = self
            .boots
            .values()
            .filter(|(_, _, nodes)| nodes.iter().any(|n| n.as_str() == node))
            .collect();
        boots.sort_by_key(|(order, _, _)| *order);
        boots
            .into_iter()
            .map(|(_, template, _)| template.clone())
            .collect()
    }

    fn latest(&self, node: &str) -> Option<String> {
        self.history(node).pop()
    }
}

/// What the test lets happen around the session.
struct World<'a> {
    nodes: &'a [&'a str],
    /// Whether a node's boot with a template succeeds.
    works: &'a dyn Fn(&str, &str) -> bool,
    /// The gates' answer, given the state.
    gates: &'a dyn Fn(&RolloutState) -> Vec<GateVerdict>,
}

/// Runs a session at step size `step` until `until` says it is where the
/// test wants it, or it finished. `restart` is asked after every round of
/// actions whether the controller crashes now: the session is resumed from
/// what was last persisted, and the answers in flight are lost.
fn drive(
    policy: RolloutPolicy,
    step: u32,
    world: &World,
    until: impl Fn(&Rollout) -> bool,
    mut restart: impl FnMut(&RolloutState) -> bool,
) -> (Rollout, BootService) {
    let mut rollout = Rollout::new(Uuid::nil(), spec(step), policy, t(0));
    let mut service = BootService::default();
    let mut persisted = serde_json::to_string(rollout.state()).unwrap();
    let mut now = t(0);
    rollout.handle_timeout(now);
    for _ in 0..20_000 {
        if rollout.take_dirty() {
            persisted = serde_json::to_string(rollout.state()).unwrap();
        }
        let stored: RolloutState = serde_json::from_str(&persisted).unwrap();
        let mut answers = Vec::new();
        while let Some((id, action)) = rollout.poll_action() {
            let outcome = match &action {
                Action::ReadStartingGroup { .. } => ActionOutput::Members(ids(world.nodes)),
                Action::PrepareGroups { .. } => ActionOutput::GroupsPrepared {
                    cleared_failed: Vec::new(),
                    cleared_upgrading: Vec::new(),
                },
                Action::Drain { nodes, .. } => {
                    // Persist before act: a node is drained only once the
                    // state saying so is stored.
                    for node in nodes {
                        let record = stored.nodes.iter().find(|r| &r.id == node).unwrap();
                        assert!(record.phase.is_out_of_service(), "{node} drained unstored");
                    }
                    ActionOutput::Done
                }
                Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
                    nodes
                        .iter()
                        .map(|node| {
                            let record = rollout
                                .state()
                                .nodes
                                .iter()
                                .find(|r| &r.id == node)
                                .unwrap();
                            if !record.phase.is_out_of_service() {
                                // In service, running jobs.
                                return workload(node.as_str(), WorkloadState::Allocated, true);
                            }
                            let back = service
                                .latest(node.as_str())
                                .is_some_and(|template| (world.works)(&template, node.as_str()));
                            workload(node.as_str(), WorkloadState::Drained, back)
                        })
                        .collect(),
                ),
                Action::StartBoot {
                    step,
                    boot,
                    request,
                } => {
                    let stored_boot = stored
                        .steps
                        .get(*step as usize)
                        .and_then(|s| s.boots.get(*boot as usize))
                        .expect("a boot is stored before it is asked for");
                    assert_eq!(stored_boot.key, request.key);
                    assert_eq!(
                        stored_boot.template.as_deref().unwrap_or(NEW),
                        request.template
                    );
                    let order = service.boots.len();
                    service.boots.entry(request.key.clone()).or_insert_with(|| {
                        (order, request.template.clone(), request.nodes.clone())
                    });
                    ActionOutput::BootStarted(BootHandle {
                        key: request.key.clone(),
                        id: request.key.clone(),
                    })
                }
                Action::ObserveBoot { handle, .. } => {
                    let (_, template, booted) = service.boots[&handle.key].clone();
                    ActionOutput::BootStatus(
                        booted
                            .iter()
                            .map(|node| {
                                let state = if (world.works)(&template, node.as_str()) {
                                    NodeBootState::Ok
                                } else {
                                    NodeBootState::Failed {
                                        reason: format!("{template} does not boot"),
                                    }
                                };
                                boot(node.as_str(), state)
                            })
                            .collect(),
                    )
                }
                Action::CheckGates { .. } => ActionOutput::Gates((world.gates)(rollout.state())),
                _ => ActionOutput::Done,
            };
            answers.push((id, Ok(outcome)));
        }
        if restart(&stored) {
            rollout = Rollout::resume(stored);
            rollout.handle_timeout(now);
            continue;
        }
        for (id, outcome) in answers {
            rollout.handle_outcome(now, id, outcome);
        }
        assert!(
            rollout.refused_moves().is_empty(),
            "{:?}",
            rollout.refused_moves()
        );
        assert!(
            rollout.refused_session_moves().is_empty(),
            "{:?}",
            rollout.refused_session_moves()
        );
        if !rollout.has_work_in_flight() && (until(&rollout) || rollout.is_finished()) {
            return (rollout, service);
        }
        if rollout.has_work_in_flight() {
            continue;
        }
        now = rollout
            .poll_timeout()
            .expect("a timer while nodes are awaited");
        rollout.handle_timeout(now);
    }
    panic!(
        "the rollout did not get there: {:?}",
        rollout.state().messages
    );
}

fn no_gates(_: &RolloutState) -> Vec<GateVerdict> {
    Vec::new()
}

fn never_restart(_: &RolloutState) -> bool {
    false
}

/// Halted, with nothing out of service and nothing left to revert.
fn reverted_all(rollout: &Rollout) -> bool {
    let state = rollout.state();
    state.reverting.is_some()
        && state.out_of_service() == 0
        && state.count(NodePhase::Done) == 0
        && state.count(NodePhase::Failing) == 0
}

/// `d` does not boot the new image (nor, when `both`, the old one).
fn d_fails(template: &str, node: &str) -> bool {
    node != "d" || template == ROLLBACK
}

fn phase(state: &RolloutState, node: &str) -> NodePhase {
    state
        .nodes
        .iter()
        .find(|record| record.id.as_str() == node)
        .unwrap()
        .phase
}

/// The revert steps: those whose nodes were taken back after their upgrade.
fn revert_steps(state: &RolloutState) -> Vec<Vec<String>> {
    state
        .steps
        .iter()
        .filter(|step| {
            step.boots
                .iter()
                .all(|boot| boot.template.as_deref() == Some(ROLLBACK))
                && step
                    .nodes
                    .iter()
                    .all(|&node| state.nodes[node].revert_reason.is_some())
        })
        .map(|step| {
            step.nodes
                .iter()
                .map(|&node| state.nodes[node].id.to_string())
                .collect()
        })
        .collect()
}

#[test]
fn a_session_halted_by_its_failure_budget_reverts_its_upgraded_nodes_in_batches() {
    let nodes = ["a", "b", "c", "d", "e", "f"];
    let world = World {
        nodes: &nodes,
        works: &d_fails,
        gates: &no_gates,
    };
    let (rollout, service) = drive(
        revert_policy(Some(2)),
        1,
        &world,
        reverted_all,
        never_restart,
    );
    let state = rollout.state();
    assert_eq!(
        state.halted.as_deref(),
        Some("1 nodes failed, more than the failure budget of 0")
    );
    // a, b, c were upgraded, then booted back, two at a time, in their own steps.
    assert_eq!(revert_steps(state), [vec!["a", "b"], vec!["c"]]);
    for node in ["a", "b", "c"] {
        assert_eq!(phase(state, node), NodePhase::Reverted, "{node}");
        assert_eq!(service.history(node), [NEW, ROLLBACK], "{node}");
        let reason = state.nodes.iter().find(|r| r.id.as_str() == node).unwrap();
        assert_eq!(
            reason.reason.as_deref(),
            Some(
                "upgraded, then booted back because the session halted: 1 nodes failed, more than the failure budget of 0; booted back to template 'old-image' and returned to service"
            )
        );
    }
    // d failed its upgrade and was booted back by `on: node_failed`, once.
    assert_eq!(phase(state, "d"), NodePhase::Reverted);
    assert_eq!(service.history("d"), [NEW, ROLLBACK]);
    // Never taken: the session waits, halted, for an operator.
    assert_eq!(phase(state, "e"), NodePhase::Pending);
    assert_eq!(phase(state, "f"), NodePhase::Pending);
    assert!(state.messages.iter().any(|m| m
        == "Reverting (revert_upgraded_on_halt): booting the 3 nodes this session upgraded back to template 'old-image', at most 2 at a time"));
    assert!(state.messages.iter().any(|m| m
        == "Step 4 (revert) started: draining 2 nodes (a, b) to boot them back to template 'old-image'"));
    let counts = status_of(state).nodes.unwrap();
    assert_eq!(counts["reverted"], 4);
    assert_eq!(counts["done"], 0);
}

#[test]
fn the_batch_defaults_to_the_step_size_and_a_sliding_window_keeps_to_it() {
    let nodes = ["a", "b", "c", "d", "e"];
    let world = World {
        nodes: &nodes,
        works: &d_fails,
        gates: &no_gates,
    };
    let (rollout, _) = drive(revert_policy(None), 3, &world, reverted_all, never_restart);
    // Step 0 upgraded a, b, c, step 1 d (failed) and e: a, b, c go back
    // together, then e once its step is over.
    let reverted = revert_steps(rollout.state());
    assert_eq!(reverted, [vec!["a", "b", "c"], vec!["e"]]);

    let mut policy = revert_policy(Some(1));
    policy.strategy = Strategy::Continuous;
    let (rollout, service) = drive(policy, 2, &world, reverted_all, never_restart);
    let state = rollout.state();
    let reverted = revert_steps(state);
    assert!(reverted.iter().all(|step| step.len() == 1), "{reverted:?}");
    let reverted: Vec<String> = reverted.concat();
    assert!(
        reverted.starts_with(&["a".to_string(), "b".to_string()]),
        "{reverted:?}"
    );
    for node in &reverted {
        assert_eq!(phase(state, node), NodePhase::Reverted, "{node}");
        assert_eq!(service.history(node), [NEW, ROLLBACK], "{node}");
    }
}

#[test]
fn a_session_halted_by_an_alert_gate_s_max_hold_reverts_its_upgraded_nodes() {
    let nodes = ["a", "b", "c", "d"];
    let gate = GateCheck::Alertmanager {
        url: "http://alertmanager:9093".into(),
        filter: vec!["severity=critical".into()],
    };
    let described = gate.describe();
    // The alert fires once two nodes are upgraded, and never clears.
    let firing = move |state: &RolloutState| {
        let blocking = if state.count(NodePhase::Done) + state.count(NodePhase::Reverted) >= 2 {
            vec!["NodeDown{severity=\"critical\"}".to_string()]
        } else {
            Vec::new()
        };
        vec![GateVerdict {
            gate: described.clone(),
            blocking,
            unreachable: None,
        }]
    };
    let world = World {
        nodes: &nodes,
        works: &|_, _| true,
        gates: &firing,
    };
    let mut policy = revert_policy(Some(1));
    policy.max_failures = None;
    policy.gates = vec![gate];
    policy.max_hold = Some(Duration::from_secs(600));
    // While held, the status says by what, since when and until when.
    let held = |rollout: &Rollout| rollout.state().gated.is_some();
    let (rollout, _) = drive(policy.clone(), 1, &world, held, never_restart);
    let hold = rollout
        .status()
        .gate_hold
        .expect("the status shows the hold");
    assert_eq!(
        hold.reasons,
        [
            "alertmanager http://alertmanager:9093 (severity=critical) fires: NodeDown{severity=\"critical\"}"
        ]
    );
    assert_eq!(hold.halts_at, Some(hold.since + Duration::from_secs(600)));
    assert!(rollout.status().reverting.is_none());
    // Once halted and reverting, the status says so, and the hold has no end.
    let reverting = |rollout: &Rollout| rollout.state().reverting.is_some();
    let (rollout, _) = drive(policy.clone(), 1, &world, reverting, never_restart);
    let status = rollout.status();
    let revert = status.reverting.expect("the status shows the revert");
    assert_eq!(revert.template, ROLLBACK);
    assert!(
        revert.reason.starts_with("alert gates held the session"),
        "{}",
        revert.reason
    );
    assert_eq!(status.gate_hold.and_then(|hold| hold.halts_at), None);

    let (rollout, service) = drive(policy, 1, &world, reverted_all, never_restart);
    let state = rollout.state();
    assert!(
        state
            .halted
            .as_deref()
            .is_some_and(|why| why.starts_with("alert gates held the session for 10m (max_hold)")),
        "{:?}",
        state.halted
    );
    // c was taken on a clear answer, before the alert fired, and finished.
    assert_eq!(revert_steps(state), [vec!["a"], vec!["b"], vec!["c"]]);
    for node in ["a", "b", "c"] {
        assert_eq!(phase(state, node), NodePhase::Reverted);
        assert_eq!(service.history(node), [NEW, ROLLBACK]);
    }
    assert_eq!(phase(state, "d"), NodePhase::Pending);
    assert!(service.history("d").is_empty());
}

#[test]
fn without_revert_upgraded_on_halt_a_halt_reverts_nothing() {
    let nodes = ["a", "b", "c", "d", "e"];
    let world = World {
        nodes: &nodes,
        works: &d_fails,
        gates: &no_gates,
    };
    let mut policy = revert_policy(None);
    if let Some(rollback) = &mut policy.rollback {
        rollback.revert_upgraded_on_halt = false;
    }
    let halted_and_quiet = |rollout: &Rollout| {
        rollout.state().halted.is_some() && rollout.state().out_of_service() == 0
    };
    let (rollout, service) = drive(policy, 1, &world, halted_and_quiet, never_restart);
    let state = rollout.state();
    assert!(state.reverting.is_none());
    for node in ["a", "b", "c"] {
        assert_eq!(phase(state, node), NodePhase::Done);
        assert_eq!(service.history(node), [NEW]);
    }
}

#[test]
fn a_pause_does_not_revert_and_a_resume_ends_the_revert() {
    let nodes = ["a", "b", "c"];
    let world = World {
        nodes: &nodes,
        works: &|_, _| true,
        gates: &no_gates,
    };
    // A canary's pause after its step is no halt: nothing is reverted.
    let mut policy = revert_policy(Some(1));
    policy.canary = Some(Canary {
        size: 1,
        pause_after: true,
    });
    let paused =
        |rollout: &Rollout| rollout.state().paused && rollout.state().out_of_service() == 0;
    let (rollout, _) = drive(policy, 1, &world, paused, never_restart);
    let now = rollout.poll_timeout().unwrap_or(t(10_000));
    assert!(rollout.state().reverting.is_none());
    assert_eq!(phase(rollout.state(), "a"), NodePhase::Done);

    // A revert under way ends with an operator's resume: nothing more is taken back.
    let mut reverting = rollout.state().clone();
    reverting.paused = false;
    reverting.halted = Some("1 nodes failed, more than the failure budget of 0".into());
    reverting.reverting = Some(RevertOnHalt {
        since: now,
        reason: "1 nodes failed, more than the failure budget of 0".into(),
    });
    let mut rollout = Rollout::resume(reverting);
    rollout.handle_timeout(now);
    assert_eq!(phase(rollout.state(), "a"), NodePhase::Draining);
    rollout
        .apply_command(
            now,
            &OperatorCommand::Resume {
                max_failures: Some(FailureBudget::Count(5)),
            },
        )
        .unwrap();
    assert!(rollout.state().reverting.is_none());
    assert!(rollout.state().halted.is_none());
}

#[test]
fn a_delete_during_the_revert_returns_the_nodes_not_booted_back_upgraded() {
    let nodes = ["a", "b", "c", "d", "e"];
    let world = World {
        nodes: &nodes,
        works: &d_fails,
        gates: &no_gates,
    };
    // Stop once the first revert batch is draining.
    let draining_back = |rollout: &Rollout| {
        rollout
            .state()
            .nodes
            .iter()
            .any(|node| node.revert_reason.is_some() && node.phase == NodePhase::Draining)
    };
    let (mut rollout, _) = drive(
        revert_policy(Some(2)),
        1,
        &world,
        draining_back,
        never_restart,
    );
    let now = rollout.poll_timeout().unwrap_or(t(10_000));
    rollout.cancel(now);
    // Finish it: the released nodes are returned to service.
    for _ in 0..100 {
        let actions = take_actions(&mut rollout);
        if actions.is_empty() && rollout.is_finished() {
            break;
        }
        for (id, action) in actions {
            let outcome = match action {
                Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
                    nodes
                        .iter()
                        .map(|node| workload(node.as_str(), WorkloadState::Drained, true))
                        .collect(),
                ),
                _ => ActionOutput::Done,
            };
            rollout.handle_outcome(now, id, Ok(outcome));
        }
        if !rollout.has_work_in_flight() {
            rollout.handle_timeout(rollout.poll_timeout().unwrap_or(now));
        }
    }
    let state = rollout.state();
    assert!(rollout.is_finished(), "{:?}", state.messages);
    assert!(
        rollout.refused_moves().is_empty(),
        "{:?}",
        rollout.refused_moves()
    );
    for node in ["a", "b", "c"] {
        let record = state.nodes.iter().find(|r| r.id.as_str() == node).unwrap();
        assert_eq!(record.phase, NodePhase::Done, "{node}");
        assert!(record.revert_reason.is_none());
    }
    // None was taken for the next batch: c is in its upgrade's step still.
    let c = state.nodes.iter().find(|r| r.id.as_str() == "c").unwrap();
    assert_eq!(c.step, Some(2));
}

#[test]
fn a_restart_after_any_write_reverts_each_upgraded_node_exactly_once() {
    let nodes = ["a", "b", "c", "d", "e"];
    let world = World {
        nodes: &nodes,
        works: &d_fails,
        gates: &no_gates,
    };
    let mut crashed_in_revert = 0;
    for crash_at in 1..=80 {
        let mut writes = 0;
        let mut last: Option<String> = None;
        let mut crashed = false;
        let (rollout, service) = drive(revert_policy(Some(2)), 1, &world, reverted_all, |stored| {
            // Count each new persisted state once; crash right after
            // the `crash_at`-th.
            let text = serde_json::to_string(stored).unwrap();
            if last.as_ref() != Some(&text) {
                writes += 1;
                last = Some(text);
                if writes == crash_at && !crashed {
                    crashed = true;
                    crashed_in_revert += usize::from(stored.reverting.is_some());
                    return true;
                }
            }
            false
        });
        let state = rollout.state();
        for node in ["a", "b", "c"] {
            assert_eq!(
                phase(state, node),
                NodePhase::Reverted,
                "crash at {crash_at}: {node}"
            );
            assert_eq!(
                service.history(node),
                [NEW, ROLLBACK],
                "crash at {crash_at}: {node}"
            );
        }
    }
    assert!(
        crashed_in_revert >= 5,
        "crashes fell in the revert: {crashed_in_revert}"
    );
}
