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

/// The part of the site (or of the server) a failure came from, so an
/// answer can say which one failed rather than blame the store for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    /// The inventory (HSM, a file of groups): group members and node facts.
    Inventory,
    /// The workload manager (Slurm): node states, draining.
    WorkloadManager,
    /// The boot orchestrator (BOS, Kadeploy, CycleCloud): templates and boots.
    BootService,
    /// The power control (Redfish): power restarts.
    PowerControl,
    /// The session store (SQLite, etcd).
    Store,
}

impl Dependency {
    /// Its name in an answer's title, e.g. `Inventory` or `Session store`.
    pub fn title(self) -> &'static str {
        match self {
            Dependency::Inventory => "Inventory",
            Dependency::WorkloadManager => "Workload manager",
            Dependency::BootService => "Boot service",
            Dependency::PowerControl => "Power control",
            Dependency::Store => "Session store",
        }
    }

    /// Whether it is one of the site's backends (as opposed to the store):
    /// a backend's failure is the backend's (502), the store's is the
    /// server's own dependency (503).
    pub fn is_backend(self) -> bool {
        self != Dependency::Store
    }
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.title())
    }
}

/// An [`Error`] together with the [`Dependency`] that returned it.
#[derive(Debug, thiserror::Error)]
#[error("{part} failed: {error}")]
pub struct PartFailure {
    /// Which part failed.
    pub part: Dependency,
    /// What it answered.
    #[source]
    pub error: Error,
}

impl PartFailure {
    /// A failure of `part`.
    pub fn new(part: Dependency, error: Error) -> Self {
        PartFailure { part, error }
    }
}
