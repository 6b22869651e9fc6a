//! The batch scheduler of the simulated cluster: first come, first served,
//! with EASY backfilling (Lifka 1995, the default of Slurm's backfill plugin
//! in spirit).
//!
//! Jobs start in queue order while they fit. The first job that does not fit
//! (the head) gets a reservation: the earliest time enough nodes come free,
//! judged from running jobs' time limits (nodes held out of service do not
//! come free). A later job may start now, out of order, only if it fits now
//! and either ends, by its time limit, before the reservation, or uses only
//! nodes the head will not need then. So backfilling never delays the head.
//!
//! This module decides *which* jobs start, by node counts only; the cluster
//! model picks *which* nodes (lowest index first).

use std::time::Duration;

use crus_core::Timestamp;

/// A queued job, as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Candidate {
    /// Nodes it needs.
    pub nodes: usize,
    /// Its time limit; `None` for no limit.
    pub requested_time: Option<Duration>,
}

/// Nodes a running job gives back to service when its time limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Release {
    /// When, by the job's time limit; `None` when it has none.
    pub at: Option<Timestamp>,
    /// How many of its nodes come back into service.
    pub nodes: usize,
}

/// Which of `queue` (by index, in start order) start now on `free_nodes` free
/// nodes. `releases` lists what running jobs give back; it is only asked for
/// when some job has to wait.
pub(super) fn easy_backfill(
    now: Timestamp,
    mut free_nodes: usize,
    queue: &[Candidate],
    releases: impl FnOnce() -> Vec<Release>,
) -> Vec<usize> {
    let mut started = Vec::new();
    let mut head = 0;
    // First come, first served while the jobs fit.
    while let Some(job) = queue.get(head) {
        if job.nodes > free_nodes {
            break;
        }
        free_nodes -= job.nodes;
        started.push(head);
        head += 1;
    }
    let Some(head_job) = queue.get(head) else {
        return started;
    };
    if free_nodes == 0 {
        return started;
    }

    let mut releases = releases();
    // Jobs just started release their nodes too; they may bring the reservation forward.
    releases.extend(started.iter().map(|&index| Release {
        at: queue[index].requested_time.map(|limit| now + limit),
        nodes: queue[index].nodes,
    }));
    let reservation = reserve(free_nodes, head_job.nodes, releases);

    // `spare`: nodes free at the reservation beyond what the head needs.
    let (shadow_time, mut spare) = match reservation {
        Some((at, spare)) => (Some(at), spare),
        None => (None, usize::MAX),
    };
    for (index, job) in queue.iter().enumerate().skip(head + 1) {
        if free_nodes == 0 {
            break;
        }
        if job.nodes > free_nodes {
            continue;
        }
        let ends_before_reservation = match (shadow_time, job.requested_time) {
            (None, _) => true,
            (Some(shadow), Some(limit)) => now + limit <= shadow,
            (Some(_), None) => false,
        };
        if ends_before_reservation {
            free_nodes -= job.nodes;
            started.push(index);
        } else if job.nodes <= spare {
            free_nodes -= job.nodes;
            spare -= job.nodes;
            started.push(index);
        }
    }
    started
}

/// The head's reservation: the earliest time `needed` nodes are free, and how
/// many nodes beyond `needed` are free then. `None` when that never happens.
pub(super) fn reserve(
    free_nodes: usize,
    needed: usize,
    mut releases: Vec<Release>,
) -> Option<(Timestamp, usize)> {
    releases.retain(|release| release.at.is_some() && release.nodes > 0);
    releases.sort_by_key(|release| release.at);
    let mut available = free_nodes;
    for release in releases {
        available += release.nodes;
        if available >= needed {
            return Some((release.at?, available - needed));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(nodes: usize, minutes: u64) -> Candidate {
        Candidate {
            nodes,
            requested_time: Some(Duration::from_secs(minutes * 60)),
        }
    }

    fn release(nodes: usize, minutes: i64) -> Release {
        Release {
            at: Some(Timestamp::from_secs(minutes * 60)),
            nodes,
        }
    }

    const NOW: Timestamp = Timestamp::EPOCH;

    #[test]
    fn first_come_first_served_while_jobs_fit() {
        let queue = [job(2, 10), job(1, 10), job(1, 10)];
        assert_eq!(easy_backfill(NOW, 4, &queue, Vec::new), [0, 1, 2]);
        assert_eq!(easy_backfill(NOW, 3, &queue, Vec::new), [0, 1]);
    }

    #[test]
    fn backfills_short_jobs_before_the_reservation_only() {
        // 4 nodes free, 4 busy until minute 30; the head needs all 8.
        let queue = [job(8, 60), job(2, 30), job(2, 31), job(4, 10)];
        let started = easy_backfill(NOW, 4, &queue, || vec![release(4, 30)]);
        // Job 1 ends by the reservation; job 2 would end after it and the head
        // needs every node then; job 3 no longer fits in the 2 nodes left.
        assert_eq!(started, [1]);
        let started = easy_backfill(NOW, 4, &[job(8, 60), job(2, 31), job(2, 10)], || {
            vec![release(4, 30)]
        });
        assert_eq!(started, [2]);
    }

    #[test]
    fn long_jobs_backfill_on_nodes_the_head_does_not_need() {
        // The head needs 6 of the 8 nodes free at minute 30: 2 are spare.
        let queue = [job(6, 60), job(2, 600), job(1, 600)];
        let started = easy_backfill(NOW, 4, &queue, || vec![release(4, 30)]);
        assert_eq!(started, [1]);
    }

    #[test]
    fn held_nodes_never_release_so_anything_that_fits_runs() {
        // The head can never run (its nodes are held out of service): no reservation.
        let queue = [job(8, 60), job(2, 600), job(2, 600)];
        let started = easy_backfill(NOW, 4, &queue, || {
            vec![Release {
                at: Some(NOW),
                nodes: 0,
            }]
        });
        assert_eq!(started, [1, 2]);
    }

    #[test]
    fn unlimited_jobs_never_release() {
        let queue = [job(8, 60), job(2, 600)];
        let started = easy_backfill(NOW, 4, &queue, || vec![Release { at: None, nodes: 4 }]);
        assert_eq!(started, [1]);
    }
}
