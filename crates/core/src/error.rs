//! The one error type every port returns.
//!
//! Backends keep their own private error enums and map them into these semantic
//! variants, so the controller can decide what to do (retry, fail the node,
//! report) without knowing which backend it talks to.

/// A boxed error from a backend, kept as the source of [`Error::Other`] and
/// [`Error::Unavailable`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong when talking to a port or a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing asked for does not exist (a group, a node, a template, a session).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `group 'compute'`.
        what: String,
    },

    /// The request conflicts with the current state (it exists already, or a
    /// revision-checked write lost a race).
    #[error("conflict: {what}")]
    Conflict {
        /// What conflicted.
        what: String,
    },

    /// The request itself is wrong and repeating it will not help.
    #[error("invalid request: {message}")]
    Invalid {
        /// What is wrong with it.
        message: String,
    },

    /// The service could not answer now (timeout, connection refused, 5xx,
    /// overload). The same request may succeed later.
    #[error("{backend} is unavailable: {message}")]
    Unavailable {
        /// Which backend, e.g. `slurm`.
        backend: &'static str,
        /// What happened.
        message: String,
    },

    /// The backend does not support this operation.
    #[error("{backend} does not support {operation}")]
    NotSupported {
        /// Which backend.
        backend: &'static str,
        /// The operation asked for.
        operation: &'static str,
    },

    /// Anything else, with the backend's own error as the source.
    #[error("{backend}: {source}")]
    Other {
        /// Which backend.
        backend: &'static str,
        /// The backend's error.
        source: BoxError,
    },
}

impl Error {
    /// Whether repeating the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// A [`Error::NotFound`] for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// A [`Error::Conflict`] about `what`.
    pub fn conflict(what: impl Into<String>) -> Self {
        Error::Conflict { what: what.into() }
    }

    /// An [`Error::Invalid`] with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid {
            message: message.into(),
        }
    }

    /// An [`Error::Unavailable`] from `backend`.
    pub fn unavailable(backend: &'static str, message: impl Into<String>) -> Self {
        Error::Unavailable {
            backend,
            message: message.into(),
        }
    }
}
