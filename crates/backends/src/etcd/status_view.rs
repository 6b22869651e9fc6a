//! The etcd store's [`StatusView`]: statuses decoded from the records read
//! from etcd. A replica's API reads them from the cluster, so every replica
//! answers what the leader wrote last.

use async_trait::async_trait;
use crus_core::Result;
use crus_core::store::{StatusView, status_of_stored, statuses_of_stored};
use uuid::Uuid;

use super::EtcdStore;

#[async_trait]
impl StatusView for EtcdStore {
    async fn get_status(&self, upgrade_id: Uuid) -> Result<Option<String>> {
        status_of_stored(self, upgrade_id).await
    }

    async fn list_statuses(&self) -> Result<Vec<String>> {
        statuses_of_stored(self).await
    }
}
