//! A simulated cluster implementing all four ports over one in-memory model,
//! for tests, the demo and the rollout-efficiency benchmark.
//!
//! - [`SimCluster`]: the cluster handle; its ports, inspection and [`SimReport`].
//! - [`SimConfig`], [`Workload`]: what to build; jobs come from an SWF trace
//!   ([`swf`], the bundled [`NASA_IPSC_TRACE`]) or a [`SyntheticWorkload`].
//! - [`Faults`]: what goes wrong, as data; [`Faulty`] wraps any port to make
//!   its calls fail at a seeded rate.
//! - [`SimCluster::open_with_state_file`]: a cluster that saves itself after
//!   every change, so it outlives the process; [`ScaledClock`]: simulated
//!   time at a multiple of wall time that continues across restarts.
//!
//! The simulation is deterministic: every random draw comes from generators
//! seeded by the configuration, and time is the clock's, so the same calls at
//! the same virtual times give the same cluster. Jobs are scheduled first come
//! first served with EASY backfilling, and draining a node has the real cost
//! of the capacity it holds idle while its job finishes.

mod admin;
mod boots;
mod cluster;
mod config;
pub mod efficiency;
mod faults;
mod faulty;
mod features;
mod images;
mod model;
mod node;
mod ports;
mod report;
mod reservations;
mod scaled_clock;
mod scheduler;
mod settings;
mod state_file;
pub mod swf;
mod synthetic;
mod topology;
mod weights;

pub use cluster::{SimCluster, SimState};
pub use config::{SimConfig, Workload};
pub use faults::{BOOT_FAILURE_REASON, Faults};
pub use faulty::{Faulty, LOST_ANSWER_WAIT, faulty_ports, faulty_ports_losing_answers};
pub use report::SimReport;
pub use scaled_clock::ScaledClock;
pub use settings::{SimSettings, SimTrace};
pub use swf::{NASA_IPSC_TRACE, SwfError, SwfTrace, TraceJob};
pub use synthetic::SyntheticWorkload;
pub use topology::{MAX_NODES, slurm_name, xname_of};

#[cfg(test)]
mod forecast_tests;
#[cfg(test)]
mod tests;
