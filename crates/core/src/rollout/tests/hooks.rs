//! Site hooks (`hooks`), driven by hand against a small cluster that logs
//! every drain, boot and hook run in order, with restarts of the
//! controller that lose whatever was in flight.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::ports::HookRequest;

fn hook(at: HookPoint, per: HookScope, program: &str) -> Hook {
    Hook {
        at,
        per,
        command: Some(vec![program.to_string()]),
        http: None,
        timeout: DEFAULT_HOOK_TIMEOUT,
        idempotent: false,
        on_failure: HookOnFailure::FailNode,
    }
}

fn with_hooks(hooks: Vec<Hook>) -> RolloutPolicy {
    RolloutPolicy {
        hooks,
        ..RolloutPolicy::default()
    }
}

/// What the cluster saw, in order: `drain n`, `boot n` (once per boot),
/// `hook <program> n…`; and the session's events.
#[derive(Default)]
struct Cluster {
    log: Vec<String>,
    drained: BTreeSet<NodeId>,
    booted: BTreeSet<NodeId>,
    /// Boots asked for, by key (a boot asked again under its key is one).
    boot_keys: BTreeSet<String>,
    /// Nodes whose first boot hangs: booted, never responding.
    hangs_first_boot: BTreeSet<NodeId>,
    /// Each node's boots so far.
    boots: BTreeMap<NodeId, usize>,
    events: Vec<RolloutEvent>,
}

impl Cluster {
    /// How many times `program` ran for `node`.
    fn runs(&self, program: &str, node: &str) -> usize {
        self.log
            .iter()
            .filter(|line| {
                let mut words = line.split(' ');
                words.next() == Some("hook")
                    && words.next() == Some(program)
                    && words.any(|word| word == node)
            })
            .count()
    }

    /// Where `line` is in the log.
    fn position(&self, line: &str) -> usize {
        self.log
            .iter()
            .position(|logged| logged == line)
            .unwrap_or_else(|| panic!("{line:?} not in {:?}", self.log))
    }
}

/// Runs a session of `nodes` at step size `step` until it finishes.
/// `hook_fails` says whether a run fails (and why). `restart` is asked
/// after every round of actions whether the controller crashes now: the
/// session is then resumed from what was last persisted, and the answers
/// in flight are lost.
fn drive(
    policy: RolloutPolicy,
    nodes: &[&str],
    step: u32,
    hook_fails: impl Fn(&HookRequest) -> Option<String>,
    restart: impl FnMut(&[Action]) -> bool,
) -> (RolloutState, Cluster) {
    drive_on(Cluster::default(), policy, nodes, step, hook_fails, restart)
}

/// [`drive`] on `cluster` (whose nodes may hang on their first boot).
fn drive_on(
    mut cluster: Cluster,
    policy: RolloutPolicy,
    nodes: &[&str],
    step: u32,
    hook_fails: impl Fn(&HookRequest) -> Option<String>,
    mut restart: impl FnMut(&[Action]) -> bool,
) -> (RolloutState, Cluster) {
    let mut rollout = Rollout::new(Uuid::nil(), spec(step), policy, t(0));
    let mut persisted = serde_json::to_string(rollout.state()).unwrap();
    let mut now = t(0);
    rollout.handle_timeout(now);
    for _ in 0..10_000 {
        if rollout.take_dirty() {
            persisted = serde_json::to_string(rollout.state()).unwrap();
        }
        let stored: RolloutState = serde_json::from_str(&persisted).unwrap();
        let mut answers = Vec::new();
        let mut asked = Vec::new();
        while let Some((id, action)) = rollout.poll_action() {
            let outcome = match &action {
                Action::ReadStartingGroup { .. } => ActionOutput::Members(ids(nodes)),
                Action::PrepareGroups { .. } => ActionOutput::GroupsPrepared {
                    cleared_failed: Vec::new(),
                    cleared_upgrading: Vec::new(),
                },
                Action::Drain { nodes, .. } => {
                    for node in nodes {
                        if cluster.drained.insert(node.clone()) {
                            cluster.log.push(format!("drain {node}"));
                        }
                    }
                    ActionOutput::Done
                }
                Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
                    nodes
                        .iter()
                        .map(|node| {
                            let state = if cluster.drained.contains(node) {
                                WorkloadState::Drained
                            } else {
                                WorkloadState::Idle
                            };
                            let hung = cluster.hangs_first_boot.contains(node)
                                && cluster.boots.get(node) == Some(&1);
                            workload(node.as_str(), state, !hung)
                        })
                        .collect(),
                ),
                Action::StartBoot { request, .. } => {
                    if cluster.boot_keys.insert(request.key.clone()) {
                        for node in &request.nodes {
                            cluster.booted.insert(node.clone());
                            *cluster.boots.entry(node.clone()).or_default() += 1;
                            cluster.log.push(format!("boot {node}"));
                        }
                    }
                    ActionOutput::BootStarted(BootHandle {
                        key: request.key.clone(),
                        id: request.key.clone(),
                    })
                }
                Action::ObserveBoot { handle, .. } => ActionOutput::BootStatus(
                    stored
                        .steps
                        .iter()
                        .flat_map(|step| &step.boots)
                        .filter(|boot| boot.key == handle.key)
                        .flat_map(|boot| &boot.nodes)
                        .map(|node| boot(node.as_str(), NodeBootState::Ok))
                        .collect(),
                ),
                Action::RunHook {
                    hook,
                    node,
                    request,
                } => {
                    // Persist before act: the run is stored as running first.
                    let runs = match node {
                        Some(id) => &stored.nodes.iter().find(|n| &n.id == id).unwrap().hooks,
                        None => &stored.steps[request.step as usize].hooks,
                    };
                    let run = runs.iter().find(|run| run.hook == *hook).unwrap();
                    assert_eq!(run.state, HookRunState::Running);
                    let program = &request.hook.command.as_ref().unwrap()[0];
                    let names: Vec<&str> = request.nodes.iter().map(NodeId::as_str).collect();
                    cluster
                        .log
                        .push(format!("hook {program} {}", names.join(" ")));
                    ActionOutput::HookRan(hook_fails(request))
                }
                _ => ActionOutput::Done,
            };
            asked.push(action);
            answers.push((id, Ok(outcome)));
        }
        if restart(&asked) {
            rollout = Rollout::resume(stored);
            rollout.handle_timeout(now);
            continue;
        }
        for (id, outcome) in answers {
            rollout.handle_outcome(now, id, outcome);
        }
        cluster.events.extend(rollout.take_events());
        if rollout.is_finished() && !rollout.has_work_in_flight() {
            assert!(
                rollout.refused_moves().is_empty(),
                "{:?}",
                rollout.refused_moves()
            );
            return (rollout.state().clone(), cluster);
        }
        if rollout.has_work_in_flight() {
            continue;
        }
        let Some(next) = rollout.poll_timeout() else {
            // Halted with nothing in flight: nothing more happens.
            return (rollout.state().clone(), cluster);
        };
        now = next;
        rollout.handle_timeout(now);
    }
    panic!("the rollout did not finish: {:?}", rollout.state().messages);
}

fn never_fails(_: &HookRequest) -> Option<String> {
    None
}

fn never_restart(_: &[Action]) -> bool {
    false
}

fn phase_of(state: &RolloutState, node: &str) -> NodePhase {
    state
        .nodes
        .iter()
        .find(|record| record.id.as_str() == node)
        .unwrap()
        .phase
}

#[test]
fn each_hook_runs_once_per_node_at_its_point() {
    let policy = with_hooks(vec![
        hook(HookPoint::PreDrain, HookScope::Node, "pre-drain"),
        hook(HookPoint::PreBoot, HookScope::Node, "pre-boot"),
        hook(HookPoint::PreBoot, HookScope::Step, "step-pre-boot"),
        hook(HookPoint::PostBoot, HookScope::Node, "post-boot"),
    ]);
    let (state, cluster) = drive(policy, &["a", "b", "c"], 2, never_fails, never_restart);
    for node in ["a", "b", "c"] {
        assert_eq!(
            phase_of(&state, node),
            NodePhase::Done,
            "{:?}",
            state.messages
        );
        for program in ["pre-drain", "pre-boot", "step-pre-boot", "post-boot"] {
            assert_eq!(
                cluster.runs(program, node),
                1,
                "{program} {node}: {:?}",
                cluster.log
            );
        }
        // Each at its point: pre_drain before the drain, pre_boot (its own
        // and its step's) after it and before the boot, post_boot after.
        let drain = cluster.position(&format!("drain {node}"));
        let boot = cluster.position(&format!("boot {node}"));
        let pre_drain = cluster.position(&format!("hook pre-drain {node}"));
        let pre_boot = cluster.position(&format!("hook pre-boot {node}"));
        let post_boot = cluster.position(&format!("hook post-boot {node}"));
        assert!(pre_drain < drain && drain < pre_boot && pre_boot < boot && boot < post_boot);
    }
    // The step's hook ran once per step, with the step's nodes, after both drained.
    let step_hook = cluster.position("hook step-pre-boot a b");
    assert!(cluster.position("drain b") < step_hook);
    assert!(step_hook < cluster.position("boot a"));
    assert!(cluster.log.contains(&"hook step-pre-boot c".to_string()));
    // CRUS's barrier: the step's nodes boot together, after all their hooks.
    assert_eq!(state.steps[0].boots.len(), 1);
    assert_eq!(state.steps[0].boots[0].nodes, ids(&["a", "b"]));
    let runs = &state.nodes[0].hooks;
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|run| run.state == HookRunState::Finished));
    assert!(
        state
            .messages
            .iter()
            .any(|m| m.starts_with("Node a: pre_boot hook `pre-boot` started"))
    );
    assert!(
        state
            .messages
            .iter()
            .any(|m| m.starts_with("Node a: pre_boot hook `pre-boot` finished"))
    );
}

#[test]
fn a_finished_hook_is_never_run_again_after_a_restart() {
    let policy = with_hooks(vec![
        hook(HookPoint::PreDrain, HookScope::Node, "pre-drain"),
        hook(HookPoint::PreBoot, HookScope::Step, "step-pre-boot"),
        hook(HookPoint::PostBoot, HookScope::Node, "post-boot"),
    ]);
    // A crash after every round in which no hook was in flight: a hook that
    // finished before is never asked for again.
    let mut round = 0;
    let (state, cluster) = drive(policy, &["a", "b", "c"], 2, never_fails, |asked| {
        round += 1;
        round % 2 == 0
            && !asked
                .iter()
                .any(|action| matches!(action, Action::RunHook { .. }))
    });
    assert!(round > 4);
    for node in ["a", "b", "c"] {
        assert_eq!(
            phase_of(&state, node),
            NodePhase::Done,
            "{:?}",
            state.messages
        );
        for program in ["pre-drain", "step-pre-boot", "post-boot"] {
            assert_eq!(
                cluster.runs(program, node),
                1,
                "{program} {node}: {:?}",
                cluster.log
            );
        }
    }
}

/// Crashes once, in the round that asked for the first run of `program`.
fn crash_during(program: &'static str) -> impl FnMut(&[Action]) -> bool {
    let mut crashed = false;
    move |asked| {
        let running = asked.iter().any(|action| {
            matches!(action, Action::RunHook { request, .. }
                if request.hook.command.as_ref().is_some_and(|argv| argv[0] == program))
        });
        if running && !crashed {
            crashed = true;
            return true;
        }
        false
    }
}

#[test]
fn a_hook_running_when_the_server_stopped_fails_its_node_unless_idempotent() {
    let policy = with_hooks(vec![hook(HookPoint::PreBoot, HookScope::Node, "firmware")]);
    let (state, cluster) = drive(
        policy,
        &["a", "b"],
        1,
        never_fails,
        crash_during("firmware"),
    );
    // It ran once (its answer was lost): not again, and `a` failed saying why.
    assert_eq!(cluster.runs("firmware", "a"), 1, "{:?}", cluster.log);
    assert_eq!(phase_of(&state, "a"), NodePhase::Failed);
    let reason = state.nodes[0].reason.as_deref().unwrap();
    assert!(reason.contains("outcome is unknown"), "{reason}");
    assert!(!cluster.booted.contains(&NodeId::from("a")));
    assert_eq!(state.nodes[0].hooks[0].state, HookRunState::Failed);
    // The session went on.
    assert_eq!(phase_of(&state, "b"), NodePhase::Done);
    assert_eq!(cluster.runs("firmware", "b"), 1);

    let mut idempotent = hook(HookPoint::PreBoot, HookScope::Node, "firmware");
    idempotent.idempotent = true;
    let (state, cluster) = drive(
        with_hooks(vec![idempotent]),
        &["a", "b"],
        1,
        never_fails,
        crash_during("firmware"),
    );
    // Run again after the restart, and the node upgraded.
    assert_eq!(cluster.runs("firmware", "a"), 2, "{:?}", cluster.log);
    assert_eq!(
        phase_of(&state, "a"),
        NodePhase::Done,
        "{:?}",
        state.messages
    );
    assert!(
        state
            .messages
            .iter()
            .any(|m| m.contains("running it again (idempotent)"))
    );
}

#[test]
fn a_step_hook_running_when_the_server_stopped_fails_its_nodes() {
    let policy = with_hooks(vec![hook(HookPoint::PostBoot, HookScope::Step, "check")]);
    let (state, cluster) = drive(
        policy,
        &["a", "b", "c"],
        2,
        never_fails,
        crash_during("check"),
    );
    assert_eq!(cluster.runs("check", "a"), 1, "{:?}", cluster.log);
    assert_eq!(phase_of(&state, "a"), NodePhase::Failed);
    assert_eq!(phase_of(&state, "b"), NodePhase::Failed);
    assert_eq!(phase_of(&state, "c"), NodePhase::Done);
}

#[test]
fn a_failing_hook_fails_its_node_or_halts_the_session() {
    let fails_for_a = |request: &HookRequest| {
        (request.nodes[0].as_str() == "a").then(|| "exited with status 3: no firmware".to_string())
    };
    let policy = with_hooks(vec![hook(HookPoint::PreBoot, HookScope::Node, "firmware")]);
    let (state, cluster) = drive(policy, &["a", "b"], 1, fails_for_a, never_restart);
    assert_eq!(phase_of(&state, "a"), NodePhase::Failed);
    let reason = state.nodes[0].reason.as_deref().unwrap();
    assert_eq!(
        reason,
        "pre_boot hook `firmware` failed: exited with status 3: no firmware"
    );
    assert!(!cluster.booted.contains(&NodeId::from("a")));
    assert_eq!(phase_of(&state, "b"), NodePhase::Done);
    assert!(state.halted.is_none());

    let mut halting = hook(HookPoint::PreBoot, HookScope::Node, "firmware");
    halting.on_failure = HookOnFailure::Halt;
    let (state, cluster) = drive(
        with_hooks(vec![halting]),
        &["a", "b"],
        1,
        fails_for_a,
        never_restart,
    );
    assert_eq!(phase_of(&state, "a"), NodePhase::Failed);
    let halted = state.halted.as_deref().unwrap();
    assert!(halted.contains("on_failure: halt"), "{halted}");
    // No new node is taken.
    assert_eq!(phase_of(&state, "b"), NodePhase::Pending);
    assert_eq!(cluster.runs("firmware", "b"), 0);
}

#[test]
fn a_failing_post_boot_hook_boots_the_node_back_under_a_rollback_policy() {
    let mut policy = with_hooks(vec![hook(HookPoint::PostBoot, HookScope::Node, "verify")]);
    policy.rollback = Some(Rollback {
        template: "old-image".into(),
        on: vec![RollbackTrigger::NodeFailed],
        revert_upgraded_on_halt: false,
        batch: None,
    });
    let (state, cluster) = drive(
        policy,
        &["a"],
        1,
        |_| Some("the site's check failed".to_string()),
        never_restart,
    );
    // Booted back (the hook ran once: it is not run after the rollback boot).
    assert_eq!(
        phase_of(&state, "a"),
        NodePhase::Reverted,
        "{:?}",
        state.messages
    );
    assert_eq!(cluster.runs("verify", "a"), 1);
}

#[test]
fn a_stored_session_from_before_hooks_loads_with_none() {
    let (rollout, _) = started(&["a"], 1);
    let mut json = serde_json::to_value(rollout.state()).unwrap();
    assert!(json["policy"].get("hooks").is_none());
    assert!(json["nodes"][0].get("hooks").is_none());
    assert!(json["steps"][0].get("hooks").is_none());
    json["policy"].as_object_mut().unwrap().remove("hooks");
    let back: RolloutState = serde_json::from_value(json).unwrap();
    assert_eq!(&back, rollout.state());
}

#[test]
fn a_session_deleted_while_a_pre_drain_hook_runs_leaves_the_node_as_it_was() {
    // Found by the property test: the node, never drained, was resumed.
    let policy = with_hooks(vec![hook(
        HookPoint::PreDrain,
        HookScope::Node,
        "pre-drain",
    )]);
    let mut rollout = Rollout::new(Uuid::nil(), spec(1), policy, t(0));
    rollout.handle_timeout(t(0));
    let mut hook_run = None;
    for _ in 0..10 {
        for (id, action) in take_actions(&mut rollout) {
            let outcome = match action {
                Action::ReadStartingGroup { .. } => ActionOutput::Members(ids(&["a"])),
                Action::PrepareGroups { .. } => ActionOutput::GroupsPrepared {
                    cleared_failed: Vec::new(),
                    cleared_upgrading: Vec::new(),
                },
                Action::RunHook { .. } => {
                    // Left running: the session is deleted meanwhile.
                    hook_run = Some(id);
                    continue;
                }
                Action::Drain { .. } => panic!("drained before its pre_drain hook finished"),
                Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
                    nodes
                        .iter()
                        .map(|node| workload(node.as_str(), WorkloadState::Allocated, true))
                        .collect(),
                ),
                _ => ActionOutput::Done,
            };
            rollout.handle_outcome(t(1), id, Ok(outcome));
        }
    }
    let hook_run = hook_run.expect("the pre_drain hook was asked for");
    assert_eq!(rollout.state().nodes[0].phase, NodePhase::Draining);

    rollout.cancel(t(2));
    rollout.handle_outcome(t(3), hook_run, Ok(ActionOutput::HookRan(None)));
    let mut asked = Vec::new();
    for _ in 0..10 {
        for (id, action) in take_actions(&mut rollout) {
            asked.push(action);
            rollout.handle_outcome(t(4), id, Ok(ActionOutput::Done));
        }
    }
    assert!(
        !asked
            .iter()
            .any(|action| matches!(action, Action::Resume { .. } | Action::Drain { .. })),
        "a node crus never drained is neither drained nor resumed: {asked:?}"
    );
    assert!(rollout.is_finished(), "{:?}", rollout.state().messages);
    let node = &rollout.state().nodes[0];
    assert_eq!(node.phase, NodePhase::Skipped);
    assert_eq!(
        node.reason.as_deref(),
        Some("session deleted before the node was drained; it was left as it was")
    );
    assert!(
        rollout.refused_moves().is_empty(),
        "{:?}",
        rollout.refused_moves()
    );
}

#[test]
fn a_post_boot_hook_runs_after_every_boot_of_its_node() {
    let mut policy = with_hooks(vec![
        hook(HookPoint::PreBoot, HookScope::Node, "pre-boot"),
        hook(HookPoint::PostBoot, HookScope::Node, "post-boot"),
    ]);
    policy.retries = 1;
    let cluster = Cluster {
        hangs_first_boot: ids(&["a"]).into_iter().collect(),
        ..Cluster::default()
    };
    let (state, cluster) = drive_on(cluster, policy, &["a", "b"], 2, never_fails, never_restart);
    assert_eq!(
        phase_of(&state, "a"),
        NodePhase::Done,
        "{:?}",
        state.messages
    );
    assert_eq!(cluster.boots[&NodeId::from("a")], 2, "{:?}", cluster.log);
    // After each boot (the retry's too), and the pre_boot hook only once.
    assert_eq!(cluster.runs("post-boot", "a"), 2, "{:?}", cluster.log);
    assert_eq!(cluster.runs("pre-boot", "a"), 1, "{:?}", cluster.log);
    let order: Vec<&str> = cluster
        .log
        .iter()
        .filter(|line| line.ends_with(" a") && !line.starts_with("drain"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        order,
        [
            "hook pre-boot a",
            "boot a",
            "hook post-boot a",
            "boot a",
            "hook post-boot a"
        ]
    );
    let run = &state.nodes[0].hooks[1];
    assert_eq!((run.state, run.boot), (HookRunState::Finished, Some(2)));
    // A node booted once runs it once.
    assert_eq!(cluster.runs("post-boot", "b"), 1);

    // The event stream tells each run, as webhooks get it.
    let runs: Vec<(HookPoint, HookRunState)> = cluster
        .events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Hook {
                at, nodes, state, ..
            } if nodes == &ids(&["a"]) => Some((*at, *state)),
            _ => None,
        })
        .collect();
    assert_eq!(
        runs,
        [
            (HookPoint::PreBoot, HookRunState::Running),
            (HookPoint::PreBoot, HookRunState::Finished),
            (HookPoint::PostBoot, HookRunState::Running),
            (HookPoint::PostBoot, HookRunState::Finished),
            (HookPoint::PostBoot, HookRunState::Running),
            (HookPoint::PostBoot, HookRunState::Finished),
        ]
    );
    let hook_event = cluster
        .events
        .iter()
        .find(|event| event.kind.name() == "hook")
        .unwrap();
    let json = serde_json::to_value(hook_event).unwrap();
    assert_eq!(json["type"], "hook");
    assert_eq!(json["hook"], "`pre-boot`");
    assert_eq!(json["point"], "pre_boot");
    // `at` is when it happened, as in every event, and written once.
    assert_eq!(json["at"], serde_json::to_value(hook_event.at).unwrap());
    let text = serde_json::to_string(hook_event).unwrap();
    assert_eq!(text.matches("\"at\":").count(), 1, "{text}");
    assert_eq!(json["per"], "node");
    assert_eq!(json["state"], "running");
}

#[test]
fn a_post_boot_run_stored_without_its_boot_counts_for_the_latest_boot() {
    // Sessions stored before runs recorded their boot: nothing runs again.
    let run = HookRun {
        hook: 0,
        state: HookRunState::Finished,
        started_at: t(0),
        finished_at: Some(t(1)),
        nodes: Vec::new(),
        failure: None,
        boot: None,
    };
    assert!(!run.is_for_earlier_boot(3));
    let json = serde_json::to_value(&run).unwrap();
    assert!(json.get("boot").is_none());
    let with_boot = HookRun {
        boot: Some(1),
        ..run
    };
    assert!(with_boot.is_for_earlier_boot(2));
    assert!(!with_boot.is_for_earlier_boot(1));
}
