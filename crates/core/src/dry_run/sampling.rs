//! The sampled runs of a forecast, spread over a few threads.
//!
//! Each run is seeded by its number and touches nothing but its own model of
//! the machine, so runs are independent and may run side by side. The split
//! is fixed (not the machine's core count), so the same input gives the same
//! forecast everywhere, whether or not the pass budget cuts it short.

use std::sync::atomic::AtomicBool;

use super::combine::{Outcome, combine};
use super::outlook::Outlook;
use super::simulation::{Reads, Simulation};
use super::{DryRun, DryRunAssumptions, DryRunBudget, DryRunInput, DryRunStopped};

/// How many parts the runs after the first are split into, each run on a
/// thread of its own. A forecast of a 1,000-node machine is about fifteen
/// runs of 150 ms each: on two cores the split halves its wall time.
const PARTS: u32 = 4;

/// A completed run: its number, what it gave and the rationale it wrote.
type Completed = (u32, Outcome, Vec<String>);

/// Runs the sampled runs of a forecast and combines them.
///
/// The first run has the whole pass budget, as a single run would: if it
/// does not fit, the plan stops and says what to change. The others share
/// what it left, each part an equal share; a part that runs out stops, and
/// the forecast is made from the runs that completed.
pub(super) fn sample(
    input: &DryRunInput,
    assumptions: &DryRunAssumptions,
    budget: &DryRunBudget,
    cancel: &AtomicBool,
) -> Result<DryRun, DryRunStopped> {
    sample_reading(input, assumptions, budget, cancel, Reads::Changes)
}

/// As [`sample`], the engine reading the model's workload as `reads` says.
pub(super) fn sample_reading(
    input: &DryRunInput,
    assumptions: &DryRunAssumptions,
    budget: &DryRunBudget,
    cancel: &AtomicBool,
    reads: Reads,
) -> Result<DryRun, DryRunStopped> {
    let outlook = Outlook::learn(input.queue.as_ref(), input.now, input.members.len());
    let uncertain =
        outlook.has_arrivals() || !outlook.knows_run_times() || assumptions.boot_time_spread > 0.0;
    let runs = if uncertain {
        assumptions.samples.max(1)
    } else {
        1
    };
    let mut first = Simulation::new(input, &outlook, assumptions, 0, reads);
    first.run(budget, cancel)?;
    let spent = first.passes;
    let mut completed: Vec<Completed> = vec![(0, first.outcome(), first.rationale)];

    let rest: Vec<u32> = (1..runs).collect();
    let parts = PARTS.min(runs.saturating_sub(1)).max(1);
    let share = DryRunBudget {
        horizon: budget.horizon,
        max_passes: budget.max_passes.saturating_sub(spent) / u64::from(parts),
    };
    let chunk = rest.len().div_ceil(parts as usize).max(1);
    let results: Vec<Result<Vec<Completed>, DryRunStopped>> = std::thread::scope(|scope| {
        let handles: Vec<_> = rest
            .chunks(chunk)
            .map(|numbers| {
                let (outlook, share) = (&outlook, &share);
                scope.spawn(move || {
                    run_part(input, outlook, assumptions, share, cancel, numbers, reads)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                // A run that panicked is a bug in the engine: raise it here.
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    for part in results {
        completed.extend(part?);
    }
    let rationale = completed
        .last()
        .map(|(_, _, rationale)| rationale.clone())
        .unwrap_or_default();
    let outcomes = completed
        .into_iter()
        .map(|(_, outcome, _)| outcome)
        .collect();
    Ok(combine(input, &outlook, outcomes, runs, rationale))
}

/// Runs `numbers` one after the other within `share` of the passes, until
/// the share runs out. Only a cancellation is an error.
fn run_part(
    input: &DryRunInput,
    outlook: &Outlook,
    assumptions: &DryRunAssumptions,
    share: &DryRunBudget,
    cancel: &AtomicBool,
    numbers: &[u32],
    reads: Reads,
) -> Result<Vec<Completed>, DryRunStopped> {
    let mut spent: u64 = 0;
    let mut completed = Vec::new();
    for &run in numbers {
        let mut simulation = Simulation::new(input, outlook, assumptions, run, reads);
        let left = DryRunBudget {
            horizon: share.horizon,
            max_passes: share.max_passes.saturating_sub(spent),
        };
        let outcome = simulation.run(&left, cancel);
        spent += simulation.passes;
        match outcome {
            Ok(()) => completed.push((run, simulation.outcome(), simulation.rationale)),
            Err(DryRunStopped::TooLong { .. }) => break,
            Err(stopped) => return Err(stopped),
        }
    }
    Ok(completed)
}
