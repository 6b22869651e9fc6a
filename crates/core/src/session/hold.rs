//! What holds a session, as its status shows it (crus additions): the alert
//! gates' hold (which gates say what, since when, and when `max_hold`
//! halts it) and the revert of a halted session's upgrades, so the
//! dashboard and clients need not read them out of the messages.

use serde::{Deserialize, Serialize};

use crate::rollout::RolloutState;
use crate::time::Timestamp;

/// A hold by the session's alert gates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateHoldStatus {
    /// When the gates first blocked (or an operator last resumed).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: Timestamp,
    /// What blocks, one sentence per gate: the gate and its firing alerts,
    /// or why it could not be asked.
    pub reasons: Vec<String>,
    /// When `max_hold` halts the session if the gates have not cleared;
    /// absent without `max_hold`, or once the session halted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub halts_at: Option<Timestamp>,
}

/// A halted session booting its upgraded nodes back to the rollback
/// template (`revert_upgraded_on_halt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevertStatus {
    /// When the revert started.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: Timestamp,
    /// Why the session halted.
    pub reason: String,
    /// The template the nodes are booted back to.
    pub template: String,
}

/// The gates' hold of `state`, if they hold it.
pub fn gate_hold_of(state: &RolloutState) -> Option<GateHoldStatus> {
    let hold = state.gated.as_ref()?;
    if state.completed || state.cancelled {
        return None;
    }
    let halts_at = state
        .policy
        .max_hold
        .filter(|_| state.halted.is_none())
        .map(|max_hold| hold.since + max_hold);
    Some(GateHoldStatus {
        since: hold.since,
        reasons: hold.reasons.clone(),
        halts_at,
    })
}

/// The revert under way in `state`, if any.
pub fn revert_of(state: &RolloutState) -> Option<RevertStatus> {
    let revert = state.reverting.as_ref()?;
    if state.completed {
        return None;
    }
    Some(RevertStatus {
        since: revert.since,
        reason: revert.reason.clone(),
        template: state
            .policy
            .rollback
            .as_ref()
            .map(|rollback| rollback.template.clone())
            .unwrap_or_default(),
    })
}
