//! `WorkloadManager`: taking nodes out of service and back (Slurm).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::node::NodeId;
use crate::time::Timestamp;

/// What the workload manager says a node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadState {
    /// In service and running no job.
    Idle,
    /// In service and running jobs.
    Allocated,
    /// Drain requested, jobs still running.
    Draining,
    /// Drained: out of service and running no job. Safe to reboot.
    Drained,
    /// Down or failed: out of service, no jobs can run.
    Down,
    /// The workload manager does not know this node.
    Unknown,
}

impl WorkloadState {
    /// Whether the node runs no job and takes no new one, so it may be rebooted.
    pub fn is_quiet(self) -> bool {
        matches!(self, WorkloadState::Drained | WorkloadState::Down)
    }
}

/// One node as the workload manager reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadNode {
    /// The node.
    pub node: NodeId,
    /// What it is doing.
    pub state: WorkloadState,
    /// Whether its daemon answers (Slurm's `*` flag is the opposite).
    pub responding: bool,
    /// When its running jobs are expected to end (their time limits), if it runs any.
    pub jobs_end_by: Option<Timestamp>,
    /// The reason set on the node (drain or down reason), if any.
    pub reason: Option<String>,
}

/// Drains, resumes and observes nodes in the workload manager.
#[async_trait]
pub trait WorkloadManager: Send + Sync {
    /// Stops scheduling new jobs on `nodes`, letting running jobs finish, with
    /// `reason` recorded on each node. Idempotent.
    async fn drain(&self, nodes: &[NodeId], reason: &str) -> Result<()>;

    /// Returns `nodes` to service (clears drain and failed marks). Idempotent.
    async fn resume(&self, nodes: &[NodeId]) -> Result<()>;

    /// Keeps `nodes` out of service as failed, with `reason`. Idempotent.
    async fn fail(&self, nodes: &[NodeId], reason: &str) -> Result<()>;

    /// Puts `nodes` back out of service exactly as someone else had them
    /// before crus upgraded them: drained (when `state` is draining or
    /// drained) or down (when it is down), with `reason` byte for byte. Never
    /// returns them to service. Idempotent.
    ///
    /// The default drains for drained and draining nodes and marks down
    /// nodes failed ([`WorkloadManager::fail`]); a backend with a real
    /// "down" state (Slurm's `State=DOWN`) overrides it.
    async fn restore(&self, nodes: &[NodeId], state: WorkloadState, reason: &str) -> Result<()> {
        match state {
            WorkloadState::Down => self.fail(nodes, reason).await,
            _ => self.drain(nodes, reason).await,
        }
    }

    /// The state of each of `nodes`, one entry per node in the same order;
    /// a node the workload manager does not know is [`WorkloadState::Unknown`].
    async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>>;

    /// Puts the jobs running on `nodes` back in the queue (they restart
    /// elsewhere), so drained nodes empty now. Idempotent: a node without
    /// jobs is left as it is. Used by `on_drain_timeout: requeue`.
    async fn requeue_jobs(&self, nodes: &[NodeId]) -> Result<()> {
        let _ = nodes;
        Err(crate::error::Error::NotSupported {
            backend: "workload manager",
            operation: "requeueing jobs",
        })
    }

    /// The jobs running and waiting now and those submitted recently, for
    /// forecasts (dry runs). Read only. Backends that cannot tell answer
    /// [`crate::error::Error::NotSupported`], and a dry run then forecasts
    /// from node states alone.
    async fn queue(&self) -> Result<super::WorkloadQueue> {
        Err(crate::error::Error::NotSupported {
            backend: "workload manager",
            operation: "reading the job queue",
        })
    }

    /// The scheduling weight of each of `nodes`, in the same order (Slurm's
    /// `Weight`: the scheduler gives new jobs the lowest-weight nodes first).
    /// Read only. Backends without weights answer
    /// [`crate::error::Error::NotSupported`]; `steer_jobs` then does nothing.
    async fn node_weights(&self, nodes: &[NodeId]) -> Result<Vec<u32>> {
        let _ = nodes;
        Err(crate::error::Error::NotSupported {
            backend: "workload manager",
            operation: "reading node weights",
        })
    }

    /// Sets each node's scheduling weight. Idempotent. Need not outlive a
    /// restart of the workload manager (Slurm's do not): the rollout checks
    /// the weights it set and sets them again when they changed.
    async fn set_weights(&self, weights: &[(NodeId, u32)]) -> Result<()> {
        let _ = weights;
        Err(crate::error::Error::NotSupported {
            backend: "workload manager",
            operation: "setting node weights",
        })
    }

    /// Whether this backend reports which nodes are in service, asked
    /// without IO when a session with `min_available` is created (refused
    /// with 422 when not): a floor counted from a backend that reports
    /// every node the same whatever it does would hold for ever, or never.
    /// The default says it does; a backend that cannot (`workload_manager =
    /// "none"`) answers [`crate::error::Error::NotSupported`] naming itself.
    fn availability_supported(&self) -> Result<()> {
        Ok(())
    }

    /// Whether this backend can reserve nodes from a time on at all, asked
    /// without IO when a session with `reserve_ahead` is created (refused
    /// with 422 when not). The default answers
    /// [`crate::error::Error::NotSupported`], as
    /// [`WorkloadManager::reserve_from`] does; a backend overriding that
    /// overrides this too.
    fn reservations_supported(&self) -> Result<()> {
        Err(crate::error::Error::NotSupported {
            backend: "workload manager",
            operation: "reserving nodes",
        })
    }

    /// Reserves each node for crus from the time given on (`reserve_ahead`:
    /// when the session plans to take it), so the scheduler starts there
    /// only jobs whose time limits end by then; jobs running past it are
    /// left to run. Replaces any reservation crus set on the node before
    /// (one per node). Persistent in the workload manager (Slurm keeps its
    /// reservations across a restart) until [`WorkloadManager::unreserve`].
    /// Idempotent.
    async fn reserve_from(&self, reservations: &[(NodeId, Timestamp)]) -> Result<()> {
        let _ = reservations;
        Err(crate::error::Error::NotSupported {
            backend: "workload manager",
            operation: "reserving nodes",
        })
    }

    /// Which of `nodes` carry a reservation crus set, in the order asked.
    /// Read only. Slurm saves its reservations within seconds, so one set
    /// just before `slurmctld` crashes may be lost: the rollout reads its
    /// reservations back now and then and sets those lost again.
    async fn reserved_nodes(&self, nodes: &[NodeId]) -> Result<Vec<NodeId>> {
        let _ = nodes;
        Err(crate::error::Error::NotSupported {
            backend: "workload manager",
            operation: "reading node reservations",
        })
    }

    /// Removes the reservation crus set on each of `nodes`, if any; a node
    /// without one is left as it is, and reservations anyone else made are
    /// never touched. Idempotent.
    async fn unreserve(&self, nodes: &[NodeId]) -> Result<()> {
        let _ = nodes;
        Err(crate::error::Error::NotSupported {
            backend: "workload manager",
            operation: "removing node reservations",
        })
    }

    /// Whether this backend can read and set node features at all, asked
    /// without IO when a session with `image_features` is created (refused
    /// with 422 when not). The default answers
    /// [`crate::error::Error::NotSupported`], as [`WorkloadManager::node_features`]
    /// and [`WorkloadManager::set_features`] do; a backend overriding those
    /// overrides this too.
    fn features_supported(&self) -> Result<()> {
        Err(crate::error::Error::NotSupported {
            backend: "workload manager",
            operation: "setting node features",
        })
    }

    /// The features of each of `nodes` (Slurm's `AvailableFeatures`), one
    /// list per node in the same order, as the workload manager lists them.
    /// Backends without node features answer
    /// [`crate::error::Error::NotSupported`] (the default).
    async fn node_features(&self, nodes: &[NodeId]) -> Result<Vec<Vec<String>>> {
        let _ = nodes;
        Err(crate::error::Error::NotSupported {
            backend: "workload manager",
            operation: "reading node features",
        })
    }

    /// Sets each node's features to exactly the list given, both the ones
    /// it offers and the ones active now (Slurm's `AvailableFeatures` and
    /// `ActiveFeatures`), so jobs asking for a feature (`--constraint`) run
    /// only on nodes that have it. Idempotent. The default answers
    /// [`crate::error::Error::NotSupported`].
    async fn set_features(&self, features: &[(NodeId, Vec<String>)]) -> Result<()> {
        let _ = features;
        Err(crate::error::Error::NotSupported {
            backend: "workload manager",
            operation: "setting node features",
        })
    }
}
