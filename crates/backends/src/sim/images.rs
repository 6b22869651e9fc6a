//! The image each simulated node runs (`skip_matching`, issue 21): the
//! template of its latest boot through the boot orchestrator that came
//! back, as a boot service records what it booted a node into. Tests and
//! demos set it directly to stand for boots made before the simulation.

use crus_core::ports::NodeImage;
use crus_core::{NodeId, Result};

use super::SimCluster;
use super::model::Model;

impl Model {
    /// The image each of `nodes` runs, in order; unknown nodes are an error
    /// (the orchestrator knows every node of the cluster).
    pub(super) fn current_images(&self, nodes: &[NodeId]) -> Result<Vec<NodeImage>> {
        let indexes = self.indexes(nodes)?;
        Ok(indexes
            .into_iter()
            .map(|index| NodeImage {
                node: self.nodes[index].id.clone(),
                image: self.nodes[index].image.clone(),
            })
            .collect())
    }
}

impl SimCluster {
    /// `node` runs `image` now, as if booted into it before (an earlier,
    /// partial session, or an administrator's boot).
    pub async fn set_image(&self, node: &NodeId, image: &str) -> Result<()> {
        let node = node.clone();
        let image = image.to_string();
        self.change(move |model| {
            let index = model.indexes(std::slice::from_ref(&node))?[0];
            model.nodes[index].image = Some(image);
            model.after_change();
            Ok(())
        })
        .await
    }

    /// The image `node` runs now, if the cluster has the node and knows it.
    pub fn image_of(&self, node: &NodeId) -> Option<String> {
        let model = self.lock();
        let index = model.index(node)?;
        model.nodes[index].image.clone()
    }
}
