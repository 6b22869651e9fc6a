//! The node records of `GET /clusters/{cluster}/nodes`, and what crus reads
//! from them: the node array (a group), the power state, failures.
//!
//! The API declares a node record as an open object. The attributes read here
//! are CycleCloud's node attributes: `Name`, `Template` (the node array the
//! node was created from), `State` (`Started`, `Deallocated`, `Terminated`,
//! ... and the transitions between them), `TargetState` (where an operation
//! is taking the node), `Status` (the summary the UI shows: `Off`,
//! `Acquiring`, `Preparing`, `Ready`, `Failed`), `StatusMessage` and `Fixed`
//! (whether the node stays in the cluster when terminated; CycleCloud
//! removes a terminated node that is not `Fixed`). All are optional so that
//! a record missing one still parses; any other attribute is ignored.

use std::collections::HashMap;

use crus_core::node::NodeId;
use crus_core::ports::PowerState;
use serde::Deserialize;

use super::client::CycleCloudClient;
use super::error::CycleCloudError;

/// One node record.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct NodeRecord {
    #[serde(rename = "Name", default)]
    pub(crate) name: String,
    /// The node array.
    #[serde(rename = "Template", default)]
    pub(crate) template: Option<String>,
    #[serde(rename = "State", default)]
    pub(crate) state: Option<String>,
    #[serde(rename = "TargetState", default)]
    pub(crate) target_state: Option<String>,
    #[serde(rename = "Status", default)]
    pub(crate) status: Option<String>,
    #[serde(rename = "StatusMessage", default)]
    pub(crate) status_message: Option<String>,
    /// Read leniently (a boolean or its text) by [`NodeRecord::is_fixed`],
    /// so that an unexpected form cannot make the whole listing unreadable.
    #[serde(rename = "Fixed", default)]
    pub(crate) fixed: Option<serde_json::Value>,
}

/// The `NodeList` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct NodeList {
    #[serde(default)]
    pub(crate) nodes: Vec<NodeRecord>,
}

/// The parts of `GET /clusters/{cluster}/status` crus reads: the node
/// arrays, each with its attributes (a node record).
#[derive(Debug, Deserialize)]
pub(crate) struct ClusterStatus {
    #[serde(default)]
    pub(crate) nodearrays: Vec<NodeArrayStatus>,
}

/// One node array of the cluster status.
#[derive(Debug, Deserialize)]
pub(crate) struct NodeArrayStatus {
    pub(crate) name: String,
    /// The array's attributes; `ImageName` is the image its nodes boot.
    #[serde(default)]
    pub(crate) nodearray: serde_json::Value,
}

impl NodeArrayStatus {
    /// The image the array's nodes boot, as the array names it.
    pub(crate) fn image(&self) -> Option<&str> {
        self.nodearray
            .get("ImageName")
            .and_then(|image| image.as_str())
    }
}

impl NodeRecord {
    /// The node's power state: from `State`, or `Status` when a record has
    /// no `State`. A state crus does not know is [`PowerState::Unknown`]
    /// rather than a guess.
    pub(crate) fn power_state(&self) -> PowerState {
        let shown = self.state.as_deref().or(self.status.as_deref());
        match shown {
            Some("Started" | "Ready") => PowerState::On,
            Some("Off" | "Deallocated" | "Terminated" | "Stopped") => PowerState::Off,
            Some("Acquiring" | "Allocation" | "Preparing" | "Starting" | "Booting") => {
                PowerState::PoweringOn
            }
            Some("Deallocating" | "Terminating" | "Stopping" | "ShuttingDown") => {
                PowerState::PoweringOff
            }
            _ => PowerState::Unknown,
        }
    }

    /// Where the node is going: its `TargetState` as a power state, or its
    /// current one when it has none.
    pub(crate) fn heading(&self) -> PowerState {
        match self.target_state.as_deref() {
            Some("Started") => PowerState::On,
            Some("Deallocated" | "Terminated" | "Off") => PowerState::Off,
            _ => self.power_state(),
        }
    }

    /// Whether the node is `Fixed`: kept in the cluster when terminated.
    /// A record without the attribute is not (CycleCloud's default).
    pub(crate) fn is_fixed(&self) -> bool {
        match &self.fixed {
            Some(serde_json::Value::Bool(fixed)) => *fixed,
            Some(serde_json::Value::String(text)) => text.eq_ignore_ascii_case("true"),
            _ => false,
        }
    }

    /// Why CycleCloud failed the node, when it did.
    pub(crate) fn failure(&self) -> Option<String> {
        let failed =
            self.status.as_deref() == Some("Failed") || self.state.as_deref() == Some("Failed");
        failed.then(|| match self.status_message.as_deref() {
            Some(message) if !message.is_empty() => message.to_string(),
            _ => "CycleCloud reports the node Failed (see the cluster's event log)".to_string(),
        })
    }
}

/// Every node record of the cluster, or those of one operation.
pub(crate) async fn list_nodes(
    client: &CycleCloudClient,
    query: &[(&str, &str)],
) -> Result<Vec<NodeRecord>, CycleCloudError> {
    let path = client.cluster_path("/nodes");
    let list: NodeList = client.get_json(&path, query).await?;
    Ok(list.nodes)
}

/// The node arrays of the cluster, with their attributes.
pub(crate) async fn node_arrays(
    client: &CycleCloudClient,
) -> Result<Vec<NodeArrayStatus>, CycleCloudError> {
    let path = client.cluster_path("/status");
    let status: ClusterStatus = client.get_json(&path, &[]).await?;
    Ok(status.nodearrays)
}

/// The records of `nodes`, in their order; [`CycleCloudError::UnknownNodes`]
/// naming every one the cluster does not have.
pub(crate) async fn records_of(
    client: &CycleCloudClient,
    nodes: &[NodeId],
) -> Result<Vec<NodeRecord>, CycleCloudError> {
    let records = list_nodes(client, &[]).await?;
    let by_name: HashMap<&str, &NodeRecord> = records
        .iter()
        .map(|record| (record.name.as_str(), record))
        .collect();
    let mut found = Vec::with_capacity(nodes.len());
    let mut unknown = Vec::new();
    for node in nodes {
        match by_name.get(node.as_str()) {
            Some(record) => found.push((*record).clone()),
            None => unknown.push(node.as_str()),
        }
    }
    if unknown.is_empty() {
        Ok(found)
    } else {
        Err(CycleCloudError::UnknownNodes {
            cluster: client.config().cluster.clone(),
            nodes: unknown.join(", "),
        })
    }
}
