//! The boot id of a BOS v1 session: the session id BOS chose, and the nodes
//! crus asked it to reboot.
//!
//! A v1 session has no name crus can choose, and neither its description nor
//! its status repeats the `limit` it was started with, so the id crus hands
//! its caller (who stores it with the step) carries both:
//!
//! ```text
//! bos-v1:<BOS session id>:<node id>,<node id>,...
//! ```
//!
//! With it a process that never saw the boot start (after a restart) follows
//! the same BOS session and reports exactly the nodes of the step.

use crus_core::node::NodeId;

/// The prefix of every boot id this backend hands out.
const ID_PREFIX: &str = "bos-v1:";

/// A boot as its id describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BootId {
    /// The BOS v1 session id (a UUID).
    pub(super) session: String,
    /// The nodes the session was limited to.
    pub(super) nodes: Vec<NodeId>,
}

impl BootId {
    /// The id text. The session id has no `:` and node ids no `,`
    /// (checked before a session is started).
    pub(super) fn encode(&self) -> String {
        let nodes: Vec<&str> = self.nodes.iter().map(NodeId::as_str).collect();
        format!("{ID_PREFIX}{}:{}", self.session, nodes.join(","))
    }

    /// Reads an id made by [`BootId::encode`]; `None` for anything else (an
    /// id of another orchestrator, or a made-up one).
    pub(super) fn decode(id: &str) -> Option<BootId> {
        let rest = id.strip_prefix(ID_PREFIX)?;
        let (session, nodes) = rest.split_once(':')?;
        let nodes: Vec<NodeId> = nodes.split(',').map(NodeId::from).collect();
        if session.is_empty() || nodes.iter().any(|node| node.as_str().is_empty()) {
            return None;
        }
        Some(BootId {
            session: session.to_string(),
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_foreign_ids_are_refused() {
        let id = BootId {
            session: "9173f29f-29a4-424f-b974-7fe85036dc3f".into(),
            nodes: vec![NodeId::from("x1c0s0b0n0"), NodeId::from("x1c0s0b0n1")],
        };
        let text = id.encode();
        assert_eq!(
            text,
            "bos-v1:9173f29f-29a4-424f-b974-7fe85036dc3f:x1c0s0b0n0,x1c0s0b0n1"
        );
        assert_eq!(BootId::decode(&text), Some(id));
        for foreign in [
            "9173f29f-29a4-424f-b974-7fe85036dc3f",
            "bos-v1:",
            "bos-v1::x1",
            "bos-v1:abc:",
            "bos-v1:abc:x1,,x2",
            "slurm-reboot:1:x1",
        ] {
            assert_eq!(BootId::decode(foreign), None, "{foreign}");
        }
    }
}
