//! A session write that says what changed: the session's header (everything
//! but its nodes) and which of its nodes moved, so a store that keeps nodes
//! apart (a row or key per node) writes those alone instead of the whole
//! record, whose size grows with the machine.

use crate::rollout::{NodeList, NodeRecord, RolloutState};

use super::{SessionRecord, encoded_status, status_of_parts};

/// Which of a session's nodes a [`SessionDelta`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangedNodes<'a> {
    /// Every node: the node list is new (the snapshot was taken) or its
    /// length changed, so the stored nodes are replaced whole.
    All,
    /// Only the nodes at these positions of [`SessionDelta::nodes`], in
    /// increasing order; every other stored node is left as it is.
    Only(&'a [usize]),
}

/// One write of a session as what changed since the revision it expects
/// (see [`super::SessionStore::update_delta`]).
#[derive(Debug, Clone, Copy)]
pub struct SessionDelta<'a> {
    /// The record without its nodes: `header.rollout.nodes` is empty and is
    /// not written (the nodes are `nodes`).
    pub header: &'a SessionRecord,
    /// The whole rollout state the write stores, nodes included (the
    /// header's rollout is this without its nodes): what the record's
    /// nodes and status are once the write is done.
    pub rollout: &'a RolloutState,
    /// Which of the nodes differ from what the store holds at the expected
    /// revision; a store that keeps nodes apart writes only those.
    pub changed: ChangedNodes<'a>,
}

impl SessionDelta<'_> {
    /// Every node of the session, in order.
    pub fn nodes(&self) -> &[NodeRecord] {
        &self.rollout.nodes
    }

    /// The whole record the write leaves in the store: for stores that keep
    /// each record whole.
    pub fn to_record(&self) -> SessionRecord {
        SessionRecord {
            rollout: self.rollout.clone(),
            desired: self.header.desired.clone(),
        }
    }

    /// The session's status once the write is done, exactly
    /// [`SessionRecord::status_json`] of [`SessionDelta::to_record`],
    /// without assembling the record.
    pub fn status_json(&self) -> crate::Result<String> {
        let status = status_of_parts(self.rollout, &self.header.desired);
        encoded_status(self.header.upgrade_id(), &status)
    }

    /// The positions of the nodes to write, in increasing order: every
    /// position for [`ChangedNodes::All`]. A position past the end of
    /// the nodes (a caller's mistake) is left out.
    pub fn changed_positions(&self) -> Vec<usize> {
        match self.changed {
            ChangedNodes::All => (0..self.nodes().len()).collect(),
            ChangedNodes::Only(positions) => positions
                .iter()
                .copied()
                .filter(|position| *position < self.nodes().len())
                .collect(),
        }
    }

    /// Whether the stored nodes are replaced whole.
    pub fn replaces_all(&self) -> bool {
        self.changed == ChangedNodes::All
    }
}

/// `record` without its nodes: the header a store that keeps nodes apart
/// writes for it. Copies the record (nodes included, then dropped): for the
/// writes of whole records ([`super::SessionStore::create`],
/// [`super::SessionStore::update`]), which are the rare ones; the
/// controller's writes hand the header over already. The steps' and
/// boots' node lists are left out too when the nodes account for them
/// (`RolloutState::node_lists_derivable`), as the controller's headers
/// leave them out; a record whose nodes do not name their boots yet keeps
/// them.
pub fn header_of(record: &SessionRecord) -> SessionRecord {
    let mut header = record.clone();
    if header.rollout.node_lists_derivable() {
        for step in &mut header.rollout.steps {
            step.nodes = Vec::new();
            for boot in &mut step.boots {
                boot.nodes = Vec::new();
            }
        }
    }
    header.rollout.nodes = NodeList::default();
    header
}
