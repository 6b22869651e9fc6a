//! Every wake-up is a timer (issue 19): the due times that follow from the
//! state are set where it changes, cleared when they no longer apply, and
//! rebuilt from the persisted state after a restart.

use super::*;

/// When the rollout wants to be woken, worked out from the nodes and boots
/// in flight as `poll_timeout` did before the timers held every due time:
/// the property tests check at every input that the timers give the same.
pub(super) fn wake_up_worked_out_from_the_state(rollout: &Rollout) -> Option<Timestamp> {
    let mut deadlines: Vec<Timestamp> = Vec::new();
    let nothing_in_flight = rollout.outbox.is_empty() && rollout.in_flight.is_empty();
    match rollout.state.stage {
        Stage::Snapshot | Stage::PrepareGroups | Stage::Cleanup => {
            if nothing_in_flight {
                deadlines.extend(rollout.timers.get(Timer::SessionRetry));
                deadlines.extend(rollout.timers.get(Timer::WeightRetry));
                deadlines.extend(rollout.timers.get(Timer::FeatureRetry));
                deadlines.extend(rollout.timers.get(Timer::ReserveRetry));
            }
        }
        Stage::Running => {
            let observing_workload =
                rollout.is_in_flight(|action| matches!(action, Action::ObserveWorkload { .. }));
            let watching = rollout.census.count(NodePhase::Draining)
                + rollout.census.count(NodePhase::Verifying)
                > 0;
            let workload_armed = (watching || rollout.want_pending_costs) && !observing_workload;
            let gates_armed = rollout.gate_check_wanted();
            deadlines.extend(rollout.hold_expires_at());
            deadlines.extend(rollout.timers.earliest(|timer, _| match timer {
                Timer::WorkloadPoll => workload_armed,
                Timer::NodeRetry(_)
                | Timer::WindowOpens
                | Timer::FloorCheck
                | Timer::BootRate
                | Timer::WeightRetry
                | Timer::FeatureRetry
                | Timer::ReserveRetry => true,
                Timer::WeightCheck => rollout.weight_check_armed(),
                Timer::FeatureCheck => rollout.feature_check_armed(),
                Timer::ReservationCheck => rollout.reservation_check_armed(),
                Timer::GatePoll => gates_armed,
                // Worked out below.
                Timer::SessionRetry
                | Timer::BootPoll { .. }
                | Timer::ComeBack(_)
                | Timer::DrainTimeout(_)
                | Timer::ForeignWait(_)
                | Timer::HoldExpires => false,
            }));
            for step in rollout.active_steps() {
                let awaited =
                    rollout.nodes_by_boot(step, &[NodePhase::Booting, NodePhase::Verifying]);
                for (number, (boot, nodes)) in step.boots.iter().zip(awaited).enumerate() {
                    let number = u32::try_from(number).unwrap();
                    deadlines.extend(
                        nodes
                            .iter()
                            .filter(|&&node| rollout.state.nodes[node].healthy_since.is_none())
                            .map(|&node| rollout.come_back_deadline(node, boot))
                            .filter(|&deadline| deadline > rollout.judged_until)
                            .min(),
                    );
                    let booting = nodes
                        .iter()
                        .any(|&node| rollout.state.nodes[node].phase == NodePhase::Booting);
                    if !rollout.boot_in_flight(step.number, number) && booting {
                        match boot.handle {
                            Some(_) => deadlines.push(rollout.boot_poll_due(step.number, number)),
                            None => deadlines.extend(rollout.timers.get(Timer::SessionRetry)),
                        }
                    }
                }
            }
            deadlines.extend(drain_deadline(rollout));
            deadlines.extend(foreign_wait_deadline(rollout));
        }
        Stage::Finished => {}
    }
    deadlines.into_iter().min()
}

/// The earliest time a draining node reaches `drain_timeout`, when a policy
/// acts on it.
fn drain_deadline(rollout: &Rollout) -> Option<Timestamp> {
    let timeout = rollout.state.policy.drain_timeout?;
    if rollout.state.policy.on_drain_timeout == OnDrainTimeout::Wait {
        return None;
    }
    rollout
        .census
        .active_steps()
        .into_iter()
        .flat_map(|step| rollout.census.unsettled(step))
        .filter(|node| {
            rollout.state.nodes[*node].phase == NodePhase::Draining
                && !rollout.requeued.contains(node)
                && !rollout.waits_for_owner(*node)
        })
        .filter_map(|node| rollout.state.nodes[node].drain_asked_at)
        .map(|asked| asked + timeout)
        .min()
}

/// When the next foreign node waiting for its owner reaches `drain_timeout`.
fn foreign_wait_deadline(rollout: &Rollout) -> Option<Timestamp> {
    if rollout.state.policy.foreign_out_of_service != ForeignOutOfService::Wait {
        return None;
    }
    let timeout = rollout.state.policy.drain_timeout?;
    rollout
        .census
        .nodes_in(&[NodePhase::Draining])
        .filter_map(|node| {
            let record = &rollout.state.nodes[node];
            let mark = record.foreign.as_ref()?;
            Some(record.taken_at.unwrap_or(record.since).max(mark.seen_at) + timeout)
        })
        .min()
}

#[test]
fn a_node_due_back_is_a_timer_rebuilt_after_a_restart_and_cleared_once_healthy() {
    let (mut rollout, actions) = started(&["a", "b"], 2);
    rollout.handle_outcome(t(0), actions[0].0, Ok(ActionOutput::Done));
    rollout.handle_outcome(
        t(0),
        actions[1].0,
        Ok(ActionOutput::Workload(vec![
            workload("a", WorkloadState::Drained, true),
            workload("b", WorkloadState::Drained, true),
        ])),
    );
    let actions = take_actions(&mut rollout);
    let [(start_id, Action::StartBoot { .. })] = &actions[..] else {
        panic!("expected the boot, got {actions:?}");
    };
    // Asked for, not acknowledged: due back counting from the ask.
    let asked_deadline = t(0) + Duration::from_secs(600);
    assert_eq!(rollout.timers.get(Timer::ComeBack(0)), Some(asked_deadline));
    rollout.handle_outcome(
        t(1),
        *start_id,
        Ok(ActionOutput::BootStarted(BootHandle {
            key: "k".into(),
            id: "boot".into(),
        })),
    );
    // Ten minutes from the boot service's acknowledgement.
    let deadline = t(1) + Duration::from_secs(600);
    for node in [0, 1] {
        assert_eq!(rollout.timers.get(Timer::ComeBack(node)), Some(deadline));
    }
    // The boot's poll goes out and is not answered yet: nothing else is
    // due, so the next wake-up is the nodes' deadline, from the timers.
    rollout.handle_timeout(t(11));
    let actions = take_actions(&mut rollout);
    let [(observe_id, Action::ObserveBoot { .. })] = &actions[..] else {
        panic!("expected the boot's poll, got {actions:?}");
    };
    assert_eq!(rollout.poll_timeout(), Some(deadline));

    // After a restart the deadlines are rebuilt from the persisted state
    // (and the boot is polled at once).
    let resumed = Rollout::resume(rollout.state().clone());
    for node in [0, 1] {
        assert_eq!(resumed.timers.get(Timer::ComeBack(node)), Some(deadline));
    }
    assert_eq!(
        resumed.timers.get(Timer::BootPoll { step: 0, boot: 0 }),
        Some(Timestamp::EPOCH)
    );
    assert_eq!(
        resumed.poll_timeout(),
        wake_up_worked_out_from_the_state(&resumed)
    );

    // `a` booted and answers healthy: it holds no wake-up any more; `b`
    // still does.
    rollout.handle_outcome(
        t(12),
        *observe_id,
        Ok(ActionOutput::BootStatus(vec![
            boot("a", NodeBootState::Ok),
            boot("b", NodeBootState::InProgress),
        ])),
    );
    assert_eq!(rollout.state().nodes[0].phase, NodePhase::Verifying);
    assert_eq!(rollout.timers.get(Timer::ComeBack(0)), Some(deadline));
    for (id, action) in take_actions(&mut rollout) {
        let output = match action {
            Action::ObserveWorkload { .. } => {
                ActionOutput::Workload(vec![workload("a", WorkloadState::Drained, true)])
            }
            _ => ActionOutput::Done,
        };
        rollout.handle_outcome(t(13), id, Ok(output));
    }
    assert_eq!(rollout.state().nodes[0].phase, NodePhase::Resuming);
    assert_eq!(rollout.timers.get(Timer::ComeBack(0)), None);
    assert_eq!(rollout.timers.get(Timer::ComeBack(1)), Some(deadline));
    assert_eq!(
        rollout.poll_timeout(),
        wake_up_worked_out_from_the_state(&rollout)
    );
}
