//! One simulated node: what the workload manager, the boot orchestrator, the
//! power controller and the inventory each see of it, derived from one record.

use crus_core::ports::{PowerState, WorkloadState};
use crus_core::rollout::DEFAULT_WEIGHT;
use crus_core::{NodeFacts, NodeId, Timestamp};
use serde::{Deserialize, Serialize};

use super::faults::BootOutcome;

/// Which job runs where: the simulator's own job number.
pub(super) type JobNumber = u64;

/// A node and every mark on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SimNode {
    /// Its inventory id (xname).
    pub id: NodeId,
    /// Its NID.
    pub nid: u32,
    /// The job it runs, if any.
    pub job: Option<JobNumber>,
    /// The drain flag and its reason: no new job starts here while set.
    pub drain_reason: Option<String>,
    /// The failed mark set through `fail()` and its reason: out of service until resumed.
    pub fail_reason: Option<String>,
    /// Whether it is up, booting, down after a boot, or off.
    pub condition: Condition,
    /// Bumped at every boot, restart or power-off, so a boot end scheduled
    /// before is recognised as stale.
    pub boot_generation: u64,
    /// Boots started through the boot orchestrator.
    pub boots: u32,
    /// Its scheduling weight: new jobs go to the lowest weights first, as in
    /// Slurm (whose default weight is 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The template it last booted into through the boot orchestrator;
    /// `None` for the image it had before the simulation (none of the
    /// orchestrator's templates). A power restart boots the same image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Its features (Slurm's `AvailableFeatures`/`ActiveFeatures`), none by
    /// default; left out of saved state when empty, as before they existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// When crus's reservation of it begins (`reserve_ahead`): as in Slurm,
    /// a job starts on it only if its time limit ends by then. Left out of
    /// saved state when none, as before reservations existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_from: Option<Timestamp>,
}

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

/// The machine's own condition, whatever the workload manager has marked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum Condition {
    /// Powered on, operating system up, workload daemon responding.
    Up,
    /// Booting (or hung while booting when `ends_at` is `None`).
    Booting {
        /// When the boot ends; `None` when it never does.
        ends_at: Option<Timestamp>,
        /// How it ends.
        outcome: BootOutcome,
        /// The boot orchestrator's boot this is part of (its key and this
        /// node's position in it), `None` for a power restart.
        boot: Option<(String, usize)>,
    },
    /// Powered on but down: the last boot failed.
    BootFailed {
        /// Why, as the boot orchestrator said.
        reason: String,
    },
    /// Powered off.
    Off,
}

impl SimNode {
    /// A node that is up, idle and unmarked.
    pub fn new(id: NodeId, nid: u32) -> Self {
        SimNode {
            id,
            nid,
            job: None,
            drain_reason: None,
            fail_reason: None,
            condition: Condition::Up,
            boot_generation: 0,
            boots: 0,
            weight: DEFAULT_WEIGHT,
            image: None,
            features: Vec::new(),
            reserved_from: None,
        }
    }

    /// Whether a new job may start here now.
    pub fn is_free(&self) -> bool {
        self.condition == Condition::Up
            && self.job.is_none()
            && self.drain_reason.is_none()
            && self.fail_reason.is_none()
    }

    /// Whether it is booting, finished or not.
    pub fn is_booting(&self) -> bool {
        matches!(self.condition, Condition::Booting { .. })
    }

    /// Whether crus holds it out of service: drained or booting, and not
    /// marked failed (failed nodes are out for their own reasons).
    pub fn out_of_service_by_crus(&self) -> bool {
        self.fail_reason.is_none() && (self.drain_reason.is_some() || self.is_booting())
    }

    /// Whether it is capacity held idle by the upgrade: drained, no job,
    /// not booting, not marked failed.
    pub fn drained_idle(&self) -> bool {
        self.fail_reason.is_none()
            && self.drain_reason.is_some()
            && self.job.is_none()
            && !self.is_booting()
    }

    /// Whether it runs no job (idle, drained and quiet, or booting).
    pub fn runs_no_job(&self) -> bool {
        self.job.is_none()
    }

    /// Whether the node returns to service when its job ends: up, with no
    /// drain flag and no failed mark. The scheduler counts only such nodes as
    /// coming free; nodes held out of service by a drain do not.
    pub fn returns_to_service(&self) -> bool {
        self.drain_reason.is_none() && self.fail_reason.is_none() && self.condition == Condition::Up
    }

    /// Whether its workload daemon answers.
    pub fn responding(&self) -> bool {
        self.condition == Condition::Up
    }

    /// Its state as the workload manager reports it.
    pub fn workload_state(&self) -> WorkloadState {
        if self.condition != Condition::Up || self.fail_reason.is_some() {
            WorkloadState::Down
        } else {
            match (self.job.is_some(), self.drain_reason.is_some()) {
                (true, true) => WorkloadState::Draining,
                (true, false) => WorkloadState::Allocated,
                (false, true) => WorkloadState::Drained,
                (false, false) => WorkloadState::Idle,
            }
        }
    }

    /// The reason the workload manager shows: failed mark first, then drain,
    /// then why the last boot failed.
    pub fn reason(&self) -> Option<String> {
        self.fail_reason
            .clone()
            .or_else(|| self.drain_reason.clone())
            .or_else(|| match &self.condition {
                Condition::BootFailed { reason } => Some(reason.clone()),
                _ => None,
            })
    }

    /// Its power state as the power controller reports it.
    pub fn power_state(&self) -> PowerState {
        match self.condition {
            Condition::Up | Condition::BootFailed { .. } => PowerState::On,
            Condition::Booting { .. } => PowerState::PoweringOn,
            Condition::Off => PowerState::Off,
        }
    }

    /// What the inventory knows about it. The hardware state follows HSM:
    /// `Ready` when up, `On` while booting or after a failed boot, `Off` when off.
    pub fn facts(&self) -> NodeFacts {
        let state = match self.condition {
            Condition::Up => "Ready",
            Condition::Booting { .. } | Condition::BootFailed { .. } => "On",
            Condition::Off => "Off",
        };
        NodeFacts {
            id: self.id.clone(),
            nid: Some(self.nid),
            enabled: true,
            state: Some(state.to_string()),
        }
    }
}
