//! Creating nodes again (`POST /clusters/{cluster}/nodes/create`) under a
//! `requestId`: each node named as it was, in the node array it came from,
//! and which of them CycleCloud did not add.
//!
//! A `NodeCreationRequest` is made of sets, each `count` nodes of one node
//! array. crus sends one set per node, of count 1, whose `nameFormat` is the
//! node's own name: the API documents `nameFormat` as the naming convention
//! that replaces the standard `nodearray-%d`, so a format without `%d` names
//! the one node of its set exactly (this reading is checked by the fake
//! CycleCloud of the tests, which refuses a set whose name is taken). No
//! `nodeAttributes` are sent: a created node takes its image, like every
//! other attribute, from its node array (see `reimage.rs` for why).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::client::CycleCloudClient;
use super::error::CycleCloudError;
use super::operation::{Tracking, nodes_of};

/// The `NodeCreationRequest` crus sends.
#[derive(Debug, Serialize)]
struct NodeCreationRequest<'a> {
    #[serde(rename = "requestId")]
    request_id: &'a str,
    sets: Vec<CreationSet<'a>>,
}

/// One set of a `NodeCreationRequest`: one node, by its exact name.
#[derive(Debug, Serialize)]
struct CreationSet<'a> {
    nodearray: &'a str,
    count: u32,
    #[serde(rename = "nameFormat")]
    name_format: &'a str,
}

/// The `NodeCreationResult`: per set, in the request's order, how many
/// nodes were added and, when not all, why.
#[derive(Debug, Default, Deserialize)]
struct NodeCreationResult {
    #[serde(default)]
    sets: Vec<CreationSetResult>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CreationSetResult {
    added: u32,
    message: Option<String>,
}

/// What submitting a creation led to.
#[derive(Debug)]
pub(crate) enum Creation {
    /// CycleCloud accepted it now; the nodes it did not add, with its reason.
    New { refused: HashMap<String, String> },
    /// A creation with this request id exists already.
    Existing,
}

/// Creates each `(node, node array)` of `nodes` under `request_id`.
///
/// Idempotent like [`submit`](super::operation::submit): a 409 whose
/// request id CycleCloud knows is a creation submitted before, adopted; a
/// 409 for a request id it does not know is returned as the invalid input
/// it is.
pub(crate) async fn create_nodes(
    client: &CycleCloudClient,
    nodes: &[(String, String)],
    request_id: &str,
) -> Result<Creation, CycleCloudError> {
    let path = client.cluster_path("/nodes/create");
    let body = NodeCreationRequest {
        request_id,
        sets: nodes
            .iter()
            .map(|(name, array)| CreationSet {
                nodearray: array,
                count: 1,
                name_format: name,
            })
            .collect(),
    };
    match client.post_with_request_id(&path, &body).await {
        Ok(answer) => {
            let result: NodeCreationResult = if answer.body.is_empty() {
                NodeCreationResult::default()
            } else {
                serde_json::from_slice(&answer.body).map_err(|error| CycleCloudError::Decode {
                    method: "POST",
                    path: path.clone(),
                    message: error.to_string(),
                })?
            };
            tracing::info!(
                request_id,
                nodes = nodes.len(),
                "submitted a CycleCloud node creation"
            );
            Ok(Creation::New {
                refused: not_added(nodes, &result),
            })
        }
        Err(conflict) if conflict.status() == Some(409) => {
            match nodes_of(client, &Tracking::Request(request_id.to_string())).await {
                Ok(_) => {
                    tracing::info!(request_id, "adopted a CycleCloud node creation");
                    Ok(Creation::Existing)
                }
                Err(lookup) if lookup.status() == Some(404) => Err(conflict),
                Err(lookup) => Err(lookup),
            }
        }
        Err(error) => Err(error),
    }
}

/// The nodes whose set added none, with CycleCloud's message. A set the
/// answer leaves out is taken as added: the node's listing tells.
fn not_added(nodes: &[(String, String)], result: &NodeCreationResult) -> HashMap<String, String> {
    nodes
        .iter()
        .zip(&result.sets)
        .filter(|(_, set)| set.added == 0)
        .map(|((name, array), set)| {
            let reason = set
                .message
                .clone()
                .filter(|message| !message.is_empty())
                .unwrap_or_else(|| {
                    format!("CycleCloud did not create the node again in node array {array}")
                });
            (name.clone(), reason)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_that_added_nothing_refuses_its_node_with_the_message() {
        let nodes = vec![
            ("hpc-1".to_string(), "hpc".to_string()),
            ("hpc-2".to_string(), "hpc".to_string()),
            ("hpc-3".to_string(), "hpc".to_string()),
        ];
        let result: NodeCreationResult = serde_json::from_str(
            r#"{"operationId": "x", "sets": [{"added": 1}, {"added": 0, "message": "quota"}, {"added": 0}]}"#,
        )
        .unwrap_or_default();
        let refused = not_added(&nodes, &result);
        assert_eq!(refused.len(), 2);
        assert_eq!(refused["hpc-2"], "quota");
        assert!(refused["hpc-3"].contains("node array hpc"));
    }

    #[test]
    fn the_request_names_each_node_exactly_in_its_own_set() {
        let body = NodeCreationRequest {
            request_id: "r",
            sets: vec![CreationSet {
                nodearray: "hpc",
                count: 1,
                name_format: "hpc-7",
            }],
        };
        let json = serde_json::to_value(&body).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"requestId": "r", "sets": [{"nodearray": "hpc", "count": 1, "nameFormat": "hpc-7"}]})
        );
    }
}
