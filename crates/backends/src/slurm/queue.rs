//! Slurm's jobs for forecasts ([`WorkloadManager::queue`]): running and
//! pending jobs from one `squeue` call, and the last day's jobs from `sacct`
//! when the site keeps accounting (without it the forecast learns no
//! arrivals, and says so).
//!
//! `squeue -h -a -t PENDING,RUNNING,COMPLETING,SUSPENDED,CONFIGURING -o
//! '%T|%D|%l|%V|%S|%N'` prints state, node count, time limit (`[days-]
//! hours:minutes:seconds`, `minutes:seconds`, `UNLIMITED`), submit time and
//! start time (epoch seconds: commands run with `SLURM_TIME_FORMAT=%s`) and
//! the node list. `sacct -a -X -n -P -S now-<hours>hours -o
//! Submit,NNodes,TimelimitRaw,ElapsedRaw,State` prints, per job, its submit
//! time, nodes, limit in minutes, seconds run, and state.
//!
//! [`WorkloadManager::queue`]: crus_core::ports::WorkloadManager::queue

use std::time::Duration;

use crus_core::node::NodeId;
use crus_core::ports::{PastJob, PendingJob, RunningJob};
use crus_core::time::Timestamp;

use super::hostlist;
use super::parse::parse_end_time;

/// The `squeue` output format [`parse_squeue`] reads.
pub(crate) const SQUEUE_FORMAT: &str = "%T|%D|%l|%V|%S|%N";
/// The job states `squeue` is asked for.
pub(crate) const SQUEUE_STATES: &str = "PENDING,RUNNING,COMPLETING,SUSPENDED,CONFIGURING";
/// The `sacct` fields [`parse_sacct`] reads.
pub(crate) const SACCT_FIELDS: &str = "Submit,NNodes,TimelimitRaw,ElapsedRaw,State";
/// How far back `sacct` is asked.
pub(crate) const HISTORY_HOURS: u64 = 24;

/// A Slurm time limit: `UNLIMITED`, `days-hours:minutes:seconds`,
/// `hours:minutes:seconds`, `minutes:seconds` or `minutes`; `None` for no
/// limit or anything else (`NOT_SET`, `INVALID`).
pub(crate) fn parse_time_limit(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (days, clock) = match text.split_once('-') {
        Some((days, clock)) => (days.parse::<u64>().ok()?, clock),
        None => (0, text),
    };
    let parts: Vec<u64> = clock
        .split(':')
        .map(|part| part.parse::<u64>().ok())
        .collect::<Option<_>>()?;
    let seconds = match (days, parts.as_slice()) {
        (0, [minutes]) => minutes * 60,
        (_, [hours]) => hours * 3600,
        (0, [minutes, seconds]) => minutes * 60 + seconds,
        (_, [hours, minutes]) => hours * 3600 + minutes * 60,
        (_, [hours, minutes, seconds]) => hours * 3600 + minutes * 60 + seconds,
        _ => return None,
    };
    Some(Duration::from_secs(days * 86_400 + seconds))
}

/// The running and pending jobs of `squeue` output in [`SQUEUE_FORMAT`],
/// pending ones in the order printed (squeue sorts them by priority). Node
/// names become node ids through `node_id`; a list that cannot be expanded
/// leaves the job's nodes out (the forecast then reads their ends from the
/// node states). Lines that are not jobs are skipped.
pub(crate) fn parse_squeue(
    output: &str,
    node_id: impl Fn(&str) -> Option<NodeId>,
) -> (Vec<RunningJob>, Vec<PendingJob>) {
    let mut running = Vec::new();
    let mut pending = Vec::new();
    for line in output.lines() {
        let fields: Vec<&str> = line.trim().split('|').collect();
        let [state, nodes, limit, submitted, started, list] = fields[..] else {
            continue;
        };
        let Ok(nodes) = nodes.trim().parse::<u32>() else {
            continue;
        };
        let time_limit = parse_time_limit(limit);
        match state.trim() {
            "PENDING" => {
                let Some(submitted) = parse_end_time(submitted) else {
                    continue;
                };
                pending.push(PendingJob {
                    nodes,
                    time_limit,
                    submitted,
                });
            }
            _ => {
                let Some(started) = parse_end_time(started) else {
                    continue;
                };
                let nodes = hostlist::expand(list.trim())
                    .map(|names| names.iter().filter_map(|name| node_id(name)).collect())
                    .unwrap_or_default();
                running.push(RunningJob {
                    nodes,
                    started,
                    time_limit,
                });
            }
        }
    }
    (running, pending)
}

/// The jobs of `sacct -P` output in [`SACCT_FIELDS`]; a job's run time
/// only once it has ended.
pub(crate) fn parse_sacct(output: &str) -> Vec<PastJob> {
    output
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.trim().split('|').collect();
            let [submitted, nodes, limit, elapsed, state] = fields[..] else {
                return None;
            };
            let submitted: Timestamp = parse_end_time(submitted)?;
            let nodes = nodes.trim().parse::<u32>().ok()?;
            let time_limit = limit
                .trim()
                .parse::<u64>()
                .ok()
                .map(|minutes| Duration::from_secs(minutes * 60));
            let state = state.split_whitespace().next().unwrap_or_default();
            let ended = !matches!(
                state,
                "PENDING" | "RUNNING" | "SUSPENDED" | "REQUEUED" | "RESIZING" | "REQUEUE_HOLD"
            );
            let run_time = ended
                .then(|| elapsed.trim().parse::<u64>().ok().map(Duration::from_secs))
                .flatten();
            Some(PastJob {
                submitted,
                nodes,
                time_limit,
                run_time,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits_in_every_slurm_spelling() {
        let minutes = |m: u64| Some(Duration::from_secs(m * 60));
        assert_eq!(parse_time_limit("5"), minutes(5));
        assert_eq!(parse_time_limit("5:00"), minutes(5));
        assert_eq!(parse_time_limit("1:30:00"), minutes(90));
        assert_eq!(parse_time_limit("2-00:00:00"), minutes(2 * 24 * 60));
        assert_eq!(parse_time_limit("1-12"), minutes(36 * 60));
        assert_eq!(parse_time_limit("UNLIMITED"), None);
        assert_eq!(parse_time_limit("NOT_SET"), None);
    }

    #[test]
    fn squeue_lines_split_running_from_pending() {
        let output = "RUNNING|2|5:00|1700000000|1700000100|node[1-2]\n\
                      PENDING|4|1:30:00|1700000200|N/A|\n\
                      garbage\n\
                      PENDING|1|UNLIMITED|1700000300|1700009999|\n";
        let (running, pending) = parse_squeue(output, |name| Some(NodeId::from(name)));
        assert_eq!(
            running,
            [RunningJob {
                nodes: vec![NodeId::from("node1"), NodeId::from("node2")],
                started: Timestamp::from_secs(1_700_000_100),
                time_limit: Some(Duration::from_secs(300)),
            }]
        );
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].nodes, 4);
        assert_eq!(pending[0].time_limit, Some(Duration::from_secs(5400)));
        assert_eq!(pending[0].submitted, Timestamp::from_secs(1_700_000_200));
        assert_eq!(pending[1].time_limit, None);
    }

    #[test]
    fn sacct_lines_give_run_times_of_ended_jobs_only() {
        let output = "1700000000|2|60|1800|COMPLETED\n\
                      1700000100|1|30|600|RUNNING\n\
                      1700000200|1|UNLIMITED|20|CANCELLED by 1000\n";
        let jobs = parse_sacct(output);
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs[0].run_time, Some(Duration::from_secs(1800)));
        assert_eq!(jobs[0].time_limit, Some(Duration::from_secs(3600)));
        assert_eq!(jobs[1].run_time, None);
        assert_eq!(jobs[2].time_limit, None);
        assert_eq!(jobs[2].run_time, Some(Duration::from_secs(20)));
    }
}
