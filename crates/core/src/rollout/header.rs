//! The rollout's persisted state without its nodes: the header of a store
//! write that sends only the nodes that changed (see
//! `crate::store::SessionDelta`).

use super::*;

impl Rollout {
    /// A copy of the persisted state whose `nodes` is empty, made without
    /// copying the nodes (they are lent out of the state for the copy and
    /// put back at once).
    pub fn header_state(&mut self) -> RolloutState {
        let nodes = std::mem::take(&mut self.state.nodes);
        let header = self.state.clone();
        self.state.nodes = nodes;
        header
    }
}
