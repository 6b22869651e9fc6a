//! `Faulty<T>`: a decorator that makes any port implementation fail some
//! calls, at a seeded rate, with a retryable error, like a flaky network or
//! an overloaded service would.
//!
//! A failed call never reaches the wrapped port, so it has no effect: the
//! caller's retry is then the first real attempt. Wraps the simulator and
//! real backends alike (`Faulty<dyn BootOrchestrator>` wraps an
//! `Arc<dyn BootOrchestrator>`; see [`faulty_ports`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use crus_core::ports::{
    BootHandle, BootOrchestrator, BootRequest, Inventory, NodeBootStatus, Ports, PowerControl,
    PowerOperation, PowerState, WorkloadManager, WorkloadNode,
};
use crus_core::{Error, NodeFacts, NodeId, Result};

/// The backend name injected errors carry.
const BACKEND: &str = "sim";

/// A port of type `T` whose calls fail at a seeded rate with
/// [`Error::Unavailable`] (backend `"sim"`) before reaching `T`.
///
/// Decisions are drawn in call order from a generator seeded at
/// construction, so the same calls in the same order fail the same way.
pub struct Faulty<T: ?Sized> {
    /// Chance in `[0, 1]` that a call fails.
    error_rate: f64,
    /// Draws one decision per call.
    rng: Mutex<fastrand::Rng>,
    /// How many calls were failed, for tests and reports.
    injected: AtomicU64,
    /// The port that receives the calls that do not fail.
    inner: Arc<T>,
}

impl<T> Faulty<T> {
    /// Wraps `inner`, failing calls with probability `error_rate` (clamped to
    /// `[0, 1]`; NaN counts as 0), drawn from a generator seeded with `seed`.
    pub fn new(inner: T, error_rate: f64, seed: u64) -> Self {
        Faulty::from_arc(Arc::new(inner), error_rate, seed)
    }
}

impl<T: ?Sized> Faulty<T> {
    /// Wraps a shared port, such as an `Arc<dyn Inventory>`; see [`Faulty::new`].
    pub fn from_arc(inner: Arc<T>, error_rate: f64, seed: u64) -> Self {
        let error_rate = if error_rate.is_nan() {
            0.0
        } else {
            error_rate.clamp(0.0, 1.0)
        };
        Faulty {
            error_rate,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            injected: AtomicU64::new(0),
            inner,
        }
    }

    /// The wrapped port.
    pub fn inner(&self) -> &Arc<T> {
        &self.inner
    }

    /// How many calls have been failed so far.
    pub fn injected_errors(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Draws whether this call of `operation` fails.
    fn inject(&self, operation: &str) -> Result<()> {
        // The generator holds no invariant a panic could break.
        let draw = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .f64();
        if draw < self.error_rate {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(Error::unavailable(
                BACKEND,
                format!("injected fault: {operation} failed before reaching the backend"),
            ));
        }
        Ok(())
    }
}

impl<T: ?Sized> fmt::Debug for Faulty<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Faulty")
            .field("error_rate", &self.error_rate)
            .field("injected", &self.injected_errors())
            .finish_non_exhaustive()
    }
}

/// `ports` with every port wrapped in a [`Faulty`] failing at `error_rate`,
/// each with its own generator derived from `seed`.
pub fn faulty_ports(ports: &Ports, error_rate: f64, seed: u64) -> Ports {
    let mut seeds = fastrand::Rng::with_seed(seed);
    Ports {
        inventory: Arc::new(Faulty::from_arc(
            Arc::clone(&ports.inventory),
            error_rate,
            seeds.u64(..),
        )),
        workload_manager: Arc::new(Faulty::from_arc(
            Arc::clone(&ports.workload_manager),
            error_rate,
            seeds.u64(..),
        )),
        boot_orchestrator: Arc::new(Faulty::from_arc(
            Arc::clone(&ports.boot_orchestrator),
            error_rate,
            seeds.u64(..),
        )),
        power_control: ports.power_control.as_ref().map(|power| {
            Arc::new(Faulty::from_arc(
                Arc::clone(power),
                error_rate,
                seeds.u64(..),
            )) as Arc<dyn PowerControl>
        }),
        // Probes only read, and their failures are answers: nothing to inject.
        health_probe: ports.health_probe.clone(),
    }
}

#[async_trait]
impl<T: Inventory + ?Sized> Inventory for Faulty<T> {
    async fn group_members(&self, label: &str) -> Result<Vec<NodeId>> {
        self.inject("listing group members")?;
        self.inner.group_members(label).await
    }

    async fn create_group(&self, label: &str) -> Result<()> {
        self.inject("creating a group")?;
        self.inner.create_group(label).await
    }

    async fn add_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        self.inject("adding group members")?;
        self.inner.add_members(label, nodes).await
    }

    async fn remove_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        self.inject("removing group members")?;
        self.inner.remove_members(label, nodes).await
    }

    async fn node_facts(&self, nodes: &[NodeId]) -> Result<Vec<NodeFacts>> {
        self.inject("reading node facts")?;
        self.inner.node_facts(nodes).await
    }

    async fn ensure_group(&self, label: &str) -> Result<()> {
        self.inject("ensuring a group")?;
        self.inner.ensure_group(label).await
    }

    async fn clear_group(&self, label: &str) -> Result<Vec<NodeId>> {
        self.inject("clearing a group")?;
        self.inner.clear_group(label).await
    }
}

#[async_trait]
impl<T: WorkloadManager + ?Sized> WorkloadManager for Faulty<T> {
    async fn drain(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
        self.inject("draining nodes")?;
        self.inner.drain(nodes, reason).await
    }

    async fn resume(&self, nodes: &[NodeId]) -> Result<()> {
        self.inject("resuming nodes")?;
        self.inner.resume(nodes).await
    }

    async fn fail(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
        self.inject("marking nodes failed")?;
        self.inner.fail(nodes, reason).await
    }

    async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>> {
        self.inject("reading node states")?;
        self.inner.node_states(nodes).await
    }

    async fn requeue_jobs(&self, nodes: &[NodeId]) -> Result<()> {
        self.inject("requeueing jobs")?;
        self.inner.requeue_jobs(nodes).await
    }
}

#[async_trait]
impl<T: BootOrchestrator + ?Sized> BootOrchestrator for Faulty<T> {
    async fn template_exists(&self, template: &str) -> Result<bool> {
        self.inject("looking up a template")?;
        self.inner.template_exists(template).await
    }

    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
        self.inject("starting a boot")?;
        self.inner.start_boot(request).await
    }

    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        self.inject("reading a boot's status")?;
        self.inner.boot_status(handle).await
    }

    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        self.inject("cancelling a boot")?;
        self.inner.cancel_boot(handle).await
    }
}

#[async_trait]
impl<T: PowerControl + ?Sized> PowerControl for Faulty<T> {
    async fn power_state(&self, nodes: &[NodeId]) -> Result<Vec<PowerState>> {
        self.inject("reading power states")?;
        self.inner.power_state(nodes).await
    }

    async fn power(&self, nodes: &[NodeId], operation: PowerOperation) -> Result<()> {
        self.inject("changing power")?;
        self.inner.power(nodes, operation).await
    }
}
