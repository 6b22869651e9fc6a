//! The actions owed to the nodes and the session, queued for the controller.

use std::collections::BTreeSet;

use super::*;

impl Rollout {
    /// Queues what the running nodes are owed: drains, one observation of
    /// the workload manager, boots and their observation, resumes, failures.
    pub(super) fn queue_running_actions(&mut self, now: Timestamp) {
        let upgrading_label = self.state.spec.upgrading_label.clone();
        let in_flight_nodes = self.nodes_in_flight();
        let due = |rollout: &Self, node: usize| {
            !in_flight_nodes.contains(&node) && rollout.timers.passed(Timer::NodeRetry(node), now)
        };
        let to_drain: Vec<usize> = self
            .drain_owed
            .iter()
            .copied()
            .filter(|&node| due(self, node))
            // A drain waits for the node's pre_drain hooks.
            .filter(|&node| self.hooks_done(node, HookPoint::PreDrain))
            .collect();
        // A first drain must still fit above the floor: someone else may
        // have taken nodes out since this one was taken (while its hooks
        // ran). So must one sent again after a refusal, which may not have
        // taken the node out. A drain known applied and asked again (its
        // owner returned the node meanwhile) takes out no node that was not
        // counted out already.
        let (asked, first): (Vec<usize>, Vec<usize>) = to_drain.into_iter().partition(|&node| {
            !self.drains_unconfirmed.contains(&node)
                && (self.state.nodes[node].drain_asked_at.is_some() || self.is_drained_ahead(node))
        });
        let first = self.drains_within_floor(now, first);
        for &node in &first {
            // Sent within the floor: out from now on, unless refused again.
            self.drains_unconfirmed.remove(&node);
            let record = &self.state.nodes[node];
            if record.phase == NodePhase::Draining && record.drain_asked_at.is_none() {
                // Stored before the drain goes out (persist before act); a
                // drain sent again keeps its first ask, which its timeout
                // counts from.
                self.state.nodes[node].drain_asked_at = Some(now);
                self.dirty = true;
                self.arm_drain_timers(node);
            }
        }
        let mut to_drain: Vec<usize> = asked.into_iter().chain(first).collect();
        to_drain.sort_unstable();
        let (singly, together): (Vec<usize>, Vec<usize>) = to_drain
            .into_iter()
            .partition(|node| self.drain_singly.contains(node));
        let batches = std::iter::once(together)
            .chain(singly.into_iter().map(|node| vec![node]))
            .filter(|batch| !batch.is_empty());
        for batch in batches.collect::<Vec<_>>() {
            self.queue(Action::Drain {
                upgrading_label: upgrading_label.clone(),
                nodes: self.ids_of(&batch),
                reason: self.drain_reason(),
            });
        }

        // Gathered only when a poll is due: most passes are not.
        let mut watched = Vec::new();
        let mut pending_asked = false;
        if self.workload_poll_due() <= now
            && !self.is_in_flight(|action| matches!(action, Action::ObserveWorkload { .. }))
        {
            watched = self.watched_nodes();
            if self.want_pending_costs {
                if self.state.policy.min_available.is_some() {
                    // Every node this session does not hold out of service:
                    // the floor counts those someone else took out too.
                    let held: std::collections::BTreeSet<usize> = watched.iter().copied().collect();
                    watched.extend((0..self.state.nodes.len()).filter(|node| {
                        !held.contains(node) && !self.state.nodes[*node].phase.is_out_of_service()
                    }));
                } else {
                    pending_asked = self.census.any_pending();
                    match self.pending_to_read() {
                        Some(nodes) => watched.extend(nodes),
                        None => watched.extend(self.census.pending()),
                    }
                }
            }
        }
        // A read is asked whenever there are nodes to watch or pending
        // nodes' costs to refresh, even when a caller that reports changes
        // leaves every one of them out: its answer re-arms the poll and
        // refreshes the drain costs all the same.
        let read_owed = !watched.is_empty() || pending_asked;
        if read_owed && self.read_changes.is_some() {
            watched.retain(|&node| self.worth_reading(node));
            self.pending_costs_asked = pending_asked;
        }
        if read_owed {
            let probe = self.health_check().map(|check| {
                let verifying: Vec<usize> = watched
                    .iter()
                    .copied()
                    .filter(|&node| self.state.nodes[node].phase == NodePhase::Verifying)
                    // The health gate comes after the post_boot hooks.
                    .filter(|&node| self.hooks_done(node, HookPoint::PostBoot))
                    .collect();
                (check, self.ids_of(&verifying))
            });
            let nodes = self.ids_of(&watched);
            self.queue_observation(now, Action::ObserveWorkload { nodes, probe });
        }

        for action in self.boot_actions_due(now) {
            if let Action::StartBoot {
                step,
                boot,
                request,
            } = &action
            {
                // A boot asked for again after a refusal reaches the boot
                // service now, not when it was first asked for: it counts
                // against the boot rate at this sending, and waits its turn.
                let sent_again = self
                    .boot_of(*step, *boot)
                    .is_some_and(|record| record.requested_at < now);
                if sent_again {
                    if !self.may_send_boot_again(now, request.nodes.len()) {
                        continue;
                    }
                    // Stored before it goes out, so a restart counts it in
                    // this minute (`recent_boots_of`).
                    if let Some(record) = self.boot_mut(*step, *boot) {
                        record.sent_at = Some(now);
                        self.dirty = true;
                    }
                }
                self.timers.clear(Timer::SessionRetry);
            }
            self.queue_observation(now, action);
        }

        let mut to_resume: Vec<usize> = self
            .census
            .nodes_in(&[NodePhase::Resuming, NodePhase::Releasing])
            .filter(|&node| due(self, node))
            .collect();
        to_resume.sort_unstable();
        // Nodes someone else had out of service go back as they were: never
        // resumed. Those released before their boot only where their owner
        // still holds them.
        let (unbooted, booted): (Vec<usize>, Vec<usize>) = to_resume
            .iter()
            .copied()
            .filter(|&node| self.state.nodes[node].foreign.is_some())
            .partition(|&node| self.state.nodes[node].phase == NodePhase::Releasing);
        for (nodes, only_where_held) in [(booted, false), (unbooted, true)] {
            let to_restore: Vec<(NodeId, WorkloadState, String)> = nodes
                .iter()
                .filter_map(|&node| self.restore_of(node))
                .collect();
            if !to_restore.is_empty() {
                self.queue(Action::Restore {
                    upgrading_label: upgrading_label.clone(),
                    nodes: to_restore,
                    only_where_held,
                });
            }
        }
        to_resume.retain(|&node| self.state.nodes[node].foreign.is_none());
        if !to_resume.is_empty() {
            self.queue(Action::Resume {
                upgrading_label: upgrading_label.clone(),
                nodes: self.ids_of(&to_resume),
            });
        }

        let to_fail: Vec<(NodeId, String)> = self
            .census
            .nodes_in(&[NodePhase::Failing])
            .filter(|&node| due(self, node))
            .map(|node| {
                let record = &self.state.nodes[node];
                // A node someone else had out of service keeps its owner's
                // reason, byte for byte; the record says why it failed.
                // crus's own mark starts with its drain reason, so a later
                // session knows crus wrote it (not an administrator) and may
                // upgrade the node and return it to service.
                let reason = match &record.foreign {
                    Some(mark) => mark.reason.clone(),
                    None => format!(
                        "{}: {}",
                        self.drain_reason(),
                        record.reason.as_deref().unwrap_or("failed")
                    ),
                };
                (record.id.clone(), reason)
            })
            .collect();
        if !to_fail.is_empty() {
            self.queue(Action::MarkFailed {
                upgrading_label,
                failed_label: self.state.spec.failed_label.clone(),
                nodes: to_fail,
            });
        }
    }

    /// The boots of active steps with nodes still booting that are owed an
    /// action: starting (unless a refusal's delay runs), or observing once
    /// their poll is due. Only the boots with nodes booting are looked at
    /// (the census keeps them), oldest step first, then by boot.
    fn boot_actions_due(&self, now: Timestamp) -> Vec<Action> {
        let may_start = self.timers.passed(Timer::SessionRetry, now);
        let mut actions = Vec::new();
        for (step, number) in self.census.boots_booting() {
            if self.boot_in_flight(step, number) {
                continue;
            }
            let Some(boot) = self.boot_of(step, number) else {
                continue;
            };
            match &boot.handle {
                None if may_start => actions.push(Action::StartBoot {
                    step,
                    boot: number,
                    request: BootRequest {
                        key: boot.key.clone(),
                        template: self.template_of(boot),
                        nodes: boot.nodes.clone(),
                    },
                }),
                Some(handle) if self.boot_poll_due(step, number) <= now => {
                    actions.push(Action::ObserveBoot {
                        step,
                        boot: number,
                        handle: handle.clone(),
                    });
                }
                _ => {}
            }
        }
        actions
    }

    /// Nodes of active steps whose workload state is being waited for, step
    /// by step, each step's in inventory order (the census keeps them: a
    /// `continuous` session under `spread` may have a thousand steps of one
    /// node each).
    fn watched_nodes(&self) -> Vec<usize> {
        self.census.watched().collect()
    }

    pub(super) fn queue(&mut self, action: Action) -> ActionId {
        let id = ActionId(self.next_action_id);
        self.next_action_id += 1;
        self.outbox.push_back((id, action));
        id
    }

    /// Queues an observation, noting when it was asked for.
    fn queue_observation(&mut self, now: Timestamp, action: Action) {
        let id = self.queue(action);
        self.asked_at.insert(id, now);
    }

    /// No session-level action queued or in flight, and any refusal has waited out its delay.
    pub(super) fn idle_at_session_level(&self, now: Timestamp) -> bool {
        self.outbox.is_empty()
            && self.in_flight.is_empty()
            && self.timers.passed(Timer::SessionRetry, now)
    }

    pub(super) fn is_in_flight(&self, predicate: impl Fn(&Action) -> bool) -> bool {
        self.in_flight
            .values()
            .chain(self.outbox.iter().map(|(_, action)| action))
            .any(predicate)
    }

    /// Nodes named by a queued or in-flight drain, resume or mark-failed.
    pub(super) fn nodes_in_flight(&self) -> BTreeSet<usize> {
        let mut nodes = BTreeSet::new();
        for action in self
            .in_flight
            .values()
            .chain(self.outbox.iter().map(|(_, action)| action))
        {
            let named: Vec<&NodeId> = match action {
                Action::Drain { nodes, .. } | Action::Resume { nodes, .. } => {
                    nodes.iter().collect()
                }
                Action::Restore { nodes, .. } => nodes.iter().map(|(node, _, _)| node).collect(),
                Action::MarkFailed { nodes, .. } => nodes.iter().map(|(node, _)| node).collect(),
                _ => continue,
            };
            nodes.extend(
                named
                    .into_iter()
                    .filter_map(|id| self.index.get(id).copied()),
            );
        }
        nodes
    }

    pub(super) fn boot_in_flight(&self, step: u32, boot: u32) -> bool {
        self.is_in_flight(|action| {
            matches!(action,
                Action::StartBoot { step: s, boot: b, .. } | Action::ObserveBoot { step: s, boot: b, .. }
                if *s == step && *b == boot)
        })
    }
}
