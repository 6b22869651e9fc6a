//! Pure parsers over the text Slurm 22.05's commands print, kept apart from
//! the process handling so they can be tested on captured output.

use std::collections::HashMap;

use crus_core::ports::WorkloadState;
use crus_core::time::Timestamp;

use super::hostlist::{self, HostlistError};

/// One node as `scontrol -o show node` prints it, reduced to what crus uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShownNode {
    /// Slurm's node name (`NodeName=`).
    pub(crate) name: String,
    /// The `State=` value, e.g. `MIXED+DRAIN` or `IDLE+NOT_RESPONDING`.
    pub(crate) state: String,
    /// The `Reason=` value without Slurm's ` [user@time]` suffix.
    pub(crate) reason: Option<String>,
}

/// Parses the one-line-per-node output of `scontrol -o show node`.
///
/// Lines that do not start with `NodeName=` are skipped (scontrol prints
/// nothing else there, but a stray warning must not break the parse).
pub(crate) fn parse_show_node(output: &str) -> Vec<ShownNode> {
    output.lines().filter_map(parse_show_node_line).collect()
}

fn parse_show_node_line(line: &str) -> Option<ShownNode> {
    let (name, fields, reason) = split_show_node_line(line)?;
    let name = name.to_string();
    // Match ` State=` as a whole token: `NextState=RESUME` must not count.
    let state = fields
        .split_whitespace()
        .find_map(|field| field.strip_prefix("State="))
        .unwrap_or("UNKNOWN")
        .to_string();
    let reason = reason
        .map(strip_reason_suffix)
        .filter(|reason| !reason.is_empty() && *reason != "none");
    Some(ShownNode {
        name,
        state,
        reason: reason.map(str::to_string),
    })
}

/// One line of `scontrol -o show node` split into the node's name, the
/// fields before `Reason=`, and the reason's raw text. `Reason=` comes last
/// and may contain spaces, so everything after it is the reason; the other
/// fields are split on whitespace before it. `None` for a line that is not
/// a node's.
fn split_show_node_line(line: &str) -> Option<(&str, &str, Option<&str>)> {
    let line = line.trim();
    let name = line.strip_prefix("NodeName=")?.split_whitespace().next()?;
    let (fields, reason) = match line.find(" Reason=") {
        Some(at) => (&line[..at], Some(&line[at + " Reason=".len()..])),
        None => (line, None),
    };
    Some((name, fields, reason))
}

/// Each node's value of the field `key` (e.g. `"Weight="`) in the output of
/// `scontrol -o show node`, by Slurm name: `None` when its line has no such
/// field before `Reason=` (whose text may hold anything).
pub(crate) fn show_node_field<'a>(
    output: &'a str,
    key: &'a str,
) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
    output.lines().filter_map(move |line| {
        let (name, fields, _) = split_show_node_line(line)?;
        let value = fields
            .split_whitespace()
            .find_map(|field| field.strip_prefix(key));
        Some((name, value))
    })
}

/// `upgrade busy [root@2026-11-23T18:24:51]` → `upgrade busy`: Slurm appends
/// who set the reason and when, which is not part of the reason crus gave.
fn strip_reason_suffix(reason: &str) -> &str {
    let reason = reason.trim();
    if reason.ends_with(']')
        && let Some(open) = reason.rfind(" [")
        && reason[open..].contains('@')
    {
        return reason[..open].trim_end();
    }
    reason
}

/// What a Slurm node state string says, in the port's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MappedState {
    /// The port's state.
    pub(crate) state: WorkloadState,
    /// Whether slurmd answers (no `NOT_RESPONDING` flag and no `*` suffix).
    pub(crate) responding: bool,
}

/// Maps a Slurm state, in scontrol's long form (`ALLOCATED+DRAIN`,
/// `IDLE+NOT_RESPONDING`) or sinfo's short form (`draining`, `idle*`,
/// `drained@`), to the port's state.
///
/// - Any `DRAIN` or `FAIL` mark on a node that still runs jobs (base
///   `ALLOCATED`/`MIXED`, or the `COMPLETING` flag) is `Draining`: it takes no
///   new job but is not quiet yet, so it must not be rebooted. (`FAIL` is what
///   [`fail`](crus_core::ports::WorkloadManager::fail) sets; sinfo calls a busy one `failing`.)
/// - `DOWN`, or `FAIL` on a node without jobs, is `Down`.
/// - `DRAIN` on a node without jobs is `Drained`.
/// - Otherwise `IDLE` is `Idle` and `ALLOCATED`/`MIXED` are `Allocated`;
///   `FUTURE`, `UNKNOWN` and anything unrecognised are `Unknown`.
///
/// Reboot and power flags (`REBOOT_REQUESTED`, `REBOOT_ISSUED`, `POWERED_DOWN`,
/// ...) do not change the mapping: the base state and the drain mark already
/// say whether the node is in service.
pub(crate) fn map_state(slurm_state: &str) -> MappedState {
    let text = slurm_state.trim();
    // sinfo's short form marks flags with trailing symbols; `*` is "not responding".
    let symbols: &[char] = &['*', '~', '#', '!', '%', '$', '@', '^', '-'];
    let core = text.trim_end_matches(symbols);
    let not_responding_symbol = text[core.len()..].contains('*');
    let upper = core.to_ascii_uppercase();
    let mut parts = upper.split('+');
    let base = parts.next().unwrap_or_default();
    let flags: Vec<&str> = parts.collect();
    let has = |flag: &str| flags.contains(&flag);

    // sinfo's short names fold flags into the base name.
    let (base, drain, fail, completing) = match base {
        "DRAINING" => ("ALLOCATED", true, false, false),
        "DRAINED" | "DRAIN" => ("IDLE", true, false, false),
        "FAILING" => ("ALLOCATED", false, true, false),
        "FAIL" => ("IDLE", false, true, false),
        "COMPLETING" => ("IDLE", false, false, true),
        "ALLOC" => ("ALLOCATED", false, false, false),
        "REBOOT" | "REBOOT_ISSUED" | "REBOOT_REQUESTED" => ("IDLE", false, false, false),
        // An idle node in a reservation (`reserve_ahead`'s maintenance one,
        // or a site's), or held for a pending job: in service, running nothing.
        "MAINT" | "RESV" | "RESERVED" | "PLANNED" => ("IDLE", false, false, false),
        other => (other, false, false, false),
    };
    let drain = drain || has("DRAIN");
    let fail = fail || has("FAIL");
    let runs_jobs = matches!(base, "ALLOCATED" | "MIXED") || completing || has("COMPLETING");
    let responding = !not_responding_symbol && !has("NOT_RESPONDING");

    let state = match base {
        "DOWN" => WorkloadState::Down,
        "IDLE" | "ALLOCATED" | "MIXED" => {
            if (drain || fail) && runs_jobs {
                WorkloadState::Draining
            } else if fail {
                WorkloadState::Down
            } else if drain {
                WorkloadState::Drained
            } else if runs_jobs {
                WorkloadState::Allocated
            } else {
                WorkloadState::Idle
            }
        }
        _ => WorkloadState::Unknown,
    };
    MappedState { state, responding }
}

/// Whether Slurm lists the node in its `UNKNOWN` state: `slurmctld` has
/// just started (or restarted) and not yet heard from the node's slurmd.
/// Slurm knows the node; it cannot yet say what the node is doing.
pub(crate) fn not_registered_yet(slurm_state: &str) -> bool {
    let symbols: &[char] = &['*', '~', '#', '!', '%', '$', '@', '^', '-'];
    let upper = slurm_state.trim().to_ascii_uppercase();
    let base = upper.split('+').next().unwrap_or_default();
    base.trim_end_matches(symbols) == "UNKNOWN"
}

/// Whether the state string carries a mark that `scontrol ... State=RESUME`
/// clears (drain, fail, down), i.e. whether resuming the node is needed.
pub(crate) fn needs_resume(slurm_state: &str) -> bool {
    let upper = slurm_state.to_ascii_uppercase();
    upper
        .split(['+', '*', '~', '#', '!', '%', '$', '@', '^', '-'])
        .any(|part| {
            matches!(
                part,
                "DRAIN" | "DRAINING" | "DRAINED" | "FAIL" | "FAILING" | "DOWN"
            )
        })
}

/// Parses one end time printed by `squeue -o %e`.
///
/// crus runs squeue with `SLURM_TIME_FORMAT=%s`, so the end time is seconds
/// since the epoch. A site's own `SLURM_TIME_FORMAT` cannot leak in because
/// the variable is set on every call; the ISO form (`2026-11-23T18:24:51`) is
/// also accepted in case a Slurm build ignores it, read as UTC because crus
/// also sets `TZ=UTC` for squeue (Slurm prints local time with no zone).
/// `Unknown`, `NONE`, `N/A` (no time limit) and anything else give `None`.
pub(crate) fn parse_end_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(Timestamp::from_secs(seconds));
    }
    parse_iso_utc(text)
}

/// `YYYY-MM-DDTHH:MM:SS` as UTC.
fn parse_iso_utc(text: &str) -> Option<Timestamp> {
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let mut time = time.split(':').map(|part| part.parse::<i64>().ok());
    let (hour, minute, second) = (time.next()??, time.next()??, time.next()??);
    if date.next().is_some()
        || time.next().is_some()
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..=60).contains(&second)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(Timestamp::from_secs(
        days * 86_400 + hour * 3600 + minute * 60 + second,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The expected end of all jobs listed by `squeue -h -o %e` (one end time per
/// line): the latest one, or `None` when no job is listed or any job's end is
/// unknown (no time limit), because then the node's jobs have no known end.
pub(crate) fn latest_end_time(output: &str) -> Option<Timestamp> {
    let mut latest = None;
    for line in output
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        let end = parse_end_time(line)?;
        latest = Some(latest.map_or(end, |current: Timestamp| current.max(end)));
    }
    latest
}

/// One job's nodes and expected end, as `squeue` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobEnd {
    /// Slurm names of the nodes the job runs on.
    pub(crate) nodes: Vec<String>,
    /// When the job should end; `None` when Slurm knows no end (no time limit).
    pub(crate) end: Option<Timestamp>,
}

/// Parses `squeue -h -o '%N|%e'`: one job per line, its compressed node list
/// and its end time (as [`parse_end_time`] reads it).
///
/// Lines without the separator are skipped, as stray warnings; a node list
/// that is not Slurm's syntax is an error, because its job could not be
/// charged to any node.
pub(crate) fn parse_job_ends(output: &str) -> Result<Vec<JobEnd>, HostlistError> {
    output
        .lines()
        // A node list never contains `|`, so the first one separates.
        .filter_map(|line| line.trim().split_once('|'))
        .map(|(nodes, end)| {
            Ok(JobEnd {
                nodes: hostlist::expand(nodes)?,
                end: parse_end_time(end),
            })
        })
        .collect()
}

/// When the jobs on each node should end, by Slurm node name, with the rule
/// of [`latest_end_time`]: the latest end, or `None` if any job on the node
/// has no known end. Nodes without a job are absent.
pub(crate) fn ends_by_node(jobs: &[JobEnd]) -> HashMap<String, Option<Timestamp>> {
    let mut ends: HashMap<String, Option<Timestamp>> = HashMap::new();
    for job in jobs {
        for node in &job.nodes {
            ends.entry(node.clone())
                .and_modify(|known| {
                    *known = match (*known, job.end) {
                        (Some(known), Some(end)) => Some(known.max(end)),
                        _ => None,
                    }
                })
                .or_insert(job.end);
        }
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkloadState::*;

    /// Captured from Slurm 22.05.8 (`scontrol -o show node`), shortened in the middle.
    const SHOW_NODE: &str = "\
NodeName=node001 Arch=x86_64 CoresPerSocket=2  CPUAlloc=1 CPUEfctv=2 NodeAddr=127.0.0.1 Port=17001 Version=22.05.8 State=MIXED+DRAIN ThreadsPerCore=1 NextState=RESUME Partitions=batch  BootTime=2026-11-23T18:22:13 SlurmdStartTime=2026-11-23T18:24:41 Reason=upgrade busy [root@2026-11-23T18:24:51]
NodeName=node002 Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 State=IDLE+FAIL ThreadsPerCore=1 Reason=failed x [root@2026-11-23T20:20:33]
NodeName=node003 Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 State=IDLE ThreadsPerCore=1 TmpDisk=0 Weight=1 CapWatts=n/a ExtSensorsTemp=n/s
";

    #[test]
    fn show_node_lines_give_name_state_and_reason() {
        let nodes = parse_show_node(SHOW_NODE);
        assert_eq!(
            nodes,
            vec![
                ShownNode {
                    name: "node001".into(),
                    state: "MIXED+DRAIN".into(),
                    reason: Some("upgrade busy".into()),
                },
                ShownNode {
                    name: "node002".into(),
                    state: "IDLE+FAIL".into(),
                    reason: Some("failed x".into()),
                },
                ShownNode {
                    name: "node003".into(),
                    state: "IDLE".into(),
                    reason: None,
                },
            ]
        );
    }

    #[test]
    fn next_state_is_not_taken_for_state() {
        let nodes =
            parse_show_node("NodeName=n1 NextState=RESUME State=DOWN+DRAIN+REBOOT_ISSUED\n");
        assert_eq!(nodes[0].state, "DOWN+DRAIN+REBOOT_ISSUED");
    }

    #[test]
    fn stray_lines_are_skipped() {
        assert!(parse_show_node("Node nosuch not found\n\n").is_empty());
    }

    #[test]
    fn reasons_keep_brackets_that_are_not_slurms_suffix() {
        assert_eq!(strip_reason_suffix("fix [ticket 12]"), "fix [ticket 12]");
        assert_eq!(
            strip_reason_suffix("a b [slurm@2026-01-01T00:00:00]"),
            "a b"
        );
        assert_eq!(strip_reason_suffix("plain"), "plain");
    }

    fn mapped(state: &str) -> (WorkloadState, bool) {
        let mapped = map_state(state);
        (mapped.state, mapped.responding)
    }

    #[test]
    fn scontrol_states_map_to_port_states() {
        for (slurm, expected) in [
            ("IDLE", (Idle, true)),
            ("MIXED", (Allocated, true)),
            ("ALLOCATED", (Allocated, true)),
            ("ALLOCATED+DRAIN", (Draining, true)),
            ("MIXED+DRAIN", (Draining, true)),
            ("IDLE+DRAIN", (Drained, true)),
            ("IDLE+DRAIN+COMPLETING", (Draining, true)),
            ("IDLE+COMPLETING", (Allocated, true)),
            ("IDLE+FAIL", (Down, true)),
            ("ALLOCATED+FAIL", (Draining, true)),
            ("DOWN", (Down, true)),
            ("DOWN+NOT_RESPONDING", (Down, false)),
            ("IDLE+NOT_RESPONDING", (Idle, false)),
            ("ALLOCATED+DRAIN+REBOOT_REQUESTED", (Draining, true)),
            ("IDLE+DRAIN+REBOOT_REQUESTED", (Drained, true)),
            ("DOWN+DRAIN+REBOOT_ISSUED", (Down, true)),
            ("IDLE+REBOOT_REQUESTED", (Idle, true)),
            ("IDLE+MAINT", (Idle, true)),
            ("IDLE+RESERVED", (Idle, true)),
            ("MIXED+MAINT", (Allocated, true)),
            ("IDLE+DRAIN+MAINT", (Drained, true)),
            ("IDLE+PLANNED", (Idle, true)),
            ("FUTURE", (Unknown, true)),
            ("UNKNOWN", (Unknown, true)),
            ("SOMETHING_NEW", (Unknown, true)),
        ] {
            assert_eq!(mapped(slurm), expected, "{slurm}");
        }
    }

    #[test]
    fn sinfo_short_states_map_to_port_states() {
        for (slurm, expected) in [
            ("idle", (Idle, true)),
            ("idle*", (Idle, false)),
            ("mixed", (Allocated, true)),
            ("allocated", (Allocated, true)),
            ("draining", (Draining, true)),
            ("draining@", (Draining, true)),
            ("drained", (Drained, true)),
            ("fail", (Down, true)),
            ("failing", (Draining, true)),
            ("down*", (Down, false)),
            ("reboot", (Idle, true)),
            ("reboot^", (Idle, true)),
            ("maint", (Idle, true)),
            ("maint*", (Idle, false)),
            ("resv", (Idle, true)),
            ("planned", (Idle, true)),
        ] {
            assert_eq!(mapped(slurm), expected, "{slurm}");
        }
    }

    #[test]
    fn only_marked_nodes_need_resume() {
        for state in [
            "IDLE+DRAIN",
            "MIXED+DRAIN",
            "IDLE+FAIL",
            "DOWN",
            "DOWN+NOT_RESPONDING",
            "drained",
            "down*",
        ] {
            assert!(needs_resume(state), "{state}");
        }
        for state in ["IDLE", "MIXED", "IDLE+NOT_RESPONDING", "idle*", "allocated"] {
            assert!(!needs_resume(state), "{state}");
        }
    }

    #[test]
    fn end_times_parse_as_epoch_seconds_or_utc() {
        assert_eq!(
            parse_end_time("1795465305"),
            Some(Timestamp::from_secs(1_795_465_305))
        );
        // 1795465305 is 2026-11-23T20:21:45Z.
        assert_eq!(
            parse_end_time("2026-11-23T20:21:45"),
            Some(Timestamp::from_secs(1_795_465_305))
        );
        assert_eq!(
            parse_end_time("1970-01-01T00:00:00"),
            Some(Timestamp::EPOCH)
        );
        assert_eq!(
            parse_end_time("2000-03-01T00:00:00"),
            Some(Timestamp::from_secs(951_868_800))
        );
        for unknown in [
            "Unknown",
            "NONE",
            "N/A",
            "",
            "2026-13-01T00:00:00",
            "2026-11-23",
        ] {
            assert_eq!(parse_end_time(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn the_latest_end_counts_and_an_unknown_end_hides_it() {
        assert_eq!(
            latest_end_time("100\n300\n200\n"),
            Some(Timestamp::from_secs(300))
        );
        assert_eq!(latest_end_time("100\nUnknown\n"), None);
        assert_eq!(latest_end_time(""), None);
    }

    #[test]
    fn job_end_lines_give_every_node_its_latest_end() {
        // Captured from Slurm 22.05.8: `squeue -h -t RUNNING,COMPLETING,SUSPENDED -o '%N|%e'`
        // with a two-node job (10 minute limit) and a job without a limit.
        let jobs = parse_job_ends(include_str!("testdata/squeue-ends-22.05-busy.txt")).unwrap();
        assert_eq!(
            jobs,
            vec![
                JobEnd {
                    nodes: vec!["node001".into(), "node002".into()],
                    end: Some(Timestamp::from_secs(1_795_470_531)),
                },
                JobEnd {
                    nodes: vec!["node002".into()],
                    end: None,
                },
            ]
        );
        let ends = ends_by_node(&jobs);
        assert_eq!(ends["node001"], Some(Timestamp::from_secs(1_795_470_531)));
        // node002 also runs the job without a limit, so its end is unknown.
        assert_eq!(ends["node002"], None);
        assert!(!ends.contains_key("node003"));
    }

    #[test]
    fn job_ends_take_the_latest_and_skip_stray_lines() {
        let jobs = parse_job_ends("n[1-2]|100\nsqueue: warning: x\nn2|300\nn1|200\n").unwrap();
        let ends = ends_by_node(&jobs);
        assert_eq!(ends["n1"], Some(Timestamp::from_secs(200)));
        assert_eq!(ends["n2"], Some(Timestamp::from_secs(300)));
        assert!(parse_job_ends("n[1-|100\n").is_err());
        assert!(parse_job_ends("").unwrap().is_empty());
    }

    #[test]
    fn a_node_slurmctld_has_not_heard_from_yet_is_told_apart() {
        for state in ["unknown", "unknown*", "UNKNOWN+NOT_RESPONDING", "UNKNOWN"] {
            assert!(not_registered_yet(state), "{state}");
        }
        for state in ["idle", "down*", "drained", "IDLE+DRAIN", "mixed"] {
            assert!(!not_registered_yet(state), "{state}");
        }
    }
}
