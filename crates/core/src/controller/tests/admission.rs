//! `Controller::admit`: the starting group read once, idempotency keys,
//! overlaps refused by the scan and by the store's claims, and failures
//! naming the part that failed.

use std::collections::BTreeMap;

use super::*;
use crate::error::Dependency;
use crate::store::{FaultyStore, Idempotency, NodesClaimed, Versioned};

/// A controller on `store` with `inventory` and a boot orchestrator that
/// knows `compute-image`.
fn admitting(inventory: MockInv, wlm: MockWlm, store: Arc<dyn SessionStore>) -> Controller {
    admitting_with(inventory, wlm, MockBoot::new(), store)
}

/// As [`admitting`], with `boot` answering everything but the template check.
fn admitting_with(
    inventory: MockInv,
    wlm: MockWlm,
    mut boot: MockBoot,
    store: Arc<dyn SessionStore>,
) -> Controller {
    boot.expect_template_exists()
        .returning(|template| Ok(template == "compute-image"));
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
    Controller::new(ports, store, clock, ControllerConfig::default())
}

fn keyed(spec: SessionSpec, key: &str, body: serde_json::Value) -> AdmissionRequest {
    AdmissionRequest::new(spec).with_idempotency(Some(Idempotency {
        key: key.to_string(),
        request: body,
    }))
}

#[tokio::test(start_paused = true)]
async fn a_repeated_key_answers_the_first_session_and_another_request_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let controller = admitting(friendly_inventory(), MockWlm::new(), store.clone());
    let body = serde_json::json!({"starting_label": "compute"});
    let first = controller
        .admit(keyed(spec(), "key-1", body.clone()))
        .await
        .unwrap();
    assert!(first.created);
    let again = controller
        .admit(keyed(spec(), "key-1", body))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.status.upgrade_id, first.status.upgrade_id);
    match controller
        .admit(keyed(
            spec(),
            "key-1",
            serde_json::json!({"starting_label": "other"}),
        ))
        .await
    {
        Err(AdmissionRefusal::KeyReused { key, other }) => {
            assert_eq!(key, "key-1");
            assert_eq!(other, first.status.upgrade_id);
        }
        other => panic!("expected the key refused, got {other:?}"),
    }
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_starting_group_is_read_once_and_its_nodes_are_claimed() {
    let mut inventory = MockInv::new();
    inventory.expect_group_members().times(1).returning(|_| {
        Ok(vec![
            NodeId::from("b"),
            NodeId::from("a"),
            NodeId::from("c"),
        ])
    });
    let store = Arc::new(MemoryStore::new());
    let controller = admitting(inventory, MockWlm::new(), store.clone());
    let mut by_share = spec();
    // The step size is a share of the group: it needs the members too.
    by_share.upgrade_step_size = 0;
    let admitted = controller
        .admit(AdmissionRequest::new(by_share))
        .await
        .unwrap();
    assert_eq!(admitted.status.upgrade_step_size, 3);
    let id = admitted.status.upgrade_id;
    assert_eq!(
        store.claims().await.unwrap(),
        BTreeMap::from([
            (NodeId::from("a"), id),
            (NodeId::from("b"), id),
            (NodeId::from("c"), id),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_admitted_here_upgrades_the_members_admission_read() {
    // The group gains a node right after admission: the session upgrades
    // the two nodes admission read, checked and claimed, and reads the
    // group no second time.
    let reads = Arc::new(AtomicU32::new(0));
    let counted = reads.clone();
    let mut inventory = MockInv::new();
    inventory.expect_group_members().returning(move |label| {
        Ok(match label {
            "compute" if counted.fetch_add(1, Ordering::SeqCst) == 0 => {
                vec![NodeId::from("a"), NodeId::from("b")]
            }
            "compute" => vec![NodeId::from("a"), NodeId::from("b"), NodeId::from("c")],
            _ => vec![],
        })
    });
    inventory
        .expect_create_group()
        .returning(|label| Err(Error::conflict(format!("group {label}"))));
    inventory.expect_add_members().returning(|_, _| Ok(()));
    inventory.expect_remove_members().returning(|_, _| Ok(()));
    let mut wlm = MockWlm::new();
    wlm.expect_drain().returning(|_, _| Ok(()));
    wlm.expect_node_states()
        .returning(|nodes| Ok(drained(nodes)));
    wlm.expect_resume().returning(|_| Ok(()));
    let store = Arc::new(MemoryStore::new());
    let controller = admitting_with(inventory, wlm, booted_boot(), store.clone());
    let admitted = controller
        .admit(AdmissionRequest::new(spec()))
        .await
        .unwrap();
    let id = admitted.status.upgrade_id;
    controller.drive(id).await.unwrap();
    let record = store.get(id).await.unwrap().unwrap().value.rollout;
    let upgraded: Vec<&str> = record.nodes.iter().map(|node| node.id.as_str()).collect();
    assert_eq!(upgraded, ["a", "b"], "{:#?}", record.messages);
    assert!(
        record
            .nodes
            .iter()
            .all(|node| node.phase == NodePhase::Done),
        "{:#?}",
        record.nodes
    );
    assert_eq!(reads.load(Ordering::SeqCst), 1, "the group was read again");
}

/// A store whose listings of unfinished sessions miss every session, as two
/// servers' checks miss each other's creation when both check before either
/// stores: only the claims stand between them.
struct ListsNothingUnfinished(MemoryStore);

#[async_trait]
impl SessionStore for ListsNothingUnfinished {
    async fn create(&self, record: &SessionRecord) -> Result<Revision> {
        self.0.create(record).await
    }
    async fn get(&self, upgrade_id: Uuid) -> Result<Option<Versioned<SessionRecord>>> {
        self.0.get(upgrade_id).await
    }
    async fn list(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        self.0.list().await
    }
    async fn update(&self, record: &SessionRecord, expected: Revision) -> Result<Revision> {
        self.0.update(record, expected).await
    }
    async fn delete(&self, upgrade_id: Uuid, expected: Revision) -> Result<()> {
        self.0.delete(upgrade_id, expected).await
    }
    async fn list_unfinished(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        Ok(Vec::new())
    }
    async fn create_claiming(
        &self,
        record: &SessionRecord,
        nodes: &[NodeId],
    ) -> Result<std::result::Result<Revision, NodesClaimed>> {
        self.0.create_claiming(record, nodes).await
    }
    async fn claims(&self) -> Result<std::collections::BTreeMap<NodeId, Uuid>> {
        self.0.claims().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_creation_that_missed_an_overlap_is_refused_by_the_claims_naming_the_holder() {
    let store = Arc::new(ListsNothingUnfinished(MemoryStore::new()));
    let controller = admitting(friendly_inventory(), MockWlm::new(), store.clone());
    let first = controller
        .admit(AdmissionRequest::new(spec()))
        .await
        .unwrap();
    match controller.admit(AdmissionRequest::new(spec())).await {
        Err(AdmissionRefusal::Overlap { other, nodes }) => {
            assert_eq!(other, first.status.upgrade_id);
            assert_eq!(nodes, 2);
        }
        other => panic!("expected an overlap, got {other:?}"),
    }
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_overlapping_admissions_admit_exactly_one() {
    let store = Arc::new(MemoryStore::new());
    let controller = admitting(friendly_inventory(), MockWlm::new(), store.clone());
    let (left, right) = tokio::join!(
        controller.admit(AdmissionRequest::new(spec())),
        controller.admit(AdmissionRequest::new(spec())),
    );
    let (winner, refusal) = match (left, right) {
        (Ok(winner), Err(refusal)) | (Err(refusal), Ok(winner)) => (winner, refusal),
        other => panic!("expected one admitted and one refused, got {other:?}"),
    };
    match refusal {
        AdmissionRefusal::Overlap { other, .. } => assert_eq!(other, winner.status.upgrade_id),
        other => panic!("expected an overlap, got {other:?}"),
    }
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_finished_session_frees_its_nodes() {
    let store = Arc::new(MemoryStore::new());
    let controller = admitting(friendly_inventory(), MockWlm::new(), store.clone());
    let first = controller
        .admit(AdmissionRequest::new(spec()))
        .await
        .unwrap();
    let mut record = store.get(first.status.upgrade_id).await.unwrap().unwrap();
    record.value.rollout.stage = Stage::Finished;
    record.value.rollout.completed = true;
    store.update(&record.value, record.revision).await.unwrap();
    let second = controller
        .admit(AdmissionRequest::new(spec()))
        .await
        .unwrap();
    assert!(second.created);
    assert_ne!(second.status.upgrade_id, first.status.upgrade_id);
}

#[tokio::test(start_paused = true)]
async fn failures_name_the_part_that_failed() {
    let failed_part = |result: std::result::Result<Admitted, AdmissionRefusal>| match result {
        Err(AdmissionRefusal::Failed(failure)) => failure.part,
        other => panic!("expected a failure, got {other:?}"),
    };

    let mut inventory = MockInv::new();
    inventory
        .expect_group_members()
        .returning(|_| Err(Error::unavailable("hsm", "connection refused")));
    let controller = admitting(inventory, MockWlm::new(), Arc::new(MemoryStore::new()));
    assert_eq!(
        failed_part(controller.admit(AdmissionRequest::new(spec())).await),
        Dependency::Inventory
    );

    let mut boot = MockBoot::new();
    boot.expect_template_exists()
        .returning(|_| Err(Error::invalid("BOS answered 500")));
    let (controller, _store) = controller_with_boot(boot);
    assert_eq!(
        failed_part(controller.admit(AdmissionRequest::new(spec())).await),
        Dependency::BootService
    );

    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    faulty.fail_writes();
    let controller = admitting(friendly_inventory(), MockWlm::new(), faulty);
    assert_eq!(
        failed_part(controller.admit(AdmissionRequest::new(spec())).await),
        Dependency::Store
    );

    let mut wlm = MockWlm::new();
    wlm.expect_node_states()
        .returning(|_| Err(Error::unavailable("slurm", "slurmctld does not answer")));
    let controller = admitting(friendly_inventory(), wlm, Arc::new(MemoryStore::new()));
    match controller
        .prepare_dry_run(spec(), &RolloutPolicy::default())
        .await
    {
        Err(AdmissionRefusal::Failed(failure)) => {
            assert_eq!(failure.part, Dependency::WorkloadManager);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A controller with the friendly inventory and `boot`.
fn controller_with_boot(boot: MockBoot) -> (Controller, Arc<MemoryStore>) {
    controller(friendly_inventory(), MockWlm::new(), boot)
}
