//! A session's nodes, which remember which of them changed since the store
//! last took them.
//!
//! The controller hands the store only the nodes that changed at each
//! persist. Comparing every node with a stored copy to find them cost more
//! than half the controller's time on a 100,000-node session (BENCHMARKS.md,
//! issue 25), and kept a second copy of every node. Instead, the list keeps
//! the before-image of each node the first time it is borrowed mutably after
//! a write: the nodes that changed are the borrowed ones that differ from
//! their before-image. There is no other way to change a node (the list
//! derefs to a slice for reading, never mutably), so no change can be missed,
//! whether the engine's steps made it or a wait (an administrator's mark
//! observed, a node's own weight read).

use std::ops::{Deref, Index, IndexMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::NodeRecord;

/// The nodes to upgrade, in the order they are taken. Stored as a plain
/// list: what changed since the last write is not part of the record.
#[derive(Debug, Clone, Default)]
pub struct NodeList {
    records: Vec<NodeRecord>,
    unwritten: Unwritten,
}

/// What changed since the store last took the list.
#[derive(Debug, Clone, Default)]
struct Unwritten {
    /// The list was replaced or resized: the store must take it whole.
    whole: bool,
    /// Whether each node was borrowed mutably since the last write, by
    /// position (grown on first use): one check per borrow, no search.
    borrowed: Vec<bool>,
    /// Each node borrowed mutably since the last write, as it was then.
    before: Vec<(usize, NodeRecord)>,
}

impl NodeList {
    /// The node at `position`, for a change; `None` past the end.
    pub fn get_mut(&mut self, position: usize) -> Option<&mut NodeRecord> {
        let record = self.records.get_mut(position)?;
        let unwritten = &mut self.unwritten;
        if !unwritten.whole {
            if unwritten.borrowed.len() <= position {
                unwritten.borrowed.resize(position + 1, false);
            }
            if !unwritten.borrowed[position] {
                unwritten.borrowed[position] = true;
                unwritten.before.push((position, record.clone()));
            }
        }
        Some(record)
    }

    /// Every node, for a change (each counts as changed if it differs).
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, NodeRecord> {
        self.unwritten = Unwritten {
            whole: true,
            ..Unwritten::default()
        };
        self.records.iter_mut()
    }

    /// The positions of the nodes that differ from what the store last
    /// took, in increasing order; `None` when the list must be written whole
    /// (it was replaced or its length changed).
    pub fn unwritten_changes(&self) -> Option<Vec<usize>> {
        if self.unwritten.whole {
            return None;
        }
        let mut changed: Vec<usize> = self
            .unwritten
            .before
            .iter()
            .filter(|(position, before)| self.records.get(*position) != Some(before))
            .map(|(position, _)| *position)
            .collect();
        changed.sort_unstable();
        Some(changed)
    }

    /// The store took the list as it is now.
    pub fn mark_written(&mut self) {
        let unwritten = &mut self.unwritten;
        unwritten.whole = false;
        // Cleared one by one: a write after a few changes costs as little
        // as they did, whatever the machine's size.
        for (position, _) in unwritten.before.drain(..) {
            if let Some(borrowed) = unwritten.borrowed.get_mut(position) {
                *borrowed = false;
            }
        }
    }

    /// Nodes as the store holds them (read back from it): nothing in them
    /// is unwritten. A list made any other way ([`From`]) is written whole.
    pub fn as_stored(records: Vec<NodeRecord>) -> Self {
        NodeList {
            records,
            unwritten: Unwritten::default(),
        }
    }

    /// The nodes as a plain list.
    pub fn into_vec(self) -> Vec<NodeRecord> {
        self.records
    }
}

impl From<Vec<NodeRecord>> for NodeList {
    /// A new list: the store has none of it yet.
    fn from(records: Vec<NodeRecord>) -> Self {
        NodeList {
            records,
            unwritten: Unwritten {
                whole: true,
                ..Unwritten::default()
            },
        }
    }
}

impl FromIterator<NodeRecord> for NodeList {
    fn from_iter<I: IntoIterator<Item = NodeRecord>>(iter: I) -> Self {
        NodeList::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl Extend<NodeRecord> for NodeList {
    /// More nodes: the list's length changes, so it is written whole.
    fn extend<I: IntoIterator<Item = NodeRecord>>(&mut self, iter: I) {
        self.records.extend(iter);
        self.unwritten = Unwritten {
            whole: true,
            ..Unwritten::default()
        };
    }
}

impl Deref for NodeList {
    type Target = [NodeRecord];

    fn deref(&self) -> &[NodeRecord] {
        &self.records
    }
}

impl Index<usize> for NodeList {
    type Output = NodeRecord;

    fn index(&self, position: usize) -> &NodeRecord {
        &self.records[position]
    }
}

impl IndexMut<usize> for NodeList {
    /// Panics past the end, as a slice does: the engine indexes only
    /// positions it took from the list itself.
    fn index_mut(&mut self, position: usize) -> &mut NodeRecord {
        let length = self.records.len();
        match self.get_mut(position) {
            Some(record) => record,
            None => panic!("node position {position} is past the end of a list of {length}"),
        }
    }
}

impl<'a> IntoIterator for &'a NodeList {
    type Item = &'a NodeRecord;
    type IntoIter = std::slice::Iter<'a, NodeRecord>;

    fn into_iter(self) -> Self::IntoIter {
        self.records.iter()
    }
}

impl PartialEq for NodeList {
    /// Two lists are equal when their nodes are: what was written is not
    /// part of the value.
    fn eq(&self, other: &Self) -> bool {
        self.records == other.records
    }
}

impl Eq for NodeList {}

impl Serialize for NodeList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.records.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for NodeList {
    /// A list read from the store: nothing in it is unwritten.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(NodeList::as_stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::NodePhase;
    use crate::{NodeId, Timestamp};

    fn node(name: &str) -> NodeRecord {
        NodeRecord::pending(NodeId::from(name), Timestamp::EPOCH)
    }

    fn stored(count: usize) -> NodeList {
        let records: Vec<NodeRecord> = (0..count).map(|n| node(&format!("n{n}"))).collect();
        let mut list = NodeList::from(records);
        list.mark_written();
        list
    }

    #[test]
    fn only_nodes_that_differ_from_the_last_write_are_unwritten() {
        let mut list = stored(4);
        assert_eq!(list.unwritten_changes(), Some(vec![]));
        list[2].phase = NodePhase::Draining;
        // Borrowed mutably but left as it was: not a change.
        let _ = list[1].reason.take();
        list[0].attempts += 1;
        assert_eq!(list.unwritten_changes(), Some(vec![0, 2]));
        list.mark_written();
        assert_eq!(list.unwritten_changes(), Some(vec![]));
    }

    #[test]
    fn a_node_changed_and_changed_back_is_not_written() {
        let mut list = stored(2);
        list[1].phase = NodePhase::Draining;
        list[1].phase = NodePhase::Pending;
        assert_eq!(list.unwritten_changes(), Some(vec![]));
    }

    #[test]
    fn a_new_or_wholly_borrowed_list_is_written_whole() {
        let list: NodeList = vec![node("a")].into();
        assert_eq!(list.unwritten_changes(), None);
        let mut list = stored(2);
        for record in list.iter_mut() {
            record.attempts = 1;
        }
        assert_eq!(list.unwritten_changes(), None);
    }

    #[test]
    fn a_list_read_back_has_nothing_unwritten_and_equals_the_one_written() {
        let mut list = stored(3);
        list[1].phase = NodePhase::Booting;
        let text = serde_json::to_string(&list).unwrap();
        let read: NodeList = serde_json::from_str(&text).unwrap();
        assert_eq!(read, list);
        assert_eq!(read.unwritten_changes(), Some(vec![]));
    }
}
