//! What a forecast expects of the workload, learned from what the workload
//! manager reports: how much of their time limit jobs really run (from the
//! recent jobs that ended, those with similar limits: `run_shares.rs`), and
//! which jobs will arrive while the upgrade runs (the recent past's
//! submissions, replayed from a random point of it, at a rate drawn for each
//! sampled run from how much the recent past's own rate varied), plus the
//! seeded draws every sampled run takes its chances from.

use std::time::Duration;

use super::run_shares::RunShares;
use crate::ports::WorkloadQueue;
use crate::time::Timestamp;

/// A seeded generator (SplitMix64): the forecast's only source of chance, so
/// the same input always gives the same forecast.
#[derive(Debug, Clone)]
pub(super) struct Draws(u64);

impl Draws {
    /// The generator of sampled run `run`.
    ///
    /// Each run starts from a scrambled point of the sequence. Seeds one
    /// step of the sequence apart (as they once were) gave each run the
    /// draws of the run before, moved along by one: run 1's boots were run
    /// 0's shifted by a node, so the runs agreed more than chance allows and
    /// the range was too narrow.
    pub fn for_run(run: u32) -> Draws {
        let mut seeder = Draws(
            0x005E_EDF0_CA57_u64.wrapping_add(u64::from(run).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        Draws(seeder.next_u64())
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal number (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        radius * (std::f64::consts::TAU * self.unit()).cos()
    }

    /// An index below `len` (which must not be 0).
    pub fn below(&mut self, len: usize) -> usize {
        ((self.unit() * len as f64) as usize).min(len.saturating_sub(1))
    }
}

/// A job the forecast will see start: its width, limit, and how long it runs
/// in this sampled run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct JobShape {
    /// Nodes it needs.
    pub nodes: usize,
    /// Its time limit, as the scheduler plans with it.
    pub limit: Option<Duration>,
    /// How long it ran, when it is a past job that ended.
    pub ran: Option<Duration>,
}

/// What the forecast learned; the same for every sampled run.
#[derive(Debug, Clone, Default)]
pub(super) struct Outlook {
    /// How much of their limits the recent jobs that ended ran; empty when
    /// none is known, and jobs are then taken to run to their limits.
    shares: RunShares,
    /// The recent submissions as offsets from the start of the recent past,
    /// in time order, with their shapes.
    recent: Vec<(Duration, JobShape)>,
    /// How long the recent past is.
    span: Duration,
    /// Recent submissions left out because they are wider than the group.
    too_wide: usize,
    /// How much the demand of the recent past varied from one stretch of it
    /// to the next, as the spread (σ) of its logarithm: the sampled runs
    /// after the first replay the past at a rate drawn from it, so the
    /// forecast's range allows for hours busier or quieter than the past's
    /// average. 0 when the past is too short to tell.
    rate_spread: f64,
}

/// The recent past must be at least this long for arrivals to be learned
/// from it: a few minutes of history say nothing about a rate.
const SHORTEST_HISTORY: Duration = Duration::from_secs(3600);

/// The stretches the recent past is cut into to see how its demand varies:
/// long enough to hold several jobs, short enough that a day gives a dozen.
const STRETCH: Duration = Duration::from_secs(2 * 3600);

/// The widest spread of the rate drawn: beyond it the range says nothing.
const LARGEST_RATE_SPREAD: f64 = 1.0;

impl Outlook {
    /// Learns from `queue` as read at `now`, for a group of `group_nodes`.
    pub fn learn(queue: Option<&WorkloadQueue>, now: Timestamp, group_nodes: usize) -> Outlook {
        let Some(queue) = queue else {
            return Outlook::default();
        };
        let shares = RunShares::learn(
            queue
                .recent
                .iter()
                .filter_map(|job| Some((job.time_limit?, job.run_time?))),
        );
        let mut outlook = Outlook {
            shares,
            ..Outlook::default()
        };
        let Some(since) = queue.recent_since.filter(|since| *since < now) else {
            return outlook;
        };
        let span = now.saturating_since(since);
        if span < SHORTEST_HISTORY {
            return outlook;
        }
        outlook.span = span;
        for job in &queue.recent {
            if job.submitted < since || job.submitted >= now || job.nodes == 0 {
                continue;
            }
            let nodes = job.nodes as usize;
            if nodes > group_nodes {
                outlook.too_wide += 1;
                continue;
            }
            outlook.recent.push((
                job.submitted.saturating_since(since),
                JobShape {
                    nodes,
                    limit: job.time_limit,
                    ran: job.run_time,
                },
            ));
        }
        outlook.recent.sort_by_key(|(offset, _)| *offset);
        outlook.rate_spread = demand_spread(&outlook.recent, span);
        outlook
    }

    /// The rate one sampled run replays the recent past at, as a factor
    /// (1: as it was): drawn log-normally around 1 with the past's own
    /// spread, so half the runs are busier and half quieter.
    pub fn draw_rate(&self, draws: &mut Draws) -> f64 {
        if self.rate_spread <= 0.0 {
            return 1.0;
        }
        (self.rate_spread * draws.normal()).exp()
    }

    /// Whether every sampled run would be the same (nothing is uncertain
    /// but the boots).
    pub fn knows_run_times(&self) -> bool {
        self.shares.all_full()
    }

    /// Whether arrivals are forecast.
    pub fn has_arrivals(&self) -> bool {
        !self.recent.is_empty()
    }

    /// How long a job with `limit` runs, drawn: a share of its limit as
    /// recent jobs with similar limits ran; its limit when nothing is known;
    /// `unknown` without a limit.
    pub fn draw_run(
        &self,
        limit: Option<Duration>,
        unknown: Duration,
        draws: &mut Draws,
    ) -> Duration {
        let Some(limit) = limit else {
            return unknown;
        };
        match self.shares.draw(limit, Duration::ZERO, draws) {
            Some(share) => limit.mul_f64(share),
            None => limit,
        }
    }

    /// When a job that started at `started` with `limit` and runs still at
    /// `now` ends, drawn among the shares of limits that recent jobs with
    /// similar limits ran and it has not outlived yet (at its limit when it
    /// outlived them all).
    pub fn draw_end(
        &self,
        started: Timestamp,
        limit: Duration,
        now: Timestamp,
        draws: &mut Draws,
    ) -> Timestamp {
        match self
            .shares
            .draw(limit, now.saturating_since(started), draws)
        {
            Some(share) => started + limit.mul_f64(share),
            None => (started + limit).max(now),
        }
    }

    /// The arrivals of one sampled run: the recent past replayed again and
    /// again from `now`, starting at a drawn point of it, `rate` times as
    /// fast as it happened (see [`Outlook::draw_rate`]).
    pub fn arrivals(&self, now: Timestamp, rate: f64, draws: &mut Draws) -> Arrivals {
        if self.recent.is_empty() || self.span.is_zero() {
            return Arrivals::none();
        }
        let stretch = if rate.is_finite() && rate > 0.0 {
            1.0 / rate
        } else {
            1.0
        };
        let cut = self.span.mul_f64(draws.unit());
        // The recent past from `cut` to its end, then from its start to `cut`.
        let mut cycle: Vec<(Duration, JobShape)> = self
            .recent
            .iter()
            .map(|(offset, shape)| {
                let shifted = if *offset >= cut {
                    *offset - cut
                } else {
                    *offset + self.span - cut
                };
                (shifted.mul_f64(stretch), *shape)
            })
            .collect();
        cycle.sort_by_key(|(offset, _)| *offset);
        Arrivals {
            cycle,
            span: self.span.mul_f64(stretch),
            from: now,
            round: 0,
            next: 0,
        }
    }

    /// What the forecast learned, for the plan's rationale.
    pub fn rationale(&self, pending: usize) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.shares.is_empty() {
            lines.push(format!(
                "Jobs run {:.0}% of their time limits on average ({} recent jobs that ended); a job's end is drawn from those with the nearest limits.",
                self.shares.mean() * 100.0,
                self.shares.len()
            ));
        }
        if pending > 0 {
            lines.push(format!(
                "{pending} queued job(s) start on the group's nodes as they come free, first come first served with backfilling."
            ));
        }
        if self.has_arrivals() {
            lines.push(format!(
                "{} job(s) were submitted in the last {}; arrivals are forecast at that rate and mix.",
                self.recent.len() + self.too_wide,
                humantime::format_duration(Duration::from_secs(self.span.as_secs()))
            ));
            if self.rate_spread > 0.0 {
                let busier = self.rate_spread.exp();
                lines.push(format!(
                    "The demand varied by a factor of about {busier:.1} from one {} of the past to the next; the sampled runs replay it that much faster or slower.",
                    humantime::format_duration(STRETCH)
                ));
            }
        }
        lines
    }
}

/// The spread (σ of the logarithm) of the recent past's demand, in node time
/// submitted per [`STRETCH`] of `span`; 0 when `span` holds fewer than three
/// stretches or nothing was submitted.
fn demand_spread(recent: &[(Duration, JobShape)], span: Duration) -> f64 {
    let stretches = (span.as_secs() / STRETCH.as_secs()) as usize;
    if stretches < 3 {
        return 0.0;
    }
    let mut demand = vec![0.0_f64; stretches];
    for (offset, shape) in recent {
        let stretch = ((offset.as_secs() / STRETCH.as_secs()) as usize).min(stretches - 1);
        let runs = shape.ran.or(shape.limit).unwrap_or(STRETCH);
        demand[stretch] += shape.nodes as f64 * runs.as_secs_f64();
    }
    let mean = demand.iter().sum::<f64>() / stretches as f64;
    if mean <= 0.0 {
        return 0.0;
    }
    let variance = demand
        .iter()
        .map(|value| (value - mean).powi(2))
        .sum::<f64>()
        / stretches as f64;
    // The σ of a log-normal with the same coefficient of variation.
    let variation = variance.sqrt() / mean;
    (1.0 + variation * variation)
        .ln()
        .sqrt()
        .min(LARGEST_RATE_SPREAD)
}

/// The jobs arriving in one sampled run, in time order, drawn as they are needed.
#[derive(Debug, Clone)]
pub(super) struct Arrivals {
    cycle: Vec<(Duration, JobShape)>,
    span: Duration,
    from: Timestamp,
    round: u32,
    next: usize,
}

impl Arrivals {
    /// No arrivals.
    pub fn none() -> Arrivals {
        Arrivals {
            cycle: Vec::new(),
            span: Duration::ZERO,
            from: Timestamp::EPOCH,
            round: 0,
            next: 0,
        }
    }

    /// When the next job arrives, if any does.
    pub fn peek(&self) -> Option<Timestamp> {
        let (offset, _) = self.cycle.get(self.next)?;
        Some(self.from + self.span.saturating_mul(self.round) + *offset)
    }

    /// The next job and when it arrives.
    pub fn pop(&mut self) -> Option<(Timestamp, JobShape)> {
        let at = self.peek()?;
        let (_, shape) = self.cycle[self.next];
        self.next += 1;
        if self.next == self.cycle.len() {
            self.next = 0;
            self.round += 1;
        }
        Some((at, shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PastJob;

    /// A day of one-node, one-hour jobs: `per_stretch(i)` of them submitted
    /// in the i-th two-hour stretch.
    fn day(per_stretch: impl Fn(u64) -> u64) -> Outlook {
        let now = Timestamp::from_secs(1_000_000);
        let since = now - Duration::from_secs(24 * 3600);
        let mut recent = Vec::new();
        for stretch in 0..12 {
            for job in 0..per_stretch(stretch) {
                recent.push(PastJob {
                    submitted: since + Duration::from_secs(stretch * 7200 + job * 60),
                    nodes: 1,
                    time_limit: Some(Duration::from_secs(3600)),
                    run_time: Some(Duration::from_secs(3600)),
                });
            }
        }
        let queue = WorkloadQueue {
            recent,
            recent_since: Some(since),
            ..WorkloadQueue::default()
        };
        Outlook::learn(Some(&queue), now, 64)
    }

    #[test]
    fn runs_do_not_share_their_draws() {
        let draws = |run: u32| -> Vec<u64> {
            let mut draws = Draws::for_run(run);
            (0..64).map(|_| draws.next_u64()).collect()
        };
        let (first, second) = (draws(0), draws(1));
        for shift in 0..32 {
            let shared = (0..32)
                .filter(|&at| second[at] == first[at + shift])
                .count();
            assert_eq!(shared, 0, "run 1 repeats run 0 moved along by {shift}");
        }
    }

    #[test]
    fn a_few_hours_of_past_still_give_each_run_its_own_arrivals() {
        // Three hours of history, replayed from a point each run draws.
        let now = Timestamp::from_secs(1_000_000);
        let since = now - Duration::from_secs(3 * 3600);
        let queue = WorkloadQueue {
            recent: (0..18)
                .map(|at| PastJob {
                    submitted: since + Duration::from_secs(at * 600),
                    nodes: 1 + at as u32,
                    time_limit: Some(Duration::from_secs(3600)),
                    run_time: Some(Duration::from_secs(1800)),
                })
                .collect(),
            recent_since: Some(since),
            ..WorkloadQueue::default()
        };
        let outlook = Outlook::learn(Some(&queue), now, 64);
        let firsts: std::collections::BTreeSet<_> = (0..10)
            .filter_map(|run| outlook.arrivals(now, 1.0, &mut Draws::for_run(run)).pop())
            .map(|(at, shape)| {
                assert!(at >= now);
                (at, shape.nodes)
            })
            .collect();
        assert!(firsts.len() > 5, "{firsts:?}");
    }

    #[test]
    fn a_steady_past_is_replayed_at_its_own_rate() {
        let outlook = day(|_| 10);
        assert_eq!(outlook.rate_spread, 0.0);
        let mut draws = Draws::for_run(3);
        assert_eq!(outlook.draw_rate(&mut draws), 1.0);
    }

    #[test]
    fn a_bursty_past_is_replayed_faster_in_some_runs_and_slower_in_others() {
        // Busy mornings, quiet nights.
        let outlook = day(|stretch| if stretch < 4 { 30 } else { 2 });
        assert!(
            outlook.rate_spread > 0.5 && outlook.rate_spread <= LARGEST_RATE_SPREAD,
            "{}",
            outlook.rate_spread
        );
        let rates: Vec<f64> = (1..40)
            .map(|run| outlook.draw_rate(&mut Draws::for_run(run)))
            .collect();
        assert!(rates.iter().any(|rate| *rate > 1.5), "{rates:?}");
        assert!(rates.iter().any(|rate| *rate < 0.67), "{rates:?}");
        // A run at twice the rate sees its arrivals twice as close together.
        let now = Timestamp::from_secs(2_000_000);
        let mut plain = outlook.arrivals(now, 1.0, &mut Draws::for_run(1));
        let mut fast = outlook.arrivals(now, 2.0, &mut Draws::for_run(1));
        let plain_tenth = (0..10).filter_map(|_| plain.pop()).last().map(|(at, _)| at);
        let fast_tenth = (0..10).filter_map(|_| fast.pop()).last().map(|(at, _)| at);
        let (Some(plain_tenth), Some(fast_tenth)) = (plain_tenth, fast_tenth) else {
            panic!("arrivals were forecast");
        };
        let plain_wait = plain_tenth.saturating_since(now).as_secs_f64();
        let fast_wait = fast_tenth.saturating_since(now).as_secs_f64();
        assert!(
            (fast_wait * 2.0 - plain_wait).abs() <= 1.0,
            "{fast_wait} vs {plain_wait}"
        );
    }
}
