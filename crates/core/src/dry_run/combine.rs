//! The forecast made from the sampled runs: the median run's plan, with the
//! spread of the others and what dominates.

use std::collections::HashMap;
use std::time::Duration;

use super::attribution::{self, Split};
use super::left_out::{self, SkippedNode};
use super::machine::NodeTrace;
use super::outlook::Outlook;
use super::safety::{planned_gates, planned_rollback};
use super::{DryRun, DryRunInput, PlannedStep};
use crate::node::NodeId;
use crate::time::Timestamp;

/// What one sampled run gave.
pub(super) struct Outcome {
    pub(super) duration: Duration,
    pub(super) skipped: Vec<SkippedNode>,
    pub(super) steps: Vec<PlannedStep>,
    pub(super) traces: HashMap<NodeId, NodeTrace>,
    pub(super) split: Split,
}

/// Where quantile `q` of the *next* run lies among `len` sorted runs: the
/// two neighbouring runs (0-based) and how far between them.
///
/// The forecast's range is a prediction of one more run (the real one), not
/// a summary of the runs made: of `n` runs and one more drawn alike, the new
/// one falls below the k-th smallest with chance k / (n + 1). So the
/// quantile sits at rank q (n + 1), interpolated (Hyndman and Fan's type 6).
/// Read at rank q (n - 1) + 1 instead, as a plain sample quantile is, p10 and
/// p90 of 15 runs are the 2nd and 14th, a range that holds the next run only
/// 12 times in 16 (75%), not 80%.
fn predictive_rank(len: usize, q: f64) -> Option<(usize, usize, f64)> {
    let last = len.checked_sub(1)?;
    let rank = (q * (len as f64 + 1.0)).clamp(1.0, len as f64) - 1.0;
    let below = (rank.floor() as usize).min(last);
    Some((below, (below + 1).min(last), rank - below as f64))
}

/// The duration at quantile `q` of the next run, from `sorted` runs' (whole seconds).
fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let (below, above, between) = predictive_rank(sorted.len(), q)?;
    let (low, high) = (sorted[below], sorted[above]);
    let at = low.as_secs_f64() + (high.as_secs_f64() - low.as_secs_f64()) * between;
    Some(Duration::from_secs(at.round() as u64))
}

/// The time at quantile `q` of the next run, from `sorted` runs' (whole seconds).
fn quantile_time(sorted: &[Timestamp], q: f64) -> Option<Timestamp> {
    let (below, above, between) = predictive_rank(sorted.len(), q)?;
    let gap = sorted[above].saturating_since(sorted[below]).as_secs_f64() * between;
    Some(sorted[below] + Duration::from_secs(gap.round() as u64))
}

/// The forecast from the sampled runs' `outcomes` (at least one) of `planned` runs.
pub(super) fn combine(
    input: &DryRunInput,
    outlook: &Outlook,
    mut outcomes: Vec<Outcome>,
    planned: u32,
    mut rationale: Vec<String>,
) -> DryRun {
    outcomes.sort_by_key(|outcome| outcome.duration);
    let durations: Vec<Duration> = outcomes.iter().map(|outcome| outcome.duration).collect();
    let median_index = outcomes.len() / 2;
    let p10 = quantile(&durations, 0.1).unwrap_or_default();
    let p90 = quantile(&durations, 0.9).unwrap_or_default();
    let samples = u32::try_from(outcomes.len()).unwrap_or(u32::MAX);
    // Per step number, when it is done in each run.
    let mut done: HashMap<u32, Vec<Timestamp>> = HashMap::new();
    for outcome in &outcomes {
        for step in &outcome.steps {
            done.entry(step.step).or_default().push(step.done_at);
        }
    }
    for times in done.values_mut() {
        times.sort_unstable();
    }
    let Some(median) = outcomes.get_mut(median_index) else {
        // Never: every caller passes at least one outcome.
        return DryRun {
            steps: Vec::new(),
            nodes: input.members.len(),
            step_size: input.spec.upgrade_step_size,
            policy: input.policy.clone(),
            estimated_duration: Duration::ZERO,
            p10,
            p90,
            samples,
            dominated_by: String::new(),
            rationale,
            skipped: Vec::new(),
            floor: left_out::planned_floor(&input.policy, input.members.len()),
            max_boots_per_minute: input.policy.max_boots_per_minute,
            rollback: planned_rollback(&input.policy, input.spec.upgrade_step_size),
            gates: planned_gates(&input.policy),
        };
    };
    let estimated_duration = median.duration;
    let dominated_by = median.split.dominant();
    let mut steps = std::mem::take(&mut median.steps);
    for step in &mut steps {
        let times = done.get(&step.step).map_or(&[][..], |times| &times[..]);
        if samples > 1 {
            step.done_at_p10 = quantile_time(times, 0.1);
            step.done_at_p90 = quantile_time(times, 0.9);
        }
        step.dominated_by = Some(step_dominance(&step.nodes, &median.traces));
    }
    rationale
        .extend(outlook.rationale(input.queue.as_ref().map_or(0, |queue| queue.pending.len())));
    if let Some(note) = &input.queue_note {
        rationale.push(note.clone());
    }
    let floor = left_out::planned_floor(&input.policy, input.members.len());
    rationale.extend(left_out::rationale(floor.as_ref(), &input.policy));
    if let Some(note) = &input.images_note {
        rationale.push(note.clone());
    }
    let skipped = std::mem::take(&mut median.skipped);
    if !skipped.is_empty() {
        rationale.push(format!(
            "{} node(s) would be left alone (see skipped).",
            skipped.len()
        ));
    }
    let text =
        |duration: Duration| humantime::format_duration(Duration::from_secs(duration.as_secs()));
    rationale.push(if samples > 1 {
        format!(
            "Forecast from {samples} sampled runs{}: median {}, the real run expected between {} and {} (p10-p90); dominated by {dominated_by}.",
            if samples < planned {
                format!(" (of {planned}; the dry run's budget allowed no more)")
            } else {
                String::new()
            },
            text(estimated_duration),
            text(p10),
            text(p90)
        )
    } else {
        format!("Nothing in the forecast is uncertain: one run, dominated by {dominated_by}.")
    });
    DryRun {
        steps,
        nodes: input.members.len(),
        step_size: input.spec.upgrade_step_size,
        policy: input.policy.clone(),
        estimated_duration,
        p10,
        p90,
        samples,
        dominated_by,
        rationale,
        skipped,
        floor,
        max_boots_per_minute: input.policy.max_boots_per_minute,
        rollback: planned_rollback(&input.policy, input.spec.upgrade_step_size),
        gates: planned_gates(&input.policy),
    }
}

/// What a step's time goes to, from its nodes' traces: waiting for its
/// slowest job when that took longer than its longest boot, else the boot.
fn step_dominance(nodes: &[NodeId], traces: &HashMap<NodeId, NodeTrace>) -> String {
    let mut wait = Duration::ZERO;
    let mut last_end = None;
    let mut boot = Duration::ZERO;
    for trace in nodes.iter().filter_map(|node| traces.get(node)) {
        if let (Some(from), Some(to)) = (trace.drained_at, trace.quiet_at)
            && to.saturating_since(from) > wait
        {
            wait = to.saturating_since(from);
            last_end = Some(to);
        }
        if let (Some(from), Some(to)) = (trace.boot_at, trace.back_at) {
            boot = boot.max(to.saturating_since(from));
        }
    }
    match last_end {
        Some(end) if wait > boot => format!(
            "waiting for jobs that end by {}",
            attribution::clock_time(end)
        ),
        _ => "boot".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dry_run::outlook::Draws;

    fn minutes(minutes: u64) -> Duration {
        Duration::from_secs(minutes * 60)
    }

    #[test]
    fn p10_to_p90_of_fifteen_runs_holds_one_more_run_four_times_in_five() {
        let mut draws = Draws::for_run(7);
        let trials = 20_000;
        let (mut predicted, mut plain) = (0, 0);
        for _ in 0..trials {
            let mut draw = || Duration::from_secs((draws.unit() * 1e6) as u64);
            let mut runs: Vec<Duration> = (0..15).map(|_| draw()).collect();
            let real = draw();
            runs.sort_unstable();
            let (Some(p10), Some(p90)) = (quantile(&runs, 0.1), quantile(&runs, 0.9)) else {
                panic!("fifteen runs have quantiles");
            };
            predicted += usize::from(p10 <= real && real <= p90);
            // The plain sample quantiles, the 2nd and the 14th run.
            plain += usize::from(runs[1] <= real && real <= runs[13]);
        }
        let share = |inside: usize| inside as f64 / f64::from(trials);
        assert!(
            (0.78..0.82).contains(&share(predicted)),
            "{}",
            share(predicted)
        );
        assert!((0.73..0.77).contains(&share(plain)), "{}", share(plain));
    }

    #[test]
    fn quantiles_interpolate_between_runs_and_stay_within_them() {
        let runs: Vec<Duration> = (1..=15).map(minutes).collect();
        // Ranks 1.6, 8 and 14.4 of 15.
        assert_eq!(quantile(&runs, 0.1), Some(Duration::from_secs(96)));
        assert_eq!(quantile(&runs, 0.5), Some(minutes(8)));
        assert_eq!(quantile(&runs, 0.9), Some(Duration::from_secs(864)));
        let few = [minutes(1), minutes(2), minutes(3)];
        assert_eq!(quantile(&few, 0.1), Some(minutes(1)));
        assert_eq!(quantile(&few, 0.9), Some(minutes(3)));
        assert_eq!(quantile(&[minutes(5)], 0.9), Some(minutes(5)));
        assert_eq!(quantile(&[], 0.5), None);
        let start = Timestamp::from_secs(1_000_000);
        let times: Vec<Timestamp> = runs.iter().map(|run| start + *run).collect();
        assert_eq!(
            quantile_time(&times, 0.9),
            Some(start + Duration::from_secs(864))
        );
    }
}
