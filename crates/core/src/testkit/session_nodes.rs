//! Conformance checks of a [`SessionStore`]'s writes of what changed
//! ([`SessionStore::update_delta`]) and its read of the operator's requests
//! alone ([`SessionStore::get_desired`]): a delta naming some nodes leaves
//! the others as they were, reads assemble the whole record, and a delta is
//! revision-checked like any write. A store that keeps nodes apart must
//! pass them as a store that keeps records whole does.
//!
//! Every check works on a fresh id and removes what it created, so the
//! checks run against a shared store (etcd) too.

use uuid::Uuid;

use super::session_store::{MakeRecord, forget, new_record};
use super::{CallResultExt, ConformanceError, expect_error};
use crate::error::Error;
use crate::node::NodeId;
use crate::rollout::{NodePhase, NodeRecord};
use crate::store::{ChangedNodes, Revision, SessionDelta, SessionRecord, SessionStore, header_of};
use crate::time::Timestamp;

/// Runs every check in turn, stopping at the first failure.
pub async fn run_all(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    a_delta_changes_the_nodes_it_names(store, make_record).await?;
    a_delta_replacing_every_node_is_read_back(store, make_record).await?;
    a_stale_delta_conflicts_and_changes_nothing(store, make_record).await?;
    a_delta_of_a_missing_session_is_not_found(store, make_record).await?;
    desired_reads_follow_the_record(store, make_record).await?;
    Ok(())
}

/// `count` pending nodes named after a fresh run.
pub(super) fn fresh_nodes(count: usize) -> Vec<NodeRecord> {
    let run = Uuid::new_v4();
    (0..count)
        .map(|index| {
            NodeRecord::pending(
                NodeId::new(format!("delta-{run}-{index}")),
                Timestamp::from_secs(1_000),
            )
        })
        .collect()
}

/// A record of `make_record` holding `count` nodes.
fn record_with_nodes(
    check: &'static str,
    make_record: MakeRecord<'_>,
    count: usize,
) -> Result<SessionRecord, ConformanceError> {
    let mut record = new_record(check, make_record)?;
    record.rollout.nodes = fresh_nodes(count).into();
    Ok(record)
}

/// `node` taken into step 0 and draining: a change a delta carries.
fn taken(node: &mut NodeRecord) {
    node.phase = NodePhase::Draining;
    node.step = Some(0);
    node.since = Timestamp::from_secs(2_000);
    node.taken_at = Some(Timestamp::from_secs(2_000));
}

/// `update_delta` of `record` with `changed`, which must succeed with a
/// larger revision.
pub(super) async fn write_delta(
    check: &'static str,
    store: &dyn SessionStore,
    record: &SessionRecord,
    changed: ChangedNodes<'_>,
    expected: Revision,
) -> Result<Revision, ConformanceError> {
    let header = header_of(record);
    let delta = SessionDelta {
        header: &header,
        rollout: &record.rollout,
        changed,
    };
    let call = format!(
        "update_delta({}) at its current revision {} ({changed:?})",
        record.upgrade_id(),
        expected.0
    );
    let revision = store
        .update_delta(&delta, expected)
        .await
        .or_fail(check, &call)?;
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

/// Checks that `get` answers exactly `expected` at `revision`.
async fn expect_record(
    check: &'static str,
    store: &dyn SessionStore,
    expected: &SessionRecord,
    revision: Revision,
    when: &str,
) -> Result<(), ConformanceError> {
    let id = expected.upgrade_id();
    let found = store
        .get(id)
        .await
        .or_fail(check, format!("get({id}) {when}"))?;
    match found {
        Some(found) if found.revision == revision && found.value == *expected => Ok(()),
        Some(found) => {
            let differing: Vec<usize> = (0..expected
                .rollout
                .nodes
                .len()
                .max(found.value.rollout.nodes.len()))
                .filter(|&position| {
                    expected.rollout.nodes.get(position) != found.value.rollout.nodes.get(position)
                })
                .take(5)
                .collect();
            Err(ConformanceError::new(
                check,
                format!(
                    "get({id}) {when} should answer the record written at revision {} with {} \
                     node(s), but answered one at revision {} with {} node(s) (nodes differing \
                     at positions {differing:?}; headers {})",
                    revision.0,
                    expected.rollout.nodes.len(),
                    found.revision.0,
                    found.value.rollout.nodes.len(),
                    if header_of(&found.value) == header_of(expected) {
                        "equal"
                    } else {
                        "differ"
                    }
                ),
            ))
        }
        None => Err(ConformanceError::new(
            check,
            format!("get({id}) {when} should answer the record, but answered None"),
        )),
    }
}

/// A delta naming a few nodes (far apart, so a store grouping nodes
/// writes several groups) stores them and the header, and every other node
/// reads back as it was.
pub async fn a_delta_changes_the_nodes_it_names(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_nodes::a_delta_changes_the_nodes_it_names";
    let mut record = record_with_nodes(CHECK, make_record, 300)?;
    let created = store
        .create(&record)
        .await
        .or_fail(CHECK, "create() of a record with 300 nodes")?;
    let result = async {
        expect_record(CHECK, store, &record, created, "after create").await?;
        let positions = [0, 1, 150, 299];
        for &position in &positions {
            taken(&mut record.rollout.nodes[position]);
        }
        record.rollout.messages.push("delta check".to_string());
        let first = write_delta(
            CHECK,
            store,
            &record,
            ChangedNodes::Only(&positions),
            created,
        )
        .await?;
        expect_record(CHECK, store, &record, first, "after a delta of 4 nodes").await?;
        // A second delta on top of the first: the first's nodes stay.
        taken(&mut record.rollout.nodes[70]);
        let second = write_delta(CHECK, store, &record, ChangedNodes::Only(&[70]), first).await?;
        expect_record(CHECK, store, &record, second, "after a second delta").await
    }
    .await;
    forget(store, record.upgrade_id()).await;
    result
}

/// A delta replacing every node (the snapshot taken) of a record that held
/// none stores them all, however many: 8,000 nodes are more than one etcd
/// transaction takes by default.
pub async fn a_delta_replacing_every_node_is_read_back(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_nodes::a_delta_replacing_every_node_is_read_back";
    let mut record = new_record(CHECK, make_record)?;
    let created = store
        .create(&record)
        .await
        .or_fail(CHECK, "create() of a record without nodes")?;
    let result = async {
        record.rollout.nodes = fresh_nodes(8_000).into();
        let written = write_delta(CHECK, store, &record, ChangedNodes::All, created).await?;
        expect_record(
            CHECK,
            store,
            &record,
            written,
            "after a delta of every node",
        )
        .await
    }
    .await;
    forget(store, record.upgrade_id()).await;
    result
}

/// A delta at a revision no longer current is [`Error::Conflict`] and
/// changes neither the header nor any node.
pub async fn a_stale_delta_conflicts_and_changes_nothing(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_nodes::a_stale_delta_conflicts_and_changes_nothing";
    let mut record = record_with_nodes(CHECK, make_record, 100)?;
    let created = store
        .create(&record)
        .await
        .or_fail(CHECK, "create() of a record with 100 nodes")?;
    let result = async {
        taken(&mut record.rollout.nodes[3]);
        let current = write_delta(CHECK, store, &record, ChangedNodes::Only(&[3]), created).await?;
        let mut stale = record.clone();
        taken(&mut stale.rollout.nodes[90]);
        stale.desired.delete = !stale.desired.delete;
        let header = header_of(&stale);
        let delta = SessionDelta {
            header: &header,
            rollout: &stale.rollout,
            changed: ChangedNodes::Only(&[90]),
        };
        expect_error(
            CHECK,
            format!(
                "update_delta({}) at stale revision {}",
                record.upgrade_id(),
                created.0
            ),
            store.update_delta(&delta, created).await,
            "Conflict",
            |error| matches!(error, Error::Conflict { .. }),
        )?;
        expect_record(
            CHECK,
            store,
            &record,
            current,
            "after a refused stale delta",
        )
        .await
    }
    .await;
    forget(store, record.upgrade_id()).await;
    result
}

/// A delta of a session never created is [`Error::NotFound`] and creates
/// nothing.
pub async fn a_delta_of_a_missing_session_is_not_found(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_nodes::a_delta_of_a_missing_session_is_not_found";
    let record = record_with_nodes(CHECK, make_record, 10)?;
    let header = header_of(&record);
    let delta = SessionDelta {
        header: &header,
        rollout: &record.rollout,
        changed: ChangedNodes::All,
    };
    let result = expect_error(
        CHECK,
        format!(
            "update_delta({}) of a session never created",
            record.upgrade_id()
        ),
        store.update_delta(&delta, Revision(1)).await,
        "NotFound",
        |error| matches!(error, Error::NotFound { .. }),
    );
    let found = store
        .get(record.upgrade_id())
        .await
        .or_fail(CHECK, "get() after a refused delta")?;
    forget(store, record.upgrade_id()).await;
    result?;
    match found {
        None => Ok(()),
        Some(_) => Err(ConformanceError::new(
            CHECK,
            "a refused delta of a missing session should store nothing, but get() found a record",
        )),
    }
}

/// `get_desired` answers the record's operator requests at the record's
/// revision, after a whole write and after a delta.
pub async fn desired_reads_follow_the_record(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_nodes::desired_reads_follow_the_record";
    let mut record = record_with_nodes(CHECK, make_record, 20)?;
    let id = record.upgrade_id();
    let created = store
        .create(&record)
        .await
        .or_fail(CHECK, "create() of a record with 20 nodes")?;
    let result = async {
        let expect = |found: Option<crate::store::Versioned<crate::store::Desired>>,
                      record: &SessionRecord,
                      revision: Revision,
                      when: &str| {
            match found {
                Some(found) if found.value == record.desired && found.revision == revision => {
                    Ok(())
                }
                other => Err(ConformanceError::new(
                    CHECK,
                    format!(
                        "get_desired({id}) {when} should answer {:?} at revision {}, but answered {other:?}",
                        record.desired, revision.0
                    ),
                )),
            }
        };
        let found = store.get_desired(id).await.or_fail(CHECK, "get_desired()")?;
        expect(found, &record, created, "after create")?;
        record.desired.delete = true;
        let updated = store
            .update(&record, created)
            .await
            .or_fail(CHECK, "update() with delete requested")?;
        let found = store.get_desired(id).await.or_fail(CHECK, "get_desired()")?;
        expect(found, &record, updated, "after update")?;
        taken(&mut record.rollout.nodes[5]);
        let delta = write_delta(CHECK, store, &record, ChangedNodes::Only(&[5]), updated).await?;
        let found = store.get_desired(id).await.or_fail(CHECK, "get_desired()")?;
        expect(found, &record, delta, "after a delta")?;
        expect_record(CHECK, store, &record, delta, "after a delta").await
    }
    .await;
    forget(store, id).await;
    result
}
