//! Dry runs through the controller: the IO half (checks, policy, the
//! workload manager's view), planned by [`crate::dry_run`].

use super::{AdmissionRefusal, Controller};
use crate::error::{Dependency, PartFailure};
use crate::rollout::RolloutPolicy;
use crate::session::SessionSpec;

impl Controller {
    /// What session `spec` would do, and for how long, touching nothing: the
    /// same checks as a creation, then a [`dry_run`](crate::dry_run::dry_run)
    /// from the workload manager's current view of the starting group.
    pub async fn dry_run(
        &self,
        spec: SessionSpec,
        base: &RolloutPolicy,
        assumptions: &crate::dry_run::DryRunAssumptions,
    ) -> std::result::Result<crate::dry_run::DryRun, AdmissionRefusal> {
        let input = self.prepare_dry_run(spec, base).await?;
        Ok(crate::dry_run::forecast(input, assumptions))
    }

    /// The IO half of a dry run: the same checks as a creation, the policy
    /// applied, the starting group and the workload manager's current view of
    /// it. Planning it ([`crate::dry_run::dry_run_within`]) is CPU only, so a
    /// server can run it apart from the tasks that answer requests.
    pub async fn prepare_dry_run(
        &self,
        spec: SessionSpec,
        base: &RolloutPolicy,
    ) -> std::result::Result<crate::dry_run::DryRunInput, AdmissionRefusal> {
        let examined = self.examine(spec, base).await?;
        let observed = self
            .inner
            .ports
            .workload_manager
            .node_states(&examined.members)
            .await
            .map_err(|error| {
                AdmissionRefusal::Failed(PartFailure::new(Dependency::WorkloadManager, error))
            })?;
        // The queue only sharpens the forecast: without it the plan is made
        // from the nodes' job ends, and says so.
        let (queue, queue_note) = match self.inner.ports.workload_manager.queue().await {
            Ok(queue) => (Some(queue), None),
            Err(crate::Error::NotSupported { .. }) => (
                None,
                Some(
                    "The workload manager does not report its queue: the forecast leaves out queued and arriving jobs."
                        .to_string(),
                ),
            ),
            Err(error) => (
                None,
                Some(format!(
                    "The workload manager's queue could not be read ({error}): the forecast leaves out queued and arriving jobs."
                )),
            ),
        };
        // Under skip_matching the plan leaves out the nodes already on the
        // target image, as a session would; without them, it says why.
        let (images, images_note) = if examined.policy.skip_matching {
            match self
                .inner
                .ports
                .boot_orchestrator
                .current_images(&examined.members, &examined.spec.upgrade_template_id)
                .await
            {
                Ok(images) => (images, None),
                Err(error) => (
                    Vec::new(),
                    Some(format!(
                        "Cannot tell which nodes are already on the target image ({error}): the plan upgrades every node."
                    )),
                ),
            }
        } else {
            (Vec::new(), None)
        };
        Ok(crate::dry_run::DryRunInput {
            spec: examined.spec,
            policy: examined.policy,
            members: examined.members,
            observed,
            now: self.inner.clock.now(),
            queue,
            queue_note,
            images,
            images_note,
        })
    }
}
