//! The transport's own error, which backends inspect (status, problem detail)
//! before mapping it into the core error.

use crus_core::error::Error;

/// An RFC 7807 problem body, as HSM and BOS send with their errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct Problem {
    /// Short text, usually the HTTP status text.
    #[serde(default)]
    pub(crate) title: String,
    /// What went wrong, e.g. `No such group: blue`.
    #[serde(default)]
    pub(crate) detail: String,
}

/// What went wrong in one call to a Cray service.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    /// The service answered with an error status.
    #[error("{service} {method} {path} answered {status} {}: {}; {}", problem.title, problem.detail, status_hint(*status))]
    Status {
        service: &'static str,
        method: &'static str,
        path: String,
        status: u16,
        problem: Problem,
    },
    /// No answer: connection refused or reset, DNS, TLS, timeout.
    #[error(
        "{service} {method} {path} got no answer: {source}; check that {service} is up, that the base URL is right and that its CA is trusted"
    )]
    Transport {
        service: &'static str,
        method: &'static str,
        path: String,
        source: reqwest::Error,
    },
    /// A success answer whose body is not what the API documents.
    #[error(
        "{service} {method} {path} answered a body crus cannot read: {message}; check that the base URL points at {service}"
    )]
    Decode {
        service: &'static str,
        method: &'static str,
        path: String,
        message: String,
    },
    /// No token could be obtained.
    #[error("{service}: no token: {message}")]
    Token {
        service: &'static str,
        message: String,
        /// Whether asking again later may help (token endpoint down).
        retryable: bool,
    },
    /// The configuration cannot work (bad CA file, bad base URL).
    #[error("{service}: bad configuration: {message}")]
    Config {
        service: &'static str,
        message: String,
    },
}

impl ServiceError {
    /// The HTTP status, when the service answered with an error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            ServiceError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem detail, when the service answered with an error.
    pub(crate) fn detail(&self) -> &str {
        match self {
            ServiceError::Status { problem, .. } => &problem.detail,
            _ => "",
        }
    }

    /// Whether the same call may succeed later: 5xx and no answer at all.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            ServiceError::Status { status, .. } => *status >= 500,
            ServiceError::Transport { .. } => true,
            ServiceError::Token { retryable, .. } => *retryable,
            ServiceError::Decode { .. } | ServiceError::Config { .. } => false,
        }
    }

    fn service(&self) -> &'static str {
        match self {
            ServiceError::Status { service, .. }
            | ServiceError::Transport { service, .. }
            | ServiceError::Decode { service, .. }
            | ServiceError::Token { service, .. }
            | ServiceError::Config { service, .. } => service,
        }
    }
}

/// What an operator should look at for an error status.
fn status_hint(status: u16) -> &'static str {
    match status {
        400 | 422 => "check the request's names and ids",
        401 | 403 => "check the token (its source, expiry and roles)",
        404 => "check that the named object exists and that the base URL is right",
        409 => "the object exists already or conflicts with another",
        500.. => "the service failed; it is retried, check its health if this persists",
        _ => "check the service's logs",
    }
}

impl From<ServiceError> for Error {
    fn from(error: ServiceError) -> Self {
        let service = error.service();
        match &error {
            ServiceError::Status { status: 404, .. } => Error::not_found(error.to_string()),
            ServiceError::Status { status: 409, .. } => Error::conflict(error.to_string()),
            ServiceError::Status {
                status: 400 | 422, ..
            }
            | ServiceError::Config { .. } => Error::invalid(error.to_string()),
            ServiceError::Token {
                retryable: false, ..
            } => Error::invalid(error.to_string()),
            _ if error.is_retryable() => Error::unavailable(service, error.to_string()),
            _ => Error::Other {
                backend: service,
                source: Box::new(error),
            },
        }
    }
}

impl crate::transport::TryFailure for ServiceError {
    fn may_pass(&self) -> bool {
        self.is_retryable()
    }

    fn not_sent(&self) -> bool {
        matches!(self, ServiceError::Transport { source, .. } if source.is_connect())
    }
}
