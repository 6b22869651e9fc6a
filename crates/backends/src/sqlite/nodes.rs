//! The `session_nodes` table (schema version 4): one row per node of each
//! session, keyed by the session and the node's position in the record, so a
//! write of the controller stores the nodes that changed and not the whole
//! record. A session's `sessions.record` holds its record without its nodes
//! (the header, `"nodes": []`); reads put the rows back in it.

use std::sync::Arc;

use crus_core::rollout::{NodeList, NodeRecord};
use crus_core::store::{SessionRecord, Versioned};
use rusqlite::{Connection, Transaction};

use super::error::{At, SqliteError};

/// The table, created by the migration to version 4. `WITHOUT ROWID`: the
/// rows are stored in key order, so a session's nodes are read in order
/// from adjacent pages.
pub(super) const CREATE_SESSION_NODES: &str = "
    CREATE TABLE session_nodes (
        upgrade_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        node TEXT NOT NULL,
        PRIMARY KEY (upgrade_id, position)
    ) WITHOUT ROWID;
";

/// Nodes encoded for their rows, with their positions: made before the
/// connection is taken.
pub(super) type EncodedNodes = Vec<(i64, String)>;

/// The nodes at `positions` of `nodes`, encoded.
pub(super) fn encode_nodes(
    upgrade_id: &str,
    nodes: &[NodeRecord],
    positions: impl Iterator<Item = usize>,
) -> Result<EncodedNodes, SqliteError> {
    positions
        .filter_map(|position| nodes.get(position).map(|node| (position, node)))
        .map(|(position, node)| {
            let json = serde_json::to_string(node).map_err(|source| SqliteError::Encode {
                upgrade_id: upgrade_id.to_string(),
                source,
            })?;
            // A position is an index into a vector, far below i64::MAX.
            Ok((i64::try_from(position).unwrap_or(i64::MAX), json))
        })
        .collect()
}

/// Writes `rows` as session `id`'s nodes at their positions, replacing
/// the rows there.
pub(super) fn write_nodes(
    transaction: &Transaction<'_>,
    location: &Arc<str>,
    id: &str,
    rows: &EncodedNodes,
) -> Result<(), SqliteError> {
    let mut insert = transaction
        .prepare_cached(
            "INSERT OR REPLACE INTO session_nodes (upgrade_id, position, node) VALUES (?1, ?2, ?3)",
        )
        .at(location)?;
    for (position, json) in rows {
        insert
            .execute(rusqlite::params![id, position, json])
            .at(location)?;
    }
    Ok(())
}

/// Removes session `id`'s node rows from position `from` on: all of them
/// with 0 (a record replaced whole, or removed).
pub(super) fn remove_nodes_from(
    transaction: &Transaction<'_>,
    location: &Arc<str>,
    id: &str,
    from: i64,
) -> Result<(), SqliteError> {
    transaction
        .prepare_cached("DELETE FROM session_nodes WHERE upgrade_id = ?1 AND position >= ?2")
        .at(location)?
        .execute(rusqlite::params![id, from])
        .at(location)?;
    Ok(())
}

/// Session `id`'s node rows, in order, undecoded.
pub(super) fn read_node_rows(
    connection: &Connection,
    location: &Arc<str>,
    id: &str,
) -> Result<Vec<(i64, String)>, SqliteError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT position, node FROM session_nodes WHERE upgrade_id = ?1 ORDER BY position",
        )
        .at(location)?;
    let rows = statement
        .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .at(location)?;
    rows.map(|row| row.at(location)).collect()
}

/// Puts session `id`'s node rows into its decoded header. A header that
/// still holds nodes (a row no migration reached, which a healthy file
/// never has) keeps them when there are no rows. Rows that are not the
/// positions 0, 1, 2, … in order, or do not decode, are damage, named.
pub(super) fn assemble(
    location: &Arc<str>,
    id: &str,
    mut record: Versioned<SessionRecord>,
    rows: &[(i64, String)],
) -> Result<Versioned<SessionRecord>, SqliteError> {
    if rows.is_empty() {
        return Ok(record);
    }
    let damaged = |problem: String| SqliteError::DamagedRecord {
        location: Arc::clone(location),
        upgrade_id: id.to_string(),
        problem,
    };
    let mut nodes = Vec::with_capacity(rows.len());
    for (expected, (position, json)) in rows.iter().enumerate() {
        if usize::try_from(*position).ok() != Some(expected) {
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
    record.value.rollout.nodes = NodeList::as_stored(nodes);
    // The steps' and boots' node lists a header leaves out (`step_lists.rs`).
    record.value.rollout.restore_node_lists();
    Ok(record)
}
