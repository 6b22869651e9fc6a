//! `OperatorCommand`: an operator's request to a running session, as the API
//! stores it and the rollout applies it.

use serde::{Deserialize, Serialize};

use super::FailureBudget;

/// An operator's request to a running session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum OperatorCommand {
    /// Take no new node until resumed.
    Pause,
    /// Take nodes again after a pause or a halt, with a new failure budget if given.
    Resume {
        /// The new `max_failures`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_failures: Option<FailureBudget>,
    },
}
