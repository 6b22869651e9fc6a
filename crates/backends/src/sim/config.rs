//! How to build a simulated cluster: its size, workload, boot behaviour and faults.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::faults::Faults;
use super::swf::{self, SwfError, SwfTrace, TraceJob};
use super::synthetic::SyntheticWorkload;

/// The jobs the simulated cluster runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Workload {
    /// No jobs: every node is idle unless drained, booting or failed.
    #[default]
    None,
    /// Replay these jobs (from a trace or [`SyntheticWorkload`]), in submit order.
    Jobs(Vec<TraceJob>),
}

impl Workload {
    /// The bundled NASA iPSC/860 trace (128 nodes, Q4 1993).
    pub fn nasa_ipsc() -> Result<Self, SwfError> {
        swf::nasa_ipsc().map(Workload::from)
    }

    /// The jobs of the SWF file at `path`, gzipped or not.
    pub fn from_swf_file(path: &Path) -> Result<Self, SwfError> {
        swf::read_swf_file(path).map(Workload::from)
    }

    /// The jobs `parameters` generate.
    pub fn synthetic(parameters: &SyntheticWorkload) -> Self {
        Workload::Jobs(parameters.generate())
    }

    /// The jobs, none for [`Workload::None`].
    pub fn jobs(&self) -> &[TraceJob] {
        match self {
            Workload::None => &[],
            Workload::Jobs(jobs) => jobs,
        }
    }
}

impl From<SwfTrace> for Workload {
    fn from(trace: SwfTrace) -> Self {
        Workload::Jobs(trace.jobs)
    }
}

/// Everything a [`SimCluster`](super::SimCluster) is built from.
///
/// Same configuration and same sequence of calls at the same (virtual) times,
/// same cluster behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// How many compute nodes (128). Named as Cray xnames from
    /// `x1000c0s0b0n0`, 256 per cabinet, with NIDs from 1.
    pub nodes: usize,
    /// Seed of every random draw (boot durations, boot faults, port errors).
    pub seed: u64,
    /// The jobs to replay.
    pub workload: Workload,
    /// Where in the workload the simulation starts: jobs submitted before this
    /// offset are left out, later ones are submitted at sim time
    /// `submit - trace_offset` (0).
    pub trace_offset: Duration,
    /// How long a boot takes on average (4 minutes).
    pub boot_time: Duration,
    /// Each boot takes `boot_time` times a uniform factor in
    /// `[1 - boot_jitter, 1 + boot_jitter]` (0.25); between 0 and 1.
    pub boot_jitter: f64,
    /// What goes wrong (nothing).
    pub faults: Faults,
    /// The inventory group holding every node (`compute`).
    pub group: String,
    /// The boot template of the new image (`compute-image`).
    pub template: String,
    /// More boot templates that exist (none): the images the site ran
    /// before, for sessions that roll failed nodes back to one.
    pub other_templates: Vec<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 128,
            seed: 1,
            workload: Workload::None,
            trace_offset: Duration::ZERO,
            boot_time: Duration::from_secs(4 * 60),
            boot_jitter: 0.25,
            faults: Faults::none(),
            group: "compute".to_string(),
            template: "compute-image".to_string(),
            other_templates: Vec::new(),
        }
    }
}
