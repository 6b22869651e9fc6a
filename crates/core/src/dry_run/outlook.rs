//! What a forecast expects of the workload, learned from what the workload
//! manager reports: how much of their time limit jobs really run (from the
//! recent jobs that ended), and which jobs will arrive while the upgrade runs
//! (the recent past's submissions, replayed from a random point of it), plus
//! the seeded draws every sampled run takes its chances from.

use std::time::Duration;

use crate::ports::WorkloadQueue;
use crate::time::Timestamp;

/// A seeded generator (SplitMix64): the forecast's only source of chance, so
/// the same input always gives the same forecast.
#[derive(Debug, Clone)]
pub(super) struct Draws(u64);

impl Draws {
    /// The generator of sampled run `run`.
    pub fn for_run(run: u32) -> Draws {
        Draws(0x005E_EDF0_CA57_u64.wrapping_add(u64::from(run).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
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
    /// Run time over time limit of the recent jobs that ended (each in
    /// `(0, 1]`); empty when none is known, and jobs are then taken to run
    /// to their limits.
    ratios: Vec<f64>,
    /// The recent submissions as offsets from the start of the recent past,
    /// in time order, with their shapes.
    recent: Vec<(Duration, JobShape)>,
    /// How long the recent past is.
    span: Duration,
    /// Recent submissions left out because they are wider than the group.
    too_wide: usize,
}

/// The recent past must be at least this long for arrivals to be learned
/// from it: a few minutes of history say nothing about a rate.
const SHORTEST_HISTORY: Duration = Duration::from_secs(3600);

impl Outlook {
    /// Learns from `queue` as read at `now`, for a group of `group_nodes`.
    pub fn learn(queue: Option<&WorkloadQueue>, now: Timestamp, group_nodes: usize) -> Outlook {
        let Some(queue) = queue else {
            return Outlook::default();
        };
        let ratios: Vec<f64> = queue
            .recent
            .iter()
            .filter_map(|job| {
                let (limit, ran) = (job.time_limit?, job.run_time?);
                (!limit.is_zero())
                    .then(|| (ran.as_secs_f64() / limit.as_secs_f64()).clamp(1e-3, 1.0))
            })
            .collect();
        let mut outlook = Outlook {
            ratios,
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
        outlook
    }

    /// Whether every sampled run would be the same (nothing is uncertain
    /// but the boots).
    pub fn knows_run_times(&self) -> bool {
        self.ratios.iter().all(|ratio| *ratio >= 1.0)
    }

    /// Whether arrivals are forecast.
    pub fn has_arrivals(&self) -> bool {
        !self.recent.is_empty()
    }

    /// How long a job with `limit` runs, drawn: a share of its limit as
    /// recent jobs ran; its limit when nothing is known; `unknown` without
    /// a limit.
    pub fn draw_run(
        &self,
        limit: Option<Duration>,
        unknown: Duration,
        draws: &mut Draws,
    ) -> Duration {
        let Some(limit) = limit else {
            return unknown;
        };
        if self.ratios.is_empty() {
            return limit;
        }
        limit.mul_f64(self.ratios[draws.below(self.ratios.len())])
    }

    /// When a job that started at `started` with `limit` and runs still at
    /// `now` ends, drawn among the recent shares of limits it has not
    /// outlived yet (at its limit when it outlived them all).
    pub fn draw_end(
        &self,
        started: Timestamp,
        limit: Duration,
        now: Timestamp,
        draws: &mut Draws,
    ) -> Timestamp {
        let elapsed = now.saturating_since(started).as_secs_f64();
        let limit_s = limit.as_secs_f64();
        let candidates: Vec<f64> = self
            .ratios
            .iter()
            .copied()
            .filter(|ratio| ratio * limit_s > elapsed)
            .collect();
        if candidates.is_empty() {
            return (started + limit).max(now);
        }
        started + limit.mul_f64(candidates[draws.below(candidates.len())])
    }

    /// The arrivals of one sampled run: the recent past replayed again and
    /// again from `now`, starting at a drawn point of it.
    pub fn arrivals(&self, now: Timestamp, draws: &mut Draws) -> Arrivals {
        if self.recent.is_empty() || self.span.is_zero() {
            return Arrivals::none();
        }
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
                (shifted, *shape)
            })
            .collect();
        cycle.sort_by_key(|(offset, _)| *offset);
        Arrivals {
            cycle,
            span: self.span,
            from: now,
            round: 0,
            next: 0,
        }
    }

    /// What the forecast learned, for the plan's rationale.
    pub fn rationale(&self, pending: usize) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.ratios.is_empty() {
            let mean = self.ratios.iter().sum::<f64>() / self.ratios.len() as f64;
            lines.push(format!(
                "Jobs run {:.0}% of their time limits on average ({} recent jobs that ended); job ends are drawn from them.",
                mean * 100.0,
                self.ratios.len()
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
        }
        lines
    }
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
