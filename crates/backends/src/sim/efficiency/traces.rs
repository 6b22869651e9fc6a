//! The job traces the benchmark replays, and where in each the upgrades start.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::super::{SyntheticWorkload, TraceJob, swf};
use super::EfficiencyError;

/// A trace to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceChoice {
    /// The bundled NASA Ames iPSC/860 trace (Q4 1993, 128 nodes).
    Nasa,
    /// A seeded synthetic high-utilisation workload for 128 nodes.
    Synthetic,
}

impl TraceChoice {
    /// Its name in the table and the JSON file, as `--trace` takes it.
    pub fn name(self) -> &'static str {
        match self {
            TraceChoice::Nasa => "nasa",
            TraceChoice::Synthetic => "synthetic",
        }
    }

    /// The traces `--trace` selects: `nasa`, `synthetic` or `both`.
    pub fn parse_selection(text: &str) -> Result<Vec<TraceChoice>, String> {
        match text {
            "nasa" => Ok(vec![TraceChoice::Nasa]),
            "synthetic" => Ok(vec![TraceChoice::Synthetic]),
            "both" => Ok(vec![TraceChoice::Nasa, TraceChoice::Synthetic]),
            other => Err(format!(
                "unknown trace {other:?}: expected nasa, synthetic or both"
            )),
        }
    }
}

/// A loaded trace.
#[derive(Debug, Clone)]
pub(super) struct LoadedTrace {
    /// Which.
    pub choice: TraceChoice,
    /// One line about it.
    pub description: String,
    /// Cluster size.
    pub nodes: usize,
    /// Its jobs, in submit order.
    pub jobs: Arc<Vec<TraceJob>>,
}

/// Loads `choice`; the synthetic trace from `synthetic`.
pub(super) fn load(
    choice: TraceChoice,
    synthetic: &SyntheticWorkload,
) -> Result<LoadedTrace, EfficiencyError> {
    match choice {
        TraceChoice::Nasa => {
            let trace = swf::nasa_ipsc().map_err(EfficiencyError::Trace)?;
            let mut jobs = trace.jobs;
            jobs.sort_by_key(|job| job.submit);
            Ok(LoadedTrace {
                choice,
                description: format!(
                    "NASA Ames iPSC/860, Q4 1993 (bundled, 128 nodes, {} jobs)",
                    jobs.len()
                ),
                nodes: 128,
                jobs: Arc::new(jobs),
            })
        }
        TraceChoice::Synthetic => {
            let jobs = synthetic.generate();
            Ok(LoadedTrace {
                choice,
                description: format!(
                    "synthetic, {} nodes, offered load {:.0}%, seed {}, {} days ({} jobs)",
                    synthetic.nodes,
                    synthetic.utilisation * 100.0,
                    synthetic.seed,
                    synthetic.duration.as_secs() / 86_400,
                    jobs.len()
                ),
                nodes: synthetic.nodes,
                jobs: Arc::new(jobs),
            })
        }
    }
}

/// `count` start points spread evenly over the part of `jobs` that has
/// `warmup` of trace before it and `horizon` after: the midpoints of equal
/// slices, so they fall at varied times of day and days of the week.
pub(super) fn start_points(
    jobs: &[TraceJob],
    count: usize,
    warmup: Duration,
    horizon: Duration,
) -> Result<Vec<Duration>, EfficiencyError> {
    let first = jobs.first().map_or(Duration::ZERO, |job| job.submit);
    let last = jobs.last().map_or(Duration::ZERO, |job| job.submit);
    let earliest = first + warmup;
    let latest = last.saturating_sub(horizon);
    if count == 0 || latest <= earliest {
        return Err(EfficiencyError::Measurement(format!(
            "the trace spans {} days, too short for {} of warm-up and {} of window",
            last.saturating_sub(first).as_secs() / 86_400,
            whole_hours(warmup),
            whole_hours(horizon)
        )));
    }
    let span = (latest - earliest).as_secs_f64();
    Ok((0..count)
        .map(|index| {
            let offset = span * (index as f64 + 0.5) / count as f64;
            earliest + Duration::from_secs(offset.round() as u64)
        })
        .collect())
}

fn whole_hours(duration: Duration) -> String {
    format!("{} h", duration.as_secs() / 3600)
}

/// A start point as people read it: `day 12 14:05` of the trace.
pub(super) fn label(start: Duration) -> String {
    let seconds = start.as_secs();
    format!(
        "day {} {:02}:{:02}",
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60
    )
}
