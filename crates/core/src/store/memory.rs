//! An in-memory `SessionStore`, for tests, the demo and embedding.
//!
//! Each record is kept as its header (the record without its nodes) beside
//! its nodes, so a delta write ([`SessionStore::update_delta`]) replaces the
//! header and the changed nodes only, and the operator's requests are read
//! without copying the nodes: what the controller does at each persist and
//! command poll, which copied the whole record before.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    Desired, NodesClaimed, PageAfter, PageRead, Revision, SessionDelta, SessionRecord,
    SessionStore, StatusView, Versioned, header_of, page_of, status_of_stored, statuses_of_stored,
};
use crate::error::{Error, Result};
use crate::node::NodeId;
use crate::options::ServerOptions;
use crate::rollout::{NodeList, NodeRecord};

/// Sessions kept in memory; lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Records and the revision counter, under one lock so revisions are totally ordered.
    inner: Mutex<MemoryInner>,
}

/// One record as kept: its header, its nodes apart, and its revision.
#[derive(Debug)]
struct Stored {
    /// The record without its nodes (`rollout.nodes` empty).
    header: SessionRecord,
    /// The record's nodes, in order.
    nodes: Vec<NodeRecord>,
    /// The revision of the record's last write.
    revision: Revision,
}

impl Stored {
    fn of(record: &SessionRecord, revision: Revision) -> Self {
        Stored {
            header: header_of(record),
            nodes: record.rollout.nodes.to_vec(),
            revision,
        }
    }

    /// The whole record, assembled.
    fn versioned(&self) -> Versioned<SessionRecord> {
        let mut value = self.header.clone();
        value.rollout.nodes = NodeList::as_stored(self.nodes.clone());
        value.rollout.restore_node_lists();
        Versioned {
            value,
            revision: self.revision,
        }
    }
}

#[derive(Debug, Default)]
struct MemoryInner {
    /// The last revision handed out.
    last_revision: u64,
    /// Records by id, with the revision of their last write.
    records: HashMap<Uuid, Stored>,
    /// The session claiming each node, taken with the session's creation
    /// and dropped when it finishes or is removed.
    claims: HashMap<NodeId, Uuid>,
    /// The server-wide options, with the revision of their last write.
    options: Option<(ServerOptions, Revision)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic while holding the lock cannot leave a record half-written
        // (every write is one insert), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl MemoryInner {
    fn next_revision(&mut self) -> Revision {
        self.last_revision += 1;
        Revision(self.last_revision)
    }

    /// Whether session `holder` exists and has not finished: only such a
    /// session's claims count.
    fn holds(&self, holder: Uuid) -> bool {
        self.records
            .get(&holder)
            .is_some_and(|stored| !stored.header.is_finished())
    }

    /// `Ok` when session `id` exists at `expected`: what every
    /// revision-checked write checks first.
    fn check_current(&self, id: Uuid, expected: Revision) -> Result<()> {
        match self.records.get(&id) {
            None => Err(Error::not_found(format!("session {id}"))),
            Some(stored) if stored.revision != expected => Err(Error::conflict(format!(
                "session {id} changed since revision {} (now {})",
                expected.0, stored.revision.0
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Drops every claim of session `holder`.
    fn release(&mut self, holder: Uuid) {
        self.claims.retain(|_, claimant| *claimant != holder);
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &SessionRecord) -> Result<Revision> {
        let mut inner = self.lock();
        let id = record.upgrade_id();
        if inner.records.contains_key(&id) {
            return Err(Error::conflict(format!("session {id} exists already")));
        }
        let revision = inner.next_revision();
        inner.records.insert(id, Stored::of(record, revision));
        Ok(revision)
    }

    async fn get(&self, upgrade_id: Uuid) -> Result<Option<Versioned<SessionRecord>>> {
        Ok(self.lock().records.get(&upgrade_id).map(Stored::versioned))
    }

    async fn get_desired(&self, upgrade_id: Uuid) -> Result<Option<Versioned<Desired>>> {
        Ok(self
            .lock()
            .records
            .get(&upgrade_id)
            .map(|stored| Versioned {
                value: stored.header.desired.clone(),
                revision: stored.revision,
            }))
    }

    async fn get_node_page(
        &self,
        upgrade_id: Uuid,
        after: Option<PageAfter<'_>>,
        limit: usize,
    ) -> Result<Option<PageRead>> {
        // The page's nodes copied alone, not the whole record.
        Ok(self
            .lock()
            .records
            .get(&upgrade_id)
            .map(|stored| page_of(&stored.nodes, after, limit)))
    }

    async fn session_by_idempotency_key(&self, key: &str) -> Result<Option<Uuid>> {
        // The headers' keys alone, in memory: no record is copied.
        Ok(self
            .lock()
            .records
            .iter()
            .find(|(_, stored)| stored.header.desired.idempotency_key() == Some(key))
            .map(|(id, _)| *id))
    }

    async fn list(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        Ok(self
            .lock()
            .records
            .values()
            .map(Stored::versioned)
            .collect())
    }

    async fn update(&self, record: &SessionRecord, expected: Revision) -> Result<Revision> {
        let mut inner = self.lock();
        let id = record.upgrade_id();
        inner.check_current(id, expected)?;
        let revision = inner.next_revision();
        inner.records.insert(id, Stored::of(record, revision));
        if record.is_finished() {
            inner.release(id);
        }
        Ok(revision)
    }

    async fn update_delta(&self, delta: &SessionDelta<'_>, expected: Revision) -> Result<Revision> {
        let mut inner = self.lock();
        let id = delta.header.upgrade_id();
        inner.check_current(id, expected)?;
        let revision = inner.next_revision();
        if let Some(stored) = inner.records.get_mut(&id) {
            stored.header = delta.header.clone();
            stored.header.rollout.nodes = NodeList::default();
            let nodes = delta.nodes();
            if delta.replaces_all() || stored.nodes.len() != nodes.len() {
                stored.nodes = nodes.to_vec();
            } else {
                for position in delta.changed_positions() {
                    stored.nodes[position].clone_from(&nodes[position]);
                }
            }
            stored.revision = revision;
        }
        if delta.header.is_finished() {
            inner.release(id);
        }
        Ok(revision)
    }

    async fn delete(&self, upgrade_id: Uuid, expected: Revision) -> Result<()> {
        let mut inner = self.lock();
        match inner.records.get(&upgrade_id) {
            None => Ok(()),
            Some(Stored {
                revision: current, ..
            }) if *current != expected => Err(Error::conflict(format!(
                "session {upgrade_id} changed since revision {} (now {})",
                expected.0, current.0
            ))),
            Some(_) => {
                inner.records.remove(&upgrade_id);
                inner.release(upgrade_id);
                Ok(())
            }
        }
    }

    async fn create_claiming(
        &self,
        record: &SessionRecord,
        nodes: &[NodeId],
    ) -> Result<std::result::Result<Revision, NodesClaimed>> {
        let mut inner = self.lock();
        let id = record.upgrade_id();
        if inner.records.contains_key(&id) {
            return Err(Error::conflict(format!("session {id} exists already")));
        }
        let holder = nodes
            .iter()
            .filter_map(|node| inner.claims.get(node).copied())
            .find(|holder| inner.holds(*holder));
        if let Some(holder) = holder {
            let held = nodes
                .iter()
                .filter(|node| inner.claims.get(*node) == Some(&holder))
                .cloned()
                .collect();
            return Ok(Err(NodesClaimed {
                holder,
                nodes: held,
            }));
        }
        let revision = inner.next_revision();
        inner.records.insert(id, Stored::of(record, revision));
        for node in nodes {
            inner.claims.insert(node.clone(), id);
        }
        Ok(Ok(revision))
    }

    async fn claims(&self) -> Result<BTreeMap<NodeId, Uuid>> {
        let inner = self.lock();
        Ok(inner
            .claims
            .iter()
            .filter(|(_, holder)| inner.holds(**holder))
            .map(|(node, holder)| (node.clone(), *holder))
            .collect())
    }

    async fn get_options(&self) -> Result<Option<Versioned<ServerOptions>>> {
        Ok(self
            .lock()
            .options
            .as_ref()
            .map(|(value, revision)| Versioned {
                value: value.clone(),
                revision: *revision,
            }))
    }

    async fn put_options(
        &self,
        options: &ServerOptions,
        expected: Option<Revision>,
    ) -> Result<Revision> {
        let mut inner = self.lock();
        let current = inner.options.as_ref().map(|(_, revision)| *revision);
        if current != expected {
            return Err(Error::conflict(format!(
                "the server options changed since they were read (revision {:?}, now {:?}); \
                 re-read them and retry",
                expected.map(|revision| revision.0),
                current.map(|revision| revision.0)
            )));
        }
        let revision = inner.next_revision();
        inner.options = Some((options.clone(), revision));
        Ok(revision)
    }
}

/// The statuses of the records kept, decoded at each read: a memory store
/// holds few sessions, and decoding them is what the API answered before.
#[async_trait]
impl StatusView for MemoryStore {
    async fn get_status(&self, upgrade_id: Uuid) -> Result<Option<String>> {
        status_of_stored(self, upgrade_id).await
    }

    async fn list_statuses(&self) -> Result<Vec<String>> {
        statuses_of_stored(self).await
    }
}
