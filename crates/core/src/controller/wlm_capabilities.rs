//! Admitting a session that needs a capability of the workload manager
//! beyond draining and resuming: `image_features` (setting node features)
//! and `reserve_ahead` (reserving nodes from a time on). Refused (422, under
//! the policy field) when the workload manager cannot, naming the backend,
//! instead of a session that says it does something it cannot.

use super::Controller;
use crate::error::{Error, Result};
use crate::rollout::RolloutPolicy;
use crate::session::SessionSpec;

impl Controller {
    /// Why `spec` (over the server's `base` policy) cannot have
    /// `image_features` here, if it asks for it and the workload manager
    /// cannot set node features.
    pub(super) fn image_features_refusal(
        &self,
        spec: &SessionSpec,
        base: &RolloutPolicy,
    ) -> Option<String> {
        if !spec.asks_for(|policy| policy.image_features, base.image_features) {
            return None;
        }
        refusal(
            self.inner.ports.workload_manager.features_supported(),
            "set node features",
            "so upgraded nodes cannot be tagged with their image; leave image_features out",
        )
    }

    /// Why `spec` (over the server's `base` policy) cannot have
    /// `reserve_ahead` here, if it asks for it and the workload manager
    /// cannot reserve nodes.
    pub(super) fn reserve_ahead_refusal(
        &self,
        spec: &SessionSpec,
        base: &RolloutPolicy,
    ) -> Option<String> {
        if !spec.asks_for(|policy| policy.reserve_ahead, base.reserve_ahead) {
            return None;
        }
        refusal(
            self.inner.ports.workload_manager.reservations_supported(),
            "reserve nodes",
            "so nodes cannot be kept for their upgrade; leave reserve_ahead out",
        )
    }
}

/// The refusal for a capability the workload manager answered `supported`
/// about: `None` when it can.
fn refusal(supported: Result<()>, cannot: &str, so: &str) -> Option<String> {
    match supported {
        Ok(()) => None,
        Err(Error::NotSupported { backend, .. }) => {
            // The port's default names no backend; a backend's own does.
            let which = if backend == "workload manager" {
                "This workload manager".to_string()
            } else {
                format!("The workload manager ({backend})")
            };
            Some(format!(
                "{which} cannot {cannot}, {so} or use a workload manager that can (slurm, sim)."
            ))
        }
        Err(error) => Some(format!("The workload manager cannot {cannot}: {error}.")),
    }
}
