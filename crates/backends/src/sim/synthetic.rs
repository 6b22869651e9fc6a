//! A seeded synthetic workload, for cluster sizes no real trace fits.
//!
//! Jobs arrive as a Poisson process whose rate is chosen so that, on average,
//! the jobs ask for `utilisation` of the machine; widths are powers of two up
//! to the cluster size (each exponent equally likely), run times are
//! log-uniform between one minute and four hours, and each job's time limit is
//! its run time times a uniform factor in [1, 2), as users over-ask.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::swf::TraceJob;

/// Shortest synthetic run time.
const MIN_RUN_TIME_S: f64 = 60.0;
/// Longest synthetic run time.
const MAX_RUN_TIME_S: f64 = 4.0 * 3600.0;

/// Parameters of a synthetic workload. Same parameters, same jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticWorkload {
    /// Size of the cluster the jobs are for; the widest job uses all of the
    /// largest power of two not above it.
    pub nodes: usize,
    /// Fraction of the cluster's node-time the jobs ask for on average (0.85).
    pub utilisation: f64,
    /// Seed of the random draws.
    pub seed: u64,
    /// Jobs are submitted from time zero up to (excluding) this time.
    pub duration: Duration,
}

impl Default for SyntheticWorkload {
    fn default() -> Self {
        SyntheticWorkload {
            nodes: 128,
            utilisation: 0.85,
            seed: 1,
            duration: Duration::from_secs(24 * 3600),
        }
    }
}

impl SyntheticWorkload {
    /// The jobs, in submit order, numbered from 1.
    pub fn generate(&self) -> Vec<TraceJob> {
        let Some(largest_exponent) = self.nodes.checked_ilog2() else {
            return Vec::new();
        };
        if !self.utilisation.is_finite() || self.utilisation <= 0.0 {
            return Vec::new();
        }
        let widths = f64::from(largest_exponent + 1);
        // Mean of 2^e for e uniform in 0..=largest: (2^(largest+1) - 1) / (largest + 1).
        let mean_width = (2f64.powf(widths) - 1.0) / widths;
        // Mean of a log-uniform variable on [a, b]: (b - a) / ln(b / a).
        let mean_run_time_s =
            (MAX_RUN_TIME_S - MIN_RUN_TIME_S) / (MAX_RUN_TIME_S / MIN_RUN_TIME_S).ln();
        let arrivals_per_s = self.utilisation * self.nodes as f64 / (mean_width * mean_run_time_s);

        let mut rng = fastrand::Rng::with_seed(self.seed);
        let mut jobs = Vec::new();
        let mut submit_s = 0.0;
        let end_s = self.duration.as_secs_f64();
        loop {
            // 1 - f64() lies in (0, 1], so the logarithm is finite.
            submit_s += -(1.0 - rng.f64()).ln() / arrivals_per_s;
            if submit_s >= end_s {
                return jobs;
            }
            let exponent = rng.u32(0..=largest_exponent);
            let run_time_s = (MIN_RUN_TIME_S.ln()
                + rng.f64() * (MAX_RUN_TIME_S.ln() - MIN_RUN_TIME_S.ln()))
            .exp()
            .round();
            let requested_time_s = (run_time_s * (1.0 + rng.f64())).ceil();
            jobs.push(TraceJob {
                id: jobs.len() as u64 + 1,
                submit: Duration::from_secs_f64(submit_s.floor()),
                run_time: Duration::from_secs_f64(run_time_s),
                nodes: 1 << exponent,
                requested_time: Duration::from_secs_f64(requested_time_s),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_jobs_and_the_asked_load() {
        let workload = SyntheticWorkload {
            duration: Duration::from_secs(30 * 24 * 3600),
            ..SyntheticWorkload::default()
        };
        let jobs = workload.generate();
        assert_eq!(jobs, workload.generate());
        assert_ne!(
            jobs,
            SyntheticWorkload {
                seed: 2,
                ..workload.clone()
            }
            .generate()
        );
        assert!(jobs.is_sorted_by_key(|job| job.submit));
        for job in &jobs {
            assert!(job.nodes.is_power_of_two() && job.nodes <= 128);
            assert!((60..=14_400).contains(&job.run_time.as_secs()));
            assert!(job.requested_time >= job.run_time);
            assert!(job.requested_time <= job.run_time * 2);
        }
        let asked: f64 = jobs
            .iter()
            .map(|job| f64::from(job.nodes) * job.run_time.as_secs_f64())
            .sum();
        let offered = 128.0 * workload.duration.as_secs_f64();
        let load = asked / offered;
        assert!((0.7..1.0).contains(&load), "load {load}");
    }

    #[test]
    fn degenerate_parameters_give_no_jobs() {
        for workload in [
            SyntheticWorkload {
                nodes: 0,
                ..SyntheticWorkload::default()
            },
            SyntheticWorkload {
                utilisation: 0.0,
                ..SyntheticWorkload::default()
            },
            SyntheticWorkload {
                utilisation: f64::NAN,
                ..SyntheticWorkload::default()
            },
        ] {
            assert!(workload.generate().is_empty());
        }
        let one_node = SyntheticWorkload {
            nodes: 3,
            ..SyntheticWorkload::default()
        };
        assert!(one_node.generate().iter().all(|job| job.nodes <= 2));
    }
}
