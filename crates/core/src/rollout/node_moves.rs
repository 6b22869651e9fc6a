//! The one table of a node's moves: which input takes a node from which
//! phase to which. Every change of a node's phase goes through
//! [`NodePhase::after`]; a move the table does not list is refused with a
//! [`RefusedMove`], never made. A new phase or input is one more row.

use serde::{Deserialize, Serialize};

use super::NodePhase;
use crate::node::NodeId;

/// What happened to a node, as the rollout tells its phase table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeInput {
    /// Taken into a step: its drain is asked for.
    Take,
    /// The workload manager sees it drained and running nothing.
    Quiet,
    /// It did not drain in time and the policy reboots it anyway
    /// (`on_drain_timeout: force`).
    Force,
    /// Not to be booted after all (the session is being deleted, or it did
    /// not drain in time under `on_drain_timeout: skip`): returned to service.
    Release,
    /// Its boot is asked for.
    Boot,
    /// The boot orchestrator says its boot finished.
    Booted,
    /// Its boot failed or it did not come back, and a retry is left.
    Retry,
    /// It stayed healthy for the soak time after its boot.
    Healthy,
    /// Its upgrade failed: it is to be put in the failed group.
    Fail,
    /// The workload manager acknowledged its return to service.
    Returned,
    /// The workload manager acknowledged its mark as failed.
    MarkedFailed,
    /// Someone else holds it out of service and the policy leaves it so
    /// (`foreign_out_of_service: skip`, or `wait` past `drain_timeout`):
    /// skipped, never returned to service by crus. Also a pending node
    /// already on the target image (`skip_matching`): never taken.
    LeaveAlone,
    /// Its upgrade failed for good and the policy boots it back to the
    /// rollback template: it waits, drained, for that boot.
    RollBack,
    /// The workload manager acknowledged its return to service after it
    /// was booted back to the rollback template.
    ReturnedReverted,
    /// The session halted and its policy boots the nodes it upgraded back
    /// to the rollback template (`revert_upgraded_on_halt`): an upgraded
    /// node, back in service, is drained again for that boot.
    Revert,
    /// The workload manager acknowledged the return to service of a node
    /// taken for a revert and released before its boot back (the session
    /// was deleted): it is upgraded, as it was.
    ReturnedUpgraded,
}

impl NodeInput {
    /// Every input, for tables that walk them all.
    pub const ALL: [NodeInput; 16] = [
        NodeInput::Take,
        NodeInput::Quiet,
        NodeInput::Force,
        NodeInput::Release,
        NodeInput::Boot,
        NodeInput::Booted,
        NodeInput::Retry,
        NodeInput::Healthy,
        NodeInput::Fail,
        NodeInput::Returned,
        NodeInput::MarkedFailed,
        NodeInput::LeaveAlone,
        NodeInput::RollBack,
        NodeInput::ReturnedReverted,
        NodeInput::Revert,
        NodeInput::ReturnedUpgraded,
    ];
}

/// A move the node phase table does not allow: a bug in the engine, caught
/// instead of overwriting the node's phase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node {node}: {input:?} is not a move from phase {}", from.as_str())]
pub struct RefusedMove {
    /// The node.
    pub node: NodeId,
    /// The phase it is in (and stays in).
    pub from: NodePhase,
    /// What was asked of it.
    pub input: NodeInput,
}

impl NodePhase {
    /// The phase `input` takes a node in this phase to, or `None` when the
    /// table does not allow that move.
    pub fn after(self, input: NodeInput) -> Option<NodePhase> {
        use NodeInput as In;
        use NodePhase as P;
        let next = match (self, input) {
            (P::Pending, In::Take) => P::Draining,
            (P::Draining, In::Quiet | In::Force) => P::Drained,
            (P::Draining | P::Drained, In::Release) => P::Releasing,
            (P::Drained, In::Boot) => P::Booting,
            (P::Booting, In::Booted) => P::Verifying,
            (P::Booting | P::Verifying, In::Retry) => P::Drained,
            (P::Verifying, In::Healthy) => P::Resuming,
            (P::Draining | P::Drained | P::Booting | P::Verifying, In::Fail) => P::Failing,
            (P::Resuming, In::Returned) => P::Done,
            (P::Releasing, In::Returned) => P::Skipped,
            (P::Failing, In::MarkedFailed) => P::Failed,
            (P::Pending | P::Draining | P::Drained, In::LeaveAlone) => P::Skipped,
            (P::Booting | P::Verifying, In::RollBack) => P::Drained,
            (P::Resuming, In::ReturnedReverted) => P::Reverted,
            (P::Done, In::Revert) => P::Draining,
            (P::Releasing, In::ReturnedUpgraded) => P::Done,
            _ => return None,
        };
        Some(next)
    }
}
