//! What a dry run plans from, what it assumes where the cluster does not
//! say, and how much it may simulate before it gives up.

use std::time::Duration;

use crate::node::NodeId;
use crate::ports::{NodeImage, WorkloadNode, WorkloadQueue};
use crate::rollout::RolloutPolicy;
use crate::session::SessionSpec;
use crate::time::Timestamp;

/// What the model assumes where the cluster does not say.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRunAssumptions {
    /// How long one boot takes, on average.
    pub boot_time: Duration,
    /// Boots vary uniformly by this share of `boot_time` either way (0.1:
    /// ±10%).
    pub boot_time_spread: f64,
    /// When jobs with no known end are taken to end, counted from the start.
    pub unknown_job_end: Duration,
    /// How many seeded runs a forecast samples when something is uncertain
    /// (one when nothing is; three when only boot times are and the first
    /// three agree, see `sampling.rs`).
    pub samples: u32,
}

impl Default for DryRunAssumptions {
    fn default() -> Self {
        DryRunAssumptions {
            boot_time: Duration::from_secs(5 * 60),
            boot_time_spread: 0.1,
            unknown_job_end: Duration::from_secs(24 * 3600),
            samples: 15,
        }
    }
}

/// How much a dry run may simulate before it gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunBudget {
    /// The longest simulated span a plan covers, from its start: a session
    /// expected to take longer is not planned.
    pub horizon: Duration,
    /// The most passes of the engine loop over all sampled runs (each is
    /// one instant at which the engine is woken: a poll, a job end or
    /// arrival, a boot end). Bounds the CPU time of a plan whatever its
    /// simulated length; when it runs out after some sampled runs are
    /// complete, the forecast is made from those.
    pub max_passes: u64,
}

impl Default for DryRunBudget {
    /// A year of simulated time and a million passes (a few seconds of CPU
    /// time at most); a plan of 100,000 nodes needs far fewer.
    fn default() -> Self {
        DryRunBudget {
            horizon: Duration::from_secs(366 * 24 * 3600),
            max_passes: 1_000_000,
        }
    }
}

/// Why a dry run stopped before its plan was complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DryRunStopped {
    /// The session would take longer than the budget can simulate; `field`
    /// names the request's setting that makes it so, `message` says what to do.
    #[error("{field}: {message}")]
    TooLong {
        /// The setting of the request to change, e.g. `policy.health.soak`.
        field: String,
        /// What the plan ran into and what to change.
        message: String,
    },
    /// The caller's cancellation flag was raised (its deadline passed or
    /// its request went away) before the plan was complete.
    #[error("the dry run was cancelled before its plan was complete")]
    Cancelled,
}

/// What a dry run plans from: the session, its policy as applied, the
/// starting group's members in inventory order, and the workload manager's
/// view of them and of its jobs at `now`. Gathered by the controller (IO),
/// planned by [`dry_run_within`] (CPU only), so the planning can run apart.
#[derive(Debug, Clone)]
pub struct DryRunInput {
    /// The session, its step size resolved.
    pub spec: SessionSpec,
    /// The policy it would run with.
    pub policy: RolloutPolicy,
    /// Its nodes.
    pub members: Vec<NodeId>,
    /// The workload manager's view of them.
    pub observed: Vec<WorkloadNode>,
    /// When the plan starts.
    pub now: Timestamp,
    /// The workload manager's jobs (running, queued, recent), when it can
    /// tell; without them the forecast knows only the nodes' job ends.
    pub queue: Option<WorkloadQueue>,
    /// Why the queue is missing, when reading it failed, for the rationale.
    pub queue_note: Option<String>,
    /// The image each node runs now, as the boot orchestrator tells it:
    /// read only under `skip_matching` (empty otherwise, or when it could
    /// not be read).
    pub images: Vec<NodeImage>,
    /// Why the images are missing under `skip_matching`, when reading them
    /// failed, for the rationale.
    pub images_note: Option<String>,
}
