//! Every node's NID from HSM, so that a workload manager that names nodes
//! by NID (Slurm on Cray EX: `nid000042`) can be told each xname's name.

use std::collections::HashMap;

use crus_core::error::Result;
use crus_core::node::NodeId;

use super::{Components, HsmInventory};

impl HsmInventory {
    /// The NID of every node HSM knows, by node id (xname), from one
    /// `GET /hsm/v2/State/Components?type=Node&nidonly=true`.
    ///
    /// Nodes of every role are listed, not only `Compute`: Slurm may run on
    /// application nodes too, and an entry for a node no session touches
    /// costs nothing. Nodes HSM gives no NID are left out, so a workload
    /// manager treats them as nodes it does not know.
    ///
    /// This is a snapshot: a node added to HSM after the call is not in it.
    /// `crus serve` takes it once at start, so such a node is unknown to
    /// Slurm naming until the next restart.
    ///
    /// Fails as every HSM call does: [`crus_core::error::Error::Unavailable`]
    /// when HSM cannot be reached after the configured retries.
    pub async fn node_nids(&self) -> Result<HashMap<NodeId, u32>> {
        // `nidonly` trims each component to ID, Type and NID, which matters
        // on systems with tens of thousands of nodes; an HSM that ignores it
        // sends whole components, which read the same.
        let answer: Components = self
            .client
            .get_json(
                "/hsm/v2/State/Components",
                &[("type", "Node"), ("nidonly", "true")],
            )
            .await?;
        Ok(answer
            .components
            .into_iter()
            .filter_map(|component| component.nid.map(|nid| (NodeId::from(component.id), nid)))
            .collect())
    }
}

#[cfg(test)]
mod tests;
