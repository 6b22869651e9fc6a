//! One upgrade run: from the start point, a session of the whole `compute`
//! group under one policy and step size, driven by the real controller to
//! its end in virtual time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crus_core::clock::Clock;
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::rollout::{NodePhase, RolloutState};
use crus_core::store::{MemoryStore, SessionStore};
use crus_core::{NodeId, SessionSpec, Timestamp};

use super::super::SimReport;
use super::EfficiencyError;
use super::forecast::{self, ForecastFigures};
use super::ledger::JobRecord;
use super::policies::Policy;
use super::simulation::{JobFigures, RunSetup, Simulation, StartSnapshot};

/// What one upgrade run measured.
#[derive(Debug, Clone)]
pub(super) struct UpgradeRun {
    /// The cluster at the start point, to check against the baseline's.
    pub snapshot: StartSnapshot,
    /// From the session's creation to its end.
    pub makespan: Duration,
    /// The simulator's report when the session ended.
    pub at_finish: SimReport,
    /// The window's jobs with this upgrade.
    pub jobs: JobFigures,
    /// Nodes upgraded.
    pub upgraded: usize,
    /// Nodes that ended in any other phase.
    pub not_upgraded: usize,
    /// Node-seconds taken nodes waited for jobs that were running when the
    /// upgrade started (the lower bound accounts for these).
    pub drain_wait_prior_node_s: f64,
    /// Node-seconds taken nodes waited for jobs that started on them after
    /// the upgrade started, while they were not yet taken (the lower bound
    /// cannot see these).
    pub drain_wait_new_node_s: f64,
    /// The dry run's forecast from the start point, against the makespan.
    pub forecast: ForecastFigures,
}

/// Runs `policy` at `step` on `setup`. Must run on a runtime with a paused clock.
pub(super) async fn run_upgrade(
    setup: &RunSetup,
    policy: Policy,
    step: u32,
    boot_timeout: Duration,
) -> Result<UpgradeRun, EfficiencyError> {
    let simulation = Simulation::start(setup).await?;
    let snapshot = simulation.snapshot.clone();
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let controller = Controller::new(
        simulation.observer.ports(),
        store.clone(),
        simulation.clock.clone() as Arc<dyn Clock>,
        // As `crus serve` runs it. (A longer command poll would delay the
        // session's start: a new session does nothing until the controller
        // first wakes, at the first command poll.)
        ControllerConfig::default(),
    );
    let spec = SessionSpec {
        failed_label: "crus-failed".into(),
        starting_label: "compute".into(),
        upgrade_step_size: step,
        upgrade_template_id: "compute-image".into(),
        upgrading_label: "crus-upgrading".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    };
    let fail = |doing: &str, error: crus_core::Error| {
        EfficiencyError::simulation(&format!("{} at step {step}: {doing}", policy.name()), error)
    };
    // Asked first, from the very state the session then starts from; it
    // touches nothing and takes no simulated time.
    let (plan, wall_ms) = forecast::ask(
        &controller,
        &spec,
        &policy.rollout_policy(boot_timeout),
        setup.boot_time,
        setup.boot_jitter,
    )
    .await?;
    let status = controller
        .create_session(spec, policy.rollout_policy(boot_timeout))
        .await
        .map_err(|error| fail("creating the session", error))?;
    controller
        .drive(status.upgrade_id)
        .await
        .map_err(|error| fail("driving the session", error))?;
    let record = store
        .get(status.upgrade_id)
        .await
        .map_err(|error| fail("reading the session", error))?
        .ok_or_else(|| {
            EfficiencyError::Measurement(format!(
                "{} at step {step}: the session record vanished",
                policy.name()
            ))
        })?;
    let state = record.value.rollout;
    let finished: Timestamp = state.finished_at.unwrap_or_else(|| simulation.clock.now());
    let at_finish = simulation.cluster.report();
    let upgraded = state.count(NodePhase::Done);
    let not_upgraded = state.nodes.len() - upgraded;
    let (drain_wait_prior_node_s, drain_wait_new_node_s) = drain_waits(
        &state,
        &simulation.cluster.node_ids(),
        &simulation.observer.jobs(),
        snapshot.at,
    );
    let (jobs, _) = simulation.finish().await?;
    let makespan = finished.saturating_since(snapshot.at);
    Ok(UpgradeRun {
        forecast: forecast::compare(&plan, makespan, wall_ms),
        makespan,
        snapshot,
        at_finish,
        jobs,
        upgraded,
        not_upgraded,
        drain_wait_prior_node_s,
        drain_wait_new_node_s,
    })
}

/// How long the session's nodes waited, once taken, for the job running on
/// them then to end, split by whether that job was already running at
/// `start` or started later: (prior, new) in node-seconds.
fn drain_waits(
    state: &RolloutState,
    node_ids: &[NodeId],
    jobs: &BTreeMap<u64, JobRecord>,
    start: Timestamp,
) -> (f64, f64) {
    let mut prior = 0.0;
    let mut new = 0.0;
    for record in &state.nodes {
        let (Some(taken), Some(index)) = (
            record.taken_at,
            node_ids.iter().position(|id| *id == record.id),
        ) else {
            continue;
        };
        let running = jobs.values().find(|job| {
            job.nodes.contains(&index)
                && job.started <= taken
                && job.run_time.is_none_or(|run| job.started + run > taken)
        });
        let Some(job) = running else {
            continue;
        };
        let wait = job.run_time.map_or(0.0, |run| {
            (job.started + run).saturating_since(taken).as_secs_f64()
        });
        if job.started < start {
            prior += wait;
        } else {
            new += wait;
        }
    }
    (prior, new)
}
