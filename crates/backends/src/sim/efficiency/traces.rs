//! The job traces the benchmark replays, and where in each the upgrades start.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::super::{SyntheticWorkload, TraceJob, swf};
use super::EfficiencyError;

/// A trace to replay.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceChoice {
    /// The bundled NASA Ames iPSC/860 trace (Q4 1993, 128 nodes).
    Nasa,
    /// A seeded synthetic high-utilisation workload for 128 nodes.
    Synthetic,
    /// A site's own Standard Workload Format file, gzip or plain (read as
    /// `crus demo --trace` reads it), replayed on a cluster of `nodes` nodes.
    File {
        /// The file.
        path: PathBuf,
        /// The cluster's size: jobs wider than it are left out (and counted
        /// in the trace's description), since they could never start.
        nodes: usize,
    },
}

impl TraceChoice {
    /// Its name in the table and the JSON file: as `--trace` takes it for
    /// the bundled traces, the file's name for a site's own.
    pub fn name(&self) -> String {
        match self {
            TraceChoice::Nasa => "nasa".to_string(),
            TraceChoice::Synthetic => "synthetic".to_string(),
            TraceChoice::File { path, .. } => path.file_name().map_or_else(
                || path.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            ),
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

    /// The traces `--trace TRACE [--nodes N]` selects: `nasa`, `synthetic`
    /// or `both`, or any other value as the path of a Standard Workload
    /// Format file replayed on `nodes` nodes (which it then needs; the
    /// bundled traces have their own size and refuse one).
    pub fn parse_with_nodes(text: &str, nodes: Option<usize>) -> Result<Vec<TraceChoice>, String> {
        match (TraceChoice::parse_selection(text), nodes) {
            (Ok(_), Some(_)) => Err(format!(
                "--nodes is for a trace file; the {text} trace has its own size (128 nodes)"
            )),
            (Ok(choices), None) => Ok(choices),
            (Err(_), None) => Err(format!(
                "--trace {text} is read as a Standard Workload Format file: give the cluster's size with --nodes N"
            )),
            (Err(_), Some(0)) => Err("--nodes must be at least 1".to_string()),
            (Err(_), Some(nodes)) => Ok(vec![TraceChoice::File {
                path: PathBuf::from(text),
                nodes,
            }]),
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
    choice: &TraceChoice,
    synthetic: &SyntheticWorkload,
) -> Result<LoadedTrace, EfficiencyError> {
    let choice = choice.clone();
    match &choice {
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
        TraceChoice::File { path, nodes } => {
            let nodes = *nodes;
            if nodes == 0 {
                return Err(EfficiencyError::Measurement(format!(
                    "trace {}: the cluster needs at least one node (--nodes)",
                    path.display()
                )));
            }
            let trace = swf::read_swf_file(path).map_err(EfficiencyError::Trace)?;
            let read = trace.jobs.len();
            let mut jobs: Vec<TraceJob> = trace
                .jobs
                .into_iter()
                .filter(|job| job.nodes as usize <= nodes)
                .collect();
            let too_wide = read - jobs.len();
            if jobs.is_empty() {
                return Err(EfficiencyError::Measurement(format!(
                    "trace {}: no job fits on {nodes} nodes ({read} jobs read, {} records skipped); give --nodes the trace's machine size",
                    path.display(),
                    trace.skipped
                )));
            }
            jobs.sort_by_key(|job| job.submit);
            let description = format!(
                "{} ({nodes} nodes, {} jobs{})",
                path.display(),
                jobs.len(),
                if too_wide > 0 {
                    format!(", {too_wide} wider than the cluster left out")
                } else {
                    String::new()
                }
            );
            Ok(LoadedTrace {
                choice,
                description,
                nodes,
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
