//! `Census`: what the rollout would otherwise learn by scanning every node
//! or every step — nodes per phase, the pending nodes in the order they are
//! taken, the active steps, each node's latest boot and the failure domains
//! in use, the boots with nodes booting — kept up to date at each change.
//!
//! The state machine runs after every answer; with 100,000 nodes a scan of
//! all nodes (or of the thousands of steps of a `continuous` session) per
//! answer made sessions and plans quadratic. With the census a pass costs
//! what is in flight, not the size of the machine. It is not persisted: it
//! is rebuilt from the state when a rollout resumes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::policy::Domain;
use super::selection::{self, DrainCost};
use super::state::{NodePhase, RolloutState};

/// Counts and indexes over one rollout's nodes and steps.
#[derive(Debug, Clone, Default)]
pub(super) struct Census {
    /// Nodes in each phase, by `NodePhase as usize`.
    by_phase: [usize; NodePhase::ALL.len()],
    /// The nodes in each phase out of service, by `NodePhase as usize`
    /// (empty for the others, which can hold the whole machine).
    out_of_service_in: [BTreeSet<usize>; NodePhase::ALL.len()],
    /// Pending nodes, in inventory order.
    pending: BTreeSet<usize>,
    /// Pending nodes, cheapest drain first; ties in inventory order (the
    /// order a stable sort of `pending` by cost gives).
    ranked: BTreeSet<(DrainCost, usize)>,
    /// Each node's last observed drain cost; `Unknown` until observed.
    costs: Vec<DrainCost>,
    /// The steps not finished, each with its nodes out of service (those
    /// not settled: every node of a step is out of service from the moment
    /// it is taken until it is done, failed or skipped).
    /// Indexed by step number, `None` once finished: looked up for every
    /// active step at every pass, so a vector rather than a map.
    unsettled: Vec<Option<Unsettled>>,
    /// Numbers of the steps not finished.
    active_steps: BTreeSet<u32>,
    /// The nodes of active steps whose workload is watched (draining or
    /// verifying), as (step, node): in the order a workload read names them.
    watched: BTreeSet<(u32, usize)>,
    /// Each node's latest boot within its step.
    latest_boot: Vec<Option<u32>>,
    /// How many nodes are booting, by step and latest boot (none listed
    /// without one): the boots whose start or poll a pass may wait for.
    booting: BTreeMap<(u32, u32), usize>,
    /// Failure domains, when the policy spreads or aligns on them.
    domains: Option<Domains>,
    /// Nodes whose upgrade failed and that are booted back (or were) to the
    /// rollback template, unless that failed too: they count against the
    /// failure budget as failed nodes do.
    rolled_back: BTreeSet<usize>,
    /// Nodes upgraded (`done`), in inventory order: a halted session with
    /// `revert_upgraded_on_halt` takes them back from here.
    done: BTreeSet<usize>,
}

/// The nodes of an active step still out of service.
#[derive(Debug, Clone, Default)]
struct Unsettled {
    /// The nodes by phase (`NodePhase as usize`), each in inventory order
    /// (empty for the phases in service): most passes ask a step for its
    /// nodes in one or two phases (the
    /// draining ones to watch, the booting ones of each boot), and a large
    /// step has most of its nodes in others (a `continuous` step of 1,000
    /// nodes spends hours mostly draining while a few boot).
    by_phase: [BTreeSet<usize>; NodePhase::ALL.len()],
}

impl Unsettled {
    fn insert(&mut self, node: usize, phase: NodePhase) {
        self.by_phase[phase as usize].insert(node);
    }

    fn remove(&mut self, node: usize, phase: NodePhase) {
        self.by_phase[phase as usize].remove(&node);
    }

    fn is_empty(&self) -> bool {
        self.by_phase.iter().all(BTreeSet::is_empty)
    }

    /// The nodes in `phases`, in inventory order.
    fn in_phases(&self, phases: &[NodePhase]) -> Vec<usize> {
        let mut nodes: Vec<usize> = phases
            .iter()
            .flat_map(|&phase| self.by_phase[phase as usize].iter().copied())
            .collect();
        if phases.len() > 1 {
            nodes.sort_unstable();
            nodes.dedup();
        }
        nodes
    }
}

/// The failure domains of a policy's `spread` or `align` level.
#[derive(Debug, Clone)]
struct Domains {
    /// Each node's domain, as an index into the vectors below.
    of: Vec<u32>,
    /// Nodes out of service in each domain.
    out_of_service: Vec<u32>,
    /// Pending nodes of each domain, ranked as [`Census::ranked`].
    pending: Vec<BTreeSet<(DrainCost, usize)>>,
    /// The best-ranked pending node of each free domain (one with a pending
    /// node and none out of service), in rank order: exactly the nodes
    /// `spread` would come to first in the whole ranking, found without
    /// walking past the nodes of busy domains.
    free_best: BTreeSet<(DrainCost, usize)>,
}

impl Domains {
    fn best_if_free(&self, domain: usize) -> Option<(DrainCost, usize)> {
        if self.out_of_service[domain] > 0 {
            return None;
        }
        self.pending[domain].first().copied()
    }

    /// Applies `change` to domain `domain`, keeping `free_best` right.
    fn update(&mut self, domain: usize, change: impl FnOnce(&mut Domains)) {
        if let Some(best) = self.best_if_free(domain) {
            self.free_best.remove(&best);
        }
        change(self);
        if let Some(best) = self.best_if_free(domain) {
            self.free_best.insert(best);
        }
    }
}

impl Census {
    /// The census of `state` as it stands.
    pub(super) fn of(state: &RolloutState) -> Census {
        let count = state.nodes.len();
        let mut census = Census {
            costs: vec![DrainCost::Unknown; count],
            latest_boot: vec![None; count],
            ..Census::default()
        };
        for (position, node) in state.nodes.iter().enumerate() {
            census.by_phase[node.phase as usize] += 1;
            if node.phase.is_out_of_service() {
                census.out_of_service_in[node.phase as usize].insert(position);
            }
            if node.phase == NodePhase::Pending {
                census.pending.insert(position);
                census.ranked.insert((DrainCost::Unknown, position));
            }
            if node.phase == NodePhase::Done {
                census.done.insert(position);
            }
            if node.rollback_reason.is_some()
                && !matches!(node.phase, NodePhase::Failing | NodePhase::Failed)
            {
                census.rolled_back.insert(position);
            }
        }
        for step in &state.steps {
            if !step.finished {
                let mut unsettled = Unsettled::default();
                for &node in &step.nodes {
                    let phase = state.nodes[node].phase;
                    if phase.is_out_of_service() {
                        unsettled.insert(node, phase);
                        if is_watched(phase) {
                            census.watched.insert((step.number, node));
                        }
                    }
                }
                census.start_step(step.number, unsettled);
            }
            // A node belongs to one step; its latest boot is the last that names it.
            let positions: HashMap<&str, usize> = step
                .nodes
                .iter()
                .map(|&node| (state.nodes[node].id.as_str(), node))
                .collect();
            for (number, boot) in step.boots.iter().enumerate() {
                let number = u32::try_from(number).unwrap_or(u32::MAX);
                for id in &boot.nodes {
                    if let Some(&node) = positions.get(id.as_str()) {
                        census.latest_boot[node] = Some(number);
                    }
                }
            }
        }
        let booting: Vec<usize> = census.nodes_in(&[NodePhase::Booting]).collect();
        for node in booting {
            census.count_booting(node, state.nodes[node].step, 1);
        }
        if let Some(level) = state.policy.spread.or(state.policy.align) {
            census.domains = Some(Self::domains_of(state, level));
        }
        census
    }

    /// Adds `change` to the count of nodes booting of `node`'s boot (its
    /// latest, in step `step`).
    fn count_booting(&mut self, node: usize, step: Option<u32>, change: isize) {
        let Some(key) = step.zip(self.latest_boot(node)) else {
            return;
        };
        let count = self.booting.entry(key).or_default();
        *count = count.saturating_add_signed(change);
        if *count == 0 {
            self.booting.remove(&key);
        }
    }

    fn domains_of(state: &RolloutState, level: Domain) -> Domains {
        let mut names: HashMap<String, u32> = HashMap::new();
        let of: Vec<u32> = state
            .nodes
            .iter()
            .map(|node| {
                let next = u32::try_from(names.len()).unwrap_or(u32::MAX);
                *names
                    .entry(selection::domain_of(&node.id, level))
                    .or_insert(next)
            })
            .collect();
        let mut domains = Domains {
            out_of_service: vec![0; names.len()],
            pending: vec![BTreeSet::new(); names.len()],
            of,
            free_best: BTreeSet::new(),
        };
        for (position, node) in state.nodes.iter().enumerate() {
            let domain = domains.of[position] as usize;
            if node.phase.is_out_of_service() {
                domains.out_of_service[domain] += 1;
            }
            if node.phase == NodePhase::Pending {
                domains.pending[domain].insert((DrainCost::Unknown, position));
            }
        }
        domains.free_best = (0..names.len())
            .filter_map(|domain| domains.best_if_free(domain))
            .collect();
        domains
    }

    /// Node `node`, of step `step`, moved from phase `from` to phase `to`.
    pub(super) fn phase_changed(
        &mut self,
        node: usize,
        step: Option<u32>,
        from: NodePhase,
        to: NodePhase,
    ) {
        self.by_phase[from as usize] -= 1;
        self.by_phase[to as usize] += 1;
        self.out_of_service_in[from as usize].remove(&node);
        if to.is_out_of_service() {
            self.out_of_service_in[to as usize].insert(node);
        }
        if let Some(step) = step.filter(|&step| self.is_active(step)) {
            if is_watched(from) {
                self.watched.remove(&(step, node));
            }
            if is_watched(to) {
                self.watched.insert((step, node));
            }
        }
        if let Some(unsettled) = step.and_then(|step| self.unsettled_mut(step)) {
            unsettled.remove(node, from);
            if to.is_out_of_service() {
                unsettled.insert(node, to);
            }
        }
        if from == NodePhase::Booting {
            self.count_booting(node, step, -1);
        }
        if to == NodePhase::Booting {
            self.count_booting(node, step, 1);
        }
        if from == NodePhase::Done {
            self.done.remove(&node);
        }
        if to == NodePhase::Done {
            self.done.insert(node);
        }
        let left_pending = from == NodePhase::Pending;
        let entry = (self.costs[node], node);
        if left_pending {
            self.pending.remove(&node);
            self.ranked.remove(&entry);
        }
        if let Some(domains) = &mut self.domains {
            let domain = domains.of[node] as usize;
            let service_changed = from.is_out_of_service() != to.is_out_of_service();
            domains.update(domain, |domains| {
                if left_pending {
                    domains.pending[domain].remove(&entry);
                }
                if service_changed {
                    if to.is_out_of_service() {
                        domains.out_of_service[domain] += 1;
                    } else {
                        domains.out_of_service[domain] -= 1;
                    }
                }
            });
        }
    }

    /// The workload manager reports pending node `node` at drain cost `cost`.
    pub(super) fn cost_observed(&mut self, node: usize, cost: DrainCost) {
        let old = (self.costs[node], node);
        if !self.pending.contains(&node) || old.0 == cost {
            return;
        }
        self.costs[node] = cost;
        self.ranked.remove(&old);
        self.ranked.insert((cost, node));
        if let Some(domains) = &mut self.domains {
            let domain = domains.of[node] as usize;
            domains.update(domain, |domains| {
                domains.pending[domain].remove(&old);
                domains.pending[domain].insert((cost, node));
            });
        }
    }

    fn start_step(&mut self, number: u32, unsettled: Unsettled) {
        let slot = number as usize;
        if self.unsettled.len() <= slot {
            self.unsettled.resize(slot + 1, None);
        }
        self.unsettled[slot] = Some(unsettled);
        self.active_steps.insert(number);
    }

    fn unsettled_of(&self, step: u32) -> Option<&Unsettled> {
        self.unsettled.get(step as usize)?.as_ref()
    }

    fn unsettled_mut(&mut self, step: u32) -> Option<&mut Unsettled> {
        self.unsettled.get_mut(step as usize)?.as_mut()
    }

    /// Step `number` started (before its nodes change phase).
    pub(super) fn step_started(&mut self, number: u32) {
        self.start_step(number, Unsettled::default());
    }

    /// Step `number` finished.
    pub(super) fn step_finished(&mut self, number: u32) {
        self.active_steps.remove(&number);
        if let Some(slot) = self.unsettled.get_mut(number as usize) {
            *slot = None;
        }
    }

    /// Boot `number` of their step was requested for `nodes`.
    pub(super) fn boot_requested(&mut self, nodes: &[usize], number: u32) {
        for &node in nodes {
            self.latest_boot[node] = Some(number);
        }
    }

    /// How many nodes are in `phase`.
    pub(super) fn count(&self, phase: NodePhase) -> usize {
        self.by_phase[phase as usize]
    }

    /// The nodes in `phases`, phases of nodes out of service, in inventory
    /// order within each phase.
    pub(super) fn nodes_in<'a>(
        &'a self,
        phases: &'a [NodePhase],
    ) -> impl Iterator<Item = usize> + 'a {
        phases
            .iter()
            .flat_map(|&phase| self.out_of_service_in[phase as usize].iter().copied())
    }

    /// How many nodes are out of service on behalf of the session.
    pub(super) fn out_of_service(&self) -> usize {
        NodePhase::ALL
            .iter()
            .filter(|phase| phase.is_out_of_service())
            .map(|&phase| self.count(phase))
            .sum()
    }

    /// How many nodes failed their upgrade: failed (or being marked
    /// failed), or booted back to the rollback template.
    pub(super) fn failures(&self) -> usize {
        self.count(NodePhase::Failing) + self.count(NodePhase::Failed) + self.rolled_back.len()
    }

    /// `node`'s upgrade failed and it is being booted back.
    pub(super) fn rollback_started(&mut self, node: usize) {
        self.rolled_back.insert(node);
    }

    /// `node`'s boot back failed too: it fails, and counts as failed.
    pub(super) fn rollback_failed(&mut self, node: usize) {
        self.rolled_back.remove(&node);
    }

    /// The upgraded (`done`) nodes, in inventory order.
    pub(super) fn done(&self) -> impl Iterator<Item = usize> + '_ {
        self.done.iter().copied()
    }

    /// Whether step `step` is being worked on (not finished).
    pub(super) fn step_active(&self, step: u32) -> bool {
        self.active_steps.contains(&step)
    }

    /// Whether any node is still pending.
    pub(super) fn any_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Pending nodes in inventory order.
    pub(super) fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        self.pending.iter().copied()
    }

    /// The last observed drain cost of `node` (`Unknown` until observed).
    pub(super) fn cost(&self, node: usize) -> DrainCost {
        self.costs.get(node).copied().unwrap_or(DrainCost::Unknown)
    }

    /// Pending nodes, cheapest drain first.
    pub(super) fn ranked(&self) -> impl Iterator<Item = usize> + '_ {
        self.ranked.iter().map(|&(_, node)| node)
    }

    /// The nodes of active steps whose workload is watched (draining or
    /// verifying), step by step, each step's in inventory order.
    pub(super) fn watched(&self) -> impl Iterator<Item = usize> + '_ {
        self.watched.iter().map(|&(_, node)| node)
    }

    /// Whether step `step` is started and not finished.
    pub(super) fn is_active(&self, step: u32) -> bool {
        self.unsettled_of(step).is_some()
    }

    /// Numbers of the steps not finished, oldest first.
    pub(super) fn active_steps(&self) -> Vec<u32> {
        self.active_steps.iter().copied().collect()
    }

    /// The nodes of step `step` still out of service, in inventory order
    /// (none when the step is finished or unknown). The engine asks for
    /// them by phase (`unsettled_in`); the tests ask for them all.
    #[cfg(test)]
    pub(super) fn unsettled(&self, step: u32) -> impl Iterator<Item = usize> + '_ {
        self.unsettled_in(step, &NodePhase::ALL).into_iter()
    }

    /// How many nodes of active step `step` are in one of `phases`.
    pub(super) fn unsettled_count(&self, step: u32, phases: &[NodePhase]) -> usize {
        self.unsettled_of(step).map_or(0, |unsettled| {
            phases
                .iter()
                .map(|&phase| unsettled.by_phase[phase as usize].len())
                .sum()
        })
    }

    /// The nodes of active step `step` in `phases` (phases of nodes out of
    /// service), in inventory order.
    pub(super) fn unsettled_in(&self, step: u32, phases: &[NodePhase]) -> Vec<usize> {
        self.unsettled_of(step)
            .map_or_else(Vec::new, |unsettled| unsettled.in_phases(phases))
    }

    /// Whether every node of active step `step` is done, failed or skipped.
    pub(super) fn settled(&self, step: u32) -> bool {
        self.unsettled_of(step).is_some_and(Unsettled::is_empty)
    }

    /// Whether any step is not finished.
    pub(super) fn any_active_step(&self) -> bool {
        !self.active_steps.is_empty()
    }

    /// The boots, as (step, boot), with nodes booting.
    pub(super) fn boots_booting(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.booting.keys().copied()
    }

    /// Whether boot `boot` of step `step` has nodes booting.
    pub(super) fn is_booting(&self, step: u32, boot: u32) -> bool {
        self.booting.contains_key(&(step, boot))
    }

    /// The latest boot of `node` within its step, if it was booted.
    pub(super) fn latest_boot(&self, node: usize) -> Option<u32> {
        self.latest_boot.get(node).copied().flatten()
    }

    /// The failure domain of `node` (an index), when the policy has domains.
    pub(super) fn domain_of(&self, node: usize) -> u32 {
        self.domains
            .as_ref()
            .map_or(u32::MAX, |domains| domains.of[node])
    }

    /// Whether domain `domain` has a node out of service.
    pub(super) fn domain_busy(&self, domain: u32) -> bool {
        self.domains.as_ref().is_some_and(|domains| {
            domains
                .out_of_service
                .get(domain as usize)
                .is_some_and(|&count| count > 0)
        })
    }

    /// How many domains have a pending node and none out of service.
    pub(super) fn free_domains(&self) -> usize {
        self.domains
            .as_ref()
            .map_or(0, |domains| domains.free_best.len())
    }

    /// The best-ranked pending node of each domain with a pending node and
    /// none out of service, in rank order.
    pub(super) fn free_domains_best(&self) -> impl Iterator<Item = usize> + '_ {
        self.domains
            .iter()
            .flat_map(|domains| domains.free_best.iter().map(|&(_, node)| node))
    }

    /// The pending nodes of domain `domain`, in inventory order.
    pub(super) fn pending_in_domain(&self, domain: u32) -> Vec<usize> {
        let mut members: Vec<usize> = self
            .domains
            .as_ref()
            .and_then(|domains| domains.pending.get(domain as usize))
            .map(|members| members.iter().map(|&(_, node)| node).collect())
            .unwrap_or_default();
        members.sort_unstable();
        members
    }
}

#[cfg(test)]
impl Census {
    /// How this census, kept up to date at each change, differs from one
    /// counted afresh from the state (`rebuilt`), in the indexes that follow
    /// from the state alone (not the drain costs, which are observations).
    pub(super) fn differs_from(&self, rebuilt: &Census) -> Option<String> {
        // Each active step's nodes out of service, by phase.
        let unsettled = |census: &Census| -> Vec<Vec<Vec<usize>>> {
            census
                .unsettled
                .iter()
                .flatten()
                .map(|unsettled| {
                    unsettled
                        .by_phase
                        .iter()
                        .map(|nodes| nodes.iter().copied().collect())
                        .collect()
                })
                .collect()
        };
        let checks: [(&str, bool); 11] = [
            ("by_phase", self.by_phase == rebuilt.by_phase),
            (
                "out_of_service_in",
                self.out_of_service_in == rebuilt.out_of_service_in,
            ),
            ("pending", self.pending == rebuilt.pending),
            ("unsettled", unsettled(self) == unsettled(rebuilt)),
            ("active_steps", self.active_steps == rebuilt.active_steps),
            ("watched", self.watched == rebuilt.watched),
            ("booting", self.booting == rebuilt.booting),
            ("latest_boot", self.latest_boot == rebuilt.latest_boot),
            ("done", self.done == rebuilt.done),
            ("rolled_back", self.rolled_back == rebuilt.rolled_back),
            (
                "domains' nodes out of service",
                self.domains.as_ref().map(|domains| &domains.out_of_service)
                    == rebuilt
                        .domains
                        .as_ref()
                        .map(|domains| &domains.out_of_service),
            ),
        ];
        let differing: Vec<&str> = checks
            .iter()
            .filter(|(_, same)| !same)
            .map(|(name, _)| *name)
            .collect();
        (!differing.is_empty()).then(|| format!("the census differs in {differing:?}"))
    }
}

/// Whether nodes in `phase` are watched in the workload manager: draining
/// ones until quiet, verifying ones until healthy.
fn is_watched(phase: NodePhase) -> bool {
    matches!(phase, NodePhase::Draining | NodePhase::Verifying)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeId;
    use crate::rollout::selection::tests::NODES;
    use crate::rollout::{NodeRecord, Rollout, RolloutPolicy};
    use crate::session::SessionSpec;
    use crate::time::Timestamp;

    /// A state with `NODES` all pending, under `policy`.
    fn pending_state(policy: RolloutPolicy) -> RolloutState {
        let spec = SessionSpec {
            starting_label: "compute".into(),
            upgrading_label: "upgrading".into(),
            failed_label: "failed".into(),
            upgrade_step_size: 2,
            upgrade_template_id: "image".into(),
            workload_manager_type: "slurm".into(),
            policy: None,
        };
        let now = Timestamp::from_secs(0);
        let mut state = Rollout::new(uuid::Uuid::nil(), spec, policy, now)
            .state()
            .clone();
        state.nodes = NODES
            .iter()
            .map(|&name| NodeRecord::pending(NodeId::from(name), now))
            .collect();
        state
    }

    #[test]
    fn cheapest_drains_rank_first_and_ties_keep_inventory_order() {
        let mut census = Census::of(&pending_state(RolloutPolicy::default()));
        let costs = [
            DrainCost::EndsAt(Timestamp::from_secs(50)),
            DrainCost::Free,
            DrainCost::Unknown,
            DrainCost::EndsAt(Timestamp::from_secs(10)),
            DrainCost::Free,
            DrainCost::Unbounded,
        ];
        for (node, cost) in costs.into_iter().enumerate() {
            census.cost_observed(node, cost);
        }
        assert_eq!(census.ranked().collect::<Vec<_>>(), [1, 4, 3, 0, 5, 2]);
        // A node taken leaves the ranking; a new cost moves a node.
        census.phase_changed(1, Some(0), NodePhase::Pending, NodePhase::Draining);
        census.cost_observed(2, DrainCost::Free);
        assert_eq!(census.ranked().collect::<Vec<_>>(), [2, 4, 3, 0, 5]);
        assert_eq!(census.count(NodePhase::Pending), 5);
        assert_eq!(census.out_of_service(), 1);
    }

    #[test]
    fn a_domain_with_a_node_out_of_service_is_not_free() {
        let policy = RolloutPolicy {
            spread: Some(Domain::Blade),
            ..RolloutPolicy::default()
        };
        let mut census = Census::of(&pending_state(policy));
        assert_eq!(census.free_domains(), 3);
        assert_eq!(census.free_domains_best().collect::<Vec<_>>(), [0, 2, 4]);
        census.step_started(0);
        census.phase_changed(2, Some(0), NodePhase::Pending, NodePhase::Draining);
        assert_eq!(census.free_domains_best().collect::<Vec<_>>(), [0, 4]);
        assert!(census.domain_busy(census.domain_of(3)));
        assert_eq!(census.unsettled(0).collect::<Vec<_>>(), [2]);
        // Back in service: its blade is free again, for its other node.
        census.phase_changed(2, Some(0), NodePhase::Draining, NodePhase::Resuming);
        census.phase_changed(2, Some(0), NodePhase::Resuming, NodePhase::Done);
        assert_eq!(census.free_domains_best().collect::<Vec<_>>(), [0, 3, 4]);
        assert!(census.settled(0));
    }
}
