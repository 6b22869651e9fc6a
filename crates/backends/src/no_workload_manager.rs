//! `NoWorkloadManager`: the workload manager of a site that has none
//! (`workload_manager = "none"`): nodes never run jobs crus knows of, so
//! draining is immediate and a booted node is back as soon as the boot
//! orchestrator says so.

use async_trait::async_trait;
use crus_core::NodeId;
use crus_core::Result;
use crus_core::ports::{WorkloadManager, WorkloadNode, WorkloadState};

/// A workload manager that is not there: every node reads as drained and
/// responding, and drain, resume and fail change nothing.
///
/// Use it only where nothing else schedules work on the nodes; otherwise a
/// node would be rebooted under running jobs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWorkloadManager;

#[async_trait]
impl WorkloadManager for NoWorkloadManager {
    async fn drain(&self, _nodes: &[NodeId], _reason: &str) -> Result<()> {
        Ok(())
    }

    async fn resume(&self, _nodes: &[NodeId]) -> Result<()> {
        Ok(())
    }

    async fn fail(&self, _nodes: &[NodeId], _reason: &str) -> Result<()> {
        Ok(())
    }

    // Every node reads drained, so a capacity floor would count every node
    // crus has not taken as out of service and hold for ever.
    fn availability_supported(&self) -> Result<()> {
        Err(crus_core::Error::NotSupported {
            backend: "workload_manager = \"none\"",
            operation: "reporting which nodes are in service",
        })
    }

    // Named, so a session asking for image features is told which backend
    // cannot set them.
    fn features_supported(&self) -> Result<()> {
        Err(crus_core::Error::NotSupported {
            backend: "workload_manager = \"none\"",
            operation: "setting node features",
        })
    }

    async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>> {
        Ok(nodes
            .iter()
            .map(|node| WorkloadNode {
                node: node.clone(),
                state: WorkloadState::Drained,
                responding: true,
                jobs_end_by: None,
                reason: None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_node_is_quiet_and_answering() {
        let manager = NoWorkloadManager;
        let nodes = [NodeId::from("a"), NodeId::from("b")];
        manager.drain(&nodes, "crus:x").await.unwrap();
        let states = manager.node_states(&nodes).await.unwrap();
        assert_eq!(states.len(), 2);
        assert!(
            states
                .iter()
                .all(|node| node.state.is_quiet() && node.responding)
        );
        assert_eq!(states[1].node, nodes[1]);
    }

    /// Every node reads drained, so a capacity floor is refused at admission.
    #[test]
    fn it_cannot_report_availability_and_says_which_backend_it_is() {
        match NoWorkloadManager.availability_supported() {
            Err(crus_core::Error::NotSupported { backend, .. }) => {
                assert_eq!(backend, "workload_manager = \"none\"");
            }
            other => panic!("expected not supported, got {other:?}"),
        }
    }
}
