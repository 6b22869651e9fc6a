//! How much of its time limit a job runs, learned from recent jobs with a
//! similar limit.
//!
//! The share a job runs depends on its limit: a job asking for the
//! partition's longest limit often runs a small part of it, while a short
//! limit is usually asked by someone who knows the run (Tsafrir et al.,
//! "Modeling user runtime estimates", 2005). Drawing one share for every
//! limit from all recent jobs lends a long limit the high shares of short
//! ones, so the forecast ran long jobs far past anything seen, and its
//! median overshot on workloads whose limits are loose. A draw therefore
//! takes its share from the recent jobs whose limits are nearest (on a
//! logarithmic scale) to the job's own.

use std::time::Duration;

use super::outlook::Draws;

/// How many recent jobs with the nearest limits a share is drawn from:
/// enough to give a spread, few enough that their limits stay close to the
/// job's own on a day's history of a hundred jobs or so.
const NEIGHBOURS: usize = 16;

/// One recent job that ended: its limit (as a logarithm of seconds) and the
/// share of it it ran.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Share {
    log_limit: f64,
    ratio: f64,
}

/// The recent jobs' shares, ordered by limit.
#[derive(Debug, Clone, Default)]
pub(super) struct RunShares(Vec<Share>);

impl RunShares {
    /// Learns from `(limit, run time)` of recent jobs that ended; jobs
    /// without a limit say nothing about shares and are left out.
    pub fn learn(jobs: impl IntoIterator<Item = (Duration, Duration)>) -> RunShares {
        let mut shares: Vec<Share> = jobs
            .into_iter()
            .filter(|(limit, _)| !limit.is_zero())
            .map(|(limit, ran)| Share {
                log_limit: limit.as_secs_f64().ln(),
                ratio: (ran.as_secs_f64() / limit.as_secs_f64()).clamp(1e-3, 1.0),
            })
            .collect();
        shares.sort_by(|a, b| a.log_limit.total_cmp(&b.log_limit));
        RunShares(shares)
    }

    /// How many recent jobs were learned from.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every recent job ran to its limit.
    pub fn all_full(&self) -> bool {
        self.0.iter().all(|share| share.ratio >= 1.0)
    }

    /// The mean share, over every recent job.
    pub fn mean(&self) -> f64 {
        if self.0.is_empty() {
            return 1.0;
        }
        self.0.iter().map(|share| share.ratio).sum::<f64>() / self.0.len() as f64
    }

    /// A share for a job with `limit` that has run `elapsed` already: drawn
    /// among the [`NEIGHBOURS`] recent jobs with the nearest limits whose
    /// share of `limit` outlasts `elapsed` (and every other job as near as
    /// the last of them: many jobs ask the same limit, and all of them are
    /// drawn from, not the first listed). `None` when no recent job does.
    pub fn draw(&self, limit: Duration, elapsed: Duration, draws: &mut Draws) -> Option<f64> {
        let limit_s = limit.as_secs_f64();
        if limit_s <= 0.0 {
            return None;
        }
        let (target, elapsed_s) = (limit_s.ln(), elapsed.as_secs_f64());
        let mut picked: Vec<f64> = Vec::new();
        let mut farthest = 0.0_f64;
        // Walk outwards from where `limit` would sit, nearer side first.
        let mut below = self.0.partition_point(|share| share.log_limit < target);
        let mut above = below;
        loop {
            let lower = below
                .checked_sub(1)
                .map(|at| (at, target - self.0[at].log_limit));
            let upper = self
                .0
                .get(above)
                .map(|share| (above, share.log_limit - target));
            let (next, distance) = match (lower, upper) {
                (Some(near), Some(far)) if near.1 <= far.1 => near,
                (_, Some(far)) => far,
                (Some(near), None) => near,
                (None, None) => break,
            };
            if next < below {
                below = next;
            } else {
                above += 1;
            }
            let ratio = self.0[next].ratio;
            if picked.len() >= NEIGHBOURS && distance > farthest {
                break;
            }
            if ratio * limit_s > elapsed_s {
                picked.push(ratio);
                farthest = farthest.max(distance);
            }
        }
        (!picked.is_empty()).then(|| picked[draws.below(picked.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(minutes: u64) -> Duration {
        Duration::from_secs(minutes * 60)
    }

    /// Short jobs run their whole limit, day-long ones a tenth of it.
    fn two_kinds() -> RunShares {
        let short = (0..20).map(|_| (minutes(30), minutes(30)));
        let long = (0..20).map(|_| (minutes(24 * 60), minutes(144)));
        RunShares::learn(short.chain(long))
    }

    #[test]
    fn a_share_comes_from_jobs_with_a_similar_limit() {
        let shares = two_kinds();
        assert_eq!(shares.len(), 40);
        assert!((shares.mean() - 0.55).abs() < 1e-9);
        for run in 0..20 {
            let mut draws = Draws::for_run(run);
            assert_eq!(
                shares.draw(minutes(40), Duration::ZERO, &mut draws),
                Some(1.0)
            );
            let long = shares.draw(minutes(20 * 60), Duration::ZERO, &mut draws);
            assert_eq!(long, Some(0.1));
        }
    }

    #[test]
    fn a_running_job_draws_only_shares_it_has_not_outlived() {
        let shares = two_kinds();
        // A day-long job 5 h in has outlived every day-long share (0.1):
        // only the short jobs' whole limits are left.
        let share = shares.draw(minutes(24 * 60), minutes(300), &mut Draws::for_run(1));
        assert_eq!(share, Some(1.0));
        // Nothing outlasts a job past its limit.
        let none = RunShares::learn([(minutes(10), minutes(5))]);
        assert_eq!(
            none.draw(minutes(10), minutes(6), &mut Draws::for_run(1)),
            None
        );
        assert_eq!(
            RunShares::default().draw(minutes(10), Duration::ZERO, &mut Draws::for_run(1)),
            None
        );
    }

    #[test]
    fn every_job_with_the_same_limit_is_drawn_from() {
        // Forty jobs asked an hour; the last listed ran the whole of it.
        let mut jobs: Vec<(Duration, Duration)> =
            (0..39).map(|_| (minutes(60), minutes(6))).collect();
        jobs.push((minutes(60), minutes(60)));
        let shares = RunShares::learn(jobs);
        let drawn: Vec<Option<f64>> = (0..200)
            .map(|run| shares.draw(minutes(60), Duration::ZERO, &mut Draws::for_run(run)))
            .collect();
        assert!(
            drawn.contains(&Some(1.0)),
            "the fortieth job is never drawn"
        );
        assert!(drawn.contains(&Some(0.1)));
    }

    #[test]
    fn jobs_without_a_limit_teach_nothing() {
        let shares = RunShares::learn([(Duration::ZERO, minutes(5)), (minutes(10), minutes(20))]);
        assert_eq!(shares.len(), 1);
        assert!(shares.all_full());
    }
}
