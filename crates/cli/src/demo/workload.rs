//! Which jobs `crus demo` replays when no trace is named: the bundled NASA
//! iPSC/860 trace fits its 128-node machine, so a larger demo gets the
//! seeded synthetic workload sized to its node count instead (job widths up
//! to the machine, arrivals at the rate that keeps it busy), not 128-node
//! jobs on a machine of thousands that would stay mostly idle.

use std::time::Duration;

use crus_backends::sim::SyntheticWorkload;

/// The nodes of the machine the bundled NASA trace was recorded on.
pub(super) const NASA_IPSC_NODES: u32 = 128;

/// Whether a demo of `nodes` nodes without `--trace` replays the NASA
/// trace (`false`: the synthetic workload).
pub(super) fn nasa_fits(nodes: u32) -> bool {
    nodes <= NASA_IPSC_NODES
}

/// The synthetic workload of a demo of `nodes` nodes that starts `offset`
/// into its jobs and warms up for `warmup`: jobs are submitted up to a
/// week past the warm-up, so the machine stays busy during the upgrade
/// (the jobs before `offset` are skipped by the simulator).
pub(super) fn synthetic(
    nodes: u32,
    seed: u64,
    offset: Duration,
    warmup: Duration,
) -> SyntheticWorkload {
    SyntheticWorkload {
        nodes: nodes as usize,
        seed,
        duration: offset + warmup + Duration::from_secs(7 * 24 * 3600),
        ..SyntheticWorkload::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_demo_gets_jobs_as_wide_as_its_machine_at_its_load() {
        assert!(nasa_fits(128));
        assert!(!nasa_fits(10_000));
        let offset = Duration::from_secs(7 * 24 * 3600);
        let warmup = Duration::from_secs(6 * 3600);
        let workload = synthetic(10_000, 1, offset, warmup);
        let jobs = workload.generate();
        let widest = jobs.iter().map(|job| job.nodes).max().unwrap_or(0);
        assert_eq!(widest, 8_192, "the widest jobs take most of the machine");
        // Jobs keep coming through the upgrade, long after the warm-up.
        let replayed: Vec<_> = jobs
            .iter()
            .filter(|job| job.submit >= offset + warmup + Duration::from_secs(24 * 3600))
            .collect();
        assert!(
            replayed.len() > 100,
            "{} jobs a day after the warm-up",
            replayed.len()
        );
        // The node-time they ask for is about 85% of the machine's.
        let asked: f64 = jobs
            .iter()
            .map(|job| job.nodes as f64 * job.run_time.as_secs_f64())
            .sum();
        let offered = asked / (10_000.0 * workload.duration.as_secs_f64());
        assert!((0.6..1.1).contains(&offered), "offered load {offered:.2}");
    }
}
