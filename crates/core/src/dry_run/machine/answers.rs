//! The engine's actions, answered as the real ports would at the virtual
//! time of the run.

use super::Machine;
use crate::dry_run::outlook::JobShape;
use crate::node::NodeId;
use crate::ports::{
    BootHandle, NodeBootState, NodeBootStatus, NodeImage, WorkloadNode, WorkloadState,
};
use crate::rollout::{Action, ActionOutput, DEFAULT_WEIGHT};
use crate::time::Timestamp;

impl Machine {
    /// The engine's `action` at `now`, answered as the real ports would.
    pub fn answer(&mut self, action: &Action, now: Timestamp) -> ActionOutput {
        match action {
            Action::ReadStartingGroup { .. } => ActionOutput::Members(self.ids.clone()),
            // A forecast counts no time for hooks: they succeed at once.
            Action::RunHook { .. } => ActionOutput::HookRan(None),
            // As the boot orchestrator told them when the plan was asked
            // for (a node it does not know runs an unknown image).
            Action::ReadCurrentImages { nodes, .. } => ActionOutput::Images(
                nodes
                    .iter()
                    .map(|node| NodeImage {
                        node: node.clone(),
                        image: self.images.get(node).cloned(),
                    })
                    .collect(),
            ),
            Action::PrepareGroups { .. } => ActionOutput::GroupsPrepared {
                cleared_failed: Vec::new(),
                cleared_upgrading: Vec::new(),
            },
            Action::ObserveWorkload { nodes, .. } => {
                ActionOutput::Workload(nodes.iter().map(|node| self.observe(node, now)).collect())
            }
            Action::Drain { nodes, .. } => {
                for node in nodes {
                    if let Some(&position) = self.index.get(node) {
                        let busy = self.nodes[position].job.is_some();
                        let node = &mut self.nodes[position];
                        if !node.drained {
                            node.drained = true;
                            node.trace.drained_at = Some(now);
                            node.trace.quiet_at = (!busy).then_some(now);
                            self.touched(position, now);
                        }
                    }
                }
                ActionOutput::Done
            }
            Action::StartBoot { request, .. } => {
                let spread = self.settings.boot_spread.clamp(0.0, 1.0);
                let mut latest = now;
                let mut booted = Vec::with_capacity(request.nodes.len());
                for node in &request.nodes {
                    let factor = 1.0 - spread + 2.0 * spread * self.draws.unit();
                    let back = now + self.settings.boot_time.mul_f64(factor);
                    latest = latest.max(back);
                    self.markers.insert(back);
                    if !self.settings.soak.is_zero() {
                        self.markers.insert(back + self.settings.soak);
                    }
                    let position = self.index.get(node).copied();
                    booted.push((node.clone(), position));
                    if let Some(position) = position {
                        let node = &mut self.nodes[position];
                        node.back_at = Some(back);
                        node.trace.boot_at = Some(now);
                        node.trace.back_at = Some(back);
                        // It reads as back, quiet, from then on.
                        self.touched(position, back);
                    }
                }
                self.boots.insert(request.key.clone(), booted);
                ActionOutput::BootStarted(BootHandle {
                    key: request.key.clone(),
                    id: request.key.clone(),
                })
            }
            Action::ObserveBoot { handle, .. } => {
                let Some(mut nodes) = self.boots.remove(&handle.key) else {
                    return ActionOutput::BootStatus(Vec::new());
                };
                let statuses = nodes
                    .iter()
                    .map(|(node, position)| NodeBootStatus {
                        node: node.clone(),
                        state: if self.is_back(*position, now) {
                            NodeBootState::Ok
                        } else {
                            NodeBootState::InProgress
                        },
                    })
                    .filter(|status| !self.finished_boots_only || status.state == NodeBootState::Ok)
                    .collect();
                if self.finished_boots_only {
                    // Listed back once: the next reads leave them out.
                    nodes.retain(|(_, position)| !self.is_back(*position, now));
                }
                self.boots.insert(handle.key.clone(), nodes);
                ActionOutput::BootStatus(statuses)
            }
            Action::RequeueJobs { nodes } => {
                for node in nodes {
                    if let Some(&position) = self.index.get(node)
                        && let Some(job) = self.nodes[position].job
                    {
                        let shape = JobShape {
                            nodes: self.jobs[job].nodes.len(),
                            limit: self.jobs[job].ends_by.map(|by| by.saturating_since(now)),
                            ran: Some(self.jobs[job].ends.saturating_since(now)),
                        };
                        self.ends.remove(&(self.jobs[job].ends, job));
                        self.end_job(job);
                        let waiting = self.waiting(shape);
                        self.queue.push_front(waiting);
                    }
                }
                self.schedule();
                ActionOutput::Done
            }
            Action::Resume { nodes, .. } => {
                for node in nodes {
                    if let Some(&position) = self.index.get(node) {
                        let node = &mut self.nodes[position];
                        node.drained = false;
                        node.unavailable = false;
                        node.back_at = None;
                        self.touched(position, now);
                    }
                }
                self.schedule();
                ActionOutput::Done
            }
            // Every node reads as Slurm's default weight until one is set.
            Action::ReadWeights { nodes } => ActionOutput::Weights(
                nodes
                    .iter()
                    .map(|node| {
                        let weight = self
                            .index
                            .get(node)
                            .map_or(DEFAULT_WEIGHT, |&position| self.nodes[position].weight);
                        (node.clone(), weight)
                    })
                    .collect(),
            ),
            Action::SetWeights { weights } => {
                for (node, weight) in weights {
                    if let Some(&position) = self.index.get(node) {
                        self.nodes[position].weight = *weight;
                        self.weights_set = true;
                    }
                }
                ActionOutput::Done
            }
            Action::Reserve { reservations } => {
                self.reserving = true;
                for (node, from) in reservations {
                    if let Some(&position) = self.index.get(node) {
                        self.nodes[position].reserved_from = Some(*from);
                    }
                }
                ActionOutput::Done
            }
            Action::ReadReservations { nodes } => ActionOutput::Reserved(
                nodes
                    .iter()
                    .filter(|node| {
                        self.index
                            .get(*node)
                            .is_some_and(|&position| self.nodes[position].reserved_from.is_some())
                    })
                    .cloned()
                    .collect(),
            ),
            Action::Unreserve { nodes } => {
                for node in nodes {
                    if let Some(&position) = self.index.get(node) {
                        self.nodes[position].reserved_from = None;
                    }
                }
                ActionOutput::Done
            }
            // Nor node features: every node reads as having none.
            Action::ReadFeatures { nodes } => ActionOutput::Features(
                nodes
                    .iter()
                    .map(|node| (node.clone(), Vec::new()))
                    .collect(),
            ),
            // A forecast assumes the site's alerts stay quiet.
            Action::CheckGates { gates } => ActionOutput::Gates(
                gates
                    .iter()
                    .map(|gate| crate::ports::GateVerdict {
                        gate: gate.describe(),
                        blocking: Vec::new(),
                        unreachable: None,
                    })
                    .collect(),
            ),
            // Put back out of service as its owner had it.
            Action::Restore { nodes, .. } => {
                for (node, _, _) in nodes {
                    if let Some(&position) = self.index.get(node) {
                        let node = &mut self.nodes[position];
                        node.unavailable = true;
                        node.back_at = None;
                        self.touched(position, now);
                    }
                }
                ActionOutput::Done
            }
            Action::MarkFailed { .. }
            | Action::PowerRestart { .. }
            | Action::SetFeatures { .. }
            | Action::ClearUpgradingGroup { .. } => ActionOutput::Done,
        }
    }

    /// Whether the node at `position` (if in the group) is back from its boot at `now`.
    pub(super) fn is_back(&self, position: Option<usize>, now: Timestamp) -> bool {
        position
            .and_then(|position| self.nodes[position].trace.back_at)
            .is_some_and(|at| at <= now)
    }

    pub(super) fn observe(&self, id: &NodeId, now: Timestamp) -> WorkloadNode {
        let Some(&position) = self.index.get(id) else {
            return WorkloadNode {
                node: id.clone(),
                state: WorkloadState::Unknown,
                responding: false,
                jobs_end_by: None,
                reason: None,
            };
        };
        let node = &self.nodes[position];
        let job = node.job.map(|job| &self.jobs[job]);
        let booted = node.back_at.is_some_and(|at| at <= now);
        let state = match (job.is_some(), node.drained || node.unavailable, booted) {
            // A node back from its boot is quiet and answers.
            (_, _, true) => WorkloadState::Idle,
            (true, true, false) => WorkloadState::Draining,
            (true, false, false) => WorkloadState::Allocated,
            (false, true, false) => WorkloadState::Drained,
            (false, false, false) => WorkloadState::Idle,
        };
        // Someone else's mark shows until the node is back from its boot
        // or resumed (a resume clears `unavailable`).
        let held = node.held.as_ref().filter(|_| node.unavailable && !booted);
        let state = match held {
            Some((WorkloadState::Down, _)) => WorkloadState::Down,
            _ => state,
        };
        WorkloadNode {
            node: id.clone(),
            state,
            responding: true,
            jobs_end_by: job.map(|job| job.ends_by.unwrap_or(job.ends)),
            reason: held.map(|(_, reason)| reason.clone()),
        }
    }
}
