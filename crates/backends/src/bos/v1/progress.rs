//! Where each node of a BOS v1 session stands, from the session's status
//! documents (no IO here).
//!
//! BOS v1 (its Boot Orchestration Agent, BOA) keeps one status per boot set
//! of the session template, `GET /v1/session/{id}/status/{boot_set}`
//! (`V1BootSetStatus`): a list of phases (a reboot goes through `shutdown`,
//! `boot` and, with CFS, `configure`), each sorting the boot set's nodes
//! into categories (`not_started`, `in_progress`, `succeeded`, `failed`,
//! `excluded`; the API document's example spells them capitalised, so they
//! are compared without case) and mapping error texts to the nodes they hit.
//! The session's own status (`V1SessionStatus`) names the boot sets and says
//! whether BOA is done (`metadata.complete`).

use std::collections::BTreeMap;

use crus_core::node::NodeId;
use crus_core::ports::{NodeBootState, NodeBootStatus};
use serde::Deserialize;

/// `GET /v1/session/{id}/status`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SessionStatus {
    #[serde(default)]
    pub(super) metadata: Metadata,
    #[serde(default)]
    pub(super) boot_sets: Vec<String>,
}

/// The `metadata` of a session, boot set or phase status.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Metadata {
    #[serde(default)]
    pub(super) complete: bool,
}

/// `GET /v1/session/{id}/status/{boot_set}`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct BootSetStatus {
    #[serde(default)]
    pub(super) metadata: Metadata,
    #[serde(default)]
    pub(super) phases: Vec<PhaseStatus>,
}

/// One phase of a boot set status.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PhaseStatus {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) categories: Vec<Category>,
    /// Error text → the nodes it hit.
    #[serde(default)]
    pub(super) errors: BTreeMap<String, Vec<String>>,
}

/// One category of a phase and its nodes.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Category {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) node_list: Vec<String>,
}

impl BootSetStatus {
    /// Every node named in any phase: the nodes BOA took for this boot set.
    pub(super) fn nodes(&self) -> impl Iterator<Item = &str> {
        self.phases
            .iter()
            .flat_map(|phase| &phase.categories)
            .flat_map(|category| &category.node_list)
            .map(String::as_str)
    }
}

/// Whether the session is over: its own metadata says so, or every boot set's
/// does (BOS before 2.0.9 did not always keep the session's `complete` right).
pub(super) fn is_complete(session: &SessionStatus, boot_sets: &[BootSetStatus]) -> bool {
    session.metadata.complete
        || (!boot_sets.is_empty() && boot_sets.iter().all(|status| status.metadata.complete))
}

/// One entry per node of `nodes`, judged from the boot set statuses.
///
/// A node failed if a phase lists it as `failed` (with the phase's errors
/// that name it) or `excluded`; it is booted once it is `succeeded` in every
/// phase that lists it. Otherwise it is in progress, unless the session is
/// `complete`: then BOA will not move it any more, and it failed.
pub(super) fn node_states(
    nodes: &[NodeId],
    complete: bool,
    boot_sets: &[BootSetStatus],
) -> Vec<NodeBootStatus> {
    nodes
        .iter()
        .map(|node| NodeBootStatus {
            node: node.clone(),
            state: node_state(node.as_str(), complete, boot_sets),
        })
        .collect()
}

fn node_state(node: &str, complete: bool, boot_sets: &[BootSetStatus]) -> NodeBootState {
    // (phase, category) of every phase that lists the node.
    let mut placed: Vec<(&PhaseStatus, String)> = Vec::new();
    for phase in boot_sets.iter().flat_map(|status| &status.phases) {
        for category in &phase.categories {
            if category.node_list.iter().any(|listed| listed == node) {
                placed.push((phase, category.name.to_ascii_lowercase()));
            }
        }
    }
    if let Some((phase, _)) = placed.iter().find(|(_, category)| category == "failed") {
        let errors: Vec<&str> = phase
            .errors
            .iter()
            .filter(|(_, hit)| hit.iter().any(|listed| listed == node))
            .map(|(error, _)| error.as_str())
            .collect();
        let reason = if errors.is_empty() {
            format!(
                "BOS v1 failed the node in its {} phase without an error",
                phase.name
            )
        } else {
            format!("BOS v1 {} phase: {}", phase.name, errors.join("; "))
        };
        return NodeBootState::Failed { reason };
    }
    if let Some((phase, _)) = placed.iter().find(|(_, category)| category == "excluded") {
        return NodeBootState::Failed {
            reason: format!(
                "BOS v1 excluded the node from its {} phase (disabled, locked or not in the template's boot sets)",
                phase.name
            ),
        };
    }
    if !placed.is_empty() && placed.iter().all(|(_, category)| category == "succeeded") {
        return NodeBootState::Ok;
    }
    if !complete {
        return NodeBootState::InProgress;
    }
    let reason = match placed.iter().find(|(_, category)| category != "succeeded") {
        Some((phase, category)) => format!(
            "the BOS v1 session completed with the node still {category} in its {} phase",
            phase.name
        ),
        None => "the BOS v1 session completed without booting this node".to_string(),
    };
    NodeBootState::Failed { reason }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A boot set status shaped as the BOS API document's `V1BootSetStatus`
    /// example, with the categories BOA fills.
    fn boot_set(complete: bool, phases: serde_json::Value) -> BootSetStatus {
        serde_json::from_value(json!({
            "name": "compute",
            "session": "8deb0746-b18c-427c-84a8-72ec6a28642c",
            "metadata": {"complete": complete, "error_count": 0, "in_progress": !complete,
                         "start_time": "2020-04-24T12:00", "stop_time": null},
            "phases": phases,
            "links": [{"href": "/v1/session/8deb0746-b18c-427c-84a8-72ec6a28642c/status/compute", "rel": "self"}]
        }))
        .unwrap()
    }

    fn phase(
        name: &str,
        categories: &[(&str, &[&str])],
        errors: serde_json::Value,
    ) -> serde_json::Value {
        json!({
            "name": name,
            "metadata": {"complete": false, "error_count": 0, "in_progress": true, "start_time": "2020-04-24T12:00"},
            "categories": categories.iter().map(|(name, nodes)| json!({"name": name, "node_list": nodes})).collect::<Vec<_>>(),
            "errors": errors,
        })
    }

    fn states(complete: bool, status: &BootSetStatus, nodes: &[&str]) -> Vec<NodeBootState> {
        let nodes: Vec<NodeId> = nodes.iter().map(|node| NodeId::from(*node)).collect();
        node_states(&nodes, complete, std::slice::from_ref(status))
            .into_iter()
            .map(|status| status.state)
            .collect()
    }

    #[test]
    fn nodes_are_judged_from_every_phase_that_lists_them() {
        let status = boot_set(
            false,
            json!([
                phase(
                    "shutdown",
                    &[("Succeeded", &["a", "b", "c", "d"]), ("Excluded", &["e"])],
                    json!({})
                ),
                phase(
                    "boot",
                    &[
                        ("Succeeded", &["a"]),
                        ("In_progress", &["b"]),
                        ("Failed", &["c"]),
                        ("Not_started", &["d"])
                    ],
                    json!({"Node(s) failed to power on": ["c"]})
                ),
            ]),
        );
        assert_eq!(
            states(false, &status, &["a", "b", "c", "d", "e", "f"]),
            vec![
                NodeBootState::Ok,
                NodeBootState::InProgress,
                NodeBootState::Failed {
                    reason: "BOS v1 boot phase: Node(s) failed to power on".into()
                },
                NodeBootState::InProgress,
                NodeBootState::Failed {
                    reason: "BOS v1 excluded the node from its shutdown phase (disabled, locked or not in the template's boot sets)".into()
                },
                NodeBootState::InProgress,
            ]
        );
        // Once BOA is done, what has not succeeded has failed.
        let after = states(true, &status, &["b", "f"]);
        assert_eq!(
            after,
            vec![
                NodeBootState::Failed {
                    reason: "the BOS v1 session completed with the node still in_progress in its boot phase".into()
                },
                NodeBootState::Failed {
                    reason: "the BOS v1 session completed without booting this node".into()
                },
            ]
        );
        let failed_silently = boot_set(
            false,
            json!([phase("configure", &[("failed", &["a"])], json!({}))]),
        );
        assert_eq!(
            states(false, &failed_silently, &["a"]),
            vec![NodeBootState::Failed {
                reason: "BOS v1 failed the node in its configure phase without an error".into()
            }]
        );
    }

    #[test]
    fn a_session_is_complete_by_its_own_metadata_or_all_its_boot_sets() {
        let session = |complete: bool| SessionStatus {
            metadata: Metadata { complete },
            boot_sets: vec!["compute".into()],
        };
        let done = boot_set(true, json!([]));
        let running = boot_set(false, json!([]));
        assert!(is_complete(&session(true), &[]));
        assert!(!is_complete(&session(false), &[]));
        assert!(is_complete(&session(false), std::slice::from_ref(&done)));
        assert!(!is_complete(&session(false), &[done, running]));
    }
}
