//! The SQLite store against the conformance suite, and what only a file can
//! show: durability across reopening, two stores on one file, damage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crus_core::Error;
use crus_core::NodeId;
use crus_core::Timestamp;
use crus_core::rollout::{Rollout, RolloutPolicy};
use crus_core::session::SessionSpec;
use crus_core::store::{Desired, SessionRecord, SessionStore, StatusView};
use crus_core::testkit::session_store::{concurrent_updates_from_tasks_one_wins, run_all};
use crus_core::testkit::status_view;
use tempfile::TempDir;
use uuid::Uuid;

use super::SqliteStore;
use super::schema::SCHEMA_VERSION;

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

/// A fresh directory and the path of a database file in it (not created yet).
fn database() -> (TempDir, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sessions.db");
    (directory, path)
}

/// Opens `path` with plain rusqlite, to damage it as a crash or a person might.
fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[tokio::test]
async fn a_file_store_passes_the_conformance_suite() {
    let (_directory, path) = database();
    let store = SqliteStore::open(&path).unwrap();
    run_all(&store, &test_record).await.unwrap();
    status_view::run_all(&store, &store, &test_record)
        .await
        .unwrap();
    assert!(
        store.list().await.unwrap().is_empty(),
        "every check cleans up"
    );
}

#[tokio::test]
async fn an_in_memory_store_passes_the_conformance_suite() {
    let store = SqliteStore::open_in_memory().unwrap();
    run_all(&store, &test_record).await.unwrap();
    status_view::run_all(&store, &store, &test_record)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_store_has_one_winner_among_racing_tasks() {
    let (_directory, path) = database();
    let store: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(&path).unwrap());
    for _ in 0..20 {
        concurrent_updates_from_tasks_one_wins(Arc::clone(&store), &test_record)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_memory_store_has_one_winner_among_racing_tasks() {
    let store: Arc<dyn SessionStore> = Arc::new(SqliteStore::open_in_memory().unwrap());
    for _ in 0..20 {
        concurrent_updates_from_tasks_one_wins(Arc::clone(&store), &test_record)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn records_and_revisions_survive_reopening() {
    let (_directory, path) = database();
    let kept = test_record(Uuid::new_v4());
    let deleted = test_record(Uuid::new_v4());
    let (kept_revision, last_revision) = {
        let store = SqliteStore::open(&path).unwrap();
        let created = store.create(&kept).await.unwrap();
        let mut changed = kept.clone();
        changed.desired.delete = true;
        let updated = store.update(&changed, created).await.unwrap();
        let doomed = store.create(&deleted).await.unwrap();
        store.delete(deleted.upgrade_id(), doomed).await.unwrap();
        (updated, doomed)
    };

    let store = SqliteStore::open(&path).unwrap();
    let found = store.get(kept.upgrade_id()).await.unwrap().unwrap();
    assert_eq!(found.revision, kept_revision);
    assert!(found.value.desired.delete);
    assert_eq!(found.value.rollout, kept.rollout);
    assert!(store.get(deleted.upgrade_id()).await.unwrap().is_none());
    assert_eq!(store.list().await.unwrap().len(), 1);

    // The counter survived too: even the deleted record's revision is not reused.
    let recreated = store.create(&deleted).await.unwrap();
    assert!(
        recreated > last_revision,
        "{recreated:?} after {last_revision:?}"
    );
    let rewritten = store.update(&found.value, found.revision).await.unwrap();
    assert!(rewritten > recreated);
}

#[tokio::test]
async fn two_stores_on_one_file_see_each_other_and_race_safely() {
    let (_directory, path) = database();
    let first = SqliteStore::open(&path).unwrap();
    let second = SqliteStore::open(&path).unwrap();
    let record = test_record(Uuid::new_v4());
    let id = record.upgrade_id();

    let created = first.create(&record).await.unwrap();
    let seen = second.get(id).await.unwrap().unwrap();
    assert_eq!(seen.revision, created);
    assert_eq!(seen.value, record);
    assert!(matches!(
        second.create(&record).await.unwrap_err(),
        Error::Conflict { .. }
    ));

    let mut changed = record.clone();
    changed.desired.delete = true;
    let updated = first.update(&changed, created).await.unwrap();
    let error = second.update(&record, created).await.unwrap_err();
    let Error::Conflict { what } = &error else {
        panic!("a stale update should conflict, got {error:?}");
    };
    assert!(what.contains(&id.to_string()), "{what}");
    assert!(
        what.contains(&format!("revision {}", created.0))
            && what.contains(&format!("now {}", updated.0)),
        "{what}"
    );
    assert!(matches!(
        second.delete(id, created).await.unwrap_err(),
        Error::Conflict { .. }
    ));

    // Each store's writes take revisions from the one shared counter.
    let other = test_record(Uuid::new_v4());
    assert!(second.create(&other).await.unwrap() > updated);
    assert_eq!(first.get(id).await.unwrap().unwrap().value, changed);
}

#[tokio::test]
async fn a_damaged_record_is_reported_by_id() {
    let (_directory, path) = database();
    let store = SqliteStore::open(&path).unwrap();
    let healthy = test_record(Uuid::new_v4());
    let damaged = test_record(Uuid::new_v4());
    store.create(&healthy).await.unwrap();
    store.create(&damaged).await.unwrap();
    raw(&path)
        .execute(
            "UPDATE sessions SET record = '{\"rollout\": {\"upgrade_' WHERE upgrade_id = ?1",
            [damaged.upgrade_id().to_string()],
        )
        .unwrap();

    for error in [
        store.get(damaged.upgrade_id()).await.unwrap_err(),
        store.list().await.unwrap_err(),
    ] {
        assert!(
            matches!(
                error,
                Error::Other {
                    backend: "sqlite",
                    ..
                }
            ),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&damaged.upgrade_id().to_string()),
            "{message}"
        );
        assert!(message.contains("damaged"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
    // The other record still reads.
    assert!(store.get(healthy.upgrade_id()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let (_directory, path) = database();
    drop(SqliteStore::open(&path).unwrap());
    raw(&path)
        .execute("UPDATE meta SET schema_version = ?1", [SCHEMA_VERSION + 1])
        .unwrap();

    let error = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Other {
                backend: "sqlite",
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("newer"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("version {}", SCHEMA_VERSION + 1)),
        "{message}"
    );
}

#[tokio::test]
async fn files_that_are_not_session_databases_are_refused() {
    let (directory, path) = database();
    std::fs::write(&path, "sessions, but as plain text\n".repeat(100)).unwrap();
    let message = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(message.contains("not a crus session database"), "{message}");

    let foreign = directory.path().join("other.db");
    raw(&foreign)
        .execute_batch("CREATE TABLE inventory (name TEXT)")
        .unwrap();
    let message = SqliteStore::open(&foreign).unwrap_err().to_string();
    assert!(message.contains("without crus's tables"), "{message}");

    let nowhere = directory.path().join("missing").join("sessions.db");
    let message = SqliteStore::open(&nowhere).unwrap_err().to_string();
    assert!(message.contains("directory exists"), "{message}");
}

#[tokio::test]
async fn the_file_is_in_wal_mode_and_fully_synchronous() {
    let (_directory, path) = database();
    let store = SqliteStore::open(&path).unwrap();
    store.ping().await.unwrap();
    let mode: String = raw(&path)
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // `synchronous` is per connection: read the store's own.
    let synchronous: i64 = super::lock(&store.connection)
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .unwrap();
    assert_eq!(synchronous, 2, "FULL");
}

#[tokio::test]
async fn a_long_held_write_lock_is_retryable() {
    let (_directory, path) = database();
    let store = SqliteStore::open(&path).unwrap();
    let mut holder = raw(&path);
    let transaction = holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    // Waits the whole busy timeout (5 s) for the lock this test holds.
    let error = store
        .create(&test_record(Uuid::new_v4()))
        .await
        .unwrap_err();
    drop(transaction);
    assert!(error.is_retryable(), "{error:?}");
    assert!(matches!(
        error,
        Error::Unavailable {
            backend: "sqlite",
            ..
        }
    ));
    assert!(error.to_string().contains("retry"), "{error}");
    // Once the lock is released, writes go through again.
    store.create(&test_record(Uuid::new_v4())).await.unwrap();
}

/// A file as a version 1 build left it: the tables of version 1 and one row
/// per record, with no `statuses`.
fn version_1_file(path: &Path, records: &[(&SessionRecord, i64)]) {
    let connection = raw(path);
    connection
        .execute_batch(
            "CREATE TABLE meta (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 schema_version INTEGER NOT NULL,
                 last_revision INTEGER NOT NULL
             );
             CREATE TABLE sessions (
                 upgrade_id TEXT PRIMARY KEY,
                 revision INTEGER NOT NULL,
                 record TEXT NOT NULL,
                 created_at TEXT
             );
             INSERT INTO meta (id, schema_version, last_revision) VALUES (1, 1, 10);",
        )
        .unwrap();
    for (record, revision) in records {
        connection
            .execute(
                "INSERT INTO sessions (upgrade_id, revision, record, created_at) VALUES (?1, ?2, ?3, '2026-11-01T00:00:00Z')",
                rusqlite::params![
                    record.upgrade_id().to_string(),
                    revision,
                    serde_json::to_string(record).unwrap()
                ],
            )
            .unwrap();
    }
}

#[tokio::test]
async fn a_version_1_file_is_migrated_with_every_status() {
    let (_directory, path) = database();
    let older = test_record(Uuid::new_v4());
    let mut newer = test_record(Uuid::new_v4());
    newer.rollout.created_at = Timestamp::from_secs(60);
    let mut finished = test_record(Uuid::new_v4());
    finished.rollout.stage = crus_core::rollout::Stage::Finished;
    finished.rollout.completed = true;
    version_1_file(&path, &[(&older, 3), (&newer, 5), (&finished, 7)]);

    let store = SqliteStore::open(&path).unwrap();
    let version: i64 = raw(&path)
        .query_row("SELECT schema_version FROM meta", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    for record in [&older, &newer, &finished] {
        assert_eq!(
            store.get_status(record.upgrade_id()).await.unwrap(),
            Some(record.status_json().unwrap())
        );
    }
    let mut expected = [older.clone(), newer.clone(), finished.clone()];
    expected.sort_by(crus_core::store::listing_order);
    let expected: Vec<String> = expected
        .iter()
        .map(|record| record.status_json().unwrap())
        .collect();
    assert_eq!(store.list_statuses().await.unwrap(), expected);
    let unfinished = store.list_unfinished().await.unwrap();
    let mut ids: Vec<Uuid> = unfinished
        .iter()
        .map(|found| found.value.upgrade_id())
        .collect();
    ids.sort();
    let mut wanted = vec![older.upgrade_id(), newer.upgrade_id()];
    wanted.sort();
    assert_eq!(ids, wanted);
    // Revisions and the counter are kept.
    assert_eq!(
        store
            .get(newer.upgrade_id())
            .await
            .unwrap()
            .unwrap()
            .revision
            .0,
        5
    );
    let created = store.create(&test_record(Uuid::new_v4())).await.unwrap();
    assert_eq!(created.0, 11);
    // And it opens again as version 2, migrated once.
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.list_statuses().await.unwrap().len(), 4);
}

/// `record` as a session that read its starting group: `nodes` pending.
fn snapshotted(mut record: SessionRecord, nodes: &[&str]) -> SessionRecord {
    record.rollout.stage = crus_core::rollout::Stage::PrepareGroups;
    record.rollout.nodes = nodes
        .iter()
        .map(|node| crus_core::rollout::NodeRecord::pending(NodeId::from(*node), Timestamp::EPOCH))
        .collect();
    record
}

#[tokio::test]
async fn a_version_4_file_opens_with_no_options_and_keeps_the_ones_set_since() {
    let (_directory, path) = database();
    let running = snapshotted(test_record(Uuid::new_v4()), &["n1"]);
    {
        let store = SqliteStore::open(&path).unwrap();
        store.create(&running).await.unwrap();
    }
    // What the release before options wrote: this schema without them.
    raw(&path)
        .execute_batch("DROP TABLE options; UPDATE meta SET schema_version = 4;")
        .unwrap();

    let store = SqliteStore::open(&path).unwrap();
    let version: i64 = raw(&path)
        .query_row("SELECT schema_version FROM meta", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let stored = store.get(running.upgrade_id()).await.unwrap().unwrap();
    assert_eq!(stored.value, running);
    assert_eq!(store.get_options().await.unwrap(), None);
    let options = crus_core::options::ServerOptions {
        log_level: Some("debug".to_string()),
        ..Default::default()
    };
    let written = store.put_options(&options, None).await.unwrap();
    assert!(written > stored.revision);
    drop(store);
    // Kept across a restart.
    let store = SqliteStore::open(&path).unwrap();
    let read = store.get_options().await.unwrap().unwrap();
    assert_eq!((read.value, read.revision), (options, written));
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn damaged_options_are_reported_naming_the_table() {
    let (_directory, path) = database();
    drop(SqliteStore::open(&path).unwrap());
    raw(&path)
        .execute(
            "INSERT INTO options (id, revision, options) VALUES (1, 1, '{')",
            [],
        )
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let error = store.get_options().await.unwrap_err().to_string();
    assert!(
        error.contains("server options") && error.contains("DELETE FROM options"),
        "{error}"
    );
}

#[tokio::test]
async fn a_version_2_file_is_migrated_and_its_unfinished_sessions_hold_their_nodes() {
    let (_directory, path) = database();
    let running = snapshotted(test_record(Uuid::new_v4()), &["n1", "n2"]);
    let mut finished = snapshotted(test_record(Uuid::new_v4()), &["n3"]);
    finished.rollout.stage = crus_core::rollout::Stage::Finished;
    finished.rollout.completed = true;
    {
        // What the release before claims wrote: this schema without them.
        let store = SqliteStore::open(&path).unwrap();
        store.create(&running).await.unwrap();
        store.create(&finished).await.unwrap();
    }
    // Version 2 kept each record whole and had no node rows either.
    let file = raw(&path);
    file.execute_batch(
        "DROP TABLE claims; DROP TABLE session_nodes; DROP TABLE options; \
         UPDATE meta SET schema_version = 2;",
    )
    .unwrap();
    for record in [&running, &finished] {
        file.execute(
            "UPDATE sessions SET record = ?2 WHERE upgrade_id = ?1",
            [
                record.upgrade_id().to_string(),
                serde_json::to_string(record).unwrap(),
            ],
        )
        .unwrap();
    }
    drop(file);

    let store = SqliteStore::open(&path).unwrap();
    let version: i64 = raw(&path)
        .query_row("SELECT schema_version FROM meta", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    // The sessions load as they were, and the unfinished one resumes holding its nodes.
    assert_eq!(
        store
            .get(running.upgrade_id())
            .await
            .unwrap()
            .unwrap()
            .value,
        running
    );
    assert_eq!(store.list().await.unwrap().len(), 2);
    let claims = store.claims().await.unwrap();
    assert_eq!(
        claims.into_iter().collect::<Vec<_>>(),
        vec![
            (NodeId::from("n1"), running.upgrade_id()),
            (NodeId::from("n2"), running.upgrade_id()),
        ]
    );
    let refused = store
        .create_claiming(
            &test_record(Uuid::new_v4()),
            &[NodeId::from("n2"), NodeId::from("n3")],
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.holder, running.upgrade_id());
    assert_eq!(refused.nodes, vec![NodeId::from("n2")]);
    // The finished session's node is free.
    store
        .create_claiming(&test_record(Uuid::new_v4()), &[NodeId::from("n3")])
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_claiming_creation_is_one_transaction_a_refused_one_stores_nothing() {
    let store = SqliteStore::open_in_memory().unwrap();
    let first = test_record(Uuid::new_v4());
    store
        .create_claiming(&first, &[NodeId::from("a"), NodeId::from("b")])
        .await
        .unwrap()
        .unwrap();
    let second = test_record(Uuid::new_v4());
    let refused = store
        .create_claiming(&second, &[NodeId::from("c"), NodeId::from("b")])
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.holder, first.upgrade_id());
    assert!(store.get(second.upgrade_id()).await.unwrap().is_none());
    assert!(
        store
            .get_status(second.upgrade_id())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .claims()
            .await
            .unwrap()
            .contains_key(&NodeId::from("c"))
    );
}

#[tokio::test]
async fn a_version_1_file_with_a_damaged_record_is_not_migrated() {
    let (_directory, path) = database();
    let healthy = test_record(Uuid::new_v4());
    version_1_file(&path, &[(&healthy, 1)]);
    raw(&path)
        .execute(
            "INSERT INTO sessions (upgrade_id, revision, record) VALUES ('broken', 2, '{\"rollout\"')",
            [],
        )
        .unwrap();

    let message = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(message.contains("broken"), "{message}");
    assert!(message.contains("damaged"), "{message}");
    // Nothing changed: the file is still at version 1, for a fixed build to migrate.
    let version: i64 = raw(&path)
        .query_row("SELECT schema_version FROM meta", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 1);
}

#[tokio::test]
async fn statuses_are_written_and_removed_with_their_records() {
    let store = SqliteStore::open_in_memory().unwrap();
    let record = test_record(Uuid::new_v4());
    let created = store.create(&record).await.unwrap();
    assert_eq!(
        store.list_statuses().await.unwrap(),
        vec![record.status_json().unwrap()]
    );
    let mut changed = record.clone();
    changed.desired.delete = true;
    let updated = store.update(&changed, created).await.unwrap();
    assert_eq!(
        store.get_status(record.upgrade_id()).await.unwrap(),
        Some(changed.status_json().unwrap())
    );
    store.delete(record.upgrade_id(), updated).await.unwrap();
    assert!(store.list_statuses().await.unwrap().is_empty());
    assert!(
        store
            .get_status(record.upgrade_id())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_kept_listing_follows_writes_of_another_store_on_the_file() {
    let (_directory, path) = database();
    let reading = SqliteStore::open(&path).unwrap();
    let writing = SqliteStore::open(&path).unwrap();
    let record = test_record(Uuid::new_v4());
    assert_eq!(&*reading.list_statuses_json().await.unwrap(), "[]");
    let created = writing.create(&record).await.unwrap();
    let once = format!("[{}]", record.status_json().unwrap());
    assert_eq!(&*reading.list_statuses_json().await.unwrap(), once);
    // Asked again with nothing written: the same listing, kept.
    assert_eq!(&*reading.list_statuses_json().await.unwrap(), once);
    let mut changed = record.clone();
    changed.desired.delete = true;
    let updated = writing.update(&changed, created).await.unwrap();
    assert_eq!(
        &*reading.list_statuses_json().await.unwrap(),
        format!("[{}]", changed.status_json().unwrap())
    );
    writing.delete(record.upgrade_id(), updated).await.unwrap();
    assert_eq!(&*reading.list_statuses_json().await.unwrap(), "[]");
}

#[tokio::test]
async fn one_exclusive_store_per_file_naming_the_holder_and_free_once_dropped() {
    let (_directory, path) = database();
    let first = SqliteStore::open_exclusive(&path).unwrap();
    let message = SqliteStore::open_exclusive(&path).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    assert!(
        message.contains(&SqliteStore::lock_file(&path).display().to_string()),
        "{message}"
    );
    drop(first);
    let again = SqliteStore::open_exclusive(&path).unwrap();
    again.ping().await.unwrap();
}

#[tokio::test]
async fn an_empty_file_is_refused_not_taken_for_a_new_database() {
    let (_directory, path) = database();
    std::fs::write(&path, b"").unwrap();
    let message = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(message.contains("is empty (0 bytes)"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left as it was");
}

#[tokio::test]
async fn a_damaged_status_row_is_answered_rebuilt_from_the_record() {
    let (_directory, path) = database();
    let store = SqliteStore::open(&path).unwrap();
    let id = Uuid::new_v4();
    let record = test_record(id);
    store.create(&record).await.unwrap();
    let expected = record.status_json().unwrap();
    raw(&path)
        .execute("UPDATE statuses SET status = '{}'", [])
        .unwrap();
    assert_eq!(store.get_status(id).await.unwrap(), Some(expected.clone()));
    assert_eq!(store.list_statuses().await.unwrap(), vec![expected.clone()]);
    assert_eq!(
        &*store.list_statuses_json().await.unwrap(),
        format!("[{expected}]")
    );

    // Another session's status in the row is damage too.
    let other = test_record(Uuid::new_v4()).status_json().unwrap();
    raw(&path)
        .execute("UPDATE statuses SET status = ?1", [&other])
        .unwrap();
    assert_eq!(store.get_status(id).await.unwrap(), Some(expected));

    // With the record damaged as well, the session is reported, never served.
    raw(&path)
        .execute("UPDATE sessions SET record = '{}'", [])
        .unwrap();
    let message = store.get_status(id).await.unwrap_err().to_string();
    assert!(message.contains(&id.to_string()), "{message}");
    assert!(message.contains("cannot be read"), "{message}");
}

#[tokio::test]
async fn writes_to_a_file_removed_or_replaced_under_the_store_fail_and_say_so() {
    let (directory, path) = database();
    let store = SqliteStore::open(&path).unwrap();
    let kept = test_record(Uuid::new_v4());
    let revision = store.create(&kept).await.unwrap();
    store.check_writable().await.unwrap();

    // Replaced: another file now at the path (a restore, a copy over it).
    let copy = directory.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::rename(&copy, &path).unwrap();
    let error = store.update(&kept, revision).await.unwrap_err();
    assert!(matches!(error, Error::Other { .. }), "{error:?}");
    assert!(error.to_string().contains("was replaced"), "{error}");
    let error = store
        .create(&test_record(Uuid::new_v4()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("was replaced"), "{error}");
    assert!(store.check_writable().await.is_err());

    // Removed with its directory: nothing is taken as written.
    let (directory, path) = database();
    let store = SqliteStore::open(&path).unwrap();
    let kept = test_record(Uuid::new_v4());
    let revision = store.create(&kept).await.unwrap();
    std::fs::remove_dir_all(directory.path()).unwrap();
    let error = store
        .create(&test_record(Uuid::new_v4()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is gone"), "{error}");
    assert!(store.update(&kept, revision).await.is_err());
    assert!(store.delete(kept.upgrade_id(), revision).await.is_err());
    let error = store.check_writable().await.unwrap_err();
    assert!(error.to_string().contains("is gone"), "{error}");
}

#[tokio::test]
async fn an_immutable_file_refuses_writes_until_made_writable_again() {
    let (_directory, path) = database();
    let store = SqliteStore::open(&path).unwrap();
    let kept = test_record(Uuid::new_v4());
    let revision = store.create(&kept).await.unwrap();
    // The file and its WAL, not the `-shm` index: SQLite maps that into
    // memory, and a page fault on an immutable mapping kills the process
    // with SIGBUS, which no store can answer.
    let files: Vec<String> = ["", "-wal"]
        .iter()
        .map(|suffix| format!("{}{suffix}", path.display()))
        .filter(|file| Path::new(file).exists())
        .collect();
    let immutable = std::process::Command::new("chattr")
        .arg("+i")
        .args(&files)
        .status()
        .is_ok_and(|status| status.success());
    if !immutable {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .args(&files)
            .status();
        eprintln!("skipped: chattr +i is not supported here");
        return;
    }
    let refused = store.update(&kept, revision).await;
    let probe = store.check_writable().await;
    let undone = std::process::Command::new("chattr")
        .arg("-i")
        .args(&files)
        .status()
        .unwrap();
    assert!(undone.success());
    let error = refused.unwrap_err();
    assert!(matches!(error, Error::Other { .. }), "{error:?}");
    assert!(probe.is_err());
    store.check_writable().await.unwrap();
    let current = store.get(kept.upgrade_id()).await.unwrap().unwrap();
    assert_eq!(current.revision, revision, "the refused write left nothing");
    store.update(&kept, revision).await.unwrap();
}

/// A session crus 0.1 stored before a controller took it up: its record and
/// its status say `CREATED`, a state CRUS never answered.
#[tokio::test]
async fn a_session_stored_as_created_is_served_as_updating() {
    let (_directory, path) = database();
    let id = Uuid::new_v4();
    {
        let store = SqliteStore::open(&path).unwrap();
        store.create(&test_record(id)).await.unwrap();
    }
    {
        // Rewritten as crus 0.1 wrote it.
        let connection = raw(&path);
        for table in ["sessions SET record", "statuses SET status"] {
            let column = table.rsplit(' ').next().unwrap();
            connection
                .execute(
                    &format!(
                        "UPDATE {table} = replace({column}, '\"state\":\"UPDATING\"', '\"state\":\"CREATED\"')"
                    ),
                    [],
                )
                .unwrap();
        }
        let status: String = connection
            .query_row("SELECT status FROM statuses", [], |row| row.get(0))
            .unwrap();
        assert!(status.contains(r#""state":"CREATED""#), "{status}");
    }
    let store = SqliteStore::open(&path).unwrap();
    let status = store.get_status(id).await.unwrap().unwrap();
    assert!(status.contains(r#""state":"UPDATING""#), "{status}");
    let listing = store.list_statuses_json().await.unwrap();
    assert!(!listing.contains("CREATED"), "{listing}");
    // The record still loads; the rollout runs it as UPDATING.
    let record = store.get(id).await.unwrap().unwrap().value;
    assert_eq!(record.status().state, crus_core::SessionState::Updating);
    assert_eq!(
        Rollout::resume(record.rollout).state().state,
        crus_core::SessionState::Updating
    );
}
