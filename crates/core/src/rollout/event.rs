//! `RolloutEvent`: every transition of a rollout, as it happens, for event
//! streams (SSE) and webhooks. Events are told, not stored: the session's
//! state stays the record.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{HookPoint, HookRunState, HookScope, NodePhase};
use crate::node::NodeId;
use crate::session::SessionState;
use crate::time::Timestamp;

/// One transition of one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolloutEvent {
    /// The session.
    pub upgrade_id: Uuid,
    /// When it happened (the rollout's clock).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A node moved to another phase.
    NodePhase {
        /// The node.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        node: NodeId,
        /// The phase it left.
        from: NodePhase,
        /// The phase it entered.
        to: NodePhase,
        /// Why, when it failed or was skipped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A step (a batch of nodes taken together) started.
    StepStarted {
        /// Step number, from 0.
        step: u32,
        /// Its nodes.
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        nodes: Vec<NodeId>,
    },
    /// Every node of a step finished.
    StepFinished {
        /// Step number.
        step: u32,
        /// Nodes upgraded.
        upgraded: usize,
        /// Nodes failed.
        failed: usize,
        /// Nodes returned to service without an upgrade.
        skipped: usize,
        /// Nodes whose upgrade failed, booted back to the rollback template
        /// and returned to service.
        #[serde(default, skip_serializing_if = "is_zero")]
        reverted: usize,
    },
    /// The session stopped taking new nodes until resumed.
    Paused {
        /// Why (operator request, canary finished).
        reason: String,
    },
    /// The session stopped taking new nodes because too many failed.
    Halted {
        /// Why.
        reason: String,
    },
    /// The session takes new nodes again.
    Resumed,
    /// The policy's alert gates hold the session (no new node is taken,
    /// nodes in flight finish), or what blocks changed.
    Gated {
        /// What blocks, one sentence per gate.
        reasons: Vec<String>,
    },
    /// The alert gates are clear again: the session takes new nodes.
    GatesCleared,
    /// A site hook started (again, after a restart, when it is marked
    /// idempotent), finished or failed.
    Hook {
        /// Where in the nodes' upgrade it runs. Written `point`: every
        /// event's `at` is when it happened, and one JSON object cannot
        /// hold both (a reader would keep one, the dashboard the wrong one).
        #[serde(rename = "point")]
        at: HookPoint,
        /// Whether it runs once per node or once per step.
        per: HookScope,
        /// What it runs: the command line, or the HTTP method and URL.
        hook: String,
        /// The step its nodes belong to.
        step: u32,
        /// The node (a per-node hook), or the step's nodes it runs for.
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        nodes: Vec<NodeId>,
        /// `running` when it starts, then `finished` or `failed`.
        state: HookRunState,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
    },
    /// The CRUS state changed.
    State {
        /// The new state.
        state: SessionState,
    },
    /// A progress message was added to the session's `messages`.
    Message {
        /// The message.
        text: String,
    },
}

impl EventKind {
    /// The event's name, as SSE `event:` lines and webhook filters use it.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::NodePhase { .. } => "node_phase",
            EventKind::StepStarted { .. } => "step_started",
            EventKind::StepFinished { .. } => "step_finished",
            EventKind::Paused { .. } => "paused",
            EventKind::Halted { .. } => "halted",
            EventKind::Resumed => "resumed",
            EventKind::Gated { .. } => "gated",
            EventKind::GatesCleared => "gates_cleared",
            EventKind::Hook { .. } => "hook",
            EventKind::State { .. } => "state",
            EventKind::Message { .. } => "message",
        }
    }
}

/// For `skip_serializing_if`: a count of 0 is not written (events stored
/// before rollbacks existed have none).
fn is_zero(count: &usize) -> bool {
    *count == 0
}
