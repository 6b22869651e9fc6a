//! The environment each node runs now, as Kadeploy records it
//! (`skip_matching`).
//!
//! Kadeploy keeps, per node, the last environment deployed on it:
//! `GET /nodes` answers an object by host name, each
//! `{"state": "deployed", "user": …, "environment": {"name", "version",
//! "user"}}` (the Grid'5000 Kadeploy API document, "Get the status of ALL
//! nodes in a site"), served at `kadeploy/nodes` under the Grid'5000 site
//! and at `nodes` by a Kadeploy server itself, next to its `deployment`
//! and `environments`: `nodes` is asked first, then `kadeploy/nodes` when
//! it is not there. The rule crus applies:
//!
//! a node runs template `name[:version][@user]` when its state is
//! `deployed` and its environment has that name, that owner when one is
//! given, and that version, or, when none is given, the latest version
//! Kadeploy lists for the name (what a deployment of the template would
//! deploy now: an older version of the same name is upgraded).
//!
//! A node in any other state (being deployed, failed, rebooted into its
//! production system), unknown to Kadeploy, or a template given as an image
//! URL (an anonymous environment, which Kadeploy cannot tell apart from
//! another image of the same file name) is "cannot tell": such a node is
//! upgraded as any other.

use std::collections::HashMap;

use crus_core::error::Result;
use crus_core::node::NodeId;
use crus_core::ports::NodeImage;
use serde::Deserialize;
use serde_json::Value;

use super::KadeployBootOrchestrator;
use super::environment::{ListedEnvironment, Template, listing_query};
use super::error::KadeployError;

/// The parts of a node's record in `GET /nodes` crus reads.
#[derive(Debug, Deserialize)]
struct NodeRecord {
    #[serde(default)]
    state: String,
    #[serde(default)]
    environment: Option<ListedEnvironment>,
}

impl KadeployBootOrchestrator {
    /// Which of `nodes` run `template`, by the rule above.
    pub(super) async fn read_current_images(
        &self,
        nodes: &[NodeId],
        template: &str,
    ) -> Result<Vec<NodeImage>> {
        let parsed = Template::parse(template)?;
        let unknown = || {
            nodes
                .iter()
                .map(|node| NodeImage {
                    node: node.clone(),
                    image: None,
                })
                .collect()
        };
        let Template::Registered {
            name,
            version,
            user,
        } = &parsed
        else {
            return Ok(unknown());
        };
        let wanted_version = match version {
            Some(version) => Some(*version),
            None => self.latest_version(name, user.as_deref()).await?,
        };
        let Some(wanted_version) = wanted_version else {
            // No such environment listed: no node can run it.
            return Ok(unknown());
        };
        let listing = self.node_records().await?;
        let Value::Object(records) = listing else {
            return Err(KadeployError::Decode {
                method: reqwest::Method::GET,
                path: "/nodes".to_string(),
                message: "expected an object of nodes by host name".to_string(),
            }
            .into());
        };
        let records: HashMap<String, NodeRecord> = records
            .into_iter()
            .filter_map(|(host, record)| Some((host, serde_json::from_value(record).ok()?)))
            .collect();
        Ok(nodes
            .iter()
            .map(|node| {
                let runs = records.get(&self.names.host(node)).is_some_and(|record| {
                    record.state == "deployed"
                        && record.environment.as_ref().is_some_and(|environment| {
                            parsed.matches(environment)
                                && environment.version == Some(wanted_version)
                        })
                });
                NodeImage {
                    node: node.clone(),
                    image: runs.then(|| template.to_string()),
                }
            })
            .collect())
    }

    /// Kadeploy's record of every node, from `nodes` or, where that is not
    /// served, the Grid'5000 site's `kadeploy/nodes`.
    async fn node_records(&self) -> Result<Value> {
        match self.client.get_json(&["nodes"], &[]).await {
            Err(error) if error.status() == Some(404) => {
                Ok(self.client.get_json(&["kadeploy", "nodes"], &[]).await?)
            }
            other => Ok(other?),
        }
    }

    /// The latest version of environment `name` (of `user`, when given)
    /// that Kadeploy lists.
    async fn latest_version(&self, name: &str, user: Option<&str>) -> Result<Option<u64>> {
        let query = listing_query(name, None, user);
        let listing: Value = self.client.get_json(&["environments"], &query).await?;
        let Value::Array(items) = listing else {
            return Err(KadeployError::Decode {
                method: reqwest::Method::GET,
                path: "/environments".to_string(),
                message: "expected an array of environments".to_string(),
            }
            .into());
        };
        Ok(items
            .into_iter()
            .filter_map(|item| serde_json::from_value::<ListedEnvironment>(item).ok())
            .filter(|listed| {
                listed.name == name && user.is_none_or(|user| listed.user.as_deref() == Some(user))
            })
            .filter_map(|listed| listed.version)
            .max())
    }
}
