//! Steps: taking pending nodes out of service, booting the drained ones,
//! and closing a step when all its nodes are through.

use super::*;

impl Rollout {
    /// How many more nodes may be taken now.
    pub(super) fn capacity(&self) -> usize {
        let step_size = self.step_size();
        let mut capacity = match self.state.policy.strategy {
            Strategy::Steps => {
                if self.census.any_active_step() {
                    0
                } else {
                    step_size
                }
            }
            Strategy::Continuous => step_size.saturating_sub(self.census.out_of_service()),
        };
        if let Some(canary) = self.state.policy.canary {
            match self.state.steps.first() {
                // The canary is the first step, alone.
                None => capacity = capacity.min(usize::try_from(canary.size).unwrap_or(usize::MAX)),
                Some(first) if !first.finished => capacity = 0,
                Some(_) => {}
            }
        }
        capacity
    }

    /// Takes the next pending nodes, as many as may be out of service, in the
    /// policy's order. Returns whether it took any.
    pub(super) fn start_next_step(&mut self, now: Timestamp) -> bool {
        self.timers.clear(Timer::WindowOpens);
        if self.stopped_taking() {
            return false;
        }
        let capacity = self.capacity();
        if capacity == 0 {
            return false;
        }
        if !self.census.any_pending() {
            return false;
        }
        // The nodes someone else holds are known before the first step, so
        // that under `skip` none of them takes a place in it.
        if self.first_read_owed {
            self.want_pending_costs = true;
            return false;
        }
        // The floor counts nodes out of service for any reason: it needs
        // the nodes seen recently, as the drain-cost orders do.
        let Some(capacity) = self.capacity_above_floor(now, capacity) else {
            return false;
        };
        // Under `spread`, a node can only come from a domain with nothing out
        // of service: when there is none, nothing can be taken whatever the
        // drain costs, so they are not asked for either.
        let spread = self.state.policy.spread.is_some();
        if spread && self.census.free_domains() == 0 {
            return false;
        }
        if !window::any_open(&self.state.policy.windows, now) {
            let opens_at = window::next_opening(&self.state.policy.windows, now);
            if let Some(at) = opens_at {
                self.timers.set(Timer::WindowOpens, at);
            }
            self.say_once(now, Said::OutsideWindows { opens_at });
            return false;
        }
        if !self.gates_let_take(now) {
            return false;
        }
        if !self.reservations_let_take(now) {
            return false;
        }
        let by_cost = match self.state.policy.order {
            Order::Inventory => false,
            Order::DrainCost | Order::Topology => {
                let fresh = self
                    .pending_costs_at
                    .is_some_and(|at| now < at + self.pending_costs_max_age());
                if !fresh {
                    self.want_pending_costs = true;
                    return false;
                }
                true
            }
        };
        let census = &self.census;
        // Unobserved nodes rank last, so without costs the ranking is the
        // inventory order.
        let ranked = || -> Box<dyn Iterator<Item = usize> + '_> {
            if by_cost {
                Box::new(census.ranked())
            } else {
                Box::new(census.pending())
            }
        };
        let domain = |node: usize| census.domain_of(node);
        let taken = match (self.state.policy.spread, self.state.policy.align) {
            // The first node of each free domain in the ranking is that
            // domain's best: walking only those skips the nodes of busy
            // domains, which on a full machine are most of the ranking.
            (Some(_), _) => selection::spread(
                census.free_domains_best(),
                capacity,
                |&domain| census.domain_busy(domain),
                domain,
            ),
            (None, Some(_)) => {
                selection::align(ranked(), capacity, self.step_size(), domain, |&domain| {
                    census.pending_in_domain(domain)
                })
            }
            (None, None) => ranked().take(capacity).collect(),
        };
        if taken.is_empty() {
            return false;
        }
        let number = u32::try_from(self.state.steps.len()).unwrap_or(u32::MAX);
        self.census.step_started(number);
        for &node in &taken {
            self.state.nodes[node].step = Some(number);
            self.state.nodes[node].taken_at = Some(now);
            self.move_node(node, NodeInput::Take, now);
        }
        let ids = self.ids_of(&taken);
        self.say(
            now,
            Said::StepStarted {
                step: number,
                canary: number == 0 && self.state.policy.canary.is_some(),
                nodes: ids.clone(),
                inventory_order: self.state.policy.order == Order::Inventory,
            },
        );
        self.emit(
            now,
            EventKind::StepStarted {
                step: number,
                nodes: ids,
            },
        );
        self.state.steps.push(Step {
            number,
            nodes: taken,
            started_at: now,
            boots: Vec::new(),
            finished: false,
            hooks: Vec::new(),
        });
        true
    }

    pub(super) fn release_unbooted(&mut self, now: Timestamp, step_number: u32) {
        let unbooted = self.unsettled_in(step_number, &[NodePhase::Draining, NodePhase::Drained]);
        for node in unbooted {
            // A drain waits for the node's pre_drain hooks and for room
            // above the floor, and its ask is stored before it is sent: a
            // node not asked yet was never taken out of service. There is
            // nothing to undo, and a resume could return to service a node
            // someone else holds. (A node someone else holds is never asked
            // to drain; once its hooks ran, it is restored as it was.)
            let record = &self.state.nodes[node];
            let never_drained = record.phase == NodePhase::Draining
                && (!self.hooks_done(node, HookPoint::PreDrain)
                    || (record.foreign.is_none() && record.drain_asked_at.is_none()));
            let reason = if self.state.nodes[node].revert_reason.is_some() {
                "session deleted before the node was booted back; it keeps its upgrade"
            } else if never_drained {
                "session deleted before the node was drained; it was left as it was"
            } else {
                "session deleted before the node was booted"
            };
            self.state.nodes[node].reason = Some(reason.to_string());
            self.move_node(node, NodeInput::Release, now);
            if never_drained {
                self.returned(node, now);
            }
        }
    }

    /// Boots a step's drained nodes: under CRUS's barrier once none of the
    /// step's nodes is still draining; in a sliding window as soon as they drain.
    pub(super) fn request_boots(&mut self, now: Timestamp, step_number: u32) {
        if self.step(step_number).is_none() {
            return;
        }
        if self.state.policy.strategy == Strategy::Steps
            && self
                .census
                .unsettled_count(step_number, &[NodePhase::Draining])
                > 0
        {
            return;
        }
        let mut drained = self.unsettled_in(step_number, &[NodePhase::Drained]);
        let ready = drained.len();
        drained.retain(|&node| self.hooks_done(node, HookPoint::PreBoot));
        // CRUS's barrier holds for the pre_boot hooks too: the step boots
        // together once every drained node's hooks finished.
        if self.state.policy.strategy == Strategy::Steps && drained.len() < ready {
            return;
        }
        if drained.is_empty() {
            return;
        }
        let allowed = self.boots_allowed_now(now);
        if allowed == 0 {
            return;
        }
        drained.truncate(allowed);
        self.boots_requested(now, drained.len());
        // Nodes booted back to the rollback template get a boot of their own.
        let (upgrading, rolling_back) = self.split_rollback_boots(drained);
        if !upgrading.is_empty() {
            self.push_boot(now, step_number, upgrading, None);
        }
        if !rolling_back.is_empty() {
            let template = self.rollback_boot_template();
            self.push_boot(now, step_number, rolling_back, template);
        }
    }

    /// Records a boot of `drained`, nodes of step `step_number`, with
    /// `template` (the session's when `None`); it is asked for once the
    /// state is persisted.
    fn push_boot(
        &mut self,
        now: Timestamp,
        step_number: u32,
        drained: Vec<usize>,
        template: Option<String>,
    ) {
        let number = self.step(step_number).map_or(0, |step| step.boots.len());
        let key = if number == 0 {
            format!("crus-{}-step-{step_number}", self.state.upgrade_id)
        } else {
            format!(
                "crus-{}-step-{step_number}-boot-{number}",
                self.state.upgrade_id
            )
        };
        self.census
            .boot_requested(&drained, u32::try_from(number).unwrap_or(u32::MAX));
        let boot_number = u32::try_from(number).unwrap_or(u32::MAX);
        for &node in &drained {
            self.state.nodes[node].boots.push(boot_number);
            self.state.nodes[node].attempts += 1;
            self.state.nodes[node].healthy_since = None;
            self.move_node(node, NodeInput::Boot, now);
        }
        let nodes = self.ids_of(&drained);
        let said = match &template {
            None => Said::StepBooting {
                step: step_number,
                count: drained.len(),
                template: self.state.spec.upgrade_template_id.clone(),
            },
            Some(template) => Said::StepBootingBack {
                step: step_number,
                count: drained.len(),
                template: template.clone(),
            },
        };
        self.say(now, said);
        if let Some(step) = self.step_mut(step_number) {
            step.boots.push(StepBoot {
                key,
                nodes,
                handle: None,
                requested_at: now,
                started_at: None,
                sent_at: None,
                template,
            });
        }
        for &node in &drained {
            self.arm_come_back(node);
        }
    }

    /// Marks the step finished when every node of it has. Returns whether it did.
    pub(super) fn finish_step_when_done(&mut self, now: Timestamp, step_number: u32) -> bool {
        let Some(step) = self.step(step_number) else {
            return false;
        };
        if step.finished || !self.census.settled(step_number) {
            return false;
        }
        let count = |phase: NodePhase| {
            step.nodes
                .iter()
                .filter(|&&node| self.state.nodes[node].phase == phase)
                .count()
        };
        let (upgraded, failed, skipped, reverted) = (
            count(NodePhase::Done),
            count(NodePhase::Failed),
            count(NodePhase::Skipped),
            count(NodePhase::Reverted),
        );
        let boots: Vec<(u32, u32)> = (0..step.boots.len())
            .map(|boot| (step_number, u32::try_from(boot).unwrap_or(u32::MAX)))
            .collect();
        if let Some(step) = self.step_mut(step_number) {
            step.finished = true;
        }
        self.census.step_finished(step_number);
        for (step, boot) in boots {
            self.timers.clear(Timer::BootPoll { step, boot });
        }
        self.say(
            now,
            Said::StepFinished {
                step: step_number,
                upgraded,
                reverted,
                failed,
                skipped,
            },
        );
        self.emit(
            now,
            EventKind::StepFinished {
                step: step_number,
                upgraded,
                failed,
                skipped,
                reverted,
            },
        );
        if step_number == 0
            && let Some(canary) = self.state.policy.canary
            && !self.deletion_requested()
        {
            let pending_left = self.census.any_pending();
            // A canary node booted back to the old image failed its upgrade too.
            let failed = failed + reverted;
            if failed > 0 && !self.is_halted() {
                self.halt(
                    now,
                    format!(
                        "{failed} of the canary's {} failed",
                        count_nodes(step_nodes_len(&self.state, 0))
                    ),
                );
            } else if canary.pause_after && pending_left && !self.is_paused() {
                self.transition(now, SessionInput::Pause);
                let reason = "canary step finished".to_string();
                self.say(
                    now,
                    Said::CanaryPaused {
                        reason: reason.clone(),
                    },
                );
                self.emit(now, EventKind::Paused { reason });
            } else if pending_left {
                self.say(now, Said::CanaryPassed);
            }
        }
        true
    }
}

fn step_nodes_len(state: &RolloutState, step: usize) -> usize {
    state.steps.get(step).map_or(0, |step| step.nodes.len())
}
