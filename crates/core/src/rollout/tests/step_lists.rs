//! The stored header leaves the steps' and boots' node lists out (issue 25),
//! so its size does not grow with the machine, and a header with its nodes
//! assembles back into the very state it was taken from.

use super::*;

/// Answers every action at once: every node drained and back after its boot.
fn respond(rollout: &Rollout, action: &Action, names: &[NodeId]) -> ActionOutput {
    match action {
        Action::ReadStartingGroup { .. } => ActionOutput::Members(names.to_vec()),
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
            id: format!("bos-{}", request.key),
        }),
        Action::ObserveBoot {
            step, boot: number, ..
        } => ActionOutput::BootStatus(
            rollout.state().steps[*step as usize].boots[*number as usize]
                .nodes
                .iter()
                .map(|node| boot(node.as_str(), NodeBootState::Ok))
                .collect(),
        ),
        _ => ActionOutput::Done,
    }
}

/// Drives a session of `count` nodes in ten steps to its end, calling
/// `each` with the rollout after every pass. Returns the finished rollout.
fn run(count: usize, mut each: impl FnMut(&mut Rollout)) -> Rollout {
    let names: Vec<NodeId> = (0..count)
        .map(|index| NodeId::new(format!("x1000c0s{index}b0n0")))
        .collect();
    let step = u32::try_from(count / 10).unwrap();
    let mut rollout = Rollout::new(
        Uuid::from_u128(0x25),
        spec(step),
        RolloutPolicy::default(),
        t(0),
    );
    let mut now = t(0);
    rollout.handle_timeout(now);
    for _ in 0..100_000 {
        if rollout.is_finished() && !rollout.has_work_in_flight() {
            return rollout;
        }
        let actions = take_actions(&mut rollout);
        if actions.is_empty() {
            now = rollout
                .poll_timeout()
                .filter(|deadline| *deadline > now)
                .unwrap_or(now + POLL);
            rollout.handle_timeout(now);
        } else {
            let answers: Vec<_> = actions
                .iter()
                .map(|(id, action)| (*id, Ok(respond(&rollout, action, &names))))
                .collect();
            rollout.handle_outcomes(now, answers);
        }
        each(&mut rollout);
    }
    panic!("no end: {:#?}", rollout.state().messages);
}

/// The header as a store writes it, in JSON.
fn header_bytes(rollout: &mut Rollout) -> usize {
    serde_json::to_vec(&rollout.header_state()).unwrap().len()
}

#[test]
fn the_stored_header_does_not_grow_with_the_node_count() {
    let mut small = run(200, |_| {});
    let mut large = run(2_000, |_| {});
    assert_eq!(large.state().count(NodePhase::Done), 2_000);
    let (small_bytes, large_bytes) = (header_bytes(&mut small), header_bytes(&mut large));
    // The same ten steps and the same messages, but for the node counts
    // written in them: with the node lists the large one was ~45 kB more.
    assert!(
        large_bytes < small_bytes + 1_024,
        "header of 200 nodes: {small_bytes} B; of 2,000 nodes: {large_bytes} B"
    );
    let header = large.header_state();
    assert!(
        header.steps.iter().all(
            |step| step.nodes.is_empty() && step.boots.iter().all(|boot| boot.nodes.is_empty())
        )
    );
    // The state itself still has them.
    assert!(
        large
            .state()
            .steps
            .iter()
            .all(|step| step.nodes.len() == 200)
    );
}

#[test]
fn a_header_and_its_nodes_assemble_back_into_the_state_at_every_pass() {
    let mut passes = 0;
    run(300, |rollout| {
        let mut assembled = rollout.header_state();
        assembled.nodes = rollout.state().nodes.clone();
        assembled.restore_node_lists();
        assert_eq!(&assembled, rollout.state());
        assert!(rollout.state().node_lists_derivable());
        passes += 1;
    });
    assert!(passes > 10);
}

#[test]
fn a_resumed_header_without_node_lists_carries_on_as_the_state_it_came_from() {
    let mut checked = 0;
    let mut rollout = run(300, |rollout| {
        if rollout
            .state()
            .steps
            .iter()
            .any(|step| !step.boots.is_empty())
            && checked == 0
        {
            let mut assembled = rollout.header_state();
            assembled.nodes = rollout.state().nodes.clone();
            let resumed = Rollout::resume(assembled);
            assert_eq!(resumed.state(), rollout.state());
            assert_eq!(resumed.status(), rollout.status());
            checked += 1;
        }
    });
    assert_eq!(checked, 1);
    assert!(rollout.is_finished());
    assert!(header_bytes(&mut rollout) < 10_000);
}
