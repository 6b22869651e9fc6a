//! Faults are data: what goes wrong in the simulated cluster is described by a
//! value, so a test states its scenario up front and replays it exactly.

use std::collections::{BTreeMap, BTreeSet};

use crus_core::NodeId;
use serde::{Deserialize, Serialize};

/// The reason reported for a boot that fails by `boot_fail_rate` or `fail_boot`.
pub const BOOT_FAILURE_REASON: &str = "kernel panic during boot (simulated)";

/// What goes wrong in a simulated cluster. The default is nothing.
///
/// Rates are probabilities in `[0, 1]`, drawn per node and boot from the
/// cluster's seeded random generator, so the same seed and calls give the same
/// faults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Chance that a booting node fails to boot ([`BOOT_FAILURE_REASON`]).
    pub boot_fail_rate: f64,
    /// Chance that a booting node never comes back: its boot stays in
    /// progress and it stays down until it is power-restarted.
    pub never_return_rate: f64,
    /// Nodes whose every boot through the boot orchestrator, and every power
    /// restart, fails (a bad image for that hardware).
    pub fail_boot: BTreeSet<NodeId>,
    /// Nodes whose boots with a given template fail (an image that does
    /// not suit their hardware), by template; other templates boot them.
    pub fail_boot_with: BTreeMap<String, BTreeSet<NodeId>>,
    /// Nodes whose boots through the boot orchestrator never finish; a power
    /// restart brings them back.
    pub never_return: BTreeSet<NodeId>,
    /// Nodes that run, from time zero, a job that never ends, so draining them
    /// never completes.
    pub stuck_jobs: BTreeSet<NodeId>,
    /// Chance that a port call fails with a retryable
    /// [`Error::Unavailable`](crus_core::Error::Unavailable) before reaching
    /// the cluster (see [`Faulty`](super::Faulty)); applied to the ports of
    /// [`SimCluster::ports`](super::SimCluster::ports).
    pub port_error_rate: f64,
    /// Chance that a port call reaches the cluster and takes effect, but its
    /// answer is lost: the caller gets a retryable timeout instead (see
    /// [`Faulty::losing_answers`](super::Faulty::losing_answers)).
    pub port_timeout_rate: f64,
}

impl Faults {
    /// No faults at all.
    pub fn none() -> Self {
        Faults::default()
    }

    /// What is wrong with these faults, if anything: rates must be
    /// probabilities, and at most 1 together for boots.
    pub(super) fn check(&self) -> Result<(), String> {
        for (name, rate) in [
            ("boot_fail_rate", self.boot_fail_rate),
            ("never_return_rate", self.never_return_rate),
            ("port_error_rate", self.port_error_rate),
            ("port_timeout_rate", self.port_timeout_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, not {rate}"));
            }
        }
        if self.port_error_rate + self.port_timeout_rate > 1.0 {
            return Err(format!(
                "port_error_rate + port_timeout_rate must be at most 1, not {}",
                self.port_error_rate + self.port_timeout_rate
            ));
        }
        if self.boot_fail_rate + self.never_return_rate > 1.0 {
            return Err(format!(
                "boot_fail_rate + never_return_rate must be at most 1, not {}",
                self.boot_fail_rate + self.never_return_rate
            ));
        }
        Ok(())
    }

    /// How a boot through the boot orchestrator of `node` ends, given a
    /// uniform draw `draw` in `[0, 1)`. The caller always draws, even when a
    /// node set decides, so adding a node to a set does not shift the draws of
    /// other boots.
    pub(super) fn boot_outcome(&self, node: &NodeId, draw: f64) -> BootOutcome {
        if self.never_return.contains(node) {
            BootOutcome::NeverReturns
        } else if self.fail_boot.contains(node) {
            BootOutcome::failed()
        } else if draw < self.never_return_rate {
            BootOutcome::NeverReturns
        } else if draw < self.never_return_rate + self.boot_fail_rate {
            BootOutcome::failed()
        } else {
            BootOutcome::Ok
        }
    }

    /// How a boot of `node` with `template` ends, given a uniform draw
    /// `draw` in `[0, 1)`: as [`Faults::boot_outcome`], unless the
    /// template fails on that node.
    pub(super) fn boot_outcome_with(
        &self,
        template: &str,
        node: &NodeId,
        draw: f64,
    ) -> BootOutcome {
        let bad_image = self
            .fail_boot_with
            .get(template)
            .is_some_and(|nodes| nodes.contains(node));
        if bad_image {
            BootOutcome::failed()
        } else {
            self.boot_outcome(node, draw)
        }
    }

    /// How a power restart (or power on) of `node` ends: it clears a hang, but
    /// not a node that cannot boot at all.
    pub(super) fn restart_outcome(&self, node: &NodeId) -> BootOutcome {
        if self.fail_boot.contains(node) {
            BootOutcome::failed()
        } else {
            BootOutcome::Ok
        }
    }
}

/// How one node's boot ends, decided when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum BootOutcome {
    /// The node comes up and responds.
    Ok,
    /// The node stays down with this reason.
    Failed {
        /// Why, as the boot orchestrator reports it.
        reason: String,
    },
    /// The boot never finishes.
    NeverReturns,
}

impl BootOutcome {
    fn failed() -> Self {
        BootOutcome::Failed {
            reason: BOOT_FAILURE_REASON.to_string(),
        }
    }
}
