//! A page of a session's nodes (`GET /session/{id}/nodes?limit=&after=`),
//! read by the store without assembling the session: a 100,000-node
//! session is tens of MB of records, a page a few hundred kB. A store that
//! keeps nodes apart (a row or key per node) reads the page's range alone.

use crate::rollout::NodeRecord;

/// Where a page starts: after node `id`, the last of the page before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageAfter<'a> {
    /// The node the page starts after.
    pub id: &'a str,
    /// Its position in the session, as the page before gave it
    /// ([`NodePage::start`] + its length - 1): a store checks the node
    /// there is `id` and reads from the next, without looking `id` up.
    /// Wrong or absent, the store finds `id` by its name (a hint, never
    /// trusted).
    pub position: Option<usize>,
}

/// One page of a session's nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePage {
    /// The nodes, in the session's order.
    pub nodes: Vec<NodeRecord>,
    /// The position in the session of the first of them (where it would
    /// be when the page is empty).
    pub start: usize,
    /// Whether nodes follow the last of them.
    pub more: bool,
}

/// What a read of a page answers for a session that exists.
#[derive(Debug, Clone, PartialEq)]
pub enum PageRead {
    /// The page.
    Page(NodePage),
    /// The node the page was to start after is not one of the session's.
    UnknownAfter,
}

/// The page of `nodes` (a whole session's, in order) after `after`, of at
/// most `limit` nodes: what a store that holds the nodes in memory answers.
pub fn page_of(nodes: &[NodeRecord], after: Option<PageAfter<'_>>, limit: usize) -> PageRead {
    let start = match after {
        None => 0,
        Some(after) => match position_of(nodes, after) {
            Some(position) => position + 1,
            None => return PageRead::UnknownAfter,
        },
    };
    let end = start.saturating_add(limit).min(nodes.len());
    PageRead::Page(NodePage {
        nodes: nodes.get(start..end).unwrap_or_default().to_vec(),
        start,
        more: end < nodes.len(),
    })
}

/// Where `after` is among `nodes`: at its hinted position when the node
/// there has its id, else wherever its id is.
fn position_of(nodes: &[NodeRecord], after: PageAfter<'_>) -> Option<usize> {
    after
        .position
        .filter(|&position| {
            nodes
                .get(position)
                .is_some_and(|node| node.id.as_str() == after.id)
        })
        .or_else(|| nodes.iter().position(|node| node.id.as_str() == after.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeId;
    use crate::time::Timestamp;

    fn nodes(count: usize) -> Vec<NodeRecord> {
        (0..count)
            .map(|index| NodeRecord::pending(NodeId::new(format!("n{index}")), Timestamp::EPOCH))
            .collect()
    }

    fn ids(read: &PageRead) -> (Vec<String>, usize, bool) {
        match read {
            PageRead::Page(page) => (
                page.nodes.iter().map(|node| node.id.to_string()).collect(),
                page.start,
                page.more,
            ),
            PageRead::UnknownAfter => panic!("unknown after"),
        }
    }

    #[test]
    fn pages_start_after_the_node_named_whatever_the_hint_says() {
        let nodes = nodes(5);
        assert_eq!(
            ids(&page_of(&nodes, None, 2)),
            (vec!["n0".into(), "n1".into()], 0, true)
        );
        for hint in [Some(1), Some(3), Some(99), None] {
            let after = PageAfter {
                id: "n1",
                position: hint,
            };
            assert_eq!(
                ids(&page_of(&nodes, Some(after), 2)),
                (vec!["n2".into(), "n3".into()], 2, true),
                "hint {hint:?}"
            );
        }
        let last = PageAfter {
            id: "n3",
            position: Some(3),
        };
        assert_eq!(
            ids(&page_of(&nodes, Some(last), 5)),
            (vec!["n4".into()], 4, false)
        );
        let unknown = PageAfter {
            id: "nope",
            position: Some(0),
        };
        assert_eq!(page_of(&nodes, Some(unknown), 5), PageRead::UnknownAfter);
    }
}
