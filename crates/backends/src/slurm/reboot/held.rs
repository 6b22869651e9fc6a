//! How each node of a Slurm reboot comes back: into service, or still out of
//! service because someone else holds it there.
//!
//! `scontrol reboot ASAP nextstate=RESUME` returns a node to service as soon
//! as its slurmd registers with a fresh boot, and clears its reason. For a
//! node an administrator (or a health checker) had drained or taken down,
//! that would put it in service until crus writes the owner's mark back, a
//! poll later: long enough for the scheduler to start a job on a node with a
//! bad DIMM. So such a node is rebooted without anything that returns it
//! (Slurm 22.05's `scontrol` manual, `reboot`):
//!
//! - drained (`DRAIN` flag): neither `ASAP` nor `nextstate`. Slurm clears the
//!   `DRAIN` flag after the reboot only "if the reboot was ASAP,
//!   nextstate=resume or down", so it comes back drained. A drained node runs
//!   no job, so `ASAP` (which only adds the `DRAIN` flag) is not needed for
//!   the reboot to be issued at once.
//! - down: `nextstate=DOWN`: it "will remain in a down state after
//!   rebooting", and Slurm appends `reboot complete` to the reason.
//!
//! Both still get crus's reason (the key, so the reboot is found again, and
//! `image=<template>`, which the `RebootProgram` reads); the session writes
//! the owner's reason back, byte for byte, when it is done with the node.
//! Who holds a node is judged as the rollout judges it
//! ([`crus_core::rollout::is_crus_reason`]): out of service with a reason
//! that is not crus's.

use std::collections::HashMap;

use crus_core::rollout::is_crus_reason;

use super::progress::{RebootFacts, base_state, has_flag};

/// How a rebooted node is to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum WayBack {
    /// Held down by someone else: stays down (`nextstate=DOWN`).
    StayDown,
    /// Drained by someone else: stays drained (no `ASAP`, no `nextstate`).
    StayDrained,
    /// crus's own (or in service): back in service once it registers.
    Resume,
}

impl WayBack {
    /// The `scontrol reboot` options that give this way back.
    pub(crate) fn options(self) -> &'static [&'static str] {
        match self {
            // ASAP drains the node so no job starts before the reboot, and
            // reboots it as soon as its jobs end; RESUME puts it back in
            // service once it registers with a fresh boot.
            WayBack::Resume => &["ASAP", "nextstate=RESUME"],
            WayBack::StayDrained => &[],
            WayBack::StayDown => &["nextstate=DOWN"],
        }
    }
}

/// How the node Slurm shows as `facts` is to come back from its reboot.
pub(crate) fn way_back(facts: &RebootFacts) -> WayBack {
    let held = facts
        .reason
        .as_deref()
        .is_some_and(|reason| !is_crus_reason(reason));
    let state = facts.state.to_ascii_uppercase();
    if !held {
        WayBack::Resume
    } else if base_state(&state) == "DOWN" {
        WayBack::StayDown
    } else if has_flag(&state, "DRAIN") {
        WayBack::StayDrained
    } else {
        // In service with a leftover reason: nobody holds it out.
        WayBack::Resume
    }
}

/// `names` grouped by how they are to come back, each group in the order
/// given, nodes held by someone else first. A node Slurm does not show is
/// left to `scontrol` to refuse (the caller checks before).
pub(crate) fn ways_back(
    names: &[String],
    shown: &HashMap<String, RebootFacts>,
) -> Vec<(WayBack, Vec<String>)> {
    let mut groups: Vec<(WayBack, Vec<String>)> = Vec::new();
    for name in names {
        let way = shown.get(name).map_or(WayBack::Resume, way_back);
        match groups.iter_mut().find(|(known, _)| *known == way) {
            Some((_, group)) => group.push(name.clone()),
            None => groups.push((way, vec![name.clone()])),
        }
    }
    groups.sort_by_key(|(way, _)| *way);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(name: &str, state: &str, reason: Option<&str>) -> RebootFacts {
        RebootFacts {
            name: name.into(),
            state: state.into(),
            reason: reason.map(str::to_string),
            reason_set_at: None,
            boot_time: None,
        }
    }

    #[test]
    fn nodes_held_by_someone_else_are_not_resumed_by_their_reboot() {
        let cases = [
            (
                facts("n1", "IDLE+DRAIN", Some("crus:upgrade-1")),
                WayBack::Resume,
            ),
            (facts("n2", "IDLE", None), WayBack::Resume),
            (
                facts("n3", "IDLE+DRAIN", Some("bad DIMM")),
                WayBack::StayDrained,
            ),
            (
                facts("n4", "MIXED+DRAIN", Some("health: /scratch full")),
                WayBack::StayDrained,
            ),
            (facts("n5", "DOWN", Some("PSU fault")), WayBack::StayDown),
            (
                facts("n6", "DOWN+DRAIN", Some("PSU fault")),
                WayBack::StayDown,
            ),
            (
                facts("n7", "DOWN+DRAIN", Some("crus:upgrade-1")),
                WayBack::Resume,
            ),
            (facts("n8", "IDLE", Some("stale words")), WayBack::Resume),
        ];
        for (node, expected) in &cases {
            assert_eq!(way_back(node), *expected, "{node:?}");
        }
        assert!(WayBack::StayDrained.options().is_empty());
        assert!(!WayBack::StayDown.options().contains(&"nextstate=RESUME"));
        assert!(!WayBack::StayDown.options().contains(&"ASAP"));
        assert_eq!(WayBack::Resume.options(), ["ASAP", "nextstate=RESUME"]);

        let shown: HashMap<String, RebootFacts> = cases
            .iter()
            .map(|(node, _)| (node.name.clone(), node.clone()))
            .collect();
        let names: Vec<String> = ["n1", "n3", "n5", "n2", "n6", "unknown"]
            .iter()
            .map(|name| name.to_string())
            .collect();
        assert_eq!(
            ways_back(&names, &shown),
            vec![
                (WayBack::StayDown, vec!["n5".to_string(), "n6".into()]),
                (WayBack::StayDrained, vec!["n3".to_string()]),
                (
                    WayBack::Resume,
                    vec!["n1".to_string(), "n2".into(), "unknown".into()]
                ),
            ]
        );
    }
}
