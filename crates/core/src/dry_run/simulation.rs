//! The engine driven against one sampled run's model of the machine, in
//! virtual time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use uuid::Uuid;

use super::attribution;
use super::combine::Outcome;
use super::left_out;
use super::machine::{Machine, MachineSettings, NodeTrace};
use super::outlook::Outlook;
use super::{DryRunAssumptions, DryRunBudget, DryRunInput, DryRunStopped, PlannedStep};
use crate::node::NodeId;
use crate::ports::WorkloadState;
use crate::rollout::{Rollout, RolloutPolicy};
use crate::time::Timestamp;

/// How the engine reads the model's workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reads {
    /// The model tells the engine each node's changes, and the engine's
    /// reads leave out the nodes whose answer would change nothing
    /// (`Rollout::report_workload_changes`): the forecast is the same, at a
    /// fraction of the work on a large machine.
    Changes,
    /// Every read names every node it would name in a real session: what
    /// the tests compare [`Reads::Changes`] with.
    #[cfg_attr(not(test), allow(dead_code))]
    Whole,
}

/// The engine driven against one sampled run's machine in virtual time.
pub(super) struct Simulation {
    pub(super) machine: Machine,
    pub(super) rollout: Rollout,
    pub(super) members: Vec<NodeId>,
    pub(super) policy: RolloutPolicy,
    pub(super) step_size: u32,
    pub(super) rationale: Vec<String>,
    pub(super) start: Timestamp,
    pub(super) clock: Timestamp,
    pub(super) passes: u64,
    /// How many nodes the engine's workload reads named, over the run.
    pub(super) nodes_read: u64,
}

impl Simulation {
    pub(super) fn new(
        input: &DryRunInput,
        outlook: &Outlook,
        assumptions: &DryRunAssumptions,
        run: u32,
        reads: Reads,
    ) -> Simulation {
        let policy = input.policy.clone();
        let soak = policy
            .health
            .as_ref()
            .map_or(Duration::ZERO, |health| health.soak);
        let machine = Machine::new(
            &input.members,
            &input.observed,
            input.queue.as_ref(),
            outlook,
            input.now,
            MachineSettings {
                boot_time: assumptions.boot_time,
                boot_spread: assumptions.boot_time_spread,
                unknown_job_end: assumptions.unknown_job_end,
                soak,
            },
            run,
        );
        let mut machine = machine;
        machine.set_images(&input.images);
        if reads == Reads::Changes {
            machine.list_only_finished_boots();
        }
        let mut rationale = policy_rationale(&policy);
        let busy = input
            .observed
            .iter()
            .filter(|node| {
                matches!(
                    node.state,
                    WorkloadState::Allocated | WorkloadState::Draining
                )
            })
            .count();
        rationale.push(format!(
            "Estimate: {busy} busy node(s) drain when their jobs end (by their time limits unless recent jobs show otherwise); a boot takes {}.",
            humantime::format_duration(assumptions.boot_time)
        ));
        if machine.unknown_ends > 0 {
            rationale.push(format!(
                "{} node(s) run jobs with no known end; the estimate assumes they end within a day.",
                machine.unknown_ends
            ));
        }
        // A dry run cannot wait for an operator: a canary that would pause is
        // planned as if it were resumed at once.
        let mut run_policy = policy.clone();
        if let Some(canary) = run_policy.canary.as_mut()
            && canary.pause_after
        {
            canary.pause_after = false;
            rationale.push(
                "The canary step pauses the session; the plan assumes it is resumed at once."
                    .to_string(),
            );
        }
        let step_size = input.spec.upgrade_step_size;
        let mut rollout = Rollout::new(Uuid::nil(), input.spec.clone(), run_policy, input.now);
        if reads == Reads::Changes {
            rollout.report_workload_changes();
        }
        Simulation {
            machine,
            rollout,
            members: input.members.clone(),
            policy,
            step_size,
            rationale,
            start: input.now,
            clock: input.now,
            passes: 0,
            nodes_read: 0,
        }
    }

    /// Drives the engine until the session finishes or `budget` or `cancel`
    /// stops it.
    pub(super) fn run(
        &mut self,
        budget: &DryRunBudget,
        cancel: &AtomicBool,
    ) -> Result<(), DryRunStopped> {
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(DryRunStopped::Cancelled);
            }
            if self.passes >= budget.max_passes {
                return Err(self.too_long(budget, Limit::Passes(budget.max_passes)));
            }
            if self.clock.saturating_since(self.start) > budget.horizon {
                return Err(self.too_long(budget, Limit::Horizon));
            }
            self.passes += 1;
            // Nothing is stored in a dry run: the nodes need not remember
            // what changed for a write that never comes.
            self.rollout.mark_nodes_written();
            let clock = self.clock;
            self.machine.advance_to(clock);
            self.tell_changes();
            let before = self.progress();
            self.rollout.handle_timeout(clock);
            // Everything asked at one instant is answered at that instant.
            loop {
                let mut answers = Vec::new();
                while let Some((id, action)) = self.rollout.poll_action() {
                    if let crate::rollout::Action::ObserveWorkload { nodes, .. } = &action {
                        self.nodes_read += nodes.len() as u64;
                    }
                    answers.push((id, Ok(self.machine.answer(&action, clock))));
                }
                if answers.is_empty() {
                    break;
                }
                self.tell_changes();
                self.rollout.handle_outcomes(clock, answers);
            }
            if self.rollout.is_finished() {
                return Ok(());
            }
            // Until the machine's next job end, arrival, boot end or soak
            // end, every poll would read what was read already: skip to the
            // first poll after it. Only once the engine made no progress in
            // this pass, though: a node that just moved on (booted, now
            // verifying; a step just finished) is looked at again at the
            // next poll whatever the machine does.
            if self.progress() == before
                && let Some(change) = self.machine.next_change_after(clock)
            {
                self.rollout.defer_polls(change);
            }
            let next = self
                .rollout
                .poll_timeout()
                .unwrap_or(clock + Duration::from_secs(1));
            self.clock = next.max(clock + Duration::from_millis(1));
        }
    }

    /// Tells the engine which nodes' workload changed since it was last told.
    fn tell_changes(&mut self) {
        let rollout = &mut self.rollout;
        self.machine
            .take_changes(|node, at| rollout.workload_changed(node, at));
    }

    /// How far the engine has come: its nodes per phase and its steps. The
    /// same before and after a pass when the pass changed nothing.
    fn progress(&self) -> (Vec<usize>, usize) {
        (
            crate::rollout::NodePhase::ALL
                .iter()
                .map(|&phase| self.rollout.count(phase))
                .collect(),
            self.rollout.state().steps.len(),
        )
    }

    /// Why the session outgrew `budget`, naming the setting of the request
    /// most likely to blame.
    fn too_long(&self, budget: &DryRunBudget, limit: Limit) -> DryRunStopped {
        let reached = match limit {
            Limit::Horizon => format!(
                "The session would take longer than the {} a dry run simulates",
                humantime::format_duration(budget.horizon)
            ),
            Limit::Passes(passes) => format!(
                "The session needs more than the {passes} engine passes a dry run may take (it reached {} of simulated time)",
                humantime::format_duration(Duration::from_secs(
                    self.clock.saturating_since(self.start).as_secs()
                ))
            ),
        };
        let steps = u64::try_from(self.members.len())
            .unwrap_or(u64::MAX)
            .div_ceil(u64::from(self.step_size.max(1)))
            .max(1);
        let soak = self
            .policy
            .health
            .as_ref()
            .map_or(Duration::ZERO, |health| health.soak);
        let soaks = soak.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX));
        let latest_job_end = self
            .machine
            .latest_initial_job_end()
            .map(|end| end.saturating_since(self.start));
        let (field, cause) = if soaks >= budget.horizon / 2 || soak >= budget.horizon / 4 {
            (
                "policy.health.soak",
                format!(
                    "each of its {steps} step(s) soaks for {}; shorten policy.health.soak",
                    humantime::format_duration(soak)
                ),
            )
        } else if latest_job_end.is_some_and(|end| end >= budget.horizon / 2) {
            (
                "starting_label",
                format!(
                    "jobs on the starting group run for up to {} more; wait for them or choose a policy.drain_timeout",
                    humantime::format_duration(latest_job_end.unwrap_or_default())
                ),
            )
        } else if !self.policy.windows.is_empty() {
            (
                "policy.windows",
                "its maintenance windows leave too little time to take nodes; widen policy.windows"
                    .to_string(),
            )
        } else if matches!(limit, Limit::Passes(_))
            && self.policy.poll_interval < Duration::from_secs(1)
        {
            (
                "policy.poll_interval",
                format!(
                    "it polls every {}; poll less often",
                    humantime::format_duration(self.policy.poll_interval)
                ),
            )
        } else {
            (
                "upgrade_step_size",
                format!(
                    "its {steps} step(s) of {} node(s) add up; take more nodes per step",
                    self.step_size
                ),
            )
        };
        DryRunStopped::TooLong {
            field: field.to_string(),
            message: format!("{reached}: {cause}."),
        }
    }

    /// The run's outcome, as far as it went.
    pub(super) fn outcome(&self) -> Outcome {
        let state = self.rollout.state();
        let steps = state
            .steps
            .iter()
            .map(|step| PlannedStep {
                step: step.number,
                nodes: step
                    .nodes
                    .iter()
                    .map(|&node| state.nodes[node].id.clone())
                    .collect(),
                starts_at: step.started_at,
                done_at: step
                    .nodes
                    .iter()
                    .filter_map(|&node| state.nodes[node].finished_at)
                    .max()
                    .unwrap_or(step.started_at),
                done_at_p10: None,
                done_at_p90: None,
                dominated_by: None,
            })
            .collect();
        let finished = state.finished_at.unwrap_or(self.clock);
        let traces: Vec<(NodeId, NodeTrace)> = self
            .machine
            .traces()
            .map(|(id, trace)| (id.clone(), trace))
            .collect();
        let only: Vec<NodeTrace> = traces.iter().map(|(_, trace)| *trace).collect();
        Outcome {
            duration: finished.saturating_since(self.start),
            skipped: left_out::skipped_nodes(state),
            steps,
            split: attribution::split(&only, self.start, finished),
            traces: traces.into_iter().collect(),
        }
    }
}

/// Which bound of a [`DryRunBudget`] a simulation reached.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// Its simulated time passed the horizon.
    Horizon,
    /// It took this many passes.
    Passes(u64),
}

/// Why the nodes come in the order they do, as the policy says.
fn policy_rationale(policy: &RolloutPolicy) -> Vec<String> {
    use crate::rollout::{Order, Strategy};
    let mut lines = vec![match policy.order {
        Order::Inventory => {
            "Nodes in inventory order (cabinet, chassis, slot, node), as CRUS.".to_string()
        }
        Order::DrainCost => "Idle nodes first, then nodes whose jobs end soonest.".to_string(),
        Order::Topology => format!(
            "Idle nodes first, then nodes whose jobs end soonest, {}.",
            match (policy.spread, policy.align) {
                (Some(domain), _) => format!("never two of one {} out at once", domain.as_str()),
                (None, Some(domain)) => format!("a whole {} at a time", domain.as_str()),
                (None, None) => "by location".to_string(),
            }
        ),
    }];
    lines.push(match policy.strategy {
        Strategy::Steps => "Each step waits for its slowest drain, then boots, before the next starts (CRUS's barrier).".to_string(),
        Strategy::Continuous => "A node is taken as soon as another is back; each boots as soon as it is drained.".to_string(),
    });
    lines.extend(crate::rollout::hooks_plan(&policy.hooks));
    lines
}
