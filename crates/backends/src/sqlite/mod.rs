//! `SqliteStore`: sessions in one SQLite file, the embedded default
//! [`SessionStore`] of `crus serve`.
//!
//! Each session is one row holding its record without its nodes as JSON
//! (the header), one row per node in `session_nodes` (see `nodes.rs`: a
//! write of the controller stores the header and the nodes that changed,
//! not the whole record), and one row of
//! `statuses` beside it holding what the API reads without decoding the
//! record (its CRUS status, creation time and whether it finished), written
//! in the same transaction. The `claims` table names the session holding
//! each node: written in the transaction that creates the session, emptied
//! of its rows in the one that stores it finished or removes it. Revisions come from a
//! store-wide counter in the one-row `meta` table, bumped in the same
//! transaction as the write it numbers, so they strictly increase across all
//! records and a deleted then re-created session never reuses one.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction: the revision check and
//! the write both happen under SQLite's write lock, so two processes sharing
//! the file (two servers by mistake, or a server and an admin tool) cannot
//! both win a compare-and-swap. The file is in WAL mode with
//! `synchronous=FULL`, so a write that returned is on disk: the controller
//! acts on a transition only once it is committed.
//!
//! rusqlite is blocking, so each write runs on tokio's blocking pool with the
//! store's writing connection, which is locked only inside that blocking
//! task, as are the reads of many rows. A file store has a second, read-only
//! connection for the read the API serves most, a session's status: one
//! indexed row, read on the caller's task when that connection is free,
//! since handing a read of microseconds to another thread costs more than
//! the read, and WAL lets it read while the writer commits (and syncs).

mod error;
mod identity;
mod node_page;
mod nodes;
mod options;
mod schema;
mod status_view;
#[cfg(test)]
mod tests;
mod writer_lock;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use crus_core::options::ServerOptions;
use crus_core::store::{
    Desired, NodesClaimed, PageAfter, PageRead, Revision, SessionDelta, SessionRecord,
    SessionStore, Versioned, header_of, page_of,
};
use crus_core::{NodeId, Result, Timestamp};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use uuid::Uuid;

use error::{At, SqliteError};
use identity::FileIdentity;
use nodes::{EncodedNodes, assemble, encode_nodes, read_node_rows, remove_nodes_from, write_nodes};
use writer_lock::WriterLock;

/// How long a statement waits for another connection's write lock before
/// failing with a retryable [`crus_core::Error::Unavailable`]. Writes are
/// single small rows, so holding the lock this long means something is stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Sessions in one SQLite file (WAL, fully synchronous), shared safely by
/// several processes.
///
/// ```no_run
/// # async fn example() -> crus_core::Result<()> {
/// use crus_backends::sqlite::SqliteStore;
/// use crus_core::store::SessionStore;
///
/// let store = SqliteStore::open(std::path::Path::new("/var/lib/crus/sessions.db"))?;
/// store.ping().await?;
/// println!("{} sessions", store.list().await?.len());
/// # Ok(())
/// # }
/// ```
pub struct SqliteStore {
    /// The store's one connection. rusqlite connections cannot be shared
    /// between threads, and one connection serialises this process's writes,
    /// which is what a compare-and-swap needs anyway; shared with the
    /// blocking tasks that use it.
    connection: Arc<Mutex<Connection>>,
    /// A read-only connection to the same file for status reads on the
    /// caller's task, which neither wait for a write's sync nor queue behind
    /// writes; `None` in memory, where a second connection would open
    /// another, empty database.
    reader: Option<Arc<Mutex<Connection>>>,
    /// The last listing of every status (`list_statuses_json`) and the
    /// reader's `data_version` when it was read: the version changes with
    /// every commit of another connection (this store's writer included),
    /// so while it stays the same the listing is still the file's.
    listing: Mutex<Option<(i64, Arc<str>)>>,
    /// Where the store lives, for error messages (`:memory:` in memory).
    location: Arc<str>,
    /// The file opened, checked before every commit to still be the one at
    /// its path; `None` in memory.
    file: Option<Arc<FileIdentity>>,
    /// The lock making this store the file's only writer
    /// ([`SqliteStore::open_exclusive`]), released when the store is dropped.
    _writer_lock: Option<WriterLock>,
}

impl SqliteStore {
    /// Opens the store in the SQLite file at `path`, creating the file and
    /// its tables if they are missing.
    ///
    /// Blocks while opening (at most a few seconds, if another process holds
    /// the file's write lock); call it before serving, or on a blocking thread.
    ///
    /// [`crus_core::Error::Other`] when the file cannot be created or opened,
    /// is not a crus session database, or was written by a newer crus whose
    /// schema this build does not know.
    pub fn open(path: &Path) -> Result<Self> {
        let location: Arc<str> = Arc::from(path.display().to_string());
        // SQLite takes an empty file for a new database and would serve it
        // as one with no sessions: a truncated file must not pass for that.
        if std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file() && metadata.len() == 0) {
            return Err(SqliteError::Empty { location }.into());
        }
        let mut connection = Connection::open(path).at(&location)?;
        schema::configure(&connection, &location, true)?;
        schema::prepare(&mut connection, &location)?;
        // Opened once the tables exist, so it never sees a file half-created.
        let reader = Connection::open(path).at(&location)?;
        schema::configure_reader(&reader, &location)?;
        let file = FileIdentity::of(path, &location)?;
        let mut store = SqliteStore::from_connection(connection, location);
        store.reader = Some(Arc::new(Mutex::new(reader)));
        store.file = Some(Arc::new(file));
        Ok(store)
    }

    /// [`SqliteStore::open`], as the file's only writer: first takes an
    /// advisory lock on `<path>.lock` (created beside the file, holding this
    /// process's id), kept until the store is dropped and released by the
    /// operating system if the process dies. What `crus serve` opens, so a
    /// second server on the same file refuses to start instead of driving
    /// the same sessions.
    ///
    /// [`crus_core::Error::Other`] naming the holder's pid when another
    /// process holds the lock, and as [`SqliteStore::open`].
    pub fn open_exclusive(path: &Path) -> Result<Self> {
        let location: Arc<str> = Arc::from(path.display().to_string());
        let lock = WriterLock::acquire(path, &location)?;
        let mut store = SqliteStore::open(path)?;
        store._writer_lock = Some(lock);
        Ok(store)
    }

    /// The lock file [`SqliteStore::open_exclusive`] takes for the database at `path`.
    pub fn lock_file(path: &Path) -> std::path::PathBuf {
        writer_lock::lock_file_of(path)
    }

    /// A store in memory, lost when dropped: for tests.
    pub fn open_in_memory() -> Result<Self> {
        let location: Arc<str> = Arc::from(":memory:");
        let mut connection = Connection::open_in_memory().at(&location)?;
        schema::configure(&connection, &location, false)?;
        schema::prepare(&mut connection, &location)?;
        Ok(SqliteStore::from_connection(connection, location))
    }

    fn from_connection(connection: Connection, location: Arc<str>) -> Self {
        SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
            reader: None,
            listing: Mutex::new(None),
            location,
            file: None,
            _writer_lock: None,
        }
    }

    /// Checks that the database answers, for readiness probes: one indexed
    /// read of the `meta` row (as cheap as `SELECT 1`, but it reads the file,
    /// so a deleted or unreadable file fails it).
    pub async fn ping(&self) -> Result<()> {
        self.run(|connection, location| {
            connection
                .query_row("SELECT schema_version FROM meta WHERE id = 1", [], |_| {
                    Ok(())
                })
                .at(location)
        })
        .await
    }

    /// Runs `operation` with the connection on tokio's blocking pool.
    ///
    /// If the caller stops waiting, the operation still runs to its end, so
    /// a transaction is either committed or rolled back, never left open.
    async fn run<T, F>(&self, operation: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Arc<str>) -> Result<T, SqliteError> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        let location = Arc::clone(&self.location);
        let task_location = Arc::clone(&self.location);
        let outcome =
            tokio::task::spawn_blocking(move || operation(&mut lock(&connection), &task_location))
                .await;
        match outcome {
            Ok(result) => result.map_err(Into::into),
            Err(source) => Err(SqliteError::Worker { location, source }.into()),
        }
    }
}

/// The connection (or the cached listing), even if a thread panicked while
/// holding it: a panic inside a transaction drops the `Transaction`, which
/// rolls it back, so the connection is left with no transaction open and is
/// safe to reuse; the listing is replaced whole.
fn lock<T>(value: &Mutex<T>) -> MutexGuard<'_, T> {
    value.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The connection's `data_version`: it changes whenever another connection
/// commits to the file.
fn data_version(connection: &Connection, location: &Arc<str>) -> Result<i64, SqliteError> {
    connection
        .query_row("PRAGMA data_version", [], |row| row.get(0))
        .at(location)
}

/// Every status as one JSON array, newest first: the order of
/// `crus_core::store::listing_order` (a UUID's text sorts as its bytes do),
/// built in one buffer rather than a string a row.
fn read_listing(connection: &mut Connection, location: &Arc<str>) -> Result<String, SqliteError> {
    let connection: &Connection = connection;
    let mut statement = connection
        .prepare_cached(
            "SELECT upgrade_id, status FROM statuses ORDER BY created_at_ms DESC, upgrade_id",
        )
        .at(location)?;
    let mut rows = statement.query([]).at(location)?;
    let mut listing = String::from("[");
    while let Some(row) = rows.next().at(location)? {
        if listing.len() > 1 {
            listing.push(',');
        }
        let text = |column| {
            row.get_ref(column)
                .and_then(|value| value.as_str().map_err(Into::into))
                .at(location)
        };
        let (id, status) = (text(0)?, text(1)?);
        if is_status_of(status, id) {
            listing.push_str(status);
        } else {
            listing.push_str(&rebuilt_status(connection, location, id)?);
        }
    }
    listing.push(']');
    Ok(listing)
}

/// Starts a transaction that holds the write lock from its first statement,
/// so that the revision it reads cannot change before it writes.
fn write_transaction<'c>(
    connection: &'c mut Connection,
    location: &Arc<str>,
) -> Result<Transaction<'c>, SqliteError> {
    connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .at(location)
}

/// The revision of session `id`, if it exists.
fn current_revision(
    connection: &Connection,
    location: &Arc<str>,
    id: Uuid,
) -> Result<Option<Revision>, SqliteError> {
    let stored: Option<i64> = connection
        .query_row(
            "SELECT revision FROM sessions WHERE upgrade_id = ?1",
            [id.to_string()],
            |row| row.get(0),
        )
        .optional()
        .at(location)?;
    stored
        .map(|revision| revision_of(location, &id.to_string(), revision))
        .transpose()
}

/// Bumps the store-wide counter and returns the new revision. Only inside a
/// write transaction, so the bump commits or rolls back with the write.
fn next_revision(
    transaction: &Transaction<'_>,
    location: &Arc<str>,
) -> Result<Revision, SqliteError> {
    let revision: Option<i64> = transaction
        .query_row(
            "UPDATE meta SET last_revision = last_revision + 1 WHERE id = 1 RETURNING last_revision",
            [],
            |row| row.get(0),
        )
        .optional()
        .at(location)?;
    match revision.map(u64::try_from) {
        Some(Ok(revision)) => Ok(Revision(revision)),
        Some(Err(_)) => Err(SqliteError::DamagedMeta {
            location: Arc::clone(location),
            problem: "its revision counter is negative".to_string(),
        }),
        None => Err(SqliteError::DamagedMeta {
            location: Arc::clone(location),
            problem: "its meta row is missing".to_string(),
        }),
    }
}

/// A stored revision, which a healthy file never has negative.
fn revision_of(location: &Arc<str>, id: &str, stored: i64) -> Result<Revision, SqliteError> {
    u64::try_from(stored)
        .map(Revision)
        .map_err(|_| SqliteError::DamagedRecord {
            location: Arc::clone(location),
            upgrade_id: id.to_string(),
            problem: format!("its revision {stored} is negative"),
        })
}

/// A revision as SQLite stores it. Revisions come from the `meta` counter,
/// itself an SQLite integer, so they always fit.
fn stored_revision(location: &Arc<str>, revision: Revision) -> Result<i64, SqliteError> {
    i64::try_from(revision.0).map_err(|_| SqliteError::DamagedMeta {
        location: Arc::clone(location),
        problem: format!("revision {} does not fit an SQLite integer", revision.0),
    })
}

/// The record of a row, checked to be the session the row is keyed by.
fn decode(
    location: &Arc<str>,
    id: &str,
    revision: i64,
    json: &str,
) -> Result<Versioned<SessionRecord>, SqliteError> {
    let damaged = |problem: String| SqliteError::DamagedRecord {
        location: Arc::clone(location),
        upgrade_id: id.to_string(),
        problem,
    };
    let value: SessionRecord = serde_json::from_str(json)
        .map_err(|error| damaged(format!("its record is not a valid session ({error})")))?;
    if value.upgrade_id().to_string() != id {
        return Err(damaged(format!(
            "its record belongs to session {}",
            value.upgrade_id()
        )));
    }
    Ok(Versioned {
        value,
        revision: revision_of(location, id, revision)?,
    })
}

/// `record` as its header's JSON and its node rows: what a write of the
/// whole record stores.
fn encode(record: &SessionRecord) -> Result<(String, EncodedNodes), SqliteError> {
    let id = record.upgrade_id().to_string();
    let nodes = &record.rollout.nodes;
    Ok((
        encode_header(&header_of(record))?,
        encode_nodes(&id, nodes, 0..nodes.len())?,
    ))
}

/// A record without its nodes as JSON.
fn encode_header(header: &SessionRecord) -> Result<String, SqliteError> {
    serde_json::to_string(header).map_err(|source| SqliteError::Encode {
        upgrade_id: header.upgrade_id().to_string(),
        source,
    })
}

/// The record of session `id` (its header and node rows), if it exists,
/// undecoded; read in one transaction, so the header and rows are of one
/// write.
fn read_stored(
    connection: &mut Connection,
    location: &Arc<str>,
    id: &str,
) -> Result<Option<StoredRow>, SqliteError> {
    let transaction = connection.transaction().at(location)?;
    let row: Option<(i64, String)> = transaction
        .prepare_cached("SELECT revision, record FROM sessions WHERE upgrade_id = ?1")
        .at(location)?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .at(location)?;
    let Some((revision, json)) = row else {
        return Ok(None);
    };
    let nodes = read_node_rows(&transaction, location, id)?;
    Ok(Some(StoredRow {
        id: id.to_string(),
        revision,
        json,
        nodes,
    }))
}

/// A session's rows as stored: its id, revision, header JSON and node rows.
struct StoredRow {
    id: String,
    revision: i64,
    json: String,
    nodes: Vec<(i64, String)>,
}

impl StoredRow {
    /// The record, assembled and checked.
    fn decode(&self, location: &Arc<str>) -> Result<Versioned<SessionRecord>, SqliteError> {
        let header = decode(location, &self.id, self.revision, &self.json)?;
        assemble(location, &self.id, header, &self.nodes)
    }
}

/// A record's row of `statuses`: what reads need without decoding the record.
struct Summary {
    /// The CRUS status as the API answers it.
    status: String,
    /// The rollout's creation time, Unix milliseconds: the listing's order.
    created_at_ms: i64,
    /// Whether the rollout finished, so creation checks skip it.
    finished: bool,
}

impl Summary {
    /// The summary of `record`, encoded before the connection is taken.
    fn of(record: &SessionRecord) -> Result<Summary, SqliteError> {
        let status = record.status_json().map_err(|source| SqliteError::Encode {
            upgrade_id: record.upgrade_id().to_string(),
            source,
        })?;
        Ok(Summary {
            status,
            created_at_ms: record.rollout.created_at.as_millis(),
            finished: record.is_finished(),
        })
    }

    /// Writes it as session `id`'s row, replacing the one there: a create
    /// after a crash between tables cannot happen (one transaction), but a
    /// replace keeps the two tables in step whatever the file held.
    fn insert(
        &self,
        transaction: &Transaction<'_>,
        location: &Arc<str>,
        id: &str,
    ) -> Result<(), SqliteError> {
        transaction
            .prepare_cached(
                "INSERT OR REPLACE INTO statuses (upgrade_id, created_at_ms, finished, status) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .at(location)?
            .execute(params![id, self.created_at_ms, self.finished, self.status])
            .at(location)?;
        Ok(())
    }
}

/// The stored status of session `id`, if it exists; rebuilt from its record
/// when the stored one is damaged.
fn read_status(
    connection: &Connection,
    location: &Arc<str>,
    id: &str,
) -> Result<Option<String>, SqliteError> {
    let stored: Option<String> = connection
        .prepare_cached("SELECT status FROM statuses WHERE upgrade_id = ?1")
        .at(location)?
        .query_row([id], |row| row.get(0))
        .optional()
        .at(location)?;
    match stored {
        Some(status) if !is_status_of(&status, id) => {
            rebuilt_status(connection, location, id).map(Some)
        }
        other => Ok(other),
    }
}

/// Whether `status` looks like what [`SessionRecord::status_json`] writes for
/// session `id`: a cheap check, without decoding, that catches a row
/// damaged or written by something else (`{}`, another session's status).
fn is_status_of(status: &str, id: &str) -> bool {
    status.starts_with("{\"api_version\":")
        && status.ends_with('}')
        && status.contains(&format!("\"upgrade_id\":\"{id}\""))
}

/// Session `id`'s status made again from its record, for a status row found
/// damaged: the record is what the controller acts on, so it is the truth.
/// A damaged record (or none) is reported, never served as a status.
fn rebuilt_status(
    connection: &Connection,
    location: &Arc<str>,
    id: &str,
) -> Result<String, SqliteError> {
    let row: Option<(i64, String)> = connection
        .prepare_cached("SELECT revision, record FROM sessions WHERE upgrade_id = ?1")
        .at(location)?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .at(location)?;
    let Some((revision, json)) = row else {
        return Err(SqliteError::DamagedRecord {
            location: Arc::clone(location),
            upgrade_id: id.to_string(),
            problem: "it has a status but no record".to_string(),
        });
    };
    let rows = read_node_rows(connection, location, id)?;
    let record = assemble(location, id, decode(location, id, revision, &json)?, &rows)?;
    tracing::warn!(
        database = %location,
        upgrade_id = id,
        "the stored status of this session is damaged; answering one rebuilt from its record \
         (the next write of the session stores it again)"
    );
    record
        .value
        .status_json()
        .map_err(|source| SqliteError::Encode {
            upgrade_id: id.to_string(),
            source,
        })
}

/// `Ok` while the store's file is still the one at its path (always, in
/// memory): checked inside each write transaction, just before it commits, so
/// nothing is committed to a file crus would not find again.
fn still_in_place(file: Option<&FileIdentity>, location: &Arc<str>) -> Result<(), SqliteError> {
    file.map_or(Ok(()), |file| file.check(location))
}

fn changed_since(id: Uuid, expected: Revision, current: Revision) -> SqliteError {
    SqliteError::Conflict(format!(
        "session {id} changed since revision {} (now {}); re-read it and retry",
        expected.0, current.0
    ))
}

fn exists_already(id: Uuid, current: Revision) -> SqliteError {
    SqliteError::Conflict(format!(
        "session {id} exists already (at revision {})",
        current.0
    ))
}

/// Stores new session `id` (its record and status) in `transaction`; a
/// conflict if it exists.
fn insert_new(
    transaction: &Transaction<'_>,
    location: &Arc<str>,
    id: Uuid,
    (json, nodes): &(String, EncodedNodes),
    summary: &Summary,
    created_at: &str,
) -> Result<Revision, SqliteError> {
    if let Some(current) = current_revision(transaction, location, id)? {
        return Err(exists_already(id, current));
    }
    let revision = next_revision(transaction, location)?;
    transaction
        .execute(
            "INSERT INTO sessions (upgrade_id, revision, record, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
            params![
                id.to_string(),
                stored_revision(location, revision)?,
                json,
                created_at
            ],
        )
        .at(location)?;
    summary.insert(transaction, location, &id.to_string())?;
    // Rows a removal left behind (none in a healthy file) are not its nodes.
    remove_nodes_from(transaction, location, &id.to_string(), 0)?;
    write_nodes(transaction, location, &id.to_string(), nodes)?;
    Ok(revision)
}

/// The first unfinished session claiming one of `nodes`, with the nodes of
/// `nodes` it claims; `None` when they are all free. Claims of finished or
/// removed sessions do not count.
fn claimed_by_another(
    transaction: &Transaction<'_>,
    location: &Arc<str>,
    nodes: &[NodeId],
) -> Result<Option<NodesClaimed>, SqliteError> {
    let mut holder_of = transaction
        .prepare_cached(
            "SELECT claims.upgrade_id FROM claims \
             JOIN statuses ON statuses.upgrade_id = claims.upgrade_id \
             WHERE claims.node = ?1 AND statuses.finished = 0",
        )
        .at(location)?;
    let mut holder: Option<String> = None;
    let mut held = Vec::new();
    for node in nodes {
        let found: Option<String> = holder_of
            .query_row([node.as_str()], |row| row.get(0))
            .optional()
            .at(location)?;
        match (&holder, found) {
            (None, Some(found)) => {
                holder = Some(found);
                held.push(node.clone());
            }
            (Some(first), Some(found)) if *first == found => held.push(node.clone()),
            _ => {}
        }
    }
    holder
        .map(|holder| {
            Ok(NodesClaimed {
                holder: holder_id(location, &holder)?,
                nodes: held,
            })
        })
        .transpose()
}

/// The session id a claim names, which a healthy file always has as a UUID.
fn holder_id(location: &Arc<str>, holder: &str) -> Result<Uuid, SqliteError> {
    Uuid::parse_str(holder).map_err(|error| SqliteError::DamagedRecord {
        location: Arc::clone(location),
        upgrade_id: holder.to_string(),
        problem: format!("a node claim names it, which is not a session id ({error})"),
    })
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create(&self, record: &SessionRecord) -> Result<Revision> {
        let id = record.upgrade_id();
        let encoded = encode(record)?;
        let summary = Summary::of(record)?;
        let created_at = Timestamp::now().to_string();
        let file = self.file.clone();
        self.run(move |connection, location| {
            let transaction = write_transaction(connection, location)?;
            let revision = insert_new(&transaction, location, id, &encoded, &summary, &created_at)?;
            still_in_place(file.as_deref(), location)?;
            transaction.commit().at(location)?;
            Ok(revision)
        })
        .await
    }

    async fn create_claiming(
        &self,
        record: &SessionRecord,
        nodes: &[NodeId],
    ) -> Result<std::result::Result<Revision, NodesClaimed>> {
        let id = record.upgrade_id();
        let encoded = encode(record)?;
        let summary = Summary::of(record)?;
        let created_at = Timestamp::now().to_string();
        let nodes = nodes.to_vec();
        let file = self.file.clone();
        self.run(move |connection, location| {
            let transaction = write_transaction(connection, location)?;
            if let Some(current) = current_revision(&transaction, location, id)? {
                return Err(exists_already(id, current));
            }
            if let Some(claimed) = claimed_by_another(&transaction, location, &nodes)? {
                return Ok(Err(claimed));
            }
            let revision = insert_new(&transaction, location, id, &encoded, &summary, &created_at)?;
            {
                let mut claim = transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO claims (node, upgrade_id) VALUES (?1, ?2)",
                    )
                    .at(location)?;
                let holder = id.to_string();
                for node in &nodes {
                    claim.execute([node.as_str(), &holder]).at(location)?;
                }
            }
            still_in_place(file.as_deref(), location)?;
            transaction.commit().at(location)?;
            Ok(Ok(revision))
        })
        .await
    }

    async fn claims(&self) -> Result<BTreeMap<NodeId, Uuid>> {
        self.run(|connection, location| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT claims.node, claims.upgrade_id FROM claims \
                     JOIN statuses ON statuses.upgrade_id = claims.upgrade_id \
                     WHERE statuses.finished = 0",
                )
                .at(location)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .at(location)?;
            rows.map(|row| {
                let (node, holder) = row.at(location)?;
                Ok((NodeId::new(node), holder_id(location, &holder)?))
            })
            .collect()
        })
        .await
    }

    async fn get(&self, upgrade_id: Uuid) -> Result<Option<Versioned<SessionRecord>>> {
        let id = upgrade_id.to_string();
        let row = self
            .run(move |connection, location| read_stored(connection, location, &id))
            .await?;
        // Decoded after the connection is let go, so concurrent reads decode
        // in parallel instead of one after another behind its lock.
        Ok(row.map(|row| row.decode(&self.location)).transpose()?)
    }

    async fn get_desired(&self, upgrade_id: Uuid) -> Result<Option<Versioned<Desired>>> {
        // The header alone: no node row is read.
        let id = upgrade_id.to_string();
        let query_id = id.clone();
        let row: Option<(i64, String)> = self
            .run(move |connection, location| {
                connection
                    .prepare_cached("SELECT revision, record FROM sessions WHERE upgrade_id = ?1")
                    .at(location)?
                    .query_row([&query_id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
                    .at(location)
            })
            .await?;
        Ok(row
            .map(|(revision, json)| {
                decode(&self.location, &id, revision, &json).map(|record| Versioned {
                    value: record.value.desired,
                    revision: record.revision,
                })
            })
            .transpose()?)
    }

    async fn get_node_page(
        &self,
        upgrade_id: Uuid,
        after: Option<PageAfter<'_>>,
        limit: usize,
    ) -> Result<Option<PageRead>> {
        // The page's rows alone (`node_page.rs`), decoded off the connection.
        let id = upgrade_id.to_string();
        let query_id = id.clone();
        let query_after = after.map(|after| {
            let hint = after
                .position
                .and_then(|position| i64::try_from(position).ok());
            (after.id.to_string(), hint)
        });
        let query_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .run(move |connection, location| {
                node_page::read_page_rows(connection, location, &query_id, query_after, query_limit)
            })
            .await?;
        match rows {
            node_page::PageRows::Missing => Ok(None),
            node_page::PageRows::UnknownAfter => Ok(Some(PageRead::UnknownAfter)),
            node_page::PageRows::NoRows => Ok(self
                .get(upgrade_id)
                .await?
                .map(|record| page_of(&record.value.rollout.nodes, after, limit))),
            node_page::PageRows::Rows { start, rows } => Ok(Some(PageRead::Page(
                node_page::decode_page(&self.location, &id, start, &rows, limit)?,
            ))),
        }
    }

    async fn list(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        let rows = self
            .stored_rows("SELECT upgrade_id, revision, record FROM sessions ORDER BY upgrade_id")
            .await?;
        // Decoded off the connection's lock (and off the async workers: a
        // thousand records take milliseconds). One damaged record fails the
        // whole list rather than being skipped: the controller resumes every
        // listed session, and silently losing one would leave its nodes
        // drained with nobody looking after them.
        let location = Arc::clone(&self.location);
        let worker_location = Arc::clone(&self.location);
        let decoded = tokio::task::spawn_blocking(move || {
            rows.iter()
                .map(|row| row.decode(&worker_location))
                .collect::<Result<Vec<_>, SqliteError>>()
        })
        .await;
        match decoded {
            Ok(records) => Ok(records?),
            Err(source) => Err(SqliteError::Worker { location, source }.into()),
        }
    }

    async fn update(&self, record: &SessionRecord, expected: Revision) -> Result<Revision> {
        let id = record.upgrade_id();
        let (json, nodes) = encode(record)?;
        let summary = Summary::of(record)?;
        self.write_header_and_nodes(id, expected, json, summary, nodes, Some(0))
            .await
    }

    async fn update_delta(&self, delta: &SessionDelta<'_>, expected: Revision) -> Result<Revision> {
        let id = delta.header.upgrade_id();
        let text_id = id.to_string();
        let json = encode_header(delta.header)?;
        let status = delta.status_json()?;
        let summary = Summary {
            status,
            created_at_ms: delta.rollout.created_at.as_millis(),
            finished: delta.header.is_finished(),
        };
        let positions = delta.changed_positions();
        let nodes = encode_nodes(&text_id, delta.nodes(), positions.into_iter())?;
        // Replaced whole: every row goes; otherwise only rows past the end
        // (none unless the node list shrank, which crus never does).
        let remove_from = if delta.replaces_all() {
            0
        } else {
            i64::try_from(delta.nodes().len()).unwrap_or(i64::MAX)
        };
        self.write_header_and_nodes(id, expected, json, summary, nodes, Some(remove_from))
            .await
    }

    async fn delete(&self, upgrade_id: Uuid, expected: Revision) -> Result<()> {
        let file = self.file.clone();
        self.run(move |connection, location| {
            let transaction = write_transaction(connection, location)?;
            match current_revision(&transaction, location, upgrade_id)? {
                // Already gone: deleting is idempotent. Dropping the
                // transaction rolls back nothing.
                None => return Ok(()),
                Some(current) if current != expected => {
                    return Err(changed_since(upgrade_id, expected, current));
                }
                Some(_) => {}
            }
            for statement in [
                "DELETE FROM sessions WHERE upgrade_id = ?1",
                "DELETE FROM statuses WHERE upgrade_id = ?1",
                "DELETE FROM claims WHERE upgrade_id = ?1",
                "DELETE FROM session_nodes WHERE upgrade_id = ?1",
            ] {
                transaction
                    .execute(statement, [upgrade_id.to_string()])
                    .at(location)?;
            }
            still_in_place(file.as_deref(), location)?;
            transaction.commit().at(location)
        })
        .await
    }

    async fn check_writable(&self) -> Result<()> {
        self.probe_write().await
    }

    async fn get_options(&self) -> Result<Option<Versioned<ServerOptions>>> {
        self.run(|connection, location| options::read(connection, location))
            .await
    }

    async fn put_options(
        &self,
        options: &ServerOptions,
        expected: Option<Revision>,
    ) -> Result<Revision> {
        let json = serde_json::to_string(options).map_err(|source| SqliteError::Encode {
            upgrade_id: "(the server options)".to_string(),
            source,
        })?;
        let file = self.file.clone();
        self.run(move |connection, location| {
            options::write(connection, location, file.as_deref(), &json, expected)
        })
        .await
    }

    async fn session_by_idempotency_key(&self, key: &str) -> Result<Option<Uuid>> {
        // The index of keys (schema version 6): no record is read whole.
        let key = key.to_string();
        let id: Option<String> = self
            .run(move |connection, location| {
                connection
                    .prepare_cached(schema::SESSION_BY_IDEMPOTENCY_KEY)
                    .at(location)?
                    .query_row([&key], |row| row.get(0))
                    .optional()
                    .at(location)
            })
            .await?;
        id.map(|id| {
            Uuid::parse_str(&id).map_err(|error| {
                crus_core::Error::invalid(format!(
                    "{}: session id {id:?} in the sessions table is not a UUID ({error}); \
                     the file is damaged",
                    self.location
                ))
            })
        })
        .transpose()
    }

    async fn list_unfinished(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        let rows = self
            .stored_rows(
                "SELECT upgrade_id, revision, record FROM sessions WHERE upgrade_id IN \
                 (SELECT upgrade_id FROM statuses WHERE finished = 0) ORDER BY upgrade_id",
            )
            .await?;
        // Few sessions run at once, so these decode on the caller's task.
        Ok(rows
            .iter()
            .map(|row| row.decode(&self.location))
            .collect::<Result<Vec<_>, SqliteError>>()?)
    }
}

impl SqliteStore {
    /// Checks that the file takes a write and is still the one at its path:
    /// what readiness asks while writes fail. The write skips one revision
    /// number (SQLite writes nothing for an update that changes nothing, so
    /// it must change something); no record changes, and revisions only
    /// need to grow.
    async fn probe_write(&self) -> Result<()> {
        let file = self.file.clone();
        self.run(move |connection, location| {
            let transaction = write_transaction(connection, location)?;
            next_revision(&transaction, location)?;
            still_in_place(file.as_deref(), location)?;
            transaction.commit().at(location)
        })
        .await
    }

    /// The `(upgrade_id, revision, record)` rows `query` selects with their
    /// node rows, undecoded, read in one transaction.
    async fn stored_rows(&self, query: &'static str) -> Result<Vec<StoredRow>> {
        self.run(move |connection, location| {
            let transaction = connection.transaction().at(location)?;
            let headers: Vec<(String, i64, String)> = {
                let mut statement = transaction.prepare_cached(query).at(location)?;
                let rows = statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                    .at(location)?;
                rows.map(|row| row.at(location)).collect::<Result<_, _>>()?
            };
            headers
                .into_iter()
                .map(|(id, revision, json)| {
                    let nodes = read_node_rows(&transaction, location, &id)?;
                    Ok(StoredRow {
                        id,
                        revision,
                        json,
                        nodes,
                    })
                })
                .collect()
        })
        .await
    }

    /// Stores session `id`'s header `json`, its status `summary` and the
    /// node rows `nodes` if it is still at `expected`, in one transaction,
    /// after removing its node rows from position `remove_from` on.
    async fn write_header_and_nodes(
        &self,
        id: Uuid,
        expected: Revision,
        json: String,
        summary: Summary,
        nodes: EncodedNodes,
        remove_from: Option<i64>,
    ) -> Result<Revision> {
        let file = self.file.clone();
        self.run(move |connection, location| {
            let transaction = write_transaction(connection, location)?;
            match current_revision(&transaction, location, id)? {
                None => return Err(SqliteError::NotFound(format!("session {id}"))),
                Some(current) if current != expected => {
                    return Err(changed_since(id, expected, current));
                }
                Some(_) => {}
            }
            let revision = next_revision(&transaction, location)?;
            let text_id = id.to_string();
            transaction
                .execute(
                    "UPDATE sessions SET revision = ?2, record = ?3 WHERE upgrade_id = ?1",
                    params![text_id, stored_revision(location, revision)?, json],
                )
                .at(location)?;
            if let Some(from) = remove_from {
                remove_nodes_from(&transaction, location, &text_id, from)?;
            }
            write_nodes(&transaction, location, &text_id, &nodes)?;
            summary.insert(&transaction, location, &text_id)?;
            if summary.finished {
                // Its nodes are free again, as of this very write.
                transaction
                    .execute("DELETE FROM claims WHERE upgrade_id = ?1", [&text_id])
                    .at(location)?;
            }
            still_in_place(file.as_deref(), location)?;
            transaction.commit().at(location)?;
            Ok(revision)
        })
        .await
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SqliteStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}
