//! Rollback of failed nodes (`rollback: { template, on: ["node_failed"] }`),
//! driven by hand against a small boot service that remembers every boot
//! by its key, as BOS, Kadeploy and CycleCloud do.

use std::collections::BTreeMap;

use super::*;

const ROLLBACK: &str = "old-image";

fn rollback_policy(retries: u32) -> RolloutPolicy {
    RolloutPolicy {
        retries,
        rollback: Some(Rollback {
            template: ROLLBACK.into(),
            on: vec![RollbackTrigger::NodeFailed],
            revert_upgraded_on_halt: false,
            batch: None,
        }),
        ..RolloutPolicy::default()
    }
}

/// The boot service: each boot by key, with its template and nodes; a boot
/// asked for again under its key is the same boot.
#[derive(Default)]
struct BootService {
    boots: BTreeMap<String, (String, Vec<NodeId>)>,
}

impl BootService {
    /// How many boots named `node` with `template`.
    fn boots_of(&self, node: &str, template: &str) -> usize {
        self.boots
            .values()
            .filter(|(used, nodes)| used == template && nodes.iter().any(|n| n.as_str() == node))
            .count()
    }

    /// The templates `node` was booted with, in the order of the keys
    /// (a step's boots are numbered in the order they were asked for).
    fn template_of_latest(&self, node: &str) -> Option<&str> {
        self.boots
            .iter()
            .filter(|(_, (_, nodes))| nodes.iter().any(|n| n.as_str() == node))
            .max_by_key(|(key, _)| boot_number(key))
            .map(|(_, (template, _))| template.as_str())
    }
}

/// The number of a boot within its step, from its key.
fn boot_number(key: &str) -> u32 {
    key.rsplit_once("-boot-")
        .and_then(|(_, number)| number.parse().ok())
        .unwrap_or(0)
}

/// Runs a session of `nodes` at step size 1 until it finishes. `works`
/// says whether a node's boot with a template succeeds. `restart` is asked
/// after every round of actions whether the controller crashes now: the
/// session is then resumed from what was last persisted, and the answers
/// in flight are lost.
fn drive(
    policy: RolloutPolicy,
    nodes: &[&str],
    works: impl Fn(&str, &str) -> bool,
    mut restart: impl FnMut(&RolloutState) -> bool,
) -> (RolloutState, BootService, Vec<RolloutEvent>) {
    let mut rollout = Rollout::new(Uuid::nil(), spec(1), policy, t(0));
    let mut service = BootService::default();
    let mut events = Vec::new();
    let mut persisted = serde_json::to_string(rollout.state()).unwrap();
    let mut now = t(0);
    rollout.handle_timeout(now);
    for _ in 0..10_000 {
        if rollout.take_dirty() {
            persisted = serde_json::to_string(rollout.state()).unwrap();
        }
        events.extend(rollout.take_events());
        let stored: RolloutState = serde_json::from_str(&persisted).unwrap();
        let mut answers = Vec::new();
        while let Some((id, action)) = rollout.poll_action() {
            let outcome = match &action {
                Action::ReadStartingGroup { .. } => ActionOutput::Members(ids(nodes)),
                Action::PrepareGroups { .. } => ActionOutput::GroupsPrepared {
                    cleared_failed: Vec::new(),
                    cleared_upgrading: Vec::new(),
                },
                Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
                    nodes
                        .iter()
                        .map(|node| {
                            // A node answers once its latest boot worked.
                            let back = service
                                .template_of_latest(node.as_str())
                                .is_some_and(|template| works(template, node.as_str()));
                            workload(node.as_str(), WorkloadState::Drained, back)
                        })
                        .collect(),
                ),
                Action::StartBoot {
                    step,
                    boot,
                    request,
                } => {
                    // Persist before act: the boot, with its template, is stored first.
                    let stored_boot = stored
                        .steps
                        .get(*step as usize)
                        .and_then(|s| s.boots.get(*boot as usize))
                        .expect("a boot is stored before it is asked for");
                    assert_eq!(stored_boot.key, request.key);
                    assert_eq!(
                        stored_boot.template.as_deref().unwrap_or("compute-image"),
                        request.template
                    );
                    service
                        .boots
                        .entry(request.key.clone())
                        .or_insert_with(|| (request.template.clone(), request.nodes.clone()));
                    ActionOutput::BootStarted(BootHandle {
                        key: request.key.clone(),
                        id: request.key.clone(),
                    })
                }
                Action::ObserveBoot { handle, .. } => {
                    let (template, booted) = service.boots[&handle.key].clone();
                    ActionOutput::BootStatus(
                        booted
                            .iter()
                            .map(|node| {
                                let state = if works(&template, node.as_str()) {
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
        if rollout.is_finished() && !rollout.has_work_in_flight() {
            events.extend(rollout.take_events());
            assert!(
                rollout.refused_moves().is_empty(),
                "{:?}",
                rollout.refused_moves()
            );
            return (rollout.state().clone(), service, events);
        }
        if rollout.has_work_in_flight() {
            continue;
        }
        now = rollout
            .poll_timeout()
            .expect("a timer while nodes are awaited");
        rollout.handle_timeout(now);
    }
    panic!("the rollout did not finish: {:?}", rollout.state().messages);
}

/// `a` does not boot the new image, but boots the old one; `b` boots both.
fn a_fails_the_upgrade(template: &str, node: &str) -> bool {
    template == ROLLBACK || node != "a"
}

fn never_restart(_: &RolloutState) -> bool {
    false
}

#[test]
fn a_node_that_fails_its_upgrade_is_booted_back_once_and_reverted() {
    let (state, service, events) = drive(
        rollback_policy(1),
        &["a", "b"],
        a_fails_the_upgrade,
        never_restart,
    );
    // Its retry first, then one boot back to the old image.
    assert_eq!(service.boots_of("a", "compute-image"), 2);
    assert_eq!(service.boots_of("a", ROLLBACK), 1);
    assert_eq!(service.boots_of("b", ROLLBACK), 0);
    let a = &state.nodes[0];
    assert_eq!(a.phase, NodePhase::Reverted);
    assert_eq!(
        a.reason.as_deref(),
        Some(
            "boot failed: compute-image does not boot; booted back to template 'old-image' and returned to service"
        )
    );
    assert_eq!(state.nodes[1].phase, NodePhase::Done);
    // Counted apart: in the status, the summary and the step's event.
    let counts = status_of(&state).nodes.unwrap();
    assert_eq!(counts["reverted"], 1);
    assert_eq!(counts["failed"], 0);
    assert_eq!(counts["done"], 1);
    assert!(
        state
            .messages
            .iter()
            .any(|m| m == "1 of 2 nodes upgraded, 1 reverted to template 'old-image'"),
        "{:?}",
        state.messages
    );
    assert!(
        state
            .messages
            .iter()
            .any(|m| m == "Step 0: booting 1 node back to template 'old-image' (rollback)"),
        "{:?}",
        state.messages
    );
    assert!(events.iter().any(|event| matches!(
        event.kind,
        EventKind::StepFinished {
            step: 0,
            upgraded: 0,
            failed: 0,
            reverted: 1,
            ..
        }
    )));
    assert!(events.iter().any(|event| matches!(
        &event.kind,
        EventKind::NodePhase {
            to: NodePhase::Reverted,
            reason: Some(_),
            ..
        }
    )));
    // Not a failed session: no node is left out of service.
    assert_eq!(phase_of(&state), SessionPhase::Succeeded);
}

#[test]
fn a_node_whose_boot_back_fails_too_fails_as_before() {
    let (state, service, _) = drive(rollback_policy(0), &["a"], |_, _| false, never_restart);
    assert_eq!(service.boots_of("a", "compute-image"), 1);
    assert_eq!(service.boots_of("a", ROLLBACK), 1);
    let a = &state.nodes[0];
    assert_eq!(a.phase, NodePhase::Failed);
    assert_eq!(
        a.reason.as_deref(),
        Some(
            "boot failed: compute-image does not boot; booting it back to template 'old-image' failed too: boot failed: old-image does not boot"
        )
    );
}

#[test]
fn without_rollback_a_failed_node_is_never_booted_back() {
    let (state, service, _) = drive(
        RolloutPolicy {
            retries: 1,
            ..RolloutPolicy::default()
        },
        &["a", "b"],
        a_fails_the_upgrade,
        never_restart,
    );
    assert_eq!(service.boots_of("a", ROLLBACK), 0);
    assert_eq!(state.nodes[0].phase, NodePhase::Failed);
}

#[test]
fn reverted_nodes_count_against_the_failure_budget() {
    let mut policy = rollback_policy(0);
    policy.max_failures = Some(FailureBudget::Count(0));
    let (state, _, _) = drive(policy, &["a"], a_fails_the_upgrade, never_restart);
    assert_eq!(state.nodes[0].phase, NodePhase::Reverted);
    assert_eq!(
        state.halted.as_deref(),
        Some("1 nodes failed, more than the failure budget of 0")
    );
}

#[test]
fn a_restart_during_the_rollback_neither_repeats_nor_forgets_it() {
    // Crash once when the rollback boot is stored but not acknowledged,
    // and once when it is acknowledged but not finished.
    let mut crashes = 0;
    let (state, service, _) = drive(
        rollback_policy(0),
        &["a", "b"],
        a_fails_the_upgrade,
        |stored| {
            let rollback_boot = stored
                .steps
                .iter()
                .flat_map(|step| &step.boots)
                .find(|boot| boot.template.is_some());
            let crash = match (crashes, rollback_boot) {
                (0, Some(boot)) => boot.handle.is_none(),
                (1, Some(boot)) => boot.handle.is_some(),
                _ => false,
            };
            crashes += usize::from(crash);
            crash
        },
    );
    assert_eq!(crashes, 2);
    assert_eq!(service.boots_of("a", "compute-image"), 1);
    assert_eq!(service.boots_of("a", ROLLBACK), 1);
    assert_eq!(state.nodes[0].phase, NodePhase::Reverted);
    assert_eq!(state.nodes[1].phase, NodePhase::Done);
}
