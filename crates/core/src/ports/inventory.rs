//! `Inventory`: node groups and node facts (HSM on Cray systems).

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::node::{NodeFacts, NodeId};

/// Node groups (labels) and what is known about each node.
#[async_trait]
pub trait Inventory: Send + Sync {
    /// Members of group `label`, in the inventory's order.
    ///
    /// [`Error::NotFound`] when the group does not exist.
    async fn group_members(&self, label: &str) -> Result<Vec<NodeId>>;

    /// Creates an empty group `label`.
    ///
    /// [`Error::Conflict`] when it exists already.
    async fn create_group(&self, label: &str) -> Result<()>;

    /// Adds `nodes` to group `label`. Idempotent: a node that is already a member is not an error.
    ///
    /// [`Error::NotFound`] when the group does not exist.
    async fn add_members(&self, label: &str, nodes: &[NodeId]) -> Result<()>;

    /// Removes `nodes` from group `label`. Idempotent: a node that is not a member is not an error.
    ///
    /// [`Error::NotFound`] when the group does not exist.
    async fn remove_members(&self, label: &str, nodes: &[NodeId]) -> Result<()>;

    /// Facts about each of `nodes`, in the same order. [`Error::NotFound`] for an unknown node.
    async fn node_facts(&self, nodes: &[NodeId]) -> Result<Vec<NodeFacts>>;

    /// Creates group `label` unless it exists. Idempotent.
    async fn ensure_group(&self, label: &str) -> Result<()> {
        match self.create_group(label).await {
            Ok(()) | Err(Error::Conflict { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Removes every member of group `label`, returning the nodes removed. Idempotent.
    async fn clear_group(&self, label: &str) -> Result<Vec<NodeId>> {
        let members = self.group_members(label).await?;
        if !members.is_empty() {
            self.remove_members(label, &members).await?;
        }
        Ok(members)
    }
}
