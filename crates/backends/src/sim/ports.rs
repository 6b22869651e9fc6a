//! The four ports over the simulated cluster: what each call does to the
//! model, and the trait implementations on [`SimCluster`] that run them after
//! advancing the model to the clock's `now`.
//!
//! Every call is atomic: unknown ids are rejected before anything changes.
//! Calls that change the cluster go through [`SimCluster::change`], which
//! saves the state when the cluster has a state file.

use async_trait::async_trait;
use crus_core::ports::{
    BootHandle, BootOrchestrator, BootRequest, Inventory, NodeBootState, NodeBootStatus, NodeImage,
    PastJob, PendingJob, PowerControl, PowerOperation, PowerState, RunningJob, WorkloadManager,
    WorkloadNode, WorkloadQueue, WorkloadState,
};
use crus_core::{Error, NodeFacts, NodeId, Result, Timestamp};

use super::boots::BootRecord;
use super::cluster::SimCluster;
use super::model::Model;
use super::node::Condition;

/// How far back the simulated workload manager's accounting reports jobs
/// (as `sacct` would be asked for the last day).
pub(super) const QUEUE_HISTORY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Inventory.
impl Model {
    fn group_members(&self, label: &str) -> Result<Vec<NodeId>> {
        self.groups
            .get(label)
            .cloned()
            .ok_or_else(|| group_not_found(label))
    }

    fn create_group(&mut self, label: &str) -> Result<()> {
        if self.groups.contains_key(label) {
            return Err(Error::conflict(format!("group '{label}' exists already")));
        }
        self.groups.insert(label.to_string(), Vec::new());
        Ok(())
    }

    fn add_members(&mut self, label: &str, nodes: &[NodeId]) -> Result<()> {
        if !self.groups.contains_key(label) {
            return Err(group_not_found(label));
        }
        self.indexes(nodes)?;
        let members = self.groups.entry(label.to_string()).or_default();
        for node in nodes {
            if !members.contains(node) {
                members.push(node.clone());
            }
        }
        Ok(())
    }

    fn remove_members(&mut self, label: &str, nodes: &[NodeId]) -> Result<()> {
        let members = self
            .groups
            .get_mut(label)
            .ok_or_else(|| group_not_found(label))?;
        members.retain(|member| !nodes.contains(member));
        Ok(())
    }

    fn node_facts(&self, nodes: &[NodeId]) -> Result<Vec<NodeFacts>> {
        Ok(self
            .indexes(nodes)?
            .into_iter()
            .map(|index| self.nodes[index].facts())
            .collect())
    }
}

fn group_not_found(label: &str) -> Error {
    Error::not_found(format!("group '{label}'"))
}

/// Workload manager.
impl Model {
    fn drain(&mut self, nodes: &[NodeId], reason: &str) -> Result<()> {
        for index in self.indexes(nodes)? {
            let node = &mut self.nodes[index];
            node.drain_reason = Some(reason.to_string());
            // Slurm keeps one reason per node, the latest set, and a drain
            // leaves a FAIL mark in place: the failed node now shows the
            // drain's reason, and stays down until resumed.
            if node.fail_reason.is_some() {
                node.fail_reason = Some(reason.to_string());
            }
        }
        self.after_change();
        Ok(())
    }

    /// Puts the jobs on `nodes` back at the head of the queue, as Slurm's
    /// requeue does (they keep their submit time, so their wait counts).
    fn requeue_jobs(&mut self, nodes: &[NodeId]) -> Result<()> {
        for index in self.indexes(nodes)? {
            if let Some(number) = self.nodes[index].job {
                self.requeue_job(number);
            }
        }
        self.after_change();
        Ok(())
    }

    fn resume(&mut self, nodes: &[NodeId]) -> Result<()> {
        for index in self.indexes(nodes)? {
            let node = &mut self.nodes[index];
            node.drain_reason = None;
            node.fail_reason = None;
        }
        self.after_change();
        Ok(())
    }

    fn fail(&mut self, nodes: &[NodeId], reason: &str) -> Result<()> {
        for index in self.indexes(nodes)? {
            self.nodes[index].fail_reason = Some(reason.to_string());
        }
        self.after_change();
        Ok(())
    }

    /// The jobs running and queued, and those submitted in the last
    /// [`QUEUE_HISTORY`] (since the cluster was made, if later), as a
    /// workload manager's accounting reports them: a job's run time only
    /// once it has ended. Jobs still to be submitted are never shown.
    fn queue(&self) -> WorkloadQueue {
        let running = self
            .running
            .values()
            .map(|running| RunningJob {
                nodes: running
                    .nodes
                    .iter()
                    .map(|&index| self.nodes[index].id.clone())
                    .collect(),
                started: running.started,
                time_limit: running.job.requested_time,
            })
            .collect();
        let pending = self
            .queue
            .iter()
            .map(|job| PendingJob {
                nodes: u32::try_from(job.nodes).unwrap_or(u32::MAX),
                time_limit: job.requested_time,
                submitted: job.submitted,
            })
            .collect();
        let since = (self.now - QUEUE_HISTORY).max(self.started);
        // Submitted jobs that still wait or run have no run time yet.
        let unfinished: std::collections::HashSet<(Option<u64>, Timestamp, usize)> = self
            .queue
            .iter()
            .chain(self.running.values().map(|running| &running.job))
            .map(|job| (job.trace_id, job.submitted, job.nodes))
            .collect();
        let submitted = &self.arrivals[..self.next_arrival.min(self.arrivals.len())];
        let recent = submitted
            .iter()
            .rev()
            .take_while(|job| job.submitted >= since)
            .map(|job| PastJob {
                submitted: job.submitted,
                nodes: u32::try_from(job.nodes).unwrap_or(u32::MAX),
                time_limit: job.requested_time,
                run_time: if unfinished.contains(&(job.trace_id, job.submitted, job.nodes)) {
                    None
                } else {
                    job.run_time
                },
            })
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        WorkloadQueue {
            running,
            pending,
            recent,
            recent_since: Some(since),
        }
    }

    fn node_states(&self, nodes: &[NodeId]) -> Vec<WorkloadNode> {
        nodes
            .iter()
            .map(|id| match self.index(id) {
                None => WorkloadNode {
                    node: id.clone(),
                    state: WorkloadState::Unknown,
                    responding: false,
                    jobs_end_by: None,
                    reason: None,
                },
                Some(index) => {
                    let node = &self.nodes[index];
                    WorkloadNode {
                        node: id.clone(),
                        state: node.workload_state(),
                        responding: node.responding(),
                        jobs_end_by: node
                            .job
                            .and_then(|job| self.running.get(&job))
                            .and_then(|running| running.ends_by()),
                        reason: node.reason(),
                    }
                }
            })
            .collect()
    }
}

/// Boot orchestrator.
impl Model {
    fn start_boot(&mut self, request: &BootRequest) -> Result<BootHandle> {
        if let Some(record) = self.boots.get(&request.key) {
            return Ok(record.handle.clone());
        }
        if !self.templates.contains(&request.template) {
            return Err(Error::not_found(format!("template '{}'", request.template)));
        }
        let mut indexes = self.indexes(&request.nodes)?;
        let mut seen = std::collections::HashSet::new();
        indexes.retain(|&index| seen.insert(index));
        if indexes.is_empty() {
            return Err(Error::invalid(format!(
                "boot '{}' names no nodes",
                request.key
            )));
        }

        // Counted before any job is killed: one job may span several of these nodes.
        let with_jobs = indexes
            .iter()
            .filter(|&&index| self.nodes[index].job.is_some())
            .count();
        self.tally.reboots_with_running_jobs += with_jobs as u64;

        let handle = self.new_boot_handle(&request.key);
        self.boots.insert(
            request.key.clone(),
            BootRecord {
                handle: handle.clone(),
                template: request.template.clone(),
                started: self.now,
                cancelled: false,
                nodes: indexes
                    .iter()
                    .map(|&index| NodeBootStatus {
                        node: self.nodes[index].id.clone(),
                        state: NodeBootState::InProgress,
                    })
                    .collect(),
            },
        );
        let superseded = format!("superseded by boot '{}'", request.key);
        for (position, index) in indexes.into_iter().enumerate() {
            // Always two draws per node, whatever decides the outcome, so the
            // sequence of draws does not depend on the fault sets.
            let duration = self.draw_boot_duration();
            let fault_draw = self.rng.0.f64();
            let outcome = self.settings.faults.boot_outcome_with(
                &request.template,
                &self.nodes[index].id,
                fault_draw,
            );
            self.interrupt_boot(index, &superseded);
            self.nodes[index].boots += 1;
            self.tally.boots += 1;
            self.begin_boot(
                index,
                outcome,
                duration,
                Some((request.key.clone(), position)),
            );
        }
        self.after_change();
        Ok(handle)
    }

    fn boot_record(&self, handle: &BootHandle) -> Result<&BootRecord> {
        self.boots
            .get(&handle.key)
            .filter(|record| record.handle.id == handle.id)
            .ok_or_else(|| Error::not_found(format!("boot '{}' (id '{}')", handle.key, handle.id)))
    }

    fn cancel_boot(&mut self, handle: &BootHandle) -> Result<()> {
        self.boot_record(handle)?;
        if let Some(record) = self.boots.get_mut(&handle.key) {
            record.cancelled = true;
        }
        Ok(())
    }
}

/// Power control.
impl Model {
    fn power_state(&self, nodes: &[NodeId]) -> Result<Vec<PowerState>> {
        Ok(self
            .indexes(nodes)?
            .into_iter()
            .map(|index| self.nodes[index].power_state())
            .collect())
    }

    fn power(&mut self, nodes: &[NodeId], operation: PowerOperation) -> Result<()> {
        let indexes = self.indexes(nodes)?;
        self.tally.power_operations += indexes.len() as u64;
        if operation != PowerOperation::On {
            let with_jobs = indexes
                .iter()
                .filter(|&&index| self.nodes[index].job.is_some())
                .count();
            self.tally.reboots_with_running_jobs += with_jobs as u64;
        }
        for index in indexes {
            match operation {
                PowerOperation::On => {
                    if self.nodes[index].condition == Condition::Off {
                        self.restart(index);
                    }
                }
                PowerOperation::ForceOff | PowerOperation::GracefulShutdown => {
                    self.power_off(index);
                }
                PowerOperation::GracefulRestart | PowerOperation::ForceRestart => {
                    self.restart(index);
                }
            }
        }
        self.after_change();
        Ok(())
    }

    /// Restarts (or powers on) node `index`. A hung boot is not interrupted:
    /// the node boots the same image again, and the boot orchestrator's boot
    /// it belongs to learns how this attempt ends.
    fn restart(&mut self, index: usize) {
        let duration = self.draw_boot_duration();
        let outcome = self.settings.faults.restart_outcome(&self.nodes[index].id);
        let link = match &mut self.nodes[index].condition {
            Condition::Booting { boot, .. } => boot.take(),
            Condition::Up | Condition::BootFailed { .. } | Condition::Off => None,
        };
        self.begin_boot(index, outcome, duration, link);
    }

    fn power_off(&mut self, index: usize) {
        if self.nodes[index].condition == Condition::Off {
            return;
        }
        if let Some(job) = self.nodes[index].job {
            self.kill_job(job);
        }
        self.interrupt_boot(index, "powered off during boot");
        let node = &mut self.nodes[index];
        node.boot_generation += 1;
        node.condition = Condition::Off;
    }
}

#[async_trait]
impl Inventory for SimCluster {
    async fn group_members(&self, label: &str) -> Result<Vec<NodeId>> {
        self.lock().group_members(label)
    }

    async fn create_group(&self, label: &str) -> Result<()> {
        self.change(|model| model.create_group(label)).await
    }

    async fn add_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        self.change(|model| model.add_members(label, nodes)).await
    }

    async fn remove_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        self.change(|model| model.remove_members(label, nodes))
            .await
    }

    async fn node_facts(&self, nodes: &[NodeId]) -> Result<Vec<NodeFacts>> {
        self.lock().node_facts(nodes)
    }
}

#[async_trait]
impl WorkloadManager for SimCluster {
    async fn drain(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
        self.change(|model| model.drain(nodes, reason)).await
    }

    async fn resume(&self, nodes: &[NodeId]) -> Result<()> {
        self.change(|model| model.resume(nodes)).await
    }

    async fn fail(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
        self.change(|model| model.fail(nodes, reason)).await
    }

    async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>> {
        Ok(self.lock().node_states(nodes))
    }

    async fn requeue_jobs(&self, nodes: &[NodeId]) -> Result<()> {
        self.change(|model| model.requeue_jobs(nodes)).await
    }

    async fn queue(&self) -> Result<WorkloadQueue> {
        Ok(self.lock().queue())
    }

    async fn node_weights(&self, nodes: &[NodeId]) -> Result<Vec<u32>> {
        self.lock().node_weights(nodes)
    }

    async fn set_weights(&self, weights: &[(NodeId, u32)]) -> Result<()> {
        self.change(|model| model.set_weights(weights)).await
    }

    fn features_supported(&self) -> Result<()> {
        Ok(())
    }

    async fn node_features(&self, nodes: &[NodeId]) -> Result<Vec<Vec<String>>> {
        self.lock().node_features(nodes)
    }

    async fn set_features(&self, features: &[(NodeId, Vec<String>)]) -> Result<()> {
        self.change(|model| model.set_features(features)).await
    }

    fn reservations_supported(&self) -> Result<()> {
        Ok(())
    }

    async fn reserve_from(&self, reservations: &[(NodeId, Timestamp)]) -> Result<()> {
        self.change(|model| model.reserve_from(reservations)).await
    }

    async fn reserved_nodes(&self, nodes: &[NodeId]) -> Result<Vec<NodeId>> {
        self.lock().reserved_nodes(nodes)
    }

    async fn unreserve(&self, nodes: &[NodeId]) -> Result<()> {
        self.change(|model| model.unreserve(nodes)).await
    }
}

#[async_trait]
impl BootOrchestrator for SimCluster {
    async fn template_exists(&self, template: &str) -> Result<bool> {
        Ok(self.lock().templates.contains(template))
    }

    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
        self.change(|model| model.start_boot(request)).await
    }

    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        self.lock()
            .boot_record(handle)
            .map(|record| record.nodes.clone())
    }

    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        self.change(|model| model.cancel_boot(handle)).await
    }

    fn current_images_supported(&self) -> Result<()> {
        Ok(())
    }

    async fn current_images(&self, nodes: &[NodeId], template: &str) -> Result<Vec<NodeImage>> {
        let _ = template;
        self.lock().current_images(nodes)
    }
}

#[async_trait]
impl PowerControl for SimCluster {
    async fn power_state(&self, nodes: &[NodeId]) -> Result<Vec<PowerState>> {
        self.lock().power_state(nodes)
    }

    async fn power(&self, nodes: &[NodeId], operation: PowerOperation) -> Result<()> {
        self.change(|model| model.power(nodes, operation)).await
    }
}
