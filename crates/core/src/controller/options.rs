//! The server-wide options as a controller reads and changes them: read
//! from the store at each creation (so a change on any replica applies to
//! the next session created on every replica), changed with a
//! revision-checked read-merge-write, and checked against this server as a
//! session's policy is (a health probe it cannot run, power restarts
//! without power control).

use super::Controller;
use crate::error::{Error, Result};
use crate::options::ServerOptions;
use crate::rollout::RolloutPolicy;
use crate::session::FieldErrors;

/// How many times a change is merged again when another change was stored
/// between its read and its write.
const OPTION_WRITE_ATTEMPTS: usize = 8;

/// Why [`Controller::update_options`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum OptionsRefusal {
    /// A value is not valid; messages by field.
    #[error("invalid options: {0:?}")]
    Invalid(FieldErrors),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(Error),
}

impl Controller {
    /// The server-wide options in force: the stored ones, or none set.
    pub async fn options(&self) -> Result<ServerOptions> {
        Ok(self
            .inner
            .store
            .get_options()
            .await?
            .map(|stored| stored.value)
            .unwrap_or_default())
    }

    /// The policy a session created now starts from, before its request's
    /// own: the configured default ([`super::ControllerConfig::default_policy`])
    /// with the stored options over it.
    pub async fn current_default_policy(&self) -> Result<RolloutPolicy> {
        let options = self.options().await?;
        Ok(options.policy_over(
            &self.inner.config.default_policy,
            self.inner.config.boot_backend.as_deref(),
        ))
    }

    /// Applies `patch` (a `PATCH /options` body, see
    /// [`ServerOptions::patched`]) to the stored options and stores them;
    /// answers the options now in force. Nothing is stored when a value is
    /// refused. Retries when another replica's change was stored meanwhile,
    /// merging this one over it.
    pub async fn update_options(
        &self,
        patch: &serde_json::Value,
    ) -> std::result::Result<ServerOptions, OptionsRefusal> {
        let mut last_conflict = None;
        for _ in 0..OPTION_WRITE_ATTEMPTS {
            let stored = self
                .inner
                .store
                .get_options()
                .await
                .map_err(OptionsRefusal::Store)?;
            let (current, revision) = match stored {
                Some(stored) => (stored.value, Some(stored.revision)),
                None => (ServerOptions::default(), None),
            };
            let options = current.patched(patch).map_err(OptionsRefusal::Invalid)?;
            let refusals = self.option_refusals(&options);
            if !refusals.is_empty() {
                return Err(OptionsRefusal::Invalid(refusals));
            }
            match self.inner.store.put_options(&options, revision).await {
                Ok(_) => return Ok(options),
                Err(error @ Error::Conflict { .. }) => last_conflict = Some(error),
                Err(error) => return Err(OptionsRefusal::Store(error)),
            }
        }
        Err(OptionsRefusal::Store(last_conflict.unwrap_or_else(|| {
            Error::conflict("the server options kept changing; retry")
        })))
    }

    /// What this server cannot do of `options`' default policy, by field:
    /// the checks of a session's policy that depend on the server.
    fn option_refusals(&self, options: &ServerOptions) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let policy = &options.default_policy;
        if let Some(check) = policy.health.as_ref().and_then(|health| health.check()) {
            let refusal = match &self.inner.ports.health_probe {
                None => Some(
                    "This server runs no health probes, so it cannot run a command or HTTP probe; \
                     leave them out (the workload manager's view and the soak still apply)."
                        .to_string(),
                ),
                Some(prober) => prober.refuses(&check),
            };
            if let Some(refusal) = refusal {
                errors
                    .entry("default_policy.health".to_string())
                    .or_default()
                    .push(refusal);
            }
        }
        if policy.escalate_power_cycle == Some(true) && self.inner.ports.power_control.is_none() {
            errors
                .entry("default_policy.escalate_power_cycle".to_string())
                .or_default()
                .push(
                    "This server has no power control backend, so it cannot power-restart a node; \
                     configure one (backends.power) or leave this out."
                        .to_string(),
                );
        }
        errors
    }
}
