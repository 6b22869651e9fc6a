//! The etcd session store on a real 3-member etcd cluster: the conformance
//! suite, prefixes kept apart, watches, fencing on a leader lease, and a
//! member lost.

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a failure should stop them loudly.

mod etcd_harness;

use std::sync::Arc;
use std::time::Duration;

use crus_backends::etcd::etcd_client;
use crus_backends::etcd::{Election, EtcdConfig, EtcdStore};
use crus_core::Error;
use crus_core::Timestamp;
use crus_core::rollout::{Rollout, RolloutPolicy};
use crus_core::session::SessionSpec;
use crus_core::store::{Desired, SessionRecord, SessionStore};
use crus_core::testkit::session_store::{concurrent_updates_from_tasks_one_wins, run_all};
use crus_core::testkit::status_view;
use etcd_harness::EtcdCluster;
use uuid::Uuid;

/// A valid record for session `id`, built as the core testkit builds its own.
fn test_record(id: Uuid) -> SessionRecord {
    let spec = SessionSpec {
        failed_label: "failed".into(),
        starting_label: "compute".into(),
        upgrade_step_size: 2,
        upgrade_template_id: "compute-image".into(),
        upgrading_label: "upgrading".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    };
    SessionRecord {
        rollout: Rollout::new(id, spec, RolloutPolicy::default(), Timestamp::EPOCH)
            .state()
            .clone(),
        desired: Desired::default(),
    }
}

/// A store on `cluster` under `prefix`.
async fn connect(cluster: &EtcdCluster, prefix: &str) -> EtcdStore {
    EtcdStore::connect(&EtcdConfig {
        endpoints: cluster.endpoint_list(),
        prefix: prefix.into(),
        ..EtcdConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_store_passes_the_conformance_suite_and_keeps_prefixes_apart() {
    let cluster = EtcdCluster::start().await;
    let store = Arc::new(connect(&cluster, "/crus-a/").await);
    run_all(store.as_ref(), &test_record).await.unwrap();
    status_view::run_all(store.as_ref(), store.as_ref(), &test_record)
        .await
        .unwrap();
    concurrent_updates_from_tasks_one_wins(store.clone(), &test_record)
        .await
        .unwrap();
    assert!(
        store.list().await.unwrap().is_empty(),
        "every check cleans up"
    );

    // Another prefix is another set of sessions.
    let other = connect(&cluster, "/crus-b").await;
    let record = test_record(Uuid::new_v4());
    store.create(&record).await.unwrap();
    assert!(other.list().await.unwrap().is_empty());
    assert!(other.get(record.upgrade_id()).await.unwrap().is_none());
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_seen_by_one_replica_is_watched_by_another() {
    let cluster = EtcdCluster::start().await;
    let writer = connect(&cluster, "/crus/").await;
    let reader = connect(&cluster, "/crus/").await;
    let (_watcher, mut events) = reader.watch_sessions(0).await.unwrap();
    let record = test_record(Uuid::new_v4());
    let written = writer.create(&record).await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("no watch event within 10 s")
        .unwrap()
        .expect("watch ended");
    let event = response.events().first().expect("an event").clone();
    let kv = event.kv().expect("a key");
    assert!(
        kv.key_str()
            .unwrap()
            .ends_with(&record.upgrade_id().to_string())
    );
    assert_eq!(kv.mod_revision() as u64, written.0);
    let read = reader.get(record.upgrade_id()).await.unwrap().unwrap();
    assert_eq!(read.value, record);
    assert_eq!(read.revision, written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_writes_fail_once_the_lease_is_gone_and_change_nothing() {
    let cluster = EtcdCluster::start().await;
    let plain = connect(&cluster, "/crus/").await;
    let mut client = plain.client().clone();
    let leader_key = "/crus/leader";
    let lease = client.lease_grant(30, None).await.unwrap().id();
    client
        .put(
            leader_key,
            "replica-1",
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();
    let fenced = plain.fenced(leader_key, lease);

    // While the lease holds the key, fenced writes go through, and so does
    // the readiness probe's write.
    fenced.check_writable().await.unwrap();
    let mut record = test_record(Uuid::new_v4());
    let created = fenced.create(&record).await.unwrap();
    record.desired.delete = true;
    let updated = fenced.update(&record, created).await.unwrap();

    // The lease is revoked (as when it expires); another replica leads.
    client.lease_revoke(lease).await.unwrap();
    let other_lease = client.lease_grant(30, None).await.unwrap().id();
    client
        .put(
            leader_key,
            "replica-2",
            Some(etcd_client::PutOptions::new().with_lease(other_lease)),
        )
        .await
        .unwrap();
    let mut late = record.clone();
    late.desired.delete = false;
    let error = fenced.update(&late, updated).await.unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
    assert!(
        error.to_string().contains("no longer the leader"),
        "{error}"
    );
    assert!(fenced.delete(record.upgrade_id(), updated).await.is_err());
    assert!(fenced.create(&test_record(Uuid::new_v4())).await.is_err());
    // Readiness asks etcd itself, not a default that answers yes.
    let probe = fenced.check_writable().await.unwrap_err();
    assert!(
        probe.to_string().contains("no longer the leader"),
        "{probe}"
    );
    let stored = plain.get(record.upgrade_id()).await.unwrap().unwrap();
    assert_eq!(
        stored.revision, updated,
        "the deposed writer changed nothing"
    );
    assert_eq!(stored.value, record);
    assert_eq!(plain.list().await.unwrap().len(), 1);

    // A store fenced on the new lease writes again.
    plain
        .fenced(leader_key, other_lease)
        .delete(record.upgrade_id(), updated)
        .await
        .unwrap();
    assert!(plain.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_works_with_one_member_down_and_reports_no_quorum() {
    let mut cluster = EtcdCluster::start().await;
    let store = connect(&cluster, "/crus/").await;
    let record = test_record(Uuid::new_v4());
    let created = store.create(&record).await.unwrap();
    cluster.kill_member(0);
    // One member down: still a quorum (retry while the client moves on).
    let mut read = None;
    for _ in 0..50 {
        if let Ok(found) = store.get(record.upgrade_id()).await {
            read = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(read.expect("read with one member down").revision, created);
    cluster.kill_member(1);
    // No quorum: a linearizable read cannot be answered; the error is retryable.
    let error = store.check().await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    cluster.start_member(0);
    cluster.start_member(1);
    cluster.wait_healthy().await;
    let mut back = None;
    for _ in 0..50 {
        if let Ok(found) = store.get(record.upgrade_id()).await {
            back = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(back.expect("read after quorum returns").value, record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_another_takes_over_when_its_lease_expires() {
    let cluster = EtcdCluster::start().await;
    let ttl = Duration::from_secs(2);
    let keep_alive = Duration::from_millis(500);
    let first = Election::new(
        connect(&cluster, "/crus/").await,
        "replica-1",
        ttl,
        keep_alive,
    );
    let second = Election::new(
        connect(&cluster, "/crus/").await,
        "replica-2",
        ttl,
        keep_alive,
    );
    let leader = first
        .try_acquire()
        .await
        .unwrap()
        .expect("the first replica leads");
    assert!(
        second.try_acquire().await.unwrap().is_none(),
        "only one leader"
    );
    assert_eq!(
        second.current_leader().await.unwrap().as_deref(),
        Some("replica-1")
    );

    // The leader writes through its fenced store.
    let record = test_record(Uuid::new_v4());
    let created = leader.store().create(&record).await.unwrap();

    // The leader stops refreshing its lease (as a crashed or paused process);
    // the other replica leads once the lease expires, well within TTL + 5 s.
    let deposed_store = leader.store().clone();
    drop(leader);
    let successor = tokio::time::timeout(ttl + Duration::from_secs(5), second.campaign())
        .await
        .expect("no takeover within TTL + 5 s");
    assert_eq!(
        first.current_leader().await.unwrap().as_deref(),
        Some("replica-2")
    );

    // The deposed leader's writes are refused; the new leader's go through.
    let mut late = record.clone();
    late.desired.delete = true;
    // The record is still at `created`: only the fence refuses this write.
    let error = deposed_store.update(&late, created).await.unwrap_err();
    assert!(
        error.to_string().contains("no longer the leader"),
        "{error}"
    );
    successor.store().update(&late, created).await.unwrap();
    assert!(successor.is_held());
}
