//! The planner: a pure function from the nodes to upgrade and the step size
//! to an ordered list of steps. Same input, same plan; used by the rollout and
//! by dry runs.

use serde::{Deserialize, Serialize};

use crate::node::NodeId;

/// Nodes in the order a CRUS-style rollout takes them: sorted by topology
/// (cabinet, chassis, slot, BMC, node as numbers), duplicates dropped.
///
/// CRUS took the starting group in whatever order HSM returned and re-read it
/// on every step, so steps could shift; crus takes this sorted snapshot once.
pub fn inventory_order(mut nodes: Vec<NodeId>) -> Vec<NodeId> {
    nodes.sort();
    nodes.dedup();
    nodes
}

/// An ordered plan of steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The steps, each the nodes taken out of service together, in order.
    pub steps: Vec<Vec<NodeId>>,
}

impl Plan {
    /// How many nodes the plan upgrades.
    pub fn node_count(&self) -> usize {
        self.steps.iter().map(Vec::len).sum()
    }
}

/// Plans CRUS's procedure: `nodes` in inventory order, in steps of at most `step_size`.
pub fn plan(nodes: Vec<NodeId>, step_size: u32) -> Plan {
    let step_size = usize::try_from(step_size.max(1)).unwrap_or(usize::MAX);
    Plan {
        steps: inventory_order(nodes)
            .chunks(step_size)
            .map(<[NodeId]>::to_vec)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_sorted_deduplicated_and_bounded() {
        let nodes: Vec<NodeId> = [
            "x1000c0s1b0n0",
            "x1000c0s0b0n1",
            "x1000c0s0b0n0",
            "x1000c0s0b0n1",
            "x1000c0s10b0n0",
        ]
        .into_iter()
        .map(NodeId::from)
        .collect();
        let plan = plan(nodes, 2);
        let names: Vec<Vec<&str>> = plan
            .steps
            .iter()
            .map(|step| step.iter().map(NodeId::as_str).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["x1000c0s0b0n0", "x1000c0s0b0n1"],
                vec!["x1000c0s1b0n0", "x1000c0s10b0n0"]
            ]
        );
        assert_eq!(plan.node_count(), 4);
    }

    #[test]
    fn same_input_gives_the_same_plan() {
        let nodes: Vec<NodeId> = (0..50)
            .rev()
            .map(|n| NodeId::new(format!("nid{n:06}")))
            .collect();
        assert_eq!(plan(nodes.clone(), 7), plan(nodes, 7));
    }

    #[test]
    fn a_zero_step_size_is_treated_as_one() {
        let plan = plan(vec![NodeId::from("a"), NodeId::from("b")], 0);
        assert_eq!(plan.steps.len(), 2);
    }
}
