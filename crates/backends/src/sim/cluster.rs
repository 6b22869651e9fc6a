//! `SimCluster`: the handle through which tests, the demo and benchmarks use
//! the simulated cluster, as ports and through inspection accessors.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crus_core::clock::Clock;
use crus_core::ports::Ports;
use crus_core::{Error, NodeId, Timestamp};
use serde::{Deserialize, Serialize};

use super::config::SimConfig;
use super::faulty::faulty_ports_losing_answers;
use super::model::Model;
use super::report::SimReport;
use super::state_file::StateFile;

/// Mixed into the seed of the port error draws so they do not repeat the
/// model's own draws.
const PORT_ERROR_SEED_SALT: u64 = 0x5EED_FA17_5EED_FA17;

/// A simulated cluster: nodes, a batch scheduler replaying a job trace, a
/// boot orchestrator and power control, all over one in-memory model in
/// virtual time.
///
/// A cheap handle: clones share the cluster. Every port call and accessor
/// first advances the model to the clock's `now`, processing job arrivals,
/// job ends and boot ends in time order, so nothing runs in the background.
/// With [`TokioClock`](crus_core::clock::TokioClock) on a paused tokio
/// runtime, a day of trace runs in milliseconds.
///
/// The port implementations on `SimCluster` itself never inject errors;
/// [`SimCluster::ports`] adds them when `faults.port_error_rate` is set.
///
/// ```
/// # use std::sync::Arc;
/// # use crus_backends::sim::{SimCluster, SimConfig};
/// # use crus_core::clock::SystemClock;
/// let cluster = SimCluster::new(SimConfig::default(), Arc::new(SystemClock))?;
/// assert_eq!(cluster.node_ids().len(), 128);
/// assert_eq!(cluster.node_ids()[0].as_str(), "x1000c0s0b0n0");
/// # Ok::<(), crus_core::Error>(())
/// ```
#[derive(Clone)]
pub struct SimCluster {
    /// The cluster's state, shared by every clone.
    model: Arc<Mutex<Model>>,
    /// Where `now` comes from.
    clock: Arc<dyn Clock>,
    /// Where every change made through a port is saved before the call
    /// returns, so the cluster outlives the process; `None` keeps it in
    /// memory only. See [`SimCluster::open_with_state_file`].
    state_file: Option<Arc<StateFile>>,
}

/// A snapshot of a simulated cluster's whole state, to save (serde) and
/// resume with [`SimCluster::from_state`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimState {
    /// The model, as plain data.
    model: Model,
}

impl SimState {
    /// The time the snapshot was taken at.
    pub fn now(&self) -> Timestamp {
        self.model.now
    }

    /// The cluster's time zero.
    pub fn started(&self) -> Timestamp {
        self.model.started
    }
}

impl SimCluster {
    /// A cluster built from `config` whose time zero is `clock.now()`.
    ///
    /// [`Error::Invalid`] when `config` is inconsistent (no nodes, rates
    /// outside `[0, 1]`, fault sets naming nodes the cluster does not have).
    pub fn new(config: SimConfig, clock: Arc<dyn Clock>) -> crus_core::Result<Self> {
        let model = Model::new(config, clock.now())
            .map_err(|message| Error::invalid(format!("simulated cluster: {message}")))?;
        Ok(SimCluster::from_model(model, clock))
    }

    /// A cluster resumed from `state`. Time never goes back: until `clock`
    /// reaches the snapshot's time, the cluster stays as it was then.
    ///
    /// [`Error::Invalid`] when the state is inconsistent.
    pub fn from_state(state: SimState, clock: Arc<dyn Clock>) -> crus_core::Result<Self> {
        state
            .model
            .check()
            .map_err(|message| Error::invalid(format!("simulated cluster state: {message}")))?;
        Ok(SimCluster::from_model(state.model, clock))
    }

    fn from_model(model: Model, clock: Arc<dyn Clock>) -> Self {
        SimCluster {
            model: Arc::new(Mutex::new(model)),
            clock,
            state_file: None,
        }
    }

    /// This cluster, saving every change made through a port to `file`.
    pub(super) fn persisting_to(self, file: Arc<StateFile>) -> Self {
        SimCluster {
            state_file: Some(file),
            ..self
        }
    }

    /// Runs `change` on the model advanced to now and, if it succeeded and
    /// the cluster has a state file, saves the state before returning: a
    /// change the caller has been told about survives a crash.
    ///
    /// A failed change changed nothing (every port call checks before it
    /// changes), so it is not saved.
    pub(super) async fn change<T: Send>(
        &self,
        change: impl FnOnce(&mut Model) -> crus_core::Result<T> + Send,
    ) -> crus_core::Result<T> {
        let (result, snapshot) = {
            let mut model = self.lock();
            let result = change(&mut model);
            let snapshot = match (&result, &self.state_file) {
                (Ok(_), Some(file)) => Some(file.snapshot(&model)),
                _ => None,
            };
            (result, snapshot)
        };
        if let Some(snapshot) = snapshot {
            snapshot?.save().await?;
        }
        result
    }

    /// The model, advanced to the clock's `now`.
    pub(super) fn lock(&self) -> MutexGuard<'_, Model> {
        let mut model = self.lock_unadvanced();
        model.advance_to(self.clock.now());
        model
    }

    fn lock_unadvanced(&self) -> MutexGuard<'_, Model> {
        // Every change to the model is made under the lock by code that does
        // not panic on valid state; after a panic elsewhere the model is still
        // the best account of the cluster there is.
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The whole state as of now, to save.
    pub fn state(&self) -> SimState {
        SimState {
            model: self.lock().clone(),
        }
    }

    /// The cluster's current time (the clock's `now`, once advanced).
    pub fn now(&self) -> Timestamp {
        self.lock().now
    }

    /// The cluster's time zero.
    pub fn started(&self) -> Timestamp {
        self.lock_unadvanced().started
    }

    /// Advances the cluster to `now`, whatever the clock says; an earlier
    /// time than the cluster's does nothing.
    pub fn advance_to(&self, now: Timestamp) {
        self.lock_unadvanced().advance_to(now);
    }

    /// What has been measured from time zero to now.
    pub fn report(&self) -> SimReport {
        self.lock().report()
    }

    /// Nodes with the drain flag set, in node order.
    pub fn drained_nodes(&self) -> Vec<NodeId> {
        self.select(|node| node.drain_reason.is_some())
    }

    /// Nodes marked failed through `WorkloadManager::fail`, in node order.
    pub fn failed_marked_nodes(&self) -> Vec<NodeId> {
        self.select(|node| node.fail_reason.is_some())
    }

    fn select(&self, keep: impl Fn(&super::node::SimNode) -> bool) -> Vec<NodeId> {
        self.lock()
            .nodes
            .iter()
            .filter(|node| keep(node))
            .map(|node| node.id.clone())
            .collect()
    }

    /// Members of inventory group `label`, `None` when it does not exist.
    pub fn group(&self, label: &str) -> Option<Vec<NodeId>> {
        self.lock().groups.get(label).cloned()
    }

    /// Every node, in node order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.select(|_| true)
    }

    /// Boots of `node` started through the boot orchestrator (0 for a node
    /// the cluster does not have).
    pub fn boot_count(&self, node: &NodeId) -> u32 {
        let model = self.lock();
        model
            .index(node)
            .map_or(0, |index| model.nodes[index].boots)
    }

    /// Boots through the boot orchestrator that named `node` with `template`.
    pub fn boots_with(&self, node: &NodeId, template: &str) -> usize {
        let model = self.lock();
        model
            .boots
            .values()
            .filter(|boot| {
                boot.template == template && boot.nodes.iter().any(|status| &status.node == node)
            })
            .count()
    }

    /// When each boot through the boot orchestrator started and how many
    /// nodes it named, in start order: what a boot rate limit bounds.
    pub fn boot_starts(&self) -> Vec<(Timestamp, usize)> {
        let model = self.lock();
        let mut starts: Vec<(Timestamp, usize)> = model
            .boots
            .values()
            .map(|boot| (boot.started, boot.nodes.len()))
            .collect();
        starts.sort();
        starts
    }

    /// How many jobs are running.
    pub fn running_jobs(&self) -> usize {
        self.lock().running.len()
    }

    /// How many submitted jobs wait to start.
    pub fn queued_jobs(&self) -> usize {
        self.lock().queue.len()
    }

    /// The four ports over this cluster (power control included). When
    /// `faults.port_error_rate` or `faults.port_timeout_rate` is above 0,
    /// each is wrapped in a [`Faulty`](super::Faulty) seeded from the
    /// cluster's seed.
    pub fn ports(&self) -> Ports {
        let (error_rate, timeout_rate, seed) = {
            let model = self.lock_unadvanced();
            let faults = &model.settings.faults;
            (
                faults.port_error_rate,
                faults.port_timeout_rate,
                model.settings.seed,
            )
        };
        let cluster = Arc::new(self.clone());
        let ports = Ports {
            inventory: cluster.clone(),
            workload_manager: cluster.clone(),
            boot_orchestrator: cluster.clone(),
            power_control: Some(cluster),
            health_probe: None,
            alert_gate: None,
            hook_runner: None,
        };
        if error_rate > 0.0 || timeout_rate > 0.0 {
            faulty_ports_losing_answers(
                &ports,
                error_rate,
                timeout_rate,
                seed ^ PORT_ERROR_SEED_SALT,
            )
        } else {
            ports
        }
    }
}

impl fmt::Debug for SimCluster {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let model = self.lock_unadvanced();
        formatter
            .debug_struct("SimCluster")
            .field("nodes", &model.nodes.len())
            .field("now", &model.now)
            .field("running_jobs", &model.running.len())
            .field("queued_jobs", &model.queue.len())
            .field("clock", &self.clock)
            .field(
                "state_file",
                &self.state_file.as_ref().map(|file| file.path()),
            )
            .finish_non_exhaustive()
    }
}
