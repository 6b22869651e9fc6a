//! Node features in the simulated workload manager, as Slurm has them for
//! issue 20's image tags: each node has a list (none by default), set as a
//! whole (Slurm's `AvailableFeatures` and `ActiveFeatures` together) and read
//! back in the order set. The simulated jobs ask for no feature, so features
//! change no placement here; they are kept so a session's tags and their
//! restoration can be checked.

use crus_core::{NodeId, Result};

use super::SimCluster;
use super::model::Model;

impl Model {
    /// The features of each of `nodes`, in order.
    pub(super) fn node_features(&self, nodes: &[NodeId]) -> Result<Vec<Vec<String>>> {
        Ok(self
            .indexes(nodes)?
            .into_iter()
            .map(|index| self.nodes[index].features.clone())
            .collect())
    }

    /// Sets each node's features to the list given.
    pub(super) fn set_features(&mut self, features: &[(NodeId, Vec<String>)]) -> Result<()> {
        let ids: Vec<NodeId> = features.iter().map(|(id, _)| id.clone()).collect();
        let indexes = self.indexes(&ids)?;
        for (index, (_, list)) in indexes.into_iter().zip(features) {
            self.nodes[index].features = list.clone();
        }
        Ok(())
    }
}

impl SimCluster {
    /// The features of `node` now, for tests.
    pub fn features_of(&self, node: &NodeId) -> Option<Vec<String>> {
        self.lock()
            .node_features(std::slice::from_ref(node))
            .ok()?
            .pop()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crus_core::Timestamp;
    use crus_core::clock::TokioClock;
    use crus_core::ports::WorkloadManager;

    use super::super::{SimConfig, Workload};
    use super::*;

    #[tokio::test]
    async fn features_are_set_and_read_back_per_node() {
        let config = SimConfig {
            nodes: 2,
            workload: Workload::Jobs(Vec::new()),
            ..SimConfig::default()
        };
        let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_700_000_000)));
        let cluster = SimCluster::new(config, clock).unwrap();
        let ids = cluster.node_ids();
        assert_eq!(
            cluster.node_features(&ids).await.unwrap(),
            vec![Vec::<String>::new(), Vec::new()]
        );
        let tagged = vec!["gpu".to_string(), "img_new".to_string()];
        cluster
            .set_features(&[(ids[1].clone(), tagged.clone())])
            .await
            .unwrap();
        assert_eq!(cluster.features_of(&ids[1]), Some(tagged));
        assert_eq!(cluster.features_of(&ids[0]), Some(Vec::new()));
        let unknown = cluster
            .set_features(&[(NodeId::from("nope"), vec![])])
            .await;
        assert!(unknown.is_err());
    }
}
