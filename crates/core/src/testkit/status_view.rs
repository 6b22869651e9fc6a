//! Conformance suite for [`StatusView`] implementations: the statuses a view
//! answers are exactly those of the records its store holds
//! ([`SessionRecord::status_json`]), newest first, and follow every write.
//!
//! A check is given the store to write to and the view to read from (the
//! same value for a store that is its own view, as every store crus ships
//! is). Every check works on fresh ids and removes what it created, so the
//! suite can run against a shared store (etcd) that holds other records.

use uuid::Uuid;

use super::session_nodes::{fresh_nodes, write_delta};
use super::session_store::{MakeRecord, changed, create, delete, forget, new_record, update};
use super::{CallResultExt, ConformanceError};
use crate::session::SessionStatus;
use crate::store::{ChangedNodes, Revision, SessionRecord, SessionStore, StatusView};

/// Runs every status view check in turn, stopping at the first failure.
pub async fn run_all(
    store: &dyn SessionStore,
    view: &dyn StatusView,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    status_follows_the_record(store, view, make_record).await?;
    statuses_list_newest_first(store, view, make_record).await?;
    a_status_counts_the_nodes_of_a_delta(store, view, make_record).await?;
    Ok(())
}

/// `get_status` answers exactly the record's [`SessionRecord::status_json`]
/// (the bytes the API serves) after a create and after an update that
/// changes the status, and `None` once the record is deleted.
pub async fn status_follows_the_record(
    store: &dyn SessionStore,
    view: &dyn StatusView,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "status_view::status_follows_the_record";
    let record = new_record(CHECK, make_record)?;
    let id = record.upgrade_id();
    let created = create(CHECK, store, &record).await?;
    let result = async {
        expect_status(CHECK, view, &record, "after create").await?;
        // A delete request shows as DELETING: the status changes with the record.
        let changed = changed(&record);
        let updated = update(CHECK, store, &changed, created).await?;
        expect_status(CHECK, view, &changed, "after update").await?;
        delete(CHECK, store, id, updated, "").await?;
        match view
            .get_status(id)
            .await
            .or_fail(CHECK, format!("get_status({id}) after delete"))?
        {
            None => Ok(()),
            Some(found) => Err(ConformanceError::new(
                CHECK,
                format!("get_status({id}) after delete should answer None, but answered {found}"),
            )),
        }
    }
    .await;
    forget(store, id).await;
    result
}

/// `list_statuses` answers each record's status once, newest first (the
/// rollout's `created_at`), records created at the same time by id;
/// `list_statuses_json` answers them as one array, up to date after an
/// update and a delete.
pub async fn statuses_list_newest_first(
    store: &dyn SessionStore,
    view: &dyn StatusView,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "status_view::statuses_list_newest_first";
    let mut created = Vec::new();
    let result = async {
        // Created oldest first, so a store that lists in creation order fails.
        for offset in [0, 60, 60, 120] {
            let mut record = new_record(CHECK, make_record)?;
            record.rollout.created_at = record.rollout.created_at + std::time::Duration::from_secs(offset);
            create(CHECK, store, &record).await?;
            created.push(record);
        }
        let mut expected = created.clone();
        expected.sort_by(crate::store::listing_order);
        let listed = view
            .list_statuses()
            .await
            .or_fail(CHECK, "list_statuses()")?;
        let mut ours = Vec::new();
        for json in &listed {
            let status: SessionStatus = serde_json::from_str(json).map_err(|error| {
                ConformanceError::new(
                    CHECK,
                    format!("list_statuses() answered a status that is not a session status ({error}): {json}"),
                )
            })?;
            if created.iter().any(|record| record.upgrade_id() == status.upgrade_id) {
                ours.push((status.upgrade_id, json.as_str()));
            }
        }
        let wanted: Vec<Uuid> = expected.iter().map(SessionRecord::upgrade_id).collect();
        let found: Vec<Uuid> = ours.iter().map(|(id, _)| *id).collect();
        if found != wanted {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "list_statuses() should list the created sessions newest first, ties by id, as {wanted:?}, but listed {found:?}"
                ),
            ));
        }
        for (record, (_, json)) in expected.iter().zip(&ours) {
            let wanted = status_json(CHECK, record)?;
            if *json != wanted {
                return Err(ConformanceError::new(
                    CHECK,
                    format!(
                        "list_statuses() should answer session {}'s status as {wanted}, but answered {json}",
                        record.upgrade_id()
                    ),
                ));
            }
        }
        expect_in_array(CHECK, view, &expected, "").await?;
        // A store that keeps the array between calls must see writes: an
        // update changes one status, a delete removes one.
        let (first, rest) = expected.split_at(1);
        let revision = store
            .get(first[0].upgrade_id())
            .await
            .or_fail(CHECK, "get() of a created record")?
            .map(|found| found.revision)
            .unwrap_or(Revision(0));
        let updated = changed(&first[0]);
        let after_update = update(CHECK, store, &updated, revision).await?;
        let mut now = vec![updated.clone()];
        now.extend_from_slice(rest);
        expect_in_array(CHECK, view, &now, " after an update").await?;
        delete(CHECK, store, updated.upgrade_id(), after_update, "").await?;
        expect_in_array(CHECK, view, rest, " after a delete").await?;
        let array = view
            .list_statuses_json()
            .await
            .or_fail(CHECK, "list_statuses_json() after a delete")?;
        let deleted = updated.upgrade_id().to_string();
        if array.contains(&deleted) {
            return Err(ConformanceError::new(
                CHECK,
                format!("list_statuses_json() after a delete should not include {deleted}, but does: {array}"),
            ));
        }
        Ok(())
    }
    .await;
    for record in &created {
        forget(store, record.upgrade_id()).await;
    }
    result
}

/// Checks that `list_statuses_json` is a JSON array of session statuses
/// holding `expected`'s statuses (as [`SessionRecord::status_json`] writes
/// them) in that order, whatever else it holds.
async fn expect_in_array(
    check: &'static str,
    view: &dyn StatusView,
    expected: &[SessionRecord],
    when: &str,
) -> Result<(), ConformanceError> {
    let array = view
        .list_statuses_json()
        .await
        .or_fail(check, format!("list_statuses_json(){when}"))?;
    let statuses: Vec<SessionStatus> = serde_json::from_str(&array).map_err(|error| {
        ConformanceError::new(
            check,
            format!("list_statuses_json(){when} should answer a JSON array of session statuses, but answered ({error}): {array}"),
        )
    })?;
    let found: Vec<Uuid> = statuses
        .iter()
        .map(|status| status.upgrade_id)
        .filter(|id| expected.iter().any(|record| record.upgrade_id() == *id))
        .collect();
    let wanted: Vec<Uuid> = expected.iter().map(SessionRecord::upgrade_id).collect();
    if found != wanted {
        return Err(ConformanceError::new(
            check,
            format!(
                "list_statuses_json(){when} should list {wanted:?} in that order, but listed {found:?}"
            ),
        ));
    }
    for record in expected {
        let wanted = status_json(check, record)?;
        if !array.contains(&wanted) {
            return Err(ConformanceError::new(
                check,
                format!(
                    "list_statuses_json(){when} should hold session {}'s status as {wanted}, but answered {array}",
                    record.upgrade_id()
                ),
            ));
        }
    }
    Ok(())
}

/// The status JSON the store must answer for `record`.
fn status_json(check: &'static str, record: &SessionRecord) -> Result<String, ConformanceError> {
    record.status_json().map_err(|error| {
        ConformanceError::new(
            check,
            format!(
                "the status of make_record's session {} cannot be encoded: {error}",
                record.upgrade_id()
            ),
        )
    })
}

/// Checks that `get_status` answers exactly `expected`'s status JSON.
async fn expect_status(
    check: &'static str,
    view: &dyn StatusView,
    expected: &SessionRecord,
    when: &str,
) -> Result<(), ConformanceError> {
    let id = expected.upgrade_id();
    let wanted = status_json(check, expected)?;
    match view
        .get_status(id)
        .await
        .or_fail(check, format!("get_status({id}) {when}"))?
    {
        Some(found) if found == wanted => Ok(()),
        Some(found) => Err(ConformanceError::new(
            check,
            format!("get_status({id}) {when} should answer {wanted}, but answered {found}"),
        )),
        None => Err(ConformanceError::new(
            check,
            format!("get_status({id}) {when} should answer {wanted}, but answered None"),
        )),
    }
}

/// After a delta that writes every node of a session (8,000 of them), its
/// status counts them: a view kept beside the records follows delta
/// writes, not only whole ones.
pub async fn a_status_counts_the_nodes_of_a_delta(
    store: &dyn SessionStore,
    view: &dyn StatusView,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "status_view::a_status_counts_the_nodes_of_a_delta";
    let mut record = new_record(CHECK, make_record)?;
    let created = create(CHECK, store, &record).await?;
    let result = async {
        record.rollout.nodes = fresh_nodes(8_000).into();
        write_delta(CHECK, store, &record, ChangedNodes::All, created).await?;
        let status = view
            .get_status(record.upgrade_id())
            .await
            .or_fail(CHECK, "get_status() after a delta of every node")?
            .unwrap_or_default();
        if !status.contains("\"total\":8000") {
            return Err(ConformanceError::new(
                CHECK,
                format!("the status after a delta of 8000 nodes should count them: {status}"),
            ));
        }
        expect_status(CHECK, view, &record, "after a delta of every node").await
    }
    .await;
    forget(store, record.upgrade_id()).await;
    result
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::*;
    use crate::error::Result;
    use crate::store::{MemoryStore, RecordStatuses};
    use crate::testkit::session_store::tests::test_record;
    use crate::testkit::test_support::{ExpectFailure, lock};

    #[tokio::test]
    async fn the_memory_store_passes() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let store = MemoryStore::new();
        run_all(&store, &store, &test_record).await?;
        // Every check cleans up after itself.
        assert!(store.list().await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn the_statuses_decoded_from_any_store_pass() -> std::result::Result<(), ConformanceError>
    {
        let store = Arc::new(MemoryStore::new());
        run_all(&*store, &RecordStatuses::new(store.clone()), &test_record).await
    }

    /// A view that keeps its first listing forever: what a cache that
    /// misses the store's writes would answer.
    struct StaleListing {
        view: RecordStatuses<MemoryStore>,
        kept: Mutex<Option<Arc<str>>>,
    }

    #[async_trait]
    impl StatusView for StaleListing {
        async fn get_status(&self, upgrade_id: Uuid) -> Result<Option<String>> {
            self.view.get_status(upgrade_id).await
        }

        async fn list_statuses(&self) -> Result<Vec<String>> {
            self.view.list_statuses().await
        }

        async fn list_statuses_json(&self) -> Result<Arc<str>> {
            if let Some(kept) = lock(&self.kept).clone() {
                return Ok(kept);
            }
            let listing = self.view.list_statuses_json().await?;
            *lock(&self.kept) = Some(listing.clone());
            Ok(listing)
        }
    }

    #[tokio::test]
    async fn a_view_that_misses_writes_fails_the_check_that_covers_it() {
        let store = Arc::new(MemoryStore::new());
        let view = StaleListing {
            view: RecordStatuses::new(store.clone()),
            kept: Mutex::new(None),
        };
        let error = run_all(&*store, &view, &test_record).await.failure();
        assert_eq!(error.check, "status_view::statuses_list_newest_first");
        assert!(error.detail.contains("after an update"), "{error}");
    }
}
