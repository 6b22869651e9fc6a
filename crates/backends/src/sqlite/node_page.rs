//! A page of a session's nodes read from `session_nodes` alone (see
//! `nodes.rs`): the rows of the page's positions, one indexed range of the
//! table's key, never the session's header or its other rows, so a page of
//! a 100,000-node session costs what the page holds.

use std::sync::Arc;

use crus_core::rollout::NodeRecord;
use crus_core::store::NodePage;
use rusqlite::{Connection, OptionalExtension};

use super::error::{At, SqliteError};

/// What the rows of a page say, before they are decoded.
pub(super) enum PageRows {
    /// No session has this id.
    Missing,
    /// The session has no node row: no nodes yet, or a record no migration
    /// reached, whose nodes are in its header; read the whole record.
    NoRows,
    /// The node the page starts after is not one of the session's.
    UnknownAfter,
    /// The page's rows, from position `start`, at most one more than asked
    /// for (which says more nodes follow).
    Rows {
        /// The position of the first row asked for.
        start: i64,
        /// `(position, node JSON)`, in order.
        rows: Vec<(i64, String)>,
    },
}

/// The rows of session `id`'s page after node `after` (with its position
/// as the page before gave it, checked, not trusted), at most `limit`, and
/// one more if it exists: one read transaction, so they are of one write.
pub(super) fn read_page_rows(
    connection: &mut Connection,
    location: &Arc<str>,
    id: &str,
    after: Option<(String, Option<i64>)>,
    limit: i64,
) -> Result<PageRows, SqliteError> {
    let transaction = connection.transaction().at(location)?;
    let exists = transaction
        .prepare_cached("SELECT 1 FROM sessions WHERE upgrade_id = ?1")
        .at(location)?
        .query_row([id], |_| Ok(()))
        .optional()
        .at(location)?;
    if exists.is_none() {
        return Ok(PageRows::Missing);
    }
    let start = match after {
        None => 0,
        Some((after, hint)) => match position_of(&transaction, location, id, &after, hint)? {
            Some(position) => position + 1,
            None if has_rows(&transaction, location, id)? => return Ok(PageRows::UnknownAfter),
            None => return Ok(PageRows::NoRows),
        },
    };
    let rows: Vec<(i64, String)> = {
        let mut statement = transaction
            .prepare_cached(
                "SELECT position, node FROM session_nodes \
                 WHERE upgrade_id = ?1 AND position >= ?2 ORDER BY position LIMIT ?3",
            )
            .at(location)?;
        let rows = statement
            .query_map(
                rusqlite::params![id, start, limit.saturating_add(1)],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .at(location)?;
        rows.map(|row| row.at(location)).collect::<Result<_, _>>()?
    };
    if rows.is_empty() && start == 0 {
        return Ok(PageRows::NoRows);
    }
    Ok(PageRows::Rows { start, rows })
}

/// The position of node `after` among session `id`'s rows: `hint` when the
/// row there is that node (one row read), else found by its id (a scan of
/// the session's rows inside SQLite, for a page asked for by hand).
fn position_of(
    connection: &Connection,
    location: &Arc<str>,
    id: &str,
    after: &str,
    hint: Option<i64>,
) -> Result<Option<i64>, SqliteError> {
    if let Some(hint) = hint {
        let matches = connection
            .prepare_cached(
                "SELECT json_extract(node, '$.id') = ?3 FROM session_nodes \
                 WHERE upgrade_id = ?1 AND position = ?2",
            )
            .at(location)?
            .query_row(rusqlite::params![id, hint, after], |row| {
                row.get::<_, Option<bool>>(0)
            })
            .optional()
            .at(location)?;
        if matches.flatten() == Some(true) {
            return Ok(Some(hint));
        }
    }
    connection
        .prepare_cached(
            "SELECT position FROM session_nodes \
             WHERE upgrade_id = ?1 AND json_extract(node, '$.id') = ?2 \
             ORDER BY position LIMIT 1",
        )
        .at(location)?
        .query_row(rusqlite::params![id, after], |row| row.get(0))
        .optional()
        .at(location)
}

/// Whether session `id` has any node row.
fn has_rows(connection: &Connection, location: &Arc<str>, id: &str) -> Result<bool, SqliteError> {
    Ok(connection
        .prepare_cached("SELECT 1 FROM session_nodes WHERE upgrade_id = ?1 LIMIT 1")
        .at(location)?
        .query_row([id], |_| Ok(()))
        .optional()
        .at(location)?
        .is_some())
}

/// The page the rows of [`PageRows::Rows`] make: at most `limit` nodes,
/// `more` when a row past them was read. Rows that skip a position or do
/// not decode are damage, named.
pub(super) fn decode_page(
    location: &Arc<str>,
    id: &str,
    start: i64,
    rows: &[(i64, String)],
    limit: usize,
) -> Result<NodePage, SqliteError> {
    let damaged = |problem: String| SqliteError::DamagedRecord {
        location: Arc::clone(location),
        upgrade_id: id.to_string(),
        problem,
    };
    let mut nodes = Vec::with_capacity(rows.len().min(limit));
    for (offset, (position, json)) in rows.iter().take(limit).enumerate() {
        let expected = start.saturating_add(i64::try_from(offset).unwrap_or(i64::MAX));
        if *position != expected {
            return Err(damaged(format!(
                "its node rows skip from position {} to {position}",
                expected.saturating_sub(1)
            )));
        }
        let node: NodeRecord = serde_json::from_str(json).map_err(|error| {
            damaged(format!(
                "its node row {position} is not a valid node ({error})"
            ))
        })?;
        nodes.push(node);
    }
    Ok(NodePage {
        nodes,
        start: usize::try_from(start).unwrap_or(usize::MAX),
        more: rows.len() > limit,
    })
}
