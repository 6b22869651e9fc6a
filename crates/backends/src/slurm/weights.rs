//! Node scheduling weights in Slurm (`steer_jobs`): read from
//! `scontrol -o show node` (`Weight=`), set with
//! `scontrol update NodeName=<names> Weight=<weight>`.
//!
//! Slurm gives a job the lowest-weight nodes that satisfy it. A weight set
//! with `scontrol update` lives in `slurmctld`'s memory only: a restart of
//! `slurmctld` (and `scontrol reconfigure`) puts back `slurm.conf`'s, which
//! is why the rollout reads the weights it raised back and sets them again.

use std::collections::{BTreeMap, HashMap};

use crus_core::error::{Error, Result};
use crus_core::node::NodeId;

use super::parse::show_node_field;
use super::{BACKEND, SlurmWorkloadManager, arguments};

impl SlurmWorkloadManager {
    /// The `Weight=` of each of `nodes`, in order; a node Slurm does not
    /// know is [`Error::NotFound`].
    pub(super) async fn read_weights(&self, nodes: &[NodeId]) -> Result<Vec<u32>> {
        let names = self.names.slurm_names(nodes)?;
        let output = self
            .commands
            .run("scontrol", &arguments(&["-o", "show", "node"]))
            .await?;
        let weights = parse_weights(&output);
        names
            .iter()
            .map(|name| match weights.get(name.as_str()) {
                Some(Some(weight)) => Ok(*weight),
                Some(None) => Err(Error::Unavailable {
                    backend: BACKEND,
                    message: format!(
                        "scontrol show node printed no readable Weight= for node {name}"
                    ),
                }),
                None => Err(Error::not_found(format!("node '{name}' in Slurm"))),
            })
            .collect()
    }

    /// Sets each node's weight: one `scontrol update` per distinct weight.
    pub(super) async fn write_weights(&self, weights: &[(NodeId, u32)]) -> Result<()> {
        let mut by_weight: BTreeMap<u32, Vec<NodeId>> = BTreeMap::new();
        for (node, weight) in weights {
            by_weight.entry(*weight).or_default().push(node.clone());
        }
        for (weight, nodes) in by_weight {
            let names = self.names.slurm_names(&nodes)?;
            let args = vec![
                "update".to_string(),
                format!("NodeName={}", names.join(",")),
                format!("Weight={weight}"),
            ];
            self.commands.run("scontrol", &args).await?;
        }
        Ok(())
    }
}

/// Each node's `Weight=` from `scontrol -o show node`, by Slurm name
/// (`None` when the line has no readable weight).
fn parse_weights(output: &str) -> HashMap<&str, Option<u32>> {
    show_node_field(output, "Weight=")
        .map(|(name, weight)| (name, weight.and_then(|weight| weight.parse().ok())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_read_per_node_and_a_reason_cannot_fake_one() {
        let output = "\
NodeName=c1 Arch=x86_64 CoresPerSocket=1 State=IDLE Weight=1 Owner=N/A
NodeName=c2 Arch=x86_64 State=IDLE+DRAIN Weight=1000001 Owner=N/A Reason=Weight=7 [root@2026-12-06T10:00:00]
NodeName=c3 Arch=x86_64 State=DOWN Reason=no weight here
";
        let weights = parse_weights(output);
        assert_eq!(weights["c1"], Some(1));
        assert_eq!(weights["c2"], Some(1_000_001));
        assert_eq!(weights["c3"], None);
        assert_eq!(weights.len(), 3);
    }
}
