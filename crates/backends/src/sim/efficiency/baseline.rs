//! The no-upgrade baseline: the same trace from the same start point, with
//! nothing taken out of service, over the same window.

use super::EfficiencyError;
use super::simulation::{JobFigures, RunSetup, Simulation, StartSnapshot};

/// What the baseline measured.
#[derive(Debug, Clone)]
pub(super) struct BaselineRun {
    /// The cluster at the start point (the lower bound is computed from it).
    pub snapshot: StartSnapshot,
    /// The window's jobs without any upgrade.
    pub jobs: JobFigures,
}

/// Runs the baseline of `setup`. Must run on a runtime with a paused clock.
pub(super) async fn run_baseline(setup: &RunSetup) -> Result<BaselineRun, EfficiencyError> {
    let simulation = Simulation::start(setup).await?;
    let snapshot = simulation.snapshot.clone();
    let (jobs, _) = simulation.finish().await?;
    Ok(BaselineRun { snapshot, jobs })
}
