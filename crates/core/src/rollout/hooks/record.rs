//! The persisted runs of hooks: one record per hook and node (or step),
//! written before the run is asked for, so a restart knows which runs
//! finished, which failed, and which were in flight when it happened.

use serde::{Deserialize, Serialize};

use crate::node::NodeId;
use crate::time::Timestamp;

/// Where a run of a hook stands. A hook with no record has not run yet
/// (pending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HookRunState {
    /// Asked for, and not answered yet.
    Running,
    /// It succeeded.
    Finished,
    /// It failed, timed out, or its outcome is unknown.
    Failed,
}

/// One run of a hook, for a node (in the node's record) or a step (in the
/// step's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    /// Which hook: its position in the policy's `hooks`.
    pub hook: u32,
    /// Where it stands.
    pub state: HookRunState,
    /// When it was first asked for.
    pub started_at: Timestamp,
    /// When it finished or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// For a step's run: the nodes it ran with (the same again if it is
    /// run again after a restart).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeId>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// For a node's post_boot hook, which runs after every boot: the boot
    /// it ran after (the node's `attempts` then). A run of an earlier boot
    /// is run again after the next; one stored without (before this was
    /// kept) counts for the node's latest boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<u32>,
}

impl HookRun {
    /// Whether this run was for an earlier boot than the node's `attempts`.
    pub(crate) fn is_for_earlier_boot(&self, attempts: u32) -> bool {
        self.boot.is_some_and(|boot| boot != attempts)
    }
}

/// The run of hook `hook` among `runs`, if it was asked for.
pub(crate) fn run_of(runs: &[HookRun], hook: u32) -> Option<&HookRun> {
    runs.iter().find(|run| run.hook == hook)
}

/// The same, to change it.
pub(crate) fn run_of_mut(runs: &mut [HookRun], hook: u32) -> Option<&mut HookRun> {
    runs.iter_mut().find(|run| run.hook == hook)
}
