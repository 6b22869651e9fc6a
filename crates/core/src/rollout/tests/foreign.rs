//! Nodes someone else took out of service (issue 21), driven against a
//! small workload manager that keeps one reason per node as Slurm does.

use std::collections::BTreeMap;

use super::*;

/// What the fake workload manager knows of one node.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mark {
    pub(super) state: WorkloadState,
    pub(super) reason: Option<String>,
}

/// A workload manager and a boot service that always succeed, recording
/// what crus asked of them.
#[derive(Default)]
pub(super) struct Site {
    members: Vec<NodeId>,
    pub(super) nodes: BTreeMap<NodeId, Mark>,
    boots: BTreeMap<String, Vec<NodeId>>,
    booted: Vec<NodeId>,
    pub(super) resumed: Vec<NodeId>,
    restored: Vec<(NodeId, WorkloadState, String)>,
    /// The image each node runs, as the boot orchestrator tells it
    /// (`skip_matching`); a node booted gets the template.
    pub(super) images: BTreeMap<NodeId, String>,
    /// Every node crus asked to drain.
    pub(super) drained: Vec<NodeId>,
    /// Whether a finished boot returns its nodes to service, as Slurm's
    /// `scontrol reboot nextstate=RESUME` (the `slurm-reboot` backend) does.
    boot_resumes: bool,
    /// Whether a finished boot returns crus's own nodes to service and
    /// leaves nodes held by someone else out of service with the boot's own
    /// reason, as `slurm-reboot` does (it reboots them without
    /// `nextstate=RESUME`, and its reason names the boot).
    boot_keeps_held_out: bool,
    /// Whether every boot fails.
    boots_fail: bool,
}

impl Site {
    pub(super) fn new(names: &[&str]) -> Self {
        let members = ids(names);
        let nodes = members
            .iter()
            .map(|id| {
                let mark = Mark {
                    state: WorkloadState::Idle,
                    reason: None,
                };
                (id.clone(), mark)
            })
            .collect();
        Site {
            members,
            nodes,
            ..Site::default()
        }
    }

    /// An administrator takes `node` out of service with `reason`.
    pub(super) fn admin(&mut self, node: &str, state: WorkloadState, reason: &str) {
        self.nodes.insert(
            NodeId::from(node),
            Mark {
                state,
                reason: Some(reason.to_string()),
            },
        );
    }

    /// An administrator returns `node` to service: idle, no reason.
    pub(super) fn returns(&mut self, node: &str) {
        self.nodes.insert(
            NodeId::from(node),
            Mark {
                state: WorkloadState::Idle,
                reason: None,
            },
        );
    }

    fn mark(&self, node: &str) -> Mark {
        self.nodes[&NodeId::from(node)].clone()
    }

    pub(super) fn execute(&mut self, action: &Action) -> ActionOutput {
        match action {
            Action::ReadStartingGroup { .. } => ActionOutput::Members(self.members.clone()),
            Action::ReadCurrentImages { nodes, .. } => ActionOutput::Images(
                nodes
                    .iter()
                    .map(|node| crate::ports::NodeImage {
                        node: node.clone(),
                        image: self.images.get(node).cloned(),
                    })
                    .collect(),
            ),
            Action::PrepareGroups { .. } => ActionOutput::GroupsPrepared {
                cleared_failed: vec![],
                cleared_upgrading: vec![],
            },
            Action::Drain { nodes, reason, .. } => {
                self.drained.extend(nodes.iter().cloned());
                for node in nodes {
                    let mark = self.nodes.get_mut(node).unwrap();
                    // The controller's guard: a reason someone else set is
                    // never overwritten.
                    let held = matches!(
                        mark.state,
                        WorkloadState::Drained | WorkloadState::Draining | WorkloadState::Down
                    ) && mark.reason.as_deref().is_some_and(|r| !is_crus_reason(r));
                    if !held {
                        mark.state = WorkloadState::Drained;
                        mark.reason = Some(reason.clone());
                    }
                }
                ActionOutput::Done
            }
            Action::ObserveWorkload { nodes, .. } => ActionOutput::Workload(
                nodes
                    .iter()
                    .map(|node| {
                        let mark = &self.nodes[node];
                        WorkloadNode {
                            node: node.clone(),
                            state: mark.state,
                            responding: true,
                            jobs_end_by: None,
                            reason: mark.reason.clone(),
                        }
                    })
                    .collect(),
            ),
            Action::StartBoot { request, .. } => {
                self.boots
                    .insert(request.key.clone(), request.nodes.clone());
                self.booted.extend(request.nodes.iter().cloned());
                for node in &request.nodes {
                    self.images.insert(node.clone(), request.template.clone());
                }
                ActionOutput::BootStarted(BootHandle {
                    key: request.key.clone(),
                    id: request.key.clone(),
                })
            }
            Action::ObserveBoot { handle, .. } => {
                let nodes = self.boots[&handle.key].clone();
                if self.boot_keeps_held_out {
                    for node in &nodes {
                        let mark = self.nodes.get_mut(node).unwrap();
                        if mark.reason.as_deref().is_some_and(|r| !is_crus_reason(r)) {
                            mark.reason =
                                Some(format!("crus {} image=x : reboot issued", handle.key));
                        } else {
                            mark.state = WorkloadState::Idle;
                            mark.reason = None;
                        }
                    }
                }
                if self.boot_resumes {
                    for node in &nodes {
                        let mark = self.nodes.get_mut(node).unwrap();
                        mark.state = WorkloadState::Idle;
                        mark.reason = None;
                    }
                }
                let state = if self.boots_fail {
                    NodeBootState::Failed {
                        reason: "no image".into(),
                    }
                } else {
                    NodeBootState::Ok
                };
                ActionOutput::BootStatus(
                    nodes
                        .iter()
                        .map(|node| boot(node.as_str(), state.clone()))
                        .collect(),
                )
            }
            Action::Resume { nodes, .. } => {
                for node in nodes {
                    self.resumed.push(node.clone());
                    let mark = self.nodes.get_mut(node).unwrap();
                    mark.state = WorkloadState::Idle;
                    mark.reason = None;
                }
                ActionOutput::Done
            }
            Action::Restore {
                nodes,
                only_where_held,
                ..
            } => {
                for (node, state, reason) in nodes {
                    let mark = self.nodes.get_mut(node).unwrap();
                    // The controller's guard: a node crus never booted that
                    // its owner returned since is left in service.
                    let in_service =
                        matches!(mark.state, WorkloadState::Idle | WorkloadState::Allocated);
                    if *only_where_held && in_service {
                        continue;
                    }
                    self.restored.push((node.clone(), *state, reason.clone()));
                    mark.state = match state {
                        WorkloadState::Down => WorkloadState::Down,
                        _ => WorkloadState::Drained,
                    };
                    mark.reason = Some(reason.clone());
                }
                ActionOutput::Done
            }
            Action::MarkFailed { nodes, .. } => {
                for (node, reason) in nodes {
                    let mark = self.nodes.get_mut(node).unwrap();
                    // The controller's guard (`executor.rs`): crus's own
                    // mark goes over what a reboot wrote, never over a mark
                    // someone placed meanwhile; an owner's reason passed
                    // back never over any mark someone else holds.
                    let report = WorkloadNode {
                        node: node.clone(),
                        state: mark.state,
                        responding: true,
                        jobs_end_by: None,
                        reason: mark.reason.clone(),
                    };
                    let kept = if is_crus_reason(reason) {
                        marked_by_someone_else(&report)
                    } else {
                        held_by_someone_else(&report)
                    };
                    if kept {
                        continue;
                    }
                    mark.state = WorkloadState::Down;
                    mark.reason = Some(reason.clone());
                }
                ActionOutput::Done
            }
            Action::RunHook { .. } => ActionOutput::HookRan(None),
            _ => ActionOutput::Done,
        }
    }
}

/// Answers every action until `stop` holds or the session finishes;
/// returns the time reached.
pub(super) fn drive(
    rollout: &mut Rollout,
    site: &mut Site,
    mut now: Timestamp,
    stop: impl Fn(&Rollout) -> bool,
) -> Timestamp {
    rollout.handle_timeout(now);
    for _ in 0..10_000 {
        if rollout.is_finished() || stop(rollout) {
            return now;
        }
        let actions = take_actions(rollout);
        if actions.is_empty() {
            now = rollout
                .poll_timeout()
                .unwrap_or(now + POLL)
                .max(now + Duration::from_secs(1));
            rollout.handle_timeout(now);
            continue;
        }
        for (id, action) in actions {
            let output = site.execute(&action);
            rollout.handle_outcome(now, id, Ok(output));
        }
    }
    panic!("no end: {:?}", rollout.state().messages);
}

pub(super) fn session(policy: RolloutPolicy, step: u32) -> Rollout {
    Rollout::new(Uuid::nil(), spec(step), policy, t(0))
}

pub(super) fn record<'a>(rollout: &'a Rollout, node: &str) -> &'a NodeRecord {
    rollout
        .state()
        .nodes
        .iter()
        .find(|record| record.id.as_str() == node)
        .unwrap()
}

/// Whether the session has seen `node` held by someone else.
fn foreign_seen(rollout: &Rollout, node: &str) -> bool {
    rollout
        .state()
        .nodes
        .iter()
        .any(|record| record.id.as_str() == node && record.foreign.is_some())
}

/// Slurm shows reasons with spaces and brackets: kept byte for byte.
pub(super) const DIMM: &str = "bad DIMM  slot 3 [ticket 42]";

#[test]
fn a_node_drained_by_an_administrator_is_upgraded_and_put_back_with_its_reason() {
    let mut site = Site::new(&["a", "b", "c"]);
    site.admin("b", WorkloadState::Drained, DIMM);
    let mut rollout = session(RolloutPolicy::default(), 2);
    drive(&mut rollout, &mut site, t(0), |_| false);
    assert!(rollout.is_finished());
    assert_eq!(rollout.status().state, SessionState::Ready);
    let b = record(&rollout, "b");
    assert_eq!(b.phase, NodePhase::Done, "{:?}", rollout.state().messages);
    assert_eq!(b.foreign.as_ref().unwrap().reason, DIMM);
    assert!(
        b.reason
            .as_deref()
            .unwrap()
            .contains("put back out of service as found")
    );
    assert!(site.booted.contains(&NodeId::from("b")), "upgraded");
    assert!(!site.resumed.contains(&NodeId::from("b")), "never resumed");
    assert_eq!(
        site.mark("b"),
        Mark {
            state: WorkloadState::Drained,
            reason: Some(DIMM.to_string())
        }
    );
    // The others are upgraded and resumed as ever.
    for node in ["a", "c"] {
        assert_eq!(record(&rollout, node).phase, NodePhase::Done);
        assert_eq!(site.mark(node).state, WorkloadState::Idle);
    }
}

#[test]
fn a_node_down_with_a_reason_is_never_resumed() {
    let mut site = Site::new(&["a", "b"]);
    site.admin("b", WorkloadState::Down, "PSU fault");
    let mut rollout = session(RolloutPolicy::default(), 2);
    drive(&mut rollout, &mut site, t(0), |_| false);
    assert_eq!(record(&rollout, "b").phase, NodePhase::Done);
    assert!(!site.resumed.contains(&NodeId::from("b")));
    assert_eq!(
        site.mark("b"),
        Mark {
            state: WorkloadState::Down,
            reason: Some("PSU fault".to_string())
        }
    );
    assert_eq!(
        site.restored,
        [(
            NodeId::from("b"),
            WorkloadState::Down,
            "PSU fault".to_string()
        )]
    );
}

/// Found on real Slurm: `slurm-reboot` boots with `nextstate=RESUME`, so
/// Slurm itself returns the node to service when it is back; crus must not
/// read that as its owner returning it, and must still put it back as found.
#[test]
fn a_boot_that_returns_nodes_to_service_does_not_lose_their_owners_marks() {
    let mut site = Site::new(&["a", "b", "c"]);
    site.boot_resumes = true;
    site.admin("a", WorkloadState::Drained, DIMM);
    site.admin("b", WorkloadState::Down, "PSU fault");
    let mut rollout = session(RolloutPolicy::default(), 3);
    drive(&mut rollout, &mut site, t(0), |_| false);
    assert_eq!(rollout.status().state, SessionState::Ready);
    assert_eq!(
        site.mark("a"),
        Mark {
            state: WorkloadState::Drained,
            reason: Some(DIMM.to_string())
        },
        "{:?}",
        rollout.state().messages
    );
    assert_eq!(
        site.mark("b"),
        Mark {
            state: WorkloadState::Down,
            reason: Some("PSU fault".to_string())
        }
    );
    assert!(!site.resumed.contains(&NodeId::from("a")));
    assert!(!site.resumed.contains(&NodeId::from("b")));
    assert_eq!(site.mark("c").state, WorkloadState::Idle);
}

/// `slurm-reboot` keeps a held node out of service through its reboot, with
/// the reboot's reason (not crus's drain reason) meanwhile: crus must not
/// take that for a new owner's mark, and must still write the owner's
/// reason back.
#[test]
fn a_boot_that_keeps_nodes_out_with_its_own_reason_does_not_lose_their_owners_marks() {
    let mut site = Site::new(&["a", "b", "c"]);
    site.boot_keeps_held_out = true;
    site.admin("a", WorkloadState::Drained, DIMM);
    site.admin("b", WorkloadState::Down, "PSU fault");
    let mut rollout = session(RolloutPolicy::default(), 3);
    drive(&mut rollout, &mut site, t(0), |_| false);
    assert_eq!(rollout.status().state, SessionState::Ready);
    assert_eq!(
        site.mark("a"),
        Mark {
            state: WorkloadState::Drained,
            reason: Some(DIMM.to_string())
        },
        "{:?}",
        rollout.state().messages
    );
    assert_eq!(record(&rollout, "a").foreign.as_ref().unwrap().reason, DIMM);
    assert_eq!(
        site.mark("b"),
        Mark {
            state: WorkloadState::Down,
            reason: Some("PSU fault".to_string())
        }
    );
    assert!(site.resumed.iter().all(|node| node.as_str() == "c"));
    assert_eq!(site.mark("c").state, WorkloadState::Idle);
}

#[test]
fn under_skip_a_foreign_node_is_left_alone_and_reported_with_its_reason() {
    let mut site = Site::new(&["a", "b", "c"]);
    site.admin("b", WorkloadState::Drained, DIMM);
    let policy = RolloutPolicy {
        foreign_out_of_service: ForeignOutOfService::Skip,
        ..RolloutPolicy::default()
    };
    let mut rollout = session(policy, 3);
    drive(&mut rollout, &mut site, t(0), |_| false);
    let b = record(&rollout, "b");
    assert_eq!(b.phase, NodePhase::Skipped);
    assert!(
        b.reason.as_deref().unwrap().contains(DIMM),
        "{:?}",
        b.reason
    );
    assert!(!site.booted.contains(&NodeId::from("b")));
    assert!(!site.resumed.contains(&NodeId::from("b")));
    assert_eq!(site.mark("b").reason.as_deref(), Some(DIMM));
    assert_eq!(record(&rollout, "a").phase, NodePhase::Done);
}

#[test]
fn under_wait_a_foreign_node_is_upgraded_once_returned_and_skipped_after_the_drain_timeout() {
    let mut site = Site::new(&["a", "b"]);
    site.admin("a", WorkloadState::Drained, "returned soon");
    site.admin("b", WorkloadState::Drained, DIMM);
    let policy = RolloutPolicy {
        foreign_out_of_service: ForeignOutOfService::Wait,
        drain_timeout: Some(Duration::from_secs(3600)),
        strategy: Strategy::Continuous,
        ..RolloutPolicy::default()
    };
    let mut rollout = session(policy, 2);
    let now = drive(&mut rollout, &mut site, t(0), |rollout| {
        !rollout.state().nodes.is_empty()
            && rollout
                .state()
                .nodes
                .iter()
                .all(|node| node.foreign.is_some())
    });
    // Its administrator returns `a`: crus drains and upgrades it as any other.
    site.returns("a");
    let end = drive(&mut rollout, &mut site, now + POLL, |_| false);
    assert_eq!(record(&rollout, "a").phase, NodePhase::Done);
    assert!(record(&rollout, "a").foreign.is_none());
    let b = record(&rollout, "b");
    assert_eq!(
        b.phase,
        NodePhase::Skipped,
        "{:?}",
        rollout.state().messages
    );
    assert!(b.reason.as_deref().unwrap().contains("after drain_timeout"));
    assert!(end >= t(3600));
    assert!(!site.booted.contains(&NodeId::from("b")));
    assert!(!site.resumed.contains(&NodeId::from("b")));
    assert_eq!(site.mark("b").reason.as_deref(), Some(DIMM));
}

#[test]
fn a_node_an_administrator_drains_during_the_session_is_treated_the_same() {
    let mut site = Site::new(&["a", "b", "c", "d"]);
    let mut rollout = session(RolloutPolicy::default(), 2);
    // The first step is draining: an administrator drains one of its nodes
    // over crus's drain, and one still pending.
    let now = drive(&mut rollout, &mut site, t(0), |rollout| {
        rollout.state().count(NodePhase::Drained) + rollout.state().count(NodePhase::Booting) > 0
            || rollout.state().steps.len() == 1 && rollout.state().count(NodePhase::Draining) == 2
    });
    site.admin("a", WorkloadState::Drained, "admin: fan noise");
    site.admin("d", WorkloadState::Drained, DIMM);
    drive(&mut rollout, &mut site, now, |_| false);
    for node in ["a", "d"] {
        assert_eq!(record(&rollout, node).phase, NodePhase::Done);
        assert!(
            !site.resumed.contains(&NodeId::from(node)),
            "{node} resumed"
        );
    }
    assert_eq!(site.mark("a").reason.as_deref(), Some("admin: fan noise"));
    assert_eq!(site.mark("d").reason.as_deref(), Some(DIMM));
    assert_eq!(site.mark("c").state, WorkloadState::Idle);
}

#[test]
fn a_delete_puts_a_foreign_node_back_instead_of_resuming_it() {
    let mut site = Site::new(&["a", "b"]);
    site.admin("b", WorkloadState::Draining, DIMM);
    let mut rollout = session(RolloutPolicy::default(), 2);
    // `b` still runs a job: the step waits for it.
    let now = drive(&mut rollout, &mut site, t(0), |rollout| {
        foreign_seen(rollout, "b")
    });
    rollout.cancel(now);
    drive(&mut rollout, &mut site, now, |_| false);
    assert!(rollout.is_finished());
    assert_eq!(record(&rollout, "b").phase, NodePhase::Skipped);
    assert!(site.resumed.contains(&NodeId::from("a")));
    assert!(!site.resumed.contains(&NodeId::from("b")));
    assert_eq!(
        site.mark("b"),
        Mark {
            state: WorkloadState::Drained,
            reason: Some(DIMM.to_string())
        }
    );
}

#[test]
fn a_restart_from_the_persisted_state_keeps_the_rule() {
    let mut site = Site::new(&["a", "b"]);
    site.admin("b", WorkloadState::Drained, DIMM);
    let mut rollout = session(RolloutPolicy::default(), 2);
    let now = drive(&mut rollout, &mut site, t(0), |rollout| {
        foreign_seen(rollout, "b")
    });
    // A new controller, from the state as stored.
    let stored = serde_json::to_string(rollout.state()).unwrap();
    let mut rollout = Rollout::resume(serde_json::from_str(&stored).unwrap());
    drive(&mut rollout, &mut site, now + POLL, |_| false);
    assert_eq!(record(&rollout, "b").phase, NodePhase::Done);
    assert!(!site.resumed.contains(&NodeId::from("b")));
    assert_eq!(site.mark("b").reason.as_deref(), Some(DIMM));
}

#[test]
fn a_reason_crus_wrote_is_not_foreign() {
    let ours = WorkloadNode {
        reason: Some(format!("crus:{}", Uuid::nil())),
        ..workload("a", WorkloadState::Drained, true)
    };
    assert_eq!(foreign_mark_of(&ours, t(0)), None);
    let probe = WorkloadNode {
        reason: Some(format!("{HEALTH_CHECK_FAILED} exit 1")),
        ..workload("a", WorkloadState::Drained, false)
    };
    assert_eq!(foreign_mark_of(&probe, t(0)), None);
    let admin = WorkloadNode {
        reason: Some(DIMM.to_string()),
        ..workload("a", WorkloadState::Drained, true)
    };
    assert_eq!(foreign_mark_of(&admin, t(0)).unwrap().reason, DIMM);
    let in_service = WorkloadNode {
        reason: Some(DIMM.to_string()),
        ..workload("a", WorkloadState::Idle, true)
    };
    assert_eq!(foreign_mark_of(&in_service, t(0)), None);
}

/// Found by an audit: an administrator drains a node while crus boots it,
/// and the boot fails. crus fails the node but keeps the administrator's
/// mark (state and reason), and never resumes it.
#[test]
fn a_node_drained_while_crus_boots_it_keeps_its_owners_mark_when_the_boot_fails() {
    let mut site = Site::new(&["a", "b"]);
    site.boots_fail = true;
    let mut rollout = session(RolloutPolicy::default(), 2);
    let now = drive(&mut rollout, &mut site, t(0), |rollout| {
        rollout.state().count(NodePhase::Booting) == 2
    });
    site.admin("a", WorkloadState::Drained, DIMM);
    drive(&mut rollout, &mut site, now, |_| false);
    assert_eq!(record(&rollout, "a").phase, NodePhase::Failed);
    assert_eq!(
        site.mark("a"),
        Mark {
            state: WorkloadState::Drained,
            reason: Some(DIMM.to_string())
        },
        "{:?}",
        rollout.state().messages
    );
    assert!(!site.resumed.contains(&NodeId::from("a")));
    // The other gets crus's own failure mark.
    assert_eq!(site.mark("b").state, WorkloadState::Down);
    assert!(site.mark("b").reason.unwrap().starts_with("crus:"));
}

/// An administrator downs a node while crus boots it, and the boot works:
/// the node is upgraded and put back down with their reason, never resumed
/// nor failed over their mark.
#[test]
fn a_node_downed_while_crus_boots_it_is_put_back_as_its_owner_left_it() {
    let mut site = Site::new(&["a", "b"]);
    let policy = RolloutPolicy {
        boot_timeout: Duration::from_secs(600),
        ..RolloutPolicy::default()
    };
    let mut rollout = session(policy, 2);
    let now = drive(&mut rollout, &mut site, t(0), |rollout| {
        rollout.state().count(NodePhase::Booting) == 2
    });
    site.admin("a", WorkloadState::Down, "PSU fault");
    drive(&mut rollout, &mut site, now, |_| false);
    assert_eq!(
        site.mark("a"),
        Mark {
            state: WorkloadState::Down,
            reason: Some("PSU fault".to_string())
        },
        "{:?}",
        rollout.state().messages
    );
    assert!(!site.resumed.contains(&NodeId::from("a")));
    assert_eq!(
        record(&rollout, "a")
            .foreign
            .as_ref()
            .map(|mark| mark.state),
        Some(WorkloadState::Down)
    );
    assert_eq!(site.mark("b").state, WorkloadState::Idle);
}

#[test]
fn reasons_a_reboot_left_are_not_an_owners_mark() {
    for reason in [
        "crus k1 image=img-a : reboot issued : reboot timed out",
        "Not responding",
        "Node unexpectedly rebooted",
        "crus:00000000-0000-0000-0000-000000000000: boot failed",
    ] {
        let report = WorkloadNode {
            reason: Some(reason.to_string()),
            ..workload("a", WorkloadState::Down, false)
        };
        assert!(!marked_by_someone_else(&report), "{reason}");
    }
    let admin = WorkloadNode {
        reason: Some(DIMM.to_string()),
        ..workload("a", WorkloadState::Drained, true)
    };
    assert!(marked_by_someone_else(&admin));
}

/// The nodes are read once right after the snapshot: a node someone else
/// holds is known (and reported) before its step takes it.
#[test]
fn a_later_steps_foreign_node_is_known_right_after_the_snapshot() {
    let mut site = Site::new(&["a", "b", "c", "d"]);
    site.admin("d", WorkloadState::Drained, DIMM);
    let mut rollout = session(RolloutPolicy::default(), 2);
    drive(&mut rollout, &mut site, t(0), |rollout| {
        !rollout.state().steps.is_empty()
    });
    let d = record(&rollout, "d");
    assert_eq!(d.phase, NodePhase::Pending);
    assert_eq!(
        d.foreign.as_ref().map(|mark| mark.reason.as_str()),
        Some(DIMM),
        "{:?}",
        rollout.state().messages
    );
    assert!(
        rollout
            .state()
            .messages
            .iter()
            .any(|message| message.contains("Node d: out of service by someone else")),
        "{:?}",
        rollout.state().messages
    );
}

/// Under `skip`, a node someone else holds is left out before the first
/// step: it takes no place in a step and is never asked to drain.
#[test]
fn under_skip_a_foreign_node_takes_no_place_in_a_step() {
    let mut site = Site::new(&["a", "b", "c"]);
    site.admin("a", WorkloadState::Drained, DIMM);
    let policy = RolloutPolicy {
        foreign_out_of_service: ForeignOutOfService::Skip,
        ..RolloutPolicy::default()
    };
    let mut rollout = session(policy, 2);
    drive(&mut rollout, &mut site, t(0), |rollout| {
        !rollout.state().steps.is_empty()
    });
    let first: Vec<&str> = rollout.state().steps[0]
        .nodes
        .iter()
        .map(|&node| rollout.state().nodes[node].id.as_str())
        .collect();
    assert_eq!(first, ["b", "c"], "{:?}", rollout.state().messages);
    assert_eq!(record(&rollout, "a").phase, NodePhase::Skipped);
    drive(&mut rollout, &mut site, t(0), |_| false);
    assert_eq!(rollout.state().steps.len(), 1);
    assert!(!site.drained.contains(&NodeId::from("a")));
    assert_eq!(site.mark("a").reason.as_deref(), Some(DIMM));
}

/// Found by the property test: an administrator returns a node crus took
/// (as theirs) but has not booted, and the session is deleted before crus
/// reads the node again. crus changed nothing on it, so it is left in
/// service, not put back out over its owner's return.
#[test]
fn a_delete_leaves_in_service_a_foreign_node_its_owner_returned_before_its_boot() {
    let mut site = Site::new(&["a", "b"]);
    site.admin("b", WorkloadState::Draining, DIMM);
    let mut rollout = session(RolloutPolicy::default(), 2);
    let now = drive(&mut rollout, &mut site, t(0), |rollout| {
        foreign_seen(rollout, "b") && record(rollout, "b").phase == NodePhase::Draining
    });
    site.returns("b");
    rollout.cancel(now);
    drive(&mut rollout, &mut site, now, |_| false);
    assert!(rollout.is_finished());
    assert_eq!(record(&rollout, "b").phase, NodePhase::Skipped);
    assert_eq!(site.mark("b").state, WorkloadState::Idle);
    assert!(site.restored.is_empty(), "{:?}", site.restored);
    assert!(!site.resumed.contains(&NodeId::from("b")));
}
