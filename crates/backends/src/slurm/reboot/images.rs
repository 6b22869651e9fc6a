//! The image a node runs, for `skip_matching` with `slurm-reboot`: "the
//! image recorded by the last crus boot".
//!
//! Slurm's reboot keeps no record of what a node booted, and the
//! `RebootProgram` is the site's, so crus reads the record it keeps in
//! Slurm itself: the node feature `img_<template>` (issue 20's image tag,
//! [`crus_core::rollout::image_feature`]), which a session writes on the
//! nodes it upgraded. It is Slurm's state, so it survives a crash of crus
//! (and of slurmctld, which saves node features in its state), and jobs can
//! ask for it (`--constraint=img_<template>`). Nothing is written here: the
//! engine owns the tag, and one writer keeps it consistent.
//!
//! What it can tell:
//! - `img_<template>` of the asked template: the node runs it.
//! - another `img_*` feature: it runs another image (reported by its tag,
//!   which never equals a template, so the node is upgraded).
//! - no `img_*` feature: nobody recorded one (never upgraded by crus, or
//!   image tags were off): unknown, so the node is upgraded.
//!
//! The tag turns every character other than a letter, a digit or `_` into
//! `_`, so templates differing only there (`compute-2.5`, `compute_2_5`)
//! share one tag and cannot be told apart: a site that names templates so
//! should not use `skip_matching` with `slurm-reboot`.

use std::collections::HashMap;

use crus_core::error::{Error, Result};
use crus_core::node::NodeId;
use crus_core::ports::NodeImage;
use crus_core::rollout::{IMAGE_FEATURE_PREFIX, image_feature};

use super::super::parse::show_node_field;

/// The image each of `nodes` (with their Slurm names) runs, by the image
/// features `scontrol -o show node` printed in `output`; NotFound for a
/// node Slurm does not list.
pub(crate) fn images_from_features(
    output: &str,
    nodes: &[(NodeId, String)],
    template: &str,
) -> Result<Vec<NodeImage>> {
    let features: HashMap<&str, Option<&str>> =
        show_node_field(output, "AvailableFeatures=").collect();
    let wanted = image_feature(template);
    nodes
        .iter()
        .map(|(node, name)| {
            let listed = features
                .get(name.as_str())
                .ok_or_else(|| Error::not_found(format!("node '{name}' in Slurm")))?;
            let tag = listed
                .unwrap_or_default()
                .split(',')
                .find(|feature| feature.starts_with(IMAGE_FEATURE_PREFIX));
            let image = match tag {
                Some(tag) if tag == wanted => Some(template.to_string()),
                Some(other) => Some(other.to_string()),
                None => None,
            };
            Ok(NodeImage {
                node: node.clone(),
                image,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW_NODE: &str = "\
NodeName=node001 Arch=x86_64 AvailableFeatures=gpu,img_compute_2_5 ActiveFeatures=gpu,img_compute_2_5 State=IDLE Partitions=batch Reason=img_x said [root@1]
NodeName=node002 Arch=x86_64 AvailableFeatures=img_compute_2_4 ActiveFeatures=img_compute_2_4 State=IDLE Partitions=batch
NodeName=node003 Arch=x86_64 AvailableFeatures=(null) ActiveFeatures=(null) State=IDLE Partitions=batch
NodeName=node004 Arch=x86_64 AvailableFeatures=gpu ActiveFeatures=gpu State=IDLE Partitions=batch
";

    fn nodes(names: &[&str]) -> Vec<(NodeId, String)> {
        names
            .iter()
            .map(|name| (NodeId::from(*name), name.to_string()))
            .collect()
    }

    #[test]
    fn the_image_tag_tells_the_image_and_its_absence_tells_nothing() {
        let images = images_from_features(
            SHOW_NODE,
            &nodes(&["node001", "node002", "node003", "node004"]),
            "compute-2.5",
        )
        .unwrap();
        let found: Vec<Option<&str>> = images.iter().map(|i| i.image.as_deref()).collect();
        assert_eq!(
            found,
            [Some("compute-2.5"), Some("img_compute_2_4"), None, None]
        );
        assert_eq!(images[0].node, NodeId::from("node001"));
    }

    #[test]
    fn a_node_slurm_does_not_list_is_not_found() {
        let error = images_from_features(SHOW_NODE, &nodes(&["node009"]), "a").unwrap_err();
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    }
}
