//! `Faulty<T>`: a decorator that makes any port implementation fail some
//! calls, at a seeded rate, with a retryable error, like a flaky network or
//! an overloaded service would.
//!
//! An injected error comes in one of two kinds, each at its own rate:
//! - the call fails before reaching the wrapped port, so it has no effect:
//!   the caller's retry is then the first real attempt;
//! - the call reaches the wrapped port and takes effect, but its answer is
//!   lost: the caller waits [`LOST_ANSWER_WAIT`] and gets a timeout, so its
//!   retry repeats a call that was done (which only an idempotent caller
//!   survives unharmed).
//!
//! Wraps the simulator and real backends alike (`Faulty<dyn BootOrchestrator>`
//! wraps an `Arc<dyn BootOrchestrator>`; see [`faulty_ports`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use crus_core::ports::{
    BootHandle, BootOrchestrator, BootRequest, Inventory, NodeBootStatus, NodeImage, Ports,
    PowerControl, PowerOperation, PowerState, WorkloadManager, WorkloadNode,
};
use crus_core::{Error, NodeFacts, NodeId, Result};

/// The backend name injected errors carry.
const BACKEND: &str = "sim";

/// How long a call whose answer is lost takes before it times out, in tokio
/// time (at `--sim-speed 600`, half a simulated minute).
pub const LOST_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// A port of type `T` whose calls fail at a seeded rate with
/// [`Error::Unavailable`] (backend `"sim"`) before reaching `T`.
///
/// Decisions are drawn in call order from a generator seeded at
/// construction, so the same calls in the same order fail the same way.
pub struct Faulty<T: ?Sized> {
    /// Chance in `[0, 1]` that a call fails before reaching `inner`.
    error_rate: f64,
    /// Chance in `[0, 1]` that a call reaches `inner` but its answer is lost
    /// (a timeout); at most `1 - error_rate` of it is used.
    lost_answer_rate: f64,
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
        Faulty {
            error_rate: probability(error_rate),
            lost_answer_rate: 0.0,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            injected: AtomicU64::new(0),
            inner,
        }
    }

    /// This decorator, also losing the answer of calls at `rate` (clamped to
    /// `[0, 1]`; NaN counts as 0): they take effect, then time out after
    /// [`LOST_ANSWER_WAIT`].
    #[must_use]
    pub fn losing_answers(self, rate: f64) -> Self {
        Faulty {
            lost_answer_rate: probability(rate),
            ..self
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

    /// Runs `call` (a call of `operation` on the wrapped port, not started
    /// yet), unless the draw for this call fails it first or loses its answer.
    async fn call<R>(
        &self,
        operation: &str,
        call: impl std::future::Future<Output = Result<R>>,
    ) -> Result<R> {
        // One draw per call, whatever happens, so the same calls in the same
        // order meet the same faults. The generator holds no invariant a
        // panic could break.
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
        let result = call.await;
        if draw < self.error_rate + self.lost_answer_rate {
            self.injected.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(LOST_ANSWER_WAIT).await;
            return Err(Error::unavailable(
                BACKEND,
                format!("injected fault: {operation} timed out (it may have taken effect)"),
            ));
        }
        result
    }
}

/// `rate` as a probability: clamped to `[0, 1]`, NaN as 0.
fn probability(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

impl<T: ?Sized> fmt::Debug for Faulty<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Faulty")
            .field("error_rate", &self.error_rate)
            .field("lost_answer_rate", &self.lost_answer_rate)
            .field("injected", &self.injected_errors())
            .finish_non_exhaustive()
    }
}

/// `ports` with every port wrapped in a [`Faulty`] failing at `error_rate`,
/// each with its own generator derived from `seed`.
pub fn faulty_ports(ports: &Ports, error_rate: f64, seed: u64) -> Ports {
    faulty_ports_losing_answers(ports, error_rate, 0.0, seed)
}

/// [`faulty_ports`], also losing the answers of calls at `lost_answer_rate`
/// (see [`Faulty::losing_answers`]).
pub fn faulty_ports_losing_answers(
    ports: &Ports,
    error_rate: f64,
    lost_answer_rate: f64,
    seed: u64,
) -> Ports {
    let mut seeds = fastrand::Rng::with_seed(seed);
    let rates = (error_rate, lost_answer_rate);
    Ports {
        inventory: Arc::new(faulty(&ports.inventory, rates, seeds.u64(..))),
        workload_manager: Arc::new(faulty(&ports.workload_manager, rates, seeds.u64(..))),
        boot_orchestrator: Arc::new(faulty(&ports.boot_orchestrator, rates, seeds.u64(..))),
        power_control: ports
            .power_control
            .as_ref()
            .map(|power| Arc::new(faulty(power, rates, seeds.u64(..))) as Arc<dyn PowerControl>),
        // Probes only read, and their failures are answers: nothing to inject.
        health_probe: ports.health_probe.clone(),
        alert_gate: ports.alert_gate.clone(),
        hook_runner: ports.hook_runner.clone(),
    }
}

/// One port of [`faulty_ports_losing_answers`], failing at `(error rate,
/// lost answer rate)`.
fn faulty<T: ?Sized>(
    inner: &Arc<T>,
    (error_rate, lost_answer_rate): (f64, f64),
    seed: u64,
) -> Faulty<T> {
    Faulty::from_arc(Arc::clone(inner), error_rate, seed).losing_answers(lost_answer_rate)
}

#[async_trait]
impl<T: Inventory + ?Sized> Inventory for Faulty<T> {
    async fn group_members(&self, label: &str) -> Result<Vec<NodeId>> {
        self.call("listing group members", self.inner.group_members(label))
            .await
    }

    async fn create_group(&self, label: &str) -> Result<()> {
        self.call("creating a group", self.inner.create_group(label))
            .await
    }

    async fn add_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        self.call("adding group members", self.inner.add_members(label, nodes))
            .await
    }

    async fn remove_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        self.call(
            "removing group members",
            self.inner.remove_members(label, nodes),
        )
        .await
    }

    async fn node_facts(&self, nodes: &[NodeId]) -> Result<Vec<NodeFacts>> {
        self.call("reading node facts", self.inner.node_facts(nodes))
            .await
    }

    async fn ensure_group(&self, label: &str) -> Result<()> {
        self.call("ensuring a group", self.inner.ensure_group(label))
            .await
    }

    async fn clear_group(&self, label: &str) -> Result<Vec<NodeId>> {
        self.call("clearing a group", self.inner.clear_group(label))
            .await
    }
}

#[async_trait]
impl<T: WorkloadManager + ?Sized> WorkloadManager for Faulty<T> {
    async fn drain(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
        self.call("draining nodes", self.inner.drain(nodes, reason))
            .await
    }

    async fn resume(&self, nodes: &[NodeId]) -> Result<()> {
        self.call("resuming nodes", self.inner.resume(nodes)).await
    }

    async fn fail(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
        self.call("marking nodes failed", self.inner.fail(nodes, reason))
            .await
    }

    async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>> {
        self.call("reading node states", self.inner.node_states(nodes))
            .await
    }

    async fn requeue_jobs(&self, nodes: &[NodeId]) -> Result<()> {
        self.call("requeueing jobs", self.inner.requeue_jobs(nodes))
            .await
    }

    async fn queue(&self) -> Result<crus_core::ports::WorkloadQueue> {
        self.call("reading the job queue", self.inner.queue()).await
    }

    async fn node_weights(&self, nodes: &[NodeId]) -> Result<Vec<u32>> {
        self.call("reading node weights", self.inner.node_weights(nodes))
            .await
    }

    async fn set_weights(&self, weights: &[(NodeId, u32)]) -> Result<()> {
        self.call("setting node weights", self.inner.set_weights(weights))
            .await
    }

    fn availability_supported(&self) -> Result<()> {
        self.inner.availability_supported()
    }

    fn features_supported(&self) -> Result<()> {
        self.inner.features_supported()
    }

    async fn node_features(&self, nodes: &[NodeId]) -> Result<Vec<Vec<String>>> {
        self.call("reading node features", self.inner.node_features(nodes))
            .await
    }

    async fn set_features(&self, features: &[(NodeId, Vec<String>)]) -> Result<()> {
        self.call("setting node features", self.inner.set_features(features))
            .await
    }

    fn reservations_supported(&self) -> Result<()> {
        self.inner.reservations_supported()
    }

    async fn reserve_from(&self, reservations: &[(NodeId, crus_core::Timestamp)]) -> Result<()> {
        self.call("reserving nodes", self.inner.reserve_from(reservations))
            .await
    }

    async fn reserved_nodes(&self, nodes: &[NodeId]) -> Result<Vec<NodeId>> {
        self.call(
            "reading node reservations",
            self.inner.reserved_nodes(nodes),
        )
        .await
    }

    async fn unreserve(&self, nodes: &[NodeId]) -> Result<()> {
        self.call("removing node reservations", self.inner.unreserve(nodes))
            .await
    }
}

#[async_trait]
impl<T: BootOrchestrator + ?Sized> BootOrchestrator for Faulty<T> {
    async fn template_exists(&self, template: &str) -> Result<bool> {
        self.call(
            "looking up a template",
            self.inner.template_exists(template),
        )
        .await
    }

    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
        self.call("starting a boot", self.inner.start_boot(request))
            .await
    }

    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        self.call("reading a boot's status", self.inner.boot_status(handle))
            .await
    }

    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        self.call("cancelling a boot", self.inner.cancel_boot(handle))
            .await
    }

    fn current_images_supported(&self) -> Result<()> {
        self.inner.current_images_supported()
    }

    async fn current_images(&self, nodes: &[NodeId], template: &str) -> Result<Vec<NodeImage>> {
        self.call(
            "reading the nodes' images",
            self.inner.current_images(nodes, template),
        )
        .await
    }
}

#[async_trait]
impl<T: PowerControl + ?Sized> PowerControl for Faulty<T> {
    async fn power_state(&self, nodes: &[NodeId]) -> Result<Vec<PowerState>> {
        self.call("reading power states", self.inner.power_state(nodes))
            .await
    }

    async fn power(&self, nodes: &[NodeId], operation: PowerOperation) -> Result<()> {
        self.call("changing power", self.inner.power(nodes, operation))
            .await
    }
}
