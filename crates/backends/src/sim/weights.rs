//! Node scheduling weights in the simulated workload manager, as Slurm has
//! them: each node has one (default 1), new jobs take the free nodes of
//! lowest weight first (see the model's scheduling), and a weight set at run
//! time is lost when the workload manager restarts, as `scontrol update
//! weight=` is on a `slurmctld` restart (it goes back to `slurm.conf`'s).

use crus_core::rollout::DEFAULT_WEIGHT;
use crus_core::{NodeId, Result};

use super::SimCluster;
use super::model::Model;

impl Model {
    /// The weight of each of `nodes`, in order.
    pub(super) fn node_weights(&self, nodes: &[NodeId]) -> Result<Vec<u32>> {
        Ok(self
            .indexes(nodes)?
            .into_iter()
            .map(|index| self.nodes[index].weight)
            .collect())
    }

    /// Sets each node's weight; jobs waiting may now start elsewhere.
    pub(super) fn set_weights(&mut self, weights: &[(NodeId, u32)]) -> Result<()> {
        let ids: Vec<NodeId> = weights.iter().map(|(id, _)| id.clone()).collect();
        let indexes = self.indexes(&ids)?;
        for (index, (_, weight)) in indexes.into_iter().zip(weights) {
            self.nodes[index].weight = *weight;
        }
        Ok(())
    }

    /// Every weight back to the configured one, as a restart of the
    /// workload manager leaves them.
    fn forget_weights(&mut self) {
        for node in &mut self.nodes {
            node.weight = DEFAULT_WEIGHT;
        }
    }
}

impl SimCluster {
    /// The scheduling weight of `node` now, for tests.
    pub fn weight_of(&self, node: &NodeId) -> Option<u32> {
        self.lock()
            .node_weights(std::slice::from_ref(node))
            .ok()?
            .first()
            .copied()
    }

    /// Restarts the simulated workload manager daemon: node states, drains
    /// and jobs stay, weights set at run time are lost (as `slurmctld`'s).
    pub fn restart_workload_manager(&self) {
        self.lock().forget_weights();
    }
}
