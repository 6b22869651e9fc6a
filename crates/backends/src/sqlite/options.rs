//! The server-wide options in the session database: the one row of the
//! `options` table, written in a revision-checked transaction numbered from
//! the store-wide counter, like a session's row.

use std::sync::Arc;

use crus_core::options::ServerOptions;
use crus_core::store::{Revision, Versioned};
use rusqlite::{Connection, OptionalExtension, params};

use super::error::{At, SqliteError};
use super::identity::FileIdentity;
use super::{next_revision, revision_of, still_in_place, stored_revision, write_transaction};

/// The stored options, if any were stored.
pub(super) fn read(
    connection: &Connection,
    location: &Arc<str>,
) -> Result<Option<Versioned<ServerOptions>>, SqliteError> {
    let row: Option<(i64, String)> = connection
        .query_row(
            "SELECT revision, options FROM options WHERE id = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .at(location)?;
    let Some((revision, json)) = row else {
        return Ok(None);
    };
    let damaged = |problem: String| SqliteError::DamagedOptions {
        location: Arc::clone(location),
        problem,
    };
    let value: ServerOptions = serde_json::from_str(&json)
        .map_err(|error| damaged(format!("they are not valid options ({error})")))?;
    let revision = revision_of(location, "options", revision)
        .map_err(|_| damaged(format!("their revision {revision} is negative")))?;
    Ok(Some(Versioned { value, revision }))
}

/// Stores `json` as the options if they are still at `expected`.
pub(super) fn write(
    connection: &mut Connection,
    location: &Arc<str>,
    file: Option<&FileIdentity>,
    json: &str,
    expected: Option<Revision>,
) -> Result<Revision, SqliteError> {
    let transaction = write_transaction(connection, location)?;
    let current = read(&transaction, location)?.map(|stored| stored.revision);
    if current != expected {
        return Err(SqliteError::Conflict(format!(
            "the server options changed since they were read (revision {}, now {}); re-read \
             them and retry",
            describe(expected),
            describe(current)
        )));
    }
    let revision = next_revision(&transaction, location)?;
    transaction
        .execute(
            "INSERT OR REPLACE INTO options (id, revision, options) VALUES (1, ?1, ?2)",
            params![stored_revision(location, revision)?, json],
        )
        .at(location)?;
    still_in_place(file, location)?;
    transaction.commit().at(location)?;
    Ok(revision)
}

/// A revision for a message: its number, or `none` for options never stored.
fn describe(revision: Option<Revision>) -> String {
    revision.map_or_else(|| "none".to_string(), |revision| revision.0.to_string())
}
