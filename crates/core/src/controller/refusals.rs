//! Why this server cannot run what a session's policy asks for: a health
//! check, a hook or an alert gate its ports do not provide.

use super::Controller;
use crate::session::SessionSpec;

impl Controller {
    /// Why this server cannot run the health command or HTTP probe that
    /// `spec`'s policy asks for, if it cannot.
    pub(super) fn health_refusal(&self, spec: &SessionSpec) -> Option<String> {
        let check = spec.policy.as_ref()?.health.as_ref()?.check()?;
        match &self.inner.ports.health_probe {
            None => Some(
                "This server runs no health probes, so it cannot run the policy's command or \
                 HTTP probe; leave them out (the workload manager's view and the soak still apply)."
                    .to_string(),
            ),
            Some(prober) => prober.refuses(&check),
        }
    }

    /// Why this server will not run the hooks `spec`'s policy names, one
    /// sentence per hook it refuses.
    pub(super) fn hook_refusals(&self, spec: &SessionSpec) -> Vec<String> {
        let Some(hooks) = spec
            .policy
            .as_ref()
            .and_then(|policy| policy.hooks.as_ref())
        else {
            return Vec::new();
        };
        hooks
            .iter()
            .enumerate()
            .filter_map(|(position, hook)| {
                let why = match &self.inner.ports.hook_runner {
                    None => Some("This server runs no hooks; leave them out.".to_string()),
                    Some(runner) => runner.refuses(hook),
                };
                why.map(|why| format!("Hook {position}: {why}"))
            })
            .collect()
    }

    /// Why this server will not ask the alert gates `spec`'s policy names,
    /// one sentence per gate it refuses.
    pub(super) fn gate_refusals(&self, spec: &SessionSpec) -> Vec<String> {
        let Some(gates) = spec
            .policy
            .as_ref()
            .and_then(|policy| policy.gates.as_ref())
        else {
            return Vec::new();
        };
        if gates.is_empty() {
            return Vec::new();
        }
        match &self.inner.ports.alert_gate {
            None => vec![
                "This server asks no alert gates, so the session would hold for ever (gates \
                 fail closed); leave the gates out."
                    .to_string(),
            ],
            Some(alert_gate) => gates
                .iter()
                .enumerate()
                .filter_map(|(position, gate)| {
                    alert_gate
                        .refuses(gate)
                        .map(|why| format!("Gate {position}: {why}"))
                })
                .collect(),
        }
    }
}
