//! Every job's start, recorded as a simulation runs, so the benchmark can
//! measure per-job waits and slowdowns (the simulator itself only sums waits).
//!
//! A job starts only when the model processes an event (a job arrives or
//! ends, a boot ends) or when a port call changes which nodes are free or
//! when they come free. The [`Observer`] therefore looks at the running jobs
//! at every event time (its task sleeps until the model's next event) and
//! right after every changing port call (the [`ObservedPorts`] decorators);
//! every job runs for at least a second, so each is seen running at least
//! once. The count of jobs seen is checked against the simulator's own
//! count at the end, so a missed job is an error, not a silent bias.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use crus_core::clock::TokioClock;
use crus_core::ports::{
    BootHandle, BootOrchestrator, BootRequest, NodeBootStatus, NodeImage, Ports, WorkloadManager,
    WorkloadNode,
};
use crus_core::{NodeId, Result, Timestamp};
use tokio::sync::Notify;

use super::super::SimCluster;
use super::super::model::Model;

/// One started job, as the ledger saw it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct JobRecord {
    /// Its number in the trace.
    pub trace_id: Option<u64>,
    /// When it was submitted.
    pub submitted: Timestamp,
    /// When it started.
    pub started: Timestamp,
    /// How long it runs; `None` for never-ending jobs (none in this benchmark).
    pub run_time: Option<Duration>,
    /// The nodes it runs on, by index (node order).
    pub nodes: Vec<usize>,
}

impl JobRecord {
    /// How long it waited in the queue.
    pub fn wait(&self) -> Duration {
        self.started.saturating_since(self.submitted)
    }
}

/// The jobs seen started so far, by the simulator's job number.
#[derive(Debug, Default)]
pub(super) struct JobLedger {
    /// Every job seen, by number.
    pub jobs: BTreeMap<u64, JobRecord>,
    /// Numbers below this have been looked at: numbers grow with each start,
    /// so only running jobs from here on can be new.
    next_unseen: u64,
}

impl JobLedger {
    /// Records the jobs running in `model` that are new.
    fn observe(&mut self, model: &Model) {
        for (&number, running) in model.running.range(self.next_unseen..) {
            self.jobs.insert(
                number,
                JobRecord {
                    trace_id: running.job.trace_id,
                    submitted: running.job.submitted,
                    started: running.started,
                    run_time: running.job.run_time,
                    nodes: running.nodes.clone(),
                },
            );
            self.next_unseen = number + 1;
        }
    }
}

/// When the model next changes by itself: its next event or job arrival.
fn next_change(model: &Model) -> Option<Timestamp> {
    let event = model.events.first().map(|scheduled| scheduled.at);
    let arrival = model
        .arrivals
        .get(model.next_arrival)
        .map(|job| job.submitted);
    match (event, arrival) {
        (Some(event), Some(arrival)) => Some(event.min(arrival)),
        (event, arrival) => event.or(arrival),
    }
}

/// Watches one simulated cluster's jobs into a [`JobLedger`].
#[derive(Clone)]
pub(super) struct Observer {
    /// The cluster watched.
    cluster: SimCluster,
    /// What has been seen.
    ledger: Arc<Mutex<JobLedger>>,
    /// Wakes the watching task after a port call, which may have scheduled
    /// an event earlier than the one it sleeps until.
    wake: Arc<Notify>,
}

impl Observer {
    /// An observer of `cluster`; nothing is watched until [`Observer::watch`] runs.
    pub fn new(cluster: SimCluster) -> Self {
        Observer {
            cluster,
            ledger: Arc::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Records the jobs running now; returns when the model next changes by itself.
    pub fn observe(&self) -> Option<Timestamp> {
        let model = self.cluster.lock();
        // Lock order: cluster, then ledger; nothing takes them the other way.
        self.ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(&model);
        next_change(&model)
    }

    /// A copy of the jobs seen so far.
    pub fn jobs(&self) -> BTreeMap<u64, JobRecord> {
        self.ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .jobs
            .clone()
    }

    fn after_port_call(&self) {
        self.observe();
        self.wake.notify_one();
    }

    /// Observes at every change of the model, forever; abort the task to stop.
    pub async fn watch(self, clock: Arc<TokioClock>) {
        loop {
            match self.observe() {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep(clock.until(at)) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    /// The cluster's ports, with the changing calls of the workload manager
    /// and the boot orchestrator observed.
    pub fn ports(&self) -> Ports {
        let plain = self.cluster.ports();
        let observed = Arc::new(ObservedPorts {
            observer: self.clone(),
        });
        Ports {
            workload_manager: observed.clone(),
            boot_orchestrator: observed,
            ..plain
        }
    }
}

/// The simulated cluster's workload manager and boot orchestrator, observing
/// the jobs after every call that may start one.
struct ObservedPorts {
    /// The observer, which holds the cluster the calls go to.
    observer: Observer,
}

impl ObservedPorts {
    fn cluster(&self) -> &SimCluster {
        &self.observer.cluster
    }

    fn observed<T>(&self, result: Result<T>) -> Result<T> {
        self.observer.after_port_call();
        result
    }
}

#[async_trait]
impl WorkloadManager for ObservedPorts {
    async fn drain(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
        let result = WorkloadManager::drain(self.cluster(), nodes, reason).await;
        self.observed(result)
    }

    async fn resume(&self, nodes: &[NodeId]) -> Result<()> {
        let result = WorkloadManager::resume(self.cluster(), nodes).await;
        self.observed(result)
    }

    async fn fail(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
        let result = WorkloadManager::fail(self.cluster(), nodes, reason).await;
        self.observed(result)
    }

    async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>> {
        WorkloadManager::node_states(self.cluster(), nodes).await
    }

    async fn requeue_jobs(&self, nodes: &[NodeId]) -> Result<()> {
        let result = WorkloadManager::requeue_jobs(self.cluster(), nodes).await;
        self.observed(result)
    }

    async fn queue(&self) -> Result<crus_core::ports::WorkloadQueue> {
        WorkloadManager::queue(self.cluster()).await
    }

    async fn node_weights(&self, nodes: &[NodeId]) -> Result<Vec<u32>> {
        WorkloadManager::node_weights(self.cluster(), nodes).await
    }

    async fn set_weights(&self, weights: &[(NodeId, u32)]) -> Result<()> {
        let result = WorkloadManager::set_weights(self.cluster(), weights).await;
        self.observed(result)
    }

    fn availability_supported(&self) -> Result<()> {
        WorkloadManager::availability_supported(self.cluster())
    }

    fn features_supported(&self) -> Result<()> {
        WorkloadManager::features_supported(self.cluster())
    }

    async fn node_features(&self, nodes: &[NodeId]) -> Result<Vec<Vec<String>>> {
        WorkloadManager::node_features(self.cluster(), nodes).await
    }

    async fn set_features(&self, features: &[(NodeId, Vec<String>)]) -> Result<()> {
        let result = WorkloadManager::set_features(self.cluster(), features).await;
        self.observed(result)
    }

    fn reservations_supported(&self) -> Result<()> {
        WorkloadManager::reservations_supported(self.cluster())
    }

    async fn reserve_from(&self, reservations: &[(NodeId, Timestamp)]) -> Result<()> {
        let result = WorkloadManager::reserve_from(self.cluster(), reservations).await;
        self.observed(result)
    }

    async fn reserved_nodes(&self, nodes: &[NodeId]) -> Result<Vec<NodeId>> {
        WorkloadManager::reserved_nodes(self.cluster(), nodes).await
    }

    async fn unreserve(&self, nodes: &[NodeId]) -> Result<()> {
        let result = WorkloadManager::unreserve(self.cluster(), nodes).await;
        self.observed(result)
    }
}

#[async_trait]
impl BootOrchestrator for ObservedPorts {
    async fn template_exists(&self, template: &str) -> Result<bool> {
        BootOrchestrator::template_exists(self.cluster(), template).await
    }

    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
        let result = BootOrchestrator::start_boot(self.cluster(), request).await;
        self.observed(result)
    }

    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        BootOrchestrator::boot_status(self.cluster(), handle).await
    }

    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        let result = BootOrchestrator::cancel_boot(self.cluster(), handle).await;
        self.observed(result)
    }

    fn current_images_supported(&self) -> Result<()> {
        BootOrchestrator::current_images_supported(self.cluster())
    }

    async fn current_images(&self, nodes: &[NodeId], template: &str) -> Result<Vec<NodeImage>> {
        BootOrchestrator::current_images(self.cluster(), nodes, template).await
    }
}
