//! The bench's check that a run kept within its step. Without drain ahead
//! every node out of service counts against the step. With it (issue 20),
//! nodes drained ahead still run their jobs and have their own bound
//! (`max_draining`, the step size here), so all the nodes out of service
//! are at most the step plus `max_draining`. The nodes out of service and
//! running nothing are counted on their own: the session's phases never
//! hold more than the step of them, but a node drained ahead whose jobs end
//! is idle until the next poll sees it and it is returned to service (the
//! design point of `rollout/drain_ahead.rs`). The simulator counts between
//! polls and cannot tell the two apart, so the check of those is the step
//! plus `max_draining` too, and the figure is reported beside it.

use super::policies::Policy;

/// The most nodes out of service at once in a run, as the simulator
/// counted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OutOfService {
    /// Drained, draining or booting.
    pub all: usize,
    /// Of those, running no job: drained and idle, or booting.
    pub running_nothing: usize,
}

/// Why a run under `policy` at `step` broke its bounds, if it did.
pub(super) fn step_exceeded(policy: Policy, step: u32, most: OutOfService) -> Option<String> {
    let step = step as usize;
    if policy.drains_ahead() {
        let max_draining = step;
        if most.running_nothing > step + max_draining {
            return Some(format!(
                "{} nodes out of service and running nothing at once, more than the step \
                 plus max_draining ({})",
                most.running_nothing,
                step + max_draining
            ));
        }
        if most.all > step + max_draining {
            return Some(format!(
                "{} nodes out of service at once, more than the step plus max_draining ({})",
                most.all,
                step + max_draining
            ));
        }
        return None;
    }
    (most.all > step).then(|| {
        format!(
            "{} nodes out of service at once, more than the step",
            most.all
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_drain_ahead_every_node_out_counts_against_the_step() {
        let most = OutOfService {
            all: 9,
            running_nothing: 2,
        };
        assert!(step_exceeded(Policy::ContinuousDrainCost, 8, most).is_some());
        assert!(step_exceeded(Policy::ContinuousDrainCost, 9, most).is_none());
    }

    #[test]
    fn with_drain_ahead_nodes_draining_ahead_have_their_own_bound() {
        let draining_ahead = OutOfService {
            all: 16,
            running_nothing: 8,
        };
        assert!(step_exceeded(Policy::ContinuousDrainCostAhead, 8, draining_ahead).is_none());
        let idle_beyond_both = OutOfService {
            all: 17,
            running_nothing: 17,
        };
        assert!(step_exceeded(Policy::ContinuousDrainCostAhead, 8, idle_beyond_both).is_some());
        let beyond_both = OutOfService {
            all: 17,
            running_nothing: 8,
        };
        assert!(step_exceeded(Policy::ContinuousDrainCostSteerAhead, 8, beyond_both).is_some());
    }
}
