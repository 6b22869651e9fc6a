//! Controller scale (issue 7, part 2): what crus itself costs per node, with
//! backends that answer at once, so only the controller is measured.
//!
//! - a whole session of 10,000 and 100,000 nodes, step 1,000, driven by a real
//!   [`Controller`] over an in-memory store, on a paused tokio clock (the
//!   poll interval passes in no wall time): wall time per node upgraded;
//! - the heap the controller holds for a session (its [`RolloutState`] and
//!   the stored record), and the peak heap during the run, per node, read
//!   from a counting global allocator;
//! - dry-run plans ordered by drain cost with `spread: chassis`, at growing
//!   sizes 1,000, 10,000 and 100,000 (`CRUS_BENCH_PLAN_NODES` sets the largest);
//! - one state-machine transition: an action answered and the next one polled.
//!
//! Run with `cargo bench --bench controller`. Targets (issue 25): ≤ 10 µs of
//! CPU and ≤ 1 KiB of peak heap per node of a 100,000-node session; a
//! 100,000-node plan in ≤ 5 s. The session's CPU time is the thread's own
//! (the runtime runs on the bench's thread), so other work on a shared
//! machine does not count in it as it does in the wall time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{BatchSize, Criterion, criterion_group};
use crus::core::clock::TokioClock;
use crus::core::controller::{Controller, ControllerConfig};
use crus::core::dry_run::{DryRunAssumptions, dry_run};
use crus::core::ports::{
    BootHandle, BootOrchestrator, BootRequest, Inventory, NodeBootState, NodeBootStatus, Ports,
    WorkloadManager, WorkloadNode, WorkloadState,
};
use crus::core::rollout::{ActionOutput, Domain, Order, Rollout, RolloutPolicy, Strategy};
use crus::core::store::{MemoryStore, SessionStore, header_of};
use crus::core::{NodeFacts, Timestamp};
use crus::{NodeId, Result, SessionSpec};
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const EPOCH: Timestamp = Timestamp::from_secs(1_800_000_000);
const STEP: u32 = 1_000;

/// `count` nodes named as HPE Cray EX xnames: 2 nodes a blade, 8 slots a
/// chassis, 8 chassis a cabinet, so topology rules have real domains.
fn xnames(count: usize) -> Vec<NodeId> {
    (0..count)
        .map(|index| {
            let (node, rest) = (index % 2, index / 2);
            let (slot, rest) = (rest % 8, rest / 8);
            let (chassis, cabinet) = (rest % 8, rest / 8);
            NodeId::from(format!("x{}c{chassis}s{slot}b0n{node}", 1000 + cabinet).as_str())
        })
        .collect()
}

fn spec() -> SessionSpec {
    SessionSpec {
        starting_label: "compute".into(),
        upgrading_label: "upgrading".into(),
        failed_label: "failed".into(),
        upgrade_step_size: STEP,
        upgrade_template_id: "image".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    }
}

/// Groups in memory; every node exists and is enabled.
struct InstantInventory {
    groups: Mutex<BTreeMap<String, BTreeSet<NodeId>>>,
}

impl InstantInventory {
    fn new(nodes: &[NodeId]) -> Self {
        let mut groups = BTreeMap::new();
        groups.insert("compute".to_string(), nodes.iter().cloned().collect());
        InstantInventory {
            groups: Mutex::new(groups),
        }
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeSet<NodeId>>> {
        self.groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Inventory for InstantInventory {
    async fn group_members(&self, label: &str) -> Result<Vec<NodeId>> {
        Ok(self
            .groups()
            .get(label)
            .map(|members| members.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn create_group(&self, label: &str) -> Result<()> {
        self.groups().entry(label.to_string()).or_default();
        Ok(())
    }

    async fn add_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        self.groups()
            .entry(label.to_string())
            .or_default()
            .extend(nodes.iter().cloned());
        Ok(())
    }

    async fn remove_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        if let Some(members) = self.groups().get_mut(label) {
            for node in nodes {
                members.remove(node);
            }
        }
        Ok(())
    }

    async fn node_facts(&self, nodes: &[NodeId]) -> Result<Vec<NodeFacts>> {
        Ok(nodes
            .iter()
            .map(|node| NodeFacts {
                id: node.clone(),
                nid: None,
                enabled: true,
                state: Some("Ready".into()),
            })
            .collect())
    }
}

/// A workload manager with no jobs: a drained node is drained at once.
#[derive(Default)]
struct InstantWorkload {
    drained: Mutex<HashSet<NodeId>>,
}

impl InstantWorkload {
    fn drained(&self) -> std::sync::MutexGuard<'_, HashSet<NodeId>> {
        self.drained
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl WorkloadManager for InstantWorkload {
    async fn drain(&self, nodes: &[NodeId], _reason: &str) -> Result<()> {
        self.drained().extend(nodes.iter().cloned());
        Ok(())
    }

    async fn resume(&self, nodes: &[NodeId]) -> Result<()> {
        let mut drained = self.drained();
        for node in nodes {
            drained.remove(node);
        }
        Ok(())
    }

    async fn fail(&self, _nodes: &[NodeId], _reason: &str) -> Result<()> {
        Ok(())
    }

    async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>> {
        let drained = self.drained();
        Ok(nodes
            .iter()
            .map(|node| WorkloadNode {
                node: node.clone(),
                state: if drained.contains(node) {
                    WorkloadState::Drained
                } else {
                    WorkloadState::Idle
                },
                responding: true,
                jobs_end_by: None,
                reason: None,
            })
            .collect())
    }
}

/// Boots that have ended by the time anyone asks.
#[derive(Default)]
struct InstantBoot {
    boots: Mutex<HashMap<String, Vec<NodeId>>>,
}

#[async_trait]
impl BootOrchestrator for InstantBoot {
    async fn template_exists(&self, _template: &str) -> Result<bool> {
        Ok(true)
    }

    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
        self.boots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(request.key.clone(), request.nodes.clone());
        Ok(BootHandle {
            key: request.key.clone(),
            id: request.key.clone(),
        })
    }

    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        let boots = self
            .boots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(boots
            .get(&handle.key)
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|node| NodeBootStatus {
                        node: node.clone(),
                        state: NodeBootState::Ok,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap_or_else(|error| panic!("cannot build a tokio runtime: {error}"))
}

/// CPU time this thread has used, from `/proc/thread-self/schedstat`
/// (Linux; its first field is nanoseconds on the CPU): `None` elsewhere.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// What one whole session cost.
struct SessionRun {
    wall: Duration,
    /// CPU time of the thread that ran the session (controller, store and
    /// instant backends), when the system tells it.
    cpu: Option<Duration>,
    /// The session's header as stored once it finished (its record without
    /// its nodes, JSON): what a store writes at every persist, and what
    /// etcd must take in one request (1.5 MiB by default).
    header_bytes: usize,
    /// Heap held by the session's state and record once it finished, above
    /// what the backends hold.
    state_bytes: usize,
    /// Peak heap during the run, above the heap before it (backends included).
    peak_bytes: usize,
}

/// Creates and drives one session of `count` nodes to completion.
fn run_session(count: usize) -> SessionRun {
    let runtime = runtime();
    runtime.block_on(async {
        let nodes = xnames(count);
        let ports = Ports {
            inventory: Arc::new(InstantInventory::new(&nodes)),
            workload_manager: Arc::new(InstantWorkload::default()),
            boot_orchestrator: Arc::new(InstantBoot::default()),
            power_control: None,
            health_probe: None,
            alert_gate: None,
            hook_runner: None,
        };
        drop(nodes);
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(TokioClock::starting_at(EPOCH));
        let controller = Controller::new(ports, store.clone(), clock, ControllerConfig::default());
        let before = HEAP.current_usage();
        HEAP.reset_peak_usage();
        let cpu_before = thread_cpu();
        let started = Instant::now();
        let status = controller
            .create_session(spec(), RolloutPolicy::default())
            .await
            .unwrap_or_else(|error| panic!("cannot create the session: {error}"));
        controller
            .drive(status.upgrade_id)
            .await
            .unwrap_or_else(|error| panic!("the session failed: {error}"));
        let wall = started.elapsed();
        let cpu = thread_cpu()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        let peak_bytes = HEAP.peak_usage().saturating_sub(before);
        let state_bytes = HEAP.current_usage().saturating_sub(before);
        let record = store
            .get(status.upgrade_id)
            .await
            .unwrap_or_else(|error| panic!("cannot read the session back: {error}"))
            .unwrap_or_else(|| panic!("the session is gone"));
        let upgraded = record.value.status().upgrade_step_size;
        black_box(upgraded);
        let header_bytes = serde_json::to_vec(&header_of(&record.value))
            .map(|encoded| encoded.len())
            .unwrap_or(0);
        SessionRun {
            wall,
            cpu,
            header_bytes,
            state_bytes,
            peak_bytes,
        }
    })
}

/// Whole sessions: measured by hand (one run is seconds, and a criterion
/// sample of ten would say nothing more), printed per node against the targets.
fn whole_sessions() {
    println!("\nController scale: whole sessions, step {STEP}, instant backends");
    println!(
        "{:>9}  {:>10}  {:>12}  {:>12}  {:>12}  {:>12}  {:>10}",
        "nodes", "wall", "wall/node", "CPU/node", "state/node", "peak/node", "header"
    );
    let largest = scale("CRUS_BENCH_SESSION_NODES", 100_000);
    let runs_each = scale("CRUS_BENCH_SESSION_RUNS", 3).max(1);
    for count in [10_000.min(largest), largest] {
        // The best of a few: the least disturbed by the rest of the machine.
        let runs: Vec<SessionRun> = (0..runs_each).map(|_| run_session(count)).collect();
        let best = runs
            .iter()
            .min_by_key(|run| run.cpu.unwrap_or(run.wall))
            .unwrap_or_else(|| panic!("no run"));
        let per_node = best.wall.as_secs_f64() * 1e6 / count as f64;
        let cpu_per_node = best.cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / count as f64);
        let state = best.state_bytes as f64 / count as f64;
        let peak = runs.iter().map(|run| run.peak_bytes).max().unwrap_or(0) as f64 / count as f64;
        let cpu_text = cpu_per_node.map_or("?".to_string(), |cpu| format!("{cpu:.2} µs"));
        println!(
            "{count:>9}  {:>8.2} s  {per_node:>9.2} µs  {cpu_text:>12}  {state:>10.0} B  {peak:>10.0} B  {:>8} kB   targets: CPU ≤ 10 µs {}, peak ≤ 1 KiB {}, header ≤ 1.5 MiB {}",
            best.wall.as_secs_f64(),
            best.header_bytes / 1000,
            verdict(cpu_per_node.unwrap_or(per_node) <= 10.0),
            verdict(peak <= 1024.0),
            verdict(best.header_bytes <= 1_572_864),
        );
    }
    println!(
        "CPU/node: the session thread's CPU time (wall/node when the system does not say); state/node: heap still held after the session (its state in the store); peak/node: the most heap in use during it, over the heap before; header: the finished session's record without its nodes, as JSON."
    );
}

/// A size from the environment (for profiling at a smaller scale), or `default`.
fn scale(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

/// The cluster a plan starts from: every other node runs a job that ends
/// within the day.
fn busy_half(nodes: &[NodeId]) -> Vec<WorkloadNode> {
    nodes
        .iter()
        .enumerate()
        .map(|(index, node)| WorkloadNode {
            node: node.clone(),
            state: if index % 2 == 0 {
                WorkloadState::Idle
            } else {
                WorkloadState::Allocated
            },
            responding: true,
            jobs_end_by: (index % 2 == 1)
                .then(|| EPOCH + Duration::from_secs((index as u64 * 7919) % 86_400)),
            reason: None,
        })
        .collect()
}

/// Dry-run plans, drain-cost order, one chassis at a time, step 1,000: timed
/// by hand at growing sizes, once each, since a criterion sample of a
/// 100,000-node plan (seconds each) would take minutes.
fn plans() {
    let policy = RolloutPolicy {
        strategy: Strategy::Continuous,
        order: Order::Topology,
        spread: Some(Domain::Chassis),
        ..RolloutPolicy::default()
    };
    let assumptions = DryRunAssumptions::default();
    let largest = scale("CRUS_BENCH_PLAN_NODES", 100_000);
    println!("\nPlan: dry run, continuous, topology spread chassis, half the nodes busy");
    println!("{:>9}  {:>10}  {:>12}", "nodes", "wall", "per node");
    let mut count = 1_000.min(largest);
    loop {
        let nodes = xnames(count);
        let observed = busy_half(&nodes);
        let started = Instant::now();
        let plan = dry_run(
            spec(),
            policy.clone(),
            nodes,
            &observed,
            EPOCH,
            &assumptions,
        );
        let wall = started.elapsed();
        black_box(plan);
        println!(
            "{count:>9}  {:>8.2} s  {:>9.1} µs{}",
            wall.as_secs_f64(),
            wall.as_secs_f64() * 1e6 / count as f64,
            if count >= 100_000 {
                format!("   target: ≤ 5 s {}", verdict(wall.as_secs_f64() <= 5.0))
            } else {
                String::new()
            }
        );
        if count >= largest {
            break;
        }
        count = (count * 10).min(largest);
    }
}

/// One transition of the state machine: the answer to an action handled and
/// the next action polled, in a session of 10,000 nodes that is mid-way.
fn transition(criterion: &mut Criterion) {
    let nodes = xnames(10_000);
    let mut rollout = Rollout::new(uuid::Uuid::nil(), spec(), RolloutPolicy::default(), EPOCH);
    rollout.handle_timeout(EPOCH);
    // Read the starting group, so the session has its nodes.
    let Some((id, _)) = rollout.poll_action() else {
        panic!("a new session asks for its starting group");
    };
    rollout.handle_outcome(EPOCH, id, Ok(ActionOutput::Members(nodes)));
    criterion.bench_function("transition (10k-node session)", |bench| {
        bench.iter_batched(
            || rollout.clone(),
            |mut rollout| {
                if let Some((id, action)) = rollout.poll_action() {
                    let output = match action {
                        crus::core::rollout::Action::PrepareGroups { .. } => {
                            ActionOutput::GroupsPrepared {
                                cleared_failed: Vec::new(),
                                cleared_upgrading: Vec::new(),
                            }
                        }
                        _ => ActionOutput::Done,
                    };
                    rollout.handle_outcome(EPOCH, id, Ok(output));
                }
                rollout
            },
            BatchSize::LargeInput,
        );
    });
}

criterion_group!(benches, transition);

fn main() {
    whole_sessions();
    plans();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
