//! The sampled runs of a forecast, spread over a few threads.
//!
//! Each run is seeded by its number and touches nothing but its own model of
//! the machine, so runs are independent and may run side by side. The split
//! is fixed (not the machine's core count), so the same input gives the same
//! forecast everywhere, whether or not the pass budget cuts it short, and
//! whether or not the first runs settle it.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::combine::{Outcome, combine};
use super::outlook::Outlook;
use super::simulation::{Reads, Simulation};
use super::{DryRun, DryRunAssumptions, DryRunBudget, DryRunInput, DryRunStopped};

/// How many parts the runs after the first are split into, each run on a
/// thread of its own. A forecast of a 1,000-node machine is about fifteen
/// runs of 150 ms each: on two cores the split halves its wall time.
const PARTS: u32 = 4;

/// How many runs after the first are made before the rest, side by side,
/// to see whether the runs differ at all.
const PILOT: usize = 2;

/// Runs that agree this closely (their spread, as a share of the median
/// duration) settle a forecast in which only boot times are uncertain: more
/// runs would move its range by a fraction of that. On a large machine a
/// hundred boot rounds average the boots out (100,000 nodes: a p10–p90 of
/// 14 s on 24 h over fifteen runs) and each run costs seconds, so the first
/// three answer.
const SETTLED_SPREAD: f64 = 0.0025;

/// A completed run: its number, what it gave and the rationale it wrote.
type Completed = (u32, Outcome, Vec<String>);

/// Runs the sampled runs of a forecast and combines them.
///
/// The first run has the whole pass budget, as a single run would: if it
/// does not fit, the plan stops and says what to change. The others share
/// what it left, each part an equal share; a part that runs out stops, and
/// the forecast is made from the runs that completed. The first run of each
/// of two parts (the pilot) is made before the rest: when only boot times
/// are uncertain and the three runs so far agree within [`SETTLED_SPREAD`],
/// the forecast is made from them.
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

    // Run r (from 1) belongs to part (r - 1) mod `parts`, each part with an
    // equal share of what the first run left.
    let parts = PARTS.min(runs.saturating_sub(1)).max(1);
    let share = budget.max_passes.saturating_sub(spent) / u64::from(parts);
    let mut parts: Vec<Part> = (0..parts)
        .map(|part| Part {
            runs: (1..runs)
                .filter(|run| (run - 1) % parts == part)
                .rev()
                .collect(),
            passes_left: share,
        })
        .collect();
    let context = Context {
        input,
        outlook: &outlook,
        assumptions,
        horizon: budget.horizon,
        cancel,
        reads,
    };
    // Only boot times uncertain: each run draws every boot afresh, so over
    // many boot rounds the runs differ by little, and three that agree say
    // so. Jobs' ends and arrivals are another matter: most runs may agree
    // and one in five draw a wide job at the wrong time, which the range
    // must hold, so those forecasts make every run.
    let boots_only = !outlook.has_arrivals() && outlook.knows_run_times();
    completed.extend(run_parts(&context, &mut parts, Some(PILOT))?);
    let settled = boots_only && is_settled(&completed);
    if !settled {
        completed.extend(run_parts(&context, &mut parts, None)?);
    }
    completed.sort_by_key(|(run, _, _)| *run);
    let mut rationale = completed
        .last()
        .map(|(_, _, rationale)| rationale.clone())
        .unwrap_or_default();
    let planned = if settled {
        rationale.push(format!(
            "Only boot times are uncertain, and the first {} sampled runs agreed within \
             {:.2}% of the duration: more runs would not move the forecast, so it (and each \
             step's range) is made from them.",
            completed.len(),
            SETTLED_SPREAD * 100.0
        ));
        u32::try_from(completed.len()).unwrap_or(runs)
    } else {
        runs
    };
    let outcomes = completed
        .into_iter()
        .map(|(_, outcome, _)| outcome)
        .collect();
    Ok(combine(input, &outlook, outcomes, planned, rationale))
}

/// Whether `completed` runs (the first and the pilot, all of them
/// completed) agree so closely that more would not move the forecast.
fn is_settled(completed: &[Completed]) -> bool {
    if completed.len() < PILOT + 1 {
        return false;
    }
    let mut durations: Vec<Duration> = completed
        .iter()
        .map(|(_, outcome, _)| outcome.duration)
        .collect();
    durations.sort_unstable();
    let (shortest, median, longest) = (
        durations[0],
        durations[durations.len() / 2],
        durations[durations.len() - 1],
    );
    longest.saturating_sub(shortest) <= median.mul_f64(SETTLED_SPREAD)
}

/// What every run after the first shares.
struct Context<'a> {
    input: &'a DryRunInput,
    outlook: &'a Outlook,
    assumptions: &'a DryRunAssumptions,
    horizon: Duration,
    cancel: &'a AtomicBool,
    reads: Reads,
}

/// The runs of one part still to make (the next last) and its passes left.
struct Part {
    runs: Vec<u32>,
    passes_left: u64,
}

/// Makes the next runs of `parts` side by side, a thread a part: the next
/// run of each of the first `pilot` parts, or every run left when `pilot`
/// is `None`. A part that runs out of passes makes no more runs.
fn run_parts(
    context: &Context<'_>,
    parts: &mut [Part],
    pilot: Option<usize>,
) -> Result<Vec<Completed>, DryRunStopped> {
    let busy = pilot.map_or(parts.len(), |pilot| pilot.min(parts.len()));
    let results: Vec<Result<Vec<Completed>, DryRunStopped>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter_mut()
            .take(busy)
            .filter(|part| !part.runs.is_empty())
            .map(|part| {
                let take = if pilot.is_some() { 1 } else { part.runs.len() };
                scope.spawn(move || run_part(context, part, take))
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
    let mut completed = Vec::new();
    for part in results {
        completed.extend(part?);
    }
    Ok(completed)
}

/// Makes up to `take` of `part`'s runs one after the other within its passes
/// left, until they run out (the part then makes no more runs). Only a
/// cancellation is an error.
fn run_part(
    context: &Context<'_>,
    part: &mut Part,
    take: usize,
) -> Result<Vec<Completed>, DryRunStopped> {
    let mut completed = Vec::new();
    for _ in 0..take {
        let Some(run) = part.runs.pop() else {
            break;
        };
        let mut simulation = Simulation::new(
            context.input,
            context.outlook,
            context.assumptions,
            run,
            context.reads,
        );
        let left = DryRunBudget {
            horizon: context.horizon,
            max_passes: part.passes_left,
        };
        let outcome = simulation.run(&left, context.cancel);
        part.passes_left = part.passes_left.saturating_sub(simulation.passes);
        match outcome {
            Ok(()) => completed.push((run, simulation.outcome(), simulation.rationale)),
            Err(DryRunStopped::TooLong { .. }) => {
                part.runs.clear();
                break;
            }
            Err(stopped) => return Err(stopped),
        }
    }
    Ok(completed)
}
