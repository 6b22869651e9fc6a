//! The steps' node lists and the boots' node lists, kept out of a stored
//! session header so its size does not grow with the machine (issue 25: a
//! finished 100,000-node session's header was 2.2 MB, over etcd's 1.5 MiB
//! request limit, and every persist copied and encoded it).
//!
//! The nodes already say the same thing: each node carries its step
//! ([`NodeRecord::step`]) and the boots of that step it was booted by
//! ([`NodeRecord::boots`]). A header written without the lists is
//! completed from its nodes when a store assembles the record; a header
//! stored before (with the lists) is read as it is, and its nodes are
//! given their boots when a controller resumes it, so its next write can
//! leave the lists out.

use std::collections::HashMap;

use super::RolloutState;
use crate::node::NodeId;

/// A step's node list and its boots' node lists, lent out of a state.
pub(super) type StepLists = (Vec<usize>, Vec<Vec<NodeId>>);

impl RolloutState {
    /// Takes every step's and every boot's node list out of the state
    /// (put back by [`RolloutState::put_node_lists`]), so a header can be
    /// copied without them.
    pub(super) fn take_node_lists(&mut self) -> Vec<StepLists> {
        self.steps
            .iter_mut()
            .map(|step| {
                let boots = step
                    .boots
                    .iter_mut()
                    .map(|boot| std::mem::take(&mut boot.nodes))
                    .collect();
                (std::mem::take(&mut step.nodes), boots)
            })
            .collect()
    }

    /// Puts back what [`RolloutState::take_node_lists`] took.
    pub(super) fn put_node_lists(&mut self, lists: Vec<StepLists>) {
        for (step, (nodes, boots)) in self.steps.iter_mut().zip(lists) {
            step.nodes = nodes;
            for (boot, nodes) in step.boots.iter_mut().zip(boots) {
                boot.nodes = nodes;
            }
        }
    }

    /// Whether the nodes' [`NodeRecord::step`] and [`NodeRecord::boots`]
    /// account for every step's and boot's node list, so a header may
    /// leave the lists out. Compares counts, one pass over the nodes: a
    /// state resumed from a header stored with the lists, whose nodes do
    /// not name their boots yet, does not qualify.
    pub fn node_lists_derivable(&self) -> bool {
        let mut steps = vec![0usize; self.steps.len()];
        let mut boots: Vec<Vec<usize>> = self
            .steps
            .iter()
            .map(|step| vec![0; step.boots.len()])
            .collect();
        for node in &self.nodes {
            let Some(step) = node.step.and_then(|step| usize::try_from(step).ok()) else {
                if !node.boots.is_empty() {
                    return false;
                }
                continue;
            };
            let Some(count) = steps.get_mut(step) else {
                return false;
            };
            *count += 1;
            for &boot in &node.boots {
                match usize::try_from(boot)
                    .ok()
                    .and_then(|boot| boots[step].get_mut(boot))
                {
                    Some(count) => *count += 1,
                    None => return false,
                }
            }
        }
        self.steps
            .iter()
            .zip(&steps)
            .zip(&boots)
            .all(|((step, &count), boot_counts)| {
                step.nodes.len() == count
                    && step
                        .boots
                        .iter()
                        .zip(boot_counts)
                        .all(|(boot, &count)| boot.nodes.len() == count)
            })
    }

    /// Rebuilds the node lists a stored header left out, from the nodes
    /// assembled into it: a step's node indexes and a boot's node ids in
    /// node order. A list the header kept (stored before the lists were
    /// left out) is kept as it is. Steps and boots always have nodes, so
    /// an empty list is one left out.
    pub fn restore_node_lists(&mut self) {
        let missing = |state: &RolloutState| {
            state.steps.iter().any(|step| {
                step.nodes.is_empty() || step.boots.iter().any(|boot| boot.nodes.is_empty())
            })
        };
        if !missing(self) {
            return;
        }
        let rebuild_steps: Vec<bool> = self
            .steps
            .iter()
            .map(|step| step.nodes.is_empty())
            .collect();
        let rebuild_boots: Vec<Vec<bool>> = self
            .steps
            .iter()
            .map(|step| {
                step.boots
                    .iter()
                    .map(|boot| boot.nodes.is_empty())
                    .collect()
            })
            .collect();
        let RolloutState { nodes, steps, .. } = self;
        for (index, node) in nodes.iter().enumerate() {
            let Some(number) = node.step.and_then(|step| usize::try_from(step).ok()) else {
                continue;
            };
            let Some(step) = steps.get_mut(number) else {
                continue;
            };
            if rebuild_steps[number] {
                step.nodes.push(index);
            }
            for &boot in &node.boots {
                let Some(position) = usize::try_from(boot).ok() else {
                    continue;
                };
                if rebuild_boots[number]
                    .get(position)
                    .copied()
                    .unwrap_or(false)
                    && let Some(boot) = step.boots.get_mut(position)
                {
                    boot.nodes.push(node.id.clone());
                }
            }
        }
    }

    /// Gives every node the boots of its step it was booted by, read from
    /// the boots' node lists, when the nodes do not say so already (a
    /// session stored before nodes carried their boots). Returns whether
    /// any node changed: those nodes must be written with the next header
    /// that leaves the lists out.
    pub fn record_boot_membership(&mut self) -> bool {
        if self.node_lists_derivable() {
            return false;
        }
        let positions: HashMap<NodeId, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(position, node)| (node.id.clone(), position))
            .collect();
        let mut boots: Vec<Vec<u32>> = vec![Vec::new(); self.nodes.len()];
        for step in &self.steps {
            for (number, boot) in step.boots.iter().enumerate() {
                let number = u32::try_from(number).unwrap_or(u32::MAX);
                for id in &boot.nodes {
                    if let Some(&position) = positions.get(id) {
                        boots[position].push(number);
                    }
                }
            }
        }
        let mut changed = false;
        for (position, boots) in boots.into_iter().enumerate() {
            // Borrowed for a change only where it changes: only those nodes
            // are written with the next header.
            if self.nodes[position].boots != boots {
                self.nodes[position].boots = boots;
                changed = true;
            }
        }
        changed
    }
}
