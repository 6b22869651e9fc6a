//! Node operations (`POST /clusters/{cluster}/nodes/{start,shutdown,deallocate,terminate,remove}`):
//! submitting one under a `requestId`, adopting one submitted before, and
//! following it until its nodes settle.

use std::collections::HashMap;

use crus_core::ports::PowerState;
use serde::{Deserialize, Serialize};

use super::client::CycleCloudClient;
use super::error::CycleCloudError;
use super::nodes::{NodeRecord, list_nodes};

/// A node operation crus uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Start deallocated or terminated nodes.
    Start,
    /// Terminate or deallocate nodes, as each node's `ShutdownPolicy` says.
    Shutdown,
    /// Stop and deallocate the VMs, keeping their disks and node records.
    Deallocate,
    /// Delete the VMs and their OS disks; the records of nodes that are not
    /// `Fixed` are removed too.
    Terminate,
    /// Terminate the nodes and remove their records, `Fixed` or not.
    Remove,
}

impl Action {
    /// The last segment of the operation's path, also its name in request ids.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Shutdown => "shutdown",
            Action::Deallocate => "deallocate",
            Action::Terminate => "terminate",
            Action::Remove => "remove",
        }
    }

    /// The power state the operation takes its nodes to.
    pub(crate) fn goal(self) -> PowerState {
        match self {
            Action::Start => PowerState::On,
            Action::Shutdown | Action::Deallocate | Action::Terminate | Action::Remove => {
                PowerState::Off
            }
        }
    }
}

/// The `NodeManagementRequest` crus sends: nodes by name, and the request id
/// that makes the request safe to repeat.
#[derive(Debug, Serialize)]
struct NodeManagementRequest<'a> {
    names: &'a [String],
    #[serde(rename = "requestId")]
    request_id: &'a str,
}

/// The `NodeManagementResult` of a submitted operation.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NodeManagementResult {
    #[serde(rename = "operationId", default)]
    pub(crate) operation_id: Option<String>,
    #[serde(default)]
    pub(crate) nodes: Vec<ResultNode>,
}

/// One node of a `NodeManagementResult`: whether the request affected it.
/// Every attribute may be missing (only `id` and `name` are required, and
/// crus does not need `id`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ResultNode {
    pub(crate) name: String,
    /// `OK` or `Error`.
    pub(crate) status: Option<String>,
    /// Why, when `status` is `Error`.
    pub(crate) error: Option<String>,
}

impl NodeManagementResult {
    /// The nodes CycleCloud refused (`status: Error`), with its reason.
    pub(crate) fn errors(&self) -> HashMap<String, String> {
        self.nodes
            .iter()
            .filter(|node| node.status.as_deref() == Some("Error"))
            .map(|node| {
                let reason = node
                    .error
                    .clone()
                    .filter(|error| !error.is_empty())
                    .unwrap_or_else(|| "CycleCloud gave no reason".to_string());
                (node.name.clone(), reason)
            })
            .collect()
    }
}

/// How an operation's nodes are read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tracking {
    /// By the operation id of the 202 answer.
    Operation(String),
    /// By the request id it was submitted under (the only handle on an
    /// operation adopted after a 409).
    Request(String),
}

impl Tracking {
    fn query(&self) -> [(&'static str, &str); 1] {
        match self {
            Tracking::Operation(id) => [("operation", id.as_str())],
            Tracking::Request(id) => [("request_id", id.as_str())],
        }
    }
}

/// What submitting an operation led to.
#[derive(Debug)]
pub(crate) enum Submission {
    /// CycleCloud accepted it now.
    New {
        tracking: Tracking,
        result: NodeManagementResult,
    },
    /// An operation with this request id exists already, with these nodes.
    Existing { nodes: Vec<NodeRecord> },
}

/// Submits `action` on the nodes `names` under `request_id`.
///
/// Idempotent: CycleCloud ignores a request whose `requestId` it has seen
/// and answers 409. The API documents 409 only as "invalid input"; taking a
/// 409 as "this request exists, adopt it" is this project's choice, checked
/// by reading the operation back by its request id: when CycleCloud knows
/// none, the 409 really was invalid input and is returned as such.
pub(crate) async fn submit(
    client: &CycleCloudClient,
    action: Action,
    names: &[String],
    request_id: &str,
) -> Result<Submission, CycleCloudError> {
    let path = client.cluster_path(&format!("/nodes/{}", action.name()));
    let body = NodeManagementRequest { names, request_id };
    match client.post_with_request_id(&path, &body).await {
        Ok(answer) => {
            let result: NodeManagementResult = if answer.body.is_empty() {
                NodeManagementResult::default()
            } else {
                serde_json::from_slice(&answer.body).map_err(|error| CycleCloudError::Decode {
                    method: "POST",
                    path: path.clone(),
                    message: error.to_string(),
                })?
            };
            let operation_id = result
                .operation_id
                .clone()
                .or_else(|| answer.location.as_deref().and_then(last_segment));
            let tracking = match operation_id {
                Some(id) => Tracking::Operation(id),
                None => Tracking::Request(request_id.to_string()),
            };
            tracing::info!(
                action = action.name(),
                request_id,
                ?tracking,
                nodes = names.len(),
                "submitted a CycleCloud node operation"
            );
            Ok(Submission::New { tracking, result })
        }
        Err(conflict) if conflict.status() == Some(409) => {
            match nodes_of(client, &Tracking::Request(request_id.to_string())).await {
                Ok(nodes) => {
                    tracing::info!(
                        action = action.name(),
                        request_id,
                        "adopted a CycleCloud node operation submitted before"
                    );
                    Ok(Submission::Existing { nodes })
                }
                Err(lookup) if lookup.status() == Some(404) => Err(conflict),
                Err(lookup) => Err(lookup),
            }
        }
        Err(error) => Err(error),
    }
}

/// The current records of the nodes of an operation.
pub(crate) async fn nodes_of(
    client: &CycleCloudClient,
    tracking: &Tracking,
) -> Result<Vec<NodeRecord>, CycleCloudError> {
    list_nodes(client, &tracking.query()).await
}

/// Follows the operation of `action` until each of `names` is in the
/// action's goal state or failed, and returns the records of those still
/// listed, in the order of `names`; at most
/// [`poll_timeout`](super::CycleCloudConfig::poll_timeout).
///
/// A node missing from the operation's listing is unknown to the cluster,
/// except after an operation that terminates: CycleCloud removes a
/// terminated node unless it is `Fixed`, and a node that is gone is off.
pub(crate) async fn wait_until_settled(
    client: &CycleCloudClient,
    tracking: &Tracking,
    what: &str,
    names: &[String],
    action: Action,
) -> Result<Vec<NodeRecord>, CycleCloudError> {
    let goal = action.goal();
    let config = client.config();
    let started = tokio::time::Instant::now();
    loop {
        let records = nodes_of(client, tracking).await?;
        let by_name: HashMap<&str, &NodeRecord> = records
            .iter()
            .map(|record| (record.name.as_str(), record))
            .collect();
        let missing: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|name| !by_name.contains_key(name))
            .collect();
        let may_remove = matches!(
            action,
            Action::Shutdown | Action::Terminate | Action::Remove
        );
        if !missing.is_empty() && !may_remove {
            return Err(CycleCloudError::UnknownNodes {
                cluster: config.cluster.clone(),
                nodes: missing.join(", "),
            });
        }
        let settled = names.iter().all(|name| {
            by_name
                .get(name.as_str())
                .is_some_and(|record| record.power_state() == goal || record.failure().is_some())
        });
        if settled {
            return Ok(names
                .iter()
                .filter_map(|name| by_name.get(name.as_str()).map(|record| (*record).clone()))
                .collect());
        }
        if started.elapsed() >= config.poll_timeout {
            let last = records
                .iter()
                .map(|record| format!("{}: {:?}", record.name, record.power_state()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(CycleCloudError::OperationTimeout {
                what: what.to_string(),
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(config.poll_interval).await;
    }
}

/// The operation id at the end of a `Location` such as
/// `https://cc/operations/0000-...`.
fn last_segment(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next().unwrap_or_default();
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|segment| !segment.is_empty())
        .map(str::to_string)
}

/// A request id derived from `parts`: the same parts give the same id in
/// every process and every crus version (FNV-1a, 128 bits, not std's
/// hasher, whose output may change between Rust releases), shaped as a UUID
/// (version 8, "custom") like the ids the API shows.
pub(crate) fn derived_request_id(parts: &[&str]) -> String {
    const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET_BASIS;
    for part in parts {
        // A separator after each part, so ["ab", "c"] and ["a", "bc"] differ.
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u128::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    let mut bytes = hash.to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}
