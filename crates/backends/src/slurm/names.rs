//! How crus node ids (xnames, or whatever the inventory calls nodes) become
//! the names Slurm knows them by.

use std::collections::HashMap;

use crus_core::node::NodeId;

use super::command::SlurmError;

/// How crus node ids become Slurm node names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NodeNaming {
    /// The node id is the Slurm node name.
    #[default]
    Identity,
    /// Slurm names nodes `nid` + the six-digit NID (`nid000042`), as on Cray
    /// EX systems; the map gives each node id's (xname's) NID, filled by the
    /// caller from its inventory. A node id missing from the map is treated
    /// as a node Slurm does not know.
    NidFromInventory(HashMap<NodeId, u32>),
}

/// Node id → Slurm node name, and back for the node lists of jobs.
#[derive(Debug, Clone)]
pub(crate) enum Names {
    Identity,
    Mapped(HashMap<NodeId, String>),
}

impl Names {
    pub(crate) fn new(naming: &NodeNaming) -> Self {
        match naming {
            NodeNaming::Identity => Names::Identity,
            NodeNaming::NidFromInventory(nids) => Names::Mapped(
                nids.iter()
                    .map(|(node, nid)| (node.clone(), format!("nid{nid:06}")))
                    .collect(),
            ),
        }
    }

    /// The node id of Slurm node `name`, if it is one of crus's nodes.
    pub(crate) fn node_id(&self, name: &str) -> Option<NodeId> {
        match self {
            Names::Identity => Some(NodeId::from(name)),
            Names::Mapped(to_slurm) => to_slurm
                .iter()
                .find(|(_, slurm)| slurm.as_str() == name)
                .map(|(node, _)| node.clone()),
        }
    }

    pub(crate) fn slurm_name(&self, node: &NodeId) -> Option<String> {
        match self {
            Names::Identity => Some(node.as_str().to_string()),
            Names::Mapped(to_slurm) => to_slurm.get(node).cloned(),
        }
    }

    /// Slurm names of `nodes`, refusing ids Slurm cannot know or parse.
    pub(crate) fn slurm_names(&self, nodes: &[NodeId]) -> Result<Vec<String>, SlurmError> {
        nodes
            .iter()
            .map(|node| {
                let name = self
                    .slurm_name(node)
                    .ok_or_else(|| SlurmError::UnknownNode(node.to_string()))?;
                // A comma or blank would split the NodeName= list; `=` would
                // be read as another key.
                if name.is_empty()
                    || name
                        .chars()
                        .any(|c| c == ',' || c == '=' || c.is_whitespace())
                {
                    return Err(SlurmError::InvalidName(name));
                }
                Ok(name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nids_become_six_digit_names() {
        let names = Names::new(&NodeNaming::NidFromInventory(HashMap::from([(
            NodeId::from("x1000c0s0b0n0"),
            42,
        )])));
        assert_eq!(
            names.slurm_name(&NodeId::from("x1000c0s0b0n0")).as_deref(),
            Some("nid000042")
        );
        assert_eq!(names.slurm_name(&NodeId::from("x1000c0s0b0n1")), None);
    }

    #[test]
    fn names_that_would_break_the_node_list_are_refused() {
        let names = Names::new(&NodeNaming::Identity);
        for bad in ["a,b", "a b", "a=b", ""] {
            assert!(
                matches!(
                    names.slurm_names(&[NodeId::from(bad)]),
                    Err(SlurmError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            names.slurm_names(&[NodeId::from("nid000001")]).ok(),
            Some(vec!["nid000001".to_string()])
        );
    }
}
