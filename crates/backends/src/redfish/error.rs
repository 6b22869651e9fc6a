//! The Redfish backend's own error, mapped into the core error: each says
//! which BMC, what happened and what to check.

use std::time::Duration;

use crus_core::error::Error;

/// The backend name in core errors.
pub(crate) const BACKEND: &str = "redfish";

/// What went wrong talking to a BMC.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedfishError {
    /// The configuration cannot work (unreadable CA file, no place for a node).
    #[error("redfish: bad configuration: {message}")]
    Config { message: String },
    /// The BMC refused the credentials.
    #[error(
        "Redfish BMC {bmc} refused the credentials of {what} (HTTP {status}): check redfish.username and \
         redfish.password_file, that the account exists on the BMC and is not locked, and redfish.auth \
         (basic or session)"
    )]
    Auth {
        bmc: String,
        what: String,
        status: u16,
    },
    /// The BMC has no session service, so session auth cannot work.
    #[error(
        "Redfish BMC {bmc} has no session service (POST {path} answered {status}); set redfish.auth = \"basic\""
    )]
    NoSessionService {
        bmc: String,
        path: String,
        status: u16,
    },
    /// The BMC answered with an error status.
    #[error("Redfish BMC {bmc}: {method} {path} answered {status}: {message}")]
    Status {
        bmc: String,
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    /// No answer: connection refused or reset, DNS, TLS, timeout.
    #[error(
        "Redfish BMC {bmc}: {method} {path} got no answer: {}; check that the BMC is reachable, \
         and its TLS certificate (redfish.ca_file, or redfish.insecure for self-signed ones)",
        with_causes(.source)
    )]
    Transport {
        bmc: String,
        method: &'static str,
        path: String,
        source: reqwest::Error,
    },
    /// A success answer that is not the Redfish resource expected.
    #[error("Redfish BMC {bmc}: {method} {path} answered a body crus cannot read: {message}")]
    Decode {
        bmc: String,
        method: &'static str,
        path: String,
        message: String,
    },
    /// The BMC has no system matching the node.
    #[error(
        "Redfish BMC {bmc} has no system {wanted} for node {node} (it has: {available}); check \
         [redfish.nodes] or redfish.system"
    )]
    NoSuchSystem {
        bmc: String,
        node: String,
        wanted: String,
        available: String,
    },
    /// None of the reset types that carry out the operation is taken.
    #[error(
        "Redfish BMC {bmc}: {what} takes no reset type for it: tried {tried}, it allows {allowed}"
    )]
    NoResetType {
        bmc: String,
        /// The system, the node and the operation, in words.
        what: String,
        tried: String,
        allowed: String,
    },
    /// A `ForceOff` of an off-then-on restart did not show in time.
    #[error(
        "Redfish BMC {bmc}: system {system} (node {node}) still reported {state} {waited:?} after ForceOff, \
         so On was not sent"
    )]
    StillOn {
        bmc: String,
        system: String,
        node: String,
        state: String,
        waited: Duration,
    },
}

/// `error` and its causes, `a: b: c`: reqwest's own text leaves out why a
/// request failed (refused, timed out, which certificate problem).
fn with_causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

impl RedfishError {
    /// The HTTP status, when the BMC answered with an error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            RedfishError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<RedfishError> for Error {
    fn from(error: RedfishError) -> Self {
        match &error {
            RedfishError::Config { .. }
            | RedfishError::Auth { .. }
            | RedfishError::NoSessionService { .. } => Error::invalid(error.to_string()),
            RedfishError::NoSuchSystem { .. } | RedfishError::Status { status: 404, .. } => {
                Error::not_found(error.to_string())
            }
            RedfishError::Status { status: 409, .. } => Error::conflict(error.to_string()),
            RedfishError::Status { status: 400, .. } => Error::invalid(error.to_string()),
            RedfishError::Status { status, .. } if *status >= 500 && *status != 501 => {
                Error::unavailable(BACKEND, error.to_string())
            }
            RedfishError::Transport { .. } | RedfishError::StillOn { .. } => {
                Error::unavailable(BACKEND, error.to_string())
            }
            _ => Error::Other {
                backend: BACKEND,
                source: Box::new(error),
            },
        }
    }
}
