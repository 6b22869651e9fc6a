//! The workload manager of the model: jobs end, arrive and start, first come
//! first served with EASY backfilling, on the lowest-weight free nodes.

use std::collections::VecDeque;

use super::{Job, Machine, Waiting};
use crate::dry_run::outlook::JobShape;
use crate::time::Timestamp;

impl Machine {
    pub(super) fn add_job(
        &mut self,
        ends: Timestamp,
        ends_by: Option<Timestamp>,
        nodes: Vec<usize>,
    ) {
        let job = self.jobs.len();
        for &node in &nodes {
            self.nodes[node].job = Some(job);
            self.touched(node, self.now);
        }
        self.ends.insert((ends, job));
        self.jobs.push(Job {
            ends,
            ends_by,
            nodes,
        });
    }

    pub(super) fn waiting(&mut self, shape: JobShape) -> Waiting {
        let runs = shape.ran.unwrap_or_else(|| {
            self.outlook
                .draw_run(shape.limit, self.settings.unknown_job_end, &mut self.draws)
        });
        Waiting {
            nodes: shape.nodes,
            limit: shape.limit,
            runs,
        }
    }

    /// Whether a job may start on `node` now.
    pub(super) fn is_free(&self, node: usize) -> bool {
        let node = &self.nodes[node];
        node.job.is_none() && !node.drained && !node.unavailable && node.back_at.is_none()
    }

    /// Whether `node` returns to service when its job ends.
    pub(super) fn returns_to_service(&self, node: usize) -> bool {
        let node = &self.nodes[node];
        !node.drained && !node.unavailable && node.back_at.is_none()
    }

    /// Plays every job end and arrival up to `target`, in time order.
    pub fn advance_to(&mut self, target: Timestamp) {
        loop {
            let end = self.ends.first().map(|(at, _)| *at);
            let arrival = self.arrivals.peek();
            let Some(at) = [end, arrival].into_iter().flatten().min() else {
                break;
            };
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            while let Some(&(when, job)) = self.ends.first() {
                if when > at {
                    break;
                }
                self.ends.pop_first();
                self.end_job(job);
            }
            while self.arrivals.peek().is_some_and(|when| when <= at) {
                let Some((_, shape)) = self.arrivals.pop() else {
                    break;
                };
                let waiting = self.waiting(shape);
                self.queue.push_back(waiting);
            }
            self.schedule();
        }
        self.now = self.now.max(target);
    }

    pub(super) fn end_job(&mut self, job: usize) {
        let nodes = std::mem::take(&mut self.jobs[job].nodes);
        for position in nodes {
            let node = &mut self.nodes[position];
            if node.job == Some(job) {
                node.job = None;
                if node.drained && node.back_at.is_none() {
                    node.trace.quiet_at = Some(self.now);
                }
                self.touched(position, self.now);
            }
        }
    }

    /// Starts what first come, first served with EASY backfilling starts
    /// now, on the lowest-weight free nodes, lowest-numbered among equals.
    pub(super) fn schedule(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let mut free: Vec<usize> = (0..self.nodes.len())
            .filter(|&node| self.is_free(node))
            .collect();
        if free.is_empty() {
            return;
        }
        // Lowest weight first, then lowest-numbered (stable), as Slurm picks.
        if self.weights_set {
            free.sort_by_key(|&node| self.nodes[node].weight);
        }
        let mut free = VecDeque::from(free);
        // First come, first served while jobs fit.
        while let Some(job) = self.queue.front().copied() {
            if !self.fits(&job, &free) {
                break;
            }
            self.queue.pop_front();
            self.start(job, &mut free);
        }
        let Some(head) = self.queue.front().copied() else {
            return;
        };
        if free.is_empty() {
            return;
        }
        // The head's reservation: when enough nodes come back by the jobs'
        // limits; `spare` nodes beyond its need are free then.
        let mut releases: Vec<(Timestamp, usize)> = self
            .jobs
            .iter()
            .filter(|job| !job.nodes.is_empty())
            .filter_map(|job| {
                let back = job
                    .nodes
                    .iter()
                    .filter(|&&node| self.returns_to_service(node))
                    .count();
                Some((job.ends_by?, back)).filter(|(_, back)| *back > 0)
            })
            .collect();
        releases.sort_unstable();
        let mut available = free.len();
        let mut reservation = None;
        for (at, nodes) in releases {
            available += nodes;
            if available >= head.nodes {
                reservation = Some((at, available - head.nodes));
                break;
            }
        }
        let (shadow, mut spare) = match reservation {
            Some((at, spare)) => (Some(at), spare),
            None => (None, usize::MAX),
        };
        let mut position = 1;
        while position < self.queue.len() && !free.is_empty() {
            let job = self.queue[position];
            let fits = self.fits(&job, &free);
            let ends_in_time = match (shadow, job.limit) {
                (None, _) => true,
                (Some(shadow), Some(limit)) => self.now + limit <= shadow,
                (Some(_), None) => false,
            };
            if fits && (ends_in_time || job.nodes <= spare) {
                if !ends_in_time {
                    spare -= job.nodes;
                }
                let _ = self.queue.remove(position);
                self.start(job, &mut free);
            } else {
                position += 1;
            }
        }
    }

    /// Whether a job limited to `limit` may start on `node` now, by crus's
    /// reservation of it: as in Slurm, only if it ends by its limit before
    /// the reservation begins.
    fn reservation_allows(&self, node: usize, limit: Option<std::time::Duration>) -> bool {
        match self.nodes[node].reserved_from {
            None => true,
            Some(from) => limit.is_some_and(|limit| self.now + limit <= from),
        }
    }

    /// Whether `job` may start now on nodes of `free`.
    fn fits(&self, job: &Waiting, free: &VecDeque<usize>) -> bool {
        if !self.reserving {
            return job.nodes <= free.len();
        }
        free.iter()
            .filter(|&&node| self.reservation_allows(node, job.limit))
            .take(job.nodes)
            .count()
            == job.nodes
    }

    pub(super) fn start(&mut self, job: Waiting, free: &mut VecDeque<usize>) {
        let nodes: Vec<usize> = if self.reserving {
            // The first free nodes, in weight order, the reservations let it have.
            let mut chosen = Vec::with_capacity(job.nodes);
            free.retain(|&node| {
                let take = chosen.len() < job.nodes && self.reservation_allows(node, job.limit);
                if take {
                    chosen.push(node);
                }
                !take
            });
            chosen
        } else {
            free.drain(..job.nodes.min(free.len())).collect()
        };
        let ends_by = job.limit.map(|limit| self.now + limit);
        let ends = self.now + job.runs;
        self.add_job(ends, ends_by, nodes);
    }
}
