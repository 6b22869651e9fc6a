//! What the workload manager can tell about its jobs beyond node states: the
//! jobs running and waiting now, and the jobs of the recent past. Dry runs
//! read it ([`super::WorkloadManager::queue`]) to forecast how jobs that are
//! queued or still to come take nodes before an upgrade reaches them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::node::NodeId;
use crate::time::Timestamp;

/// The workload manager's jobs as of one reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadQueue {
    /// Jobs running now.
    pub running: Vec<RunningJob>,
    /// Jobs waiting to start, in the order the scheduler considers them
    /// (priority order; submit order for first come, first served).
    pub pending: Vec<PendingJob>,
    /// Jobs submitted since [`WorkloadQueue::recent_since`], finished or not:
    /// the recent past the forecast learns its arrivals from.
    pub recent: Vec<PastJob>,
    /// From when `recent` covers submissions; `None` when no history is
    /// known (then no arrivals are forecast).
    pub recent_since: Option<Timestamp>,
}

/// A running job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningJob {
    /// The nodes it runs on.
    pub nodes: Vec<NodeId>,
    /// When it started.
    pub started: Timestamp,
    /// Its time limit; `None` when it has none.
    pub time_limit: Option<Duration>,
}

/// A job waiting to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingJob {
    /// How many nodes it asks for.
    pub nodes: u32,
    /// Its time limit; `None` when it has none.
    pub time_limit: Option<Duration>,
    /// When it was submitted.
    pub submitted: Timestamp,
}

/// A job of the recent past.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastJob {
    /// When it was submitted.
    pub submitted: Timestamp,
    /// How many nodes it asked for.
    pub nodes: u32,
    /// Its time limit; `None` when it has none.
    pub time_limit: Option<Duration>,
    /// How long it ran, once it has ended; `None` while it waits or runs.
    pub run_time: Option<Duration>,
}
