//! Conformance checks of a session header that leaves its steps' and
//! boots' node lists out (issue 25: they made the header grow with the
//! machine, past etcd's request limit): a store reads the record back with
//! the lists rebuilt from its nodes, and a record stored with the lists in
//! its header (as every session was before) reads back as it was, and then
//! takes a controller's header without them.
//!
//! Every check works on a fresh id and removes what it created, so the
//! checks run against a shared store (etcd) too.

use super::session_nodes::{fresh_nodes, write_delta};
use super::session_store::{MakeRecord, forget, new_record};
use super::{CallResultExt, ConformanceError};
use crate::rollout::{NodePhase, Step, StepBoot};
use crate::store::{ChangedNodes, Revision, SessionRecord, SessionStore};
use crate::time::Timestamp;

/// Runs every check in turn, stopping at the first failure.
pub async fn run_all(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    a_header_without_node_lists_reads_back_with_them(store, make_record).await?;
    a_header_stored_with_node_lists_reads_back_and_takes_one_without(store, make_record).await?;
    Ok(())
}

/// A record of 300 nodes with two steps: step 0 of nodes 0, 7 and 150,
/// booted twice (nodes 0 and 150, then 150 again), and step 1 of node 299,
/// not booted yet. With `named_boots`, the nodes name the boots they were
/// booted by (as this release writes them); without, they do not (as
/// releases before wrote them).
fn record_with_steps(
    check: &'static str,
    make_record: MakeRecord<'_>,
    named_boots: bool,
) -> Result<SessionRecord, ConformanceError> {
    let mut record = new_record(check, make_record)?;
    let mut nodes = fresh_nodes(300);
    let at = Timestamp::from_secs(2_000);
    for (position, step, boots) in [
        (0, 0, vec![0]),
        (7, 0, vec![]),
        (150, 0, vec![0, 1]),
        (299, 1, vec![]),
    ] {
        let node = &mut nodes[position];
        node.step = Some(step);
        node.phase = if boots.is_empty() {
            NodePhase::Draining
        } else {
            NodePhase::Booting
        };
        node.since = at;
        node.taken_at = Some(at);
        node.attempts = u32::try_from(boots.len()).unwrap_or_default();
        if named_boots {
            node.boots = boots;
        }
    }
    let boot = |number: u32, positions: &[usize]| StepBoot {
        key: format!("crus-{}-step-0-boot-{number}", record.upgrade_id()),
        nodes: positions
            .iter()
            .map(|&position| nodes[position].id.clone())
            .collect(),
        handle: None,
        requested_at: at,
        started_at: None,
        sent_at: None,
        template: None,
    };
    let steps = vec![
        Step {
            number: 0,
            nodes: vec![0, 7, 150],
            started_at: at,
            boots: vec![boot(0, &[0, 150]), boot(1, &[150])],
            finished: false,
            hooks: Vec::new(),
        },
        Step {
            number: 1,
            nodes: vec![299],
            started_at: at,
            boots: Vec::new(),
            finished: false,
            hooks: Vec::new(),
        },
    ];
    record.rollout.steps = steps;
    record.rollout.nodes = nodes.into();
    Ok(record)
}

/// Checks that `get` answers `expected` at `revision`, node lists included.
async fn expect_lists(
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
        Some(found) => Err(ConformanceError::new(
            check,
            format!(
                "get({id}) {when} should answer the record written at revision {} with steps \
                 {:?}, but answered one at revision {} with steps {:?}",
                revision.0, expected.rollout.steps, found.revision.0, found.value.rollout.steps
            ),
        )),
        None => Err(ConformanceError::new(
            check,
            format!("get({id}) {when} should answer the record, but answered None"),
        )),
    }
}

/// A record whose nodes name their steps and boots is stored with a header
/// without the node lists (a controller's header, and `header_of` for
/// whole writes), and reads back whole, the lists rebuilt in node order.
pub async fn a_header_without_node_lists_reads_back_with_them(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_step_lists::a_header_without_node_lists_reads_back_with_them";
    let mut record = record_with_steps(CHECK, make_record, true)?;
    let created = store
        .create(&record)
        .await
        .or_fail(CHECK, "create() of a record with two steps")?;
    let result = async {
        expect_lists(CHECK, store, &record, created, "after create").await?;
        // Node 7 is booted by a third boot of step 0.
        record.rollout.nodes[7].boots = vec![2];
        record.rollout.nodes[7].phase = NodePhase::Booting;
        let mut third = record.rollout.steps[0].boots[1].clone();
        third.key = format!("crus-{}-step-0-boot-2", record.upgrade_id());
        third.nodes = vec![record.rollout.nodes[7].id.clone()];
        record.rollout.steps[0].boots.push(third);
        let written = write_delta(CHECK, store, &record, ChangedNodes::Only(&[7]), created).await?;
        expect_lists(
            CHECK,
            store,
            &record,
            written,
            "after a delta booting node 7",
        )
        .await
    }
    .await;
    forget(store, record.upgrade_id()).await;
    result
}

/// A record stored with its node lists in its header and nodes that do not
/// name their boots (as every release before this one stored sessions)
/// reads back as it was; once its nodes are given their boots, a delta
/// with a header without the lists reads back the same.
pub async fn a_header_stored_with_node_lists_reads_back_and_takes_one_without(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str =
        "session_step_lists::a_header_stored_with_node_lists_reads_back_and_takes_one_without";
    let mut record = record_with_steps(CHECK, make_record, false)?;
    let created = store
        .create(&record)
        .await
        .or_fail(CHECK, "create() of a record with node lists in its header")?;
    let result = async {
        expect_lists(CHECK, store, &record, created, "after create").await?;
        if !record.rollout.record_boot_membership() {
            return Err(ConformanceError::new(
                CHECK,
                "record_boot_membership() should give nodes 0 and 150 their boots",
            ));
        }
        let written = write_delta(
            CHECK,
            store,
            &record,
            ChangedNodes::Only(&[0, 150]),
            created,
        )
        .await?;
        expect_lists(
            CHECK,
            store,
            &record,
            written,
            "after a delta whose header leaves the lists out",
        )
        .await
    }
    .await;
    forget(store, record.upgrade_id()).await;
    result
}
