//! What a Slurm reboot leaves behind for crus to find it again: the boot id
//! handed to the caller, and the reason written on the rebooting nodes.
//!
//! Slurm has no object for "a reboot of these nodes": it only sets flags and a
//! reason on each node. So the boot id carries everything needed to judge the
//! boot later, in a process that never saw it start (the caller persists the
//! handle and may ask about it after a restart):
//!
//! ```text
//! slurm-reboot:<requested at, Unix seconds>:<node id>,<node id>,...
//! ```
//!
//! and the reason names the idempotency key, so a pending reboot is found
//! again by its key:
//!
//! ```text
//! crus <key> image=<template>
//! ```

use crus_core::node::NodeId;
use crus_core::rollout::REBOOT_REASON_PREFIX;
use crus_core::time::Timestamp;

/// The prefix of every boot id this backend hands out.
const ID_PREFIX: &str = "slurm-reboot:";

/// A boot as its id describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BootId {
    /// When the reboot was asked for, to the second (Slurm's `BootTime` has
    /// no finer resolution, so finer would promise more than can be checked).
    pub(crate) requested_at: Timestamp,
    /// The nodes rebooted, as the caller named them.
    pub(crate) nodes: Vec<NodeId>,
}

impl BootId {
    /// The id text. Node ids must not contain a comma ([`can_carry`]).
    pub(crate) fn encode(&self) -> String {
        let nodes: Vec<&str> = self.nodes.iter().map(NodeId::as_str).collect();
        format!(
            "{ID_PREFIX}{}:{}",
            self.requested_at.as_secs(),
            nodes.join(",")
        )
    }

    /// Reads an id made by [`BootId::encode`]; `None` for anything else (an
    /// id of another orchestrator, or a made-up one).
    pub(crate) fn decode(id: &str) -> Option<BootId> {
        let rest = id.strip_prefix(ID_PREFIX)?;
        let (seconds, nodes) = rest.split_once(':')?;
        let seconds: i64 = seconds.parse().ok()?;
        let nodes = if nodes.is_empty() {
            Vec::new()
        } else {
            nodes.split(',').map(NodeId::from).collect::<Vec<_>>()
        };
        if nodes.iter().any(|node| node.as_str().is_empty()) {
            return None;
        }
        Some(BootId {
            requested_at: Timestamp::from_secs(seconds),
            nodes,
        })
    }
}

/// Whether `node` can be written into a boot id and read back unchanged.
pub(crate) fn can_carry(node: &NodeId) -> bool {
    !node.as_str().is_empty() && !node.as_str().contains(',')
}

/// Whether `text` can stand as one word of the reboot reason (a key or a
/// template): white space would make the reason ambiguous to read back.
pub(crate) fn is_word(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(char::is_whitespace)
}

/// The reason given to `scontrol reboot`: the key, so a pending reboot is
/// found again after a restart, and the template, so the site's
/// `RebootProgram` can read which image to boot (`image=<template>`).
pub(crate) fn reboot_reason(key: &str, template: &str) -> String {
    // The rollout knows the prefix too: a failure mark goes over a reason
    // a reboot left, never over one someone else placed.
    format!("{REBOOT_REASON_PREFIX}{key} image={template}")
}

/// Whether a node's reason was set by a reboot under `key`. Slurm appends to
/// the reason as the reboot goes on (`... : reboot issued`), never in front.
pub(crate) fn is_reason_of(reason: &str, key: &str) -> bool {
    reason
        .strip_prefix(REBOOT_REASON_PREFIX)
        .and_then(|rest| rest.strip_prefix(key))
        .is_some_and(|rest| rest.starts_with(' '))
}

/// What Slurm added to the reason crus gave (`reboot issued : reboot timed
/// out`), or the whole reason when crus did not set it.
pub(crate) fn slurm_part_of_reason(reason: &str) -> &str {
    if reason.starts_with(REBOOT_REASON_PREFIX)
        && let Some((_, added)) = reason.split_once(" : ")
    {
        return added.trim();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let id = BootId {
            requested_at: Timestamp::from_secs(1_795_469_770),
            nodes: vec![NodeId::from("node001"), NodeId::from("x1000c0s0b0n0")],
        };
        let text = id.encode();
        assert_eq!(text, "slurm-reboot:1795469770:node001,x1000c0s0b0n0");
        assert_eq!(BootId::decode(&text), Some(id));
        let empty = BootId {
            requested_at: Timestamp::from_secs(5),
            nodes: Vec::new(),
        };
        assert_eq!(BootId::decode(&empty.encode()), Some(empty));
    }

    #[test]
    fn ids_of_others_are_not_read() {
        for other in [
            "3f2b8a0e-6c3e-4c71-9d7e-2f6f0d1c9a10",
            "slurm-reboot:",
            "slurm-reboot:soon:node001",
            "slurm-reboot:5:node001,,node002",
            "reboot:5:node001",
        ] {
            assert_eq!(BootId::decode(other), None, "{other}");
        }
    }

    #[test]
    fn reasons_are_found_by_their_key_only() {
        let reason = reboot_reason("crus-abc-step-1", "compute-2.5");
        assert_eq!(reason, "crus crus-abc-step-1 image=compute-2.5");
        assert!(is_reason_of(&reason, "crus-abc-step-1"));
        assert!(is_reason_of(
            &format!("{reason} : reboot issued"),
            "crus-abc-step-1"
        ));
        // A key that is a prefix of another is not the other.
        assert!(!is_reason_of(&reason, "crus-abc-step"));
        assert!(!is_reason_of("upgrade busy", "crus-abc-step-1"));
    }

    #[test]
    fn slurms_additions_are_told_apart() {
        assert_eq!(
            slurm_part_of_reason("crus k image=a : reboot issued : reboot timed out"),
            "reboot issued : reboot timed out"
        );
        assert_eq!(slurm_part_of_reason("Not responding"), "Not responding");
        assert_eq!(slurm_part_of_reason("crus k image=a"), "crus k image=a");
    }

    #[test]
    fn words_and_carried_nodes() {
        assert!(is_word("compute-2.5"));
        assert!(!is_word("a b"));
        assert!(!is_word(""));
        assert!(can_carry(&NodeId::from("node001")));
        assert!(!can_carry(&NodeId::from("a,b")));
    }
}
