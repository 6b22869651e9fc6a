//! Admitting a session with `image_features`: refused (422, under
//! `policy.image_features`) when the workload manager cannot set node
//! features, naming the backend, instead of a session that says it tags
//! upgraded nodes and cannot.

use super::Controller;
use crate::error::Error;
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
        let asked = spec
            .policy
            .as_ref()
            .and_then(|policy| policy.image_features)
            .unwrap_or(base.image_features);
        if !asked {
            return None;
        }
        match self.inner.ports.workload_manager.features_supported() {
            Ok(()) => None,
            Err(Error::NotSupported { backend, .. }) => {
                // The port's default names no backend; a backend's own does.
                let which = if backend == "workload manager" {
                    "This workload manager".to_string()
                } else {
                    format!("The workload manager ({backend})")
                };
                Some(format!(
                    "{which} cannot set node features, so upgraded nodes cannot be tagged with \
                     their image; leave image_features out or use a workload manager that can \
                     (slurm, sim)."
                ))
            }
            Err(error) => Some(format!(
                "The workload manager cannot set node features: {error}."
            )),
        }
    }
}
