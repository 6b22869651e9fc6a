//! Rollout events recovered from two stored states of one session.
//!
//! A replica that does not drive a session (another replica leads) never
//! sees its rollout emit events, only its stored record change, through a
//! store watch. [`events_between`] tells what happened between two stored
//! states in the same vocabulary, so that replica's event stream shows the
//! same session as the leader's. Transitions that happened between two
//! writes are told as one (a node seen `draining` then `booting` is told
//! `draining → booting`); the stored record stays the reference.

use crate::rollout::{EventKind, HookRun, NodePhase, RolloutEvent, RolloutState};
use crate::session::SessionState;
use crate::time::Timestamp;

/// What happened to a session between its stored state `before` (`None`: a
/// session first seen, created since) and `after`, in the order the rollout
/// tells it: steps started, node phases, steps finished, pauses, messages,
/// and the state last (a `READY` ends a session's stream).
pub fn events_between(before: Option<&RolloutState>, after: &RolloutState) -> Vec<RolloutEvent> {
    let at = latest_time(after);
    let mut kinds = Vec::new();
    let steps_before = before.map_or(0, |state| state.steps.len());
    for step in after.steps.iter().skip(steps_before) {
        kinds.push(EventKind::StepStarted {
            step: step.number,
            nodes: step
                .nodes
                .iter()
                .filter_map(|index| after.nodes.get(*index).map(|node| node.id.clone()))
                .collect(),
        });
    }
    for node in &after.nodes {
        let from = before
            .and_then(|state| state.nodes.iter().find(|old| old.id == node.id))
            .map_or(NodePhase::Pending, |old| old.phase);
        if from != node.phase {
            kinds.push(EventKind::NodePhase {
                node: node.id.clone(),
                from,
                to: node.phase,
                reason: node.reason.clone(),
            });
        }
    }
    hook_events(before, after, &mut kinds);
    for step in &after.steps {
        let finished_before = before
            .and_then(|state| state.steps.iter().find(|old| old.number == step.number))
            .is_some_and(|old| old.finished);
        if step.finished && !finished_before {
            let count = |phase: NodePhase| {
                step.nodes
                    .iter()
                    .filter(|index| after.nodes.get(**index).is_some_and(|n| n.phase == phase))
                    .count()
            };
            kinds.push(EventKind::StepFinished {
                step: step.number,
                upgraded: count(NodePhase::Done),
                failed: count(NodePhase::Failed),
                skipped: count(NodePhase::Skipped),
                reverted: count(NodePhase::Reverted),
            });
        }
    }
    let messages_before = before.map_or(0, |state| state.messages.len());
    let new_messages = after.messages.get(messages_before..).unwrap_or_default();
    let was_paused = before.is_some_and(|state| state.paused);
    let was_halted = before.is_some_and(|state| state.halted.is_some());
    if after.paused && !was_paused {
        // The rollout words it "Paused: <reason>; ..."; the reason is not stored apart.
        let reason = new_messages
            .iter()
            .rev()
            .find_map(|text| text.strip_prefix("Paused: "))
            .and_then(|rest| rest.split(';').next())
            .unwrap_or("paused")
            .to_string();
        kinds.push(EventKind::Paused { reason });
    }
    if let Some(reason) = &after.halted
        && !was_halted
    {
        kinds.push(EventKind::Halted {
            reason: reason.clone(),
        });
    }
    if (was_paused && !after.paused) || (was_halted && after.halted.is_none()) {
        kinds.push(EventKind::Resumed);
    }
    let gated_before = before.and_then(|state| state.gated.as_ref());
    match (&after.gated, gated_before) {
        (Some(hold), before) if before.map(|hold| &hold.reasons) != Some(&hold.reasons) => {
            kinds.push(EventKind::Gated {
                reasons: hold.reasons.clone(),
            });
        }
        (None, Some(_)) => kinds.push(EventKind::GatesCleared),
        _ => {}
    }
    for text in new_messages {
        kinds.push(EventKind::Message { text: text.clone() });
    }
    if let Some(state) = told_state(after)
        && before.and_then(told_state) != Some(state)
    {
        kinds.push(EventKind::State { state });
    }
    kinds
        .into_iter()
        .map(|kind| RolloutEvent {
            upgrade_id: after.upgrade_id,
            at,
            kind,
        })
        .collect()
}

/// The runs of site hooks that started, finished or failed between
/// `before` and `after`: each run whose state (or boot) is new.
fn hook_events(before: Option<&RolloutState>, after: &RolloutState, kinds: &mut Vec<EventKind>) {
    if after.policy.hooks.is_empty() {
        return;
    }
    let mut tell = |runs_before: &[HookRun], run: &HookRun, step: u32, nodes: Vec<_>| {
        let told = runs_before
            .iter()
            .any(|old| old.hook == run.hook && old.state == run.state && old.boot == run.boot);
        let Some(hook) = usize::try_from(run.hook)
            .ok()
            .and_then(|position| after.policy.hooks.get(position))
        else {
            return;
        };
        if !told {
            kinds.push(EventKind::Hook {
                at: hook.at,
                per: hook.per,
                hook: hook.target(),
                step,
                nodes,
                state: run.state,
                failure: run.failure.clone(),
            });
        }
    };
    for (position, node) in after.nodes.iter().enumerate() {
        if node.hooks.is_empty() {
            continue;
        }
        // Nodes keep their places in a session's record.
        let runs_before = before
            .and_then(|state| state.nodes.get(position))
            .filter(|old| old.id == node.id)
            .map_or(&[][..], |old| old.hooks.as_slice());
        for run in &node.hooks {
            tell(
                runs_before,
                run,
                node.step.unwrap_or_default(),
                vec![node.id.clone()],
            );
        }
    }
    for step in &after.steps {
        let runs_before = before
            .and_then(|state| state.steps.iter().find(|old| old.number == step.number))
            .map_or(&[][..], |old| old.hooks.as_slice());
        for run in &step.hooks {
            tell(runs_before, run, step.number, run.nodes.clone());
        }
    }
}

/// The state a session's stream has told once it is stored as `state`: a
/// session is stored `UPDATING` from its creation (as CRUS answered), and
/// told so when a controller takes it up (as the rollout tells it); `None`
/// before then.
fn told_state(state: &RolloutState) -> Option<SessionState> {
    let served = state.state.served();
    (state.started_at.is_some() || served != SessionState::Updating).then_some(served)
}

/// The latest time the state records: when the events between two writes
/// happened at the latest (the state keeps no time per message).
fn latest_time(state: &RolloutState) -> Timestamp {
    state
        .nodes
        .iter()
        .map(|node| node.since)
        .chain(state.started_at)
        .chain(state.finished_at)
        .fold(state.created_at, Timestamp::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{NodeRecord, Rollout, RolloutPolicy, Step};
    use crate::session::SessionSpec;

    fn state() -> RolloutState {
        let spec = SessionSpec {
            failed_label: "failed".into(),
            starting_label: "compute".into(),
            upgrade_step_size: 2,
            upgrade_template_id: "image".into(),
            upgrading_label: "upgrading".into(),
            workload_manager_type: "slurm".into(),
            policy: None,
        };
        Rollout::new(
            uuid::Uuid::nil(),
            spec,
            RolloutPolicy::default(),
            Timestamp::from_secs(1),
        )
        .state()
        .clone()
    }

    fn names(events: &[RolloutEvent]) -> Vec<&'static str> {
        events.iter().map(|event| event.kind.name()).collect()
    }

    #[test]
    fn a_step_through_to_the_end_is_told_in_the_rollouts_words() {
        let created = state();
        let mut running = created.clone();
        // Taken up by a controller: told UPDATING.
        running.started_at = Some(Timestamp::from_secs(2));
        running.nodes = ["n1", "n2"]
            .into_iter()
            .map(|id| NodeRecord::pending(id.into(), Timestamp::from_secs(2)))
            .collect();
        running.nodes[0].phase = NodePhase::Draining;
        running.nodes[0].since = Timestamp::from_secs(5);
        running.steps.push(Step {
            number: 0,
            nodes: vec![0],
            started_at: Timestamp::from_secs(5),
            boots: Vec::new(),
            finished: false,
            hooks: Vec::new(),
        });
        running
            .messages
            .push("Step 0 started: draining 1 node".into());
        let events = events_between(Some(&created), &running);
        assert_eq!(
            names(&events),
            ["step_started", "node_phase", "message", "state"]
        );
        assert!(
            events
                .iter()
                .all(|event| event.at == Timestamp::from_secs(5))
        );

        let mut done = running.clone();
        done.nodes[0].phase = NodePhase::Done;
        done.steps[0].finished = true;
        done.state = SessionState::Ready;
        let events = events_between(Some(&running), &done);
        assert_eq!(names(&events), ["node_phase", "step_finished", "state"]);
        assert_eq!(
            events[0].kind,
            EventKind::NodePhase {
                node: "n1".into(),
                from: NodePhase::Draining,
                to: NodePhase::Done,
                reason: None,
            }
        );
        assert_eq!(
            events[1].kind,
            EventKind::StepFinished {
                step: 0,
                upgraded: 1,
                failed: 0,
                skipped: 0,
                reverted: 0
            }
        );
        // Nothing changed, nothing told.
        assert!(events_between(Some(&done), &done).is_empty());
        // A new session is told from its creation.
        assert_eq!(
            names(&events_between(None, &running)),
            ["step_started", "node_phase", "message", "state"]
        );
    }

    #[test]
    fn pauses_halts_and_resumes_are_told() {
        let running = state();
        let mut paused = running.clone();
        paused.paused = true;
        paused.messages.push(
            "Paused: operator request; nodes in flight finish, no new node is taken until resumed"
                .into(),
        );
        let events = events_between(Some(&running), &paused);
        assert_eq!(
            events[0].kind,
            EventKind::Paused {
                reason: "operator request".into()
            }
        );
        let mut resumed = paused.clone();
        resumed.paused = false;
        assert_eq!(names(&events_between(Some(&paused), &resumed)), ["resumed"]);
        let mut halted = running.clone();
        halted.halted = Some("2 of 4 nodes failed".into());
        assert_eq!(names(&events_between(Some(&running), &halted)), ["halted"]);
    }

    #[test]
    fn hook_runs_are_told_as_they_start_and_end() {
        use crate::rollout::{DEFAULT_HOOK_TIMEOUT, Hook, HookOnFailure, HookPoint, HookRunState};
        use crate::rollout::{HookRun, HookScope};
        let mut running = state();
        running.policy.hooks = vec![Hook {
            at: HookPoint::PostBoot,
            per: HookScope::Node,
            command: Some(vec!["/site/check".into()]),
            http: None,
            timeout: DEFAULT_HOOK_TIMEOUT,
            idempotent: false,
            on_failure: HookOnFailure::FailNode,
        }];
        running.nodes = vec![NodeRecord::pending("n1".into(), Timestamp::from_secs(2))].into();
        running.nodes[0].step = Some(0);
        let mut started = running.clone();
        started.nodes[0].hooks.push(HookRun {
            hook: 0,
            state: HookRunState::Running,
            started_at: Timestamp::from_secs(3),
            finished_at: None,
            nodes: Vec::new(),
            failure: None,
            boot: Some(1),
        });
        let events = events_between(Some(&running), &started);
        assert_eq!(
            events[0].kind,
            EventKind::Hook {
                at: HookPoint::PostBoot,
                per: HookScope::Node,
                hook: "`/site/check`".into(),
                step: 0,
                nodes: vec!["n1".into()],
                state: HookRunState::Running,
                failure: None,
            }
        );
        assert!(events_between(Some(&started), &started).is_empty());
        let mut failed = started.clone();
        failed.nodes[0].hooks[0].state = HookRunState::Failed;
        failed.nodes[0].hooks[0].failure = Some("exited with status 2".into());
        let events = events_between(Some(&started), &failed);
        assert!(matches!(
            &events[0].kind,
            EventKind::Hook { state: HookRunState::Failed, failure: Some(why), .. } if why == "exited with status 2"
        ));
        // A run after the node's next boot is told again, from `running`.
        let mut again = failed.clone();
        again.nodes[0].hooks[0] = HookRun {
            boot: Some(2),
            ..started.nodes[0].hooks[0].clone()
        };
        assert_eq!(names(&events_between(Some(&failed), &again)), ["hook"]);
    }
}
