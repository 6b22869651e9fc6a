//! Admitting a session with `min_available`: refused (422, under
//! `policy.min_available`) when the workload manager cannot report which
//! nodes are in service, naming the backend. The floor counts every node
//! out of service for any reason; from a backend that reports every node
//! drained (`workload_manager = "none"`) it would count every node crus
//! has not taken as out, and the session would hold for ever.

use super::Controller;
use crate::error::Error;
use crate::rollout::RolloutPolicy;
use crate::session::SessionSpec;

impl Controller {
    /// Why `spec` (over the server's `base` policy) cannot have a
    /// `min_available` here, if it asks for one and the workload manager
    /// cannot report availability.
    pub(super) fn min_available_refusal(
        &self,
        spec: &SessionSpec,
        base: &RolloutPolicy,
    ) -> Option<String> {
        let asked = spec
            .policy
            .as_ref()
            .and_then(|policy| policy.min_available)
            .or(base.min_available);
        asked?;
        match self.inner.ports.workload_manager.availability_supported() {
            Ok(()) => None,
            Err(Error::NotSupported { backend, .. }) => Some(format!(
                "The workload manager ({backend}) cannot report which nodes are in service, so a \
                 capacity floor would count every node as out of service and hold for ever; leave \
                 min_available out or use a workload manager that can (slurm, sim)."
            )),
            Err(error) => Some(format!(
                "The workload manager cannot report which nodes are in service: {error}."
            )),
        }
    }
}
