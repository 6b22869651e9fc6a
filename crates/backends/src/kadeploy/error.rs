//! The Kadeploy backend's own error, mapped into the core error: each says
//! what Kadeploy answered and what to check.

use crus_core::error::Error;
use reqwest::Method;

/// The backend name in core errors.
pub(crate) const BACKEND: &str = "kadeploy";

/// What went wrong talking to Kadeploy.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KadeployError {
    /// The configuration cannot work (unreadable CA file, bad base URL).
    #[error("kadeploy: bad configuration: {message}")]
    Config { message: String },
    /// The template string is neither `name[:version][@user]` nor an image URL.
    #[error("kadeploy: template {template:?} is malformed: {problem}")]
    Template { template: String, problem: String },
    /// Kadeploy answered with an error status.
    #[error("kadeploy {method} {path} answered {status}: {message}; {}", status_hint(*status))]
    Status {
        method: Method,
        path: String,
        status: u16,
        message: String,
    },
    /// No answer: connection refused or reset, DNS, TLS, timeout.
    #[error(
        "kadeploy {method} {path} got no answer: {source}; check that the server is up, that \
         kadeploy.base_url is right and that its CA is trusted (kadeploy.ca_file)"
    )]
    Transport {
        method: Method,
        path: String,
        source: reqwest::Error,
    },
    /// A success answer whose body is not what the API documents.
    #[error(
        "kadeploy {method} {path} answered a body crus cannot read: {message}; check that \
         kadeploy.base_url points at the Kadeploy API"
    )]
    Decode {
        method: Method,
        path: String,
        message: String,
    },
    /// A registered environment the environments listing does not have.
    #[error(
        "kadeploy environment {template:?} not found; check its name, version and owner \
         (GET /environments lists what can be deployed)"
    )]
    NoSuchEnvironment { template: String },
    /// The idempotency key was used before for another boot.
    #[error(
        "boot key {key:?} already started Kadeploy deployment {wid} of other nodes or another \
         template; use a fresh key for a different boot"
    )]
    KeyReused { key: String, wid: String },
    /// A `POST /deployment` whose outcome is unknown (no answer, or a 5xx a
    /// gateway may send after the server started it), and no matching
    /// deployment in the listing: starting again now could deploy twice.
    #[error(
        "kadeploy POST /deployment for {hosts} may not have started ({cause}), and no matching \
         deployment is listed yet; start_boot with the same key again later looks again first"
    )]
    PostOutcomeUnknown { hosts: String, cause: String },
    /// A deployment that failed as a whole, whose hosts neither Kadeploy
    /// (it lists none to their owner) nor this process (started after it)
    /// knows, so its nodes cannot be failed one by one.
    #[error(
        "Kadeploy deployment {wid} failed as a whole: {reason}; Kadeploy lists no hosts of a \
         failed run to its owner and crus restarted since it started it, so its nodes fail when \
         their boot timeout passes"
    )]
    RunFailedHostsUnknown { wid: String, reason: String },
    /// A power-status run that was not done within the request timeout.
    #[error(
        "kadeploy power-status run {wid} was not done after {waited:?}; check the site's power \
         status command, or raise kadeploy.timeout"
    )]
    PowerStatusTooSlow {
        wid: String,
        waited: std::time::Duration,
    },
}

/// What an operator should look at for an error status.
fn status_hint(status: u16) -> &'static str {
    match status {
        400 | 422 => "check the template and the deployment options",
        401 | 403 => {
            "check kadeploy.user and kadeploy.basic_auth, and the user's rights on the nodes"
        }
        404 | 405 => "check that the deployment exists and that kadeploy.base_url is right",
        409 => "the nodes are busy with another deployment",
        500.. => "the server failed; it is retried where safe, check its health if this persists",
        _ => "check the server's logs",
    }
}

impl KadeployError {
    /// The HTTP status, when Kadeploy answered with an error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            KadeployError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether Kadeploy does not know the workflow asked about: a 404, the
    /// 405 the Grid'5000 4.0 API answers for an unknown id (seed 003), or
    /// kadeploy-server's own 400 "Invalid workflow ID" (`workflow_get`
    /// raises `INVALID_WORKFLOW_ID`, which `httpd.rb` answers with a 400).
    pub(crate) fn is_unknown_workflow(&self) -> bool {
        match self {
            KadeployError::Status {
                status: 404 | 405, ..
            } => true,
            KadeployError::Status {
                status: 400,
                message,
                ..
            } => message.starts_with("Invalid workflow ID"),
            _ => false,
        }
    }

    /// Whether repeating the same call later may succeed: no answer, 5xx, 429.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            KadeployError::Status { status, .. } => *status >= 500 || *status == 429,
            KadeployError::Transport { .. }
            | KadeployError::PostOutcomeUnknown { .. }
            | KadeployError::PowerStatusTooSlow { .. } => true,
            _ => false,
        }
    }
}

impl From<KadeployError> for Error {
    fn from(error: KadeployError) -> Self {
        match &error {
            // The 4.0 API answers 405 for a deployment id it does not know.
            KadeployError::Status {
                status: 404 | 405, ..
            }
            | KadeployError::NoSuchEnvironment { .. } => Error::not_found(error.to_string()),
            KadeployError::Status { status: 409, .. } | KadeployError::KeyReused { .. } => {
                Error::conflict(error.to_string())
            }
            // A refused credential or a malformed request fails the same way
            // every time, so the controller should not retry it.
            KadeployError::Status {
                status: 400 | 401 | 403 | 422,
                ..
            }
            | KadeployError::Config { .. }
            | KadeployError::Template { .. } => Error::invalid(error.to_string()),
            _ if error.is_retryable() => Error::unavailable(BACKEND, error.to_string()),
            _ => Error::Other {
                backend: BACKEND,
                source: Box::new(error),
            },
        }
    }
}

impl crate::transport::TryFailure for KadeployError {
    fn may_pass(&self) -> bool {
        self.is_retryable()
    }

    fn not_sent(&self) -> bool {
        matches!(self, KadeployError::Transport { source, .. } if source.is_connect())
    }
}
