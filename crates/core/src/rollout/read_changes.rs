//! Reads of the workload manager that leave out the nodes whose answer would
//! only repeat the last one, for a caller that says when each node changes.
//!
//! A dry run's model of the machine knows exactly when each node's workload
//! changes (a job starts or ends, a drain, a boot ends, a resume). Reading a
//! node that did not change since the engine last read it gives the same
//! answer again, and for the nodes below the same answer again changes
//! nothing. At 100,000 nodes such repeats were most of a forecast's work:
//! the pending nodes' drain costs are read again every few minutes, and the
//! draining nodes at every poll, though few of them changed.
//!
//! A caller that calls [`Rollout::report_workload_changes`] promises to call
//! [`Rollout::workload_changed`] for every change of a node's workload state
//! before the engine's next read; reads then name only the nodes that may
//! answer differently or whose answer still matters. A real session never
//! calls it: the real workload manager cannot say what changed, so its reads
//! name every node, as before.

use std::collections::BTreeSet;

use super::*;

/// What a caller that reports changes told, and what the engine last read.
#[derive(Debug, Clone, Default)]
pub(super) struct ReadChanges {
    /// When each node's workload last changed (or will change: a boot's end
    /// is known when it starts), by node index.
    changed_at: Vec<Timestamp>,
    /// What the last read of each node said, by node index.
    last_read: Vec<Option<LastRead>>,
    /// The pending nodes a read of the drain costs must name once every
    /// pending node was read: those changed since their last read, last read
    /// out of service or marked (the foreign-mark rules apply to them), or
    /// moved back to pending since. The others are unchanged and in service,
    /// so a read of the pending nodes walks only these.
    to_read: BTreeSet<usize>,
    /// Whether a read of every pending node was answered (the first read of
    /// the drain costs): from then on `to_read` holds every pending node
    /// worth reading but those drained ahead.
    pending_scanned: bool,
}

/// The part of a node's last read that decides whether reading it again can
/// change anything.
#[derive(Debug, Clone, Copy)]
struct LastRead {
    /// When it was read.
    at: Timestamp,
    /// Its state then.
    state: WorkloadState,
    /// Whether it carried a reason or did not respond: such answers feed the
    /// foreign-mark and health rules, so they are always read again.
    marked: bool,
}

impl ReadChanges {
    /// When `node`'s workload last changed, as told (never: the epoch).
    fn changed_at(&self, node: usize) -> Timestamp {
        self.changed_at
            .get(node)
            .copied()
            .unwrap_or(Timestamp::EPOCH)
    }

    fn slot<T: Default + Clone>(list: &mut Vec<T>, node: usize) -> &mut T {
        if list.len() <= node {
            list.resize(node + 1, T::default());
        }
        &mut list[node]
    }
}

impl Rollout {
    /// From now on the caller tells every change of a node's workload state
    /// with [`Rollout::workload_changed`], before the engine's next read;
    /// reads leave out the nodes whose answer would change nothing. Only the
    /// dry run's model of the machine can promise this.
    pub fn report_workload_changes(&mut self) {
        self.read_changes = Some(ReadChanges::default());
    }

    /// `node`'s workload state changed at `at` (or will, at a known time
    /// such as a boot's end). Ignored unless the caller promised to report
    /// changes, and for nodes not in the session.
    pub fn workload_changed(&mut self, node: &NodeId, at: Timestamp) {
        let Some(&position) = self.index.get(node) else {
            return;
        };
        if let Some(changes) = &mut self.read_changes {
            let changed = ReadChanges::slot(&mut changes.changed_at, position);
            *changed = (*changed).max(at);
            if self.state.nodes[position].phase == NodePhase::Pending {
                changes.to_read.insert(position);
            }
        }
    }

    /// `node` moved from phase `from` to `to`: a node back to pending has
    /// its drain cost read again whatever its last read said; one that left
    /// pending is no longer read for it (`to_read` holds pending nodes only).
    pub(super) fn note_pending_move(&mut self, node: usize, from: NodePhase, to: NodePhase) {
        if let Some(changes) = &mut self.read_changes {
            if to == NodePhase::Pending {
                changes.to_read.insert(node);
            } else if from == NodePhase::Pending {
                changes.to_read.remove(&node);
            }
        }
    }

    /// The pending nodes a read of the drain costs may name, in inventory
    /// order, when changes are reported and every pending node was read
    /// once: found without walking every pending node, and a superset of
    /// those worth reading (the read keeps those, `worth_reading`). `None`
    /// when every pending node is to be walked.
    pub(super) fn pending_to_read(&self) -> Option<Vec<usize>> {
        let changes = self.read_changes.as_ref()?;
        if !changes.pending_scanned {
            return None;
        }
        let mut nodes: Vec<usize> = changes
            .to_read
            .iter()
            .chain(self.state.drained_ahead.iter())
            .copied()
            // Drained ahead, a node may be in any phase.
            .filter(|&node| self.state.nodes[node].phase == NodePhase::Pending)
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        Some(nodes)
    }

    /// Whether a read should name `node`: always, unless changes are
    /// reported, the node did not change since its last read, and reading
    /// the same answer again is known to change nothing (see
    /// `observe_workload`):
    /// - a pending node last read in service and unmarked: its drain cost is
    ///   the same, and it has no foreign mark to clear;
    /// - a draining node last read still draining (its jobs running) and
    ///   unmarked: it is not quiet, not returned to service, not held by
    ///   someone else.
    ///
    /// Nodes drained ahead or carrying a foreign mark are always read, and
    /// so is everything under a capacity floor (which counts every node
    /// read) or while a halted session reverts.
    pub(super) fn worth_reading(&self, node: usize) -> bool {
        let Some(changes) = &self.read_changes else {
            return true;
        };
        if self.state.policy.min_available.is_some() || self.state.reverting.is_some() {
            return true;
        }
        let Some(Some(last)) = changes.last_read.get(node) else {
            return true;
        };
        if changes.changed_at(node) >= last.at || last.marked {
            return true;
        }
        let record = &self.state.nodes[node];
        if record.foreign.is_some() || self.is_drained_ahead(node) {
            return true;
        }
        let repeat_changes_nothing = match record.phase {
            NodePhase::Pending => {
                matches!(last.state, WorkloadState::Idle | WorkloadState::Allocated)
            }
            NodePhase::Draining => last.state == WorkloadState::Draining,
            _ => false,
        };
        !repeat_changes_nothing
    }

    /// A read that asked for every pending node's drain cost was answered.
    pub(super) fn note_pending_costs_read(&mut self) {
        if let Some(changes) = &mut self.read_changes {
            changes.pending_scanned = true;
        }
    }

    /// Notes what a read said of `node`, when changes are reported.
    pub(super) fn note_read(&mut self, node: usize, report: &WorkloadNode, now: Timestamp) {
        if let Some(changes) = &mut self.read_changes {
            let last = LastRead {
                at: now,
                state: report.state,
                marked: report.reason.is_some() || !report.responding,
            };
            *ReadChanges::slot(&mut changes.last_read, node) = Some(last);
            let changed_at = changes.changed_at(node);
            // A foreign mark comes only from a read with a reason (`marked`).
            let in_service = matches!(last.state, WorkloadState::Idle | WorkloadState::Allocated);
            let pending = self.state.nodes[node].phase == NodePhase::Pending;
            if pending && (changed_at >= now || last.marked || !in_service) {
                changes.to_read.insert(node);
            } else {
                changes.to_read.remove(&node);
            }
        }
    }
}
