//! Where each simulated node sits: the Cray xname layout of liquid-cooled
//! cabinets, and the NID and Slurm name derived from a node's index.
//!
//! Node `k` (0-based) sits in cabinet `1000 + k/256`, chassis `(k/32) % 8`,
//! slot `(k/4) % 8`, BMC `(k/2) % 2`, node `k % 2`: 256 nodes per cabinet,
//! 32 per chassis, 4 per blade, 2 per node card. Its NID is `k + 1`.

use crus_core::{NodeId, Xname};

/// The first cabinet number of the simulated machine.
const FIRST_CABINET: u32 = 1000;
/// Nodes in one cabinet: 8 chassis × 8 slots × 2 BMCs × 2 nodes.
const NODES_PER_CABINET: usize = 256;
/// The highest cabinet number an xname may carry.
const LAST_CABINET: u32 = 9999;

/// The most nodes the layout can name (cabinets 1000 to 9999).
pub const MAX_NODES: usize = (LAST_CABINET - FIRST_CABINET + 1) as usize * NODES_PER_CABINET;

/// The xname of node `index` (0-based); `None` past [`MAX_NODES`].
pub fn xname_of(index: usize) -> Option<Xname> {
    if index >= MAX_NODES {
        return None;
    }
    let cabinet = u32::try_from(index / NODES_PER_CABINET).ok()? + FIRST_CABINET;
    // Every other field is below 8, so the narrowing casts cannot truncate.
    let field = |divisor: usize, modulus: usize| ((index / divisor) % modulus) as u32;
    Some(Xname {
        cabinet,
        chassis: field(32, 8),
        slot: field(4, 8),
        bmc: field(2, 2),
        node: field(1, 2),
    })
}

/// The index of the node named `id`, if `id` is exactly the xname the layout
/// gives that index (`X1000C0S0B0N0` or `x1000c0s00b0n0` are not sim nodes).
pub fn index_of(id: &NodeId) -> Option<usize> {
    let xname = id.xname()?;
    if xname.cabinet < FIRST_CABINET || xname.slot > 7 || xname.bmc > 1 || xname.node > 1 {
        return None;
    }
    let index = (xname.cabinet - FIRST_CABINET) as usize * NODES_PER_CABINET
        + xname.chassis as usize * 32
        + xname.slot as usize * 4
        + xname.bmc as usize * 2
        + xname.node as usize;
    (xname.to_string() == id.as_str()).then_some(index)
}

/// The NID (Cray numeric node id) of node `index`: `index + 1`.
pub fn nid_of(index: usize) -> u32 {
    u32::try_from(index).map_or(u32::MAX, |index| index.saturating_add(1))
}

/// The Slurm node name for NID `nid`: `nid000001`.
pub fn slurm_name(nid: u32) -> String {
    format!("nid{nid:06}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_nodes_out_in_cabinets() {
        let names: Vec<String> = [0, 1, 2, 3, 4, 31, 32, 255, 256]
            .into_iter()
            .filter_map(xname_of)
            .map(|xname| xname.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "x1000c0s0b0n0",
                "x1000c0s0b0n1",
                "x1000c0s0b1n0",
                "x1000c0s0b1n1",
                "x1000c0s1b0n0",
                "x1000c0s7b1n1",
                "x1000c1s0b0n0",
                "x1000c7s7b1n1",
                "x1001c0s0b0n0",
            ]
        );
        assert_eq!(xname_of(MAX_NODES - 1).map(|x| x.cabinet), Some(9999));
        assert_eq!(xname_of(MAX_NODES), None);
        assert_eq!(slurm_name(nid_of(0)), "nid000001");
    }

    #[test]
    fn index_round_trips_and_rejects_foreign_names() {
        for index in [0, 1, 7, 100, 255, 256, 5000] {
            let id = xname_of(index).map(|x| NodeId::new(x.to_string()));
            assert_eq!(id.as_ref().and_then(index_of), Some(index));
        }
        for foreign in [
            "X1000C0S0B0N0",
            "x1000c0s00b0n0",
            "x999c0s0b0n0",
            "x1000c0s8b0n0",
            "x1000c0s0b2n0",
            "nid000001",
        ] {
            assert_eq!(index_of(&NodeId::new(foreign)), None, "{foreign}");
        }
    }
}
