//! Dry runs: what a session would do, and for how long, touching nothing.
//!
//! The real [`Rollout`] state machine is driven in virtual time against a
//! model of the machine built from one reading of the workload manager: the
//! group's nodes and the jobs on them, the jobs queued, and the jobs expected
//! to arrive (learned from the recent past the workload manager reports).
//! Every policy rule (order, failure domains, canary, windows, strategy) is
//! therefore applied exactly as a real session applies it.
//!
//! The answer is a forecast: what is uncertain (when jobs end within their
//! limits, which jobs arrive, how long boots take) is drawn in a bounded
//! number of seeded runs, and the plan reports the median duration with its
//! 10th and 90th percentiles and the part that dominates. The same input
//! always gives the same forecast.
//!
//! A dry run is asked for by API clients, so what it may cost is bounded:
//! [`dry_run_within`] stops with [`DryRunStopped`] when the simulated session
//! outgrows the [`DryRunBudget`] (simulated time, passes of the engine over
//! all sampled runs) or when the caller raises its cancellation flag (its
//! deadline passed, its request went away).

mod answer;
mod attribution;
mod combine;
mod input;
mod left_out;
mod machine;
mod outlook;
mod run_shares;
mod safety;
mod sampling;
mod simulation;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use answer::{DryRun, PlannedStep};
pub use input::{DryRunAssumptions, DryRunBudget, DryRunInput, DryRunStopped};
pub use left_out::{PlannedFloor, SkippedNode};
pub use safety::{PlannedGates, PlannedRollback, planned_gates, planned_rollback};

use crate::node::NodeId;
use crate::ports::WorkloadNode;
use crate::rollout::RolloutPolicy;
use crate::session::SessionSpec;
use crate::time::Timestamp;
use combine::combine;
use outlook::Outlook;
use sampling::sample;
use simulation::Simulation;
/// Plans `spec` under `policy` for nodes `members`, whose workload state is
/// `observed` at `now` (the queue unknown), with no bound but a cap of five
/// million passes (a plan that reaches it shows how far it got).
pub fn dry_run(
    spec: SessionSpec,
    policy: RolloutPolicy,
    members: Vec<NodeId>,
    observed: &[WorkloadNode],
    now: Timestamp,
    assumptions: &DryRunAssumptions,
) -> DryRun {
    forecast(
        DryRunInput {
            spec,
            policy,
            members,
            observed: observed.to_vec(),
            now,
            queue: None,
            queue_note: None,
            images: Vec::new(),
            images_note: None,
        },
        assumptions,
    )
}

/// As [`dry_run`] from everything `input` holds (its queue too), with no
/// bound but a cap of five million passes.
pub fn forecast(input: DryRunInput, assumptions: &DryRunAssumptions) -> DryRun {
    let budget = DryRunBudget {
        horizon: Duration::MAX,
        max_passes: 5_000_000,
    };
    let never = AtomicBool::new(false);
    match sample(&input, assumptions, &budget, &never) {
        Ok(plan) => plan,
        // Only the pass cap can stop it: the first run's partial plan is the answer.
        Err(_) => {
            let outlook = Outlook::learn(input.queue.as_ref(), input.now, input.members.len());
            let mut simulation =
                Simulation::new(&input, &outlook, assumptions, 0, simulation::Reads::Changes);
            let _ = simulation.run(&budget, &never);
            let outcome = simulation.outcome();
            combine(&input, &outlook, vec![outcome], 1, simulation.rationale)
        }
    }
}

/// As [`forecast`], within `budget`; stops early, with what to change, when
/// the session outgrows it, and as soon as `cancel` is raised (checked at
/// every pass of the engine, so a caller's deadline holds to a pass).
pub fn dry_run_within(
    input: DryRunInput,
    assumptions: &DryRunAssumptions,
    budget: &DryRunBudget,
    cancel: &AtomicBool,
) -> Result<DryRun, DryRunStopped> {
    sample(&input, assumptions, budget, cancel)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod arrival_tests;

#[cfg(test)]
mod steering_tests;

#[cfg(test)]
mod read_changes_tests;

#[cfg(test)]
mod settling_tests;
