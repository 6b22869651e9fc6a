//! The rollout's persisted state without its nodes: the header of a store
//! write that sends only the nodes that changed (see
//! `crate::store::SessionDelta`).

use super::*;

impl Rollout {
    /// A copy of the persisted state whose `nodes` is empty, and whose
    /// steps and boots leave their node lists out (the nodes say the same,
    /// see `step_lists.rs`), so its size does not grow with the machine.
    /// Made without copying the nodes or the lists (they are lent out of
    /// the state for the copy and put back at once).
    pub fn header_state(&mut self) -> RolloutState {
        let nodes = std::mem::take(&mut self.state.nodes);
        let lists = self.state.take_node_lists();
        let header = self.state.clone();
        self.state.put_node_lists(lists);
        self.state.nodes = nodes;
        header
    }

    /// The store took the nodes as they are now: the next persist hands it
    /// only those changed from here (see [`super::NodeList`]).
    pub fn mark_nodes_written(&mut self) {
        self.state.nodes.mark_written();
    }
}
