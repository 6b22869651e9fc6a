//! The simulated cluster's administrator: drains, downs and returns nodes
//! with reasons of their own, as `scontrol update` would, so tests can show
//! that crus never undoes them (issue 21). One reason per node, the latest
//! set, as Slurm keeps it.

use crus_core::ports::WorkloadState;
use crus_core::{NodeId, Result};

use super::SimCluster;

impl SimCluster {
    /// An administrator drains `node` with `reason` (`State=DRAIN`): its job
    /// runs on, no new job starts there.
    pub async fn admin_drain(&self, node: &NodeId, reason: &str) -> Result<()> {
        let node = node.clone();
        let reason = reason.to_string();
        self.change(move |model| {
            let index = model.indexes(std::slice::from_ref(&node))?[0];
            model.nodes[index].drain_reason = Some(reason.clone());
            if model.nodes[index].fail_reason.is_some() {
                model.nodes[index].fail_reason = Some(reason);
            }
            model.after_change();
            Ok(())
        })
        .await
    }

    /// An administrator sets `node` down with `reason` (`State=DOWN`): its
    /// job is killed and it stays down until returned to service.
    pub async fn admin_down(&self, node: &NodeId, reason: &str) -> Result<()> {
        let node = node.clone();
        let reason = reason.to_string();
        self.change(move |model| {
            let index = model.indexes(std::slice::from_ref(&node))?[0];
            if let Some(job) = model.nodes[index].job {
                model.kill_job(job);
            }
            model.nodes[index].fail_reason = Some(reason.clone());
            if model.nodes[index].drain_reason.is_some() {
                model.nodes[index].drain_reason = Some(reason);
            }
            model.after_change();
            Ok(())
        })
        .await
    }

    /// An administrator returns `node` to service (`State=RESUME`): its drain
    /// and down marks and their reason are gone, as Slurm clears them.
    pub async fn admin_return(&self, node: &NodeId) -> Result<()> {
        let node = node.clone();
        self.change(move |model| {
            let index = model.indexes(std::slice::from_ref(&node))?[0];
            model.nodes[index].drain_reason = None;
            model.nodes[index].fail_reason = None;
            model.after_change();
            Ok(())
        })
        .await
    }

    /// The state and the reason the workload manager shows for `node`, if
    /// the cluster has it.
    pub fn workload_view(&self, node: &NodeId) -> Option<(WorkloadState, Option<String>)> {
        let model = self.lock();
        let index = model.index(node)?;
        let record = &model.nodes[index];
        Some((record.workload_state(), record.reason()))
    }
}
