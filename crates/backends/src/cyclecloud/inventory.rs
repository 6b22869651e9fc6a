//! [`CycleCloudInventory`]: the node arrays of a CycleCloud cluster as
//! groups, node facts from the node listing, and the groups crus creates
//! itself kept in its state file (see `groups.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use crus_core::error::Result;
use crus_core::node::{NodeFacts, NodeId};
use crus_core::ports::Inventory;

use super::client::CycleCloudClient;
use super::error::CycleCloudError;
use super::groups::GroupStore;
use super::nodes::{NodeRecord, list_nodes, records_of};

/// The [`Inventory`] of a CycleCloud cluster.
///
/// - A node array is a group: its members are the cluster's nodes whose
///   `Template` is the array, in the order CycleCloud lists them. Its
///   membership is CycleCloud's, so adding or removing members is
///   [`crus_core::Error::Invalid`], and creating a group named like an array
///   is [`crus_core::Error::Conflict`].
/// - Any other group is one crus created (a session's upgrading and failed
///   groups), kept in [`CycleCloudConfig::state_file`](super::CycleCloudConfig::state_file).
/// - A node's facts come from its record: always enabled (CycleCloud has no
///   such switch), `state` its `Status` (`Ready`, `Off`, ...) or `State`.
#[derive(Debug)]
pub struct CycleCloudInventory {
    client: Arc<CycleCloudClient>,
    /// `None` when no state file is configured: crus cannot keep groups.
    groups: Option<GroupStore>,
}

impl CycleCloudInventory {
    /// The inventory of the client's cluster, keeping crus's own groups in
    /// the client's configured state file.
    pub fn new(client: Arc<CycleCloudClient>) -> Self {
        let groups = client.config().state_file.clone().map(GroupStore::new);
        CycleCloudInventory { client, groups }
    }

    async fn records(&self) -> Result<Vec<NodeRecord>, CycleCloudError> {
        list_nodes(&self.client, &[]).await
    }

    /// The members of crus's own group `label`, when there is one.
    async fn own_group(&self, label: &str) -> Result<Option<Vec<String>>, CycleCloudError> {
        match &self.groups {
            Some(store) => Ok(store.read().await?.remove(label)),
            None => Ok(None),
        }
    }

    /// Changes crus's own group `label` with `change`, or says why it cannot:
    /// a node array is read-only, any other label does not exist.
    async fn change_members(
        &self,
        label: &str,
        records: &[NodeRecord],
        operation: &'static str,
        change: impl FnOnce(&mut Vec<String>) -> bool + Send + 'static,
    ) -> Result<(), CycleCloudError> {
        let cluster = self.client.config().cluster.clone();
        let is_array = is_node_array(records, label);
        let not_own = move |label: String| {
            if is_array {
                CycleCloudError::NodeArrayIsReadOnly {
                    cluster,
                    label,
                    operation,
                }
            } else {
                CycleCloudError::NoSuchGroup { cluster, label }
            }
        };
        let Some(store) = &self.groups else {
            return Err(not_own(label.to_string()));
        };
        let label = label.to_string();
        store
            .update(move |groups| match groups.get_mut(&label) {
                Some(members) => Ok((change(members), ())),
                None => Err(not_own(label)),
            })
            .await
    }
}

fn is_node_array(records: &[NodeRecord], label: &str) -> bool {
    records
        .iter()
        .any(|record| record.template.as_deref() == Some(label))
}

fn names(nodes: &[NodeId]) -> Vec<String> {
    nodes.iter().map(|node| node.as_str().to_string()).collect()
}

#[async_trait]
impl Inventory for CycleCloudInventory {
    async fn group_members(&self, label: &str) -> Result<Vec<NodeId>> {
        if let Some(members) = self.own_group(label).await? {
            return Ok(members.into_iter().map(NodeId::from).collect());
        }
        let records = self.records().await?;
        if !is_node_array(&records, label) {
            return Err(CycleCloudError::NoSuchGroup {
                cluster: self.client.config().cluster.clone(),
                label: label.to_string(),
            }
            .into());
        }
        Ok(records
            .into_iter()
            .filter(|record| record.template.as_deref() == Some(label))
            .map(|record| NodeId::from(record.name))
            .collect())
    }

    async fn create_group(&self, label: &str) -> Result<()> {
        let Some(store) = &self.groups else {
            return Err(CycleCloudError::NoStateFile {
                label: label.to_string(),
            }
            .into());
        };
        if is_node_array(&self.records().await?, label) {
            return Err(CycleCloudError::GroupExists {
                label: label.to_string(),
                what: "it is a node array of the cluster",
            }
            .into());
        }
        let label = label.to_string();
        store
            .update(move |groups| {
                if groups.contains_key(&label) {
                    return Err(CycleCloudError::GroupExists {
                        label,
                        what: "crus created it before",
                    });
                }
                groups.insert(label, Vec::new());
                Ok((true, ()))
            })
            .await?;
        Ok(())
    }

    async fn add_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        let records = self.records().await?;
        let known: Vec<&str> = records.iter().map(|record| record.name.as_str()).collect();
        let unknown: Vec<&str> = nodes
            .iter()
            .map(NodeId::as_str)
            .filter(|node| !known.contains(node))
            .collect();
        // A missing group is reported before unknown nodes, as the port says.
        if self.own_group(label).await?.is_some() && !unknown.is_empty() {
            return Err(CycleCloudError::UnknownNodes {
                cluster: self.client.config().cluster.clone(),
                nodes: unknown.join(", "),
            }
            .into());
        }
        let added = names(nodes);
        self.change_members(label, &records, "add members to it", move |members| {
            let before = members.len();
            for node in added {
                if !members.contains(&node) {
                    members.push(node);
                }
            }
            members.len() != before
        })
        .await?;
        Ok(())
    }

    async fn remove_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        let records = if self.own_group(label).await?.is_some() {
            // No need to ask CycleCloud about a group crus keeps.
            Vec::new()
        } else {
            self.records().await?
        };
        let removed = names(nodes);
        self.change_members(label, &records, "remove members from it", move |members| {
            let before = members.len();
            members.retain(|member| !removed.contains(member));
            members.len() != before
        })
        .await?;
        Ok(())
    }

    async fn node_facts(&self, nodes: &[NodeId]) -> Result<Vec<NodeFacts>> {
        let records = records_of(&self.client, nodes).await?;
        Ok(nodes
            .iter()
            .zip(records)
            .map(|(node, record)| NodeFacts {
                id: node.clone(),
                nid: None,
                enabled: true,
                state: record.status.or(record.state),
            })
            .collect())
    }
}
