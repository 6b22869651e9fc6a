//! Controller error paths against mocked ports: retryable errors are retried
//! with backoff and told once; refused actions are reported; every transition
//! is persisted before it is acted on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mockall::mock;

use super::*;
use crate::clock::TokioClock;
use crate::error::Error;
use crate::node::{NodeFacts, NodeId};
use crate::ports::{
    BootHandle, BootOrchestrator, BootRequest, Inventory, NodeBootState, NodeBootStatus,
    WorkloadManager, WorkloadNode, WorkloadState,
};
use crate::rollout::NodePhase;
use crate::session::SessionState;
use crate::store::MemoryStore;
use crate::store::Revision;

mod admission;

mock! {
    Inv {}
    #[async_trait]
    impl Inventory for Inv {
        async fn group_members(&self, label: &str) -> Result<Vec<NodeId>>;
        async fn create_group(&self, label: &str) -> Result<()>;
        async fn add_members(&self, label: &str, nodes: &[NodeId]) -> Result<()>;
        async fn remove_members(&self, label: &str, nodes: &[NodeId]) -> Result<()>;
        async fn node_facts(&self, nodes: &[NodeId]) -> Result<Vec<NodeFacts>>;
    }
}

mock! {
    Wlm {}
    #[async_trait]
    impl WorkloadManager for Wlm {
        async fn drain(&self, nodes: &[NodeId], reason: &str) -> Result<()>;
        async fn resume(&self, nodes: &[NodeId]) -> Result<()>;
        async fn fail(&self, nodes: &[NodeId], reason: &str) -> Result<()>;
        async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>>;
    }
}

mock! {
    Boot {}
    #[async_trait]
    impl BootOrchestrator for Boot {
        async fn template_exists(&self, template: &str) -> Result<bool>;
        async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle>;
        async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>>;
    }
}

fn spec() -> SessionSpec {
    SessionSpec {
        failed_label: "failed".into(),
        starting_label: "compute".into(),
        upgrade_step_size: 2,
        upgrade_template_id: "compute-image".into(),
        upgrading_label: "upgrading".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    }
}

/// An inventory where every group exists and `compute` holds `a` and `b`.
fn friendly_inventory() -> MockInv {
    let mut inventory = MockInv::new();
    inventory.expect_group_members().returning(|label| {
        Ok(if label == "compute" {
            vec![NodeId::from("a"), NodeId::from("b")]
        } else {
            vec![]
        })
    });
    inventory
        .expect_create_group()
        .returning(|label| Err(Error::conflict(format!("group {label}"))));
    inventory.expect_add_members().returning(|_, _| Ok(()));
    inventory.expect_remove_members().returning(|_, _| Ok(()));
    inventory
}

fn drained(nodes: &[NodeId]) -> Vec<WorkloadNode> {
    nodes
        .iter()
        .map(|node| WorkloadNode {
            node: node.clone(),
            state: WorkloadState::Drained,
            responding: true,
            jobs_end_by: None,
            reason: None,
        })
        .collect()
}

fn booted_boot() -> MockBoot {
    boot_ending(NodeBootState::Ok)
}

/// A boot orchestrator whose boots of nodes `a` and `b` stand at `state`.
fn boot_ending(state: NodeBootState) -> MockBoot {
    let mut boot = MockBoot::new();
    boot.expect_start_boot().returning(|request| {
        Ok(BootHandle {
            key: request.key.clone(),
            id: "bos-1".into(),
        })
    });
    boot.expect_boot_status().returning(move |_| {
        Ok(["a", "b"]
            .iter()
            .map(|node| NodeBootStatus {
                node: NodeId::from(*node),
                state: state.clone(),
            })
            .collect())
    });
    boot
}

fn controller(inventory: MockInv, wlm: MockWlm, boot: MockBoot) -> (Controller, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let ports = Ports {
        inventory: Arc::new(inventory),
        workload_manager: Arc::new(wlm),
        boot_orchestrator: Arc::new(boot),
        power_control: None,
        health_probe: None,
        alert_gate: None,
        hook_runner: None,
    };
    let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)));
    (
        Controller::new(ports, store.clone(), clock, ControllerConfig::default()),
        store,
    )
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_are_retried_with_backoff_and_told_once() {
    let drain_calls = Arc::new(AtomicU32::new(0));
    let mut wlm = MockWlm::new();
    let calls = drain_calls.clone();
    let started = tokio::time::Instant::now();
    let call_times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let times = call_times.clone();
    wlm.expect_drain().returning(move |_, _| {
        times.lock().unwrap().push(started.elapsed());
        if calls.fetch_add(1, Ordering::SeqCst) < 3 {
            Err(Error::unavailable("slurm", "slurmctld timed out"))
        } else {
            Ok(())
        }
    });
    wlm.expect_node_states()
        .returning(|nodes| Ok(drained(nodes)));
    wlm.expect_resume().returning(|_| Ok(()));
    let (controller, store) = controller(friendly_inventory(), wlm, booted_boot());
    let status = controller
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap();
    controller.drive(status.upgrade_id).await.unwrap();

    let record = store.get(status.upgrade_id).await.unwrap().unwrap().value;
    assert_eq!(record.rollout.state, SessionState::Ready);
    assert_eq!(
        drain_calls.load(Ordering::SeqCst),
        4,
        "three failures, then success"
    );
    let gaps: Vec<u64> = call_times
        .lock()
        .unwrap()
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).as_secs())
        .collect();
    assert_eq!(gaps, [1, 2, 4], "exponential backoff");
    let told: Vec<&String> = record
        .rollout
        .messages
        .iter()
        .filter(|m| m.contains("slurmctld timed out"))
        .collect();
    assert_eq!(
        told,
        ["Draining 2 nodes failed, retrying: slurm is unavailable: slurmctld timed out"]
    );
    assert_eq!(record.rollout.count(NodePhase::Done), 2);
}

#[tokio::test(start_paused = true)]
async fn a_refused_boot_fails_the_step_nodes_and_says_why() {
    let mut wlm = MockWlm::new();
    wlm.expect_drain().returning(|_, _| Ok(()));
    wlm.expect_node_states()
        .returning(|nodes| Ok(drained(nodes)));
    wlm.expect_fail().times(1).returning(|nodes, reason| {
        assert_eq!(nodes.len(), 2);
        assert!(
            reason.contains("template 'compute-image' not found"),
            "{reason}"
        );
        Ok(())
    });
    let mut boot = MockBoot::new();
    boot.expect_start_boot()
        .times(1)
        .returning(|_| Err(Error::not_found("template 'compute-image'")));
    let mut inventory = friendly_inventory();
    inventory.checkpoint();
    let mut inventory = MockInv::new();
    inventory.expect_group_members().returning(|label| {
        Ok(if label == "compute" {
            vec![NodeId::from("a"), NodeId::from("b")]
        } else {
            vec![]
        })
    });
    inventory.expect_create_group().returning(|_| Ok(()));
    inventory.expect_remove_members().returning(|_, _| Ok(()));
    inventory
        .expect_add_members()
        .withf(|label, _| label == "upgrading")
        .returning(|_, _| Ok(()));
    inventory
        .expect_add_members()
        .withf(|label, nodes| label == "failed" && nodes.len() == 2)
        .times(1)
        .returning(|_, _| Ok(()));
    let (controller, store) = controller(inventory, wlm, boot);
    let status = controller
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap();
    controller.drive(status.upgrade_id).await.unwrap();

    let record = store.get(status.upgrade_id).await.unwrap().unwrap().value;
    assert!(record.rollout.completed);
    assert_eq!(record.rollout.count(NodePhase::Failed), 2);
    let messages = record.rollout.messages.join("\n");
    assert!(
        messages.contains(
            "Node a failed: boot could not be started: template 'compute-image' not found"
        ),
        "{messages}"
    );
    assert!(
        messages.contains("0 of 2 nodes upgraded, 2 failed (in group 'failed')"),
        "{messages}"
    );
}

/// Issue 21, found by an audit: an administrator drains a node while crus
/// boots it, and the boot fails. crus's failure mark must not overwrite
/// the administrator's reason (the executor let any crus reason through).
#[tokio::test(start_paused = true)]
async fn a_failed_boot_keeps_the_mark_an_administrator_placed_during_it() {
    const DIMM: &str = "bad DIMM  slot 3 [ticket 42]";
    let boot_started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut wlm = MockWlm::new();
    wlm.expect_drain().returning(|_, _| Ok(()));
    let started = boot_started.clone();
    wlm.expect_node_states().returning(move |nodes| {
        let mut states = drained(nodes);
        for report in &mut states {
            if started.load(Ordering::SeqCst) && report.node.as_str() == "a" {
                report.reason = Some(DIMM.to_string());
            } else if started.load(Ordering::SeqCst) {
                // What a reboot gone wrong leaves: crus's mark goes over it.
                report.state = WorkloadState::Down;
                report.reason = Some("Not responding".to_string());
            }
        }
        Ok(states)
    });
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let marks = failed.clone();
    wlm.expect_fail().returning(move |nodes, reason| {
        marks
            .lock()
            .unwrap()
            .extend(nodes.iter().map(|node| (node.clone(), reason.to_string())));
        Ok(())
    });
    let mut boot = MockBoot::new();
    boot.expect_boot_status().returning(|_| {
        Ok(["a", "b"]
            .iter()
            .map(|node| NodeBootStatus {
                node: NodeId::from(*node),
                state: NodeBootState::Failed {
                    reason: "no image".into(),
                },
            })
            .collect())
    });
    let started = boot_started.clone();
    boot.expect_start_boot().returning(move |request| {
        started.store(true, Ordering::SeqCst);
        Ok(BootHandle {
            key: request.key.clone(),
            id: "bos-1".into(),
        })
    });
    let (controller, store) = controller(friendly_inventory(), wlm, boot);
    let status = controller
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap();
    controller.drive(status.upgrade_id).await.unwrap();

    let record = store.get(status.upgrade_id).await.unwrap().unwrap().value;
    assert_eq!(record.rollout.count(NodePhase::Failed), 2);
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.iter().all(|(node, _)| node.as_str() == "b"),
        "the administrator's reason on a was overwritten: {failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|(node, reason)| node.as_str() == "b" && reason.starts_with("crus:")),
        "b, left down by its reboot, gets crus's mark: {failed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_starting_group_is_reported_and_retried_until_it_appears() {
    let reads = Arc::new(AtomicU32::new(0));
    let counter = reads.clone();
    let mut inventory = MockInv::new();
    inventory.expect_group_members().returning(move |label| {
        if label == "compute" && counter.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(Error::not_found("group 'compute'"))
        } else if label == "compute" {
            Ok(vec![NodeId::from("a"), NodeId::from("b")])
        } else {
            Ok(vec![])
        }
    });
    inventory.expect_create_group().returning(|_| Ok(()));
    inventory.expect_add_members().returning(|_, _| Ok(()));
    inventory.expect_remove_members().returning(|_, _| Ok(()));
    let mut wlm = MockWlm::new();
    wlm.expect_drain().returning(|_, _| Ok(()));
    wlm.expect_node_states()
        .returning(|nodes| Ok(drained(nodes)));
    wlm.expect_resume().returning(|_| Ok(()));
    let (controller, store) = controller(inventory, wlm, booted_boot());
    let started = tokio::time::Instant::now();
    let status = controller
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap();
    controller.drive(status.upgrade_id).await.unwrap();

    assert!(
        started.elapsed() >= Duration::from_secs(60),
        "two refusals, 30 s apart"
    );
    let record = store.get(status.upgrade_id).await.unwrap().unwrap().value;
    assert_eq!(record.rollout.state, SessionState::Ready);
    let refusals = record
        .rollout
        .messages
        .iter()
        .filter(|m| m.contains("group 'compute' not found"))
        .count();
    assert_eq!(refusals, 1, "told once: {:#?}", record.rollout.messages);
}

/// A store that counts writes and checks each persisted state against what the
/// ports are asked to do: a drain must never reach the workload manager before
/// a state with that node draining was stored.
#[tokio::test(start_paused = true)]
async fn every_transition_is_persisted_before_it_is_acted_on() {
    let store = Arc::new(MemoryStore::new());
    let probe = store.clone();
    let mut wlm = MockWlm::new();
    let seen_before_drain = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = seen_before_drain.clone();
    wlm.expect_drain().returning(move |nodes, _| {
        // The call runs inside the controller's task; peek at the store synchronously.
        let records = futures::executor::block_on(probe.list()).unwrap();
        let phases: Vec<NodePhase> = records[0]
            .value
            .rollout
            .nodes
            .iter()
            .filter(|node| nodes.contains(&node.id))
            .map(|node| node.phase)
            .collect();
        seen.lock().unwrap().push(phases);
        Ok(())
    });
    wlm.expect_node_states()
        .returning(|nodes| Ok(drained(nodes)));
    wlm.expect_resume().returning(|_| Ok(()));
    let ports = Ports {
        inventory: Arc::new(friendly_inventory()),
        workload_manager: Arc::new(wlm),
        boot_orchestrator: Arc::new(booted_boot()),
        power_control: None,
        health_probe: None,
        alert_gate: None,
        hook_runner: None,
    };
    let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)));
    let controller = Controller::new(ports, store.clone(), clock, ControllerConfig::default());
    let status = controller
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap();
    controller.drive(status.upgrade_id).await.unwrap();
    assert_eq!(
        *seen_before_drain.lock().unwrap(),
        vec![vec![NodePhase::Draining, NodePhase::Draining]]
    );
}

#[tokio::test(start_paused = true)]
async fn deleting_a_finished_session_removes_it_at_once() {
    let mut wlm = MockWlm::new();
    wlm.expect_drain().returning(|_, _| Ok(()));
    wlm.expect_node_states()
        .returning(|nodes| Ok(drained(nodes)));
    wlm.expect_resume().returning(|_| Ok(()));
    let (controller, store) = controller(friendly_inventory(), wlm, booted_boot());
    let status = controller
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap();
    controller.drive(status.upgrade_id).await.unwrap();
    let answer = controller
        .request_delete(status.upgrade_id)
        .await
        .unwrap()
        .unwrap();
    // As CRUS answered every DELETE: DELETING, then the session is gone.
    assert_eq!(answer.state, SessionState::Deleting);
    assert!(answer.completed);
    assert!(store.get(status.upgrade_id).await.unwrap().is_none());
    assert!(
        controller
            .request_delete(status.upgrade_id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn new_sessions_are_checked_against_the_site() {
    let mut inventory = MockInv::new();
    inventory
        .expect_group_members()
        .returning(|label| match label {
            "compute" => Ok(vec![NodeId::from("a"), NodeId::from("b")]),
            "empty" => Ok(vec![]),
            "half" => Ok(vec![NodeId::from("b"), NodeId::from("c")]),
            other => Err(Error::not_found(format!("group '{other}'"))),
        });
    let mut boot = MockBoot::new();
    boot.expect_template_exists()
        .returning(|template| Ok(template == "compute-image"));
    let (controller, store) = controller(inventory, MockWlm::new(), boot);

    let invalid = |result: std::result::Result<Admitted, AdmissionRefusal>| match result {
        Err(AdmissionRefusal::Invalid(errors)) => errors,
        other => panic!("expected invalid, got {other:?}"),
    };
    let admit = |spec: SessionSpec| controller.admit(AdmissionRequest::new(spec));
    let mut missing = spec();
    missing.starting_label = "nope".into();
    missing.upgrade_template_id = "old-image".into();
    let errors = invalid(admit(missing).await);
    assert_eq!(
        errors["starting_label"],
        ["Group 'nope' does not exist in the inventory."]
    );
    assert_eq!(
        errors["upgrade_template_id"],
        ["The boot orchestrator has no template 'old-image'."]
    );

    let mut empty = spec();
    empty.starting_label = "empty".into();
    let errors = invalid(admit(empty).await);
    assert!(errors["starting_label"][0].contains("no members"));

    // The rollback template is checked as the upgrade's is.
    let mut unknown_rollback = spec();
    unknown_rollback.policy = Some(
        crate::session::PolicyRequest::from_json(
            &serde_json::json!({"rollback": {"template": "gone-image"}}),
        )
        .unwrap(),
    );
    let errors = invalid(admit(unknown_rollback).await);
    assert_eq!(
        errors["policy.rollback"],
        ["The boot orchestrator has no template 'gone-image' to roll back to."]
    );

    let mut same_labels = spec();
    same_labels.failed_label = "upgrading".into();
    let errors = invalid(admit(same_labels).await);
    assert!(errors["failed_label"][0].contains("upgrading_label"));
    assert!(store.list().await.unwrap().is_empty());

    let first = admit(spec()).await.unwrap();
    assert!(first.created);
    let mut overlapping = spec();
    overlapping.starting_label = "half".into();
    match admit(overlapping).await {
        Err(AdmissionRefusal::Overlap { other, nodes }) => {
            assert_eq!(other, first.status.upgrade_id);
            assert_eq!(nodes, 1);
        }
        other => panic!("expected an overlap, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_only_controller_stores_and_the_driving_one_takes_up_and_stops() {
    let mut wlm = MockWlm::new();
    wlm.expect_drain().returning(|_, _| Ok(()));
    // Never drained: the session stays in flight until it is stopped.
    wlm.expect_node_states().returning(|nodes| {
        Ok(nodes
            .iter()
            .map(|node| WorkloadNode {
                node: node.clone(),
                state: WorkloadState::Draining,
                responding: true,
                jobs_end_by: None,
                reason: None,
            })
            .collect())
    });
    let (driver, store) = controller(friendly_inventory(), wlm, booted_boot());
    let follower = Controller::new(
        driver.ports().clone(),
        store.clone(),
        Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000))),
        ControllerConfig {
            drive_sessions: false,
            ..ControllerConfig::default()
        },
    );
    let status = follower
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap();
    follower.start(status.upgrade_id);
    assert_eq!(
        follower.running(),
        0,
        "a store-only controller drives nothing"
    );

    let record = store.get(status.upgrade_id).await.unwrap().unwrap().value;
    driver.take_up(&record);
    driver.take_up(&record);
    assert_eq!(driver.running(), 1, "taken up once");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let stored = store.get(status.upgrade_id).await.unwrap().unwrap();
    assert_eq!(stored.value.rollout.count(NodePhase::Draining), 2);

    // A pause stored by the follower reaches the running task through take_up.
    follower
        .request_pause(status.upgrade_id)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    driver.take_up(&store.get(status.upgrade_id).await.unwrap().unwrap().value);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let paused = store.get(status.upgrade_id).await.unwrap().unwrap();
    assert!(paused.value.rollout.paused);
    assert_eq!(paused.value.rollout.commands_applied, 1);

    driver.stop_all();
    assert_eq!(driver.running(), 0);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after_stop = store.get(status.upgrade_id).await.unwrap().unwrap();
    assert_eq!(
        after_stop.revision, paused.revision,
        "a stopped task writes nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_refusing_writes_halts_the_session_which_carries_on_once_it_takes_them() {
    let memory: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let faulty = Arc::new(crate::testkit::FaultyStore::new(memory.clone()));
    // The store starts refusing writes as the nodes are drained: the step's
    // boot is what must wait until the store took the drained state.
    let mut wlm = MockWlm::new();
    let switch = faulty.clone();
    wlm.expect_drain().returning(move |_, _| {
        switch.fail_writes();
        Ok(())
    });
    wlm.expect_node_states()
        .returning(|nodes| Ok(drained(nodes)));
    wlm.expect_resume().returning(|_| Ok(()));
    let boots = Arc::new(AtomicU32::new(0));
    let counted = boots.clone();
    let mut boot = MockBoot::new();
    boot.expect_start_boot().returning(move |request| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(BootHandle {
            key: request.key.clone(),
            id: "bos-1".into(),
        })
    });
    boot.expect_boot_status().returning(|_| {
        Ok(["a", "b"]
            .iter()
            .map(|node| NodeBootStatus {
                node: NodeId::from(*node),
                state: NodeBootState::Ok,
            })
            .collect())
    });
    let ports = Ports {
        inventory: Arc::new(friendly_inventory()),
        workload_manager: Arc::new(wlm),
        boot_orchestrator: Arc::new(boot),
        power_control: None,
        health_probe: None,
        alert_gate: None,
        hook_runner: None,
    };
    let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)));
    let controller = Controller::new(ports, faulty.clone(), clock, ControllerConfig::default());
    // A boot's timeout counts from when it was asked for, outage included:
    // long enough here that the outage does not fail the nodes.
    let policy = RolloutPolicy {
        boot_timeout: Duration::from_secs(2 * 3600),
        ..RolloutPolicy::default()
    };
    let status = controller.create_session(spec(), policy).await.unwrap();
    let upgrade_id = status.upgrade_id;
    let driving = controller.clone();
    let task = tokio::spawn(async move { driving.drive(upgrade_id).await });

    // Ten minutes of refused writes: the session waits, halted, saying why,
    // and the store's health says it refuses writes.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(!task.is_finished(), "the session must not stop for good");
    assert_eq!(
        boots.load(Ordering::SeqCst),
        0,
        "nothing unsaved is acted on"
    );
    let shown = controller
        .unsaved_status(upgrade_id)
        .expect("the session's status is served from memory");
    assert_eq!(shown.phase, Some(crate::session::SessionPhase::Halted));
    assert!(
        shown
            .messages
            .iter()
            .any(|message| message.contains("The session store refused to save this session")),
        "{:?}",
        shown.messages
    );
    let failure = controller.store_health().failure().expect("a failure");
    assert!(failure.contains("injected write failure"), "{failure}");
    assert!(faulty.refused_writes() > 3, "retried with backoff");
    assert!(faulty.refused_writes() < 30, "with backoff, not in a loop");
    // An operator's resume cannot be stored either, and says so.
    assert!(controller.request_resume(upgrade_id, None).await.is_err());

    // The store heals: the session carries on by itself, boots once, ends.
    faulty.heal();
    tokio::time::timeout(Duration::from_secs(3600), task)
        .await
        .expect("the session ends once the store takes writes")
        .unwrap()
        .unwrap();
    assert_eq!(boots.load(Ordering::SeqCst), 1, "the step booted once");
    assert!(controller.unsaved_status(upgrade_id).is_none());
    assert_eq!(controller.store_health().failure(), None);
    let record = memory.get(upgrade_id).await.unwrap().unwrap().value;
    assert_eq!(record.rollout.state, SessionState::Ready);
    assert_eq!(record.rollout.count(NodePhase::Done), 2);
    assert!(
        record
            .rollout
            .messages
            .iter()
            .any(|message| message.contains("The session store refused to save this session")),
        "the refusal is told in the stored messages once the store writes again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_held_session_tries_again_as_soon_as_the_store_takes_another_write() {
    let memory: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let faulty = Arc::new(crate::testkit::FaultyStore::new(memory.clone()));
    let (with_ports, _) = controller(friendly_inventory(), never_drained(), booted_boot());
    let controller = Controller::new(
        with_ports.ports().clone(),
        faulty.clone(),
        Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000))),
        ControllerConfig::default(),
    );
    let status = controller
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap();
    let upgrade_id = status.upgrade_id;
    faulty.fail_writes();
    controller.start(upgrade_id);
    // Long enough for the backoff to reach its cap: the next try is half a
    // minute away (tries at 1, 3, 7, 15, 31, 63, 123, ... 543, 603 s).
    tokio::time::sleep(Duration::from_secs(570)).await;
    assert!(controller.unsaved_status(upgrade_id).is_some(), "held");

    // The store heals, and a readiness probe's write shows it.
    faulty.heal();
    controller.store().check_writable().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        controller.unsaved_status(upgrade_id).is_none(),
        "the session is saved once the store takes a write, not half a minute later"
    );
    let stored = memory.get(upgrade_id).await.unwrap().unwrap().value;
    assert!(
        stored
            .rollout
            .messages
            .iter()
            .any(|message| message.contains("The session store refused to save this session")),
        "the held state was saved"
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_only_controller_sharing_the_store_health_shows_what_the_driver_holds() {
    // As a replica: its API's controller drives nothing and reads the
    // store; its leadership term's controller drives, through a store that
    // refuses the driver's writes (a fenced etcd write refused, a full disk).
    let memory: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let faulty = Arc::new(crate::testkit::FaultyStore::new(memory.clone()));
    let health = Arc::new(StoreHealth::new());
    let (driver, _) = controller(friendly_inventory(), never_drained(), booted_boot());
    let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)));
    let api = Controller::new(
        driver.ports().clone(),
        memory.clone(),
        clock.clone(),
        ControllerConfig {
            drive_sessions: false,
            store_health: health.clone(),
            ..ControllerConfig::default()
        },
    );
    let driver = Controller::new(
        driver.ports().clone(),
        faulty.clone(),
        clock,
        ControllerConfig {
            store_health: health.clone(),
            ..ControllerConfig::default()
        },
    );
    let status = api
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap();
    let upgrade_id = status.upgrade_id;
    faulty.fail_writes();
    driver.take_up(&memory.get(upgrade_id).await.unwrap().unwrap().value);
    tokio::time::sleep(Duration::from_secs(30)).await;

    let shown = api
        .unsaved_status(upgrade_id)
        .expect("the API's controller shows the status the driver holds");
    assert_eq!(shown.phase, Some(crate::session::SessionPhase::Halted));
    assert!(
        shown
            .messages
            .iter()
            .any(|message| message.contains("The session store refused to save this session")),
        "{:?}",
        shown.messages
    );
    assert_eq!(api.unsaved_statuses().len(), 1);

    // The driver's tasks stopped (leadership lost): nothing is held any more.
    driver.stop_all();
    assert!(api.unsaved_status(upgrade_id).is_none());
}

/// A workload manager whose nodes never finish draining, so a session stays
/// running for as long as a test sends it commands.
fn never_drained() -> MockWlm {
    let mut wlm = MockWlm::new();
    wlm.expect_drain().returning(|_, _| Ok(()));
    wlm.expect_node_states().returning(|nodes| {
        Ok(nodes
            .iter()
            .map(|node| WorkloadNode {
                node: node.clone(),
                state: WorkloadState::Draining,
                responding: true,
                jobs_end_by: None,
                reason: None,
            })
            .collect())
    });
    wlm
}

#[tokio::test(start_paused = true)]
async fn a_thousand_pauses_and_resumes_leave_a_record_of_bounded_size() {
    let (controller, store) = controller(friendly_inventory(), never_drained(), booted_boot());
    let id = controller
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap()
        .upgrade_id;
    controller.start(id);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let size = |record: &SessionRecord| serde_json::to_vec(record).unwrap().len();
    let before = size(&store.get(id).await.unwrap().unwrap().value);

    for number in 0..1_000 {
        if number % 2 == 0 {
            controller
                .request_pause(id)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        } else {
            controller
                .request_resume(id, None)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;

    let record = store.get(id).await.unwrap().unwrap().value;
    assert_eq!(
        record.rollout.commands_applied, 1_000,
        "every command applied"
    );
    assert!(!record.rollout.paused, "the last command was a resume");
    assert!(
        record.desired.commands.is_empty(),
        "applied commands are not kept: {} left",
        record.desired.commands.len()
    );
    let messages = &record.rollout.messages;
    assert!(
        messages.len()
            <= crate::rollout::messages::KEPT_FIRST + 1 + crate::rollout::messages::KEPT_LAST,
        "{} messages kept",
        messages.len()
    );
    assert_eq!(messages.last().unwrap(), "Resumed: taking nodes again");
    assert!(
        messages
            .iter()
            .any(|message| message.contains("messages were folded")),
        "{messages:?}"
    );
    // What does not depend on the number of commands: the messages kept and
    // the nodes' records. 1,000 commands used to add about 100 KB.
    let after = size(&record);
    assert!(
        after < before + 24_000,
        "{before} bytes before, {after} after"
    );
    let status = serde_json::to_vec(&record.status()).unwrap().len();
    assert!(status < 24_000, "the status is {status} bytes");
}

/// A boot orchestrator whose boots never finish.
fn endless_boot() -> MockBoot {
    boot_ending(NodeBootState::InProgress)
}

#[tokio::test(start_paused = true)]
async fn an_operator_request_judges_no_boot_timeout_on_the_stored_state() {
    let mut wlm = MockWlm::new();
    wlm.expect_drain().returning(|_, _| Ok(()));
    wlm.expect_node_states()
        .returning(|nodes| Ok(drained(nodes)));
    let (controller, store) = controller(friendly_inventory(), wlm, endless_boot());
    let id = controller
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap()
        .upgrade_id;
    controller.start(id);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        store
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .value
            .rollout
            .count(NodePhase::Booting),
        2
    );
    // The driving task is held up (a busy store, a storm of requests) past
    // the boot timeout: nobody has looked at the boots since.
    controller.stop_all();
    tokio::time::sleep(Duration::from_secs(11 * 60)).await;

    let paused = controller
        .request_pause(id)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let resumed = controller
        .request_resume(id, None)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    for status in [paused, resumed] {
        let nodes = status.nodes.unwrap();
        assert_eq!(nodes["booting"], 2, "{nodes:?}");
        assert!(
            !status.messages.iter().any(|m| m.contains("failed")),
            "{:?}",
            status.messages
        );
    }
    let stored = store.get(id).await.unwrap().unwrap().value;
    assert_eq!(stored.rollout.count(NodePhase::Booting), 2);
}

/// A session store that refuses the first `refusals` removals of a record,
/// as a disk that fails for a while would.
struct RefusesRemovals {
    inner: MemoryStore,
    refusals: AtomicU32,
}

#[async_trait]
impl SessionStore for RefusesRemovals {
    async fn create(&self, record: &SessionRecord) -> Result<crate::store::Revision> {
        self.inner.create(record).await
    }

    async fn get(
        &self,
        upgrade_id: Uuid,
    ) -> Result<Option<crate::store::Versioned<SessionRecord>>> {
        self.inner.get(upgrade_id).await
    }

    async fn list(&self) -> Result<Vec<crate::store::Versioned<SessionRecord>>> {
        self.inner.list().await
    }

    async fn update(
        &self,
        record: &SessionRecord,
        expected: crate::store::Revision,
    ) -> Result<crate::store::Revision> {
        self.inner.update(record, expected).await
    }

    async fn delete(&self, upgrade_id: Uuid, expected: crate::store::Revision) -> Result<()> {
        if self.refusals.load(Ordering::SeqCst) > 0 {
            self.refusals.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Other {
                backend: "test",
                source: "disk I/O error".into(),
            });
        }
        self.inner.delete(upgrade_id, expected).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_deleted_session_whose_removal_the_store_refuses_is_removed_once_it_takes_it() {
    let store = Arc::new(RefusesRemovals {
        inner: MemoryStore::new(),
        refusals: AtomicU32::new(3),
    });
    let mut wlm = MockWlm::new();
    wlm.expect_drain().returning(|_, _| Ok(()));
    wlm.expect_node_states().returning(|nodes| {
        Ok(nodes
            .iter()
            .map(|node| WorkloadNode {
                node: node.clone(),
                state: WorkloadState::Draining,
                responding: true,
                jobs_end_by: None,
                reason: None,
            })
            .collect())
    });
    wlm.expect_resume().returning(|_| Ok(()));
    let ports = Ports {
        inventory: Arc::new(friendly_inventory()),
        workload_manager: Arc::new(wlm),
        boot_orchestrator: Arc::new(booted_boot()),
        power_control: None,
        health_probe: None,
        alert_gate: None,
        hook_runner: None,
    };
    let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)));
    let controller = Controller::new(ports, store.clone(), clock, ControllerConfig::default());
    let upgrade_id = controller
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap()
        .upgrade_id;
    let driving = controller.clone();
    let task = tokio::spawn(async move { driving.drive(upgrade_id).await });
    tokio::time::sleep(Duration::from_secs(30)).await;

    controller.request_delete(upgrade_id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(3600), task)
        .await
        .expect("the task ends once the store took the removal")
        .unwrap()
        .expect("a refused removal is retried, not the end of the task");
    assert_eq!(
        store.refusals.load(Ordering::SeqCst),
        0,
        "every refusal was met"
    );
    assert!(
        store.inner.get(upgrade_id).await.unwrap().is_none(),
        "the deleted session is removed once the store takes the write"
    );
}

/// A new session takes its first step as soon as it is driven: no wait of a
/// command poll interval (5 s in `crus serve`, 10 simulated minutes in
/// `crus demo`) before its first action, nor between its first actions.
#[tokio::test(start_paused = true)]
async fn a_new_session_takes_its_first_step_at_once() {
    let started = tokio::time::Instant::now();
    let first_drain = Arc::new(std::sync::Mutex::new(None));
    let seen = first_drain.clone();
    let mut wlm = MockWlm::new();
    wlm.expect_drain().returning(move |_, _| {
        seen.lock().unwrap().get_or_insert(started.elapsed());
        Ok(())
    });
    wlm.expect_node_states()
        .returning(|nodes| Ok(drained(nodes)));
    wlm.expect_resume().returning(|_| Ok(()));
    let (controller, _store) = controller(friendly_inventory(), wlm, booted_boot());
    let status = controller
        .create_session(spec(), RolloutPolicy::default())
        .await
        .unwrap();
    controller.drive(status.upgrade_id).await.unwrap();
    let first_drain = first_drain.lock().unwrap().expect("the nodes were drained");
    assert_eq!(
        first_drain,
        Duration::ZERO,
        "first drain after {first_drain:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn skip_matching_is_refused_where_the_boot_orchestrator_cannot_read_images() {
    let mut boot = MockBoot::new();
    boot.expect_template_exists().returning(|_| Ok(true));
    // The mock keeps the trait's default: it cannot tell a node's image.
    let (controller, store) = controller(friendly_inventory(), MockWlm::new(), boot);
    let mut asked = spec();
    asked.policy = Some(crate::session::PolicyRequest {
        skip_matching: Some(true),
        ..Default::default()
    });
    let errors = match controller.admit(AdmissionRequest::new(asked)).await {
        Err(AdmissionRefusal::Invalid(errors)) => errors,
        other => panic!("expected invalid, got {other:?}"),
    };
    let message = &errors["policy.skip_matching"][0];
    assert!(
        message.contains("this boot orchestrator") && message.contains("cannot tell"),
        "{message}"
    );
    assert!(store.list().await.unwrap().is_empty(), "nothing created");
    // Without it, the same request is a CRUS session.
    assert!(
        controller
            .admit(AdmissionRequest::new(spec()))
            .await
            .unwrap()
            .created
    );
}

#[tokio::test(start_paused = true)]
async fn reserve_ahead_is_refused_where_the_workload_manager_cannot_reserve_nodes() {
    let mut boot = MockBoot::new();
    boot.expect_template_exists().returning(|_| Ok(true));
    // The mock keeps the trait's default: it cannot reserve nodes.
    let (controller, store) = controller(friendly_inventory(), MockWlm::new(), boot);
    let mut asked = spec();
    asked.policy = Some(crate::session::PolicyRequest {
        strategy: Some(crate::rollout::Strategy::Continuous),
        order: Some(crate::rollout::Order::DrainCost),
        reserve_ahead: Some(true),
        ..Default::default()
    });
    let errors = match controller.admit(AdmissionRequest::new(asked)).await {
        Err(AdmissionRefusal::Invalid(errors)) => errors,
        other => panic!("expected invalid, got {other:?}"),
    };
    let message = &errors["policy.reserve_ahead"][0];
    assert!(
        message.contains("This workload manager cannot reserve nodes"),
        "{message}"
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(store.list().await.unwrap().is_empty(), "nothing created");
}

#[tokio::test(start_paused = true)]
async fn image_features_are_refused_where_the_workload_manager_cannot_set_features() {
    let mut boot = MockBoot::new();
    boot.expect_template_exists().returning(|_| Ok(true));
    // The mock keeps the trait's default: it has no node features.
    let (controller, store) = controller(friendly_inventory(), MockWlm::new(), boot);
    let mut asked = spec();
    asked.policy = Some(crate::session::PolicyRequest {
        image_features: Some(true),
        ..Default::default()
    });
    let errors = match controller.admit(AdmissionRequest::new(asked)).await {
        Err(AdmissionRefusal::Invalid(errors)) => errors,
        other => panic!("expected invalid, got {other:?}"),
    };
    let message = &errors["policy.image_features"][0];
    assert!(
        message.contains("This workload manager cannot set node features"),
        "{message}"
    );
    assert!(store.list().await.unwrap().is_empty(), "nothing created");
}

/// A workload manager that reports every node the same whatever it does
/// (as `workload_manager = "none"` does): it cannot tell who is in service.
struct NoAvailability;

#[async_trait]
impl WorkloadManager for NoAvailability {
    async fn drain(&self, _nodes: &[NodeId], _reason: &str) -> Result<()> {
        Ok(())
    }

    async fn resume(&self, _nodes: &[NodeId]) -> Result<()> {
        Ok(())
    }

    async fn fail(&self, _nodes: &[NodeId], _reason: &str) -> Result<()> {
        Ok(())
    }

    async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>> {
        Ok(drained(nodes))
    }

    fn availability_supported(&self) -> Result<()> {
        Err(Error::NotSupported {
            backend: "workload_manager = \"none\"",
            operation: "reporting which nodes are in service",
        })
    }
}

/// Issue 21: a capacity floor from a workload manager that reports every
/// node drained would hold for ever; it is refused at admission, naming
/// the backend.
#[tokio::test(start_paused = true)]
async fn min_available_is_refused_where_the_workload_manager_cannot_report_availability() {
    let mut boot = MockBoot::new();
    boot.expect_template_exists().returning(|_| Ok(true));
    let store = Arc::new(MemoryStore::new());
    let ports = Ports {
        inventory: Arc::new(friendly_inventory()),
        workload_manager: Arc::new(NoAvailability),
        boot_orchestrator: Arc::new(boot),
        power_control: None,
        health_probe: None,
        alert_gate: None,
        hook_runner: None,
    };
    let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)));
    let controller = Controller::new(ports, store.clone(), clock, ControllerConfig::default());
    let mut asked = spec();
    asked.policy = Some(crate::session::PolicyRequest {
        min_available: Some(crate::rollout::FailureBudget::Count(1)),
        ..Default::default()
    });
    let errors = match controller.admit(AdmissionRequest::new(asked)).await {
        Err(AdmissionRefusal::Invalid(errors)) => errors,
        other => panic!("expected invalid, got {other:?}"),
    };
    let message = &errors["policy.min_available"][0];
    assert!(
        message.contains("workload_manager = \"none\"")
            && message.contains("cannot report which nodes are in service"),
        "{message}"
    );
    assert!(store.list().await.unwrap().is_empty(), "nothing created");
    // Without it, the same request is a session.
    assert!(
        controller
            .admit(AdmissionRequest::new(spec()))
            .await
            .unwrap()
            .created
    );
}

/// A workload manager that reports availability (the port's default) takes
/// a floor.
#[tokio::test(start_paused = true)]
async fn min_available_is_admitted_where_the_workload_manager_reports_availability() {
    let mut boot = MockBoot::new();
    boot.expect_template_exists().returning(|_| Ok(true));
    let (controller, _store) = controller(friendly_inventory(), MockWlm::new(), boot);
    let mut asked = spec();
    asked.policy = Some(crate::session::PolicyRequest {
        min_available: Some(crate::rollout::FailureBudget::Count(1)),
        ..Default::default()
    });
    assert!(
        controller
            .admit(AdmissionRequest::new(asked))
            .await
            .unwrap()
            .created
    );
}

/// Issue 21: `foreign_out_of_service: wait` is bounded by `drain_timeout`
/// alone, and nothing supplies one by default: without it a node never
/// returned would hold the session for ever, so it is refused.
#[tokio::test(start_paused = true)]
async fn waiting_for_owners_without_a_drain_timeout_is_refused() {
    let mut boot = MockBoot::new();
    boot.expect_template_exists().returning(|_| Ok(true));
    let (controller, store) = controller(friendly_inventory(), MockWlm::new(), boot);
    let waiting = |drain_timeout: Option<&str>| {
        let mut asked = spec();
        asked.policy = Some(crate::session::PolicyRequest {
            foreign_out_of_service: Some(crate::rollout::ForeignOutOfService::Wait),
            drain_timeout: drain_timeout.map(str::to_string),
            ..Default::default()
        });
        asked
    };
    let errors = match controller.admit(AdmissionRequest::new(waiting(None))).await {
        Err(AdmissionRefusal::Invalid(errors)) => errors,
        other => panic!("expected invalid, got {other:?}"),
    };
    let message = &errors["policy.foreign_out_of_service"][0];
    assert!(message.contains("drain_timeout"), "{message}");
    assert!(store.list().await.unwrap().is_empty(), "nothing created");
    assert!(
        controller
            .admit(AdmissionRequest::new(waiting(Some("2h"))))
            .await
            .unwrap()
            .created
    );
}
