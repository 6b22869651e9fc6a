//! How far one node's reboot has come, judged from what `scontrol -o show
//! node` says about it. Pure, so it is tested on captured text.
//!
//! Slurm 22.05 tracks a reboot only through node flags (as observed with
//! `scontrol reboot ASAP nextstate=RESUME` on 22.05.8):
//!
//! | Slurm shows                                     | crus reports |
//! |-------------------------------------------------|--------------|
//! | `REBOOT_REQUESTED` (waiting for jobs) or `REBOOT_ISSUED` (RebootProgram ran, node not back) | in progress |
//! | `DOWN`, or `FAIL`, without reboot flags (e.g. `reboot timed out` after `ResumeTimeout`) | failed, with Slurm's reason |
//! | `DOWN` with `... : reboot complete` (asked for by `nextstate=DOWN`), `BootTime` at or after the request | ok |
//! | no reboot flag, responding, `BootTime` at or after the request | ok |
//! | no reboot flag, responding, `BootTime` before the request | failed: cancelled, or the RebootProgram failed and `ReturnToService=2` put the node back |
//! | not responding, no reboot flag, not down        | in progress (the caller's boot timeout decides) |

use std::time::Duration;

use crus_core::ports::NodeBootState;
use crus_core::time::Timestamp;

use super::super::parse::{parse_end_time, parse_show_node};
use super::handle::slurm_part_of_reason;

/// One node's reboot-related facts from `scontrol -o show node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RebootFacts {
    /// Slurm's node name.
    pub(crate) name: String,
    /// The `State=` value, e.g. `DOWN+DRAIN+REBOOT_ISSUED`.
    pub(crate) state: String,
    /// The reason without Slurm's ` [user@time]` suffix.
    pub(crate) reason: Option<String>,
    /// When the reason was last set (from that suffix).
    pub(crate) reason_set_at: Option<Timestamp>,
    /// When the node last booted, as its slurmd reported (`BootTime=`).
    pub(crate) boot_time: Option<Timestamp>,
}

/// Parses every node line of `scontrol -o show node`.
///
/// The times are read as Unix seconds, which is how they are printed under
/// the `SLURM_TIME_FORMAT=%s` every Slurm command runs with here, or as
/// ISO dates in UTC (see `parse::parse_end_time`).
pub(crate) fn parse_reboot_facts(output: &str) -> Vec<RebootFacts> {
    output
        .lines()
        .filter_map(|line| {
            let shown = parse_show_node(line).into_iter().next()?;
            let (fields, raw_reason) = match line.find(" Reason=") {
                Some(at) => (&line[..at], Some(&line[at + " Reason=".len()..])),
                None => (line, None),
            };
            let boot_time = fields
                .split_whitespace()
                .find_map(|field| field.strip_prefix("BootTime="))
                .and_then(parse_end_time);
            Some(RebootFacts {
                name: shown.name,
                state: shown.state,
                reason: shown.reason,
                reason_set_at: raw_reason.and_then(reason_time),
                boot_time,
            })
        })
        .collect()
}

/// The time in Slurm's reason suffix, `... [root@1795469770]`.
fn reason_time(raw_reason: &str) -> Option<Timestamp> {
    let inside = raw_reason.trim().strip_suffix(']')?;
    let (_, stamp) = inside.rsplit_once('@')?;
    parse_end_time(stamp)
}

/// Whether `state` carries `flag` (`IDLE+DRAIN+REBOOT_REQUESTED` has `DRAIN`).
pub(crate) fn has_flag(state: &str, flag: &str) -> bool {
    state
        .split('+')
        .skip(1)
        .any(|part| part.eq_ignore_ascii_case(flag))
}

/// The state without its flags (`IDLE` of `IDLE+DRAIN`).
pub(crate) fn base_state(state: &str) -> &str {
    state.split('+').next().unwrap_or_default()
}

/// Whether a reboot is asked for and not finished (either flag).
pub(crate) fn reboot_pending(state: &str) -> bool {
    has_flag(state, "REBOOT_REQUESTED") || has_flag(state, "REBOOT_ISSUED")
}

/// Whether the reboot is still waiting to be issued, the only point at which
/// `scontrol cancel_reboot` can stop it.
pub(crate) fn reboot_cancellable(state: &str) -> bool {
    has_flag(state, "REBOOT_REQUESTED") && !has_flag(state, "REBOOT_ISSUED")
}

/// What Slurm appends to the reason of a node rebooted with `nextstate=DOWN`
/// once it registers with a fresh boot.
const REBOOT_COMPLETE: &str = "reboot complete";

/// Whether a down node is down because its reboot asked for it
/// (`nextstate=DOWN`, for a node someone else had taken down; see
/// `held.rs`): its reboot completed, and `BootTime` says whether it was
/// this one.
fn kept_down_on_purpose(facts: &RebootFacts) -> bool {
    facts
        .reason
        .as_deref()
        .is_some_and(|reason| reason.trim_end().ends_with(REBOOT_COMPLETE))
}

/// Where one node's reboot, requested at `requested_at`, stands.
///
/// `facts` is `None` when Slurm no longer lists the node. `clock_skew` is how
/// far the node's clock (which stamps `BootTime`) may be behind crus's clock
/// (which stamped `requested_at`) and a boot still count as this one.
pub(crate) fn boot_state(
    node: &str,
    facts: Option<&RebootFacts>,
    requested_at: Timestamp,
    clock_skew: Duration,
) -> NodeBootState {
    let Some(facts) = facts else {
        return NodeBootState::Failed {
            reason: format!("Slurm does not know node {node}"),
        };
    };
    let state = facts.state.to_ascii_uppercase();
    if reboot_pending(&state) {
        return NodeBootState::InProgress;
    }
    if (base_state(&state) == "DOWN" && !kept_down_on_purpose(facts)) || has_flag(&state, "FAIL") {
        let why = facts
            .reason
            .as_deref()
            .map_or("no reason given", slurm_part_of_reason);
        return NodeBootState::Failed {
            reason: format!("Slurm marked the node {state}: {why}"),
        };
    }
    if has_flag(&state, "NOT_RESPONDING") || base_state(&state) == "UNKNOWN" {
        return NodeBootState::InProgress;
    }
    match facts.boot_time {
        Some(booted) if booted + clock_skew >= requested_at => NodeBootState::Ok,
        booted => NodeBootState::Failed {
            reason: format!(
                "no reboot is pending in Slurm, yet the node has not booted since the reboot \
                 was requested at {requested_at} (last boot: {}): the reboot was cancelled, or \
                 the RebootProgram failed and Slurm returned the node to service",
                booted.map_or_else(|| "unknown".to_string(), |time| time.to_string())
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Slurm 22.05.8 under `SLURM_TIME_FORMAT=%s`, during one
    /// reboot (`scontrol reboot ASAP nextstate=RESUME reason=... node001,node002`
    /// at 1795469770) and a failed one (node003), shortened in the middle.
    const SHOW_NODE: &str = "\
NodeName=node001 Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 Port=31001 Version=22.05.8 State=IDLE+DRAIN+REBOOT_REQUESTED ThreadsPerCore=1 NextState=RESUME Partitions=batch  BootTime=1795458950 SlurmdStartTime=1795458965 LastBusyTime=1795458965 Reason=crus k1 image=img-a [root@1795469770]
NodeName=node002 Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 Port=31002 Version=22.05.8 State=DOWN+DRAIN+REBOOT_ISSUED ThreadsPerCore=1 NextState=RESUME Partitions=batch  BootTime=1795458950 SlurmdStartTime=1795458965 Reason=crus k1 image=img-a : reboot issued [root@1795469770]
NodeName=node003 Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 Port=31003 Version=22.05.8 State=DOWN ThreadsPerCore=1 Partitions=batch  BootTime=1795458950 SlurmdStartTime=1795458965 Reason=crus k6 image=img-a : reboot issued : reboot timed out [root@1795470005]
NodeName=node004 Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 Port=31004 Version=22.05.8 State=IDLE ThreadsPerCore=1 Partitions=batch  BootTime=1795469772 SlurmdStartTime=1795469772 LastBusyTime=1795469772 CfgTRES=cpu=2,mem=1000M,billing=2
";

    fn facts() -> Vec<RebootFacts> {
        parse_reboot_facts(SHOW_NODE)
    }

    #[test]
    fn facts_are_read_from_show_node() {
        let facts = facts();
        assert_eq!(facts.len(), 4);
        assert_eq!(
            facts[1],
            RebootFacts {
                name: "node002".into(),
                state: "DOWN+DRAIN+REBOOT_ISSUED".into(),
                reason: Some("crus k1 image=img-a : reboot issued".into()),
                reason_set_at: Some(Timestamp::from_secs(1_795_469_770)),
                boot_time: Some(Timestamp::from_secs(1_795_458_950)),
            }
        );
        assert_eq!(facts[3].reason, None);
        assert_eq!(facts[3].reason_set_at, None);
        assert_eq!(
            facts[3].boot_time,
            Some(Timestamp::from_secs(1_795_469_772))
        );
    }

    #[test]
    fn iso_times_are_read_too() {
        let facts = parse_reboot_facts(
            "NodeName=n1 State=IDLE BootTime=2026-11-23T18:22:13 Reason=x [root@2026-11-23T18:24:51]\n\
             NodeName=n2 State=UNKNOWN BootTime=None\n",
        );
        assert_eq!(
            facts[0].boot_time,
            Some(Timestamp::from_secs(1_795_458_133))
        );
        assert_eq!(
            facts[0].reason_set_at,
            Some(Timestamp::from_secs(1_795_458_291))
        );
        assert_eq!(facts[1].boot_time, None);
    }

    #[test]
    fn each_stage_of_a_reboot_maps_to_a_boot_state() {
        let facts = facts();
        let requested = Timestamp::from_secs(1_795_469_770);
        let skew = Duration::from_secs(10);
        let state = |index: usize| boot_state("n", Some(&facts[index]), requested, skew);
        assert_eq!(state(0), NodeBootState::InProgress);
        assert_eq!(state(1), NodeBootState::InProgress);
        assert_eq!(
            state(2),
            NodeBootState::Failed {
                reason: "Slurm marked the node DOWN: reboot issued : reboot timed out".into()
            }
        );
        assert_eq!(state(3), NodeBootState::Ok);
    }

    #[test]
    fn a_node_back_without_a_new_boot_failed() {
        let back = RebootFacts {
            name: "node003".into(),
            state: "IDLE".into(),
            reason: None,
            reason_set_at: None,
            boot_time: Some(Timestamp::from_secs(1_795_458_950)),
        };
        let requested = Timestamp::from_secs(1_795_469_770);
        let NodeBootState::Failed { reason } =
            boot_state("node003", Some(&back), requested, Duration::from_secs(10))
        else {
            panic!("a node that did not boot again is not ok");
        };
        assert!(reason.contains("cancelled"), "{reason}");
        // A boot stamped by a clock a little behind still counts.
        let slightly_behind = RebootFacts {
            boot_time: Some(requested - Duration::from_secs(3)),
            ..back.clone()
        };
        assert_eq!(
            boot_state(
                "node003",
                Some(&slightly_behind),
                requested,
                Duration::from_secs(10)
            ),
            NodeBootState::Ok
        );
        let unknown_boot = RebootFacts {
            boot_time: None,
            ..back
        };
        assert!(matches!(
            boot_state("node003", Some(&unknown_boot), requested, Duration::ZERO),
            NodeBootState::Failed { .. }
        ));
    }

    #[test]
    fn failed_marks_and_silence() {
        let requested = Timestamp::from_secs(100);
        let node = |state: &str| RebootFacts {
            name: "n".into(),
            state: state.into(),
            reason: Some("bad dimm".into()),
            reason_set_at: None,
            boot_time: Some(Timestamp::from_secs(200)),
        };
        assert_eq!(
            boot_state("n", Some(&node("IDLE+FAIL")), requested, Duration::ZERO),
            NodeBootState::Failed {
                reason: "Slurm marked the node IDLE+FAIL: bad dimm".into()
            }
        );
        assert_eq!(
            boot_state(
                "n",
                Some(&node("IDLE+NOT_RESPONDING")),
                requested,
                Duration::ZERO
            ),
            NodeBootState::InProgress
        );
        assert_eq!(
            boot_state("n", Some(&node("UNKNOWN")), requested, Duration::ZERO),
            NodeBootState::InProgress
        );
        assert_eq!(
            boot_state("n", Some(&node("IDLE+DRAIN")), requested, Duration::ZERO),
            NodeBootState::Ok
        );
        assert!(matches!(
            boot_state("nosuch", None, requested, Duration::ZERO),
            NodeBootState::Failed { reason } if reason.contains("nosuch")
        ));
    }

    #[test]
    fn a_node_kept_down_by_its_reboot_is_booted_once_it_booted_again() {
        // As Slurm 22.05.8 shows a node rebooted with nextstate=DOWN.
        let requested = Timestamp::from_secs(1_795_469_770);
        let node = |boot_time: i64| RebootFacts {
            name: "node002".into(),
            state: "DOWN".into(),
            reason: Some("crus k1 image=img-a : reboot issued : reboot complete".into()),
            reason_set_at: None,
            boot_time: Some(Timestamp::from_secs(boot_time)),
        };
        assert_eq!(
            boot_state(
                "node002",
                Some(&node(1_795_469_775)),
                requested,
                Duration::ZERO
            ),
            NodeBootState::Ok
        );
        assert!(matches!(
            boot_state("node002", Some(&node(1_795_458_950)), requested, Duration::ZERO),
            NodeBootState::Failed { reason } if reason.contains("cancelled")
        ));
        // Down for any other reason is still a failed reboot.
        let timed_out = RebootFacts {
            reason: Some("crus k1 image=img-a : reboot issued : reboot timed out".into()),
            ..node(1_795_469_775)
        };
        assert!(matches!(
            boot_state("node002", Some(&timed_out), requested, Duration::ZERO),
            NodeBootState::Failed { .. }
        ));
    }

    #[test]
    fn only_a_requested_reboot_can_be_cancelled() {
        assert!(reboot_cancellable("ALLOCATED+DRAIN+REBOOT_REQUESTED"));
        assert!(!reboot_cancellable("DOWN+DRAIN+REBOOT_ISSUED"));
        assert!(!reboot_cancellable("IDLE"));
        assert!(reboot_pending("DOWN+DRAIN+REBOOT_ISSUED"));
        assert!(!reboot_pending("IDLE+DRAIN"));
    }
}
