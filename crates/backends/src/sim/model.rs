//! The simulated cluster's whole state, and how it moves through time.
//!
//! State changes only at events (a job arrives, a job ends, a boot ends) and at
//! port calls, so the model advances from event to event, integrating the
//! report's gauges exactly in between, and needs no background task. The
//! whole model is plain data (serde), so it can be saved and resumed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crus_core::ports::{BootHandle, NodeBootState};
use crus_core::{Error, NodeId, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::boots::BootRecord;
use super::config::SimConfig;
use super::faults::{BootOutcome, Faults};
use super::node::{Condition, JobNumber, SimNode};
use super::report::{SimReport, Tally};
use super::scheduler::{self, Candidate, Release};
use super::topology;

/// The simulated cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Model {
    /// How boots behave and what goes wrong.
    pub settings: Settings,
    /// Sim time zero: when the cluster was made.
    pub started: Timestamp,
    /// How far the model has advanced; never goes back.
    pub now: Timestamp,
    /// Every node, by index (see [`topology`]).
    pub nodes: Vec<SimNode>,
    /// Inventory groups and their members, in insertion order.
    pub groups: BTreeMap<String, Vec<NodeId>>,
    /// Boot templates that exist.
    pub templates: BTreeSet<String>,
    /// Jobs still to be submitted, in submit order.
    pub arrivals: Vec<Job>,
    /// The first of `arrivals` not submitted yet.
    pub next_arrival: usize,
    /// Submitted jobs waiting to start, in submit order.
    pub queue: Vec<Job>,
    /// Running jobs by number.
    pub running: BTreeMap<JobNumber, RunningJob>,
    /// The number the next started job gets.
    pub next_job: JobNumber,
    /// Future job ends and boot ends, in time order.
    pub events: BTreeSet<ScheduledEvent>,
    /// Orders events scheduled for the same time by when they were scheduled.
    pub next_sequence: u64,
    /// Boots started through the boot orchestrator, by idempotency key.
    pub boots: BTreeMap<String, BootRecord>,
    /// Every random draw of the model (boot durations and boot faults).
    pub rng: SeededRng,
    /// Counters and integrals for the report.
    pub tally: Tally,
}

/// What stays fixed about how the cluster behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Settings {
    /// See [`SimConfig::seed`].
    pub seed: u64,
    /// See [`SimConfig::boot_time`].
    pub boot_time: Duration,
    /// See [`SimConfig::boot_jitter`].
    pub boot_jitter: f64,
    /// See [`SimConfig::faults`].
    pub faults: Faults,
}

/// A job, queued or not yet submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Job {
    /// Its number in the trace, `None` for jobs the simulator made up.
    pub trace_id: Option<u64>,
    /// When it is (or was) submitted.
    pub submitted: Timestamp,
    /// How many nodes it needs (never more than the cluster has).
    pub nodes: usize,
    /// How long it runs; `None` for never ending.
    pub run_time: Option<Duration>,
    /// Its time limit; `None` for no limit.
    pub requested_time: Option<Duration>,
}

/// A job that is running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RunningJob {
    /// The job.
    pub job: Job,
    /// When it started.
    pub started: Timestamp,
    /// The nodes it runs on, by index.
    pub nodes: Vec<usize>,
}

impl RunningJob {
    /// When it will have ended at the latest, by its time limit.
    pub fn ends_by(&self) -> Option<Timestamp> {
        self.job.requested_time.map(|limit| self.started + limit)
    }
}

/// Something that happens at a known time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct ScheduledEvent {
    /// When.
    pub at: Timestamp,
    /// Tie-breaker among events at the same time: scheduling order.
    pub sequence: u64,
    /// What.
    pub event: Event,
}

/// What an event does. Events may be stale (the job was killed, the boot
/// superseded); they are then ignored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) enum Event {
    /// Job `job` ends.
    JobEnd {
        /// Which job.
        job: JobNumber,
    },
    /// The boot of node `node` started at generation `generation` ends.
    BootEnd {
        /// Which node, by index.
        node: usize,
        /// The node's boot generation when the boot started.
        generation: u64,
    },
}

/// A seeded random generator that saves as its current state, so a resumed
/// model continues the same sequence of draws.
#[derive(Debug, Clone)]
pub(super) struct SeededRng(pub fastrand::Rng);

impl Serialize for SeededRng {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0.get_seed())
    }
}

impl<'de> Deserialize<'de> for SeededRng {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u64::deserialize(deserializer).map(|state| SeededRng(fastrand::Rng::with_seed(state)))
    }
}

impl Model {
    /// A cluster built from `config` whose time zero is `now`; what is wrong
    /// with `config` otherwise.
    pub fn new(config: SimConfig, now: Timestamp) -> Result<Self, String> {
        if config.nodes == 0 {
            return Err("a simulated cluster needs at least one node".to_string());
        }
        if config.nodes > topology::MAX_NODES {
            return Err(format!(
                "a simulated cluster has at most {} nodes, not {}",
                topology::MAX_NODES,
                config.nodes
            ));
        }
        if !(0.0..=1.0).contains(&config.boot_jitter) {
            return Err(format!(
                "boot_jitter must be between 0 and 1, not {}",
                config.boot_jitter
            ));
        }
        config.faults.check()?;

        let nodes: Vec<SimNode> = (0..config.nodes)
            .filter_map(|index| {
                let xname = topology::xname_of(index)?;
                Some(SimNode::new(
                    NodeId::new(xname.to_string()),
                    topology::nid_of(index),
                ))
            })
            .collect();
        let faults = &config.faults;
        for (set, members) in [
            ("fail_boot", &faults.fail_boot),
            ("never_return", &faults.never_return),
            ("stuck_jobs", &faults.stuck_jobs),
        ] {
            if let Some(stranger) = members.iter().find(|id| index_in(&nodes, id).is_none()) {
                return Err(format!(
                    "faults.{set} names node '{stranger}', which is not a node of this cluster"
                ));
            }
        }

        let mut arrivals: Vec<Job> = config
            .workload
            .jobs()
            .iter()
            .filter(|job| job.submit >= config.trace_offset && job.nodes > 0)
            .map(|job| Job {
                trace_id: Some(job.id),
                submitted: now + (job.submit - config.trace_offset),
                nodes: (job.nodes as usize).min(config.nodes),
                run_time: Some(job.run_time),
                requested_time: Some(job.requested_time.max(job.run_time)),
            })
            .collect();
        arrivals.sort_by_key(|job| job.submitted);

        let members = nodes.iter().map(|node| node.id.clone()).collect();
        let mut model = Model {
            settings: Settings {
                seed: config.seed,
                boot_time: config.boot_time,
                boot_jitter: config.boot_jitter,
                faults: config.faults,
            },
            started: now,
            now,
            nodes,
            groups: BTreeMap::from([(config.group, members)]),
            templates: std::iter::once(config.template)
                .chain(config.other_templates)
                .collect(),
            arrivals,
            next_arrival: 0,
            queue: Vec::new(),
            running: BTreeMap::new(),
            next_job: 1,
            events: BTreeSet::new(),
            next_sequence: 0,
            boots: BTreeMap::new(),
            rng: SeededRng(fastrand::Rng::with_seed(config.seed)),
            tally: Tally::default(),
        };
        let stuck: Vec<usize> = model
            .settings
            .faults
            .stuck_jobs
            .iter()
            .filter_map(|id| model.index(id))
            .collect();
        for index in stuck {
            let job = Job {
                trace_id: None,
                submitted: now,
                nodes: 1,
                run_time: None,
                requested_time: None,
            };
            model.start_job(job, vec![index]);
        }
        model.after_change();
        model.advance_to(now);
        Ok(model)
    }

    /// What is inconsistent in a model read back from outside, if anything,
    /// so that no later index can be out of bounds.
    pub fn check(&self) -> Result<(), String> {
        for (index, node) in self.nodes.iter().enumerate() {
            if topology::index_of(&node.id) != Some(index) {
                return Err(format!(
                    "node {index} is named '{}', not its xname",
                    node.id
                ));
            }
            if let Some(job) = node.job {
                let runs_here = self
                    .running
                    .get(&job)
                    .is_some_and(|running| running.nodes.contains(&index));
                if !runs_here {
                    return Err(format!(
                        "node '{}' runs job {job}, which does not run there",
                        node.id
                    ));
                }
            }
            if let Condition::Booting {
                boot: Some((key, position)),
                ..
            } = &node.condition
            {
                if self
                    .boots
                    .get(key)
                    .is_none_or(|boot| *position >= boot.nodes.len())
                {
                    return Err(format!(
                        "node '{}' is booting in unknown boot '{key}'",
                        node.id
                    ));
                }
            }
        }
        for (number, running) in &self.running {
            if running.nodes.iter().any(|&index| {
                self.nodes
                    .get(index)
                    .is_none_or(|node| node.job != Some(*number))
            }) {
                return Err(format!("job {number} runs on nodes that do not run it"));
            }
        }
        for scheduled in &self.events {
            if let Event::BootEnd { node, .. } = scheduled.event {
                if node >= self.nodes.len() {
                    return Err(format!("a boot ends on node {node}, which does not exist"));
                }
            }
        }
        if self.next_arrival > self.arrivals.len() {
            return Err("more jobs arrived than were to arrive".to_string());
        }
        if !(0.0..=1.0).contains(&self.settings.boot_jitter) {
            return Err(format!(
                "boot_jitter must be between 0 and 1, not {}",
                self.settings.boot_jitter
            ));
        }
        self.settings.faults.check()
    }

    /// The index of node `id`, if it is a node of this cluster.
    pub fn index(&self, id: &NodeId) -> Option<usize> {
        index_in(&self.nodes, id)
    }

    /// The indexes of `ids`, in order; [`Error::NotFound`] naming the first
    /// that is not a node of this cluster.
    pub fn indexes(&self, ids: &[NodeId]) -> crus_core::Result<Vec<usize>> {
        ids.iter()
            .map(|id| {
                self.index(id)
                    .ok_or_else(|| Error::not_found(format!("node '{id}'")))
            })
            .collect()
    }

    /// Processes every event up to `target` in time order, re-scheduling jobs
    /// after each, and integrates the gauges up to `target`. Time never goes
    /// back: an earlier `target` does nothing.
    pub fn advance_to(&mut self, target: Timestamp) {
        let target = target.max(self.now);
        while let Some(at) = self.next_event_time().filter(|at| *at <= target) {
            self.integrate_to(at);
            self.apply_due_events();
            self.after_change();
        }
        self.integrate_to(target);
    }

    /// Re-schedules jobs and re-reads the gauges: called after anything that
    /// may change which nodes are free or out of service.
    pub fn after_change(&mut self) {
        self.schedule();
        let out_of_service = self
            .nodes
            .iter()
            .filter(|node| node.out_of_service_by_crus())
            .count();
        let drained_idle = self.nodes.iter().filter(|node| node.drained_idle()).count();
        let idle_out_of_service = self
            .nodes
            .iter()
            .filter(|node| node.out_of_service_by_crus() && node.runs_no_job())
            .count();
        self.tally
            .set_gauges(out_of_service, drained_idle, idle_out_of_service);
    }

    /// The report as of `now`.
    pub fn report(&self) -> SimReport {
        let node_boots = self
            .nodes
            .iter()
            .filter(|node| node.boots > 0)
            .map(|node| (node.id.clone(), node.boots))
            .collect();
        let elapsed = self.now.saturating_since(self.started);
        self.tally.report(
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            node_boots,
        )
    }

    fn next_event_time(&self) -> Option<Timestamp> {
        let event = self.events.first().map(|scheduled| scheduled.at);
        let arrival = self
            .arrivals
            .get(self.next_arrival)
            .map(|job| job.submitted);
        match (event, arrival) {
            (Some(event), Some(arrival)) => Some(event.min(arrival)),
            (event, arrival) => event.or(arrival),
        }
    }

    fn integrate_to(&mut self, at: Timestamp) {
        if at > self.now {
            let elapsed = at.saturating_since(self.now);
            self.tally
                .integrate(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
            self.now = at;
        }
    }

    /// Applies every event and arrival due by `now`: ends first, then arrivals,
    /// so that jobs arriving at the moment nodes free up can use them.
    fn apply_due_events(&mut self) {
        while self
            .events
            .first()
            .is_some_and(|scheduled| scheduled.at <= self.now)
        {
            let Some(scheduled) = self.events.pop_first() else {
                break;
            };
            match scheduled.event {
                Event::JobEnd { job } => self.end_job(job),
                Event::BootEnd { node, generation } => self.end_boot(node, generation),
            }
        }
        while let Some(job) = self.arrivals.get(self.next_arrival) {
            if job.submitted > self.now {
                break;
            }
            self.queue.push(job.clone());
            self.next_arrival += 1;
            self.tally.jobs_submitted += 1;
        }
    }

    fn schedule_event(&mut self, at: Timestamp, event: Event) {
        self.events.insert(ScheduledEvent {
            at,
            sequence: self.next_sequence,
            event,
        });
        self.next_sequence += 1;
    }

    /// Starts what the scheduler says can start now, on the free nodes of
    /// lowest weight, lowest-numbered first among equal weights (Slurm gives
    /// a job the lowest-weight nodes that satisfy it).
    fn schedule(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let mut free: Vec<usize> = (0..self.nodes.len())
            .filter(|&index| self.nodes[index].is_free())
            .collect();
        // Stable: equal weights keep the index order.
        free.sort_by_key(|&index| self.nodes[index].weight);
        if free.is_empty() {
            return;
        }
        if self.nodes.iter().any(|node| node.reserved_from.is_some()) {
            self.schedule_around_reservations(free);
            return;
        }
        let candidates: Vec<Candidate> = self
            .queue
            .iter()
            .map(|job| Candidate {
                nodes: job.nodes,
                requested_time: job.requested_time,
            })
            .collect();
        let started =
            scheduler::easy_backfill(self.now, free.len(), &candidates, || self.releases());
        if started.is_empty() {
            return;
        }
        let mut free = free.into_iter();
        let placed: Vec<(usize, Vec<usize>)> = started
            .into_iter()
            .map(|index| (index, free.by_ref().take(self.queue[index].nodes).collect()))
            .collect();
        self.start_queued(placed);
    }

    /// Starts each queued job of `placed` (by queue index) on its nodes,
    /// and takes them out of the queue.
    pub(super) fn start_queued(&mut self, placed: Vec<(usize, Vec<usize>)>) {
        let mut is_started = vec![false; self.queue.len()];
        for (index, nodes) in placed {
            is_started[index] = true;
            let job = self.queue[index].clone();
            self.start_job(job, nodes);
        }
        let queue = std::mem::take(&mut self.queue);
        self.queue = queue
            .into_iter()
            .zip(is_started)
            .filter_map(|(job, started)| (!started).then_some(job))
            .collect();
    }

    /// What each running job gives back to service at its time limit.
    pub(super) fn releases(&self) -> Vec<Release> {
        self.running
            .values()
            .map(|running| Release {
                at: running.ends_by(),
                nodes: running
                    .nodes
                    .iter()
                    .filter(|&&index| self.nodes[index].returns_to_service())
                    .count(),
            })
            .collect()
    }

    fn start_job(&mut self, job: Job, nodes: Vec<usize>) {
        let number = self.next_job;
        self.next_job += 1;
        for &index in &nodes {
            self.nodes[index].job = Some(number);
        }
        self.tally.jobs_started += 1;
        let waited = self.now.saturating_since(job.submitted);
        self.tally.job_wait_ms_total = self
            .tally
            .job_wait_ms_total
            .saturating_add(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX));
        if let Some(run_time) = job.run_time {
            self.schedule_event(self.now + run_time, Event::JobEnd { job: number });
        }
        self.running.insert(
            number,
            RunningJob {
                job,
                started: self.now,
                nodes,
            },
        );
    }

    fn end_job(&mut self, number: JobNumber) {
        if self.release_job(number) {
            self.tally.jobs_completed += 1;
        }
    }

    /// Kills job `number` (a node it runs on is rebooted or powered off).
    pub fn kill_job(&mut self, number: JobNumber) {
        if self.release_job(number) {
            self.tally.jobs_killed += 1;
        }
    }

    /// Stops job `number` and puts it back in the queue to run again.
    pub fn requeue_job(&mut self, number: JobNumber) {
        let Some(running) = self.running.get(&number) else {
            return;
        };
        let job = running.job.clone();
        if self.release_job(number) {
            self.tally.jobs_requeued += 1;
            self.queue.insert(0, job);
        }
    }

    /// Removes job `number` from its nodes; whether it was running.
    fn release_job(&mut self, number: JobNumber) -> bool {
        let Some(running) = self.running.remove(&number) else {
            return false;
        };
        for index in running.nodes {
            let node = &mut self.nodes[index];
            if node.job == Some(number) {
                node.job = None;
            }
        }
        true
    }

    /// How long the next boot takes: `boot_time` times a seeded factor in
    /// `[1 - jitter, 1 + jitter]`.
    pub fn draw_boot_duration(&mut self) -> Duration {
        let jitter = self.settings.boot_jitter;
        let factor = 1.0 - jitter + 2.0 * jitter * self.rng.0.f64();
        // The factor is finite and not negative; only an absurd boot time can
        // overflow, and then the boot simply never ends in practice.
        Duration::try_from_secs_f64(self.settings.boot_time.as_secs_f64() * factor)
            .unwrap_or(Duration::MAX)
    }

    /// Starts booting node `index` now: kills its job if it has one, and
    /// schedules the end unless the boot never ends. `boot` links the node to
    /// a boot orchestrator's boot, whose record learns how it ends.
    pub fn begin_boot(
        &mut self,
        index: usize,
        outcome: BootOutcome,
        duration: Duration,
        boot: Option<(String, usize)>,
    ) {
        if let Some(job) = self.nodes[index].job {
            self.kill_job(job);
        }
        let ends_at = match outcome {
            BootOutcome::NeverReturns => None,
            BootOutcome::Ok | BootOutcome::Failed { .. } => Some(self.now + duration),
        };
        let node = &mut self.nodes[index];
        node.boot_generation += 1;
        let generation = node.boot_generation;
        node.condition = Condition::Booting {
            ends_at,
            outcome,
            boot,
        };
        if let Some(at) = ends_at {
            self.schedule_event(
                at,
                Event::BootEnd {
                    node: index,
                    generation,
                },
            );
        }
    }

    /// Ends the boot of node `index` if it is the one started at `generation`.
    fn end_boot(&mut self, index: usize, generation: u64) {
        let Some(node) = self.nodes.get_mut(index) else {
            return;
        };
        if node.boot_generation != generation {
            return;
        }
        let Condition::Booting { outcome, boot, .. } =
            std::mem::replace(&mut node.condition, Condition::Up)
        else {
            return;
        };
        let state = match outcome {
            BootOutcome::Ok => NodeBootState::Ok,
            BootOutcome::Failed { reason } => {
                node.condition = Condition::BootFailed {
                    reason: reason.clone(),
                };
                NodeBootState::Failed { reason }
            }
            BootOutcome::NeverReturns => {
                // Never scheduled; if it ever is, the node stays hung.
                node.condition = Condition::Booting {
                    ends_at: None,
                    outcome: BootOutcome::NeverReturns,
                    boot,
                };
                return;
            }
        };
        if let Some((key, position)) = boot {
            if let Some(record) = self.boots.get_mut(&key) {
                if state == NodeBootState::Ok {
                    self.nodes[index].image = Some(record.template.clone());
                }
                record.finish(position, state);
            }
        }
    }

    /// Ends node `index`'s link to a boot orchestrator's boot, if it is
    /// booting in one, recording that boot as failed for `reason`.
    pub fn interrupt_boot(&mut self, index: usize, reason: &str) {
        let link = match &mut self.nodes[index].condition {
            Condition::Booting { boot, .. } => boot.take(),
            Condition::Up | Condition::BootFailed { .. } | Condition::Off => None,
        };
        if let Some((key, position)) = link {
            if let Some(record) = self.boots.get_mut(&key) {
                record.finish(
                    position,
                    NodeBootState::Failed {
                        reason: reason.to_string(),
                    },
                );
            }
        }
    }

    /// A boot handle not used yet.
    pub fn new_boot_handle(&self, key: &str) -> BootHandle {
        BootHandle {
            key: key.to_string(),
            id: format!("sim-boot-{:04}", self.boots.len() + 1),
        }
    }
}

/// The index of node `id` among `nodes`.
fn index_in(nodes: &[SimNode], id: &NodeId) -> Option<usize> {
    topology::index_of(id).filter(|&index| index < nodes.len())
}
