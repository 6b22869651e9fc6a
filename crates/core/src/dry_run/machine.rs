//! The machine as one sampled run of a dry run imagines it: the starting
//! group's nodes, the jobs running on them (each ending at a drawn time
//! within its limit), the queue and the jobs still to arrive, scheduled first
//! come first served with EASY backfilling on the lowest-numbered free nodes,
//! and the boots the engine starts. It answers the engine's actions as the
//! real ports would, at the virtual time of the run.
//!
//! Policy effects the engine applies itself (order, steps, windows, failure
//! domains, canary, drain timeouts) need nothing here. Effects that change
//! what the workload manager does (a scheduling weight on nodes about to be
//! taken, draining ahead of a node's turn, a capacity floor, a rate limit)
//! belong in [`Machine::schedule`] and [`Machine::answer`] once the policy has
//! them: this is the hook.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use super::outlook::{Arrivals, Draws, JobShape, Outlook};
use crate::node::NodeId;
use crate::ports::{
    BootHandle, NodeBootState, NodeBootStatus, NodeImage, WorkloadNode, WorkloadQueue,
    WorkloadState,
};
use crate::rollout::{Action, ActionOutput};
use crate::time::Timestamp;

/// What is fixed about a sampled run besides the outlook.
#[derive(Debug, Clone)]
pub(super) struct MachineSettings {
    /// The mean boot time.
    pub boot_time: Duration,
    /// Boots vary uniformly by this share either way.
    pub boot_spread: f64,
    /// When jobs with no known end end, from the start.
    pub unknown_job_end: Duration,
    /// The policy's health soak.
    pub soak: Duration,
}

/// One node of the group.
#[derive(Debug, Clone, Default)]
struct Node {
    /// The job on it, by index into [`Machine::jobs`].
    job: Option<usize>,
    /// Out of service for the upgrade (drain asked), until resumed.
    drained: bool,
    /// Out of service for its own reasons (down, drained by someone else)
    /// until resumed.
    unavailable: bool,
    /// When its boot ends, once one started.
    back_at: Option<Timestamp>,
    /// What the upgrade did to it, for the forecast's attribution.
    trace: NodeTrace,
    /// Its owner's mark (down or drained, and the reason) when someone else
    /// held it out of service at the start: reported as the workload
    /// manager would, so the engine applies `foreign_out_of_service` to it.
    held: Option<(WorkloadState, String)>,
}

/// When the upgrade acted on one node, for telling where time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct NodeTrace {
    /// When it was drained.
    pub drained_at: Option<Timestamp>,
    /// When its last job ended after the drain (`drained_at` when it ran none).
    pub quiet_at: Option<Timestamp>,
    /// When its boot started.
    pub boot_at: Option<Timestamp>,
    /// When its boot ended.
    pub back_at: Option<Timestamp>,
}

/// A job running in the model.
#[derive(Debug, Clone)]
struct Job {
    /// When it ends in this run.
    ends: Timestamp,
    /// When it ends at the latest, as the workload manager reports it.
    ends_by: Option<Timestamp>,
    /// The group's nodes it runs on.
    nodes: Vec<usize>,
}

/// A job waiting.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    nodes: usize,
    limit: Option<Duration>,
    runs: Duration,
}

/// The machine of one sampled run.
pub(super) struct Machine {
    ids: Vec<NodeId>,
    index: HashMap<NodeId, usize>,
    nodes: Vec<Node>,
    jobs: Vec<Job>,
    /// Job ends to come: (when, job).
    ends: BTreeSet<(Timestamp, usize)>,
    queue: VecDeque<Waiting>,
    arrivals: Arrivals,
    /// Boot ends and soak ends: moments the engine sees something new.
    markers: BTreeSet<Timestamp>,
    boots: HashMap<String, Vec<NodeId>>,
    now: Timestamp,
    settings: MachineSettings,
    outlook: Outlook,
    draws: Draws,
    /// Nodes whose jobs have no known end.
    pub unknown_ends: usize,
    /// How many of `jobs` ran at the start.
    initial_jobs: usize,
    /// The image each node runs, as the boot orchestrator told it (read for
    /// `skip_matching` only).
    images: HashMap<NodeId, String>,
}

impl Machine {
    /// The machine at `now`, as `observed` and `queue` describe it, for
    /// sampled run `run`.
    pub fn new(
        members: &[NodeId],
        observed: &[WorkloadNode],
        queue: Option<&WorkloadQueue>,
        outlook: &Outlook,
        now: Timestamp,
        settings: MachineSettings,
        run: u32,
    ) -> Machine {
        let mut draws = Draws::for_run(run);
        let ids = members.to_vec();
        let index: HashMap<NodeId, usize> = ids
            .iter()
            .enumerate()
            .map(|(position, id)| (id.clone(), position))
            .collect();
        let mut machine = Machine {
            nodes: vec![Node::default(); ids.len()],
            ids,
            index,
            jobs: Vec::new(),
            ends: BTreeSet::new(),
            queue: VecDeque::new(),
            arrivals: outlook.arrivals(now, &mut draws),
            markers: BTreeSet::new(),
            boots: HashMap::new(),
            now,
            settings,
            outlook: outlook.clone(),
            draws,
            unknown_ends: 0,
            initial_jobs: 0,
            images: HashMap::new(),
        };
        // Jobs the workload manager lists, with their starts: their ends are drawn.
        for running in queue.map_or(&[][..], |queue| &queue.running[..]) {
            let nodes: Vec<usize> = running
                .nodes
                .iter()
                .filter_map(|node| machine.index.get(node).copied())
                .filter(|&node| machine.nodes[node].job.is_none())
                .collect();
            if nodes.is_empty() {
                continue;
            }
            let (ends, ends_by) = match running.time_limit {
                Some(limit) => (
                    machine
                        .outlook
                        .draw_end(running.started, limit, now, &mut machine.draws),
                    Some(running.started + limit),
                ),
                None => {
                    machine.unknown_ends += nodes.len();
                    (now + machine.settings.unknown_job_end, None)
                }
            };
            machine.add_job(ends, ends_by, nodes);
        }
        // Busy nodes the job list did not cover end by their reported limit.
        for node in observed {
            let Some(&position) = machine.index.get(&node.node) else {
                continue;
            };
            if crate::rollout::held_by_someone_else(node) {
                machine.nodes[position].held =
                    Some((node.state, node.reason.clone().unwrap_or_default()));
            }
            match node.state {
                WorkloadState::Allocated | WorkloadState::Draining => {
                    if machine.nodes[position].job.is_none() {
                        let ends_by = node.jobs_end_by;
                        let ends = ends_by.unwrap_or_else(|| {
                            machine.unknown_ends += 1;
                            now + machine.settings.unknown_job_end
                        });
                        machine.add_job(ends.max(now), ends_by, vec![position]);
                    }
                    machine.nodes[position].unavailable = node.state == WorkloadState::Draining;
                }
                WorkloadState::Idle => {}
                WorkloadState::Drained | WorkloadState::Down | WorkloadState::Unknown => {
                    machine.nodes[position].unavailable = true;
                }
            }
        }
        machine.initial_jobs = machine.jobs.len();
        let group = machine.nodes.len();
        for pending in queue.map_or(&[][..], |queue| &queue.pending[..]) {
            let nodes = pending.nodes as usize;
            // A job wider than the group runs elsewhere or never; it holds
            // no reservation here.
            if nodes == 0 || nodes > group {
                continue;
            }
            let shape = JobShape {
                nodes,
                limit: pending.time_limit,
                ran: None,
            };
            let waiting = machine.waiting(shape);
            machine.queue.push_back(waiting);
        }
        machine.schedule();
        machine
    }

    fn add_job(&mut self, ends: Timestamp, ends_by: Option<Timestamp>, nodes: Vec<usize>) {
        let job = self.jobs.len();
        for &node in &nodes {
            self.nodes[node].job = Some(job);
        }
        self.ends.insert((ends, job));
        self.jobs.push(Job {
            ends,
            ends_by,
            nodes,
        });
    }

    fn waiting(&mut self, shape: JobShape) -> Waiting {
        let runs = shape.ran.unwrap_or_else(|| {
            self.outlook
                .draw_run(shape.limit, self.settings.unknown_job_end, &mut self.draws)
        });
        Waiting {
            nodes: shape.nodes,
            limit: shape.limit,
            runs,
        }
    }

    /// Whether a job may start on `node` now.
    fn is_free(&self, node: usize) -> bool {
        let node = &self.nodes[node];
        node.job.is_none() && !node.drained && !node.unavailable && node.back_at.is_none()
    }

    /// Whether `node` returns to service when its job ends.
    fn returns_to_service(&self, node: usize) -> bool {
        let node = &self.nodes[node];
        !node.drained && !node.unavailable && node.back_at.is_none()
    }

    /// Plays every job end and arrival up to `target`, in time order.
    pub fn advance_to(&mut self, target: Timestamp) {
        loop {
            let end = self.ends.first().map(|(at, _)| *at);
            let arrival = self.arrivals.peek();
            let Some(at) = [end, arrival].into_iter().flatten().min() else {
                break;
            };
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            while let Some(&(when, job)) = self.ends.first() {
                if when > at {
                    break;
                }
                self.ends.pop_first();
                self.end_job(job);
            }
            while self.arrivals.peek().is_some_and(|when| when <= at) {
                let Some((_, shape)) = self.arrivals.pop() else {
                    break;
                };
                let waiting = self.waiting(shape);
                self.queue.push_back(waiting);
            }
            self.schedule();
        }
        self.now = self.now.max(target);
    }

    fn end_job(&mut self, job: usize) {
        let nodes = std::mem::take(&mut self.jobs[job].nodes);
        for node in nodes {
            let node = &mut self.nodes[node];
            if node.job == Some(job) {
                node.job = None;
                if node.drained && node.back_at.is_none() {
                    node.trace.quiet_at = Some(self.now);
                }
            }
        }
    }

    /// Starts what first come, first served with EASY backfilling starts
    /// now, on the lowest-numbered free nodes.
    fn schedule(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let mut free: VecDeque<usize> = (0..self.nodes.len())
            .filter(|&node| self.is_free(node))
            .collect();
        if free.is_empty() {
            return;
        }
        // First come, first served while jobs fit.
        while let Some(job) = self.queue.front().copied() {
            if job.nodes > free.len() {
                break;
            }
            self.queue.pop_front();
            self.start(job, &mut free);
        }
        let Some(head) = self.queue.front().copied() else {
            return;
        };
        if free.is_empty() {
            return;
        }
        // The head's reservation: when enough nodes come back by the jobs'
        // limits; `spare` nodes beyond its need are free then.
        let mut releases: Vec<(Timestamp, usize)> = self
            .jobs
            .iter()
            .filter(|job| !job.nodes.is_empty())
            .filter_map(|job| {
                let back = job
                    .nodes
                    .iter()
                    .filter(|&&node| self.returns_to_service(node))
                    .count();
                Some((job.ends_by?, back)).filter(|(_, back)| *back > 0)
            })
            .collect();
        releases.sort_unstable();
        let mut available = free.len();
        let mut reservation = None;
        for (at, nodes) in releases {
            available += nodes;
            if available >= head.nodes {
                reservation = Some((at, available - head.nodes));
                break;
            }
        }
        let (shadow, mut spare) = match reservation {
            Some((at, spare)) => (Some(at), spare),
            None => (None, usize::MAX),
        };
        let mut position = 1;
        while position < self.queue.len() && !free.is_empty() {
            let job = self.queue[position];
            let fits = job.nodes <= free.len();
            let ends_in_time = match (shadow, job.limit) {
                (None, _) => true,
                (Some(shadow), Some(limit)) => self.now + limit <= shadow,
                (Some(_), None) => false,
            };
            if fits && (ends_in_time || job.nodes <= spare) {
                if !ends_in_time {
                    spare -= job.nodes;
                }
                let _ = self.queue.remove(position);
                self.start(job, &mut free);
            } else {
                position += 1;
            }
        }
    }

    fn start(&mut self, job: Waiting, free: &mut VecDeque<usize>) {
        let nodes: Vec<usize> = free.drain(..job.nodes.min(free.len())).collect();
        let ends_by = job.limit.map(|limit| self.now + limit);
        let ends = self.now + job.runs;
        self.add_job(ends, ends_by, nodes);
    }

    /// The first time after `now` at which an observation would differ.
    pub fn next_change_after(&self, now: Timestamp) -> Option<Timestamp> {
        use std::ops::Bound::{Excluded, Unbounded};
        let end = self.ends.iter().map(|(at, _)| *at).find(|at| *at > now);
        let marker = self
            .markers
            .range((Excluded(now), Unbounded))
            .next()
            .copied();
        let arrival = self.arrivals.peek().filter(|at| *at > now);
        [end, marker, arrival].into_iter().flatten().min()
    }

    /// When the last of the jobs running at the start ends at the latest.
    pub fn latest_initial_job_end(&self) -> Option<Timestamp> {
        self.jobs[..self.initial_jobs]
            .iter()
            .map(|job| job.ends_by.unwrap_or(job.ends).max(job.ends))
            .max()
    }

    /// What the upgrade did to each node, in group order.
    pub fn traces(&self) -> impl Iterator<Item = (&NodeId, NodeTrace)> {
        self.ids
            .iter()
            .zip(self.nodes.iter().map(|node| node.trace))
    }

    /// The images the nodes run now, as the boot orchestrator told them.
    pub fn set_images(&mut self, images: &[NodeImage]) {
        self.images = images
            .iter()
            .filter_map(|known| Some((known.node.clone(), known.image.clone()?)))
            .collect();
    }

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
                        }
                    }
                }
                ActionOutput::Done
            }
            Action::StartBoot { request, .. } => {
                let spread = self.settings.boot_spread.clamp(0.0, 1.0);
                let mut latest = now;
                for node in &request.nodes {
                    let factor = 1.0 - spread + 2.0 * spread * self.draws.unit();
                    let back = now + self.settings.boot_time.mul_f64(factor);
                    latest = latest.max(back);
                    self.markers.insert(back);
                    if !self.settings.soak.is_zero() {
                        self.markers.insert(back + self.settings.soak);
                    }
                    if let Some(&position) = self.index.get(node) {
                        let node = &mut self.nodes[position];
                        node.back_at = Some(back);
                        node.trace.boot_at = Some(now);
                        node.trace.back_at = Some(back);
                    }
                }
                self.boots
                    .insert(request.key.clone(), request.nodes.clone());
                ActionOutput::BootStarted(BootHandle {
                    key: request.key.clone(),
                    id: request.key.clone(),
                })
            }
            Action::ObserveBoot { handle, .. } => ActionOutput::BootStatus(
                self.boots
                    .get(&handle.key)
                    .into_iter()
                    .flatten()
                    .map(|node| NodeBootStatus {
                        node: node.clone(),
                        state: if self.is_back(node, now) {
                            NodeBootState::Ok
                        } else {
                            NodeBootState::InProgress
                        },
                    })
                    .collect(),
            ),
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
                    }
                }
                self.schedule();
                ActionOutput::Done
            }
            // The forecast does not model scheduling weights: every node
            // reads as Slurm's default weight and settings change nothing.
            Action::ReadWeights { nodes } => {
                ActionOutput::Weights(nodes.iter().map(|node| (node.clone(), 1)).collect())
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
                    }
                }
                ActionOutput::Done
            }
            Action::MarkFailed { .. }
            | Action::PowerRestart { .. }
            | Action::SetWeights { .. }
            | Action::SetFeatures { .. }
            | Action::ClearUpgradingGroup { .. } => ActionOutput::Done,
        }
    }

    fn is_back(&self, node: &NodeId, now: Timestamp) -> bool {
        self.index
            .get(node)
            .and_then(|&position| self.nodes[position].trace.back_at)
            .is_some_and(|at| at <= now)
    }

    fn observe(&self, id: &NodeId, now: Timestamp) -> WorkloadNode {
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
