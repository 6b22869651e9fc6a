//! Node features in Slurm (issue 20's image tags): read from
//! `scontrol -o show node` (`AvailableFeatures=`), set with
//! `scontrol update NodeName=<names> AvailableFeatures=<list> ActiveFeatures=<list>`.
//!
//! Both lists are set together: without a node-features plugin Slurm keeps
//! them equal, and a job's `--constraint` is matched against the active one.

use std::collections::{BTreeMap, HashMap};

use crus_core::error::{Error, Result};
use crus_core::node::NodeId;

use super::parse::show_node_field;
use super::{BACKEND, SlurmWorkloadManager, arguments};

impl SlurmWorkloadManager {
    /// The `AvailableFeatures=` of each of `nodes`, in order; a node Slurm
    /// does not know is [`Error::NotFound`].
    pub(super) async fn read_features(&self, nodes: &[NodeId]) -> Result<Vec<Vec<String>>> {
        let names = self.names.slurm_names(nodes)?;
        let output = self
            .commands
            .run("scontrol", &arguments(&["-o", "show", "node"]))
            .await?;
        let features = parse_features(&output);
        names
            .iter()
            .map(|name| match features.get(name.as_str()) {
                Some(Some(list)) => Ok(list.clone()),
                Some(None) => Err(Error::Unavailable {
                    backend: BACKEND,
                    message: format!(
                        "scontrol show node printed no AvailableFeatures= for node {name}"
                    ),
                }),
                None => Err(Error::not_found(format!("node '{name}' in Slurm"))),
            })
            .collect()
    }

    /// Sets each node's features: one `scontrol update` per distinct list.
    pub(super) async fn write_features(&self, features: &[(NodeId, Vec<String>)]) -> Result<()> {
        let mut by_list: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        for (node, list) in features {
            if let Some(bad) = list.iter().find(|feature| !is_feature_name(feature)) {
                return Err(Error::invalid(format!(
                    "'{bad}' cannot be a Slurm node feature: use letters, digits, '_', '-' and '.'"
                )));
            }
            by_list
                .entry(features_value(list))
                .or_default()
                .push(node.clone());
        }
        for (value, nodes) in by_list {
            let names = self.names.slurm_names(&nodes)?;
            let args = vec![
                "update".to_string(),
                format!("NodeName={}", names.join(",")),
                format!("AvailableFeatures={value}"),
                format!("ActiveFeatures={value}"),
            ];
            self.commands.run("scontrol", &args).await?;
        }
        Ok(())
    }
}

/// How a list is written to `scontrol`: comma-separated; an empty list is
/// an empty value, which Slurm takes as "no features".
fn features_value(list: &[String]) -> String {
    list.join(",")
}

/// Whether `feature` is a name Slurm accepts in a feature list and in a
/// `--constraint` expression without quoting (no operator, separator or
/// space).
pub(super) fn is_feature_name(feature: &str) -> bool {
    !feature.is_empty()
        && feature
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Each node's `AvailableFeatures=` from `scontrol -o show node`, by Slurm
/// name (`(null)` is no feature; `None` when the line has no such field).
fn parse_features(output: &str) -> HashMap<&str, Option<Vec<String>>> {
    show_node_field(output, "AvailableFeatures=")
        .map(|(name, features)| {
            let features = features.map(|value| {
                if value == "(null)" {
                    Vec::new()
                } else {
                    value
                        .split(',')
                        .filter(|feature| !feature.is_empty())
                        .map(str::to_string)
                        .collect()
                }
            });
            (name, features)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_read_per_node_and_a_reason_cannot_fake_them() {
        let output = "\
NodeName=c1 Arch=x86_64 AvailableFeatures=(null) ActiveFeatures=(null) State=IDLE
NodeName=c2 AvailableFeatures=gpu,img_sles15 ActiveFeatures=gpu,img_sles15 State=IDLE+DRAIN Reason=AvailableFeatures=x [root@2026-12-06T10:00:00]
NodeName=c3 State=DOWN Reason=AvailableFeatures=fake
";
        let features = parse_features(output);
        assert_eq!(features["c1"], Some(vec![]));
        assert_eq!(
            features["c2"],
            Some(vec!["gpu".to_string(), "img_sles15".to_string()])
        );
        assert_eq!(features["c3"], None);
    }

    #[test]
    fn only_plain_names_are_features() {
        for good in ["img_sles15", "gpu", "img_cos-2.5"] {
            assert!(is_feature_name(good), "{good}");
        }
        for bad in ["", "a b", "a,b", "a&b", "a|b", "img:x", "(x)", "a*2", "a!"] {
            assert!(!is_feature_name(bad), "{bad}");
        }
    }
}
