//! The rollout controls beyond CRUS, each shown to have its effect on the
//! simulated cluster, in virtual time: strategy, order, failure-domain rules,
//! failure budget, canary, pause and resume, drain timeout, boot retries,
//! maintenance windows and alert gates.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crus_backends::sim::{Faults, SimCluster, SimConfig, Workload};
use crus_core::controller::Controller;
use crus_core::rollout::{FailureBudget, NodePhase, RolloutState};
use crus_core::session::{PolicyRequest, SessionPhase};
use crus_core::store::{MemoryStore, SessionStore};
use crus_core::{NodeId, SessionSpec, Timestamp};
use serde_json::json;
use uuid::Uuid;

use common::*;

/// A spec for the sim's `compute` group with `policy` (JSON, as a client sends it).
fn spec_with(step: u32, policy: serde_json::Value) -> SessionSpec {
    SessionSpec {
        policy: Some(PolicyRequest::from_json(&policy).expect("a valid policy")),
        ..spec(step)
    }
}

struct Run {
    sim: SimCluster,
    store: Arc<MemoryStore>,
    controller: Controller,
}

impl Run {
    fn new(config: SimConfig) -> Run {
        let clock = clock();
        let sim = sim(config, &clock);
        let store = memory_store();
        let controller = controller(&sim, store.clone(), &clock);
        Run {
            sim,
            store,
            controller,
        }
    }

    async fn create(&self, spec: SessionSpec) -> Uuid {
        self.controller
            .create_session(spec, policy())
            .await
            .unwrap()
            .upgrade_id
    }

    async fn state(&self, id: Uuid) -> RolloutState {
        self.store.get(id).await.unwrap().unwrap().value.rollout
    }

    /// Drives the session to its end, calling `watch` on its stored state
    /// every 10 s of virtual time meanwhile.
    async fn drive_watching(&self, id: Uuid, mut watch: impl FnMut(&RolloutState, Timestamp)) {
        self.controller.start(id);
        for _ in 0..(30 * 24 * 360) {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let state = self.state(id).await;
            watch(&state, self.sim.now());
            if state.completed {
                return;
            }
        }
        panic!("session did not end within 30 simulated days");
    }

    /// Lets the session run for `duration` of virtual time.
    async fn run_for(&self, id: Uuid, duration: Duration) {
        self.controller.start(id);
        tokio::time::sleep(duration).await;
    }
}

fn idle_cluster(nodes: usize) -> SimConfig {
    SimConfig {
        nodes,
        seed: 7,
        workload: Workload::None,
        ..SimConfig::default()
    }
}

fn idle_with(nodes: usize, faults: Faults) -> SimConfig {
    SimConfig {
        faults,
        ..idle_cluster(nodes)
    }
}

/// A never-ending job on node `index`, so it never drains by itself.
fn stuck_on(index: usize) -> Faults {
    Faults {
        stuck_jobs: [node(index)].into(),
        ..Faults::default()
    }
}

/// Every boot of these nodes fails.
fn failing_boots(indexes: &[usize]) -> Faults {
    Faults {
        fail_boot: indexes.iter().map(|&index| node(index)).collect(),
        ..Faults::default()
    }
}

fn busy_cluster(nodes: usize, seed: u64) -> SimConfig {
    SimConfig {
        nodes,
        seed,
        workload: Workload::synthetic(&crus_backends::sim::SyntheticWorkload {
            nodes,
            seed,
            duration: Duration::from_secs(3 * 24 * 3600),
            ..Default::default()
        }),
        ..SimConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn the_failure_budget_halts_exactly_when_exceeded_and_resume_raises_it() {
    let run = Run::new(idle_with(8, failing_boots(&[0, 2])));
    let id = run.create(spec_with(2, json!({"max_failures": 1}))).await;
    run.run_for(id, Duration::from_secs(4 * 3600)).await;

    let state = run.state(id).await;
    // Step 0 lost node 0 (within budget), step 1 lost node 2 (over it): halted
    // after step 1, with nothing taken since.
    assert_eq!(
        state.halted.as_deref(),
        Some("2 nodes failed, more than the failure budget of 1")
    );
    assert_eq!(state.steps.len(), 2, "{:?}", state.messages);
    assert_eq!(state.count(NodePhase::Pending), 4);
    assert_eq!(crus_core::rollout::phase_of(&state), SessionPhase::Halted);
    assert!(!state.completed);
    let failed: Vec<NodeId> = run.sim.drained_nodes();
    assert_eq!(failed, [node(0), node(2)], "only the failed nodes stay out");

    // Resuming without room in the budget is refused, with the reason.
    let refused = run
        .controller
        .request_resume(id, None)
        .await
        .unwrap()
        .unwrap();
    assert!(refused.unwrap_err().contains("raise max_failures"));
    run.controller
        .request_resume(id, Some(FailureBudget::Count(3)))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    run.drive_watching(id, |_, _| {}).await;
    let state = run.state(id).await;
    assert_eq!(state.count(NodePhase::Done), 6);
    assert_eq!(state.count(NodePhase::Failed), 2);
    assert_eq!(crus_core::rollout::phase_of(&state), SessionPhase::Failed);
    check_completed(&state, &run.sim, 2).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_canary_pauses_the_session_until_resumed() {
    let run = Run::new(idle_cluster(12));
    let id = run
        .create(spec_with(4, json!({"canary": {"size": 2}})))
        .await;
    run.run_for(id, Duration::from_secs(3 * 3600)).await;
    let state = run.state(id).await;
    assert!(state.paused, "{:?}", state.messages);
    assert_eq!(state.steps.len(), 1);
    assert_eq!(state.steps[0].nodes.len(), 2);
    assert_eq!(state.count(NodePhase::Done), 2);
    assert_eq!(state.count(NodePhase::Pending), 10);
    assert!(run.sim.drained_nodes().is_empty());

    run.controller
        .request_resume(id, None)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    run.drive_watching(id, |_, _| {}).await;
    let state = run.state(id).await;
    check_completed(&state, &run.sim, 4).unwrap();
    // After the canary, full steps: 2 + 4 + 4 + 2.
    let sizes: Vec<usize> = state.steps.iter().map(|step| step.nodes.len()).collect();
    assert_eq!(sizes, [2, 4, 4, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_canary_that_fails_halts_when_it_would_not_pause() {
    let run = Run::new(idle_with(8, failing_boots(&[1])));
    let id = run
        .create(spec_with(
            4,
            json!({"canary": {"size": 2, "pause_after": false}}),
        ))
        .await;
    run.run_for(id, Duration::from_secs(3 * 3600)).await;
    let state = run.state(id).await;
    assert!(state.halted.is_some(), "{:?}", state.messages);
    assert_eq!(state.steps.len(), 1);
    assert_eq!(state.count(NodePhase::Pending), 6);
}

#[tokio::test(start_paused = true)]
async fn a_paused_session_starts_nothing_new_and_resumes() {
    let run = Run::new(busy_cluster(16, 3));
    let id = run.create(spec(4)).await;
    run.run_for(id, Duration::from_secs(60)).await;
    let status = run
        .controller
        .request_pause(id)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status.phase, Some(SessionPhase::Paused));
    run.run_for(id, Duration::from_secs(24 * 3600)).await;
    let state = run.state(id).await;
    assert!(state.paused);
    assert_eq!(state.steps.len(), 1, "{:?}", state.messages);
    assert!(state.steps[0].finished, "the step in flight finishes");
    assert!(run.sim.drained_nodes().is_empty());

    run.controller
        .request_resume(id, None)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    run.drive_watching(id, |_, _| {}).await;
    check_completed(&run.state(id).await, &run.sim, 4).unwrap();
}

/// Makespan of a session on a busy cluster, checking the step bound as it runs.
async fn makespan(config: SimConfig, spec: SessionSpec) -> (Duration, f64) {
    let run = Run::new(config);
    // Let the workload fill the machine first.
    tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
    let step = spec.upgrade_step_size as usize;
    let id = run.create(spec).await;
    let started = run.sim.now();
    run.drive_watching(id, |state, _| {
        assert!(
            state.out_of_service() <= step,
            "{} out of service",
            state.out_of_service()
        );
    })
    .await;
    let state = run.state(id).await;
    check_completed(&state, &run.sim, step as u32).unwrap();
    let finished = state.finished_at.unwrap();
    (
        finished.saturating_since(started),
        run.sim.report().drained_idle_node_s,
    )
}

#[tokio::test(start_paused = true)]
async fn continuous_and_drain_cost_finish_sooner_than_crus_steps() {
    let crus = makespan(busy_cluster(64, 11), spec(8)).await;
    let drain_cost = makespan(
        busy_cluster(64, 11),
        spec_with(8, json!({"order": "drain_cost"})),
    )
    .await;
    let continuous = makespan(
        busy_cluster(64, 11),
        spec_with(8, json!({"strategy": "continuous", "order": "drain_cost"})),
    )
    .await;
    assert!(
        drain_cost.0 < crus.0,
        "drain_cost {drain_cost:?} vs steps {crus:?}"
    );
    assert!(
        continuous.0 < drain_cost.0,
        "continuous {continuous:?} vs drain_cost {drain_cost:?}"
    );
    assert!(
        continuous.1 < crus.1,
        "idle drained capacity {continuous:?} vs {crus:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn spread_never_has_two_nodes_of_a_chassis_out_at_once() {
    // 128 nodes: four chassis of 32.
    let run = Run::new(busy_cluster(128, 5));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let id = run
        .create(spec_with(
            8,
            json!({"strategy": "continuous", "order": "topology", "spread": "chassis"}),
        ))
        .await;
    let mut most = 0;
    run.drive_watching(id, |state, _| {
        let mut out: BTreeMap<String, usize> = BTreeMap::new();
        for node in state
            .nodes
            .iter()
            .filter(|node| node.phase.is_out_of_service())
        {
            *out.entry(node.id.xname().unwrap().chassis_id())
                .or_default() += 1;
        }
        assert!(out.values().all(|&count| count <= 1), "{out:?}");
        most = most.max(out.len());
    })
    .await;
    assert_eq!(most, 4, "every chassis had a node out at some point");
    check_completed(&run.state(id).await, &run.sim, 8).unwrap();
}

#[tokio::test(start_paused = true)]
async fn align_takes_whole_domains_together() {
    // 16 nodes: one chassis, larger than the step, so it is taken 6, 6, 4.
    let run = Run::new(idle_cluster(16));
    let id = run
        .create(spec_with(
            6,
            json!({"order": "topology", "align": "chassis"}),
        ))
        .await;
    run.drive_watching(id, |_, _| {}).await;
    let state = run.state(id).await;
    let sizes: Vec<usize> = state.steps.iter().map(|step| step.nodes.len()).collect();
    assert_eq!(sizes, [6, 6, 4]);
    check_completed(&state, &run.sim, 6).unwrap();

    // 64 nodes in two chassis of 32, step 40: one whole chassis at a time.
    let run = Run::new(idle_cluster(64));
    let id = run
        .create(spec_with(
            40,
            json!({"order": "topology", "align": "chassis"}),
        ))
        .await;
    run.drive_watching(id, |_, _| {}).await;
    let state = run.state(id).await;
    for step in &state.steps {
        assert_eq!(step.nodes.len(), 32);
        let chassis: std::collections::BTreeSet<String> = step
            .nodes
            .iter()
            .map(|&node| state.nodes[node].id.xname().unwrap().chassis_id())
            .collect();
        assert_eq!(chassis.len(), 1, "{chassis:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_that_will_not_drain_is_skipped_after_the_drain_timeout() {
    let run = Run::new(idle_with(4, stuck_on(1)));
    let id = run
        .create(spec_with(
            2,
            json!({"drain_timeout": "1h", "on_drain_timeout": "skip"}),
        ))
        .await;
    run.drive_watching(id, |_, _| {}).await;
    let state = run.state(id).await;
    assert_eq!(state.nodes[1].phase, NodePhase::Skipped);
    assert!(
        state.nodes[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("did not drain within 1h")
    );
    assert_eq!(run.sim.boot_count(&node(1)), 0);
    assert!(
        run.sim.drained_nodes().is_empty(),
        "the skipped node is back in service"
    );
    assert_eq!(state.count(NodePhase::Done), 3);
    let skipped_at = state.nodes[1].finished_at.unwrap();
    let taken_at = state.nodes[1].taken_at.unwrap();
    let waited = skipped_at.saturating_since(taken_at);
    assert!(
        waited >= Duration::from_secs(3600) && waited < Duration::from_secs(3600 + 60),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn force_reboots_a_node_that_will_not_drain_and_says_so() {
    let run = Run::new(idle_with(2, stuck_on(0)));
    let id = run
        .create(spec_with(
            2,
            json!({"drain_timeout": "30m", "on_drain_timeout": "force"}),
        ))
        .await;
    run.drive_watching(id, |_, _| {}).await;
    let state = run.state(id).await;
    assert_eq!(state.count(NodePhase::Done), 2);
    assert!(state.nodes[0].forced);
    assert_eq!(run.sim.report().reboots_with_running_jobs, 1);
    assert!(
        state
            .messages
            .iter()
            .any(|message| message.starts_with("WARNING: node"))
    );
}

#[tokio::test(start_paused = true)]
async fn failed_boots_are_retried_before_the_node_fails() {
    let run = Run::new(idle_with(2, failing_boots(&[0])));
    let id = run.create(spec_with(2, json!({"retries": 2}))).await;
    run.drive_watching(id, |_, _| {}).await;
    let state = run.state(id).await;
    assert_eq!(state.nodes[0].phase, NodePhase::Failed);
    assert_eq!(state.nodes[0].attempts, 3);
    assert_eq!(run.sim.boot_count(&node(0)), 3);
    assert_eq!(state.nodes[1].attempts, 1);
    assert_eq!(state.nodes[1].phase, NodePhase::Done);
}

#[tokio::test(start_paused = true)]
async fn a_maintenance_window_delays_new_steps_and_in_flight_nodes_finish() {
    // The clock starts Friday 2027-01-15 08:00 UTC; the window is 22:00–22:05
    // each day, shorter than the three steps take.
    let run = Run::new(idle_cluster(12));
    let id = run
        .create(spec_with(
            4,
            json!({"windows": [{"start": "22:00", "end": "22:05"}]}),
        ))
        .await;
    let starts = Arc::new(Mutex::new(Vec::new()));
    let seen = starts.clone();
    run.drive_watching(id, move |state, _| {
        let mut seen = seen.lock().unwrap();
        seen.clear();
        seen.extend(state.steps.iter().map(|step| step.started_at));
    })
    .await;
    let opens = Timestamp::from_secs(1_800_000_000 + 14 * 3600);
    for started in starts.lock().unwrap().iter() {
        let into_day = (started.as_secs() - opens.as_secs()).rem_euclid(24 * 3600);
        assert!(
            into_day < 300,
            "step started {started}, outside 22:00–22:05"
        );
    }
    let state = run.state(id).await;
    assert!(state.steps[0].started_at >= opens);
    let last = state.steps.last().unwrap().started_at;
    assert!(
        last.saturating_since(opens) >= Duration::from_secs(24 * 3600),
        "the last step waited for the next day's window"
    );
    check_completed(&state, &run.sim, 4).unwrap();
}

#[tokio::test(start_paused = true)]
async fn requeue_puts_the_jobs_of_a_node_that_will_not_drain_back_in_the_queue() {
    let run = Run::new(idle_with(3, stuck_on(0)));
    let id = run
        .create(spec_with(
            1,
            json!({"drain_timeout": "20m", "on_drain_timeout": "requeue"}),
        ))
        .await;
    run.drive_watching(id, |_, _| {}).await;
    let state = run.state(id).await;
    let report = run.sim.report();
    assert_eq!(state.count(NodePhase::Done), 3, "{:?}", state.messages);
    // The never-ending job restarts on another node, which is requeued in
    // its turn: once per node that held it when taken.
    assert!(report.jobs_requeued >= 1, "{report:?}");
    assert_eq!(
        report.reboots_with_running_jobs, 0,
        "requeued, not killed by a reboot"
    );
    assert!(
        state
            .messages
            .iter()
            .any(|m| m.contains("requeueing its jobs"))
    );
    let drained_for = state.nodes[0]
        .since
        .saturating_since(state.nodes[0].taken_at.unwrap());
    assert!(
        drained_for >= Duration::from_secs(20 * 60),
        "{drained_for:?}"
    );
    check_completed(&state, &run.sim, 1).unwrap();
}

/// These nodes' boots through the boot orchestrator hang until they are
/// power-restarted.
fn hanging_boots(indexes: &[usize]) -> Faults {
    Faults {
        never_return: indexes.iter().map(|&index| node(index)).collect(),
        ..Faults::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_node_is_power_restarted_and_recovers() {
    let run = Run::new(idle_with(4, hanging_boots(&[1])));
    let id = run
        .create(spec_with(2, json!({"escalate_power_cycle": true})))
        .await;
    run.drive_watching(id, |_, _| {}).await;
    let state = run.state(id).await;
    assert!(state.nodes.iter().all(|node| node.phase == NodePhase::Done));
    let hung = state
        .nodes
        .iter()
        .find(|record| record.id == node(1))
        .unwrap();
    assert_eq!(
        hung.power_restarts, 1,
        "a graceful restart cleared the hang"
    );
    assert_eq!(hung.attempts, 1, "no second boot through the orchestrator");
    assert_eq!(run.sim.boot_count(&node(1)), 1);
    assert_eq!(run.sim.report().power_operations, 1);
    assert!(
        state.messages.iter().any(|message| message
            .starts_with(&format!("Node {} did not come back", node(1)))
            && message.contains("restarting it gracefully")),
        "{:?}",
        state.messages
    );
}

#[tokio::test(start_paused = true)]
async fn without_escalation_a_hung_node_fails_and_is_never_power_restarted() {
    let run = Run::new(idle_with(4, hanging_boots(&[1])));
    let id = run.create(spec(2)).await;
    run.drive_watching(id, |_, _| {}).await;
    let state = run.state(id).await;
    let hung = state
        .nodes
        .iter()
        .find(|record| record.id == node(1))
        .unwrap();
    assert_eq!(hung.phase, NodePhase::Failed);
    assert_eq!(run.sim.report().power_operations, 0);
}

#[tokio::test(start_paused = true)]
async fn escalation_is_refused_at_creation_without_power_control() {
    let clock = clock();
    let sim = sim(idle_cluster(4), &clock);
    let ports = crus_core::ports::Ports {
        power_control: None,
        ..sim.ports()
    };
    let controller = Controller::new(
        ports,
        memory_store(),
        clock.clone(),
        crus_core::controller::ControllerConfig::default(),
    );
    let refused = controller
        .admit(crus_core::controller::AdmissionRequest::new(spec_with(
            2,
            json!({"escalate_power_cycle": true}),
        )))
        .await
        .unwrap_err();
    let text = format!("{refused:?}");
    assert!(text.contains("policy.escalate_power_cycle"), "{text}");
    assert!(text.contains("no power control backend"), "{text}");
}

/// A site's health check that fails one node every time and passes the rest.
struct FailsOne(NodeId);

#[async_trait::async_trait]
impl crus_core::ports::HealthProbe for FailsOne {
    async fn probe(
        &self,
        node: &NodeId,
        _check: &crus_core::ports::HealthCheck,
    ) -> crus_core::Result<Option<String>> {
        Ok((node == &self.0).then(|| "GPU 3 missing".to_string()))
    }
}

/// A controller on a fresh store with `ports` (the sim's, some replaced).
fn controller_with(
    ports: crus_core::ports::Ports,
    clock: &Arc<crus_core::clock::TokioClock>,
) -> (Controller, Arc<MemoryStore>) {
    let store = memory_store();
    let controller = Controller::new(
        ports,
        store.clone(),
        clock.clone(),
        crus_core::controller::ControllerConfig::default(),
    );
    (controller, store)
}

#[tokio::test(start_paused = true)]
async fn a_node_that_fails_its_health_check_fails_with_the_check_s_answer() {
    let clock = clock();
    let sim = sim(idle_cluster(4), &clock);
    let (controller, store) = controller_with(
        crus_core::ports::Ports {
            health_probe: Some(Arc::new(FailsOne(node(2)))),
            ..sim.ports()
        },
        &clock,
    );
    let id = controller
        .create_session(
            spec_with(
                2,
                json!({"health": {"http": "http://{node}:9100/healthy", "soak": "1m"}}),
            ),
            policy(),
        )
        .await
        .unwrap()
        .upgrade_id;
    controller.drive(id).await.unwrap();
    let state = store.get(id).await.unwrap().unwrap().value.rollout;
    for record in &state.nodes {
        if record.id == node(2) {
            assert_eq!(record.phase, NodePhase::Failed);
            let reason = record.reason.as_deref().unwrap_or_default();
            assert!(
                reason.starts_with("did not come back within 15m")
                    && reason.ends_with("(health check failed: GPU 3 missing)"),
                "{reason}"
            );
        } else {
            assert_eq!(record.phase, NodePhase::Done, "{record:?}");
        }
    }
    assert_eq!(sim.boot_count(&node(2)), 1);
}

#[tokio::test(start_paused = true)]
async fn nodes_failed_by_one_session_are_upgraded_by_the_next() {
    // As `crus serve --sim --sim-fail-rate 0.3`: boots fail at random.
    let faults = Faults {
        boot_fail_rate: 0.3,
        ..Faults::default()
    };
    let run = Run::new(idle_with(40, faults));
    let first = run.create(spec(8)).await;
    run.drive_watching(first, |_, _| {}).await;
    let failed_first: Vec<NodeId> = run
        .state(first)
        .await
        .nodes
        .iter()
        .filter(|node| node.phase == NodePhase::Failed)
        .map(|node| node.id.clone())
        .collect();
    assert!(failed_first.len() >= 4, "{failed_first:?}");

    let second = run.create(spec(8)).await;
    run.drive_watching(second, |_, _| {}).await;
    let state = run.state(second).await;
    assert!(state.completed);
    for node in &state.nodes {
        let reason = node.reason.as_deref().unwrap_or_default();
        assert!(
            !reason.contains("did not come back"),
            "node {} failed although it booted: {reason}",
            node.id
        );
        if node.phase == NodePhase::Failed {
            assert!(reason.starts_with("boot failed"), "{}: {reason}", node.id);
        }
    }
    let upgraded_again: Vec<&NodeId> = failed_first
        .iter()
        .filter(|id| {
            state
                .nodes
                .iter()
                .any(|node| node.id == **id && node.phase == NodePhase::Done)
        })
        .collect();
    assert!(
        upgraded_again.len() * 2 >= failed_first.len(),
        "only {upgraded_again:?} of {failed_first:?} upgraded by the second session"
    );
    // Upgraded nodes are back in service: neither drained nor marked failed.
    let drained = run.sim.drained_nodes();
    let marked = run.sim.failed_marked_nodes();
    for id in upgraded_again {
        assert!(
            !drained.contains(id) && !marked.contains(id),
            "{id} left out of service"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn drain_ahead_never_exceeds_its_bounds() {
    let run = Run::new(busy_cluster(64, 11));
    tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
    let id = run
        .create(spec_with(
            8,
            json!({"strategy": "continuous", "order": "drain_cost", "drain_ahead": true, "max_draining": 4}),
        ))
        .await;
    let mut most_ahead = 0;
    run.drive_watching(id, |state, _| {
        // The step bounds the nodes the session holds in its phases; nodes
        // drained ahead are pending, bounded by max_draining.
        assert!(
            state.out_of_service() <= 8,
            "{} out of service",
            state.out_of_service()
        );
        assert!(
            state.drained_ahead.len() <= 4,
            "{} drained ahead",
            state.drained_ahead.len()
        );
        for &node in &state.drained_ahead {
            assert_eq!(state.nodes[node].phase, NodePhase::Pending);
        }
        most_ahead = most_ahead.max(state.drained_ahead.len());
    })
    .await;
    let state = run.state(id).await;
    assert!(most_ahead > 0, "nodes were drained ahead");
    assert!(state.drained_ahead.is_empty(), "none left drained ahead");
    // The simulator counts every drained node out of service, those draining
    // ahead too: at most the step plus max_draining at once.
    check_completed(&state, &run.sim, 8 + 4).unwrap();
    // Out of service and running no job (drained and idle, or booting): the
    // session's own phases never hold more than the step (checked above, at
    // every poll), but a node drained ahead whose jobs end is idle too until
    // the next poll sees it and its resume is answered (the design point of
    // `rollout/drain_ahead.rs`), so the simulator, which counts between
    // polls, can see the step plus those. Here it does: measured 12.
    let report = run.sim.report();
    assert!(
        report.max_idle_out_of_service <= 8 + 4,
        "{} out of service and idle at once",
        report.max_idle_out_of_service
    );
    assert_eq!(report.reboots_with_running_jobs, 0);
}

/// Issue 23: a session halted by its failure budget, with
/// `revert_upgraded_on_halt`, boots the nodes it upgraded back to the
/// rollback template one batch at a time, on a busy cluster: each is drained
/// again (no reboot under a job), booted back exactly once, and returned to
/// service as reverted; the nodes never taken are left alone.
#[tokio::test(start_paused = true)]
async fn a_halted_session_reverts_its_upgraded_nodes_on_a_busy_cluster() {
    let mut config = busy_cluster(8, 5);
    config.other_templates = vec!["old-image".into()];
    config.faults = Faults {
        fail_boot_with: [("compute-image".to_string(), [node(4)].into())].into(),
        ..Faults::default()
    };
    let run = Run::new(config);
    // Let the workload fill the cluster first.
    tokio::time::sleep(Duration::from_secs(4 * 3600)).await;
    let id = run
        .create(spec_with(
            2,
            json!({
                "max_failures": 0,
                "rollback": {
                    "template": "old-image",
                    "on": ["node_failed"],
                    "revert_upgraded_on_halt": true,
                    "batch": 1
                }
            }),
        ))
        .await;
    let mut most_out = 0;
    run.controller.start(id);
    let mut state = run.state(id).await;
    for _ in 0..(7 * 24 * 360) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        state = run.state(id).await;
        let out = state
            .nodes
            .iter()
            .filter(|node| {
                !matches!(
                    node.phase,
                    NodePhase::Pending | NodePhase::Done | NodePhase::Reverted | NodePhase::Failed
                )
            })
            .count();
        most_out = most_out.max(out);
        let settled = state
            .nodes
            .iter()
            .all(|node| matches!(node.phase, NodePhase::Pending | NodePhase::Reverted));
        if state.halted.is_some() && settled {
            break;
        }
    }
    assert_eq!(
        state.halted.as_deref(),
        Some("1 nodes failed, more than the failure budget of 0"),
        "{:?}",
        state.messages
    );
    // Every node the session booted was booted back exactly once and
    // returned to service as reverted: those it upgraded by the revert, the
    // one that failed (node 4) by `on: node_failed`. The others were never
    // taken.
    let mut reverted = 0;
    for (index, record) in state.nodes.iter().enumerate() {
        let upgrades = run.sim.boots_with(&record.id, "compute-image");
        if upgrades == 0 {
            assert_eq!(record.phase, NodePhase::Pending, "node {index}");
            assert_eq!(
                run.sim.boots_with(&record.id, "old-image"),
                0,
                "node {index}"
            );
            continue;
        }
        assert_eq!(record.phase, NodePhase::Reverted, "node {index}");
        assert_eq!(
            run.sim.boots_with(&record.id, "old-image"),
            1,
            "node {index}"
        );
        if index != 4 {
            assert_eq!(upgrades, 1, "node {index}");
        }
        reverted += 1;
    }
    assert!(reverted >= 5, "nodes 0 to 4 at least: {reverted}");
    assert_eq!(state.nodes[4].phase, NodePhase::Reverted);
    let report = run.sim.report();
    assert_eq!(report.reboots_with_running_jobs, 0, "no reboot under a job");
    assert!(most_out <= 2, "at most the step out of service: {most_out}");
    assert!(
        run.sim.drained_nodes().is_empty(),
        "every node back in service"
    );
    assert!(run.sim.failed_marked_nodes().is_empty());
}

/// An alert that fires from `from` until `until` on the cluster's clock.
struct AlertDuring {
    clock: Arc<dyn crus_core::clock::Clock>,
    from: Timestamp,
    until: Timestamp,
}

#[async_trait::async_trait]
impl crus_core::ports::AlertGate for AlertDuring {
    async fn blocking(
        &self,
        _gate: &crus_core::ports::GateCheck,
    ) -> crus_core::Result<Vec<String>> {
        let now = self.clock.now();
        Ok(if self.from <= now && now < self.until {
            vec!["PfsDegraded{severity=\"critical\"} firing".to_string()]
        } else {
            Vec::new()
        })
    }
}

#[tokio::test(start_paused = true)]
async fn nothing_new_is_taken_while_a_gate_blocks() {
    let clock = clock();
    let sim = sim(busy_cluster(32, 5), &clock);
    tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
    let started = sim.now();
    let (from, until) = (
        started + Duration::from_secs(1800),
        started + Duration::from_secs(3 * 3600),
    );
    let gate = Arc::new(AlertDuring {
        clock: clock.clone(),
        from,
        until,
    });
    let (controller, store) = controller_with(
        crus_core::ports::Ports {
            alert_gate: Some(gate as Arc<dyn crus_core::ports::AlertGate>),
            ..sim.ports()
        },
        &clock,
    );
    let spec = spec_with(
        4,
        json!({
            "strategy": "continuous",
            "order": "drain_cost",
            "gates": [{"alertmanager": "http://am.example:9093", "filter": ["severity=critical"]}]
        }),
    );
    let id = controller
        .create_session(spec, policy())
        .await
        .unwrap()
        .upgrade_id;
    controller.drive(id).await.unwrap();
    let state = store.get(id).await.unwrap().unwrap().value.rollout;
    check_completed(&state, &sim, 4).unwrap();
    // Taken only within a poll interval of a clear answer: none from one
    // interval into the alert until it stops.
    let poll = state.policy.poll_interval;
    let held: Vec<Timestamp> = state
        .steps
        .iter()
        .map(|step| step.started_at)
        .filter(|&at| from + poll <= at && at < until)
        .collect();
    assert!(
        held.is_empty(),
        "steps started while the gate blocked: {held:?}"
    );
    assert!(
        state.steps.iter().any(|step| step.started_at < from),
        "nodes were taken before the alert"
    );
    assert!(
        state.steps.iter().any(|step| step.started_at >= until),
        "the session went on once the alert stopped"
    );
    assert!(
        state.messages.iter().any(|m| m.contains("PfsDegraded")),
        "{:?}",
        state.messages
    );
}
