//! Where a forecast's time goes: at each instant of a sampled run, the
//! upgrade is booting nodes, or else waiting for jobs on nodes it drained, or
//! else neither (polls, soaks, maintenance windows). The largest of the three
//! is the part that dominates, said in words an operator acts on.

use std::time::Duration;

use super::machine::NodeTrace;
use crate::time::Timestamp;

/// How a sampled run's time splits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Split {
    /// Time with a boot in progress.
    pub booting: Duration,
    /// Time with no boot but a drained node still running a job.
    pub waiting_for_jobs: Duration,
    /// The rest.
    pub other: Duration,
    /// When the last job the upgrade waited for ended.
    pub last_job_end: Option<Timestamp>,
    /// How many boots.
    pub boots: usize,
}

/// Splits `start..end` by what `traces` show.
pub(super) fn split(traces: &[NodeTrace], start: Timestamp, end: Timestamp) -> Split {
    // Sweep over +1/-1 changes of the count of boots and of waits.
    let mut changes: Vec<(Timestamp, i32, i32)> = Vec::new();
    let mut last_job_end = None;
    let mut boots = 0;
    for trace in traces {
        if let (Some(from), Some(to)) = (trace.boot_at, trace.back_at) {
            changes.push((from, 1, 0));
            changes.push((to, -1, 0));
            boots += 1;
        }
        if let (Some(from), Some(to)) = (trace.drained_at, trace.quiet_at)
            && to > from
        {
            changes.push((from, 0, 1));
            changes.push((to, 0, -1));
            last_job_end = last_job_end.max(Some(to));
        }
    }
    changes.sort_unstable_by_key(|(at, _, _)| *at);
    let mut result = Split {
        last_job_end,
        boots,
        ..Split::default()
    };
    let (mut booting, mut waiting) = (0, 0);
    let mut at = start;
    for (when, boot, wait) in changes {
        let when = when.clamp(start, end);
        result.add(when.saturating_since(at), booting, waiting);
        at = at.max(when);
        booting += boot;
        waiting += wait;
    }
    result.add(end.saturating_since(at), booting, waiting);
    result
}

impl Split {
    fn add(&mut self, span: Duration, booting: i32, waiting: i32) {
        if booting > 0 {
            self.booting += span;
        } else if waiting > 0 {
            self.waiting_for_jobs += span;
        } else {
            self.other += span;
        }
    }

    /// The part that dominates, in words.
    pub fn dominant(&self) -> String {
        let whole = |duration: Duration| {
            humantime::format_duration(Duration::from_secs(duration.as_secs() / 60 * 60))
        };
        if self.waiting_for_jobs >= self.booting && self.waiting_for_jobs >= self.other {
            match self.last_job_end {
                Some(end) => format!(
                    "waiting for jobs that end by {} ({} of it)",
                    clock_time(end),
                    whole(self.waiting_for_jobs)
                ),
                None => format!("waiting for jobs ({} of it)", whole(self.waiting_for_jobs)),
            }
        } else if self.booting >= self.other {
            format!(
                "boot rounds ({} boot(s), {} of it)",
                self.boots,
                whole(self.booting)
            )
        } else {
            format!(
                "polls, soaks and maintenance windows ({} of it)",
                whole(self.other)
            )
        }
    }
}

/// `at` as a time of day, UTC, with its date when it is not the start's day.
pub(super) fn clock_time(at: Timestamp) -> String {
    jiff::Timestamp::from_millisecond(at.as_millis())
        .map(|time| time.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| at.to_string())
}
