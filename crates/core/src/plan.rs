//! The order a session takes its nodes in: the one planning rule the rollout
//! (its snapshot), admission (the nodes claimed) and dry runs share. Steps
//! themselves are the rollout's to make, as it runs (a step may be cut
//! short by the failure budget, a hold or a window), so there is no
//! separate planner to drift from it.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_sorted_by_topology_and_deduplicated() {
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
        let names: Vec<String> = inventory_order(nodes)
            .iter()
            .map(|node| node.as_str().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "x1000c0s0b0n0",
                "x1000c0s0b0n1",
                "x1000c0s1b0n0",
                "x1000c0s10b0n0"
            ]
        );
    }

    #[test]
    fn the_same_nodes_in_any_order_give_the_same_order() {
        let nodes: Vec<NodeId> = (0..50)
            .rev()
            .map(|n| NodeId::new(format!("nid{n:06}")))
            .collect();
        let mut shuffled = nodes.clone();
        shuffled.rotate_left(17);
        assert_eq!(inventory_order(nodes), inventory_order(shuffled));
    }
}
