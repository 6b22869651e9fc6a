//! Conformance checks of [`SessionStore::get_node_page`]: pages of a
//! session's nodes add up to its nodes in order, start after the node
//! named whether or not its position is given (or given wrong), follow the
//! session's writes, and say when the node named is not the session's or
//! the session does not exist. A store that reads a page's range alone
//! must answer what the whole record would.
//!
//! Every check works on a fresh id and removes what it created, so the
//! checks run against a shared store (etcd) too.

use uuid::Uuid;

use super::session_store::{MakeRecord, forget, new_record};
use super::{CallResultExt, ConformanceError};
use crate::node::NodeId;
use crate::rollout::{NodePhase, NodeRecord};
use crate::store::{
    ChangedNodes, NodePage, PageAfter, PageRead, SessionDelta, SessionRecord, SessionStore,
    header_of,
};
use crate::time::Timestamp;

/// How many nodes the session of the checks holds: several of a store's
/// groups (etcd keeps 64 nodes a key), the last one partial.
const NODES: usize = 300;

/// Runs every check in turn, stopping at the first failure.
pub async fn run_all(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    pages_add_up_to_every_node(store, make_record).await?;
    a_page_starts_after_the_node_named(store, make_record).await?;
    a_page_of_a_missing_session_is_none(store, make_record).await?;
    Ok(())
}

/// `count` pending nodes named after a fresh run.
fn fresh_nodes(count: usize) -> Vec<NodeRecord> {
    let run = Uuid::new_v4();
    (0..count)
        .map(|index| {
            NodeRecord::pending(
                NodeId::new(format!("page-{run}-{index}")),
                Timestamp::from_secs(1_000),
            )
        })
        .collect()
}

/// A session created without nodes, then given [`NODES`] nodes by a delta
/// of every node (as the controller's snapshot is written) and a few
/// changed by a second delta: the record the checks page through, stored.
async fn stored_session(
    check: &'static str,
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<SessionRecord, ConformanceError> {
    let mut record = new_record(check, make_record)?;
    let created = store
        .create(&record)
        .await
        .or_fail(check, "create() of a record without nodes")?;
    record.rollout.nodes = fresh_nodes(NODES).into();
    let header = header_of(&record);
    let snapshot = SessionDelta {
        header: &header,
        rollout: &record.rollout,
        changed: ChangedNodes::All,
    };
    let written = store
        .update_delta(&snapshot, created)
        .await
        .or_fail(check, format!("update_delta() of {NODES} nodes"))?;
    let changed = [3, 64, 200];
    for &position in &changed {
        let node = &mut record.rollout.nodes[position];
        node.phase = NodePhase::Draining;
        node.step = Some(0);
        node.since = Timestamp::from_secs(2_000);
    }
    let header = header_of(&record);
    let delta = SessionDelta {
        header: &header,
        rollout: &record.rollout,
        changed: ChangedNodes::Only(&changed),
    };
    store
        .update_delta(&delta, written)
        .await
        .or_fail(check, "update_delta() of 3 nodes")?;
    Ok(record)
}

/// `get_node_page`, which must answer a page.
async fn page(
    check: &'static str,
    store: &dyn SessionStore,
    id: Uuid,
    after: Option<PageAfter<'_>>,
    limit: usize,
) -> Result<NodePage, ConformanceError> {
    let call = format!("get_node_page({id}, {after:?}, {limit})");
    match store
        .get_node_page(id, after, limit)
        .await
        .or_fail(check, &call)?
    {
        Some(PageRead::Page(page)) => Ok(page),
        Some(PageRead::UnknownAfter) => Err(ConformanceError::new(
            check,
            format!("{call} should answer a page, but said the node is not the session's"),
        )),
        None => Err(ConformanceError::new(
            check,
            format!("{call} should answer a page, but said the session does not exist"),
        )),
    }
}

/// Checks `page` holds `expected` nodes (positions `start..` of the
/// session) and says whether more follow.
fn expect_page(
    check: &'static str,
    page: &NodePage,
    nodes: &[NodeRecord],
    start: usize,
    count: usize,
    when: &str,
) -> Result<(), ConformanceError> {
    let end = (start + count).min(nodes.len());
    let expected = &nodes[start.min(end)..end];
    let more = end < nodes.len();
    if page.start != start || page.nodes != expected || page.more != more {
        return Err(ConformanceError::new(
            check,
            format!(
                "{when}: the page should start at position {start} with {} node(s) (more: \
                 {more}), but started at {} with {} (more: {}; first {:?})",
                expected.len(),
                page.start,
                page.nodes.len(),
                page.more,
                page.nodes.first().map(|node| node.id.as_str()),
            ),
        ));
    }
    Ok(())
}

/// Pages of 64 that each start after the last node of the one before (its
/// position given) add up to every node in order, the nodes a later write
/// changed included; one page of every node is the same.
pub async fn pages_add_up_to_every_node(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_node_pages::pages_add_up_to_every_node";
    let record = stored_session(CHECK, store, make_record).await?;
    let id = record.upgrade_id();
    let nodes = &record.rollout.nodes;
    let result = async {
        let mut start = 0;
        let mut after: Option<(String, usize)> = None;
        loop {
            let named = after.as_ref().map(|(id, position)| PageAfter {
                id: id.as_str(),
                position: Some(*position),
            });
            let page = page(CHECK, store, id, named, 64).await?;
            expect_page(
                CHECK,
                &page,
                nodes,
                start,
                64,
                &format!("the page from {start}"),
            )?;
            if !page.more {
                break;
            }
            start += page.nodes.len();
            after = page
                .nodes
                .last()
                .map(|node| (node.id.to_string(), start - 1));
        }
        if start + 64 < NODES {
            return Err(ConformanceError::new(
                CHECK,
                format!("the pages ended at position {start} of {NODES}"),
            ));
        }
        let whole = page(CHECK, store, id, None, usize::MAX).await?;
        expect_page(CHECK, &whole, nodes, 0, NODES, "one page of every node")
    }
    .await;
    forget(store, id).await;
    result
}

/// A page starts after the node named, found by its name when its
/// position is not given or is wrong; after the last node it is empty;
/// a node the session does not hold is [`PageRead::UnknownAfter`].
pub async fn a_page_starts_after_the_node_named(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_node_pages::a_page_starts_after_the_node_named";
    let record = stored_session(CHECK, store, make_record).await?;
    let id = record.upgrade_id();
    let nodes = &record.rollout.nodes;
    let result = async {
        let named = nodes[130].id.to_string();
        for position in [None, Some(130), Some(7), Some(NODES + 5)] {
            let after = PageAfter {
                id: &named,
                position,
            };
            let page = page(CHECK, store, id, Some(after), 100).await?;
            expect_page(
                CHECK,
                &page,
                nodes,
                131,
                100,
                &format!("after node 130 (position given {position:?})"),
            )?;
        }
        let last = nodes[NODES - 1].id.to_string();
        let after = PageAfter {
            id: &last,
            position: Some(NODES - 1),
        };
        let page = page(CHECK, store, id, Some(after), 10).await?;
        expect_page(CHECK, &page, nodes, NODES, 10, "after the last node")?;
        let unknown = PageAfter {
            id: "no-such-node",
            position: Some(3),
        };
        let call = format!("get_node_page({id}, {unknown:?}, 10)");
        match store
            .get_node_page(id, Some(unknown), 10)
            .await
            .or_fail(CHECK, &call)?
        {
            Some(PageRead::UnknownAfter) => Ok(()),
            other => Err(ConformanceError::new(
                CHECK,
                format!("{call} should say the node is not the session's, but answered {other:?}"),
            )),
        }
    }
    .await;
    forget(store, id).await;
    result
}

/// A page of a session that does not exist is `None`.
pub async fn a_page_of_a_missing_session_is_none(
    store: &dyn SessionStore,
    _make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_node_pages::a_page_of_a_missing_session_is_none";
    let id = Uuid::new_v4();
    let call = format!("get_node_page({id}, None, 10)");
    match store
        .get_node_page(id, None, 10)
        .await
        .or_fail(CHECK, &call)?
    {
        None => Ok(()),
        Some(other) => Err(ConformanceError::new(
            CHECK,
            format!("{call} of a session never created should answer None, but answered {other:?}"),
        )),
    }
}
