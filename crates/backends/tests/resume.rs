//! A controller that stops at any point is resumed by a new one on the same
//! store and the same cluster: the session completes and every node is booted
//! exactly once.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use crus_backends::sim::{SimConfig, SyntheticWorkload, Workload};
use crus_core::Result;
use crus_core::controller::Controller;
use crus_core::ports::{BootHandle, BootOrchestrator, BootRequest, NodeBootStatus, Ports};
use crus_core::rollout::{NodePhase, Stage};
use crus_core::store::{Revision, SessionRecord, SessionStore, Versioned};
use tokio::sync::Notify;
use uuid::Uuid;

use common::*;

/// A store whose process "dies" right after its `writes`-th write lands:
/// that write is stored, and the call never returns.
struct DyingStore {
    inner: Arc<dyn SessionStore>,
    writes_left: AtomicU64,
    died: Arc<Notify>,
}

#[async_trait]
impl SessionStore for DyingStore {
    async fn create(&self, record: &SessionRecord) -> Result<Revision> {
        self.inner.create(record).await
    }
    async fn get(&self, upgrade_id: Uuid) -> Result<Option<Versioned<SessionRecord>>> {
        self.inner.get(upgrade_id).await
    }
    async fn list(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        self.inner.list().await
    }
    async fn update(&self, record: &SessionRecord, expected: Revision) -> Result<Revision> {
        let revision = self.inner.update(record, expected).await?;
        if self.writes_left.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.died.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(revision)
    }
    async fn delete(&self, upgrade_id: Uuid, expected: Revision) -> Result<()> {
        self.inner.delete(upgrade_id, expected).await
    }
}

/// A boot orchestrator whose process "dies" right after it started a boot:
/// the boot runs, its answer is lost.
struct LosesBootAnswer {
    inner: Arc<dyn BootOrchestrator>,
    died: Arc<Notify>,
}

#[async_trait]
impl BootOrchestrator for LosesBootAnswer {
    async fn template_exists(&self, template: &str) -> Result<bool> {
        self.inner.template_exists(template).await
    }
    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
        self.inner.start_boot(request).await?;
        self.died.notify_one();
        std::future::pending().await
    }
    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        self.inner.boot_status(handle).await
    }
}

fn busy_cluster(nodes: usize, seed: u64) -> SimConfig {
    SimConfig {
        nodes,
        seed,
        workload: Workload::synthetic(&SyntheticWorkload {
            nodes,
            seed,
            duration: Duration::from_secs(3 * 24 * 3600),
            ..SyntheticWorkload::default()
        }),
        ..SimConfig::default()
    }
}

/// Runs `first` until it dies or the session ends; whether it died first.
/// `first` is gone afterwards, as a dead process is.
async fn drive_until_it_dies(first: Controller, upgrade_id: Uuid, died: &Notify) -> bool {
    tokio::select! {
        result = first.drive(upgrade_id) => { result.expect("drive"); false }
        () = died.notified() => true,
    }
}

/// Runs `first` until it dies, then a fresh controller on `store` to the end.
async fn die_and_resume(
    first: Controller,
    second: Controller,
    upgrade_id: Uuid,
    died: Arc<Notify>,
) -> bool {
    let stopped_early = drive_until_it_dies(first, upgrade_id, &died).await;
    second
        .drive(upgrade_id)
        .await
        .expect("the resumed controller drives the session to its end");
    stopped_early
}

#[tokio::test(start_paused = true)]
async fn stopping_after_any_write_loses_nothing_and_boots_nothing_twice() {
    let step = 4;
    let mut stop_points = 0;
    for writes in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144] {
        let clock = clock();
        let sim = sim(busy_cluster(16, writes), &clock);
        tokio::time::sleep(Duration::from_secs(4 * 3600)).await; // let jobs fill the cluster
        let memory = memory_store();
        let died = Arc::new(Notify::new());
        let dying = Arc::new(DyingStore {
            inner: memory.clone(),
            writes_left: AtomicU64::new(writes),
            died: died.clone(),
        });
        let first = controller(&sim, dying, &clock);
        let session = first.create_session(spec(step), policy()).await.unwrap();
        let second = controller(&sim, memory.clone(), &clock);
        if die_and_resume(first, second, session.upgrade_id, died).await {
            stop_points += 1;
        }
        let state = memory
            .get(session.upgrade_id)
            .await
            .unwrap()
            .unwrap()
            .value
            .rollout;
        check_completed(&state, &sim, step)
            .unwrap_or_else(|broken| panic!("stopped after write {writes}: {broken}"));
        assert_eq!(
            state.count(NodePhase::Done),
            16,
            "stopped after write {writes}"
        );
    }
    assert!(
        stop_points >= 8,
        "most stop points fall inside the session ({stop_points})"
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_while_a_boot_starts_finds_that_boot_again() {
    let step = 4;
    let clock = clock();
    let sim = sim(busy_cluster(12, 3), &clock);
    tokio::time::sleep(Duration::from_secs(4 * 3600)).await;
    let store = memory_store();
    let died = Arc::new(Notify::new());
    let real_ports = sim.ports();
    let ports = Ports {
        boot_orchestrator: Arc::new(LosesBootAnswer {
            inner: real_ports.boot_orchestrator.clone(),
            died: died.clone(),
        }),
        ..real_ports
    };
    let first = Controller::new(ports, store.clone(), clock.clone(), Default::default());
    let session = first.create_session(spec(step), policy()).await.unwrap();
    let second = controller(&sim, store.clone(), &clock);
    assert!(
        die_and_resume(first, second, session.upgrade_id, died).await,
        "the first controller died in a boot"
    );

    let state = store
        .get(session.upgrade_id)
        .await
        .unwrap()
        .unwrap()
        .value
        .rollout;
    assert_eq!(state.stage, Stage::Finished);
    check_completed(&state, &sim, step).unwrap();
    assert!(
        sim.report().boots == 12,
        "each of the 12 nodes booted once, got {}",
        sim.report().boots
    );
}

#[tokio::test(start_paused = true)]
async fn resume_all_picks_up_every_unfinished_session() {
    let clock = clock();
    let sim = sim(
        SimConfig {
            nodes: 8,
            ..SimConfig::default()
        },
        &clock,
    );
    let store = memory_store();
    let first = controller(&sim, store.clone(), &clock);
    let session = first.create_session(spec(2), policy()).await.unwrap();
    first.start(session.upgrade_id);
    tokio::time::sleep(Duration::from_secs(120)).await;
    drop(first); // stops its session task mid-step
    let record = store.get(session.upgrade_id).await.unwrap().unwrap().value;
    assert!(!record.rollout.completed);
    assert!(record.rollout.out_of_service() > 0, "stopped mid-step");

    let second = controller(&sim, store.clone(), &clock);
    assert_eq!(second.resume_all().await.unwrap(), 1);
    while !store
        .get(session.upgrade_id)
        .await
        .unwrap()
        .unwrap()
        .value
        .rollout
        .completed
    {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let state = store
        .get(session.upgrade_id)
        .await
        .unwrap()
        .unwrap()
        .value
        .rollout;
    check_completed(&state, &sim, 2).unwrap();
    assert_eq!(
        second.resume_all().await.unwrap(),
        0,
        "a finished session is not resumed"
    );
}

/// With `rollback`, a node whose upgrade fails is booted back to the old
/// template; a controller that stops after any write, the rollback's
/// included, is resumed by another: the node is booted back exactly once
/// and returned to service as reverted, the others upgraded.
#[tokio::test(start_paused = true)]
async fn stopping_during_a_rollback_boots_the_node_back_exactly_once() {
    use crus_backends::sim::Faults;
    use crus_core::rollout::{Rollback, RollbackTrigger};

    let step = 2;
    let mut stopped_in_rollback = 0;
    for writes in 1..=40 {
        let clock = clock();
        let mut config = busy_cluster(6, writes);
        let bad = config_node(&config, 0);
        config.other_templates = vec!["old-image".into()];
        config.faults = Faults {
            fail_boot_with: [("compute-image".to_string(), [bad.clone()].into())].into(),
            ..Faults::default()
        };
        let sim = sim(config, &clock);
        tokio::time::sleep(Duration::from_secs(4 * 3600)).await;
        let memory = memory_store();
        let died = Arc::new(Notify::new());
        let dying = Arc::new(DyingStore {
            inner: memory.clone(),
            writes_left: AtomicU64::new(writes),
            died: died.clone(),
        });
        let first = controller(&sim, dying, &clock);
        let mut rollback_policy = policy();
        rollback_policy.rollback = Some(Rollback {
            template: "old-image".into(),
            on: vec![RollbackTrigger::NodeFailed],
            revert_upgraded_on_halt: false,
            batch: None,
        });
        let session = first
            .create_session(spec(step), rollback_policy)
            .await
            .unwrap();
        let second = controller(&sim, memory.clone(), &clock);
        let upgrade_id = session.upgrade_id;
        let stopped = drive_until_it_dies(first, upgrade_id, &died).await;
        // Whether it stopped with the rollback decided but not over.
        let at_stop = memory.get(upgrade_id).await.unwrap().unwrap().value.rollout;
        let stopped_at_rollback = stopped
            && at_stop
                .nodes
                .iter()
                .any(|node| node.rollback_reason.is_some() && node.phase != NodePhase::Reverted);
        second
            .drive(upgrade_id)
            .await
            .expect("the resumed controller drives the session to its end");
        let state = memory.get(upgrade_id).await.unwrap().unwrap().value.rollout;
        check_completed_allowing(&state, &sim, step, 2)
            .unwrap_or_else(|broken| panic!("stopped after write {writes}: {broken}"));
        let node = state.nodes.iter().find(|node| node.id == bad).unwrap();
        assert_eq!(
            node.phase,
            NodePhase::Reverted,
            "stopped after write {writes}"
        );
        assert_eq!(sim.boots_with(&bad, "compute-image"), 1, "write {writes}");
        assert_eq!(sim.boots_with(&bad, "old-image"), 1, "write {writes}");
        assert_eq!(state.count(NodePhase::Done), 5, "write {writes}");
        // Back in service: neither drained nor marked failed.
        assert!(!sim.drained_nodes().contains(&bad), "write {writes}");
        assert!(sim.failed_marked_nodes().is_empty(), "write {writes}");
        stopped_in_rollback += usize::from(stopped_at_rollback);
    }
    assert!(
        stopped_in_rollback >= 3,
        "stop points fall during the rollback ({stopped_in_rollback})"
    );
}

/// The name of the `index`-th node of a simulated cluster.
fn config_node(config: &SimConfig, index: usize) -> crus_core::NodeId {
    let clock = clock();
    sim(config.clone(), &clock).node_ids()[index].clone()
}

/// Runs site hooks in 30 s of simulated time each, and writes down each run.
#[derive(Default)]
struct RecordingHooks {
    runs: std::sync::Mutex<Vec<crus_core::ports::HookRequest>>,
}

#[async_trait]
impl crus_core::ports::HookRunner for RecordingHooks {
    async fn run(&self, request: &crus_core::ports::HookRequest) -> Result<Option<String>> {
        self.runs.lock().unwrap().push(request.clone());
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(None)
    }
}

/// With site hooks at every point, a controller that stops after any write
/// is resumed by another: no hook that finished runs again, a run that was
/// in flight runs again only when it is idempotent (otherwise its node
/// fails, saying the outcome is unknown), and every upgraded node ran each
/// of its hooks once.
#[tokio::test(start_paused = true)]
async fn stopping_after_any_write_never_runs_a_finished_hook_again() {
    use crus_core::rollout::{DEFAULT_HOOK_TIMEOUT, Hook, HookOnFailure, HookPoint, HookScope};

    let hook = |at: HookPoint, per: HookScope, idempotent: bool| Hook {
        at,
        per,
        command: Some(vec![format!("/site/{}", at.as_str())]),
        http: None,
        timeout: DEFAULT_HOOK_TIMEOUT,
        idempotent,
        on_failure: HookOnFailure::FailNode,
    };
    let step = 2;
    let mut stopped_during_a_run = 0;
    for writes in 1..=30 {
        let clock = clock();
        let sim = sim(busy_cluster(6, writes), &clock);
        tokio::time::sleep(Duration::from_secs(4 * 3600)).await;
        let hooks = Arc::new(RecordingHooks::default());
        let ports = Ports {
            hook_runner: Some(hooks.clone() as Arc<dyn crus_core::ports::HookRunner>),
            ..sim.ports()
        };
        let memory = memory_store();
        let died = Arc::new(Notify::new());
        let dying = Arc::new(DyingStore {
            inner: memory.clone(),
            writes_left: AtomicU64::new(writes),
            died: died.clone(),
        });
        let config = crus_core::controller::ControllerConfig::default();
        let first = Controller::new(ports.clone(), dying, clock.clone(), config.clone());
        let second = Controller::new(ports, memory.clone(), clock.clone(), config);
        let mut with_hooks = policy();
        with_hooks.hooks = vec![
            hook(HookPoint::PreDrain, HookScope::Node, false),
            hook(HookPoint::PreBoot, HookScope::Step, true),
            hook(HookPoint::PostBoot, HookScope::Node, false),
        ];
        let session = first.create_session(spec(step), with_hooks).await.unwrap();
        let upgrade_id = session.upgrade_id;
        let stopped = drive_until_it_dies(first, upgrade_id, &died).await;
        let at_stop = memory.get(upgrade_id).await.unwrap().unwrap().value.rollout;
        let running_at_stop = at_stop
            .nodes
            .iter()
            .flat_map(|node| &node.hooks)
            .chain(at_stop.steps.iter().flat_map(|step| &step.hooks))
            .any(|run| run.state == crus_core::rollout::HookRunState::Running);
        stopped_during_a_run += usize::from(stopped && running_at_stop);
        second
            .drive(upgrade_id)
            .await
            .expect("the resumed controller drives the session to its end");
        let state = memory.get(upgrade_id).await.unwrap().unwrap().value.rollout;
        let runs = hooks.runs.lock().unwrap().clone();
        for node in &state.nodes {
            let count = |at: HookPoint| {
                runs.iter()
                    .filter(|run| run.hook.at == at && run.nodes.contains(&node.id))
                    .count()
            };
            let (pre_drain, pre_boot, post_boot) = (
                count(HookPoint::PreDrain),
                count(HookPoint::PreBoot),
                count(HookPoint::PostBoot),
            );
            assert!(
                pre_drain <= 1 && post_boot <= 1,
                "write {writes}: {} ran pre_drain {pre_drain} and post_boot {post_boot} times",
                node.id
            );
            match node.phase {
                NodePhase::Done => assert!(
                    pre_drain == 1 && pre_boot >= 1 && post_boot == 1,
                    "write {writes}: {} upgraded with hooks {pre_drain}/{pre_boot}/{post_boot}",
                    node.id
                ),
                NodePhase::Failed => {
                    let reason = node.reason.as_deref().unwrap_or_default();
                    assert!(
                        reason.contains("outcome is unknown"),
                        "write {writes}: {} failed: {reason}",
                        node.id
                    );
                }
                phase => panic!("write {writes}: {} ended {phase:?}", node.id),
            }
        }
        assert_eq!(state.stage, Stage::Finished, "write {writes}");
    }
    assert!(
        stopped_during_a_run >= 3,
        "stop points fall while a hook runs ({stopped_during_a_run})"
    );
}
