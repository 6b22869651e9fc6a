//! Where sessions live: a `SessionStore` with revision-checked writes, so the same
//! controller runs on an embedded store or a distributed one.

mod delta;
mod faulty;
mod health;
mod memory;
mod node_page;
mod status_view;
mod watched;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

pub use delta::{ChangedNodes, SessionDelta, header_of};
pub use faulty::FaultyStore;
pub use health::{StoreHealth, is_store_failure};
pub use memory::MemoryStore;
pub use node_page::{NodePage, PageAfter, PageRead, page_of};
pub use status_view::{
    RecordStatuses, StatusView, json_array, status_of_stored, statuses_of_stored,
};
pub use watched::WatchedStore;

use crate::error::Result;
// The operator's commands are the rollout's inputs; they are stored here.
use crate::node::NodeId;
use crate::options::ServerOptions;
pub use crate::rollout::OperatorCommand;
use crate::rollout::{RolloutState, Stage, status_of};
use crate::session::{SessionPhase, SessionState, SessionStatus};

/// A record's revision. Every successful write yields a new, larger one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(pub u64);

/// What the operator asked of a session, written by the API and read by the controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// Deletion was requested: stop safely, then remove the record.
    #[serde(default)]
    pub delete: bool,
    /// Pause and resume requests not yet dropped, oldest first; the rollout
    /// records how many it has applied in all
    /// (`RolloutState::commands_applied`), so each is applied once even
    /// across a restart. Applied ones are dropped (see
    /// [`Desired::compact_commands`]), so thousands of pauses and resumes do
    /// not grow the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<OperatorCommand>,
    /// How many applied commands were dropped from the head of `commands`:
    /// `commands[0]` is the session's command number `commands_compacted`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub commands_compacted: usize,
    /// The `Idempotency-Key` the session was created with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<Idempotency>,
}

impl Desired {
    /// The `Idempotency-Key` the session was created with, if any.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency.as_ref().map(|stored| stored.key.as_str())
    }

    /// The commands a rollout that has applied `applied` commands in all has
    /// yet to apply, oldest first.
    pub fn pending_commands(&self, applied: usize) -> &[OperatorCommand] {
        let start = applied.saturating_sub(self.commands_compacted);
        self.commands.get(start..).unwrap_or_default()
    }

    /// Drops the commands a rollout that has applied `applied` in all no
    /// longer needs. Idempotent, and safe with a stale `applied` (a count
    /// read from the store is never above the controller's own): only
    /// commands below both are dropped.
    pub fn compact_commands(&mut self, applied: usize) {
        let applied_here = applied
            .saturating_sub(self.commands_compacted)
            .min(self.commands.len());
        if applied_here > 0 {
            self.commands.drain(..applied_here);
            self.commands_compacted += applied_here;
        }
    }
}

/// For `skip_serializing_if`: a count of 0 is not written.
fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// A creation's `Idempotency-Key` and the request it came with, so a repeat
/// is recognised (and a reuse with another request refused) even after a
/// restart: kept with the session, for as long as the session is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Idempotency {
    /// The key, as the client sent it.
    pub key: String,
    /// The request body, as JSON (compared as values: key order and spacing
    /// do not matter).
    pub request: serde_json::Value,
}

/// Everything stored about one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The rollout's state, written by the controller (the status is derived from it).
    pub rollout: RolloutState,
    /// The operator's requests, written by the API.
    #[serde(default)]
    pub desired: Desired,
}

impl SessionRecord {
    /// The session's id.
    pub fn upgrade_id(&self) -> Uuid {
        self.rollout.upgrade_id
    }

    /// The session as the CRUS API shows it. A deletion that the controller
    /// has not taken up yet already shows as `DELETING` (a finished
    /// session's too, until it is removed).
    pub fn status(&self) -> SessionStatus {
        status_of_parts(&self.rollout, &self.desired)
    }

    /// [`SessionRecord::status`] as the API answers it (compact JSON), so a
    /// store can keep it beside the record and reads need not decode the
    /// rollout state.
    ///
    /// Fails only if serde cannot encode the status, which a status built by
    /// crus never makes it do (its maps have string keys).
    pub fn status_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(&self.status())
    }

    /// Whether the rollout has finished, so no creation check has to look at
    /// it (its nodes are free again).
    pub fn is_finished(&self) -> bool {
        self.rollout.stage == Stage::Finished
    }
}

/// [`SessionRecord::status`] of the record made of `rollout` and `desired`,
/// without assembling it.
fn status_of_parts(rollout: &RolloutState, desired: &Desired) -> SessionStatus {
    let mut status = status_of(rollout);
    if desired.delete {
        status.state = SessionState::Deleting;
    }
    // Commands the controller has not applied yet already show.
    let pending = desired.pending_commands(rollout.commands_applied);
    if !rollout.completed && !desired.delete {
        match pending.last() {
            Some(OperatorCommand::Pause) => status.phase = Some(SessionPhase::Paused),
            Some(OperatorCommand::Resume { .. }) => status.phase = Some(SessionPhase::Running),
            None => {}
        }
    }
    status
}

/// A status as JSON, its failure as a core error naming the session.
fn encoded_status(upgrade_id: Uuid, status: &SessionStatus) -> Result<String> {
    serde_json::to_string(status).map_err(|source| crate::Error::Other {
        backend: "crus",
        source: format!("cannot encode the status of session {upgrade_id}: {source}").into(),
    })
}

/// The order the API lists sessions in: newest first (by the rollout's
/// `created_at`), ties by id, so the listing is the same at every call.
/// Stores that sort in their own query must sort the same way.
pub fn listing_order(left: &SessionRecord, right: &SessionRecord) -> std::cmp::Ordering {
    right
        .rollout
        .created_at
        .cmp(&left.rollout.created_at)
        .then_with(|| left.upgrade_id().cmp(&right.upgrade_id()))
}

/// A record together with the revision it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// The revision it was read at; pass it back to write.
    pub revision: Revision,
}

/// Why [`SessionStore::create_claiming`] stored nothing: nodes it would
/// claim are held by an unfinished session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodesClaimed {
    /// The unfinished session that holds them.
    pub holder: Uuid,
    /// The nodes asked for that it holds (at least one).
    pub nodes: Vec<NodeId>,
}

/// What [`SessionStore::create_claiming`] and [`SessionStore::claims`] answer
/// on a store that keeps no claims.
fn claims_not_supported() -> crate::Error {
    crate::Error::NotSupported {
        backend: "session store",
        operation: "claiming nodes for a session",
    }
}

/// Durable storage of sessions with compare-and-swap writes.
///
/// Implementations must make a write visible to every later read once it returns.
///
/// Five primitives are required; the other reads
/// ([`SessionStore::get_desired`], [`SessionStore::list_unfinished`]) have
/// default bodies built on them, which a store overrides when it can answer
/// without decoding whole records (the rollout state holds every node). The
/// statuses the API serves are a read model apart: [`StatusView`].
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new record. [`crate::Error::Conflict`] if its id exists.
    async fn create(&self, record: &SessionRecord) -> Result<Revision>;

    /// The record `upgrade_id`, if it exists.
    async fn get(&self, upgrade_id: Uuid) -> Result<Option<Versioned<SessionRecord>>>;

    /// Every record, in no particular order.
    async fn list(&self) -> Result<Vec<Versioned<SessionRecord>>>;

    /// Replaces the record if it is still at `expected`.
    ///
    /// [`crate::Error::Conflict`] when it changed since (re-read and retry);
    /// [`crate::Error::NotFound`] when it is gone.
    async fn update(&self, record: &SessionRecord, expected: Revision) -> Result<Revision>;

    /// Writes `delta` if the record is still at `expected`, as
    /// [`SessionStore::update`] would write [`SessionDelta::to_record`]: the
    /// same compare-and-swap, errors, claim release and fencing. A store
    /// that keeps nodes apart writes the header and the changed nodes only,
    /// in one transaction (or, where one is too small for them, in several
    /// whose last moves the revision, so a reader never sees half a write);
    /// the default writes the whole record.
    async fn update_delta(&self, delta: &SessionDelta<'_>, expected: Revision) -> Result<Revision> {
        self.update(&delta.to_record(), expected).await
    }

    /// Removes the record if it is still at `expected`.
    ///
    /// [`crate::Error::Conflict`] when it changed since; removing a record that
    /// is already gone succeeds.
    async fn delete(&self, upgrade_id: Uuid, expected: Revision) -> Result<()>;

    /// The operator's requests of session `upgrade_id` with the record's
    /// revision, if it exists: what the controller re-reads at each command
    /// poll, which a store that keeps nodes apart answers without reading
    /// them. The default reads the whole record.
    async fn get_desired(&self, upgrade_id: Uuid) -> Result<Option<Versioned<Desired>>> {
        Ok(self.get(upgrade_id).await?.map(|record| Versioned {
            value: record.value.desired,
            revision: record.revision,
        }))
    }

    /// A page of session `upgrade_id`'s nodes: at most `limit` of them,
    /// in the session's order, after the node `after` names (from the
    /// first without it); `None` when the session does not exist. A store
    /// that keeps nodes apart reads the page's nodes alone. The default
    /// reads the whole record.
    async fn get_node_page(
        &self,
        upgrade_id: Uuid,
        after: Option<PageAfter<'_>>,
        limit: usize,
    ) -> Result<Option<PageRead>> {
        Ok(self
            .get(upgrade_id)
            .await?
            .map(|record| page_of(&record.value.rollout.nodes, after, limit)))
    }

    /// The session created by a request with idempotency key `key`
    /// ([`Desired::idempotency`]), if one was: read through the store's
    /// index of keys, so a creation with a key costs no scan of every
    /// record. The default scans every record, for stores without one.
    async fn session_by_idempotency_key(&self, key: &str) -> Result<Option<Uuid>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .find(|record| record.value.desired.idempotency_key() == Some(key))
            .map(|record| record.value.upgrade_id()))
    }

    /// Every record whose rollout has not finished
    /// ([`SessionRecord::is_finished`]), in no particular order: what a new
    /// session may overlap.
    async fn list_unfinished(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        let mut records = self.list().await?;
        records.retain(|record| !record.value.is_finished());
        Ok(records)
    }

    /// Stores a new record together with a claim on each of `nodes`, in one
    /// transaction: either the record and every claim are stored, or
    /// nothing is. `Ok(Err(NodesClaimed))` when a node is claimed by an
    /// unfinished session (naming it, with the nodes of `nodes` it holds);
    /// [`crate::Error::Conflict`] if the record's id exists.
    ///
    /// A session's claims are released by the write that stores it finished
    /// ([`SessionStore::update`] with a [`SessionRecord::is_finished`]
    /// record) or removes it ([`SessionStore::delete`]), in the same
    /// transaction. A claim whose holder is finished or gone (left by a
    /// writer that did not know claims) does not count, and is replaced.
    ///
    /// Two creations racing for one node on any number of processes: one
    /// is stored, the other is told who holds the node. The default refuses
    /// ([`crate::Error::NotSupported`]): a store that cannot do this in one
    /// transaction must not pretend to.
    async fn create_claiming(
        &self,
        record: &SessionRecord,
        nodes: &[NodeId],
    ) -> Result<std::result::Result<Revision, NodesClaimed>> {
        let _ = (record, nodes);
        Err(claims_not_supported())
    }

    /// Every node claimed by an unfinished session, with that session: the
    /// claims [`SessionStore::create_claiming`] would refuse to take.
    async fn claims(&self) -> Result<BTreeMap<NodeId, Uuid>> {
        Err(claims_not_supported())
    }

    /// Checks that the store would take a write now, changing no record:
    /// what readiness asks while writes fail, to learn when they succeed
    /// again without waiting for a session to write. The default answers
    /// `Ok` (a store whose writes cannot fail apart from its reads).
    async fn check_writable(&self) -> Result<()> {
        Ok(())
    }

    /// The server-wide options ([`ServerOptions`]) stored with
    /// [`SessionStore::put_options`], at the revision they were written;
    /// `None` while none were ever stored. The default answers `None`: a
    /// store that keeps no options has none.
    async fn get_options(&self) -> Result<Option<Versioned<ServerOptions>>> {
        Ok(None)
    }

    /// Stores the server-wide options if they are still at `expected`
    /// (`None`: none stored yet), returning their new revision, larger than
    /// any the store handed out before.
    ///
    /// [`crate::Error::Conflict`] when they changed since (re-read, merge
    /// and retry). The default refuses ([`crate::Error::NotSupported`]).
    async fn put_options(
        &self,
        options: &ServerOptions,
        expected: Option<Revision>,
    ) -> Result<Revision> {
        let _ = (options, expected);
        Err(crate::Error::NotSupported {
            backend: "session store",
            operation: "storing the server options",
        })
    }
}
