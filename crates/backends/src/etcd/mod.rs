//! `EtcdStore`: sessions in etcd, so several `crus serve` replicas share them.
//!
//! Each session is one key, `<prefix>sessions/<upgrade_id>`, holding the
//! record without its nodes as JSON, and its nodes in keys of a few dozen
//! nodes each under `<prefix>sessions/<upgrade_id>/nodes/` (see `nodes.rs`:
//! how a write too large for one transaction is split, and why a reader
//! never sees half of it); the nodes a session claims are one key beside it,
//! `<prefix>claims/<upgrade_id>`, a JSON array written in the transaction
//! that creates the session (which fails if any claim key changed since the
//! creation read them) and deleted in the one that stores it finished or
//! removes it. One key per session rather than per node: a transaction of
//! etcd holds at most 128 operations by default, fewer than a session's nodes. A record's [`Revision`] is the key's etcd mod revision, so
//! every revision-checked write is one etcd transaction comparing it: two
//! replicas racing on one session cannot both win. Writes may also be fenced
//! ([`EtcdStore::fenced`]): the same transaction then also requires a leader
//! key to still be held by a given lease, so a replica that lost leadership
//! while it was paused changes nothing when it wakes up. The server-wide
//! options are one key, `<prefix>options` (see `options.rs`); the leader's
//! store holds are published for followers in `<prefix>held` (see `held.rs`).

mod config;
mod error;
mod feed;
mod held;
mod idempotency;
mod kv;
mod leader;
mod node_page;
mod nodes;
mod options;
mod settings;
mod status_view;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse, WatchOptions, WatchStream,
    Watcher,
};
use uuid::Uuid;

use std::collections::{BTreeMap, HashSet};

use crus_core::options::ServerOptions;
use crus_core::rollout::{NodeList, NodeRecord};
use crus_core::store::{
    Desired, NodesClaimed, PageAfter, PageRead, Revision, SessionDelta, SessionRecord,
    SessionStore, Versioned, header_of, page_of,
};
use crus_core::{NodeId, Result};

pub use config::{EtcdConfig, EtcdTls};
use error::{EtcdError, from_etcd};
/// The etcd client crate, re-exported so callers use the same version.
pub use etcd_client;
pub use feed::{SessionChange, SessionFeed};
pub use leader::{Election, Leader};
use nodes::{group_count, groups_of, split};
pub use settings::{DEFAULT_PREFIX, EtcdSettings};

/// Which leader key and lease fence every write of a store.
#[derive(Debug, Clone)]
struct Fence {
    /// The key the leader holds.
    key: Vec<u8>,
    /// The lease the key must still be attached to.
    lease: i64,
}

/// A [`SessionStore`] in etcd.
#[derive(Clone)]
pub struct EtcdStore {
    /// The connected client; cheap to clone, one connection underneath.
    client: Client,
    /// Key prefix of every key crus writes, ending in `/`.
    prefix: String,
    /// When set, every write also requires this leader key and lease.
    fence: Option<Fence>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EtcdStore")
            .field("prefix", &self.prefix)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the cluster described by `config`.
    ///
    /// Fails with [`crus_core::Error::Unavailable`] when no endpoint answers
    /// and with [`crus_core::Error::Invalid`] when the TLS files cannot be read.
    pub async fn connect(config: &EtcdConfig) -> Result<Self> {
        let client = config.connect().await?;
        Ok(Self::from_client(client, &config.prefix))
    }

    /// A store on an already connected client, under `prefix` (a `/` is
    /// appended when missing, so `/crus` and `/crus/` are the same).
    pub fn from_client(client: Client, prefix: &str) -> Self {
        let mut prefix = prefix.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self {
            client,
            prefix,
            fence: None,
        }
    }

    /// The same store, whose every write also requires `leader_key` to be
    /// attached to `lease`: once the lease is gone (expired or revoked) or
    /// another replica holds the key, writes fail with
    /// [`crus_core::Error::Unavailable`] and change nothing.
    pub fn fenced(&self, leader_key: impl Into<Vec<u8>>, lease: i64) -> Self {
        Self {
            fence: Some(Fence {
                key: leader_key.into(),
                lease,
            }),
            ..self.clone()
        }
    }

    /// The connected client, for leadership and watches built on the same connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The key prefix, ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prefix of every session key.
    pub fn sessions_prefix(&self) -> String {
        format!("{}sessions/", self.prefix)
    }

    /// The ids of the stored sessions, from their keys' names alone (the
    /// node keys under them are not session names, and are left out).
    async fn session_ids(&self) -> Result<Vec<Uuid>> {
        let prefix = self.sessions_prefix();
        let response = self
            .kv()
            .get(
                prefix.as_str(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .map_err(from_etcd)?;
        Ok(response
            .kvs()
            .iter()
            .filter_map(|kv| {
                let name = kv.key().strip_prefix(prefix.as_bytes())?;
                Uuid::parse_str(std::str::from_utf8(name).ok()?).ok()
            })
            .collect())
    }

    /// The key of session `upgrade_id`.
    fn key(&self, upgrade_id: Uuid) -> String {
        format!("{}{upgrade_id}", self.sessions_prefix())
    }

    /// A KV client on the shared connection, asking another member when
    /// the one asked is down (see `kv.rs`).
    fn kv(&self) -> kv::Kv {
        kv::Kv(self.client.kv_client())
    }

    /// Watches every session key from revision `start` (0: from now). Each
    /// event names a session that changed; re-read it with [`SessionStore::get`].
    pub async fn watch_sessions(&self, start: i64) -> Result<(Watcher, WatchStream)> {
        let mut options = WatchOptions::new().with_prefix();
        if start > 0 {
            options = options.with_start_revision(start);
        }
        self.client
            .watch_client()
            .watch(self.sessions_prefix(), Some(options))
            .await
            .map_err(from_etcd)
    }

    /// Whether the cluster answers a read now (a quorum read, so a member cut
    /// off from its peers does not count).
    pub async fn check(&self) -> Result<()> {
        self.kv()
            .get(
                self.sessions_prefix(),
                Some(GetOptions::new().with_count_only()),
            )
            .await
            .map(|_| ())
            .map_err(from_etcd)
    }

    /// The compares every write adds: the leader key still on our lease.
    fn fence_compares(&self) -> Vec<Compare> {
        match &self.fence {
            Some(fence) => vec![Compare::lease(
                fence.key.clone(),
                CompareOp::Equal,
                fence.lease,
            )],
            None => Vec::new(),
        }
    }

    /// Runs a transaction whose success branch is `then` when `compare` and
    /// the fence hold, and whose failure branch reads the session key and the
    /// leader key, so the caller can tell which compare failed.
    async fn checked(
        &self,
        key: &str,
        compare: Compare,
        then: Vec<TxnOp>,
    ) -> Result<std::result::Result<i64, Lost>> {
        self.checked_all(key, vec![compare], then).await
    }

    /// [`EtcdStore::checked`] with several compares besides the fence.
    async fn checked_all(
        &self,
        key: &str,
        mut compares: Vec<Compare>,
        then: Vec<TxnOp>,
    ) -> Result<std::result::Result<i64, Lost>> {
        compares.extend(self.fence_compares());
        let mut otherwise = vec![TxnOp::get(key, None)];
        if let Some(fence) = &self.fence {
            otherwise.push(TxnOp::get(fence.key.clone(), None));
        }
        let txn = Txn::new().when(compares).and_then(then).or_else(otherwise);
        let response = self.kv().txn(txn).await.map_err(from_etcd)?;
        let revision = response.header().map_or(0, |header| header.revision());
        if response.succeeded() {
            return Ok(Ok(revision));
        }
        let mut reads = response
            .op_responses()
            .into_iter()
            .filter_map(|op| match op {
                TxnOpResponse::Get(get) => Some(get),
                _ => None,
            });
        let record = reads
            .next()
            .and_then(|get| get.kvs().first().map(|kv| kv.mod_revision()));
        if let Some(fence) = &self.fence {
            let leader = reads
                .next()
                .and_then(|get| get.kvs().first().map(|kv| kv.lease()));
            if leader != Some(fence.lease) {
                return Err(EtcdError::NotLeader.into());
            }
        }
        Ok(Err(Lost { current: record }))
    }

    /// Writes session `upgrade_id`'s `header` (a record without its nodes)
    /// with the node keys of `nodes` that `changed` names (`None`: all of
    /// them), in as few fenced transactions as etcd's limits allow, each
    /// requiring `compare` of the session key; only the last writes the
    /// session key (see `nodes.rs`). `expected`: the session key's mod
    /// revision the write expects, 0 for a creation.
    async fn write_session(
        &self,
        header: &SessionRecord,
        nodes: &[NodeRecord],
        changed: Option<&[usize]>,
        compare: Compare,
        expected: i64,
    ) -> Result<std::result::Result<i64, Lost>> {
        let id = header.upgrade_id();
        let key = self.key(id);
        let total = group_count(nodes.len());
        let stored = self.stored_groups(id, expected).await?;
        let groups = match changed {
            // Only the groups changed, and those a write cut short left
            // newer than the record: the others are the record's already.
            Some(positions) if stored.count == total => {
                let mut groups = groups_of(positions.iter().copied());
                groups.extend(stored.newer.iter().copied().filter(|group| *group < total));
                groups
            }
            // Every group: the node list is new, or the keys are not the
            // record's (a record written whole by an earlier release).
            _ => (0..total).collect(),
        };
        let mut ops = self.group_puts(id, nodes, &groups)?;
        if stored.count > total {
            ops.push((self.groups_delete_from(id, total), key.len() + 16));
        }
        let value = serde_json::to_vec(header).map_err(EtcdError::Encode)?;
        let header_bytes = key.len() + value.len();
        let transactions = split(ops, 2, header_bytes);
        let last = transactions.len().saturating_sub(1);
        let mut header_put = Some(TxnOp::put(key.clone(), value, None));
        for (index, mut then) in transactions.into_iter().enumerate() {
            if index == last {
                then.extend(header_put.take());
                if expected == 0 {
                    // A creation: its idempotency key, if any, is indexed
                    // in the same transaction.
                    then.extend(self.idempotency_put(header));
                }
                if header.is_finished() {
                    // Its nodes are free again, as of this very write.
                    then.push(TxnOp::delete(self.claim_key(id), None));
                }
            }
            match self.checked(&key, compare.clone(), then).await? {
                Ok(written) if index == last => return Ok(Ok(written)),
                Ok(_) => {}
                Err(lost) => return Ok(Err(lost)),
            }
        }
        // `split` always yields a last transaction, which returned above.
        Err(crus_core::Error::invalid(format!(
            "session {id}: a write was split into no transaction"
        )))
    }

    /// An update of session `header`'s record expecting `expected`, with
    /// the core errors a lost compare means.
    async fn update_session(
        &self,
        header: &SessionRecord,
        nodes: &[NodeRecord],
        changed: Option<&[usize]>,
        expected: Revision,
    ) -> Result<Revision> {
        let id = header.upgrade_id();
        let key = self.key(id);
        let compare = Compare::mod_revision(key, CompareOp::Equal, etcd_revision(expected));
        match self
            .write_session(header, nodes, changed, compare, etcd_revision(expected))
            .await?
        {
            Ok(written) => Ok(revision(written)),
            Err(Lost { current: None }) => {
                Err(crus_core::Error::not_found(format!("session {id}")))
            }
            Err(Lost { current: Some(now) }) => Err(crus_core::Error::conflict(format!(
                "session {id} changed since revision {} (now {now}); re-read it and retry",
                expected.0
            ))),
        }
    }

    /// The prefix of every claim key.
    fn claims_prefix(&self) -> String {
        format!("{}claims/", self.prefix)
    }

    /// The key of session `upgrade_id`'s claims: the nodes it holds, as a
    /// JSON array.
    fn claim_key(&self, upgrade_id: Uuid) -> String {
        format!("{}{upgrade_id}", self.claims_prefix())
    }

    /// Every claim key with the session it names, the nodes it holds and its
    /// mod revision, and the revision they were read at.
    async fn read_claims(&self) -> Result<(i64, Vec<StoredClaim>)> {
        let prefix = self.claims_prefix();
        let response = self
            .kv()
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(from_etcd)?;
        let read_at = response.header().map_or(0, |header| header.revision());
        let claims = response
            .kvs()
            .iter()
            .map(|kv| {
                let damaged = |problem: String| EtcdError::DamagedClaim {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    problem,
                };
                let holder = kv
                    .key()
                    .strip_prefix(prefix.as_bytes())
                    .and_then(|id| std::str::from_utf8(id).ok())
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .ok_or_else(|| damaged("its key does not end in a session id".to_string()))?;
                let nodes: Vec<NodeId> = serde_json::from_slice(kv.value()).map_err(|error| {
                    damaged(format!("it is not a JSON array of node ids ({error})"))
                })?;
                Ok(StoredClaim { holder, nodes })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((read_at, claims))
    }

    /// Whether session `holder` exists and has not finished: only such a
    /// session's claims count.
    async fn holds(&self, holder: Uuid) -> Result<bool> {
        Ok(self
            .get(holder)
            .await?
            .is_some_and(|record| !record.value.is_finished()))
    }
}

/// One session's claim key, read.
struct StoredClaim {
    /// The session holding the nodes.
    holder: Uuid,
    /// The nodes.
    nodes: Vec<NodeId>,
}

/// How many times a creation re-reads the claims when other creations
/// changed them between its read and its transaction.
const CLAIM_ATTEMPTS: u32 = 32;

/// The first key after every key starting with `prefix`: a compare over
/// `prefix..prefix_end(prefix)` covers the keys under it.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Only for a prefix of 0xff bytes, which crus never makes: every key after it.
    vec![0]
}

/// A transaction whose record compare failed, with what the record is now.
struct Lost {
    /// The record's mod revision now; `None` when it is gone.
    current: Option<i64>,
}

/// Parses a stored record, naming the key when it is damaged.
fn decode(key: &[u8], value: &[u8]) -> Result<SessionRecord> {
    serde_json::from_slice(value).map_err(|source| {
        EtcdError::Damaged {
            key: String::from_utf8_lossy(key).into_owned(),
            source,
        }
        .into()
    })
}

/// An etcd revision as a store [`Revision`]; etcd revisions are positive.
fn revision(etcd_revision: i64) -> Revision {
    Revision(u64::try_from(etcd_revision).unwrap_or_default())
}

/// A store [`Revision`] as the etcd revision it came from.
fn etcd_revision(revision: Revision) -> i64 {
    i64::try_from(revision.0).unwrap_or(i64::MAX)
}

#[async_trait]
impl SessionStore for EtcdStore {
    async fn create(&self, record: &SessionRecord) -> Result<Revision> {
        let key = self.key(record.upgrade_id());
        // A key that was never created (or was deleted) has create revision 0.
        let compare = Compare::create_revision(key.clone(), CompareOp::Equal, 0);
        let header = header_of(record);
        match self
            .write_session(&header, &record.rollout.nodes, None, compare, 0)
            .await?
        {
            Ok(written) => Ok(revision(written)),
            Err(_) => Err(crus_core::Error::conflict(format!(
                "session {} exists already",
                record.upgrade_id()
            ))),
        }
    }

    async fn get(&self, upgrade_id: Uuid) -> Result<Option<Versioned<SessionRecord>>> {
        let response = self
            .kv()
            .get(self.key(upgrade_id), None)
            .await
            .map_err(from_etcd)?;
        let Some(kv) = response.kvs().first() else {
            return Ok(None);
        };
        let mut value = decode(kv.key(), kv.value())?;
        let nodes = self.read_nodes(upgrade_id, kv.mod_revision()).await?;
        // No node key: a record without nodes, or one written whole by an
        // earlier release, whose nodes are in it.
        if !nodes.is_empty() {
            value.rollout.nodes = NodeList::as_stored(nodes);
            // The steps' and boots' node lists a header leaves out.
            value.rollout.restore_node_lists();
        }
        Ok(Some(Versioned {
            value,
            revision: revision(kv.mod_revision()),
        }))
    }

    async fn get_desired(&self, upgrade_id: Uuid) -> Result<Option<Versioned<Desired>>> {
        // The session key alone: no node key is read.
        let response = self
            .kv()
            .get(self.key(upgrade_id), None)
            .await
            .map_err(from_etcd)?;
        match response.kvs().first() {
            Some(kv) => Ok(Some(Versioned {
                value: decode(kv.key(), kv.value())?.desired,
                revision: revision(kv.mod_revision()),
            })),
            None => Ok(None),
        }
    }

    async fn get_node_page(
        &self,
        upgrade_id: Uuid,
        after: Option<PageAfter<'_>>,
        limit: usize,
    ) -> Result<Option<PageRead>> {
        // The page's node keys alone (`node_page.rs`); a session without
        // node keys is read whole (its nodes, if any, are in its record).
        match self.read_node_page(upgrade_id, after, limit).await? {
            None => Ok(None),
            Some(Some(page)) => Ok(Some(page)),
            Some(None) => Ok(self
                .get(upgrade_id)
                .await?
                .map(|record| page_of(&record.value.rollout.nodes, after, limit))),
        }
    }

    async fn list(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        // The session keys' names first (node keys are under them), then
        // each session read as `get` reads it.
        let ids = self.session_ids().await?;
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            // Removed since the names were read: not listed.
            if let Some(record) = self.get(id).await? {
                records.push(record);
            }
        }
        Ok(records)
    }

    async fn update(&self, record: &SessionRecord, expected: Revision) -> Result<Revision> {
        let header = header_of(record);
        self.update_session(&header, &record.rollout.nodes, None, expected)
            .await
    }

    async fn update_delta(&self, delta: &SessionDelta<'_>, expected: Revision) -> Result<Revision> {
        let positions = (!delta.replaces_all()).then(|| delta.changed_positions());
        self.update_session(delta.header, delta.nodes(), positions.as_deref(), expected)
            .await
    }

    async fn delete(&self, upgrade_id: Uuid, expected: Revision) -> Result<()> {
        let key = self.key(upgrade_id);
        let compare = Compare::mod_revision(key.clone(), CompareOp::Equal, etcd_revision(expected));
        let mut then = vec![
            TxnOp::delete(key.clone(), None),
            TxnOp::delete(self.claim_key(upgrade_id), None),
            self.groups_delete_from(upgrade_id, 0),
        ];
        // Its idempotency key leaves the index with it (the header alone
        // is read to learn it; the compare makes sure it is the one read).
        if let Some(idempotency) = self
            .get_desired(upgrade_id)
            .await?
            .filter(|desired| desired.revision == expected)
            .and_then(|desired| desired.value.idempotency)
        {
            then.push(TxnOp::delete(
                self.idempotency_index_key(&idempotency.key),
                None,
            ));
        }
        match self.checked(&key, compare, then).await? {
            Ok(_) | Err(Lost { current: None }) => Ok(()),
            Err(Lost { current: Some(now) }) => Err(crus_core::Error::conflict(format!(
                "session {upgrade_id} changed since revision {} (now {now}); re-read it and retry",
                expected.0
            ))),
        }
    }

    async fn session_by_idempotency_key(&self, key: &str) -> Result<Option<Uuid>> {
        self.lookup_idempotency_key(key).await
    }

    async fn create_claiming(
        &self,
        record: &SessionRecord,
        nodes: &[NodeId],
    ) -> Result<std::result::Result<Revision, NodesClaimed>> {
        let id = record.upgrade_id();
        let key = self.key(id);
        let value = serde_json::to_vec(&header_of(record)).map_err(EtcdError::Encode)?;
        let claim = serde_json::to_vec(nodes).map_err(EtcdError::Encode)?;
        // A new session has not read its nodes yet (its record holds none):
        // any it holds go in the creation's one transaction, which must be
        // within etcd's limits.
        let all_groups = (0..group_count(record.rollout.nodes.len())).collect();
        let group_puts = self.group_puts(id, &record.rollout.nodes, &all_groups)?;
        let group_bytes: usize = group_puts.iter().map(|(_, size)| size).sum();
        if group_puts.len() > nodes::MAX_OPS_PER_TXN / 2 || group_bytes > nodes::MAX_TXN_BYTES / 2 {
            return Err(crus_core::Error::invalid(format!(
                "session {id} holds too many nodes ({}) to be created with its claims in one \
                 etcd transaction; create it before its snapshot is taken",
                record.rollout.nodes.len()
            )));
        }
        let group_puts: Vec<TxnOp> = group_puts.into_iter().map(|(op, _)| op).collect();
        let wanted: HashSet<&NodeId> = nodes.iter().collect();
        let claims_prefix = self.claims_prefix();
        for _ in 0..CLAIM_ATTEMPTS {
            let (read_at, claims) = self.read_claims().await?;
            // Claims of finished or removed sessions (left by a writer that
            // did not know claims) are dropped in the same transaction.
            let mut stale = Vec::new();
            for stored in &claims {
                let held: Vec<NodeId> = stored
                    .nodes
                    .iter()
                    .filter(|node| wanted.contains(node))
                    .cloned()
                    .collect();
                if held.is_empty() {
                    continue;
                }
                if self.holds(stored.holder).await? {
                    return Ok(Err(NodesClaimed {
                        holder: stored.holder,
                        nodes: nodes
                            .iter()
                            .filter(|node| held.contains(node))
                            .cloned()
                            .collect(),
                    }));
                }
                stale.push(TxnOp::delete(self.claim_key(stored.holder), None));
            }
            // One transaction: the session is new, and no claim key was
            // written since the claims were read (a compare over the whole
            // range, so a key created meanwhile fails it too).
            let compares = vec![
                Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                Compare::mod_revision(claims_prefix.clone(), CompareOp::Less, read_at + 1)
                    .with_range(prefix_end(&claims_prefix)),
            ];
            let mut then = vec![
                TxnOp::put(key.clone(), value.clone(), None),
                TxnOp::put(self.claim_key(id), claim.clone(), None),
            ];
            then.extend(self.idempotency_put(record));
            then.extend(group_puts.iter().cloned());
            then.extend(stale);
            match self.checked_all(&key, compares, then).await? {
                Ok(written) => return Ok(Ok(revision(written))),
                Err(Lost { current: Some(_) }) => {
                    return Err(crus_core::Error::conflict(format!(
                        "session {id} exists already"
                    )));
                }
                // Another creation claimed nodes meanwhile: read again.
                Err(Lost { current: None }) => {}
            }
        }
        Err(crus_core::Error::unavailable(
            "etcd",
            format!(
                "the node claims changed {CLAIM_ATTEMPTS} times while session {id} was being \
                 stored (many creations at once); retry the creation"
            ),
        ))
    }

    /// Readiness asks this while writes fail: a small fenced write of one
    /// key outside the sessions and claims, so a deposed leader or a cluster
    /// that refuses writes answers an error and readiness stays 503 until
    /// etcd takes a write again. (The trait's default answers `Ok`, which
    /// would clear a store failure at the first probe without asking etcd.)
    async fn check_writable(&self) -> Result<()> {
        let key = format!("{}probe", self.prefix);
        let put = TxnOp::put(key.as_str(), "readiness probe", None);
        // Only the fence is compared; a refused fence is an error of its own.
        self.checked_all(&key, Vec::new(), vec![put])
            .await
            .map(|_written| ())
    }

    async fn get_options(&self) -> Result<Option<Versioned<ServerOptions>>> {
        self.read_options().await
    }

    async fn put_options(
        &self,
        options: &ServerOptions,
        expected: Option<Revision>,
    ) -> Result<Revision> {
        self.write_options(options, expected).await
    }

    async fn claims(&self) -> Result<BTreeMap<NodeId, Uuid>> {
        let (_, claims) = self.read_claims().await?;
        let mut held = BTreeMap::new();
        for stored in claims {
            if self.holds(stored.holder).await? {
                held.extend(stored.nodes.into_iter().map(|node| (node, stored.holder)));
            }
        }
        Ok(held)
    }
}
