//! Node identity, Cray xnames and per-node inventory facts.
//!
//! A node is named everywhere in crus by its inventory id (an xname on Cray
//! systems, `x1000c0s0b0n0`). Backends that use other names (Slurm's
//! `nid000001`) translate at their edge.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A map keyed by node id, with a fast hasher. The engine and the dry run's
/// machine look a node up by its id for every node of every answer (a dry
/// run of 4,000 nodes does it millions of times), and std's SipHash was a
/// sixth of a plan's instructions. Its resistance to crafted collisions buys
/// nothing here: the ids are the site's inventory, not a client's input.
pub type NodeMap<V> = std::collections::HashMap<NodeId, V, rustc_hash::FxBuildHasher>;

/// A node's inventory id.
///
/// Ordered by topology when both ids are node xnames (cabinet, chassis, slot,
/// BMC, node compared as numbers, so `x1000c0s2` sorts before `x1000c0s10`),
/// and naturally otherwise (`node2` before `node10`).
///
/// Shared, not owned: a session's state is copied each time it is persisted,
/// and with 100,000 nodes copying the ids as strings was most of that cost.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// A node id, taken as given.
    pub fn new(id: impl Into<String>) -> Self {
        NodeId(Arc::from(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id parsed as a node xname, if it is one.
    pub fn xname(&self) -> Option<Xname> {
        self.0.parse().ok()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(id: &str) -> Self {
        NodeId::new(id)
    }
}

impl From<String> for NodeId {
    fn from(id: String) -> Self {
        NodeId(Arc::from(id))
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(NodeId::from)
    }
}

impl Ord for NodeId {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.xname(), other.xname()) {
            (Some(left), Some(right)) => left.cmp(&right).then_with(|| self.0.cmp(&other.0)),
            _ => natural_cmp(&self.0, &other.0),
        }
    }
}

impl PartialOrd for NodeId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares text with runs of digits compared as numbers.
fn natural_cmp(left: &str, right: &str) -> Ordering {
    let mut left_chars = left.chars().peekable();
    let mut right_chars = right.chars().peekable();
    loop {
        match (left_chars.peek().copied(), right_chars.peek().copied()) {
            (None, None) => return left.cmp(right),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(l), Some(r)) if l.is_ascii_digit() && r.is_ascii_digit() => {
                let left_number = take_digits(&mut left_chars);
                let right_number = take_digits(&mut right_chars);
                let by_value = left_number
                    .trim_start_matches('0')
                    .len()
                    .cmp(&right_number.trim_start_matches('0').len())
                    .then_with(|| {
                        left_number
                            .trim_start_matches('0')
                            .cmp(right_number.trim_start_matches('0'))
                    });
                if by_value != Ordering::Equal {
                    return by_value;
                }
            }
            (Some(l), Some(r)) => {
                if l != r {
                    return l.cmp(&r);
                }
                left_chars.next();
                right_chars.next();
            }
        }
    }
}

fn take_digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut digits = String::new();
    while let Some(digit) = chars.next_if(char::is_ascii_digit) {
        digits.push(digit);
    }
    digits
}

/// A parsed Cray node xname `x<cabinet>c<chassis>s<slot>b<bmc>n<node>`.
///
/// Field order is the topology order, so the derived ordering sorts nodes by
/// cabinet, then chassis, slot, BMC and node, all as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xname {
    /// Cabinet number (0–9999).
    pub cabinet: u32,
    /// Chassis within the cabinet (0–7).
    pub chassis: u32,
    /// Slot (blade) within the chassis, or rack U position on air-cooled racks.
    pub slot: u32,
    /// Node card / BMC within the slot.
    pub bmc: u32,
    /// Node behind the BMC.
    pub node: u32,
}

impl Xname {
    /// The blade (compute module) this node sits in: `xXcCsS`.
    pub fn blade(&self) -> String {
        format!("x{}c{}s{}", self.cabinet, self.chassis, self.slot)
    }

    /// The chassis this node sits in: `xXcC`.
    pub fn chassis_id(&self) -> String {
        format!("x{}c{}", self.cabinet, self.chassis)
    }

    /// The cabinet this node sits in: `xX`.
    pub fn cabinet_id(&self) -> String {
        format!("x{}", self.cabinet)
    }
}

impl fmt::Display for Xname {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "x{}c{}s{}b{}n{}",
            self.cabinet, self.chassis, self.slot, self.bmc, self.node
        )
    }
}

/// Why a string is not a node xname.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a node xname (expected x<cabinet>c<chassis>s<slot>b<bmc>n<node>, e.g. x1000c0s0b0n0)"
)]
pub struct XnameError {
    /// The text that failed to parse.
    pub text: String,
}

impl FromStr for Xname {
    type Err = XnameError;

    /// Parses a node xname the way HSM normalises it: surrounding white space
    /// and letter case are ignored, leading zeros are allowed.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || XnameError {
            text: text.to_string(),
        };
        let normalised = text.trim().to_ascii_lowercase();
        let mut rest = normalised.as_str();
        let mut fields = [0u32; 5];
        for (index, letter) in ['x', 'c', 's', 'b', 'n'].into_iter().enumerate() {
            rest = rest.strip_prefix(letter).ok_or_else(error)?;
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 {
                return Err(error());
            }
            fields[index] = rest[..digits].parse().map_err(|_| error())?;
            rest = &rest[digits..];
        }
        if !rest.is_empty() || fields[0] > 9999 || fields[1] > 7 {
            return Err(error());
        }
        let [cabinet, chassis, slot, bmc, node] = fields;
        Ok(Xname {
            cabinet,
            chassis,
            slot,
            bmc,
            node,
        })
    }
}

/// What the inventory knows about a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// The node's inventory id.
    pub id: NodeId,
    /// Numeric node id (Cray NID), from which Slurm names such as `nid000001` derive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nid: Option<u32>,
    /// Whether the inventory has the node enabled.
    pub enabled: bool,
    /// The inventory's hardware state (`Ready`, `On`, `Off`, ...), as the inventory spells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl NodeFacts {
    /// Facts for an enabled node with nothing else known.
    pub fn enabled(id: NodeId) -> Self {
        NodeFacts {
            id,
            nid: None,
            enabled: true,
            state: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises_xnames() {
        let xname: Xname = " X1016c2s03b0n1 ".parse().unwrap();
        assert_eq!(xname.to_string(), "x1016c2s3b0n1");
        assert_eq!(xname.blade(), "x1016c2s3");
        assert_eq!(xname.chassis_id(), "x1016c2");
        assert_eq!(xname.cabinet_id(), "x1016");
        for bad in [
            "x1000c8s0b0n0",
            "x1000c0s0b0",
            "nid000001",
            "x1000c0s0b0n0v1",
            "",
        ] {
            assert!(bad.parse::<Xname>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn sorts_by_topology_then_naturally() {
        let mut ids: Vec<NodeId> = [
            "x1000c0s10b0n0",
            "x1000c0s2b0n1",
            "x1000c0s2b0n0",
            "x999c7s0b0n0",
            "node10",
            "node2",
        ]
        .into_iter()
        .map(NodeId::from)
        .collect();
        ids.sort();
        let sorted: Vec<&str> = ids.iter().map(NodeId::as_str).collect();
        assert_eq!(
            sorted,
            [
                "node2",
                "node10",
                "x999c7s0b0n0",
                "x1000c0s2b0n0",
                "x1000c0s2b0n1",
                "x1000c0s10b0n0"
            ]
        );
    }
}
