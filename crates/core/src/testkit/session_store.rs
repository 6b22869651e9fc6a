//! Conformance suite for [`SessionStore`] implementations.
//!
//! The caller supplies `make_record`, which builds a valid record for a given
//! upgrade id (the suite does not know how to build a rollout state); the
//! suite changes a record by flipping `desired.delete`. Every record gets a
//! fresh id, and each check deletes what it created, so the suite can run
//! against a shared store (etcd) that holds other records.

use std::sync::Arc;

use futures::future::join_all;
use uuid::Uuid;

use super::{CallResultExt, ConformanceError, expect_error};
use crate::error::Error;
use crate::rollout::Stage;
use crate::session::SessionState;
use crate::store::{Revision, SessionRecord, SessionStore, Versioned};

/// Builds a valid record whose `upgrade_id()` is the id given.
pub type MakeRecord<'a> = &'a (dyn Fn(Uuid) -> SessionRecord + Sync);

/// How many writers race in the concurrency checks.
const CONCURRENT_WRITERS: usize = 8;

/// Runs every session store check in turn, stopping at the first failure.
///
/// [`concurrent_updates_from_tasks_one_wins`] is not included: it needs the
/// store in an [`Arc`]; call it on its own.
pub async fn run_all(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    create_then_get(store, make_record).await?;
    get_missing_is_none(store, make_record).await?;
    duplicate_create_conflicts(store, make_record).await?;
    update_with_current_revision(store, make_record).await?;
    update_with_stale_revision_conflicts(store, make_record).await?;
    update_missing_is_not_found(store, make_record).await?;
    list_contains_created(store, make_record).await?;
    delete_with_stale_revision_conflicts(store, make_record).await?;
    delete_with_current_revision_removes(store, make_record).await?;
    delete_missing_is_ok(store, make_record).await?;
    recreate_after_delete_gets_larger_revision(store, make_record).await?;
    concurrent_updates_one_wins(store, make_record).await?;
    unfinished_lists_only_unfinished(store, make_record).await?;
    write_check_changes_nothing(store, make_record).await?;
    super::session_claims::run_all(store, make_record).await?;
    super::store_options::run_all(store, make_record).await?;
    super::session_nodes::run_all(store, make_record).await?;
    super::session_node_pages::run_all(store, make_record).await?;
    super::session_step_lists::run_all(store, make_record).await?;
    super::session_idempotency::run_all(store, make_record).await?;
    Ok(())
}

/// A created record reads back equal, at the revision `create` returned.
pub async fn create_then_get(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::create_then_get";
    let record = new_record(CHECK, make_record)?;
    let revision = create(CHECK, store, &record).await?;
    let result = expect_stored(CHECK, store, &record, revision, "after create").await;
    forget(store, record.upgrade_id()).await;
    result
}

/// Reading an id never created answers `None`.
pub async fn get_missing_is_none(
    store: &dyn SessionStore,
    _make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::get_missing_is_none";
    let id = Uuid::new_v4();
    let found = get(CHECK, store, id).await?;
    match found {
        None => Ok(()),
        Some(found) => Err(ConformanceError::new(
            CHECK,
            format!(
                "get({id}) of an id never created should answer None, but answered {}",
                describe(&found)
            ),
        )),
    }
}

/// Creating an id that exists is [`Error::Conflict`] and keeps the first record.
pub async fn duplicate_create_conflicts(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::duplicate_create_conflicts";
    let record = new_record(CHECK, make_record)?;
    let revision = create(CHECK, store, &record).await?;
    let result = async {
        expect_conflict(
            CHECK,
            format!("create({}) of an id that exists", record.upgrade_id()),
            store.create(&changed(&record)).await,
        )?;
        expect_stored(
            CHECK,
            store,
            &record,
            revision,
            "after a refused second create",
        )
        .await
    }
    .await;
    forget(store, record.upgrade_id()).await;
    result
}

/// An update at the current revision succeeds with a larger revision, and is read back.
pub async fn update_with_current_revision(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::update_with_current_revision";
    let record = new_record(CHECK, make_record)?;
    let created = create(CHECK, store, &record).await?;
    let result = async {
        let changed = changed(&record);
        let updated = update(CHECK, store, &changed, created).await?;
        expect_stored(CHECK, store, &changed, updated, "after update").await
    }
    .await;
    forget(store, record.upgrade_id()).await;
    result
}

/// An update at a revision that is no longer current is [`Error::Conflict`]
/// and changes nothing.
pub async fn update_with_stale_revision_conflicts(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::update_with_stale_revision_conflicts";
    let record = new_record(CHECK, make_record)?;
    let created = create(CHECK, store, &record).await?;
    let result = async {
        let changed = changed(&record);
        let updated = update(CHECK, store, &changed, created).await?;
        expect_conflict(
            CHECK,
            format!(
                "update({}) at the stale revision {} (current {})",
                record.upgrade_id(),
                created.0,
                updated.0
            ),
            store.update(&record, created).await,
        )?;
        expect_stored(
            CHECK,
            store,
            &changed,
            updated,
            "after a refused stale update",
        )
        .await
    }
    .await;
    forget(store, record.upgrade_id()).await;
    result
}

/// Updating a record that does not exist is [`Error::NotFound`] and creates nothing.
pub async fn update_missing_is_not_found(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::update_missing_is_not_found";
    let record = new_record(CHECK, make_record)?;
    let id = record.upgrade_id();
    let result = store.update(&record, Revision(1)).await;
    let created_by_mistake = result.is_ok();
    let outcome = expect_error(
        CHECK,
        format!("update({id}) of a record never created"),
        result,
        "NotFound",
        |error| matches!(error, Error::NotFound { .. }),
    )
    .and(expect_absent(CHECK, store, id, "after update of a missing record").await);
    if created_by_mistake {
        forget(store, id).await;
    }
    outcome
}

/// `list` includes every created record, once, at its current revision.
pub async fn list_contains_created(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::list_contains_created";
    let mut created = Vec::new();
    let result = async {
        for _ in 0..3 {
            let record = new_record(CHECK, make_record)?;
            let revision = create(CHECK, store, &record).await?;
            created.push(Versioned {
                value: record,
                revision,
            });
        }
        let listed = store.list().await.or_fail(CHECK, "list()")?;
        for expected in &created {
            let id = expected.value.upgrade_id();
            let matching: Vec<&Versioned<SessionRecord>> = listed
                .iter()
                .filter(|found| found.value.upgrade_id() == id)
                .collect();
            match matching.as_slice() {
                [found] if *found == expected => {}
                [] => {
                    return Err(ConformanceError::new(
                        CHECK,
                        format!(
                            "list() should include the created record {id}, but lists {} records without it",
                            listed.len()
                        ),
                    ));
                }
                found => {
                    return Err(ConformanceError::new(
                        CHECK,
                        format!(
                            "list() should include {} exactly once, but lists it as {}",
                            describe(expected),
                            found
                                .iter()
                                .map(|found| describe(found))
                                .collect::<Vec<_>>()
                                .join(" and ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
    .await;
    for record in &created {
        forget(store, record.value.upgrade_id()).await;
    }
    result
}

/// A delete at a revision that is no longer current is [`Error::Conflict`]
/// and keeps the record.
pub async fn delete_with_stale_revision_conflicts(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::delete_with_stale_revision_conflicts";
    let record = new_record(CHECK, make_record)?;
    let id = record.upgrade_id();
    let created = create(CHECK, store, &record).await?;
    let result = async {
        let changed = changed(&record);
        let updated = update(CHECK, store, &changed, created).await?;
        expect_conflict(
            CHECK,
            format!(
                "delete({id}) at the stale revision {} (current {})",
                created.0, updated.0
            ),
            store.delete(id, created).await,
        )?;
        expect_stored(
            CHECK,
            store,
            &changed,
            updated,
            "after a refused stale delete",
        )
        .await
    }
    .await;
    forget(store, id).await;
    result
}

/// A delete at the current revision removes the record from `get` and
/// `list`; deleting it again succeeds.
pub async fn delete_with_current_revision_removes(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::delete_with_current_revision_removes";
    let record = new_record(CHECK, make_record)?;
    let id = record.upgrade_id();
    let revision = create(CHECK, store, &record).await?;
    let result = async {
        delete(CHECK, store, id, revision, "").await?;
        expect_absent(CHECK, store, id, "after delete").await?;
        let listed = store.list().await.or_fail(CHECK, "list() after delete")?;
        if let Some(found) = listed.iter().find(|found| found.value.upgrade_id() == id) {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "list() after delete should not include {id}, but lists {}",
                    describe(found)
                ),
            ));
        }
        delete(CHECK, store, id, revision, " again").await
    }
    .await;
    forget(store, id).await;
    result
}

/// Deleting an id never created succeeds.
pub async fn delete_missing_is_ok(
    store: &dyn SessionStore,
    _make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::delete_missing_is_ok";
    delete(
        CHECK,
        store,
        Uuid::new_v4(),
        Revision(1),
        " of an id never created",
    )
    .await
}

/// A record created again after its deletion gets a revision larger than any
/// it had before ("every successful write yields a new, larger one"), so a
/// writer still holding an old revision cannot overwrite the new record.
pub async fn recreate_after_delete_gets_larger_revision(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::recreate_after_delete_gets_larger_revision";
    let record = new_record(CHECK, make_record)?;
    let id = record.upgrade_id();
    let created = create(CHECK, store, &record).await?;
    let result = async {
        let changed = changed(&record);
        let updated = update(CHECK, store, &changed, created).await?;
        delete(CHECK, store, id, updated, "").await?;
        let recreated = store
            .create(&record)
            .await
            .or_fail(CHECK, format!("create({id}) again after delete"))?;
        if recreated <= updated {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "create({id}) after delete should yield a revision larger than the record's last one {}, but yielded {}",
                    updated.0, recreated.0
                ),
            ));
        }
        for stale in [created, updated] {
            expect_conflict(
                CHECK,
                format!(
                    "update({id}) at revision {} from before the delete (current {})",
                    stale.0, recreated.0
                ),
                store.update(&changed, stale).await,
            )?;
        }
        expect_stored(CHECK, store, &record, recreated, "after create again").await
    }
    .await;
    forget(store, id).await;
    result
}

/// Several updates issued together at the same revision: exactly one
/// succeeds, the others are [`Error::Conflict`], and the winner's write is
/// what is read back.
///
/// The writes are polled together from one task, so they reach a store that
/// does IO concurrently; [`concurrent_updates_from_tasks_one_wins`] races them
/// on separate tasks.
pub async fn concurrent_updates_one_wins(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::concurrent_updates_one_wins";
    let record = new_record(CHECK, make_record)?;
    let id = record.upgrade_id();
    let created = create(CHECK, store, &record).await?;
    let changed = changed(&record);
    let results = join_all((0..CONCURRENT_WRITERS).map(|_| store.update(&changed, created))).await;
    let outcome = one_winner(CHECK, store, &changed, created, results).await;
    forget(store, id).await;
    outcome
}

/// Like [`concurrent_updates_one_wins`], with each writer on its own tokio
/// task (on a multi-thread runtime they run in parallel), so a store that is
/// not atomic across threads is caught.
pub async fn concurrent_updates_from_tasks_one_wins(
    store: Arc<dyn SessionStore>,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::concurrent_updates_from_tasks_one_wins";
    let record = new_record(CHECK, make_record)?;
    let id = record.upgrade_id();
    let created = create(CHECK, store.as_ref(), &record).await?;
    let changed = changed(&record);
    // Writers wait for each other at the barrier, so they start as close together as possible.
    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT_WRITERS));
    let writers: Vec<_> = (0..CONCURRENT_WRITERS)
        .map(|_| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            let changed = changed.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.update(&changed, created).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(writers.len());
    let mut outcome = Ok(());
    for writer in writers {
        match writer.await {
            Ok(result) => results.push(result),
            Err(error) => {
                outcome = Err(ConformanceError::new(
                    CHECK,
                    format!("a writer task did not finish: {error}"),
                ));
            }
        }
    }
    if outcome.is_ok() {
        outcome = one_winner(CHECK, store.as_ref(), &changed, created, results).await;
    }
    forget(store.as_ref(), id).await;
    outcome
}

/// Checks the results of racing updates at `expected`: one success, the rest
/// conflicts, and the winner's revision read back.
async fn one_winner(
    check: &'static str,
    store: &dyn SessionStore,
    changed: &SessionRecord,
    expected: Revision,
    results: Vec<crate::Result<Revision>>,
) -> Result<(), ConformanceError> {
    let id = changed.upgrade_id();
    let summary = results
        .iter()
        .map(|result| match result {
            Ok(revision) => format!("Ok({})", revision.0),
            Err(error) => format!("Err({error})"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut winners = Vec::new();
    for result in results {
        match result {
            Ok(revision) => winners.push(revision),
            Err(Error::Conflict { .. }) => {}
            Err(error) => {
                return Err(ConformanceError {
                    check,
                    detail: format!(
                        "{} concurrent update({id}) at revision {} should each succeed or fail with Conflict, \
                         but one failed with {error} ({error:?}); all answered: {summary}",
                        CONCURRENT_WRITERS, expected.0
                    ),
                    error: Some(error),
                });
            }
        }
    }
    let [winner] = winners.as_slice() else {
        return Err(ConformanceError::new(
            check,
            format!(
                "of {} concurrent update({id}) at revision {}, exactly one should succeed, but {} did: {summary}",
                CONCURRENT_WRITERS,
                expected.0,
                winners.len()
            ),
        ));
    };
    if *winner <= expected {
        return Err(ConformanceError::new(
            check,
            format!(
                "the winning update({id}) should yield a revision larger than {}, but yielded {}",
                expected.0, winner.0
            ),
        ));
    }
    expect_stored(
        check,
        store,
        changed,
        *winner,
        "after the concurrent updates",
    )
    .await
}

/// `list_unfinished` includes an unfinished record at its current revision
/// and leaves out a finished one, including one that finished by an update.
pub async fn unfinished_lists_only_unfinished(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::unfinished_lists_only_unfinished";
    let running = new_record(CHECK, make_record)?;
    let finished = finish(new_record(CHECK, make_record)?);
    let result = async {
        if running.is_finished() {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "make_record({}) should build an unfinished record, but its rollout is finished",
                    running.upgrade_id()
                ),
            ));
        }
        let running_revision = create(CHECK, store, &running).await?;
        create(CHECK, store, &finished).await?;
        let listed = store
            .list_unfinished()
            .await
            .or_fail(CHECK, "list_unfinished()")?;
        let expected = Versioned {
            value: running.clone(),
            revision: running_revision,
        };
        if !listed.contains(&expected) {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "list_unfinished() should include the unfinished {}, but lists {}",
                    describe(&expected),
                    describe_all(&listed)
                ),
            ));
        }
        if listed.iter().any(|found| found.value.upgrade_id() == finished.upgrade_id()) {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "list_unfinished() should leave out the finished record {}, but lists it",
                    finished.upgrade_id()
                ),
            ));
        }
        update(CHECK, store, &finish(running.clone()), running_revision).await?;
        let listed = store
            .list_unfinished()
            .await
            .or_fail(CHECK, "list_unfinished() after an update finished a record")?;
        if listed.iter().any(|found| found.value.upgrade_id() == running.upgrade_id()) {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "list_unfinished() should leave out {} once an update finished it, but lists {}",
                    running.upgrade_id(),
                    describe_all(&listed)
                ),
            ));
        }
        Ok(())
    }
    .await;
    forget(store, running.upgrade_id()).await;
    forget(store, finished.upgrade_id()).await;
    result
}

/// On a healthy store, `check_writable()` succeeds and changes no record
/// (not even its revision): readiness probes call it while writes fail.
pub async fn write_check_changes_nothing(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_store::write_check_changes_nothing";
    let record = new_record(CHECK, make_record)?;
    let revision = create(CHECK, store, &record).await?;
    let result = async {
        store
            .check_writable()
            .await
            .or_fail(CHECK, "check_writable() on a healthy store")?;
        expect_stored(CHECK, store, &record, revision, "after check_writable()").await
    }
    .await;
    forget(store, record.upgrade_id()).await;
    result
}

/// `record` with its rollout finished, as the controller leaves a session
/// that is done.
pub(super) fn finish(mut record: SessionRecord) -> SessionRecord {
    record.rollout.stage = Stage::Finished;
    record.rollout.completed = true;
    record.rollout.state = SessionState::Ready;
    record
}

fn describe_all(records: &[Versioned<SessionRecord>]) -> String {
    if records.is_empty() {
        return "nothing".to_string();
    }
    records.iter().map(describe).collect::<Vec<_>>().join(", ")
}

/// A record built by `make_record` for a fresh id, checked to carry that id.
pub(super) fn new_record(
    check: &'static str,
    make_record: MakeRecord<'_>,
) -> Result<SessionRecord, ConformanceError> {
    let id = Uuid::new_v4();
    let record = make_record(id);
    if record.upgrade_id() != id {
        return Err(ConformanceError::new(
            check,
            format!(
                "make_record({id}) should build a record with that upgrade id, but built one with {}",
                record.upgrade_id()
            ),
        ));
    }
    Ok(record)
}

/// `record` with the operator's delete request flipped: a different value with the same id.
pub(super) fn changed(record: &SessionRecord) -> SessionRecord {
    let mut changed = record.clone();
    changed.desired.delete = !changed.desired.delete;
    changed
}

fn describe(found: &Versioned<SessionRecord>) -> String {
    format!(
        "record {} at revision {} (desired {:?})",
        found.value.upgrade_id(),
        found.revision.0,
        found.value.desired
    )
}

pub(super) async fn create(
    check: &'static str,
    store: &dyn SessionStore,
    record: &SessionRecord,
) -> Result<Revision, ConformanceError> {
    store.create(record).await.or_fail(
        check,
        format!("create({}) of a new id", record.upgrade_id()),
    )
}

async fn get(
    check: &'static str,
    store: &dyn SessionStore,
    id: Uuid,
) -> Result<Option<Versioned<SessionRecord>>, ConformanceError> {
    store.get(id).await.or_fail(check, format!("get({id})"))
}

pub(super) async fn update(
    check: &'static str,
    store: &dyn SessionStore,
    record: &SessionRecord,
    expected: Revision,
) -> Result<Revision, ConformanceError> {
    let id = record.upgrade_id();
    let call = format!("update({id}) at its current revision {}", expected.0);
    let revision = store.update(record, expected).await.or_fail(check, &call)?;
    if revision <= expected {
        return Err(ConformanceError::new(
            check,
            format!(
                "{call} should yield a larger revision, but yielded {}",
                revision.0
            ),
        ));
    }
    Ok(revision)
}

pub(super) async fn delete(
    check: &'static str,
    store: &dyn SessionStore,
    id: Uuid,
    expected: Revision,
    when: &str,
) -> Result<(), ConformanceError> {
    store.delete(id, expected).await.or_fail(
        check,
        format!("delete({id}) at revision {}{when}", expected.0),
    )
}

/// Checks that `get` answers exactly `expected` at `revision`.
async fn expect_stored(
    check: &'static str,
    store: &dyn SessionStore,
    expected: &SessionRecord,
    revision: Revision,
    when: &str,
) -> Result<(), ConformanceError> {
    let id = expected.upgrade_id();
    let wanted = Versioned {
        value: expected.clone(),
        revision,
    };
    match get(check, store, id).await? {
        Some(found) if found == wanted => Ok(()),
        Some(found) if found.revision == revision => Err(ConformanceError::new(
            check,
            format!(
                "get({id}) {when} should answer the record written at revision {}, \
                 but answered a different value at that revision: {found:?}, expected {wanted:?}",
                revision.0
            ),
        )),
        Some(found) => Err(ConformanceError::new(
            check,
            format!(
                "get({id}) {when} should answer {}, but answered {}",
                describe(&wanted),
                describe(&found)
            ),
        )),
        None => Err(ConformanceError::new(
            check,
            format!(
                "get({id}) {when} should answer {}, but answered None",
                describe(&wanted)
            ),
        )),
    }
}

async fn expect_absent(
    check: &'static str,
    store: &dyn SessionStore,
    id: Uuid,
    when: &str,
) -> Result<(), ConformanceError> {
    match get(check, store, id).await? {
        None => Ok(()),
        Some(found) => Err(ConformanceError::new(
            check,
            format!(
                "get({id}) {when} should answer None, but answered {}",
                describe(&found)
            ),
        )),
    }
}

fn expect_conflict<T: std::fmt::Debug>(
    check: &'static str,
    call: String,
    result: crate::Result<T>,
) -> Result<(), ConformanceError> {
    expect_error(check, call, result, "Conflict", |error| {
        matches!(error, Error::Conflict { .. })
    })
}

/// Best effort: removes a record a check created, whatever its revision.
pub(super) async fn forget(store: &dyn SessionStore, id: Uuid) {
    let outcome = match store.get(id).await {
        Ok(Some(found)) => store.delete(id, found.revision).await,
        Ok(None) => Ok(()),
        Err(error) => Err(error),
    };
    if let Err(error) = outcome {
        tracing::warn!(%error, %id, "could not delete a conformance record");
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::error::Result;
    use crate::rollout::{Rollout, RolloutPolicy};
    use crate::session::SessionSpec;
    use crate::store::MemoryStore;
    use crate::testkit::test_support::{ExpectFailure, lock};
    use crate::time::Timestamp;

    /// The one place that builds a valid record for the tests below (and
    /// the status view suite's).
    pub(in crate::testkit) fn test_record(id: Uuid) -> SessionRecord {
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
            desired: crate::store::Desired::default(),
        }
    }

    #[tokio::test]
    async fn the_memory_store_passes() -> Result<(), Box<dyn std::error::Error>> {
        let store = MemoryStore::new();
        run_all(&store, &test_record).await?;
        // Every check cleans up after itself.
        assert!(store.list().await?.is_empty());
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_memory_store_passes_racing_tasks() -> Result<(), ConformanceError> {
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
        for _ in 0..20 {
            concurrent_updates_from_tasks_one_wins(Arc::clone(&store), &test_record).await?;
        }
        Ok(())
    }

    /// Ways the fake can break the contract, to prove the suite notices.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Bug {
        /// Updates ignore the expected revision (last writer wins).
        NoRevisionCheck,
        /// Revisions count per record from 1, so a recreated record reuses old ones.
        PerRecordRevisions,
        /// Deleting a missing record is `NotFound`.
        DeleteMissingFails,
        /// Updating a missing record creates it.
        UpdateUpserts,
    }

    /// Records by id, with the revision of their last write.
    type Records = HashMap<Uuid, (SessionRecord, Revision)>;

    /// A store with one bug, otherwise like `MemoryStore`.
    #[derive(Debug)]
    struct BuggyStore {
        bug: Bug,
        inner: Mutex<(u64, Records)>,
    }

    impl BuggyStore {
        fn new(bug: Bug) -> Self {
            BuggyStore {
                bug,
                inner: Mutex::new((0, HashMap::new())),
            }
        }
    }

    #[async_trait]
    impl SessionStore for BuggyStore {
        async fn create(&self, record: &SessionRecord) -> Result<Revision> {
            let mut inner = lock(&self.inner);
            let id = record.upgrade_id();
            if inner.1.contains_key(&id) {
                return Err(Error::conflict(format!("session {id}")));
            }
            inner.0 += 1;
            let revision = if self.bug == Bug::PerRecordRevisions {
                Revision(1)
            } else {
                Revision(inner.0)
            };
            inner.1.insert(id, (record.clone(), revision));
            Ok(revision)
        }

        async fn get(&self, upgrade_id: Uuid) -> Result<Option<Versioned<SessionRecord>>> {
            Ok(lock(&self.inner)
                .1
                .get(&upgrade_id)
                .map(|(value, revision)| Versioned {
                    value: value.clone(),
                    revision: *revision,
                }))
        }

        async fn list(&self) -> Result<Vec<Versioned<SessionRecord>>> {
            Ok(lock(&self.inner)
                .1
                .values()
                .map(|(value, revision)| Versioned {
                    value: value.clone(),
                    revision: *revision,
                })
                .collect())
        }

        async fn update(&self, record: &SessionRecord, expected: Revision) -> Result<Revision> {
            let mut inner = lock(&self.inner);
            let id = record.upgrade_id();
            inner.0 += 1;
            let next = inner.0;
            let current = match inner.1.get(&id) {
                None if self.bug == Bug::UpdateUpserts => Revision(0),
                None => return Err(Error::not_found(format!("session {id}"))),
                Some((_, current)) => *current,
            };
            if current != expected && self.bug != Bug::NoRevisionCheck {
                return Err(Error::conflict(format!("session {id}")));
            }
            let revision = if self.bug == Bug::PerRecordRevisions {
                Revision(current.0 + 1)
            } else {
                Revision(next)
            };
            inner.1.insert(id, (record.clone(), revision));
            Ok(revision)
        }

        async fn delete(&self, upgrade_id: Uuid, expected: Revision) -> Result<()> {
            let mut inner = lock(&self.inner);
            match inner.1.get(&upgrade_id) {
                None if self.bug == Bug::DeleteMissingFails => {
                    Err(Error::not_found(format!("session {upgrade_id}")))
                }
                None => Ok(()),
                Some((_, current)) if *current != expected => {
                    Err(Error::conflict(format!("session {upgrade_id}")))
                }
                Some(_) => {
                    inner.1.remove(&upgrade_id);
                    Ok(())
                }
            }
        }
    }

    #[tokio::test]
    async fn each_bug_fails_the_check_that_covers_it() {
        for (bug, failing_check) in [
            (
                Bug::NoRevisionCheck,
                "session_store::update_with_stale_revision_conflicts",
            ),
            (
                Bug::PerRecordRevisions,
                "session_store::recreate_after_delete_gets_larger_revision",
            ),
            (
                Bug::DeleteMissingFails,
                "session_store::delete_with_current_revision_removes",
            ),
            (
                Bug::UpdateUpserts,
                "session_store::update_missing_is_not_found",
            ),
        ] {
            let error = run_all(&BuggyStore::new(bug), &test_record).await.failure();
            assert_eq!(error.check, failing_check, "{bug:?}: {error}");
        }
        let error =
            concurrent_updates_one_wins(&BuggyStore::new(Bug::NoRevisionCheck), &test_record)
                .await
                .failure();
        assert!(
            error
                .detail
                .contains("exactly one should succeed, but 8 did"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_record_with_the_wrong_id_is_refused() {
        let wrong = |_id: Uuid| test_record(Uuid::nil());
        let error = run_all(&MemoryStore::new(), &wrong).await.failure();
        assert!(
            error
                .detail
                .contains("should build a record with that upgrade id"),
            "{error}"
        );
    }

    #[test]
    fn suite_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let store = MemoryStore::new();
        assert_send(&run_all(&store, &test_record));
    }
}
