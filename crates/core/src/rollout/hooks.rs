//! Site hooks (`hooks` in a policy): commands or HTTP calls run at
//! `pre_drain` (a node taken, before its drain is asked for), `pre_boot`
//! (the node quiet, before its boot) and `post_boot` (the node booted,
//! before the health gate judges it), once per node or once per step.
//!
//! A node passes a hook point only once every hook at that point finished
//! for it (and for its step). Each run is a persisted sub-state of the node
//! (or step): no record is pending; `running` is written before the run is
//! asked for (the controller persists before it acts), then `finished` or
//! `failed`. After a restart nothing that finished runs again; a run that
//! was in flight runs again only if its hook is `idempotent`, otherwise its
//! nodes fail, saying its outcome is unknown. A failing hook fails its
//! nodes, and halts the session too under `on_failure: halt`.
//!
//! The node phase table is unchanged: a node waiting for its hooks stays in
//! its phase (draining without a drain asked for, drained, verifying
//! without its soak started), and a failed hook fails it by the table's
//! own `Fail` (or `RollBack`, after a boot) move. A node booted back to the
//! rollback template runs no hook: hooks belong to the upgrade.

mod record;
mod spec;

pub use record::{HookRun, HookRunState};
pub(crate) use spec::hook_problems;
pub use spec::{
    DEFAULT_HOOK_TIMEOUT, Hook, HookHttp, HookOnFailure, HookPoint, HookScope, hooks_plan,
};

use super::*;
use crate::ports::HookRequest;
use record::{run_of, run_of_mut};

/// Which run of which hook: a node's (by index) or a step's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum HookKey {
    /// Hook `hook` for the node at index `node`.
    Node {
        /// The node's index.
        node: usize,
        /// The hook's position in the policy.
        hook: u32,
    },
    /// Hook `hook` for step `step`.
    Step {
        /// The step's number.
        step: u32,
        /// The hook's position in the policy.
        hook: u32,
    },
}

impl HookKey {
    fn hook(self) -> u32 {
        match self {
            HookKey::Node { hook, .. } | HookKey::Step { hook, .. } => hook,
        }
    }
}

/// The phases of a step's nodes that are before `point`, and at it.
fn phases_around(point: HookPoint) -> (&'static [NodePhase], &'static [NodePhase]) {
    match point {
        HookPoint::PreDrain => (&[], &[NodePhase::Draining]),
        HookPoint::PreBoot => (&[NodePhase::Draining], &[NodePhase::Drained]),
        HookPoint::PostBoot => (
            &[NodePhase::Draining, NodePhase::Drained, NodePhase::Booting],
            &[NodePhase::Verifying],
        ),
    }
}

impl Rollout {
    fn has_hooks(&self) -> bool {
        !self.state.policy.hooks.is_empty()
    }

    /// The positions of the policy's hooks at `point` run `per` node or step.
    fn hooks_at(&self, point: HookPoint, per: HookScope) -> Vec<u32> {
        self.state
            .policy
            .hooks
            .iter()
            .enumerate()
            .filter(|(_, hook)| hook.at == point && hook.per == per)
            .map(|(position, _)| u32::try_from(position).unwrap_or(u32::MAX))
            .collect()
    }

    /// Whether every hook at `point` finished for `node` and for its step:
    /// only then does the node go past that point.
    pub(super) fn hooks_done(&self, node: usize, point: HookPoint) -> bool {
        if !self.has_hooks() {
            return true;
        }
        let record = &self.state.nodes[node];
        // Hooks belong to the upgrade: a node booted back to the rollback
        // template passes without them.
        if record.rollback_reason.is_some() {
            return true;
        }
        let step_runs = record
            .step
            .and_then(|step| self.step(step))
            .map_or(&[][..], |step| step.hooks.as_slice());
        self.state
            .policy
            .hooks
            .iter()
            .enumerate()
            .filter(|(_, hook)| hook.at == point)
            .all(|(position, hook)| {
                let runs = match hook.per {
                    HookScope::Node => record.hooks.as_slice(),
                    HookScope::Step => step_runs,
                };
                let position = u32::try_from(position).unwrap_or(u32::MAX);
                run_of(runs, position).is_some_and(|run| {
                    run.state == HookRunState::Finished
                        && !(hook.per == HookScope::Node
                            && run.is_for_earlier_boot(record.attempts))
                })
            })
    }

    /// Whether `node` is booted and waits for its post_boot hooks (its
    /// own or its step's) before the health gate judges it.
    pub(super) fn awaits_post_boot_hooks(&self, node: usize) -> bool {
        self.has_hooks()
            && self.state.nodes[node].phase == NodePhase::Verifying
            && !self.hooks_done(node, HookPoint::PostBoot)
    }

    /// Starts the hooks owed to the nodes of step `step_number` and to the
    /// step, and settles those a restart lost.
    pub(super) fn tend_hooks(&mut self, now: Timestamp, step_number: u32) {
        if !self.has_hooks() {
            return;
        }
        let Some(step) = self.step(step_number) else {
            return;
        };
        for node in step.nodes.clone() {
            if self.state.nodes[node].rollback_reason.is_some() {
                continue;
            }
            let point = match self.state.nodes[node].phase {
                NodePhase::Draining => HookPoint::PreDrain,
                NodePhase::Drained => HookPoint::PreBoot,
                NodePhase::Verifying => HookPoint::PostBoot,
                _ => continue,
            };
            self.tend_node_hooks(now, node, point);
        }
        for point in [HookPoint::PreDrain, HookPoint::PreBoot, HookPoint::PostBoot] {
            self.tend_step_hooks(now, step_number, point);
        }
    }

    /// A deleted session boots nothing more: its nodes not booted yet are
    /// released, so nothing is run before their drain or boot.
    fn hooks_wanted_at(&self, point: HookPoint) -> bool {
        point == HookPoint::PostBoot || !self.deletion_requested()
    }

    /// The next of `node`'s own hooks at `point`, in the policy's order.
    fn tend_node_hooks(&mut self, now: Timestamp, node: usize, point: HookPoint) {
        if !self.hooks_wanted_at(point) {
            return;
        }
        for hook in self.hooks_at(point, HookScope::Node) {
            let key = HookKey::Node { node, hook };
            let record = &self.state.nodes[node];
            let run = run_of(&record.hooks, hook);
            // A post_boot hook runs after every boot: its run of an earlier
            // boot (before a retry) is run again, once it has answered.
            if let Some(earlier) = run.filter(|run| run.is_for_earlier_boot(record.attempts)) {
                if earlier.state == HookRunState::Running && self.hooks_in_flight.contains(&key) {
                    return;
                }
                self.start_hook(now, key, vec![node]);
                return;
            }
            let state = run.map(|run| run.state);
            match state {
                Some(HookRunState::Finished) => continue,
                Some(HookRunState::Failed) => return,
                Some(HookRunState::Running) => {
                    if !self.hooks_in_flight.contains(&key) {
                        self.hook_lost(now, key);
                    }
                    return;
                }
                None => {
                    self.start_hook(now, key, vec![node]);
                    return;
                }
            }
        }
    }

    /// The next of step `step_number`'s hooks at `point`, once none of its
    /// nodes is before that point and some are at it.
    fn tend_step_hooks(&mut self, now: Timestamp, step_number: u32, point: HookPoint) {
        let hooks = self.hooks_at(point, HookScope::Step);
        if hooks.is_empty() || !self.hooks_wanted_at(point) {
            return;
        }
        let (before, at) = phases_around(point);
        if !before.is_empty() && self.census.unsettled_count(step_number, before) > 0 {
            return;
        }
        for hook in hooks {
            let key = HookKey::Step {
                step: step_number,
                hook,
            };
            let state = self
                .step(step_number)
                .and_then(|step| run_of(&step.hooks, hook))
                .map(|run| run.state);
            match state {
                Some(HookRunState::Finished) => continue,
                Some(HookRunState::Failed) => return,
                Some(HookRunState::Running) => {
                    if !self.hooks_in_flight.contains(&key) {
                        self.hook_lost(now, key);
                    }
                    return;
                }
                None => {
                    let mut nodes = self.unsettled_in(step_number, at);
                    nodes.retain(|&node| self.state.nodes[node].rollback_reason.is_none());
                    if !nodes.is_empty() {
                        self.start_hook(now, key, nodes);
                    }
                    return;
                }
            }
        }
    }

    /// Writes the run down as running, then asks for it.
    fn start_hook(&mut self, now: Timestamp, key: HookKey, nodes: Vec<usize>) {
        let Some(hook) = self.hook(key.hook()) else {
            return;
        };
        let ids = self.ids_of(&nodes);
        let run = HookRun {
            hook: key.hook(),
            state: HookRunState::Running,
            started_at: now,
            finished_at: None,
            nodes: match key {
                HookKey::Node { .. } => Vec::new(),
                HookKey::Step { .. } => ids.clone(),
            },
            failure: None,
            boot: match key {
                HookKey::Node { node, .. } if hook.at == HookPoint::PostBoot => {
                    Some(self.state.nodes[node].attempts)
                }
                _ => None,
            },
        };
        match key {
            HookKey::Node { node, hook } => {
                // A run of an earlier boot gives way to this one.
                let runs = &mut self.state.nodes[node].hooks;
                runs.retain(|earlier| earlier.hook != hook);
                runs.push(run);
            }
            HookKey::Step { step, .. } => match self.step_mut(step) {
                Some(step) => step.hooks.push(run),
                None => return,
            },
        }
        self.dirty = true;
        let said = Said::HookStarted {
            subject: self.hook_subject(key),
            hook: hook.describe(),
        };
        self.say(now, said);
        self.emit_hook(now, key, &ids, HookRunState::Running, None);
        self.ask_hook(key, ids);
    }

    /// Tells the event stream and the webhooks where a run of a hook stands.
    fn emit_hook(
        &mut self,
        now: Timestamp,
        key: HookKey,
        nodes: &[NodeId],
        state: HookRunState,
        failure: Option<String>,
    ) {
        let Some(hook) = self.hook(key.hook()) else {
            return;
        };
        let step = match key {
            HookKey::Node { node, .. } => self.state.nodes[node].step.unwrap_or_default(),
            HookKey::Step { step, .. } => step,
        };
        self.emit(
            now,
            EventKind::Hook {
                at: hook.at,
                per: hook.per,
                hook: hook.target(),
                step,
                nodes: nodes.to_vec(),
                state,
                failure,
            },
        );
    }

    /// Queues the run of a hook, noting it is in flight in this process.
    fn ask_hook(&mut self, key: HookKey, nodes: Vec<NodeId>) {
        let Some(hook) = self.hook(key.hook()) else {
            return;
        };
        let (step, node) = match key {
            HookKey::Node { node, .. } => (
                self.state.nodes[node].step.unwrap_or_default(),
                Some(self.state.nodes[node].id.clone()),
            ),
            HookKey::Step { step, .. } => (step, None),
        };
        let request = HookRequest {
            hook,
            session: self.state.upgrade_id,
            template: self.state.spec.upgrade_template_id.clone(),
            step,
            nodes,
        };
        self.queue(Action::RunHook {
            hook: key.hook(),
            node,
            request,
        });
        self.hooks_in_flight.insert(key);
    }

    /// A run persisted as running that this process never asked for: the
    /// server stopped while it ran. Run again if the hook says that is
    /// harmless; otherwise its outcome is unknown and it fails.
    fn hook_lost(&mut self, now: Timestamp, key: HookKey) {
        let Some(hook) = self.hook(key.hook()) else {
            return;
        };
        let subject = self.hook_subject(key);
        if hook.idempotent {
            self.say(
                now,
                Said::HookRunAgain {
                    subject,
                    hook: hook.describe(),
                },
            );
            let nodes = match key {
                HookKey::Node { node, .. } => vec![self.state.nodes[node].id.clone()],
                HookKey::Step { .. } => self
                    .run(key)
                    .map(|run| run.nodes.clone())
                    .unwrap_or_default(),
            };
            self.emit_hook(now, key, &nodes, HookRunState::Running, None);
            self.ask_hook(key, nodes);
        } else {
            self.hook_answered(
                now,
                key,
                Some(
                    "its outcome is unknown: the server stopped while it ran, and the hook is \
                     not marked idempotent, so it is not run again"
                        .to_string(),
                ),
            );
        }
    }

    /// The answer to a run of a hook: `None` when it succeeded, why it
    /// failed otherwise.
    pub(super) fn hook_answered(&mut self, now: Timestamp, key: HookKey, failure: Option<String>) {
        self.hooks_in_flight.remove(&key);
        let Some(hook) = self.hook(key.hook()) else {
            return;
        };
        // The answer for a node's boot before its retry: the node is booted
        // again, and the hook runs again after that boot.
        let earlier_boot = match key {
            HookKey::Node { node, .. } => {
                let attempts = self.state.nodes[node].attempts;
                self.run(key)
                    .is_some_and(|run| run.is_for_earlier_boot(attempts))
            }
            HookKey::Step { .. } => false,
        };
        let Some(run) = self.run_mut(key) else {
            return;
        };
        if run.state != HookRunState::Running {
            return;
        }
        run.state = if failure.is_none() {
            HookRunState::Finished
        } else {
            HookRunState::Failed
        };
        run.finished_at = Some(now);
        run.failure = failure.clone();
        let state = run.state;
        let nodes = match key {
            HookKey::Node { node, .. } => vec![node],
            HookKey::Step { .. } => {
                let ids = run.nodes.clone();
                self.indexes_of(&ids)
            }
        };
        self.dirty = true;
        let ids = self.ids_of(&nodes);
        self.emit_hook(now, key, &ids, state, failure.clone());
        let subject = self.hook_subject(key);
        let Some(why) = failure else {
            self.say(
                now,
                Said::HookFinished {
                    subject,
                    hook: hook.describe(),
                },
            );
            return;
        };
        let reason = format!("{} failed: {why}", hook.describe());
        if earlier_boot {
            self.say(now, Said::HookFailedEarlierBoot { subject, reason });
            return;
        }
        self.say(
            now,
            Said::HookFailed {
                subject: subject.clone(),
                reason: reason.clone(),
            },
        );
        for node in nodes {
            match self.state.nodes[node].phase {
                // Booted with the new image: the rollback policy applies.
                NodePhase::Verifying => self.upgrade_failed(node, reason.clone(), now),
                NodePhase::Draining | NodePhase::Drained | NodePhase::Booting => {
                    self.fail_node(node, reason.clone(), now);
                }
                _ => {}
            }
        }
        if hook.on_failure == HookOnFailure::Halt && self.may_halt() {
            self.halt(now, format!("{subject}: {reason} (on_failure: halt)"));
        }
    }

    /// The key of a hook run's action.
    pub(super) fn hook_key_of(
        &self,
        hook: u32,
        node: Option<&NodeId>,
        step: u32,
    ) -> Option<HookKey> {
        match node {
            Some(id) => self.index.get(id).map(|&node| HookKey::Node { node, hook }),
            None => Some(HookKey::Step { step, hook }),
        }
    }

    fn hook(&self, position: u32) -> Option<Hook> {
        let position = usize::try_from(position).ok()?;
        self.state.policy.hooks.get(position).cloned()
    }

    fn run(&self, key: HookKey) -> Option<&HookRun> {
        match key {
            HookKey::Node { node, hook } => run_of(&self.state.nodes[node].hooks, hook),
            HookKey::Step { step, hook } => run_of(&self.step(step)?.hooks, hook),
        }
    }

    fn run_mut(&mut self, key: HookKey) -> Option<&mut HookRun> {
        match key {
            HookKey::Node { node, hook } => run_of_mut(&mut self.state.nodes[node].hooks, hook),
            HookKey::Step { step, hook } => run_of_mut(&mut self.step_mut(step)?.hooks, hook),
        }
    }

    /// `Node x1000c0s0b0n0` or `Step 3`, to begin a message.
    fn hook_subject(&self, key: HookKey) -> Subject {
        match key {
            HookKey::Node { node, .. } => Subject::Node(self.state.nodes[node].id.clone()),
            HookKey::Step { step, .. } => Subject::Step(step),
        }
    }
}
