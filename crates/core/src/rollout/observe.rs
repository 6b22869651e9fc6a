//! What the rollout learns from the world: the starting group's snapshot,
//! the workload manager's view of the nodes and the boots' progress.

use super::*;

impl Rollout {
    /// Takes the snapshot from `members`, the starting group as admission
    /// read it, when the session has not taken one yet; otherwise the
    /// members are ignored (the session is past its snapshot).
    pub fn snapshot_from_admission(&mut self, members: Vec<NodeId>) {
        if self.lifecycle() == Lifecycle::Snapshot && self.state.nodes.is_empty() {
            self.admitted_members = Some(members);
        }
    }

    pub(super) fn take_snapshot(&mut self, now: Timestamp, members: Vec<NodeId>) {
        if self.lifecycle() != Lifecycle::Snapshot {
            return;
        }
        let ordered = plan::inventory_order(members);
        self.state.nodes = ordered
            .into_iter()
            .map(|id| NodeRecord::pending(id, now))
            .collect();
        self.index = self
            .state
            .nodes
            .iter()
            .enumerate()
            .map(|(position, node)| (node.id.clone(), position))
            .collect();
        self.census = Census::of(&self.state);
        self.dirty = true;
        if self.images_owed() {
            // Nodes already on the template are found first (skip_matching).
            return;
        }
        self.snapshot_taken(now);
    }

    /// The snapshot is complete (the nodes already on the template skipped,
    /// under `skip_matching`): says what will be done and moves on.
    pub(super) fn snapshot_taken(&mut self, now: Timestamp) {
        let label = self.state.spec.starting_label.clone();
        let to_upgrade = self.state.count(NodePhase::Pending);
        if self.state.nodes.is_empty() {
            self.say(now, Said::EmptyGroup { label });
            self.transition(now, SessionInput::SnapshotTaken { empty: true });
        } else if to_upgrade == 0 {
            self.say(now, Said::AllOnTarget { label });
            self.transition(now, SessionInput::SnapshotTaken { empty: true });
        } else {
            let total = self.state.nodes.len();
            let policy = &self.state.policy;
            let plan = Plan {
                label,
                to_upgrade,
                step_size: self.step_size(),
                strategy: policy.strategy,
                order: policy.order,
                spread: policy.spread,
                align: policy.align,
                allowed_failures: policy.failure_budget(total),
                floor: self.describe_floor(),
            };
            self.say(now, Said::Plan(plan));
            // One read of every pending node, batched as the later ones
            // are (`queue_running_actions`), before the first step. The
            // orders that rank the pending nodes and the floor read them
            // before each step anyway.
            self.want_pending_costs = true;
            self.first_read_owed = self.state.policy.order == Order::Inventory
                && self.state.policy.min_available.is_none();
            self.transition(now, SessionInput::SnapshotTaken { empty: false });
        }
    }

    pub(super) fn observe_workload(&mut self, now: Timestamp, observed: &[WorkloadNode]) {
        // A read that left out the pending nodes none of which changed
        // still refreshed their drain costs (`read_changes.rs`).
        let mut saw_pending = std::mem::take(&mut self.pending_costs_asked);
        if saw_pending {
            self.note_pending_costs_read();
        }
        if self.state.policy.min_available.is_some() {
            let in_service_read = observed
                .iter()
                .filter(|report| {
                    self.index
                        .get(&report.node)
                        .is_some_and(|&node| !self.state.nodes[node].phase.is_out_of_service())
                })
                .count();
            let in_service = self.state.nodes.len() - self.census.out_of_service();
            if in_service_read >= in_service {
                self.availability_read_at = Some(now);
            }
        }
        for report in observed {
            let Some(&node) = self.index.get(&report.node) else {
                continue;
            };
            self.note_read(node, report, now);
            self.observe_ahead(node, report);
            self.reservation_node_read(node, report);
            if self.observe_foreign(node, report, now) {
                self.note_availability(node, report);
                continue;
            }
            self.note_availability(node, report);
            match (self.state.nodes[node].phase, report.state) {
                (NodePhase::Pending, _) => {
                    saw_pending = true;
                    self.census.cost_observed(node, DrainCost::of(report));
                }
                // A reverting session with a floor watches the nodes in
                // service it may take back (see `revert_on_halt.rs`).
                (NodePhase::Done, _) if self.state.reverting.is_some() => saw_pending = true,
                (NodePhase::Draining | NodePhase::Verifying, WorkloadState::Unknown) => {
                    self.fail_node(
                        node,
                        "the workload manager does not know this node".to_string(),
                        now,
                    );
                }
                (NodePhase::Draining, state)
                    if state.is_quiet() && self.hooks_done(node, HookPoint::PreDrain) =>
                {
                    self.move_node(node, NodeInput::Quiet, now);
                }
                (NodePhase::Draining, WorkloadState::Idle | WorkloadState::Allocated) => {
                    // Someone returned it to service after we drained it: drain again.
                    self.drain_owed.insert(node);
                }
                (
                    NodePhase::Verifying,
                    WorkloadState::Drained | WorkloadState::Idle | WorkloadState::Allocated,
                ) if report.responding => self.healthy(node, now),
                // Up, and down only by a mark carrying this session's drain
                // reason: the failed mark an earlier session left (Slurm keeps
                // FAIL through a drain and a boot, and shows the latest
                // reason, the drain's). The resume that follows clears it.
                (NodePhase::Verifying, WorkloadState::Down)
                    if report.responding
                        && report.reason.as_deref() == Some(self.drain_reason().as_str()) =>
                {
                    self.healthy(node, now);
                }
                // Down as its owner had it: the reboot keeps an
                // administrator's down mark (with the owner's reason, or the
                // reboot's own: `slurm-reboot` keeps such a node down with
                // `nextstate=DOWN`), which crus puts back anyway.
                (NodePhase::Verifying, WorkloadState::Down)
                    if report.responding
                        && self.state.nodes[node]
                            .foreign
                            .as_ref()
                            .is_some_and(|mark| mark.state == WorkloadState::Down) =>
                {
                    self.healthy(node, now);
                }
                // A break in health restarts the soak; a failed health check
                // is kept as the node's reason, so a node that never passes
                // fails saying why.
                (NodePhase::Verifying, _) => {
                    let failed_check = report
                        .reason
                        .clone()
                        .filter(|reason| reason.starts_with(HEALTH_CHECK_FAILED));
                    let record = &mut self.state.nodes[node];
                    if record.healthy_since.is_some()
                        || (failed_check.is_some() && record.reason != failed_check)
                    {
                        record.healthy_since = None;
                        if failed_check.is_some() {
                            record.reason = failed_check;
                        }
                        self.dirty = true;
                        self.arm_come_back(node);
                    }
                }
                _ => {}
            }
        }
        if saw_pending {
            self.reservation_costs_read();
            self.pending_costs_at = Some(now);
            self.want_pending_costs = false;
            if self.first_read_owed {
                // The first step's nodes are watched as soon as they are
                // taken, as they were before this read.
                self.timers.clear(Timer::WorkloadPoll);
                self.first_read_owed = false;
            }
        }
    }

    /// The policy's health command and HTTP probe, if it has either.
    pub(super) fn health_check(&self) -> Option<HealthCheck> {
        self.state.policy.health.as_ref()?.check()
    }

    /// A verifying node was seen healthy: it is upgraded once it has stayed
    /// so for the policy's soak time.
    pub(super) fn healthy(&mut self, node: usize, now: Timestamp) {
        // The health gate (and its soak) judges the node once its
        // post_boot hooks finished.
        if !self.hooks_done(node, HookPoint::PostBoot) {
            return;
        }
        let soak = self
            .state
            .policy
            .health
            .as_ref()
            .map_or(std::time::Duration::ZERO, |health| health.soak);
        let record = &mut self.state.nodes[node];
        if record
            .reason
            .as_deref()
            .is_some_and(|reason| reason.starts_with(HEALTH_CHECK_FAILED))
        {
            record.reason = None;
        }
        let since = *record.healthy_since.get_or_insert(now);
        self.dirty = true;
        self.arm_come_back(node);
        if now.saturating_since(since) >= soak {
            self.move_node(node, NodeInput::Healthy, now);
        }
    }

    pub(super) fn observe_boot(
        &mut self,
        now: Timestamp,
        step: u32,
        boot: u32,
        statuses: &[NodeBootStatus],
    ) {
        // A node the answer does not list is still booting for all that
        // is known: nothing to do for it, as for one listed in progress (a
        // dry run's model lists only the nodes back since its last answer).
        for status in statuses {
            let Some(&node) = self.index.get(&status.node) else {
                continue;
            };
            // An answer about an earlier boot of a node being retried is stale.
            if self.state.nodes[node].phase != NodePhase::Booting
                || self.state.nodes[node].step != Some(step)
                || self.census.latest_boot(node) != Some(boot)
            {
                continue;
            }
            match &status.state {
                NodeBootState::InProgress => {}
                NodeBootState::Ok => self.move_node(node, NodeInput::Booted, now),
                NodeBootState::Failed { reason } => {
                    self.boot_failed(node, format!("boot failed: {reason}"), now);
                }
            }
        }
    }

    /// A node's boot failed or timed out: boot it again while retries are
    /// left; otherwise boot it back to the rollback template if the policy
    /// asks (once), or fail it.
    pub(super) fn boot_failed(&mut self, node: usize, reason: String, now: Timestamp) {
        let attempts = self.state.nodes[node].attempts;
        let allowed = self.state.policy.retries.saturating_add(1);
        // A boot back to the rollback template is not retried.
        let rolling_back = self.state.nodes[node].is_booted_back();
        if attempts < allowed && !rolling_back {
            let id = self.state.nodes[node].id.clone();
            self.say(
                now,
                Said::BootingAgain {
                    node: id,
                    reason,
                    attempts,
                    allowed,
                },
            );
            self.state.nodes[node].healthy_since = None;
            self.move_node(node, NodeInput::Retry, now);
        } else {
            self.upgrade_failed(node, reason, now);
        }
    }
}
