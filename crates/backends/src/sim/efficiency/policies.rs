//! The rollout policies the efficiency benchmark compares, CRUS's own first.

use std::time::Duration;

use crus_core::rollout::{Domain, Order, RolloutPolicy, Strategy};
use serde::{Deserialize, Serialize};

/// One policy of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Policy {
    /// CRUS as it really worked (`cray-crus` `upgrade_agent.py`): fixed steps
    /// sliced from the starting group in inventory order; every node of a
    /// step is drained, the step boots only once the last of them is quiet
    /// (so it waits for its slowest drain), and the next step begins only
    /// once every node of this one is back in service.
    ///
    /// This is the engine's default policy (`strategy: steps`,
    /// `order: inventory`), which implements exactly that procedure:
    /// `Strategy::Steps` gives no capacity while a step is active and boots
    /// a step's drained nodes only when none of them is still draining.
    /// Where the engine differs from CRUS nothing in this benchmark
    /// exercises the difference: it snapshots the group once (CRUS re-read
    /// it every pass; membership does not change here), it sorts by
    /// location (the simulator's inventory lists nodes in location order
    /// already, as HSM typically does), and it fails a node alone on a bad
    /// boot (no boot fails here). Both poll every 10 s. CRUS's few seconds
    /// of etcd round trips per stage are not modelled, which flatters it
    /// slightly.
    CrusStrict,
    /// CRUS's steps and barrier, with the cheapest drains taken first.
    StepsDrainCost,
    /// A sliding window of at most a step out of service, cheapest drains
    /// first, each node booted as soon as it is drained.
    ContinuousDrainCost,
    /// A sliding window in drain-cost order, never two nodes of one chassis
    /// out at once.
    ContinuousTopologySpread,
    /// `continuous+drain_cost` with `steer_jobs`: the nodes still to upgrade
    /// get a higher scheduling weight, so new jobs go to upgraded nodes.
    ContinuousDrainCostSteer,
    /// `continuous+drain_cost` with `drain_ahead` (issue 20): the nodes whose
    /// jobs end soonest are drained while those jobs run, up to
    /// `max_draining` (the step size) besides the step.
    ContinuousDrainCostAhead,
    /// `continuous+drain_cost+steer_jobs` with `drain_ahead`.
    ContinuousDrainCostSteerAhead,
    /// `continuous+drain_cost` with `reserve_ahead`: each node still to
    /// upgrade is reserved from when the session plans to take it, so only
    /// jobs that end by then start on it.
    ContinuousDrainCostReserve,
    /// `continuous+drain_cost+steer_jobs` with `reserve_ahead`.
    ContinuousDrainCostSteerReserve,
}

impl Policy {
    /// Every policy, in the order they are reported.
    pub const ALL: [Policy; 9] = [
        Policy::CrusStrict,
        Policy::StepsDrainCost,
        Policy::ContinuousDrainCost,
        Policy::ContinuousTopologySpread,
        Policy::ContinuousDrainCostSteer,
        Policy::ContinuousDrainCostAhead,
        Policy::ContinuousDrainCostSteerAhead,
        Policy::ContinuousDrainCostReserve,
        Policy::ContinuousDrainCostSteerReserve,
    ];

    /// Its name in the table and the JSON file.
    pub fn name(self) -> &'static str {
        match self {
            Policy::CrusStrict => "crus-strict",
            Policy::StepsDrainCost => "steps+drain_cost",
            Policy::ContinuousDrainCost => "continuous+drain_cost",
            Policy::ContinuousTopologySpread => "continuous+topology(spread=chassis)",
            Policy::ContinuousDrainCostSteer => "continuous+drain_cost+steer_jobs",
            Policy::ContinuousDrainCostAhead => "continuous+drain_cost+drain_ahead",
            Policy::ContinuousDrainCostSteerAhead => "continuous+drain_cost+steer_jobs+drain_ahead",
            Policy::ContinuousDrainCostReserve => "continuous+drain_cost+reserve_ahead",
            Policy::ContinuousDrainCostSteerReserve => {
                "continuous+drain_cost+steer_jobs+reserve_ahead"
            }
        }
    }

    /// Whether it drains nodes ahead (`drain_ahead`).
    pub fn drains_ahead(self) -> bool {
        matches!(
            self,
            Policy::ContinuousDrainCostAhead | Policy::ContinuousDrainCostSteerAhead
        )
    }

    /// Whether it steers new jobs to upgraded nodes (`steer_jobs`).
    fn steers_jobs(self) -> bool {
        matches!(
            self,
            Policy::ContinuousDrainCostSteer
                | Policy::ContinuousDrainCostSteerAhead
                | Policy::ContinuousDrainCostSteerReserve
        )
    }

    /// Whether it reserves nodes ahead of their turn (`reserve_ahead`).
    fn reserves_ahead(self) -> bool {
        matches!(
            self,
            Policy::ContinuousDrainCostReserve | Policy::ContinuousDrainCostSteerReserve
        )
    }

    /// The engine policy that implements it, with `boot_timeout`.
    pub fn rollout_policy(self, boot_timeout: Duration) -> RolloutPolicy {
        let (strategy, order, spread) = match self {
            Policy::CrusStrict => (Strategy::Steps, Order::Inventory, None),
            Policy::StepsDrainCost => (Strategy::Steps, Order::DrainCost, None),
            Policy::ContinuousDrainCost => (Strategy::Continuous, Order::DrainCost, None),
            Policy::ContinuousTopologySpread => {
                (Strategy::Continuous, Order::Topology, Some(Domain::Chassis))
            }
            Policy::ContinuousDrainCostSteer
            | Policy::ContinuousDrainCostAhead
            | Policy::ContinuousDrainCostSteerAhead
            | Policy::ContinuousDrainCostReserve
            | Policy::ContinuousDrainCostSteerReserve => {
                (Strategy::Continuous, Order::DrainCost, None)
            }
        };
        RolloutPolicy {
            strategy,
            order,
            spread,
            boot_timeout,
            steer_jobs: self.steers_jobs(),
            // max_draining left out: the step size.
            drain_ahead: self.drains_ahead(),
            reserve_ahead: self.reserves_ahead(),
            ..RolloutPolicy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crus_strict_is_the_engine_default() {
        let timeout = Duration::from_secs(1800);
        assert_eq!(
            Policy::CrusStrict.rollout_policy(timeout),
            RolloutPolicy {
                boot_timeout: timeout,
                ..RolloutPolicy::default()
            }
        );
    }
}
