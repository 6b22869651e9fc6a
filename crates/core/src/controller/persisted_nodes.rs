//! What the store holds of a session's nodes, as the controller last wrote
//! them, so each persist hands the store only the nodes that changed
//! ([`crate::store::SessionDelta`]) instead of the whole record.
//!
//! Every node is compared with its copy here at each persist: a node's
//! record changes not only while its step is worked on but also while it
//! waits (an administrator's drain observed and marked, its own scheduling
//! weight read before `steer_jobs` raises it), and a delta that missed such
//! a change would lose it at a restart. The comparison is cheap beside the
//! write it saves (no encoding, no IO); only the nodes that differ are
//! written.

use crate::rollout::{NodeRecord, RolloutState};

/// The nodes of one session as its store holds them.
#[derive(Debug)]
pub(super) struct PersistedNodes {
    /// Every node, as last written.
    nodes: Vec<NodeRecord>,
}

impl PersistedNodes {
    /// What the store holds after writing (or reading) `state`.
    pub(super) fn of(state: &RolloutState) -> Self {
        PersistedNodes {
            nodes: state.nodes.clone(),
        }
    }

    /// The positions of the nodes of `state` that differ from the stored
    /// ones, in increasing order; `None` when the node list itself changed
    /// (its length), and the store must replace it whole.
    pub(super) fn changes(&self, state: &RolloutState) -> Option<Vec<usize>> {
        if state.nodes.len() != self.nodes.len() {
            return None;
        }
        Some(
            state
                .nodes
                .iter()
                .zip(&self.nodes)
                .enumerate()
                .filter(|(_, (now, stored))| now != stored)
                .map(|(position, _)| position)
                .collect(),
        )
    }

    /// The store took `state` with the nodes at `changed` written (`None`:
    /// all of them).
    pub(super) fn written(&mut self, state: &RolloutState, changed: Option<&[usize]>) {
        match changed {
            Some(positions) if state.nodes.len() == self.nodes.len() => {
                for &position in positions {
                    if let (Some(stored), Some(node)) =
                        (self.nodes.get_mut(position), state.nodes.get(position))
                    {
                        stored.clone_from(node);
                    }
                }
            }
            _ => self.nodes = state.nodes.clone(),
        }
    }
}
