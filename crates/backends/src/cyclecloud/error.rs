//! The CycleCloud backends' own error, mapped into the core error: each says
//! what was asked of which cluster, what happened and what to check.

use std::time::Duration;

use crus_core::error::Error;

/// The backend name in core errors and logs.
pub(crate) const BACKEND: &str = "cyclecloud";

/// What went wrong talking to CycleCloud, or with what crus keeps for it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CycleCloudError {
    /// The configuration cannot work (unreadable CA file or password).
    #[error("cyclecloud: bad configuration: {message}")]
    Config { message: String },
    /// CycleCloud refused the credentials.
    #[error(
        "CycleCloud {method} {path} refused user {username:?} (HTTP {status}); check \
         cyclecloud.username and the password, and that the account may manage the cluster"
    )]
    Auth {
        method: &'static str,
        path: String,
        username: String,
        status: u16,
    },
    /// CycleCloud answered with an error status.
    #[error("CycleCloud {method} {path} answered {status}: {body}; {}", status_hint(*status))]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        /// The start of the answer's body, `(no body)` when empty.
        body: String,
    },
    /// No answer: connection refused or reset, DNS, TLS, timeout.
    #[error(
        "CycleCloud {method} {path} got no answer: {}; check that CycleCloud is up, \
         cyclecloud.base_url, and its TLS certificate (cyclecloud.ca_file)",
        with_causes(.source)
    )]
    Transport {
        method: &'static str,
        path: String,
        source: reqwest::Error,
    },
    /// A success answer whose body is not what the API documents.
    #[error(
        "CycleCloud {method} {path} answered a body crus cannot read: {message}; check that \
         cyclecloud.base_url points at the CycleCloud REST API"
    )]
    Decode {
        method: &'static str,
        path: String,
        message: String,
    },
    /// A node operation did not finish in time.
    #[error(
        "CycleCloud {what} did not finish within {waited:?} (last seen: {last}); it goes on in \
         CycleCloud, so asking again adopts it; raise cyclecloud.poll_timeout if it is just slow"
    )]
    OperationTimeout {
        what: String,
        waited: Duration,
        last: String,
    },
    /// Nodes of an operation that CycleCloud reported failed.
    #[error("CycleCloud {what} failed for {failures}")]
    NodesFailed { what: String, failures: String },
    /// Every request id of a day's chain for one operation is taken.
    #[error(
        "CycleCloud {what}: all {generations} request ids crus derives for it today are used \
         by earlier operations; try again tomorrow or use the CycleCloud UI"
    )]
    RequestIdsExhausted { what: String, generations: u32 },
    /// Nodes that are not in the cluster.
    #[error("node(s) {nodes} not found in CycleCloud cluster {cluster:?}")]
    UnknownNodes { cluster: String, nodes: String },
    /// A change of membership asked of a node array, which crus cannot change.
    #[error(
        "{label:?} is a node array of CycleCloud cluster {cluster:?}: its members are the \
         nodes CycleCloud puts in it, crus cannot {operation}; use another label for groups \
         crus keeps"
    )]
    NodeArrayIsReadOnly {
        cluster: String,
        label: String,
        operation: &'static str,
    },
    /// A group that exists already.
    #[error("group {label:?} exists already ({what})")]
    GroupExists { label: String, what: &'static str },
    /// A label that is neither a node array nor a group crus created.
    #[error(
        "group {label:?} not found: it is neither a node array of CycleCloud cluster \
         {cluster:?} nor a group crus created"
    )]
    NoSuchGroup { cluster: String, label: String },
    /// Creating a group needs the state file.
    #[error(
        "cannot create group {label:?}: CycleCloud has no group API, so crus keeps its own \
         groups in a file; set cyclecloud.state_file"
    )]
    NoStateFile { label: String },
    /// The state file could not be read or written.
    #[error("CycleCloud group state file {path}: {message}")]
    StateFile { path: String, message: String },
}

/// `error` and its causes, `a: b: c`: reqwest's own text leaves out why a
/// request failed (refused, timed out, which certificate problem).
fn with_causes(error: &reqwest::Error) -> String {
    std::iter::successors(Some(error as &dyn std::error::Error), |current| {
        current.source()
    })
    .map(ToString::to_string)
    .collect::<Vec<_>>()
    .join(": ")
}

/// What an operator should look at for an error status.
fn status_hint(status: u16) -> &'static str {
    match status {
        400 => "check the node names and the request",
        404 => "check cyclecloud.cluster and that the named nodes or operation exist",
        409 => "CycleCloud refused the request as invalid input",
        500.. => "CycleCloud failed; it is retried, check its health if this persists",
        _ => "check CycleCloud's logs",
    }
}

impl CycleCloudError {
    /// The HTTP status, when CycleCloud answered with an error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            CycleCloudError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the same call may succeed later: no answer, or a 5xx.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            CycleCloudError::Transport { .. } => true,
            CycleCloudError::Status { status, .. } => *status >= 500 && *status != 501,
            _ => false,
        }
    }
}

/// Which core error variant a [`CycleCloudError`] becomes.
enum Meaning {
    Invalid,
    NotFound,
    Conflict,
    Unavailable,
    Other,
}

impl CycleCloudError {
    fn meaning(&self) -> Meaning {
        match self {
            CycleCloudError::Config { .. }
            | CycleCloudError::Auth { .. }
            | CycleCloudError::NoStateFile { .. }
            | CycleCloudError::NodeArrayIsReadOnly { .. } => Meaning::Invalid,
            // The API documents 409 as invalid input; a 409 for a reused
            // request id never gets here, it is adopted (see `operation.rs`).
            CycleCloudError::Status {
                status: 400 | 409, ..
            } => Meaning::Invalid,
            CycleCloudError::UnknownNodes { .. }
            | CycleCloudError::NoSuchGroup { .. }
            | CycleCloudError::Status { status: 404, .. } => Meaning::NotFound,
            CycleCloudError::GroupExists { .. } => Meaning::Conflict,
            // The operation goes on in CycleCloud: asking again adopts it.
            CycleCloudError::OperationTimeout { .. } => Meaning::Unavailable,
            _ if self.is_retryable() => Meaning::Unavailable,
            _ => Meaning::Other,
        }
    }
}

impl From<CycleCloudError> for Error {
    fn from(error: CycleCloudError) -> Self {
        let message = error.to_string();
        match error.meaning() {
            Meaning::Invalid => Error::invalid(message),
            Meaning::NotFound => Error::not_found(message),
            Meaning::Conflict => Error::conflict(message),
            Meaning::Unavailable => Error::unavailable(BACKEND, message),
            Meaning::Other => Error::Other {
                backend: BACKEND,
                source: Box::new(error),
            },
        }
    }
}

impl crate::transport::TryFailure for CycleCloudError {
    fn may_pass(&self) -> bool {
        self.is_retryable()
    }

    fn not_sent(&self) -> bool {
        matches!(self, CycleCloudError::Transport { source, .. } if source.is_connect())
    }
}
