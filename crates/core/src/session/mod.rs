//! The CRUS session resource: what a client asks for and what it reads back.

mod hold;
mod node_status;
mod policy_request;
mod spec;
mod status;

pub use hold::{GateHoldStatus, RevertStatus, gate_hold_of, revert_of};
pub use node_status::NodeStatus;
pub use policy_request::PolicyRequest;
pub use spec::{FieldErrors, SUPPORTED_WORKLOAD_MANAGERS, SessionSpec, label_rule_error};
pub use status::{API_VERSION, KIND, SessionPhase, SessionState, SessionStatus};
