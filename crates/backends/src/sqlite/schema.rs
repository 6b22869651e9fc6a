//! The session database's tables, and how a connection is set up on them:
//! pragmas first, then the schema created or its version checked.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use crus_core::store::{SessionRecord, Versioned};

use super::BUSY_TIMEOUT;
use super::error::{At, SqliteError};
use super::nodes::{CREATE_SESSION_NODES, encode_nodes, read_node_rows, write_nodes};

/// The schema version this build reads and writes. Bump it with every change
/// to the tables, and teach [`prepare`] to migrate each older version: a file
/// whose version is newer than this is refused, not guessed at.
///
/// Version 2 added the `statuses` table, version 3 the `claims` table,
/// version 4 the `session_nodes` table (a record's nodes moved out of it),
/// version 5 the `options` table, version 6 the index of idempotency keys.
pub(super) const SCHEMA_VERSION: i64 = 6;

/// The tables of version 1, which a new file starts from (then migrated).
///
/// `meta` has exactly one row (`id = 1`); it holds the schema version, which
/// every later version keeps in the same place so that an old build can
/// always read it and refuse, and the store-wide revision counter.
/// `sessions.created_at` is informational (RFC 3339, wall clock).
const CREATE_TABLES: &str = "
    CREATE TABLE meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        schema_version INTEGER NOT NULL,
        last_revision INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        upgrade_id TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        record TEXT NOT NULL,
        created_at TEXT
    );
    INSERT INTO meta (id, schema_version, last_revision) VALUES (1, 1, 0);
";

/// Version 2: what the API reads of each session without its record, one
/// row per `sessions` row, written in the same transaction as it.
///
/// `status` is the session's CRUS status as the API answers it
/// (`SessionRecord::status_json`), `created_at_ms` the rollout's creation
/// time (Unix milliseconds, the listing's order) and `finished` whether the
/// rollout finished (creation checks skip those). A table of its own rather
/// than columns of `sessions`: added columns go after `record`, and reading
/// them would walk the overflow pages of a large record.
const CREATE_STATUSES: &str = "
    CREATE TABLE statuses (
        upgrade_id TEXT PRIMARY KEY,
        created_at_ms INTEGER NOT NULL,
        finished INTEGER NOT NULL,
        status TEXT NOT NULL
    );
    CREATE INDEX statuses_newest_first ON statuses (created_at_ms DESC, upgrade_id);
    CREATE INDEX statuses_unfinished ON statuses (finished, upgrade_id);
";

/// Version 3: the session claiming each node, written in the same
/// transaction as the session's creation and removed in the one that
/// stores it finished or removes it. A claim whose session is finished or
/// gone does not count (see `SessionStore::create_claiming`).
const CREATE_CLAIMS: &str = "
    CREATE TABLE claims (
        node TEXT PRIMARY KEY,
        upgrade_id TEXT NOT NULL
    );
    CREATE INDEX claims_by_session ON claims (upgrade_id);
";

/// Sets the pragmas every connection needs. `on_disk` is false for an
/// in-memory database, which has no journal to configure.
pub(super) fn configure(
    connection: &Connection,
    location: &Arc<str>,
    on_disk: bool,
) -> Result<(), SqliteError> {
    // Set first, so that the schema check below already waits for another
    // process that is creating the same file instead of failing at once.
    connection.busy_timeout(BUSY_TIMEOUT).at(location)?;
    if on_disk {
        // WAL lets readers proceed while a writer commits; the mode is stored
        // in the file, so this is a no-op after the first open.
        let mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .at(location)?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Some file systems (network ones) cannot do WAL; the rollback
            // journal SQLite keeps instead is just as safe, only slower.
            tracing::warn!(
                database = %location,
                journal_mode = %mode,
                "could not switch the session database to WAL mode; writers will block readers"
            );
        }
    }
    // FULL syncs the WAL on every commit: a write that returned survives a
    // power loss, because the controller acts on a transition only once it
    // is committed. (NORMAL, the usual WAL choice, may lose the last commits.)
    connection
        .pragma_update(None, "synchronous", "FULL")
        .at(location)?;
    Ok(())
}

/// Sets up the store's reading connection to a file already prepared: it
/// never writes (`query_only`), and it never waits for a lock (busy timeout
/// zero), because it reads on async tasks; a read it cannot make at once is
/// made again with the writing connection on the blocking pool.
pub(super) fn configure_reader(
    connection: &Connection,
    location: &Arc<str>,
) -> Result<(), SqliteError> {
    connection
        .busy_timeout(std::time::Duration::ZERO)
        .at(location)?;
    connection
        .pragma_update(None, "query_only", true)
        .at(location)?;
    Ok(())
}

/// Version 5: the server-wide options (`GET`/`PATCH /options`), one row
/// (`id = 1`) once they are first changed, its revision from the store-wide
/// counter like a session's.
const CREATE_OPTIONS: &str = "
    CREATE TABLE options (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        revision INTEGER NOT NULL,
        options TEXT NOT NULL
    );
";

/// Creates the tables in an empty database, or checks that an existing one
/// has a schema this build knows.
///
/// Runs in an IMMEDIATE transaction so that two processes opening a new file
/// at once do not both create the tables.
pub(super) fn prepare(connection: &mut Connection, location: &Arc<str>) -> Result<(), SqliteError> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .at(location)?;
    let has_meta: bool = transaction
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            [],
            |row| row.get(0),
        )
        .at(location)?;
    if has_meta {
        let version: Option<i64> = transaction
            .query_row("SELECT schema_version FROM meta WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()
            .at(location)?;
        match version {
            Some(SCHEMA_VERSION) => restate_created(&transaction, location, true)?,
            Some(5) => {
                restate_created(&transaction, location, true)?;
                migrate_to_6(&transaction, location)?;
            }
            Some(4) => {
                restate_created(&transaction, location, true)?;
                migrate_to_5(&transaction, location)?;
                migrate_to_6(&transaction, location)?;
            }
            Some(3) => {
                restate_created(&transaction, location, false)?;
                migrate_to_4(&transaction, location)?;
                migrate_to_5(&transaction, location)?;
                migrate_to_6(&transaction, location)?;
            }
            Some(2) => {
                restate_created(&transaction, location, false)?;
                migrate_to_3(&transaction, location)?;
                migrate_to_4(&transaction, location)?;
                migrate_to_5(&transaction, location)?;
                migrate_to_6(&transaction, location)?;
            }
            Some(1) => {
                migrate_to_2(&transaction, location)?;
                migrate_to_3(&transaction, location)?;
                migrate_to_4(&transaction, location)?;
                migrate_to_5(&transaction, location)?;
                migrate_to_6(&transaction, location)?;
            }
            Some(found) if found > SCHEMA_VERSION => {
                return Err(SqliteError::NewerSchema {
                    location: Arc::clone(location),
                    found,
                    known: SCHEMA_VERSION,
                });
            }
            Some(found) => {
                return Err(SqliteError::DamagedMeta {
                    location: Arc::clone(location),
                    problem: format!("its schema version {found} is not one crus ever wrote"),
                });
            }
            None => {
                return Err(SqliteError::DamagedMeta {
                    location: Arc::clone(location),
                    problem: "its meta row is missing".to_string(),
                });
            }
        }
    } else {
        let tables: i64 = transaction
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                [],
                |row| row.get(0),
            )
            .at(location)?;
        if tables > 0 {
            return Err(SqliteError::Foreign {
                location: Arc::clone(location),
            });
        }
        transaction.execute_batch(CREATE_TABLES).at(location)?;
        migrate_to_2(&transaction, location)?;
        migrate_to_3(&transaction, location)?;
        migrate_to_4(&transaction, location)?;
        migrate_to_5(&transaction, location)?;
        migrate_to_6(&transaction, location)?;
    }
    transaction.commit().at(location)
}

/// Writes again, from their records, the statuses that say `CREATED`: crus
/// 0.1 stored a session in that state until a controller took it up, and
/// crus now serves it as `UPDATING`, as CRUS answered (see
/// `SessionState::served`). Cheap when there are none, which is always
/// after the first opening by this build: one scan of the small status rows.
/// `nodes_apart`: the file is at version 4, records' nodes are rows.
fn restate_created(
    transaction: &Transaction<'_>,
    location: &Arc<str>,
    nodes_apart: bool,
) -> Result<(), SqliteError> {
    let query = "SELECT upgrade_id, revision, record FROM sessions WHERE upgrade_id IN \
                 (SELECT upgrade_id FROM statuses WHERE status LIKE '%\"state\":\"CREATED\"%')";
    for (id, mut record) in stored_records(transaction, location, query)? {
        if nodes_apart {
            let rows = read_node_rows(transaction, location, &id)?;
            record = super::nodes::assemble(location, &id, record, &rows)?;
        }
        super::Summary::of(&record.value)?.insert(transaction, location, &id)?;
    }
    Ok(())
}

/// Adds the `statuses` table and fills it from every stored record, in the
/// opening's transaction: a file is at version 1 or fully at version 2.
///
/// A record that does not decode stops the migration (and the opening),
/// naming the session: serving without its status would hide the session
/// from the listing, and with it the nodes it holds.
fn migrate_to_2(transaction: &Transaction<'_>, location: &Arc<str>) -> Result<(), SqliteError> {
    transaction.execute_batch(CREATE_STATUSES).at(location)?;
    let query = "SELECT upgrade_id, revision, record FROM sessions";
    for (id, record) in stored_records(transaction, location, query)? {
        let summary = super::Summary::of(&record.value)?;
        summary.insert(transaction, location, &id)?;
    }
    transaction
        .execute("UPDATE meta SET schema_version = 2 WHERE id = 1", [])
        .at(location)?;
    Ok(())
}

/// Adds the `claims` table, in the opening's transaction, with a claim on
/// each node of every unfinished session that has taken its snapshot: a
/// session stored by a release before claims holds its nodes as one stored
/// since does. (One that has not read its starting group yet claims
/// nothing here; the creation checks count its group.) Where two such
/// sessions share a node, the first keeps it.
fn migrate_to_3(transaction: &Transaction<'_>, location: &Arc<str>) -> Result<(), SqliteError> {
    transaction.execute_batch(CREATE_CLAIMS).at(location)?;
    let query = "SELECT upgrade_id, revision, record FROM sessions WHERE upgrade_id IN \
                 (SELECT upgrade_id FROM statuses WHERE finished = 0) ORDER BY upgrade_id";
    for (id, record) in stored_records(transaction, location, query)? {
        for node in &record.value.rollout.nodes {
            transaction
                .execute(
                    "INSERT OR IGNORE INTO claims (node, upgrade_id) VALUES (?1, ?2)",
                    [node.id.as_str(), id.as_str()],
                )
                .at(location)?;
        }
    }
    transaction
        .execute("UPDATE meta SET schema_version = 3 WHERE id = 1", [])
        .at(location)?;
    Ok(())
}

/// Adds the `session_nodes` table and moves every record's nodes into it,
/// in the opening's transaction: each record is written again without its
/// nodes (its header), and its nodes as rows. Its revision and status do
/// not change: the record reads back the same.
fn migrate_to_4(transaction: &Transaction<'_>, location: &Arc<str>) -> Result<(), SqliteError> {
    transaction
        .execute_batch(CREATE_SESSION_NODES)
        .at(location)?;
    let query = "SELECT upgrade_id, revision, record FROM sessions";
    for (id, record) in stored_records(transaction, location, query)? {
        let nodes = &record.value.rollout.nodes;
        let rows = encode_nodes(&id, nodes, 0..nodes.len())?;
        let header = super::encode_header(&crus_core::store::header_of(&record.value))?;
        transaction
            .execute(
                "UPDATE sessions SET record = ?2 WHERE upgrade_id = ?1",
                [id.as_str(), header.as_str()],
            )
            .at(location)?;
        write_nodes(transaction, location, &id, &rows)?;
    }
    transaction
        .execute("UPDATE meta SET schema_version = 4 WHERE id = 1", [])
        .at(location)?;
    Ok(())
}

/// Adds the `options` table, empty (no option changed yet), in the
/// opening's transaction.
fn migrate_to_5(transaction: &Transaction<'_>, location: &Arc<str>) -> Result<(), SqliteError> {
    transaction.execute_batch(CREATE_OPTIONS).at(location)?;
    transaction
        .execute("UPDATE meta SET schema_version = 5 WHERE id = 1", [])
        .at(location)?;
    Ok(())
}

/// Version 6: the sessions by the `Idempotency-Key` they were created with,
/// so a creation with a key looks it up instead of decoding every record
/// (issue 25). An index on the key inside the record's header (which no
/// longer holds the nodes, so it is small): it is kept by every write of
/// `sessions` in the same transaction, and needs no backfill. A record that
/// is not valid JSON (damage, reported by id when read) is indexed as no
/// key rather than failing every write and the migration.
const CREATE_IDEMPOTENCY_INDEX: &str = "
    CREATE INDEX IF NOT EXISTS sessions_by_idempotency_key ON sessions (
        CASE WHEN json_valid(record) THEN json_extract(record, '$.desired.idempotency.key') END
    );
";

/// The query [`CREATE_IDEMPOTENCY_INDEX`] answers: the session created with
/// key `?1`.
pub(super) const SESSION_BY_IDEMPOTENCY_KEY: &str = "SELECT upgrade_id FROM sessions WHERE \
     CASE WHEN json_valid(record) THEN json_extract(record, '$.desired.idempotency.key') END = ?1";

/// Adds the index of idempotency keys, in the opening's transaction.
fn migrate_to_6(transaction: &Transaction<'_>, location: &Arc<str>) -> Result<(), SqliteError> {
    transaction
        .execute_batch(CREATE_IDEMPOTENCY_INDEX)
        .at(location)?;
    transaction
        .execute("UPDATE meta SET schema_version = 6 WHERE id = 1", [])
        .at(location)?;
    Ok(())
}

/// The records `query` selects (`upgrade_id, revision, record`), decoded,
/// with their ids: what each migration step reads before it writes. A record
/// that does not decode stops the step, naming the session.
fn stored_records(
    transaction: &Transaction<'_>,
    location: &Arc<str>,
    query: &str,
) -> Result<Vec<(String, Versioned<SessionRecord>)>, SqliteError> {
    let rows: Vec<(String, i64, String)> = {
        let mut statement = transaction.prepare(query).at(location)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .at(location)?;
        rows.map(|row| row.at(location)).collect::<Result<_, _>>()?
    };
    rows.into_iter()
        .map(|(id, revision, json)| {
            let record = super::decode(location, &id, revision, &json)?;
            Ok((id, record))
        })
        .collect()
}
