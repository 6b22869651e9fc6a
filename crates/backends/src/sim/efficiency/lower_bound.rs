//! A lower bound on the makespan of any rolling upgrade that never reboots a
//! node running a job and never has more than `step` nodes out of service.
//!
//! # Derivation
//!
//! Let the upgrade start at time 0 with `N` nodes; node `i` runs jobs that end
//! (by their real run time, which no policy can shorten) at `r_i ≥ 0`, with
//! `r_i = 0` for an idle node. Every boot takes at least `b`.
//!
//! In any allowed upgrade, node `i` is booted once, and its boot cannot begin
//! before `r_i` (no reboot with a running job); it is out of service at least
//! for the whole boot, `[t_i, t_i + b]`, and at most `S` (the step) nodes are
//! out of service at any instant. So every upgrade is a schedule of `N` tasks
//! of length `b` with release times `r_i` on `S` identical machines, and its
//! makespan is at least the optimal makespan of that scheduling problem.
//! The relaxation forgets everything else that only delays an upgrade: time
//! spent drained before the boot, new jobs starting on a node not yet
//! drained, the controller's polling, returning the node to service.
//!
//! With equal task lengths, *earliest release first* on the machine free
//! soonest is optimal (problem `P | r_j, p_j = p | C_max`): in any schedule two
//! tasks that start out of release order can swap their slots (equal lengths,
//! and the earlier-released task is released before the later start) without
//! changing the makespan; in release order, starting each task as early as a
//! machine allows is then optimal. [`makespan_lower_bound`] computes exactly
//! that schedule. It is at least each of these closed forms, printed with it:
//!
//! - `max_i r_i + b`: the last job to end, then one boot;
//! - `⌈N / S⌉ · b`: `N` boots, `S` at a time;
//! - `max_k (r_(k) + ⌈(N − k + 1) / S⌉ · b)` with `r` sorted ascending and
//!   `k` from 1: the `N − k + 1` nodes released last cannot start before
//!   `r_(k)`, and need that many rounds of `S` boots after it (the two forms
//!   above are its cases `k = N` and `k = 1`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The bound and the closed forms it dominates, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LowerBound {
    /// The bound: the optimal makespan of the relaxed problem (earliest
    /// release first on `step` machines).
    pub makespan_s: f64,
    /// `max_i r_i + b`: the last running job's end, then one boot.
    pub last_job_then_boot_s: f64,
    /// `⌈N / S⌉ · b`: every boot, `S` at a time.
    pub boot_rounds_s: f64,
    /// `max_k (r_(k) + ⌈(N − k + 1) / S⌉ · b)`: the tightest closed form.
    pub tail_rounds_s: f64,
}

/// The lower bound for `step` nodes out of service at once, when node `i`'s
/// running jobs end `job_ends[i]` after the upgrade starts and each boot
/// takes at least `boot`. See the module documentation for the derivation.
///
/// A `step` of 0 is taken as 1 (no upgrade can take a node with no room).
pub fn makespan_lower_bound(job_ends: &[Duration], step: usize, boot: Duration) -> LowerBound {
    let step = step.max(1);
    let mut releases: Vec<Duration> = job_ends.to_vec();
    releases.sort_unstable();
    let nodes = releases.len();

    // Earliest release first, each task on the machine free soonest.
    let mut machines_free_at = vec![Duration::ZERO; step.min(nodes.max(1))];
    let mut makespan = Duration::ZERO;
    for &release in &releases {
        let Some(machine) = machines_free_at.iter_mut().min_by_key(|free_at| **free_at) else {
            break;
        };
        let end = release.max(*machine) + boot;
        *machine = end;
        makespan = makespan.max(end);
    }

    let rounds =
        |remaining: usize| boot * u32::try_from(remaining.div_ceil(step)).unwrap_or(u32::MAX);
    let last_job_then_boot = releases.last().map_or(Duration::ZERO, |&last| last + boot);
    let tail_rounds = releases
        .iter()
        .enumerate()
        .map(|(index, &release)| release + rounds(nodes - index))
        .max()
        .unwrap_or(Duration::ZERO);
    LowerBound {
        makespan_s: makespan.as_secs_f64(),
        last_job_then_boot_s: last_job_then_boot.as_secs_f64(),
        boot_rounds_s: rounds(nodes).as_secs_f64(),
        tail_rounds_s: tail_rounds.as_secs_f64(),
    }
}

/// The derivation, as printed with the results.
pub const DERIVATION: &str = "\
Per start point and step S: node i's running jobs end r_i after the \
upgrade starts (0 if idle; real run times, which no policy can shorten); its boot (b = shortest \
boot) cannot start before r_i, since no node is rebooted with a running job, and a booting node is \
out of service, so at most S boot at once. Every allowed upgrade is therefore a schedule of N tasks \
of length b with release times r_i on S machines; the bound is that problem's optimum, which \
earliest-release-first on the machine free soonest attains (equal task lengths). It ignores drain \
waits, new jobs landing on nodes not yet drained, controller polling and the return to service, \
which only add time. It is at least max(max_i r_i + b, ceil(N/S)*b, \
max_k r_(k) + ceil((N-k+1)/S)*b). The spread policy has a tighter constraint (one node per chassis) \
that this bound does not use.";

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(values: &[u64]) -> Vec<Duration> {
        values
            .iter()
            .map(|&m| Duration::from_secs(m * 60))
            .collect()
    }

    #[test]
    fn a_hand_computed_case() {
        // Five nodes, two out at once, 10-minute boots; jobs end at 0, 0, 5, 30
        // and 31 minutes. Earliest release first on two machines:
        //   A: node r=0  0→10, then r=5  10→20, then r=31 31→41
        //   B: node r=0  0→10, then r=30 30→40
        // so 41 minutes. Closed forms: 31+10 = 41; ceil(5/2)*10 = 30;
        // tail max over k: 0+30, 0+20, 5+20, 30+10, 31+10 = 41.
        let bound = makespan_lower_bound(&minutes(&[30, 0, 5, 31, 0]), 2, Duration::from_secs(600));
        assert_eq!(bound.makespan_s, 41.0 * 60.0);
        assert_eq!(bound.last_job_then_boot_s, 41.0 * 60.0);
        assert_eq!(bound.boot_rounds_s, 30.0 * 60.0);
        assert_eq!(bound.tail_rounds_s, 41.0 * 60.0);
    }

    #[test]
    fn queueing_behind_busy_machines_is_counted() {
        // Two machines, 10-minute boots, releases 0, 9, 9 and 9 minutes.
        // A: 0→10, then a node released at 9 waits for A: 10→20.
        // B: 9→19, then the last waits for B: 19→29.
        // The tail form gives 9 + ceil(3/2)*10 = 29 as well.
        let bound = makespan_lower_bound(&minutes(&[0, 9, 9, 9]), 2, Duration::from_secs(600));
        assert_eq!(bound.makespan_s, 29.0 * 60.0);
        assert_eq!(bound.tail_rounds_s, 29.0 * 60.0);
        assert!(bound.makespan_s >= bound.last_job_then_boot_s);
        assert!(bound.makespan_s >= bound.boot_rounds_s);
    }

    #[test]
    fn idle_machine_in_one_round_and_no_nodes_at_all() {
        let bound = makespan_lower_bound(&minutes(&[0; 8]), 8, Duration::from_secs(600));
        assert_eq!(bound.makespan_s, 600.0);
        let empty = makespan_lower_bound(&[], 8, Duration::from_secs(600));
        assert_eq!(empty.makespan_s, 0.0);
        assert_eq!(empty.boot_rounds_s, 0.0);
    }
}
