//! `HealthProbe`: the site's own check that a booted node is fit for jobs,
//! beyond the workload manager's view (a policy's `health.command` or
//! `health.http`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::node::NodeId;

/// How the reason of a node that failed a health check begins, in the
/// workload report the controller builds and in the node's record.
pub const HEALTH_CHECK_FAILED: &str = "health check failed: ";

/// The checks a policy asks for; each that is set must pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// A command run with the node name as its last argument (and in
    /// `CRUS_NODE`); exit status 0 is healthy.
    pub command: Option<String>,
    /// A URL with `{node}` replaced by the node name, read with GET; a 2xx
    /// answer is healthy.
    pub http: Option<String>,
}

impl HealthCheck {
    /// Whether there is anything to run.
    pub fn is_empty(&self) -> bool {
        self.command.is_none() && self.http.is_none()
    }
}

/// Runs a [`HealthCheck`] on a node.
///
/// Idempotent: a probe only reads. Failure of the check is an answer
/// (`Ok(Some(reason))`), not an error; an error means the probe itself could
/// not be run and the controller retries it.
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// `Ok(None)` when `node` passed every check of `check`, `Ok(Some(why))`
    /// when one failed, with what it said.
    async fn probe(&self, node: &NodeId, check: &HealthCheck) -> Result<Option<String>>;

    /// Why this prober will not run `check` (for example, the server's
    /// configuration does not allow health commands), or `None` when it
    /// will. Asked when a session is created, so such a policy is refused
    /// then instead of failing every node after its boot timeout.
    fn refuses(&self, check: &HealthCheck) -> Option<String> {
        let _ = check;
        None
    }
}
