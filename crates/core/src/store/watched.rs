//! `WatchedStore`: a [`SessionStore`] decorator that tells a [`StoreHealth`]
//! whether each write was taken, so the server reports a store that refuses
//! writes (readiness, metrics) however it refuses them.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::health::{StoreHealth, is_store_failure};
use super::{NodesClaimed, Revision, SessionRecord, SessionStore, Versioned};
use crate::error::Result;
use crate::node::NodeId;

/// `inner`, with the outcome of every write (and write check) told to `health`.
#[derive(Debug, Clone)]
pub struct WatchedStore<S: ?Sized> {
    inner: Arc<S>,
    health: Arc<StoreHealth>,
}

impl<S: SessionStore + ?Sized> WatchedStore<S> {
    /// `inner`, reporting to `health`.
    pub fn new(inner: Arc<S>, health: Arc<StoreHealth>) -> Self {
        WatchedStore { inner, health }
    }

    /// Tells `health` how a write ended, and hands the result back.
    fn watch<T>(&self, result: Result<T>) -> Result<T> {
        match &result {
            Ok(_) => self.health.write_succeeded(),
            Err(error) if is_store_failure(error) => self.health.write_failed(error.to_string()),
            // The store answered: it works, the write lost a race or found nothing.
            Err(_) => self.health.write_succeeded(),
        }
        result
    }
}

#[async_trait]
impl<S: SessionStore + ?Sized> SessionStore for WatchedStore<S> {
    async fn create(&self, record: &SessionRecord) -> Result<Revision> {
        self.watch(self.inner.create(record).await)
    }

    async fn get(&self, upgrade_id: Uuid) -> Result<Option<Versioned<SessionRecord>>> {
        self.inner.get(upgrade_id).await
    }

    async fn list(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        self.inner.list().await
    }

    async fn update(&self, record: &SessionRecord, expected: Revision) -> Result<Revision> {
        self.watch(self.inner.update(record, expected).await)
    }

    async fn update_delta(
        &self,
        delta: &super::SessionDelta<'_>,
        expected: Revision,
    ) -> Result<Revision> {
        self.watch(self.inner.update_delta(delta, expected).await)
    }

    async fn get_desired(&self, upgrade_id: Uuid) -> Result<Option<Versioned<super::Desired>>> {
        self.inner.get_desired(upgrade_id).await
    }

    async fn get_node_page(
        &self,
        upgrade_id: Uuid,
        after: Option<super::PageAfter<'_>>,
        limit: usize,
    ) -> Result<Option<super::PageRead>> {
        self.inner.get_node_page(upgrade_id, after, limit).await
    }

    async fn delete(&self, upgrade_id: Uuid, expected: Revision) -> Result<()> {
        self.watch(self.inner.delete(upgrade_id, expected).await)
    }

    async fn list_unfinished(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        self.inner.list_unfinished().await
    }

    async fn session_by_idempotency_key(&self, key: &str) -> Result<Option<Uuid>> {
        self.inner.session_by_idempotency_key(key).await
    }

    async fn check_writable(&self) -> Result<()> {
        self.watch(self.inner.check_writable().await)
    }

    async fn create_claiming(
        &self,
        record: &SessionRecord,
        nodes: &[NodeId],
    ) -> Result<std::result::Result<Revision, NodesClaimed>> {
        self.watch(self.inner.create_claiming(record, nodes).await)
    }

    async fn claims(&self) -> Result<std::collections::BTreeMap<NodeId, Uuid>> {
        self.inner.claims().await
    }

    async fn get_options(&self) -> Result<Option<Versioned<crate::options::ServerOptions>>> {
        self.inner.get_options().await
    }

    async fn put_options(
        &self,
        options: &crate::options::ServerOptions,
        expected: Option<Revision>,
    ) -> Result<Revision> {
        self.watch(self.inner.put_options(options, expected).await)
    }
}
