//! What the store holds of a session's nodes, as the controller last wrote
//! them, so each persist hands the store only the nodes that changed
//! ([`crate::store::SessionDelta`]) instead of the whole record.
//!
//! Finding them must not cost a pass over every node (a 100,000-node
//! session persists about ten times a step): a node's record changes only
//! while it belongs to a step being worked on (it is taken into one, moved
//! through its phases, failed or soaked), or when the session as a whole
//! moves (its snapshot is taken, it is cancelled and its pending nodes are
//! skipped, its stage changes). So the nodes looked at are those of the
//! steps unfinished now or at the last write, and every node when the
//! stage, the cancellation or the node count changed; each is compared with
//! its copy here, and only those that differ are written. Tests check the
//! shortcut against a comparison of every node at every write.

use std::collections::BTreeSet;

use crate::rollout::{NodeRecord, RolloutState, Stage};

/// The nodes of one session as its store holds them.
#[derive(Debug)]
pub(super) struct PersistedNodes {
    /// Every node, as last written.
    nodes: Vec<NodeRecord>,
    /// The steps unfinished at the last write: their nodes may have changed
    /// since, even if the steps finished meanwhile.
    open_steps: BTreeSet<u32>,
    /// The stage at the last write.
    stage: Stage,
    /// Whether the session was cancelled at the last write.
    cancelled: bool,
}

impl PersistedNodes {
    /// What the store holds after writing (or reading) `state`.
    pub(super) fn of(state: &RolloutState) -> Self {
        PersistedNodes {
            nodes: state.nodes.clone(),
            open_steps: open_steps(state),
            stage: state.stage,
            cancelled: state.cancelled,
        }
    }

    /// The positions of the nodes of `state` that differ from the stored
    /// ones, in increasing order; `None` when the node list itself changed
    /// (its length), and the store must replace it whole.
    pub(super) fn changes(&self, state: &RolloutState) -> Option<Vec<usize>> {
        if state.nodes.len() != self.nodes.len() {
            return None;
        }
        let changed = if state.stage != self.stage || state.cancelled != self.cancelled {
            self.differing(state, 0..state.nodes.len())
        } else {
            let mut candidates: Vec<usize> = state
                .steps
                .iter()
                .filter(|step| !step.finished || self.open_steps.contains(&step.number))
                .flat_map(|step| step.nodes.iter().copied())
                .collect();
            candidates.sort_unstable();
            candidates.dedup();
            self.differing(state, candidates.into_iter())
        };
        #[cfg(test)]
        {
            let every = self.differing(state, 0..state.nodes.len());
            assert_eq!(
                changed, every,
                "a node changed outside the steps being worked on: the delta would miss it"
            );
        }
        Some(changed)
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
        self.open_steps = open_steps(state);
        self.stage = state.stage;
        self.cancelled = state.cancelled;
    }

    /// Those of `positions` whose node differs from the stored one.
    fn differing(
        &self,
        state: &RolloutState,
        positions: impl Iterator<Item = usize>,
    ) -> Vec<usize> {
        positions
            .filter(|&position| state.nodes.get(position) != self.nodes.get(position))
            .collect()
    }
}

/// The numbers of the steps of `state` not finished yet.
fn open_steps(state: &RolloutState) -> BTreeSet<u32> {
    state.active_steps().map(|step| step.number).collect()
}
