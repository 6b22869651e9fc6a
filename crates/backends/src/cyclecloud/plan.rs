//! [`ReimagePlan`]: which nodes of a boot are terminated and started again
//! and which are removed and created again, the request ids of the four
//! operations, and the handle id that carries the plan (sans-IO).
//!
//! The plan travels in the handle's id because a node that is removed is no
//! longer listed by CycleCloud: a crus restarted between its removal and its
//! creation learns from the handle alone which node to create in which
//! node array.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::operation::{Action, derived_request_id};

/// How one boot gives each of its nodes a fresh VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReimagePlan {
    /// `Fixed` nodes, which stay in the cluster when terminated: terminated,
    /// then started. Sorted.
    #[serde(rename = "restart", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) restarted: Vec<String>,
    /// The other nodes, which CycleCloud removes when terminated: removed,
    /// then created again under the same name in their node array (the
    /// value).
    #[serde(
        rename = "recreate",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub(crate) recreated: BTreeMap<String, String>,
}

/// The operations of a boot, whose request ids derive from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Terminates the restarted nodes.
    Terminate,
    /// Starts the restarted nodes once terminated.
    Start,
    /// Removes the recreated nodes.
    Remove,
    /// Creates the recreated nodes once removed.
    Create,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Terminate => Action::Terminate.name(),
            Step::Start => Action::Start.name(),
            Step::Remove => Action::Remove.name(),
            Step::Create => "create",
        }
    }
}

/// The request id of `step` of the boot under `key`.
pub(crate) fn request_id(key: &str, step: Step) -> String {
    derived_request_id(&["crus-reimage", key, step.name()])
}

/// The part of a handle id that names the boot, before its plan.
fn boot_id(key: &str) -> String {
    derived_request_id(&["crus-reimage", key])
}

impl ReimagePlan {
    /// Every node of the plan, sorted.
    pub(crate) fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .restarted
            .iter()
            .chain(self.recreated.keys())
            .cloned()
            .collect();
        nodes.sort();
        nodes
    }

    /// The handle id of the boot under `key` following this plan: an id
    /// derived from the key, a space, and the plan as JSON. The same key and
    /// plan always give the same id.
    pub(crate) fn handle_id(&self, key: &str) -> String {
        // Serializing a struct of strings cannot fail; an empty plan is the
        // fallback all the same rather than a panic.
        let plan = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string());
        format!("{} {plan}", boot_id(key))
    }

    /// The plan in the handle id of a boot under `key`; `None` when the id
    /// is not one this module made for that key.
    pub(crate) fn from_handle_id(key: &str, id: &str) -> Option<ReimagePlan> {
        let (boot, plan) = id.split_once(' ')?;
        if boot != boot_id(key) {
            return None;
        }
        let mut plan: ReimagePlan = serde_json::from_str(plan).ok()?;
        plan.restarted.sort();
        Some(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ReimagePlan {
        ReimagePlan {
            restarted: vec!["hpc-1".into(), "hpc-2".into()],
            recreated: BTreeMap::from([("hpc-3".to_string(), "hpc".to_string())]),
        }
    }

    #[test]
    fn the_handle_id_carries_the_plan_for_its_key_only() {
        let id = plan().handle_id("upgrade-1-batch-0");
        assert_eq!(
            ReimagePlan::from_handle_id("upgrade-1-batch-0", &id),
            Some(plan())
        );
        assert_eq!(ReimagePlan::from_handle_id("upgrade-1-batch-1", &id), None);
        assert_eq!(ReimagePlan::from_handle_id("upgrade-1-batch-0", "x"), None);
        assert_eq!(plan().handle_id("k"), plan().handle_id("k"));
        assert_eq!(plan().nodes(), ["hpc-1", "hpc-2", "hpc-3"]);
    }

    #[test]
    fn each_step_has_its_own_request_id() {
        let ids: Vec<String> = [Step::Terminate, Step::Start, Step::Remove, Step::Create]
            .into_iter()
            .map(|step| request_id("k", step))
            .collect();
        for (index, id) in ids.iter().enumerate() {
            assert!(!ids[index + 1..].contains(id), "{ids:?}");
        }
        assert_ne!(request_id("k", Step::Start), request_id("j", Step::Start));
    }
}
