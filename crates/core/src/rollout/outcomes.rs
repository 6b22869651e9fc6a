//! The answers to the actions the rollout asked for, and what a refused
//! action means for the nodes and the session.

use super::*;

impl Rollout {
    /// A refused action of a side task (weights, features, reservations)
    /// that a retry may fix: `timer` lets it be tried again after the
    /// policy's retry interval, and the session says so once.
    pub(super) fn retry_after_refusal(
        &mut self,
        now: Timestamp,
        timer: Timer,
        action: &Action,
        error: &ActionError,
    ) {
        let every = self.state.policy.error_retry_interval;
        self.timers.set(timer, now + every);
        self.say_once(
            now,
            Said::RetryingAsDescribed {
                action: action.describe(),
                error: error.message.clone(),
                every,
            },
        );
    }

    /// The answer to action `id`. Retryable errors never get here: the
    /// controller retries them itself.
    pub fn handle_outcome(
        &mut self,
        now: Timestamp,
        id: ActionId,
        outcome: Result<ActionOutput, ActionError>,
    ) {
        self.apply_outcome(now, id, outcome);
        self.advance(now);
    }

    /// Answers that arrived together, applied in order, then one pass over
    /// the session: the same as [`Rollout::handle_outcome`] for each, but
    /// without a pass over every active step after each answer, which is
    /// what a poll answering hundreds of boots at once would cost.
    pub fn handle_outcomes(
        &mut self,
        now: Timestamp,
        outcomes: impl IntoIterator<Item = (ActionId, Result<ActionOutput, ActionError>)>,
    ) {
        for (id, outcome) in outcomes {
            self.apply_outcome(now, id, outcome);
        }
        self.advance(now);
    }

    fn apply_outcome(
        &mut self,
        now: Timestamp,
        id: ActionId,
        outcome: Result<ActionOutput, ActionError>,
    ) {
        let asked_at = self.asked_at.remove(&id);
        let Some(action) = self.in_flight.remove(&id) else {
            return;
        };
        match (action, outcome) {
            (Action::ReadStartingGroup { .. }, Ok(ActionOutput::Members(members))) => {
                self.take_snapshot(now, members);
            }
            (Action::ReadCurrentImages { .. }, Ok(ActionOutput::Images(images))) => {
                self.images_read(now, &images);
            }
            (Action::ReadCurrentImages { .. }, Err(error))
                if error.kind == ActionErrorKind::NotSupported =>
            {
                self.images_unknown(now, &error);
            }
            (
                Action::PrepareGroups {
                    upgrading_label,
                    failed_label,
                },
                Ok(ActionOutput::GroupsPrepared {
                    cleared_failed,
                    cleared_upgrading,
                }),
            ) => {
                if !cleared_failed.is_empty() {
                    self.say(
                        now,
                        Said::ClearedFailedGroup {
                            label: failed_label,
                            count: cleared_failed.len(),
                        },
                    );
                }
                if !cleared_upgrading.is_empty() {
                    self.say(
                        now,
                        Said::ClearedUpgradingGroup {
                            label: upgrading_label,
                            count: cleared_upgrading.len(),
                        },
                    );
                }
                if self.lifecycle() == Lifecycle::PreparingGroups {
                    self.transition(now, SessionInput::GroupsPrepared);
                }
            }
            (Action::Drain { nodes, .. }, Ok(_)) => {
                for node in self.indexes_of(&nodes) {
                    self.drain_owed.remove(&node);
                    self.drains_unconfirmed.remove(&node);
                }
            }
            (Action::ObserveWorkload { .. }, Ok(ActionOutput::Workload(observed))) => {
                self.timers
                    .set(Timer::WorkloadPoll, now + self.state.policy.poll_interval);
                self.workload_seen_at = self.workload_seen_at.max(asked_at);
                self.observe_workload(now, &observed);
            }
            (
                Action::StartBoot {
                    step,
                    boot,
                    request,
                },
                Ok(ActionOutput::BootStarted(handle)),
            ) => {
                if let Some(record) = self.boot_mut(step, boot) {
                    record.handle = Some(handle.clone());
                    // Acknowledged again after a restart, it is the boot
                    // that started the first time.
                    record.started_at.get_or_insert(now);
                    self.dirty = true;
                    // Its nodes are due back counting from its first
                    // acknowledgement.
                    for node in self.indexes_of(&request.nodes) {
                        self.arm_come_back(node);
                    }
                    self.timers.set(
                        Timer::BootPoll { step, boot },
                        now + self.state.policy.poll_interval,
                    );
                    self.say(
                        now,
                        Said::BootStarted {
                            step,
                            count: request.nodes.len(),
                            template: request.template,
                            boot: handle.id,
                        },
                    );
                }
            }
            (Action::ObserveBoot { step, boot, .. }, Ok(ActionOutput::BootStatus(statuses))) => {
                self.timers.set(
                    Timer::BootPoll { step, boot },
                    now + self.state.policy.poll_interval,
                );
                if let Some(at) = asked_at {
                    let seen = self.boot_seen_at.entry((step, boot)).or_insert(at);
                    *seen = (*seen).max(at);
                }
                self.observe_boot(now, step, boot, &statuses);
            }
            (Action::Resume { nodes, .. }, Ok(output)) => {
                for node in self.indexes_of(&nodes) {
                    match self.state.nodes[node].phase {
                        NodePhase::Resuming | NodePhase::Releasing => self.returned(node, now),
                        NodePhase::Pending => self.ahead_returned(node),
                        _ => {}
                    }
                }
                // The nodes the controller found held by someone else and
                // left alone, as it read them: theirs now, and out of
                // service all the same, so they count against the floor.
                if let ActionOutput::Workload(left_alone) = output {
                    self.note_left_alone(now, &left_alone);
                }
            }
            (Action::Restore { nodes, .. }, Ok(_)) => {
                let ids: Vec<NodeId> = nodes.into_iter().map(|(node, _, _)| node).collect();
                for node in self.indexes_of(&ids) {
                    if matches!(
                        self.state.nodes[node].phase,
                        NodePhase::Resuming | NodePhase::Releasing
                    ) {
                        self.returned(node, now);
                        self.note_restored(node);
                    }
                }
            }
            (Action::MarkFailed { nodes, .. }, Ok(_)) => {
                let ids: Vec<NodeId> = nodes.into_iter().map(|(node, _)| node).collect();
                for node in self.indexes_of(&ids) {
                    if self.state.nodes[node].phase == NodePhase::Failing {
                        self.move_node(node, NodeInput::MarkedFailed, now);
                    }
                }
            }
            (Action::CheckGates { .. }, Ok(ActionOutput::Gates(verdicts))) => {
                self.observe_gates(now, asked_at, &verdicts);
            }
            (
                Action::RunHook {
                    hook,
                    node,
                    request,
                },
                Ok(ActionOutput::HookRan(failure)),
            ) => {
                if let Some(key) = self.hook_key_of(hook, node.as_ref(), request.step) {
                    self.hook_answered(now, key, failure);
                }
            }
            (Action::PowerRestart { .. }, Ok(_)) => {}
            (Action::ReadWeights { .. }, Ok(ActionOutput::Weights(weights))) => {
                self.weights_read(now, &weights);
            }
            (Action::SetWeights { weights }, Ok(_)) => self.weights_applied(&weights),
            (Action::ReadFeatures { .. }, Ok(ActionOutput::Features(features))) => {
                self.features_read(now, &features);
            }
            (Action::SetFeatures { features }, Ok(_)) => self.features_applied(&features),
            (Action::Reserve { reservations }, Ok(_)) => self.reservations_applied(&reservations),
            (Action::Unreserve { nodes }, Ok(_)) => self.reservations_removed(&nodes),
            (Action::ReadReservations { nodes }, Ok(ActionOutput::Reserved(reserved))) => {
                self.reservations_read(now, &nodes, &reserved);
            }
            (Action::ClearUpgradingGroup { .. }, Ok(_)) => self.finish(now),
            (action, Ok(output)) => {
                tracing::warn!(
                    ?action,
                    ?output,
                    "answer does not match its action; asking again"
                );
            }
            (action, Err(error)) => self.action_refused(now, action, &error),
        }
    }

    /// Tells that an action hit a retryable error and will be tried again, so
    /// the session's messages say why it is not moving (once per distinct error).
    pub fn note_retry(&mut self, now: Timestamp, action: &Action, error: &str) {
        self.say_once(
            now,
            Said::RetryingNow {
                action: action.describe(),
                error: error.to_string(),
            },
        );
    }

    /// Tells that the session store refused to save the session, so nothing
    /// more is done until it takes a write again (once per distinct error).
    /// The message itself is saved with the first write that succeeds.
    pub fn note_store_refusal(&mut self, now: Timestamp, error: &str) {
        self.say_once(
            now,
            Said::StoreRefused {
                error: error.to_string(),
            },
        );
    }

    /// An action failed in a way retrying at once will not fix.
    fn action_refused(&mut self, now: Timestamp, action: Action, error: &ActionError) {
        let node_problem = matches!(
            error.kind,
            ActionErrorKind::NotFound | ActionErrorKind::Invalid
        );
        let retry_at = now + self.state.policy.error_retry_interval;
        let every = self.state.policy.error_retry_interval;
        if let Action::Drain { nodes, .. } = &action {
            // Not known to be applied: sent again only within the floor.
            for node in self.indexes_of(nodes) {
                if self.state.nodes[node].phase == NodePhase::Draining
                    || self.is_drained_ahead(node)
                {
                    self.drains_unconfirmed.insert(node);
                }
            }
        }
        match action {
            Action::RequeueJobs { nodes } => {
                // The node keeps draining; its jobs end when they end.
                for id in &nodes {
                    self.say_once(
                        now,
                        Said::CouldNotRequeue {
                            node: id.clone(),
                            error: error.message.clone(),
                        },
                    );
                }
            }
            Action::Drain { nodes, .. } if node_problem && nodes.len() > 1 => {
                let indexes = self.indexes_of(&nodes);
                self.drain_singly.extend(indexes);
            }
            Action::Drain { nodes, .. } if node_problem => {
                for node in self.indexes_of(&nodes) {
                    if self.state.nodes[node].phase == NodePhase::Draining {
                        self.fail_node(
                            node,
                            format!("could not be drained: {}", error.message),
                            now,
                        );
                    }
                }
            }
            Action::StartBoot { step, boot, .. } if node_problem => {
                let nodes: Vec<usize> = self
                    .boot_of(step, boot)
                    .map(|record| self.indexes_of(&record.nodes))
                    .unwrap_or_default();
                for node in nodes {
                    if self.state.nodes[node].phase == NodePhase::Booting {
                        let reason = format!("boot could not be started: {}", error.message);
                        // A rollback boot refused fails its node, saying why.
                        if self.state.nodes[node].is_booted_back() {
                            self.upgrade_failed(node, reason, now);
                        } else {
                            self.fail_node(node, reason, now);
                        }
                    }
                }
            }
            Action::PowerRestart { nodes, operation } => {
                // A restart that cannot be issued at all gives the node
                // nothing more to wait for; a refused graceful restart is
                // followed by a forced one at its deadline.
                let hopeless = error.kind == ActionErrorKind::NotSupported
                    || operation == PowerOperation::ForceRestart;
                for node in self.indexes_of(&nodes) {
                    let id = self.state.nodes[node].id.clone();
                    self.say(
                        now,
                        Said::PowerRestartFailed {
                            node: id,
                            error: error.message.clone(),
                        },
                    );
                    let awaited = matches!(
                        self.state.nodes[node].phase,
                        NodePhase::Booting | NodePhase::Verifying
                    );
                    if hopeless && awaited {
                        self.state.nodes[node].escalation = None;
                        self.arm_come_back(node);
                        self.boot_failed(
                            node,
                            format!(
                                "did not come back after its boot, and could not be power-restarted: {}",
                                error.message
                            ),
                            now,
                        );
                    }
                }
            }
            Action::ReadWeights { .. } | Action::SetWeights { .. } => {
                self.weights_refused(now, &action, error);
            }
            Action::ReadFeatures { .. } | Action::SetFeatures { .. } => {
                self.features_refused(now, &action, error);
            }
            Action::Reserve { .. } | Action::Unreserve { .. } | Action::ReadReservations { .. } => {
                self.reservations_refused(now, &action, error);
            }
            Action::CheckGates { gates } => {
                // Gates fail closed: one that could not be asked blocks.
                let verdicts: Vec<GateVerdict> = gates
                    .iter()
                    .map(|gate| GateVerdict {
                        gate: gate.describe(),
                        blocking: Vec::new(),
                        unreachable: Some(error.message.clone()),
                    })
                    .collect();
                self.observe_gates(now, None, &verdicts);
            }
            Action::RunHook {
                hook,
                node,
                request,
            } => {
                // A hook that could not be run at all failed: it is not
                // run again unasked.
                if let Some(key) = self.hook_key_of(hook, node.as_ref(), request.step) {
                    self.hook_answered(now, key, Some(error.message.clone()));
                }
            }
            Action::ObserveWorkload { .. } => {
                self.timers.set(Timer::WorkloadPoll, retry_at);
                self.say_once(
                    now,
                    Said::WorkloadUnreadable {
                        error: error.message.clone(),
                        every,
                    },
                );
            }
            Action::ObserveBoot { step, boot, .. } => {
                self.timers.set(Timer::BootPoll { step, boot }, retry_at);
                self.say_once(
                    now,
                    Said::BootProgressUnreadable {
                        step,
                        error: error.message.clone(),
                        every,
                    },
                );
            }
            Action::Resume { .. }
            | Action::Restore { .. }
            | Action::Drain { .. }
            | Action::MarkFailed { .. } => {
                let ids: Vec<NodeId> = match &action {
                    Action::Restore { nodes, .. } => {
                        nodes.iter().map(|(node, _, _)| node.clone()).collect()
                    }
                    Action::MarkFailed { nodes, .. } => {
                        nodes.iter().map(|(node, _)| node.clone()).collect()
                    }
                    Action::Resume { nodes, .. } | Action::Drain { nodes, .. } => nodes.clone(),
                    _ => Vec::new(),
                };
                for node in self.indexes_of(&ids) {
                    self.timers.set(Timer::NodeRetry(node), retry_at);
                }
                self.say_retrying(now, &action, error);
            }
            other => {
                self.timers.set(Timer::SessionRetry, retry_at);
                self.say_retrying(now, &other, error);
            }
        }
    }
}

impl Rollout {
    /// Says once that `action` failed with `error` and is tried again every
    /// `error_retry_interval` (the caller sets the retry's timer).
    fn say_retrying(&mut self, now: Timestamp, action: &Action, error: &ActionError) {
        self.say_once(
            now,
            Said::Retrying {
                action: action.describe(),
                error: error.message.clone(),
                every: self.state.policy.error_retry_interval,
            },
        );
    }
}
