//! Forecast quality (issue 27): before each upgrade run, the dry run is
//! asked how long the upgrade will take, from the same state the run starts
//! from (the simulator's nodes, running jobs, queue and recent past; the
//! trace's future jobs are hidden, as the future is from a real workload
//! manager), and its forecast is compared with the makespan the run then
//! measures.

use std::time::{Duration, Instant};

use crus_core::SessionSpec;
use crus_core::controller::Controller;
use crus_core::dry_run::{DryRunAssumptions, forecast};
use crus_core::rollout::RolloutPolicy;
use serde::{Deserialize, Serialize};

use super::EfficiencyError;

/// Target: the median over start points of |forecast − actual| / actual.
pub const FORECAST_ERROR_TARGET: f64 = 0.15;
/// Target: the share of start points whose actual makespan lies within the
/// forecast's p10–p90.
pub const FORECAST_COVERAGE_TARGET: f64 = 0.80;

/// One forecast and how it compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastFigures {
    /// The forecast's median duration (`estimated_duration`), seconds.
    pub median_s: f64,
    /// Its 10th percentile, seconds.
    pub p10_s: f64,
    /// Its 90th percentile, seconds.
    pub p90_s: f64,
    /// Sampled runs it was made from.
    pub samples: u32,
    /// What it said dominates.
    pub dominated_by: String,
    /// |median − actual| / actual.
    pub abs_error: f64,
    /// Whether the actual makespan lay within p10–p90 (inclusive, to the second).
    pub inside: bool,
    /// Wall time the forecast took, milliseconds (not deterministic; the
    /// figures above are).
    pub wall_ms: f64,
}

/// Forecast quality of one policy and step over the start points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastCheck {
    /// The policy.
    pub policy: String,
    /// The step size.
    pub step: u32,
    /// Start points measured.
    pub starts: usize,
    /// Median over them of the absolute error, percent of the actual makespan.
    pub median_abs_error_pct: f64,
    /// The worst absolute error, percent.
    pub worst_abs_error_pct: f64,
    /// Percent of start points whose actual makespan lay within p10–p90.
    pub inside_p10_p90_pct: f64,
    /// Median error within [`FORECAST_ERROR_TARGET`].
    pub error_met: bool,
    /// Coverage at least [`FORECAST_COVERAGE_TARGET`].
    pub coverage_met: bool,
}

/// What the dry run forecasts for `spec` under `policy` now, as `crus plan`
/// would ask it, with boots of `boot_time` varying by `boot_jitter`.
pub(super) async fn ask(
    controller: &Controller,
    spec: &SessionSpec,
    policy: &RolloutPolicy,
    boot_time: Duration,
    boot_jitter: f64,
) -> Result<(crus_core::dry_run::DryRun, f64), EfficiencyError> {
    let wall = Instant::now();
    let input = controller
        .prepare_dry_run(spec.clone(), policy)
        .await
        .map_err(|error| {
            EfficiencyError::Measurement(format!("the dry run refused the session: {error}"))
        })?;
    let assumptions = DryRunAssumptions {
        boot_time,
        boot_time_spread: boot_jitter,
        ..DryRunAssumptions::default()
    };
    let plan = forecast(input, &assumptions);
    Ok((plan, wall.elapsed().as_secs_f64() * 1000.0))
}

/// How `plan` compares with the `actual` makespan.
pub(super) fn compare(
    plan: &crus_core::dry_run::DryRun,
    actual: Duration,
    wall_ms: f64,
) -> ForecastFigures {
    let actual_s = actual.as_secs_f64();
    let median_s = plan.estimated_duration.as_secs_f64();
    let whole = actual.as_secs();
    ForecastFigures {
        median_s,
        p10_s: plan.p10.as_secs_f64(),
        p90_s: plan.p90.as_secs_f64(),
        samples: plan.samples,
        dominated_by: plan.dominated_by.clone(),
        abs_error: if actual_s > 0.0 {
            (median_s - actual_s).abs() / actual_s
        } else {
            0.0
        },
        inside: plan.p10.as_secs() <= whole && whole <= plan.p90.as_secs(),
        wall_ms,
    }
}

/// The check of `figures` (one per start point) for `policy` at `step`.
pub(super) fn check(policy: &str, step: u32, figures: &[&ForecastFigures]) -> ForecastCheck {
    let mut errors: Vec<f64> = figures.iter().map(|figures| figures.abs_error).collect();
    errors.sort_by(f64::total_cmp);
    let median = match errors.len() {
        0 => 0.0,
        len if len % 2 == 1 => errors[len / 2],
        len => (errors[len / 2 - 1] + errors[len / 2]) / 2.0,
    };
    let inside = figures.iter().filter(|figures| figures.inside).count();
    let coverage = if figures.is_empty() {
        0.0
    } else {
        inside as f64 / figures.len() as f64
    };
    ForecastCheck {
        policy: policy.to_string(),
        step,
        starts: figures.len(),
        median_abs_error_pct: median * 100.0,
        worst_abs_error_pct: errors.last().copied().unwrap_or(0.0) * 100.0,
        inside_p10_p90_pct: coverage * 100.0,
        error_met: !figures.is_empty() && median <= FORECAST_ERROR_TARGET,
        coverage_met: !figures.is_empty() && coverage >= FORECAST_COVERAGE_TARGET,
    }
}
