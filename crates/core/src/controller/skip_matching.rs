//! Admitting a session with `skip_matching`: refused (422, under
//! `policy.skip_matching`) when the boot orchestrator cannot tell which
//! image a node runs, instead of upgrading nodes the client asked to skip.

use super::Controller;
use crate::error::Error;
use crate::rollout::RolloutPolicy;
use crate::session::SessionSpec;

impl Controller {
    /// Why `spec` (over the server's `base` policy) cannot have
    /// `skip_matching` here, if it asks for it and the boot orchestrator
    /// cannot read the nodes' current images.
    pub(super) fn skip_matching_refusal(
        &self,
        spec: &SessionSpec,
        base: &RolloutPolicy,
    ) -> Option<String> {
        if !spec.asks_for(|policy| policy.skip_matching, base.skip_matching) {
            return None;
        }
        match self
            .inner
            .ports
            .boot_orchestrator
            .current_images_supported()
        {
            Ok(()) => None,
            Err(Error::NotSupported { backend, .. }) => Some(format!(
                "The boot orchestrator ({backend}) cannot tell which image a node runs now, so \
                 it cannot find the nodes already on the target image; leave skip_matching out \
                 (every node is upgraded) or use a boot backend that can (bos, kadeploy, \
                 cyclecloud, sim)."
            )),
            Err(error) => Some(format!(
                "The boot orchestrator cannot tell which image a node runs now: {error}."
            )),
        }
    }
}
