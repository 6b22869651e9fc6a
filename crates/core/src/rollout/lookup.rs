//! Lookups over the session's nodes, steps and boots.

use super::*;

impl Rollout {
    /// The nodes of `step` in `phases`, grouped by their latest boot: entry
    /// `b` holds those whose latest boot is boot `b` of the step. One pass
    /// over the step, however many boots it has (a `continuous` step gets a
    /// boot each time some of its nodes drain).
    pub(super) fn nodes_by_boot(&self, step: &Step, phases: &[NodePhase]) -> Vec<Vec<usize>> {
        if self.census.unsettled_count(step.number, phases) == 0 {
            return Vec::new();
        }
        let mut by_boot = vec![Vec::new(); step.boots.len()];
        for node in self.unsettled_in(step.number, phases) {
            if self.state.nodes[node].step != Some(step.number) {
                continue;
            }
            let latest = self.census.latest_boot(node);
            if let Some(nodes) = latest.and_then(|boot| by_boot.get_mut(boot as usize)) {
                nodes.push(node);
            }
        }
        by_boot
    }

    /// The steps not finished, oldest first (the engine walks the census's
    /// indexes instead; the property test's oracle walks the steps).
    #[cfg(test)]
    pub(super) fn active_steps(&self) -> impl Iterator<Item = &Step> + '_ {
        self.census
            .active_steps()
            .into_iter()
            .filter_map(|number| self.step(number))
    }

    pub(super) fn boot_poll_due(&self, step: u32, boot: u32) -> Timestamp {
        self.timers
            .get(Timer::BootPoll { step, boot })
            .unwrap_or(Timestamp::EPOCH)
    }

    /// When the workload manager is next asked about the watched nodes.
    pub(super) fn workload_poll_due(&self) -> Timestamp {
        self.timers
            .get(Timer::WorkloadPoll)
            .unwrap_or(Timestamp::EPOCH)
    }

    pub(super) fn boot_of(&self, step: u32, boot: u32) -> Option<&StepBoot> {
        self.step(step)?.boots.get(usize::try_from(boot).ok()?)
    }

    pub(super) fn boot_mut(&mut self, step: u32, boot: u32) -> Option<&mut StepBoot> {
        self.step_mut(step)?
            .boots
            .get_mut(usize::try_from(boot).ok()?)
    }

    pub(super) fn step(&self, number: u32) -> Option<&Step> {
        self.state.steps.get(usize::try_from(number).ok()?)
    }

    pub(super) fn step_mut(&mut self, number: u32) -> Option<&mut Step> {
        self.state.steps.get_mut(usize::try_from(number).ok()?)
    }

    /// How long the pending nodes' drain costs are used before they are
    /// observed again: a poll interval, or longer on a large machine, so that
    /// asking about every pending node costs at most about one node per
    /// [`PENDING_COST_SPACING`] (100,000 pending nodes: every 8 minutes, not
    /// every 10 seconds).
    pub(super) fn pending_costs_max_age(&self) -> std::time::Duration {
        let pending = u32::try_from(self.census.count(NodePhase::Pending)).unwrap_or(u32::MAX);
        self.state
            .policy
            .poll_interval
            .max(PENDING_COST_SPACING.saturating_mul(pending))
    }

    /// The reason this session's drains give the workload manager.
    pub(super) fn drain_reason(&self) -> String {
        format!("{}{}", foreign::CRUS_REASON_PREFIX, self.state.upgrade_id)
    }

    pub(super) fn step_size(&self) -> usize {
        usize::try_from(self.state.spec.upgrade_step_size.max(1)).unwrap_or(usize::MAX)
    }

    pub(super) fn indexes_of(&self, ids: &[NodeId]) -> Vec<usize> {
        ids.iter()
            .filter_map(|id| self.index.get(id).copied())
            .collect()
    }

    /// The nodes of active step `step` in `phases`, which must be phases of
    /// nodes out of service, in inventory order.
    pub(super) fn unsettled_in(&self, step: u32, phases: &[NodePhase]) -> Vec<usize> {
        self.census.unsettled_in(step, phases)
    }

    pub(super) fn ids_of(&self, indexes: &[usize]) -> Vec<NodeId> {
        indexes
            .iter()
            .map(|&node| self.state.nodes[node].id.clone())
            .collect()
    }
}
