//! How long a dry run's forecast takes on a large machine (issue 27: a
//! 1,000-node machine answers in at most 2 s):
//! `cargo bench -p crus-backends --bench forecast`.
//!
//! A simulated cluster of 1,000 nodes runs a seeded synthetic workload (85%
//! offered load) for a day, so its nodes are busy, its queue holds jobs and
//! it has a day of history; then, for every policy of the efficiency bench
//! and steps of 32 and 100 nodes, the dry run is asked for a forecast with
//! the server's defaults (assumptions and budget) and its wall time is
//! printed. It reads its input through the controller as the server does;
//! only the planning, which runs apart from the request tasks in the server,
//! is timed. It never fails on a figure; it prints `NOT MET` instead.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crus_backends::sim::efficiency::Policy;
use crus_backends::sim::{SimCluster, SimConfig, SyntheticWorkload, Workload};
use crus_core::SessionSpec;
use crus_core::clock::{Clock, TokioClock};
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::dry_run::{DryRunAssumptions, DryRunBudget, dry_run_within};
use crus_core::store::{MemoryStore, SessionStore};
use crus_core::time::Timestamp;

const NODES: usize = 1000;
const TARGET: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("forecast bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|error| format!("cannot start a runtime: {error}"))?;
    runtime.block_on(async {
        let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_798_761_600)));
        let cluster = SimCluster::new(
            SimConfig {
                nodes: NODES,
                workload: Workload::synthetic(&SyntheticWorkload {
                    nodes: NODES,
                    utilisation: 0.85,
                    seed: 7,
                    duration: Duration::from_secs(3 * 24 * 3600),
                }),
                boot_time: Duration::from_secs(600),
                boot_jitter: 0.0,
                ..SimConfig::default()
            },
            clock.clone() as Arc<dyn Clock>,
        )
        .map_err(|error| format!("cannot build the cluster: {error}"))?;
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
        println!(
            "forecast of a {NODES}-node machine after a day of synthetic load: {} jobs running, {} queued",
            cluster.running_jobs(),
            cluster.queued_jobs()
        );
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
        let controller = Controller::new(
            cluster.ports(),
            store,
            clock as Arc<dyn Clock>,
            ControllerConfig::default(),
        );
        println!(
            "{:>4}  {:<36} {:>7} {:>10} {:>10} {:>10} {:>9}",
            "step", "policy", "samples", "median", "p10", "p90", "wall"
        );
        let mut slowest = Duration::ZERO;
        for step in [32, 100] {
            for policy in Policy::ALL {
                let spec = SessionSpec {
                    failed_label: "crus-failed".into(),
                    starting_label: "compute".into(),
                    upgrade_step_size: step,
                    upgrade_template_id: "compute-image".into(),
                    upgrading_label: "crus-upgrading".into(),
                    workload_manager_type: "slurm".into(),
                    policy: None,
                };
                let input = controller
                    .prepare_dry_run(spec, &policy.rollout_policy(Duration::from_secs(1800)))
                    .await
                    .map_err(|error| format!("the dry run refused the session: {error}"))?;
                let wall = Instant::now();
                let plan = dry_run_within(
                    input,
                    &DryRunAssumptions::default(),
                    &DryRunBudget::default(),
                    &AtomicBool::new(false),
                )
                .map_err(|stopped| format!("{} at step {step}: {stopped}", policy.name()))?;
                let wall = wall.elapsed();
                slowest = slowest.max(wall);
                let text = |duration: Duration| {
                    humantime::format_duration(Duration::from_secs(duration.as_secs() / 60 * 60))
                        .to_string()
                };
                println!(
                    "{step:>4}  {:<36} {:>7} {:>10} {:>10} {:>10} {:>7.0}ms",
                    policy.name(),
                    plan.samples,
                    text(plan.estimated_duration),
                    text(plan.p10),
                    text(plan.p90),
                    wall.as_secs_f64() * 1000.0
                );
            }
        }
        println!(
            "slowest forecast {:.2} s (target <= {:.0} s: {})",
            slowest.as_secs_f64(),
            TARGET.as_secs_f64(),
            if slowest <= TARGET { "met" } else { "NOT MET" }
        );
        Ok(())
    })
}
