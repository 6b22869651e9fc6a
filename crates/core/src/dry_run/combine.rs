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

/// The value at quantile `q` of `sorted` (nearest rank).
fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((last as f64) * q).round() as usize).copied()
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
            step.done_at_p10 = quantile(times, 0.1);
            step.done_at_p90 = quantile(times, 0.9);
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
            "Forecast from {samples} sampled runs{}: median {}, 10% of runs under {}, 10% over {}; dominated by {dominated_by}.",
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
