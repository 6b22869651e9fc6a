//! The machine as one sampled run of a dry run imagines it: the starting
//! group's nodes, the jobs running on them (each ending at a drawn time
//! within its limit), the queue and the jobs still to arrive, scheduled first
//! come first served with EASY backfilling on the lowest-weight free nodes,
//! and the boots the engine starts. It answers the engine's actions as the
//! real ports would, at the virtual time of the run.
//!
//! Policy effects the engine applies itself (order, steps, windows, failure
//! domains, canary, drain timeouts, drain ahead, the floor, the boot rate)
//! need nothing here. Effects that change what the workload manager does
//! live in [`Machine::schedule`] and [`Machine::answer`]: the scheduling
//! weights `steer_jobs` sets are honoured as Slurm honours them (a job gets
//! the lowest-weight free nodes), so a forecast with `steer_jobs` sees new
//! jobs go to the nodes already upgraded, as the real run would.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

mod answers;
mod scheduling;

use super::outlook::{Arrivals, Draws, JobShape, Outlook};
use crate::node::{NodeId, NodeMap};
use crate::ports::{NodeImage, WorkloadNode, WorkloadQueue, WorkloadState};
use crate::rollout::DEFAULT_WEIGHT;
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
#[derive(Debug, Clone)]
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
    /// Its scheduling weight: Slurm's default until `steer_jobs` sets one.
    weight: u32,
    /// When crus's reservation of it begins (`reserve_ahead`): only jobs
    /// whose limits end by then start on it.
    reserved_from: Option<Timestamp>,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            job: None,
            drained: false,
            unavailable: false,
            back_at: None,
            trace: NodeTrace::default(),
            held: None,
            weight: DEFAULT_WEIGHT,
            reserved_from: None,
        }
    }
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
    index: NodeMap<usize>,
    nodes: Vec<Node>,
    jobs: Vec<Job>,
    /// Job ends to come: (when, job).
    ends: BTreeSet<(Timestamp, usize)>,
    queue: VecDeque<Waiting>,
    arrivals: Arrivals,
    /// Boot ends and soak ends: moments the engine sees something new.
    markers: BTreeSet<Timestamp>,
    /// The boots started, by key: their nodes, with each one's position
    /// when it is in the group (so a boot's progress is read without
    /// looking each node up again).
    boots: HashMap<String, Vec<(NodeId, Option<usize>)>>,
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
    /// Whether any weight was set: until then every node has the default
    /// and the free nodes need no sorting.
    weights_set: bool,
    /// Whether crus reserved any node (`reserve_ahead`): until then no
    /// free node is refused to any job.
    reserving: bool,
    /// Nodes whose workload state changed (or will, at a boot's end) since
    /// the engine was last told, with when: the engine's reads then leave
    /// out the nodes that did not change (`Rollout::workload_changed`).
    changes: Vec<(usize, Timestamp)>,
    /// Whether a boot's progress lists only the nodes back since it was
    /// last read (`Reads::Changes`): the engine does nothing with a node
    /// still in progress, nor with one it already saw back.
    finished_boots_only: bool,
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
        let index: NodeMap<usize> = ids
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
            arrivals: {
                // The first run replays the past at its own rate; the others
                // at a drawn rate, for the forecast's range.
                let rate = if run == 0 {
                    1.0
                } else {
                    outlook.draw_rate(&mut draws)
                };
                outlook.arrivals(now, rate, &mut draws)
            },
            markers: BTreeSet::new(),
            boots: HashMap::new(),
            now,
            settings,
            outlook: outlook.clone(),
            draws,
            unknown_ends: 0,
            initial_jobs: 0,
            images: HashMap::new(),
            weights_set: false,
            reserving: false,
            changes: Vec::new(),
            finished_boots_only: false,
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

    /// Notes that what a read of `node` says changes at `at`.
    pub(super) fn touched(&mut self, node: usize, at: Timestamp) {
        self.changes.push((node, at));
    }

    /// Hands every change noted since the last call to `tell`, in the order
    /// they were noted.
    pub fn take_changes(&mut self, mut tell: impl FnMut(&NodeId, Timestamp)) {
        for (node, at) in self.changes.drain(..) {
            tell(&self.ids[node], at);
        }
    }

    /// From now on a boot's progress lists only the nodes back since it was
    /// last read.
    pub fn list_only_finished_boots(&mut self) {
        self.finished_boots_only = true;
    }

    /// The images the nodes run now, as the boot orchestrator told them.
    pub fn set_images(&mut self, images: &[NodeImage]) {
        self.images = images
            .iter()
            .filter_map(|known| Some((known.node.clone(), known.image.clone()?)))
            .collect();
    }
}
