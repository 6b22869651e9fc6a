//! Node reservations in the simulated workload manager, as Slurm has them
//! for `reserve_ahead` (one maintenance reservation per node, from a start
//! time on, that ignores the jobs running then): a job starts on a
//! reserved node only if its time limit ends by the reservation's start,
//! and a job without a limit never does; jobs already running are left to
//! run; the node is drained, booted and resumed as any other. Set again, a
//! node's reservation moves; removed, it is gone.
//!
//! With any node reserved, jobs are placed node by node: first come, first
//! served while the first job in the queue finds enough free nodes it is
//! allowed on, then EASY backfilling behind it, its start (the shadow)
//! judged by node counts as [`super::scheduler::easy_backfill`] judges it;
//! a later job starts when enough free nodes allow it and it either ends
//! before the shadow or fits in the nodes the first job will not need.
//! Without reservations `easy_backfill` decides alone, as before.

use std::time::Duration;

use crus_core::{NodeId, Result, Timestamp};

use super::SimCluster;
use super::model::Model;
use super::scheduler::{self, Release};

impl Model {
    /// Reserves each node from its time on, replacing its reservation.
    pub(super) fn reserve_from(&mut self, reservations: &[(NodeId, Timestamp)]) -> Result<()> {
        let ids: Vec<NodeId> = reservations.iter().map(|(id, _)| id.clone()).collect();
        let indexes = self.indexes(&ids)?;
        for (index, (_, from)) in indexes.into_iter().zip(reservations) {
            self.nodes[index].reserved_from = Some(*from);
        }
        Ok(())
    }

    /// Removes the reservations of `nodes`; a node without one is left as it is.
    pub(super) fn unreserve(&mut self, nodes: &[NodeId]) -> Result<()> {
        for index in self.indexes(nodes)? {
            self.nodes[index].reserved_from = None;
        }
        Ok(())
    }

    /// Which of `nodes` are reserved, in order.
    pub(super) fn reserved_nodes(&self, nodes: &[NodeId]) -> Result<Vec<NodeId>> {
        Ok(self
            .indexes(nodes)?
            .into_iter()
            .zip(nodes)
            .filter(|(index, _)| self.nodes[*index].reserved_from.is_some())
            .map(|(_, id)| id.clone())
            .collect())
    }

    /// Whether a job limited to `limit` may start on node `index` now.
    fn reservation_allows(&self, index: usize, limit: Option<Duration>) -> bool {
        match self.nodes[index].reserved_from {
            None => true,
            Some(from) => limit.is_some_and(|limit| self.now + limit <= from),
        }
    }

    /// The first `nodes` of `free` (in the order given) a job limited to
    /// `limit` may start on, if there are that many.
    fn allowed_nodes(
        &self,
        free: &[usize],
        nodes: usize,
        limit: Option<Duration>,
    ) -> Option<Vec<usize>> {
        let chosen: Vec<usize> = free
            .iter()
            .copied()
            .filter(|&index| self.reservation_allows(index, limit))
            .take(nodes)
            .collect();
        (chosen.len() == nodes).then_some(chosen)
    }

    /// Starts what may start now on `free` (lowest weight first), honouring
    /// the reservations (see the module documentation).
    pub(super) fn schedule_around_reservations(&mut self, mut free: Vec<usize>) {
        let mut started: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut head = 0;
        while let Some(job) = self.queue.get(head) {
            let Some(nodes) = self.allowed_nodes(&free, job.nodes, job.requested_time) else {
                break;
            };
            free.retain(|index| !nodes.contains(index));
            started.push((head, nodes));
            head += 1;
        }
        if let Some(first) = self.queue.get(head)
            && !free.is_empty()
        {
            let mut releases = self.releases();
            releases.extend(started.iter().map(|(index, nodes)| {
                Release {
                    at: self.queue[*index]
                        .requested_time
                        .map(|limit| self.now + limit),
                    nodes: nodes.len(),
                }
            }));
            let (shadow, mut spare) = match scheduler::reserve(free.len(), first.nodes, releases) {
                Some((at, spare)) => (Some(at), spare),
                None => (None, usize::MAX),
            };
            for (index, job) in self.queue.iter().enumerate().skip(head + 1) {
                if free.is_empty() {
                    break;
                }
                let ends_in_time = match (shadow, job.requested_time) {
                    (None, _) => true,
                    (Some(shadow), Some(limit)) => self.now + limit <= shadow,
                    (Some(_), None) => false,
                };
                if !ends_in_time && job.nodes > spare {
                    continue;
                }
                let Some(nodes) = self.allowed_nodes(&free, job.nodes, job.requested_time) else {
                    continue;
                };
                if !ends_in_time {
                    spare -= job.nodes;
                }
                free.retain(|index| !nodes.contains(index));
                started.push((index, nodes));
            }
        }
        if !started.is_empty() {
            self.start_queued(started);
        }
    }
}

impl SimCluster {
    /// Drops every reservation, as a `slurmctld` that crashed before
    /// saving them would, for tests.
    pub fn lose_reservations(&self) {
        let mut model = self.lock();
        for node in &mut model.nodes {
            node.reserved_from = None;
        }
        model.after_change();
    }

    /// When crus's reservation of `node` begins, if it has one, for tests.
    pub fn reservation_of(&self, node: &NodeId) -> Option<Timestamp> {
        let model = self.lock();
        let index = model.index(node)?;
        model.nodes[index].reserved_from
    }
}
