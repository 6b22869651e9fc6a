//! What can go wrong with the SQLite session store, and how each failure maps
//! onto the core error's semantic variants.
//!
//! Every message names the file and says what to do, because the person who
//! reads it is an administrator looking at a server log, not at this code.

use std::sync::Arc;

use crus_core::Error;
use rusqlite::ErrorCode;

use super::BUSY_TIMEOUT;

/// The backend name every mapped error carries.
pub(super) const BACKEND: &str = "sqlite";

/// A failure of the SQLite session store. Private: callers see
/// [`crus_core::Error`] through the `From` impl below.
#[derive(Debug, thiserror::Error)]
pub(super) enum SqliteError {
    /// Another connection held the write lock for longer than the busy
    /// timeout. Retryable: the lock is released when its transaction ends.
    #[error(
        "the session database {location} stayed locked by another writer for more than {}s ({source}); \
         retry, and check that no other process keeps a transaction open on it",
        BUSY_TIMEOUT.as_secs()
    )]
    Busy {
        /// The database file.
        location: Arc<str>,
        /// SQLite's error.
        source: rusqlite::Error,
    },

    /// The file could not be opened, read or written.
    #[error(
        "cannot read or write the session database {location} ({source}); \
         check that its directory exists and is writable, and that the disk has free space"
    )]
    Io {
        /// The database file.
        location: Arc<str>,
        /// SQLite's error.
        source: rusqlite::Error,
    },

    /// The file is not an SQLite database, or SQLite found its pages damaged.
    #[error(
        "{location} is not a crus session database or is damaged ({source}); \
         restore it from a backup, or point crus at another file"
    )]
    NotADatabase {
        /// The database file.
        location: Arc<str>,
        /// SQLite's error.
        source: rusqlite::Error,
    },

    /// Another process (a second `crus serve`) holds the file's writer lock.
    #[error(
        "the session database {location} is in use by another crus server ({holder}, holding the \
         lock {lock_file}); one server writes a database at a time: stop that one first, or give \
         this one another database (server.db, --db)"
    )]
    InUse {
        /// The database file.
        location: Arc<str>,
        /// The lock file beside it.
        lock_file: String,
        /// Who holds it, as its lock file says (`pid 1234`).
        holder: String,
    },

    /// The lock file beside the database could not be created or locked.
    #[error(
        "cannot lock the session database {location} through {lock_file} ({source}); check that \
         its directory exists and is writable"
    )]
    Lock {
        /// The database file.
        location: Arc<str>,
        /// The lock file beside it.
        lock_file: String,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// The file exists but is empty, which SQLite would take for a new,
    /// empty database: sessions would silently be gone.
    #[error(
        "{location} is empty (0 bytes), so it is not a crus session database, or it lost its \
         content; restore it from a backup, or remove it to start with no sessions"
    )]
    Empty {
        /// The database file.
        location: Arc<str>,
    },

    /// The file this store opened is no longer the one at its path (removed,
    /// renamed, or replaced together with its directory): what is written to
    /// it would be lost at the next start.
    #[error(
        "the session database {location} {problem}, so nothing written now would be kept; put \
         the file back where it was, then the store takes writes again (or restart crus on the \
         file that should be used)"
    )]
    Replaced {
        /// The database file.
        location: Arc<str>,
        /// What became of it.
        problem: String,
    },

    /// The file is an SQLite database of some other program.
    #[error(
        "{location} is an SQLite database without crus's tables, so it belongs to something else; \
         point crus at a new file"
    )]
    Foreign {
        /// The database file.
        location: Arc<str>,
    },

    /// The file was written by a newer crus whose schema this build does not know.
    #[error(
        "{location} holds sessions in schema version {found}, newer than version {known} that this \
         build of crus knows; run a newer crus on it, or point this one at another file"
    )]
    NewerSchema {
        /// The database file.
        location: Arc<str>,
        /// The schema version in the file.
        found: i64,
        /// The newest schema version this build knows.
        known: i64,
    },

    /// The `meta` row (schema version, revision counter) is missing or wrong.
    #[error(
        "the session database {location} is damaged: {problem}; restore it from a backup, \
         or point crus at another file"
    )]
    DamagedMeta {
        /// The database file.
        location: Arc<str>,
        /// What is wrong with it.
        problem: String,
    },

    /// One session's stored row cannot be read back as a record.
    #[error(
        "session {upgrade_id} in {location} cannot be read: {problem}. The file is damaged; \
         restore it from a backup, or remove that session with \
         `sqlite3 {location} \"DELETE FROM sessions WHERE upgrade_id = '{upgrade_id}'\"`"
    )]
    DamagedRecord {
        /// The database file.
        location: Arc<str>,
        /// The session's id as stored.
        upgrade_id: String,
        /// What is wrong with the row.
        problem: String,
    },

    /// The stored server options cannot be read back.
    #[error(
        "the server options in {location} cannot be read: {problem}. Store them again with \
         `crus options set` (PATCH /options), or remove them with \
         `sqlite3 {location} \"DELETE FROM options\"`"
    )]
    DamagedOptions {
        /// The database file.
        location: Arc<str>,
        /// What is wrong with the row.
        problem: String,
    },

    /// A record could not be turned into JSON (a bug, not a storage problem).
    #[error("session {upgrade_id} cannot be stored as JSON: {source}")]
    Encode {
        /// The session's id.
        upgrade_id: String,
        /// serde's error.
        source: serde_json::Error,
    },

    /// The blocking task running the statement panicked or was cancelled.
    #[error("the worker thread using the session database {location} stopped: {source}")]
    Worker {
        /// The database file.
        location: Arc<str>,
        /// tokio's error.
        source: tokio::task::JoinError,
    },

    /// Any other SQLite failure.
    #[error("session database {location}: {source}")]
    Sqlite {
        /// The database file.
        location: Arc<str>,
        /// SQLite's error.
        source: rusqlite::Error,
    },

    /// A revision-checked write lost (or the id exists already).
    #[error("{0}")]
    Conflict(String),

    /// The record to update does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl SqliteError {
    /// Sorts a SQLite error on `location` by what the caller can do about it.
    pub(super) fn classify(location: &Arc<str>, source: rusqlite::Error) -> Self {
        let location = Arc::clone(location);
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                SqliteError::Busy { location, source }
            }
            Some(
                ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied,
            ) => SqliteError::Io { location, source },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                SqliteError::NotADatabase { location, source }
            }
            _ => SqliteError::Sqlite { location, source },
        }
    }
}

impl From<SqliteError> for Error {
    fn from(error: SqliteError) -> Self {
        match error {
            SqliteError::Busy { .. } => Error::unavailable(BACKEND, error.to_string()),
            SqliteError::Conflict(what) => Error::conflict(what),
            SqliteError::NotFound(what) => Error::not_found(what),
            other => Error::Other {
                backend: BACKEND,
                source: Box::new(other),
            },
        }
    }
}

/// Attaches the database's location to a rusqlite result, classifying its error.
pub(super) trait At<T> {
    /// The result, with a failure sorted by [`SqliteError::classify`].
    fn at(self, location: &Arc<str>) -> Result<T, SqliteError>;
}

impl<T> At<T> for rusqlite::Result<T> {
    fn at(self, location: &Arc<str>) -> Result<T, SqliteError> {
        self.map_err(|source| SqliteError::classify(location, source))
    }
}
