//! Choosing which pending nodes a rollout takes next: the order (inventory,
//! or cheapest drain first) and the failure-domain rule (spread or align).
//!
//! Pure functions over indexes into the session's node list, so the same
//! rules serve the rollout and the dry-run plan.

use std::collections::BTreeSet;

use super::policy::Domain;
use crate::node::NodeId;
use crate::ports::{WorkloadNode, WorkloadState};
use crate::time::Timestamp;

/// How costly draining a node is now: lower drains sooner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DrainCost {
    /// Runs no job: drains at once.
    Free,
    /// Runs jobs expected to end at this time.
    EndsAt(Timestamp),
    /// Runs jobs with no known end.
    Unbounded,
    /// The workload manager does not know the node, or it was not observed.
    Unknown,
}

impl DrainCost {
    /// The cost of a node as the workload manager reports it.
    pub fn of(report: &WorkloadNode) -> DrainCost {
        match report.state {
            WorkloadState::Idle | WorkloadState::Drained | WorkloadState::Down => DrainCost::Free,
            WorkloadState::Allocated | WorkloadState::Draining => match report.jobs_end_by {
                Some(end) => DrainCost::EndsAt(end),
                None => DrainCost::Unbounded,
            },
            WorkloadState::Unknown => DrainCost::Unknown,
        }
    }
}

/// The failure domain of `node` at level `domain`. Nodes whose names are not
/// xnames are each their own domain, so the rules never hold them back.
pub fn domain_of(node: &NodeId, domain: Domain) -> String {
    match node.xname() {
        Some(xname) => match domain {
            Domain::Blade => xname.blade(),
            Domain::Chassis => xname.chassis_id(),
            Domain::Cabinet => xname.cabinet_id(),
        },
        None => node.as_str().to_string(),
    }
}

/// Takes up to `capacity` nodes from `ranked`, never two of one domain and
/// none of a domain that is `busy` (has a node already out of service).
///
/// `ranked` is read only as far as needed, so a caller that bounds
/// `capacity` by the number of domains that could give a node pays for what
/// it takes, not for every pending node.
pub fn spread<D: Ord>(
    ranked: impl IntoIterator<Item = usize>,
    capacity: usize,
    busy: impl Fn(&D) -> bool,
    domain: impl Fn(usize) -> D,
) -> Vec<usize> {
    let mut used = BTreeSet::new();
    let mut taken = Vec::new();
    for node in ranked {
        if taken.len() >= capacity {
            break;
        }
        let key = domain(node);
        if !busy(&key) && used.insert(key) {
            taken.push(node);
        }
    }
    taken
}

/// Takes whole domains, in the order of their best-ranked pending node,
/// while they fit in `capacity`. The next domain that does not fit is waited
/// for rather than skipped, so a large domain is not starved by small ones;
/// a domain larger than `step_size` is taken `step_size` nodes at a time when
/// `capacity` is the whole step. `members` gives a domain's pending nodes.
pub fn align<D: Ord + Clone>(
    ranked: impl IntoIterator<Item = usize>,
    capacity: usize,
    step_size: usize,
    domain: impl Fn(usize) -> D,
    members: impl Fn(&D) -> Vec<usize>,
) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    let mut taken = Vec::new();
    for node in ranked {
        let key = domain(node);
        if !seen.insert(key.clone()) {
            continue;
        }
        let mut nodes = members(&key);
        // Within a domain, inventory order: neighbours go together.
        nodes.sort_unstable();
        if taken.len() + nodes.len() <= capacity {
            taken.extend(nodes);
        } else if taken.is_empty() && nodes.len() > step_size && capacity >= step_size {
            taken.extend(nodes.into_iter().take(step_size));
            break;
        } else {
            break;
        }
    }
    taken
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn blade_of<'a>(names: &'a [&'a str]) -> impl Fn(usize) -> String + 'a {
        move |node| domain_of(&NodeId::from(names[node]), Domain::Blade)
    }

    /// Three blades of two nodes, shared with the census tests.
    pub(in crate::rollout) const NODES: [&str; 6] = [
        "x1000c0s0b0n0",
        "x1000c0s0b0n1",
        "x1000c0s1b0n0",
        "x1000c0s1b0n1",
        "x1000c0s2b0n0",
        "x1000c0s2b0n1",
    ];

    #[test]
    fn spread_takes_one_node_per_domain_and_avoids_busy_ones() {
        let busy = |blade: &String| blade == "x1000c0s1";
        assert_eq!(
            spread([0, 1, 2, 3, 4, 5], 4, busy, blade_of(&NODES)),
            [0, 4]
        );
        assert_eq!(spread([5, 0, 1], 1, |_| false, blade_of(&NODES)), [5]);
    }

    #[test]
    fn align_takes_whole_domains_and_waits_for_one_that_does_not_fit() {
        // The members of a blade among the pending nodes `pending`.
        let members_among = |pending: &'static [usize]| {
            move |blade: &String| {
                pending
                    .iter()
                    .copied()
                    .filter(|&node| &blade_of(&NODES)(node) == blade)
                    .collect::<Vec<_>>()
            }
        };
        let all: &'static [usize] = &[0, 1, 2, 3, 4, 5];
        assert_eq!(
            align(
                [2, 0, 1, 3, 4, 5],
                4,
                4,
                blade_of(&NODES),
                members_among(all)
            ),
            [2, 3, 0, 1]
        );
        assert_eq!(
            align(
                [2, 0, 1, 3, 4, 5],
                3,
                4,
                blade_of(&NODES),
                members_among(all)
            ),
            [2, 3]
        );
        assert_eq!(
            align([0, 1, 2], 1, 4, blade_of(&NODES), members_among(&[0, 1, 2])),
            Vec::<usize>::new()
        );
        // A domain larger than the step is taken a step at a time.
        assert_eq!(
            align(
                [0, 1, 2, 3],
                1,
                1,
                blade_of(&NODES),
                members_among(&[0, 1, 2, 3])
            ),
            [0]
        );
    }

    #[test]
    fn names_that_are_not_xnames_are_their_own_domain() {
        assert_eq!(
            domain_of(&NodeId::from("node001"), Domain::Cabinet),
            "node001"
        );
        assert_eq!(
            domain_of(&NodeId::from("x3000c1s4b0n1"), Domain::Chassis),
            "x3000c1"
        );
    }
}
