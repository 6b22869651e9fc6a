//! Cray Hardware State Manager (HSM, `cray-smd`) as the [`Inventory`]: node
//! groups under `/hsm/v2/groups` and node facts from `/hsm/v2/State/Components`.
//!
//! Every node's NID, for Slurm's `nid` names, is listed by
//! [`HsmInventory::node_nids`] (`nids.rs`).
//!
//! HSM lower-cases group labels, so labels are sent lower-cased. Adding a
//! member HSM already has (409) and removing one it does not have (404 "group
//! has no such member") succeed, which makes both idempotent as the port
//! promises; a missing group (404 "No such group") stays [`Error::NotFound`].

mod nids;

use std::collections::HashMap;

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::node::{NodeFacts, NodeId};
use crus_core::ports::Inventory;
use serde::{Deserialize, Serialize};

use crate::service::{ServiceClient, ServiceConfig, ServiceError, path_segment};

/// `[hsm]` of `crus.toml`: the keys of every Cray service, no more.
pub use crate::service::ServiceSettings as HsmSettings;

/// The backend name in errors.
const BACKEND: &str = "hsm";

/// How many ids one `State/Components` query names, to keep URLs short.
const FACTS_CHUNK: usize = 100;

/// HSM's group, as `GET /hsm/v2/groups/{label}` answers and `POST` takes.
#[derive(Debug, Serialize, Deserialize)]
struct Group {
    label: String,
    #[serde(default)]
    description: String,
    members: Members,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Members {
    #[serde(default)]
    ids: Vec<String>,
}

#[derive(Debug, Serialize)]
struct MemberAdd<'a> {
    id: &'a str,
}

#[derive(Debug, Deserialize)]
struct Components {
    #[serde(rename = "Components", default)]
    components: Vec<Component>,
}

#[derive(Debug, Deserialize)]
struct Component {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "State", default)]
    state: Option<String>,
    #[serde(rename = "Enabled", default)]
    enabled: Option<bool>,
    #[serde(rename = "NID", default)]
    nid: Option<u32>,
}

/// Node groups and node facts in HSM.
#[derive(Debug)]
pub struct HsmInventory {
    client: ServiceClient,
}

impl HsmInventory {
    /// An inventory over the HSM at `config.base_url` (e.g.
    /// `https://api-gw-service-nmn.local/apis/smd`).
    ///
    /// [`Error::Invalid`] when the configuration cannot work (unreadable CA file).
    pub fn new(config: &ServiceConfig) -> Result<Self> {
        Ok(HsmInventory {
            client: ServiceClient::new(BACKEND, config)?,
        })
    }
}

fn group_path(label: &str) -> String {
    format!("/hsm/v2/groups/{}", path_segment(&label.to_lowercase()))
}

/// The error for a call on group `label` that HSM answered 404 "No such group".
fn no_such_group(label: &str, error: ServiceError) -> Error {
    Error::not_found(format!("group '{}' ({error})", label.to_lowercase()))
}

#[async_trait]
impl Inventory for HsmInventory {
    async fn group_members(&self, label: &str) -> Result<Vec<NodeId>> {
        match self.client.get_json::<Group>(&group_path(label), &[]).await {
            Ok(group) => Ok(group.members.ids.into_iter().map(NodeId::from).collect()),
            Err(error) if error.status() == Some(404) => Err(no_such_group(label, error)),
            Err(error) => Err(error.into()),
        }
    }

    async fn create_group(&self, label: &str) -> Result<()> {
        let group = Group {
            label: label.to_lowercase(),
            description: "created by crus".to_string(),
            members: Members::default(),
        };
        self.client
            .post_json::<_, serde_json::Value>("/hsm/v2/groups", &group)
            .await
            .map(drop)
            .map_err(Error::from)
    }

    async fn add_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        let path = format!("{}/members", group_path(label));
        for node in nodes {
            let body = MemberAdd { id: node.as_str() };
            match self
                .client
                .post_json::<_, serde_json::Value>(&path, &body)
                .await
            {
                Ok(_) => {}
                // 409 is "already a member" unless HSM names an exclusive
                // group, which is a real conflict with another group.
                Err(error)
                    if error.status() == Some(409)
                        && !error.detail().to_lowercase().contains("exclusive") => {}
                Err(error) if error.status() == Some(404) => {
                    return Err(no_such_group(label, error));
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    async fn remove_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        for node in nodes {
            let path = format!(
                "{}/members/{}",
                group_path(label),
                path_segment(node.as_str())
            );
            match self.client.delete(&path).await {
                Ok(()) => {}
                // Only HSM's own "group has no such member" means the group
                // exists; any other 404 (no such group, wrong base URL) is
                // reported rather than taken as success.
                Err(error)
                    if error.status() == Some(404)
                        && error.detail().to_lowercase().contains("no such member") => {}
                Err(error) if error.status() == Some(404) => {
                    return Err(no_such_group(label, error));
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    async fn node_facts(&self, nodes: &[NodeId]) -> Result<Vec<NodeFacts>> {
        let mut known: HashMap<String, Component> = HashMap::new();
        for chunk in nodes.chunks(FACTS_CHUNK) {
            let mut query: Vec<(&str, &str)> =
                chunk.iter().map(|node| ("id", node.as_str())).collect();
            query.push(("type", "Node"));
            let answer: Components = self
                .client
                .get_json("/hsm/v2/State/Components", &query)
                .await?;
            for component in answer.components {
                known.insert(component.id.to_lowercase(), component);
            }
        }
        nodes
            .iter()
            .map(|node| {
                let component = known
                    .get(&node.as_str().to_lowercase())
                    .ok_or_else(|| Error::not_found(format!("node {node} in HSM")))?;
                Ok(NodeFacts {
                    id: node.clone(),
                    nid: component.nid,
                    // HSM omits `Enabled` only when it has no value; a node
                    // whose state is unknown is not one crus should act on.
                    enabled: component.enabled.unwrap_or(false),
                    state: component.state.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
