//! Property tests of the engine alone, with no runtime: a random policy, a
//! small cluster whose scheduler keeps starting jobs, random answers (late,
//! refused, boots that fail or hang), operator commands and restarts from
//! the persisted state (serialised and read back, as a new controller
//! would), and after every input the invariants of DESIGN.md:
//!
//! - never more nodes out of service than the step size;
//! - crus never crosses the capacity floor (`min_available`): it starts no
//!   node (drains none newly) when that leaves fewer nodes in service than
//!   the floor, counting every node out of service for any reason it could
//!   know of: its own, failed ones, and those administrators took out
//!   before its latest read of them. Administrators drain any node (held
//!   by crus or not) and return the ones crus is not upgrading (pending,
//!   done, skipped, or waited for under `wait`): their drains are not
//!   crus's doing, and crus draining again a node it took before its owner
//!   returned it is not a start;
//! - no more boots are requested in any minute than `max_boots_per_minute`;
//! - no node is booted while it runs a job (unless `on_drain_timeout: force`);
//! - persist before act: every action handed out follows from the state last
//!   persisted;
//! - crus returns to service only nodes it asked to take out of service, and
//!   never a node an administrator holds out of service (drained or down
//!   before the session or during it, with a reason crus did not write),
//!   whatever happens (deletes, halts, restarts, refusals, boots that fail
//!   after an administrator drained the node crus was booting); such a node
//!   ends the session with its state and its reason exactly as its owner
//!   set them, and crus never marks it failed over their reason;
//! - `foreign_out_of_service: skip`: crus never asks to drain a node it
//!   has read as held by someone else, and never drains a skipped node;
//! - at the end, every node is done, failed or skipped; the failed group
//!   holds exactly the failed nodes; no node is left drained but a failed one;
//! - the node phase table and the session lifecycle table never refuse a move;
//! - `steer_jobs`: a weight is raised only once the node's own weight is
//!   persisted, and at the end every node has its own weight back (the
//!   workload manager also forgets raised weights now and then, as
//!   `slurmctld` does on a restart).
//! - `image_features`: a node's features are set only once its own are
//!   persisted, to its own list or (once upgraded) its own with
//!   `img_<template>` in place of any `img_*`; after any ending each node
//!   has exactly that: the tag if the session upgraded it, its own list
//!   otherwise (the workload manager also forgets features set now and
//!   then, as `slurmctld` may on a restart).
//! - `skip_matching`: a node already on the target image at the snapshot
//!   is never drained (nor booted), whatever happens, and ends skipped;
//! - with alert gates, no node is taken unless the latest answer of the
//!   gates the engine saw was clear, and none while a gate holds it.
//! - with `rollback`, a reverted node was booted with the rollback template
//!   exactly once, after every boot of its upgrade; any other node at most
//!   once (a failed one whose boot back failed too), an upgraded one never;
//!   with `revert_upgraded_on_halt` too, where a halted session boots its
//!   upgraded nodes back (a node is reverted at most once, and never booted
//!   with the new image after its boot back).
//! - `reserve_ahead`: only nodes still pending are reserved, and at the end
//!   none is (the workload manager also loses reservations now and then,
//!   as a `slurmctld` crash before saving them does);
//! - `drain_ahead`: never more than `max_draining` nodes drained ahead; the
//!   floor, the step and the boot rate hold as above; a node drained ahead
//!   is booted only once taken and quiet; at the end none is left drained
//!   (a deleted session may leave one pending that it drained ahead, back
//!   in service).
//!
//! 1,000 cases by default; `CRUS_ENGINE_PROPTEST_CASES=10000` for a longer run.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::strategy::Strategy;

use super::*;

/// A small deterministic generator (SplitMix64): the scenario's seed fixes
/// every choice, so a failing case replays.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `rate`.
    fn chance(&mut self, rate: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= rate
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    nodes: usize,
    step: u32,
    policy: RolloutPolicy,
    seed: u64,
    /// How often an answer is a refusal.
    refusal_rate: f64,
    /// How often a boot fails, and how often a node hangs after its boot.
    boot_fail_rate: f64,
    hang_rate: f64,
    /// How often, per input, the controller restarts or an operator acts.
    restart_rate: f64,
    command_rate: f64,
    /// Whether the policy has `skip_matching` (then some nodes start on the
    /// target image).
    skip_matching: bool,
}

/// Site hooks for a scenario that has them: one at each point, per node
/// and per step, idempotent or not (no `pre_drain` under drain ahead,
/// which refuses it).
fn scenario_hooks(drain_ahead: bool) -> Vec<crate::rollout::Hook> {
    use crate::rollout::{DEFAULT_HOOK_TIMEOUT, Hook, HookOnFailure, HookPoint, HookScope};
    let hook = |at: HookPoint, per: HookScope, idempotent: bool| Hook {
        at,
        per,
        command: Some(vec![format!("/site/{}", at.as_str())]),
        http: None,
        timeout: DEFAULT_HOOK_TIMEOUT,
        idempotent,
        on_failure: HookOnFailure::FailNode,
    };
    let mut hooks = Vec::new();
    if !drain_ahead {
        hooks.push(hook(HookPoint::PreDrain, HookScope::Node, false));
    }
    hooks.push(hook(HookPoint::PreBoot, HookScope::Step, true));
    hooks.push(hook(HookPoint::PostBoot, HookScope::Node, false));
    hooks
}

fn policies() -> impl Strategy<Value = RolloutPolicy> {
    (
        prop_oneof![
            Just(crate::rollout::Strategy::Steps),
            Just(crate::rollout::Strategy::Continuous)
        ],
        prop_oneof![Just(Order::Inventory), Just(Order::DrainCost)],
        0u32..=2,
        prop_oneof![2 => Just(None), 1 => (0u32..3).prop_map(Some)],
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(OnDrainTimeout::Skip)),
            1 => Just(Some(OnDrainTimeout::Force)),
            1 => Just(Some(OnDrainTimeout::Requeue)),
        ],
        prop_oneof![
            Just(ForeignOutOfService::UpgradeAndRestore),
            Just(ForeignOutOfService::Skip),
            Just(ForeignOutOfService::Wait),
        ],
        prop_oneof![
            3 => Just(None),
            1 => (0u32..6).prop_map(|count| Some(FailureBudget::Count(count))),
            1 => (0u32..=100).prop_map(|percent| Some(FailureBudget::Percent(f64::from(percent)))),
        ],
        prop_oneof![3 => Just(None), 1 => (1u32..4).prop_map(Some)],
        (
            any::<bool>(),
            // Drain ahead: off, on with `max_draining` the step, or on with one.
            prop_oneof![
                2 => Just(None),
                1 => Just(Some(None)),
                1 => (1u32..3).prop_map(|count| Some(Some(count))),
            ],
            any::<bool>(),
            prop_oneof![2 => Just(false), 1 => Just(true)],
        ),
        prop_oneof![2 => Just(false), 1 => Just(true)],
    )
        .prop_map(
            |(
                strategy,
                order,
                retries,
                max_failures,
                canary,
                escalate,
                on_drain_timeout,
                foreign_out_of_service,
                min_available,
                max_boots_per_minute,
                (steer_jobs, drain_ahead, image_features, reserve_ahead),
                gated,
            )| {
                let mut policy = RolloutPolicy {
                    strategy,
                    order,
                    retries,
                    max_failures: max_failures.map(FailureBudget::Count),
                    escalate_power_cycle: escalate,
                    boot_timeout: Duration::from_secs(600),
                    foreign_out_of_service,
                    min_available,
                    max_boots_per_minute,
                    steer_jobs,
                    image_features,
                    ..RolloutPolicy::default()
                };
                if canary {
                    policy.canary = Some(Canary {
                        size: 1,
                        pause_after: true,
                    });
                }
                if let Some(max_draining) = drain_ahead {
                    policy.strategy = crate::rollout::Strategy::Continuous;
                    policy.order = Order::DrainCost;
                    policy.drain_ahead = true;
                    policy.max_draining = max_draining;
                }
                if reserve_ahead {
                    policy.strategy = crate::rollout::Strategy::Continuous;
                    policy.order = Order::DrainCost;
                    policy.reserve_ahead = true;
                }
                if gated {
                    policy.gates = vec![crate::ports::GateCheck::Alertmanager {
                        url: "http://alertmanager:9093".into(),
                        filter: vec!["severity=critical".into()],
                    }];
                    policy.max_hold = Some(Duration::from_secs(7200));
                }
                if let Some(action) = on_drain_timeout {
                    policy.drain_timeout = Some(Duration::from_secs(1800));
                    policy.on_drain_timeout = action;
                }
                policy
            },
        )
}

fn scenarios() -> impl Strategy<Value = Scenario> {
    (
        0usize..=12,
        1u32..=4,
        policies(),
        any::<u64>(),
        prop_oneof![Just(0.0), 0.0..0.2],
        prop_oneof![Just(0.0), 0.0..0.3],
        prop_oneof![Just(0.0), 0.0..0.2],
        prop_oneof![Just(0.0), 0.0..0.05],
        prop_oneof![Just(0.0), 0.0..0.05],
        any::<bool>(),
        // Rollback: off, failed nodes only, or also the upgraded ones when
        // the session halts (`revert_upgraded_on_halt`), in batches of the
        // step size or of 1 to 4.
        prop_oneof![
            2 => Just(None),
            1 => Just(Some((false, None))),
            1 => Just(Some((true, None))),
            1 => (1u32..=4).prop_map(|batch| Some((true, Some(batch)))),
        ],
        any::<bool>(),
    )
        .prop_map(
            |(
                nodes,
                step,
                mut policy,
                seed,
                refusal_rate,
                boot_fail_rate,
                hang_rate,
                restart_rate,
                command_rate,
                skip_matching,
                rollback,
                hooks,
            )| Scenario {
                nodes,
                step,
                policy: {
                    if hooks {
                        policy.hooks = scenario_hooks(policy.drain_ahead);
                    }
                    if let Some((revert_upgraded_on_halt, batch)) = rollback {
                        policy.rollback = Some(Rollback {
                            template: ROLLBACK_TEMPLATE.into(),
                            on: vec![RollbackTrigger::NodeFailed],
                            revert_upgraded_on_halt,
                            batch,
                        });
                    }
                    RolloutPolicy {
                        skip_matching,
                        ..policy
                    }
                },
                seed,
                refusal_rate,
                boot_fail_rate,
                hang_rate,
                restart_rate,
                command_rate,
                skip_matching,
            },
        )
}

/// The template failed nodes are booted back to, when the policy asks.
const ROLLBACK_TEMPLATE: &str = "old-image";

/// How a node's latest boot goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BootFate {
    Ok,
    Fail,
    Hang,
}

/// The cluster as the ports would show it.
struct World {
    names: Vec<NodeId>,
    /// When each node's running job ends (in the past: idle).
    job_until: BTreeMap<NodeId, Timestamp>,
    /// Out of service by crus (drained or marked failed), with the reason.
    out_by_crus: BTreeMap<NodeId, String>,
    /// Nodes crus ever asked to take out of service.
    ever_drained: BTreeSet<NodeId>,
    /// Out of service by an administrator: down (true) or drained, and
    /// the reason, which is the one the workload manager shows (the latest
    /// set, as Slurm keeps one).
    by_admin: BTreeMap<NodeId, (bool, String)>,
    /// Nodes the latest reading of them handed to the engine showed held
    /// out of service by someone else: what it could know of
    /// administrators when it starts or drains a node.
    read_held: BTreeSet<NodeId>,
    /// Nodes an administrator returned to service while the session had
    /// taken them (waiting for them, `wait`): crus draining such a node
    /// again goes on with a node it took within the floor, not a new one.
    returned_while_taken: BTreeSet<NodeId>,
    upgrading: BTreeSet<NodeId>,
    failed_group: BTreeSet<NodeId>,
    /// Boots by key: when started, and each node's fate.
    boots: BTreeMap<String, (Timestamp, BTreeMap<NodeId, BootFate>)>,
    /// Each boot's template, by key.
    boot_templates: BTreeMap<String, String>,
    /// Nodes that came back on the new image.
    upgraded: BTreeSet<NodeId>,
    /// Each node's own scheduling weight, as the site configured it.
    own_weights: BTreeMap<NodeId, u32>,
    /// Each node's scheduling weight now.
    weights: BTreeMap<NodeId, u32>,
    /// Each node's own features, as the site configured them.
    own_features: BTreeMap<NodeId, Vec<String>>,
    /// Each node's features now.
    features: BTreeMap<NodeId, Vec<String>>,
    /// The nodes crus reserved, from when (`reserve_ahead`).
    reserved: BTreeMap<NodeId, Timestamp>,
    /// Whether the site's alert fires (every gate then blocks).
    alert_firing: bool,
    /// Nodes already on the target image when the session starts.
    on_target: BTreeSet<NodeId>,
    /// How many times each hook (by position) ran for each node; for a
    /// post_boot hook, for each of the node's boots (by key), as it runs
    /// after every boot.
    hook_runs: BTreeMap<(u32, NodeId, Option<String>), usize>,
    /// Each node's latest boot, by key.
    last_boot: BTreeMap<NodeId, String>,
}

impl World {
    fn new(nodes: usize, dice: &mut Dice) -> Self {
        let names: Vec<NodeId> = (0..nodes)
            .map(|n| NodeId::from(format!("n{n:02}").as_str()))
            .collect();
        let job_until = names
            .iter()
            .map(|name| (name.clone(), t(i64::try_from(dice.below(7200)).unwrap())))
            .collect();
        let own_weights: BTreeMap<NodeId, u32> = names
            .iter()
            .map(|name| (name.clone(), 1 + u32::try_from(dice.below(100)).unwrap()))
            .collect();
        // Some nodes offer a feature of their own, some carry an older
        // image's tag, some both or none.
        let own_features: BTreeMap<NodeId, Vec<String>> = names
            .iter()
            .map(|name| {
                let mut list = Vec::new();
                if dice.chance(0.5) {
                    list.push("gpu".to_string());
                }
                if dice.chance(0.5) {
                    list.push("img_compute_image_old".to_string());
                }
                if dice.chance(0.3) {
                    list.push("bigmem".to_string());
                }
                (name.clone(), list)
            })
            .collect();
        World {
            weights: own_weights.clone(),
            own_weights,
            features: own_features.clone(),
            own_features,
            reserved: BTreeMap::new(),
            names,
            job_until,
            out_by_crus: BTreeMap::new(),
            ever_drained: BTreeSet::new(),
            by_admin: BTreeMap::new(),
            read_held: BTreeSet::new(),
            returned_while_taken: BTreeSet::new(),
            upgrading: BTreeSet::new(),
            failed_group: BTreeSet::new(),
            boots: BTreeMap::new(),
            boot_templates: BTreeMap::new(),
            upgraded: BTreeSet::new(),
            alert_firing: false,
            on_target: BTreeSet::new(),
            hook_runs: BTreeMap::new(),
            last_boot: BTreeMap::new(),
        }
    }

    /// The scheduler starts new jobs on idle nodes in service; now and then
    /// the workload manager restarts and forgets the weights set at run time.
    /// Features are forgotten only while the session runs: the session
    /// reads them all back once before it ends, and what a restart of the
    /// workload manager does after that is beyond any session.
    fn schedule(&mut self, now: Timestamp, dice: &mut Dice, running: bool) {
        if dice.chance(0.002) {
            self.weights = self.own_weights.clone();
        }
        if running && dice.chance(0.002) {
            self.features = self.own_features.clone();
        }
        if running && dice.chance(0.002) {
            self.reserved.clear();
        }
        if dice.chance(0.05) {
            self.alert_firing = !self.alert_firing;
        }
        for name in &self.names {
            let until = self.job_until.get_mut(name).unwrap();
            if !self.out_by_crus.contains_key(name)
                && !self.by_admin.contains_key(name)
                && *until <= now
                && dice.chance(0.3)
            {
                *until = now + Duration::from_secs(60 + dice.below(3600));
            }
        }
    }

    fn running_job(&self, node: &NodeId, now: Timestamp) -> bool {
        self.job_until[node] > now
    }

    /// An administrator takes a node out of service, drained or down: one
    /// in service, or one crus holds (draining, booting, verifying, being
    /// resumed or failed), whose reason then becomes theirs (Slurm shows
    /// the latest reason set).
    fn admin_takes_out(&mut self, dice: &mut Dice, now: Timestamp) {
        let not_theirs: Vec<NodeId> = self
            .names
            .iter()
            .filter(|name| !self.by_admin.contains_key(*name))
            .cloned()
            .collect();
        if not_theirs.is_empty() {
            return;
        }
        let node = not_theirs[dice.below(not_theirs.len() as u64) as usize].clone();
        let down = dice.chance(0.3);
        let reason = format!("bad DIMM  on {node} [admin]");
        if down {
            // Slurm kills the jobs of a node set down.
            self.job_until.insert(node.clone(), now);
        }
        self.by_admin.insert(node, (down, reason));
    }

    /// An administrator returns one of `returnable` (nodes they hold that
    /// crus is not upgrading, with whether the session has taken it) to
    /// service: Slurm's resume clears the mark.
    fn admin_returns(&mut self, dice: &mut Dice, returnable: &[(NodeId, bool)]) {
        if returnable.is_empty() {
            return;
        }
        let (node, taken) = &returnable[dice.below(returnable.len() as u64) as usize];
        self.by_admin.remove(node);
        if *taken {
            self.returned_while_taken.insert(node.clone());
        }
    }

    /// A boot's view of `node`, if it has one.
    fn boot_state(&self, node: &NodeId, now: Timestamp) -> Option<NodeBootState> {
        let (started, fates) = self
            .boots
            .values()
            .filter(|(_, fates)| fates.contains_key(node))
            .max_by_key(|(started, _)| *started)?;
        let elapsed = now.saturating_since(*started);
        Some(match fates[node] {
            _ if elapsed < Duration::from_secs(300) => NodeBootState::InProgress,
            BootFate::Ok => NodeBootState::Ok,
            BootFate::Fail => NodeBootState::Failed {
                reason: "no image".into(),
            },
            BootFate::Hang => NodeBootState::InProgress,
        })
    }

    fn workload(&self, node: &NodeId, now: Timestamp) -> WorkloadNode {
        let booting = matches!(
            self.boot_state(node, now),
            Some(NodeBootState::InProgress | NodeBootState::Failed { .. })
        );
        if let Some((down, reason)) = self.by_admin.get(node) {
            let state = match (down, self.running_job(node, now)) {
                (true, _) => WorkloadState::Down,
                (false, true) => WorkloadState::Draining,
                (false, false) => WorkloadState::Drained,
            };
            return WorkloadNode {
                node: node.clone(),
                state,
                responding: !booting,
                jobs_end_by: Some(self.job_until[node]),
                reason: Some(reason.clone()),
            };
        }
        let state = match self.out_by_crus.get(node) {
            Some(_) if self.running_job(node, now) => WorkloadState::Draining,
            Some(_) => WorkloadState::Drained,
            None if self.running_job(node, now) => WorkloadState::Allocated,
            None => WorkloadState::Idle,
        };
        WorkloadNode {
            node: node.clone(),
            state,
            responding: !booting,
            jobs_end_by: Some(self.job_until[node]),
            reason: self.out_by_crus.get(node).cloned(),
        }
    }
}

/// The engine driven as the controller drives it, with the world answering.
struct Run {
    scenario: Scenario,
    dice: Dice,
    world: World,
    rollout: Rollout,
    now: Timestamp,
    /// The state last persisted, serialised as the store keeps it.
    persisted: String,
    /// Answers not delivered yet.
    pending: Vec<(ActionId, Result<ActionOutput, ActionError>)>,
    refused: Vec<RefusedMove>,
    commands: Vec<OperatorCommand>,
    /// Gate checks handed out and not yet answered.
    gate_checks: BTreeSet<ActionId>,
    /// Whether the latest gate answer the engine was given was clear
    /// (`None`: none since it started).
    gates_clear: Option<bool>,
    /// Nodes taken so far.
    taken: usize,
}

impl Run {
    fn new(scenario: Scenario) -> Self {
        let mut dice = Dice(scenario.seed);
        let mut world = World::new(scenario.nodes, &mut dice);
        for _ in 0..scenario.nodes {
            if dice.chance(0.15) {
                world.admin_takes_out(&mut dice, t(0));
            }
        }
        if scenario.skip_matching {
            for name in &world.names {
                if dice.chance(0.3) {
                    world.on_target.insert(name.clone());
                }
            }
        }
        let now = t(0);
        let rollout = Rollout::new(
            Uuid::from_u128(7),
            spec(scenario.step),
            scenario.policy.clone(),
            now,
        );
        Run {
            scenario,
            dice,
            world,
            rollout,
            now,
            persisted: String::new(),
            pending: Vec::new(),
            refused: Vec::new(),
            commands: Vec::new(),
            gate_checks: BTreeSet::new(),
            gates_clear: None,
            taken: 0,
        }
    }

    fn refusal(&mut self) -> Option<ActionError> {
        if !self.dice.chance(self.scenario.refusal_rate) {
            return None;
        }
        let kind = match self.dice.below(4) {
            0 => ActionErrorKind::NotFound,
            1 => ActionErrorKind::Invalid,
            2 => ActionErrorKind::Unavailable,
            _ => ActionErrorKind::Other,
        };
        Some(ActionError {
            kind,
            message: "refused by the test".into(),
        })
    }

    /// Persist before act: the action follows from the state last persisted.
    fn check_persisted_before(&self, action: &Action) -> Result<(), String> {
        let stored: RolloutState = serde_json::from_str(&self.persisted).unwrap();
        let phase_of = |id: &NodeId| {
            stored
                .nodes
                .iter()
                .find(|node| &node.id == id)
                .map(|node| node.phase)
        };
        // A node drained ahead (`drain_ahead`) is pending, and stored as
        // drained ahead before it is drained or returned to service.
        let stored_ahead = |id: &NodeId| {
            stored
                .nodes
                .iter()
                .position(|node| &node.id == id)
                .is_some_and(|node| stored.drained_ahead.contains(&node))
        };
        let drain_or_resume = matches!(action, Action::Drain { .. } | Action::Resume { .. });
        let expect = |ids: &[NodeId], allowed: &[NodePhase]| -> Result<(), String> {
            for id in ids {
                let phase = phase_of(id);
                if drain_or_resume && phase == Some(NodePhase::Pending) && stored_ahead(id) {
                    continue;
                }
                if !phase.is_some_and(|phase| allowed.contains(&phase)) {
                    return Err(format!(
                        "{action:?} handed out while node {id} is stored as {phase:?}"
                    ));
                }
            }
            Ok(())
        };
        match action {
            Action::Drain { nodes, .. } => expect(nodes, &[NodePhase::Draining]),
            Action::StartBoot {
                step,
                boot,
                request,
            } => {
                let stored_boot = stored
                    .steps
                    .get(*step as usize)
                    .and_then(|s| s.boots.get(*boot as usize));
                if stored_boot.map(|b| &b.key) != Some(&request.key) {
                    return Err(format!(
                        "boot {} handed out before it was stored",
                        request.key
                    ));
                }
                let stored_template = stored_boot
                    .and_then(|b| b.template.clone())
                    .unwrap_or_else(|| stored.spec.upgrade_template_id.clone());
                if stored_template != request.template {
                    return Err(format!(
                        "boot {} asked with template {}, stored with {stored_template}",
                        request.key, request.template
                    ));
                }
                Ok(())
            }
            Action::Resume { nodes, .. } => {
                expect(nodes, &[NodePhase::Resuming, NodePhase::Releasing])
            }
            Action::MarkFailed { nodes, .. } => {
                let ids: Vec<NodeId> = nodes.iter().map(|(id, _)| id.clone()).collect();
                expect(&ids, &[NodePhase::Failing])
            }
            Action::SetWeights { weights } => {
                for (id, weight) in weights {
                    let own = self.world.own_weights[id];
                    let stored = stored.nodes.iter().find(|node| &node.id == id);
                    if stored.and_then(|node| node.own_weight) != Some(own) {
                        return Err(format!(
                            "weight of node {id} set to {weight} before its own weight {own} was persisted"
                        ));
                    }
                    if *weight != own && *weight != own + WEIGHT_RAISE {
                        return Err(format!("node {id} given weight {weight}, own {own}"));
                    }
                }
                Ok(())
            }
            Action::Reserve { reservations } => {
                if !stored.policy.reserve_ahead {
                    return Err("nodes reserved without reserve_ahead".to_string());
                }
                let state = self.rollout.state();
                for (id, _) in reservations {
                    let phase = state
                        .nodes
                        .iter()
                        .find(|node| &node.id == id)
                        .map(|node| node.phase);
                    if phase != Some(NodePhase::Pending) {
                        return Err(format!("node {id} reserved while {phase:?}"));
                    }
                }
                Ok(())
            }
            Action::SetFeatures { features } => {
                if !stored.policy.image_features {
                    return Err("features set without image_features".to_string());
                }
                for (id, list) in features {
                    let own = &self.world.own_features[id];
                    let stored = stored.nodes.iter().find(|node| &node.id == id);
                    if stored.and_then(|node| node.own_features.as_ref()) != Some(own) {
                        return Err(format!(
                            "features of node {id} set to {list:?} before its own {own:?} were persisted"
                        ));
                    }
                    let tagged = with_image_feature(own, "compute-image");
                    if list == &tagged {
                        let upgraded_record = stored.is_some_and(|node| {
                            node.rollback_reason.is_none()
                                && matches!(node.phase, NodePhase::Resuming | NodePhase::Done)
                        });
                        if !upgraded_record {
                            return Err(format!(
                                "node {id} tagged {list:?} while stored as {:?}",
                                stored.map(|node| (node.phase, node.rollback_reason.clone()))
                            ));
                        }
                        if !self.world.upgraded.contains(id) {
                            return Err(format!(
                                "node {id} tagged {list:?} but never booted with the new image"
                            ));
                        }
                    } else if list != own {
                        return Err(format!("node {id} given features {list:?}, own {own:?}"));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Carries out `action` in the world; returns its answer.
    fn execute(&mut self, action: &Action) -> Result<Result<ActionOutput, ActionError>, String> {
        self.check_persisted_before(action)?;
        let now = self.now;
        // A refused drain may still have been applied (an answer lost on
        // the way back): crus may resume what it asked to drain. Telling
        // those apart from an administrator's drains is issue 21's.
        if let Action::Drain { nodes, .. } = action {
            let by_admin = &self.world.by_admin;
            let drained: Vec<NodeId> = nodes
                .iter()
                .filter(|node| !by_admin.contains_key(*node))
                .cloned()
                .collect();
            self.world.ever_drained.extend(drained);
        }
        if let Some(error) = self.refusal() {
            return Ok(Err(error));
        }
        if let Action::Drain { nodes, .. } | Action::Resume { nodes, .. } = action
            && self.scenario.skip_matching
            && let Some(node) = nodes
                .iter()
                .find(|node| self.world.on_target.contains(*node))
        {
            return Err(format!(
                "{action:?}: node {node} was already on the target image (skip_matching)"
            ));
        }
        let world = &mut self.world;
        let output = match action {
            Action::ReadStartingGroup { .. } => ActionOutput::Members(world.names.clone()),
            Action::RunHook { hook, request, .. } => {
                for node in &request.nodes {
                    let boot = (request.hook.at == crate::rollout::HookPoint::PostBoot)
                        .then(|| world.last_boot.get(node).cloned())
                        .flatten();
                    *world
                        .hook_runs
                        .entry((*hook, node.clone(), boot))
                        .or_default() += 1;
                }
                ActionOutput::HookRan(None)
            }
            Action::ReadCurrentImages { nodes, .. } => ActionOutput::Images(
                nodes
                    .iter()
                    .map(|node| crate::ports::NodeImage {
                        node: node.clone(),
                        image: Some(if world.on_target.contains(node) {
                            "compute-image".to_string()
                        } else {
                            "compute-image-old".to_string()
                        }),
                    })
                    .collect(),
            ),
            Action::PrepareGroups { .. } => {
                let cleared_failed = std::mem::take(&mut world.failed_group);
                let cleared_upgrading = std::mem::take(&mut world.upgrading);
                ActionOutput::GroupsPrepared {
                    cleared_failed: cleared_failed.into_iter().collect(),
                    cleared_upgrading: cleared_upgrading.into_iter().collect(),
                }
            }
            Action::Drain { nodes, reason, .. } => {
                let newly_out = nodes.iter().any(|node| {
                    !world.out_by_crus.contains_key(node)
                        && !world.by_admin.contains_key(node)
                        && !world.returned_while_taken.contains(node)
                });
                for node in nodes {
                    world.returned_while_taken.remove(node);
                }
                for node in nodes {
                    let record = self
                        .rollout
                        .state()
                        .nodes
                        .iter()
                        .find(|record| &record.id == node);
                    if record.is_some_and(|record| record.phase == NodePhase::Skipped) {
                        return Err(format!("skipped node {node} asked to be drained"));
                    }
                    if self.scenario.policy.foreign_out_of_service == ForeignOutOfService::Skip
                        && world.by_admin.contains_key(node)
                        && world.read_held.contains(node)
                    {
                        return Err(format!(
                            "node {node} asked to be drained under foreign_out_of_service: skip, though the session read it held by an administrator ({:?})",
                            world.by_admin[node]
                        ));
                    }
                }
                for node in nodes {
                    world.upgrading.insert(node.clone());
                    // The controller reads the nodes first and never drains
                    // one held with another reason (`not_held_by_others`).
                    if world.by_admin.contains_key(node) {
                        continue;
                    }
                    world.out_by_crus.insert(node.clone(), reason.clone());
                    world.ever_drained.insert(node.clone());
                }
                if let Some(floor) = self.scenario.policy.min_available
                    && newly_out
                {
                    // An administrator's drain the session has not read yet
                    // is not counted: crus cannot know of it.
                    let total = world.names.len();
                    let out = world
                        .names
                        .iter()
                        .filter(|node| {
                            world.out_by_crus.contains_key(*node)
                                || (world.by_admin.contains_key(*node)
                                    && world.read_held.contains(*node))
                        })
                        .count();
                    let keep = floor.allowed(total).min(total);
                    if total - out < keep {
                        return Err(format!(
                            "drained {nodes:?}: {} of {total} in service, below the floor of {keep}",
                            total - out
                        ));
                    }
                }
                ActionOutput::Done
            }
            Action::RequeueJobs { nodes } => {
                for node in nodes {
                    world.job_until.insert(node.clone(), now);
                }
                ActionOutput::Done
            }
            Action::ObserveWorkload { nodes, .. } => {
                ActionOutput::Workload(nodes.iter().map(|node| world.workload(node, now)).collect())
            }
            Action::StartBoot { request, .. } => {
                if !world.boots.contains_key(&request.key) {
                    let forced: BTreeSet<NodeId> = self
                        .rollout
                        .state()
                        .nodes
                        .iter()
                        .filter(|node| node.forced)
                        .map(|node| node.id.clone())
                        .collect();
                    let mut fates = BTreeMap::new();
                    for node in &request.nodes {
                        if world.running_job(node, now) && !forced.contains(node) {
                            return Err(format!("node {node} booted while it runs a job"));
                        }
                        let fate = if self.dice.chance(self.scenario.boot_fail_rate) {
                            BootFate::Fail
                        } else if self.dice.chance(self.scenario.hang_rate) {
                            BootFate::Hang
                        } else {
                            BootFate::Ok
                        };
                        // A forced boot ends the jobs it interrupts.
                        world.job_until.insert(node.clone(), now);
                        world.last_boot.insert(node.clone(), request.key.clone());
                        fates.insert(node.clone(), fate);
                    }
                    world.boots.insert(request.key.clone(), (now, fates));
                    world
                        .boot_templates
                        .insert(request.key.clone(), request.template.clone());
                    if let Some(limit) = self.scenario.policy.max_boots_per_minute {
                        let in_minute: usize = world
                            .boots
                            .values()
                            .filter(|(at, _)| now.saturating_since(*at) < Duration::from_secs(60))
                            .map(|(_, fates)| fates.len())
                            .sum();
                        if in_minute > limit as usize {
                            return Err(format!(
                                "{in_minute} boots within a minute, more than max_boots_per_minute = {limit}"
                            ));
                        }
                    }
                }
                ActionOutput::BootStarted(BootHandle {
                    key: request.key.clone(),
                    id: request.key.clone(),
                })
            }
            Action::ObserveBoot { handle, .. } => {
                let nodes: Vec<NodeId> = world
                    .boots
                    .get(&handle.key)
                    .map(|(_, fates)| fates.keys().cloned().collect())
                    .unwrap_or_default();
                ActionOutput::BootStatus(
                    nodes
                        .iter()
                        .filter_map(|node| {
                            let state = world.boot_state(node, now)?;
                            if state == NodeBootState::Ok {
                                world.upgraded.insert(node.clone());
                            }
                            Some(NodeBootStatus {
                                node: node.clone(),
                                state,
                            })
                        })
                        .collect(),
                )
            }
            Action::Resume { nodes, .. } => {
                // As the controller does: the nodes it leaves alone, as it
                // read them, go back to the engine.
                let mut left_alone = Vec::new();
                for node in nodes {
                    if let Some((_, reason)) = world.by_admin.get(node) {
                        // The engine knew: a bug. Otherwise (taken and
                        // released before any observation) the controller
                        // reads the node first and leaves it (`not_held_by_others`).
                        let known = self
                            .rollout
                            .state()
                            .nodes
                            .iter()
                            .any(|record| &record.id == node && record.foreign.is_some());
                        if known {
                            return Err(format!(
                                "node {node} resumed, but an administrator holds it out of service ({reason:?}) and the session knew"
                            ));
                        }
                        world.upgrading.remove(node);
                        world.read_held.insert(node.clone());
                        left_alone.push(world.workload(node, now));
                        continue;
                    }
                    if !world.ever_drained.contains(node) {
                        return Err(format!(
                            "node {node} resumed, but crus never asked to drain it"
                        ));
                    }
                    world.out_by_crus.remove(node);
                    world.upgrading.remove(node);
                }
                if left_alone.is_empty() {
                    ActionOutput::Done
                } else {
                    ActionOutput::Workload(left_alone)
                }
            }
            Action::Restore {
                nodes,
                only_where_held,
                ..
            } => {
                for (node, state, reason) in nodes {
                    // As the controller does: a node crus never booted that
                    // its owner returned since is left in service.
                    if *only_where_held && !held_by_someone_else(&world.workload(node, now)) {
                        world.upgrading.remove(node);
                        continue;
                    }
                    match world.by_admin.get(node) {
                        Some((down, held))
                            if held == reason && *down == (*state == WorkloadState::Down) => {}
                        Some(held) => {
                            return Err(format!(
                                "node {node} restored as {state:?} {reason:?}, but its administrator set {held:?}"
                            ));
                        }
                        None => {
                            return Err(format!(
                                "node {node} restored as {state:?} {reason:?}, but no administrator holds it"
                            ));
                        }
                    }
                    world.out_by_crus.remove(node);
                    world.upgrading.remove(node);
                }
                ActionOutput::Done
            }
            Action::MarkFailed { nodes, .. } => {
                for (node, reason) in nodes {
                    // As the controller does (`executor.rs`): it reads the
                    // node first; crus's own mark goes over what a reboot
                    // wrote but never over a mark someone placed, and an
                    // owner's reason passed back never over any mark
                    // someone else holds.
                    let report = world.workload(node, now);
                    let kept = if is_crus_reason(reason) {
                        marked_by_someone_else(&report)
                    } else {
                        held_by_someone_else(&report)
                    };
                    if kept {
                        world.upgrading.remove(node);
                        world.failed_group.insert(node.clone());
                        continue;
                    }
                    if let Some(held) = world.by_admin.get(node) {
                        return Err(format!(
                            "node {node} marked failed with {reason:?} over its administrator's mark {held:?}"
                        ));
                    }
                    world.out_by_crus.insert(node.clone(), reason.clone());
                    world.upgrading.remove(node);
                    world.failed_group.insert(node.clone());
                }
                ActionOutput::Done
            }
            Action::PowerRestart { nodes, .. } => {
                // A restart brings a hung node back.
                for (_, fates) in world.boots.values_mut() {
                    for node in nodes {
                        if let Some(fate) = fates.get_mut(node)
                            && *fate == BootFate::Hang
                        {
                            *fate = BootFate::Ok;
                        }
                    }
                }
                ActionOutput::Done
            }
            Action::ClearUpgradingGroup { .. } => {
                world.upgrading.clear();
                ActionOutput::Done
            }
            Action::ReadWeights { nodes } => ActionOutput::Weights(
                nodes
                    .iter()
                    .map(|node| (node.clone(), world.weights[node]))
                    .collect(),
            ),
            Action::SetWeights { weights } => {
                for (node, weight) in weights {
                    world.weights.insert(node.clone(), *weight);
                }
                ActionOutput::Done
            }
            Action::ReadFeatures { nodes } => ActionOutput::Features(
                nodes
                    .iter()
                    .map(|node| (node.clone(), world.features[node].clone()))
                    .collect(),
            ),
            Action::SetFeatures { features } => {
                for (node, list) in features {
                    world.features.insert(node.clone(), list.clone());
                }
                ActionOutput::Done
            }
            Action::Reserve { reservations } => {
                for (node, from) in reservations {
                    world.reserved.insert(node.clone(), *from);
                }
                ActionOutput::Done
            }
            Action::Unreserve { nodes } => {
                for node in nodes {
                    world.reserved.remove(node);
                }
                ActionOutput::Done
            }
            Action::ReadReservations { nodes } => ActionOutput::Reserved(
                nodes
                    .iter()
                    .filter(|node| world.reserved.contains_key(*node))
                    .cloned()
                    .collect(),
            ),
            Action::CheckGates { gates } => {
                let unreachable = self.dice.chance(0.05);
                ActionOutput::Gates(
                    gates
                        .iter()
                        .map(|gate| crate::ports::GateVerdict {
                            gate: gate.describe(),
                            blocking: if world.alert_firing && !unreachable {
                                vec!["NodeDown".into()]
                            } else {
                                vec![]
                            },
                            unreachable: unreachable.then(|| "connection refused".into()),
                        })
                        .collect(),
                )
            }
        };
        Ok(Ok(output))
    }

    /// Persists what changed, then hands out and carries out the actions.
    fn act(&mut self) -> Result<(), String> {
        if self.rollout.take_dirty() {
            self.persisted = serde_json::to_string(self.rollout.state()).unwrap();
        }
        while let Some((id, action)) = self.rollout.poll_action() {
            if matches!(action, Action::CheckGates { .. }) {
                self.gate_checks.insert(id);
            }
            let answer = self.execute(&action)?;
            self.pending.push((id, answer));
        }
        Ok(())
    }

    /// The wake-up read from the timers is the one worked out from the
    /// nodes and boots in flight: every due time that follows from the
    /// state was set where it changed (issue 19).
    fn check_wake_up(&self) -> Result<(), String> {
        let from_timers = self.rollout.poll_timeout();
        let worked_out = super::state_timers::wake_up_worked_out_from_the_state(&self.rollout);
        if from_timers != worked_out {
            return Err(format!(
                "at {}: poll_timeout is {from_timers:?} from the timers, {worked_out:?} from the state",
                self.now
            ));
        }
        Ok(())
    }

    /// The census kept up to date at each change is the one counted afresh
    /// from the state: no index missed a move.
    fn check_census(&self) -> Result<(), String> {
        let rebuilt = super::super::census::Census::of(self.rollout.state());
        match self.rollout.census.differs_from(&rebuilt) {
            Some(difference) => Err(format!("at {}: {difference}", self.now)),
            None => Ok(()),
        }
    }

    fn check_invariants(&mut self) -> Result<(), String> {
        if !self.rollout.refused_session_moves().is_empty() {
            return Err(format!(
                "refused session moves: {:?}",
                self.rollout.refused_session_moves()
            ));
        }
        if !self.rollout.refused_moves().is_empty() || !self.refused.is_empty() {
            self.refused
                .extend(self.rollout.refused_moves().iter().cloned());
            return Err(format!("refused moves: {:?}", self.refused));
        }
        let state = self.rollout.state();
        // Leaving a node alone (someone else holds it, `foreign_out_of_service:
        // skip`) moves it from pending to skipped without taking it.
        let taken = state
            .nodes
            .iter()
            .filter(|node| !matches!(node.phase, NodePhase::Pending | NodePhase::Skipped))
            .count();
        if taken > self.taken && !state.policy.gates.is_empty() {
            if state.gated.is_some() {
                return Err(format!(
                    "{taken} nodes taken while a gate holds the session"
                ));
            }
            if self.gates_clear != Some(true) {
                return Err(format!(
                    "{taken} nodes taken, but the latest gate answer was {:?}",
                    self.gates_clear
                ));
            }
        }
        self.taken = taken;
        let max_draining = state
            .policy
            .max_draining
            .map_or(usize::try_from(self.scenario.step).unwrap(), |count| {
                usize::try_from(count).unwrap()
            });
        if state.drained_ahead.len() > max_draining {
            return Err(format!(
                "{} nodes drained ahead, more than max_draining {max_draining}",
                state.drained_ahead.len()
            ));
        }
        if !state.policy.drain_ahead && !state.drained_ahead.is_empty() {
            return Err("nodes drained ahead without drain_ahead".to_string());
        }
        let out = state.out_of_service();
        let step = usize::try_from(self.scenario.step).unwrap();
        // A revert's batch may be larger than the step.
        let revert_batch = state
            .policy
            .rollback
            .as_ref()
            .filter(|rollback| rollback.revert_upgraded_on_halt)
            .and_then(|rollback| rollback.batch)
            .map_or(0, |batch| usize::try_from(batch).unwrap());
        let step = step.max(revert_batch);
        if out > step {
            return Err(format!(
                "{out} nodes out of service, more than the step of {step}"
            ));
        }
        Ok(())
    }

    fn check_end(&self) -> Result<(), String> {
        let state = self.rollout.state();
        let mut failed = BTreeSet::new();
        for node in &state.nodes {
            self.check_rollback_boots(node)?;
            self.check_hook_runs(node)?;
            match node.phase {
                NodePhase::Done => {
                    if !self.world.upgraded.contains(&node.id) {
                        return Err(format!("node {} done but never booted", node.id));
                    }
                }
                NodePhase::Failed => {
                    failed.insert(node.id.clone());
                }
                NodePhase::Skipped | NodePhase::Reverted => {}
                NodePhase::Pending
                    if self.scenario.skip_matching
                        && self.world.on_target.contains(&node.id)
                        && !state.cancelled =>
                {
                    return Err(format!(
                        "node {} was already on the target image, yet ended {:?}",
                        node.id, node.phase
                    ));
                }
                // A deleted session never took it: it was not touched.
                NodePhase::Pending if state.cancelled => {
                    // With `drain_ahead`, drained ahead and returned to service.
                    let returned =
                        state.policy.drain_ahead && !self.world.out_by_crus.contains_key(&node.id);
                    // Or drained ahead, then drained by an administrator
                    // over crus's drain: theirs, never resumed by crus.
                    let theirs = self.world.by_admin.contains_key(&node.id);
                    if self.world.ever_drained.contains(&node.id) && !returned && !theirs {
                        return Err(format!("node {} drained, yet left pending", node.id));
                    }
                }
                other => return Err(format!("node {} ended {other:?}", node.id)),
            }
        }
        if failed != self.world.failed_group {
            return Err(format!(
                "failed group {:?}, failed nodes {failed:?}",
                self.world.failed_group
            ));
        }
        for node in self.world.out_by_crus.keys() {
            if !failed.contains(node) && !self.world.by_admin.contains_key(node) {
                return Err(format!("node {node} left out of service"));
            }
        }
        if !self.world.upgrading.is_empty() {
            return Err(format!("upgrading group left {:?}", self.world.upgrading));
        }
        if self.world.weights != self.world.own_weights {
            return Err(format!(
                "weights left {:?}, own {:?}",
                self.world.weights, self.world.own_weights
            ));
        }
        if !self.world.reserved.is_empty() {
            return Err(format!("nodes left reserved: {:?}", self.world.reserved));
        }
        self.check_features_at_end()
    }

    /// `image_features`: after any ending every node upgraded by the session
    /// has its own features with the new image's tag in place of any older
    /// one, and every other node exactly its own features.
    fn check_features_at_end(&self) -> Result<(), String> {
        let state = self.rollout.state();
        for node in &state.nodes {
            let own = &self.world.own_features[&node.id];
            let expected = if state.policy.image_features && node.phase == NodePhase::Done {
                with_image_feature(own, &state.spec.upgrade_template_id)
            } else {
                own.clone()
            };
            let now = &self.world.features[&node.id];
            if now != &expected {
                return Err(format!(
                    "node {} ended {:?} with features {now:?}, expected {expected:?} (own {own:?})",
                    node.id, node.phase
                ));
            }
        }
        Ok(())
    }

    /// A node was booted back to the rollback template exactly once when it
    /// is reverted, after all the boots of its upgrade; at most once otherwise,
    /// and never when it was upgraded.
    fn check_rollback_boots(&self, node: &NodeRecord) -> Result<(), String> {
        let boots_of = |rollback: bool| -> Vec<Timestamp> {
            self.world
                .boots
                .iter()
                .filter(|(key, (_, fates))| {
                    fates.contains_key(&node.id)
                        && (self.world.boot_templates[key.as_str()] == ROLLBACK_TEMPLATE)
                            == rollback
                })
                .map(|(_, (at, _))| *at)
                .collect()
        };
        let back = boots_of(true);
        let upgrade = boots_of(false);
        let expected = match node.phase {
            NodePhase::Reverted => 1..=1,
            NodePhase::Done => 0..=0,
            _ => 0..=1,
        };
        if !expected.contains(&back.len()) {
            return Err(format!(
                "node {} ended {:?} booted back {} times (upgrade boots at {upgrade:?})",
                node.id,
                node.phase,
                back.len()
            ));
        }
        if let Some(at) = back.first()
            && upgrade.iter().any(|upgrade_at| upgrade_at > at)
        {
            return Err(format!(
                "node {} booted with the new image at {upgrade:?}, after its boot back at {at}",
                node.id
            ));
        }
        Ok(())
    }

    /// A hook not marked idempotent ran at most once for the node, whatever
    /// the restarts; an upgraded node passed every hook of the policy.
    fn check_hook_runs(&self, node: &NodeRecord) -> Result<(), String> {
        for (position, hook) in self.scenario.policy.hooks.iter().enumerate() {
            let position = u32::try_from(position).unwrap();
            let runs: Vec<(&Option<String>, usize)> = self
                .world
                .hook_runs
                .iter()
                .filter(|((hook, id, _), _)| *hook == position && *id == node.id)
                .map(|((_, _, boot), runs)| (boot, *runs))
                .collect();
            // Never twice for one boot (post_boot) or one node (the others),
            // unless the hook says that is harmless.
            if let Some((boot, times)) = runs.iter().find(|(_, times)| *times > 1)
                && !hook.idempotent
            {
                return Err(format!(
                    "node {}: the {} ran {times} times (boot {boot:?})",
                    node.id,
                    hook.describe()
                ));
            }
            // An upgraded node ran each hook; a post_boot one after the
            // boot that upgraded it, its last.
            let wanted = match hook.at {
                crate::rollout::HookPoint::PostBoot => self.world.last_boot.get(&node.id).cloned(),
                _ => None,
            };
            if node.phase == NodePhase::Done && !runs.iter().any(|(boot, _)| **boot == wanted) {
                return Err(format!(
                    "node {} upgraded without its {} (after boot {wanted:?}; runs {runs:?})",
                    node.id,
                    hook.describe()
                ));
            }
        }
        Ok(())
    }

    /// A new controller takes the session up from the persisted state; the
    /// answers in flight are lost.
    fn restart(&mut self) {
        let state: RolloutState = serde_json::from_str(&self.persisted).unwrap();
        self.refused
            .extend(self.rollout.refused_moves().iter().cloned());
        self.rollout = Rollout::resume(state);
        self.pending.clear();
        self.gate_checks.clear();
        self.gates_clear = None;
        self.rollout.handle_timeout(self.now);
    }

    fn operator(&mut self) {
        let command = if self.dice.chance(0.5) {
            OperatorCommand::Pause
        } else {
            OperatorCommand::Resume {
                max_failures: Some(FailureBudget::Count(u32::MAX)),
            }
        };
        self.commands.push(command);
        let applied = self.rollout.state().commands_applied;
        let pending = self.commands.get(applied..).unwrap_or_default().to_vec();
        self.rollout.apply_commands(self.now, &pending);
    }

    /// The nodes an administrator holds that they may return to service:
    /// ones crus never drained (or has let go of) and is not upgrading:
    /// pending, done, skipped, or waiting for them (`wait`). A node crus
    /// upgrades while it is theirs is put back as they had it, a contract
    /// their returning it in the middle would void.
    fn returnable_by_admins(&self) -> Vec<(NodeId, bool)> {
        let waiting = self.scenario.policy.foreign_out_of_service == ForeignOutOfService::Wait;
        self.rollout
            .state()
            .nodes
            .iter()
            .filter(|record| {
                matches!(
                    record.phase,
                    NodePhase::Pending | NodePhase::Done | NodePhase::Skipped
                ) || (waiting && record.phase == NodePhase::Draining)
            })
            .map(|record| (record.id.clone(), record.phase == NodePhase::Draining))
            .filter(|(node, _)| {
                self.world.by_admin.contains_key(node) && !self.world.out_by_crus.contains_key(node)
            })
            .collect()
    }

    fn run(&mut self) -> Result<(), String> {
        self.rollout.handle_timeout(self.now);
        let mut ending = false;
        for input in 0..20_000 {
            self.act()?;
            self.check_invariants()?;
            self.check_wake_up()?;
            self.check_census()?;
            if self.rollout.is_finished() && !self.rollout.has_work_in_flight() {
                return self.check_end();
            }
            // After a while, an operator resumes whatever waits for one and
            // then deletes the session, so every case ends.
            if input == 5_000 || input == 10_000 {
                ending = true;
                let applied = self.rollout.state().commands_applied;
                self.commands.push(OperatorCommand::Resume {
                    max_failures: Some(FailureBudget::Count(u32::MAX)),
                });
                let pending = self.commands.get(applied..).unwrap_or_default().to_vec();
                self.rollout.apply_commands(self.now, &pending);
                if input == 10_000 {
                    self.rollout.cancel(self.now);
                }
                continue;
            }
            if self.dice.chance(self.scenario.restart_rate) {
                self.restart();
                continue;
            }
            if !ending && self.dice.chance(self.scenario.command_rate) {
                self.operator();
                continue;
            }
            if !ending && self.dice.chance(0.002) {
                self.rollout.cancel(self.now);
                ending = true;
                continue;
            }
            if !ending && self.dice.chance(0.001) {
                self.world.admin_takes_out(&mut self.dice, self.now);
                continue;
            }
            if self.dice.chance(0.001) {
                let returnable = self.returnable_by_admins();
                self.world.admin_returns(&mut self.dice, &returnable);
                continue;
            }
            if !self.pending.is_empty() && self.dice.chance(0.8) {
                // Some answers arrive, in any order.
                let count = 1 + self.dice.below(self.pending.len() as u64) as usize;
                let mut answers = Vec::new();
                for _ in 0..count {
                    let at = self.dice.below(self.pending.len() as u64) as usize;
                    answers.push(self.pending.swap_remove(at));
                }
                for (_, answer) in &answers {
                    if let Ok(ActionOutput::Workload(reports)) = answer {
                        for report in reports {
                            if held_by_someone_else(report) {
                                self.world.read_held.insert(report.node.clone());
                            } else {
                                self.world.read_held.remove(&report.node);
                            }
                        }
                    }
                }
                for (id, answer) in &answers {
                    if self.gate_checks.remove(id) {
                        let blocked = match answer {
                            Ok(ActionOutput::Gates(verdicts)) => {
                                verdicts.iter().any(crate::ports::GateVerdict::blocks)
                            }
                            _ => true,
                        };
                        self.gates_clear = Some(!blocked);
                    }
                }
                self.rollout.handle_outcomes(self.now, answers);
                continue;
            }
            // Time passes: to the rollout's next deadline, or a while.
            let step = Duration::from_secs(1 + self.dice.below(120));
            let next = match self.rollout.poll_timeout() {
                Some(deadline) if deadline > self.now => deadline.min(self.now + step),
                Some(_) => self.now + Duration::from_secs(1),
                None => self.now + step,
            };
            self.now = next;
            let running = self.rollout.state().stage == Stage::Running;
            self.world.schedule(self.now, &mut self.dice, running);
            self.rollout.handle_timeout(self.now);
        }
        Err(format!(
            "no end after 20,000 inputs: {:?}",
            self.rollout.state().messages
        ))
    }
}

fn cases() -> u32 {
    std::env::var("CRUS_ENGINE_PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(1_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn design_invariants_hold_for_the_engine_alone(scenario in scenarios()) {
        let mut run = Run::new(scenario);
        let result = run.run();
        prop_assert!(result.is_ok(), "{}\nmessages: {:#?}", result.unwrap_err(), run.rollout.state().messages);
    }
}

/// Runs `scenario` (a case the property test once found failing) and
/// checks that every invariant holds.
fn holds(scenario: Scenario) {
    let mut run = Run::new(scenario);
    let result = run.run();
    assert!(
        result.is_ok(),
        "{}\nmessages: {:#?}",
        result.unwrap_err(),
        run.rollout.state().messages
    );
}

/// Found by the property test: a boot sent again after a refusal, then a
/// restart that rebuilt the minute's boots from when the boot was first
/// asked for, let a second boot out in the same minute.
#[test]
fn a_boot_sent_again_counts_in_its_minute_after_a_restart() {
    let policy = RolloutPolicy {
        strategy: crate::rollout::Strategy::Continuous,
        order: crate::rollout::Order::DrainCost,
        max_boots_per_minute: Some(1),
        drain_timeout: Some(Duration::from_secs(1800)),
        on_drain_timeout: crate::rollout::OnDrainTimeout::Requeue,
        gates: vec![crate::ports::GateCheck::Alertmanager {
            url: "http://alertmanager:9093".into(),
            filter: vec!["severity=critical".into()],
        }],
        max_hold: Some(Duration::from_secs(7200)),
        steer_jobs: false,
        skip_matching: true,
        drain_ahead: true,
        ..RolloutPolicy::default()
    };
    let scenario = Scenario {
        nodes: 4,
        step: 3,
        policy,
        seed: 10_914_248_518_311_171_522,
        refusal_rate: 0.162_227_296_833_236_22,
        boot_fail_rate: 0.102_218_087_485_527_42,
        hang_rate: 0.0,
        restart_rate: 0.046_221_561_418_900_16,
        command_rate: 0.0,
        skip_matching: true,
    };
    holds(scenario);
}

/// Found by the property test (after 90,124 cases): draining ahead, with a
/// floor, an administrator's mark and refused answers, crus drained one node
/// ahead that left fewer nodes in service than the floor.
#[test]
fn draining_ahead_never_crosses_the_floor() {
    use crate::rollout::{Canary, Hook, HookOnFailure, HookPoint, HookScope};
    let hook = |at: HookPoint, per: HookScope, program: &str, idempotent: bool| Hook {
        at,
        per,
        command: Some(vec![program.to_string()]),
        http: None,
        timeout: Duration::from_secs(300),
        idempotent,
        on_failure: HookOnFailure::FailNode,
    };
    let policy = RolloutPolicy {
        strategy: crate::rollout::Strategy::Continuous,
        order: crate::rollout::Order::DrainCost,
        min_available: Some(FailureBudget::Count(3)),
        canary: Some(Canary {
            size: 1,
            pause_after: true,
        }),
        boot_timeout: Duration::from_secs(600),
        drain_ahead: true,
        hooks: vec![
            hook(HookPoint::PreBoot, HookScope::Step, "/site/pre_boot", true),
            hook(
                HookPoint::PostBoot,
                HookScope::Node,
                "/site/post_boot",
                false,
            ),
        ],
        ..RolloutPolicy::default()
    };
    let scenario = Scenario {
        nodes: 12,
        step: 4,
        policy,
        seed: 4_446_703_537_557_384_564,
        refusal_rate: 0.042_879_712_400_092_12,
        boot_fail_rate: 0.0,
        hang_rate: 0.0,
        restart_rate: 0.009_140_176_668_817_956,
        command_rate: 0.044_763_337_046_561_85,
        skip_matching: false,
    };
    holds(scenario);
}

/// Found by the property test (after 39,459 cases): a refused drain sent
/// again once an administrator had downed another node took crus below the
/// floor; a drain not known to be applied is sent again only within it.
#[test]
fn a_drain_sent_again_after_a_refusal_never_crosses_the_floor() {
    let policy = RolloutPolicy {
        strategy: crate::rollout::Strategy::Continuous,
        order: crate::rollout::Order::DrainCost,
        min_available: Some(FailureBudget::Count(2)),
        drain_ahead: true,
        ..RolloutPolicy::default()
    };
    holds(Scenario {
        nodes: 6,
        step: 2,
        policy,
        seed: 16_112_127_809_412_337_071,
        refusal_rate: 0.109_777_236_583_505_62,
        boot_fail_rate: 0.0,
        hang_rate: 0.0,
        restart_rate: 0.0,
        command_rate: 0.0,
        skip_matching: false,
    });
}

/// Found by the property test (after 7,854 cases): a node drained ahead
/// whose drain was refused, held at the floor, was drained all the same.
#[test]
fn a_drain_ahead_held_at_the_floor_stays_held() {
    use crate::rollout::Canary;
    let policy = RolloutPolicy {
        strategy: crate::rollout::Strategy::Continuous,
        order: crate::rollout::Order::DrainCost,
        min_available: Some(FailureBudget::Count(1)),
        canary: Some(Canary {
            size: 1,
            pause_after: true,
        }),
        steer_jobs: true,
        skip_matching: true,
        drain_ahead: true,
        image_features: true,
        ..RolloutPolicy::default()
    };
    holds(Scenario {
        nodes: 4,
        step: 1,
        policy,
        seed: 16_964_393_766_862_294_145,
        refusal_rate: 0.099_246_583_540_655_91,
        boot_fail_rate: 0.0,
        hang_rate: 0.0,
        restart_rate: 0.049_683_495_849_589_865,
        command_rate: 0.049_456_086_184_541_29,
        skip_matching: true,
    });
}

/// Found by the property test (after 52,113 cases): halted with
/// `revert_upgraded_on_halt` under `foreign_out_of_service: skip`, crus took
/// an upgraded node back for its revert and drained it, though it had read
/// it downed by an administrator.
#[test]
fn a_revert_leaves_an_upgraded_node_someone_else_holds_under_skip() {
    use crate::rollout::{ForeignOutOfService, Rollback, RollbackTrigger};
    let policy = RolloutPolicy {
        strategy: crate::rollout::Strategy::Steps,
        order: crate::rollout::Order::DrainCost,
        min_available: Some(FailureBudget::Count(0)),
        max_failures: Some(FailureBudget::Count(0)),
        foreign_out_of_service: ForeignOutOfService::Skip,
        rollback: Some(Rollback {
            template: "old-image".into(),
            on: vec![RollbackTrigger::NodeFailed],
            revert_upgraded_on_halt: true,
            batch: None,
        }),
        ..RolloutPolicy::default()
    };
    holds(Scenario {
        nodes: 7,
        step: 1,
        policy,
        seed: 3_438_613_402_844_745_395,
        refusal_rate: 0.183_959_788_938_294_65,
        boot_fail_rate: 0.0,
        hang_rate: 0.148_645_999_905_211_6,
        restart_rate: 0.0,
        command_rate: 0.0,
        skip_matching: false,
    });
}
