//! Planning a dry run (`POST /session?dry_run=true`) within the server's
//! limits: a bounded number at once, each on the blocking pool (so the
//! runtime's workers keep answering `/healthz` and every other request),
//! each stopped at its deadline or as soon as its request goes away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crus_core::SessionSpec;
use crus_core::dry_run::{DryRun, DryRunAssumptions, DryRunStopped, dry_run_within};
use crus_core::session::FieldErrors;

use crate::problem::AppError;
use crate::state::AppState;

/// Raises its flag when dropped: the planning stops at its next pass once
/// the request that asked for it is gone (the client hung up, or the request
/// timeout dropped the handler).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Plans session `spec` as the server would run it, within
/// [`crate::ServerLimits`]: 503 when as many dry runs as allowed are being
/// planned already or when the plan overruns its time; 422 naming the
/// setting when the session is too long to simulate.
pub(crate) async fn plan(state: &AppState, spec: SessionSpec) -> Result<DryRun, AppError> {
    let limits = state.limits();
    // Taken before any backend is asked: a flood of dry runs must not
    // become a flood of inventory and workload manager calls either.
    let Ok(permit) = state.dry_runs().clone().try_acquire_owned() else {
        return Err(AppError::Busy(format!(
            "The server is planning {} dry run(s) already, as many as it plans at once. Retry in a few seconds.",
            limits.dry_runs_at_once
        )));
    };
    let controller = state.controller();
    // As a creation now would: the configured policy with the stored options over it.
    let base = controller.current_default_policy().await?;
    let input = controller.prepare_dry_run(spec, &base).await?;
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_when_dropped = CancelOnDrop(cancel.clone());
    let budget = limits.dry_run_budget.clone();
    let flag = cancel.clone();
    let planning = tokio::task::spawn_blocking(move || {
        // Held until the planning stops, not just while the request waits:
        // the cap counts the cores in use.
        let _permit = permit;
        dry_run_within(input, &DryRunAssumptions::default(), &budget, &flag)
    });
    let deadline = limits.dry_run_timeout.min(limits.request_timeout);
    let outcome = match tokio::time::timeout(deadline, planning).await {
        Ok(joined) => joined
            .map_err(|error| AppError::Internal(format!("the dry run's task failed: {error}")))?,
        Err(_) => Err(DryRunStopped::Cancelled),
    };
    outcome.map_err(|stopped| match stopped {
        DryRunStopped::TooLong { field, message } => {
            AppError::Invalid(FieldErrors::from([(field, vec![message])]))
        }
        DryRunStopped::Cancelled => AppError::Busy(format!(
            "The dry run did not finish within the {} a plan may take: the server is busy, or the session is very large. Retry later, or plan it with a larger upgrade_step_size.",
            humantime::format_duration(deadline)
        )),
    })
}
