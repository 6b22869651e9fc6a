//! The etcd store's index of idempotency keys: a key
//! `<prefix>idempotency/<Idempotency-Key>` holding the id of the session
//! created with it, written in the creation's transaction and removed with
//! the session, so a creation with a key reads one key instead of every
//! session (issue 25).
//!
//! Sessions created by a release before the index have no index key: the
//! first lookup on a prefix without the marker key
//! `<prefix>idempotency-indexed` reads every session's header once (the
//! header alone, not its nodes), writes their index keys and the marker,
//! and every later lookup reads the index alone.

use etcd_client::{GetOptions, TxnOp};
use uuid::Uuid;

use crus_core::Result;
use crus_core::store::SessionRecord;

use super::error::from_etcd;
use super::{EtcdStore, decode};

impl EtcdStore {
    /// The index key of idempotency key `key`.
    pub(super) fn idempotency_index_key(&self, key: &str) -> String {
        format!("{}idempotency/{key}", self.prefix)
    }

    /// The key saying every session's idempotency key is in the index.
    fn idempotency_indexed_key(&self) -> String {
        format!("{}idempotency-indexed", self.prefix)
    }

    /// The index put a creation of `header` adds to its transaction, if the
    /// session was created with a key.
    pub(super) fn idempotency_put(&self, header: &SessionRecord) -> Option<TxnOp> {
        header.desired.idempotency_key().map(|key| {
            TxnOp::put(
                self.idempotency_index_key(key),
                header.upgrade_id().to_string(),
                None,
            )
        })
    }

    /// The session created with idempotency key `key`, through the index.
    /// An index key whose session is gone or has another key (a removal
    /// cut short) finds nothing.
    pub(super) async fn lookup_idempotency_key(&self, key: &str) -> Result<Option<Uuid>> {
        self.index_earlier_sessions().await?;
        let response = self
            .kv()
            .get(self.idempotency_index_key(key), None)
            .await
            .map_err(from_etcd)?;
        let Some(id) = response
            .kvs()
            .first()
            .and_then(|kv| std::str::from_utf8(kv.value()).ok())
            .and_then(|id| Uuid::parse_str(id).ok())
        else {
            return Ok(None);
        };
        let header = self.kv().get(self.key(id), None).await.map_err(from_etcd)?;
        match header.kvs().first() {
            Some(kv) => {
                let record = decode(kv.key(), kv.value())?;
                Ok((record.desired.idempotency_key() == Some(key)).then_some(id))
            }
            None => Ok(None),
        }
    }

    /// Writes the index keys of the sessions stored before the index, once
    /// per prefix (see the module's comment).
    async fn index_earlier_sessions(&self) -> Result<()> {
        let marker = self.idempotency_indexed_key();
        let indexed = self
            .kv()
            .get(marker.as_str(), Some(GetOptions::new().with_count_only()))
            .await
            .map_err(from_etcd)?;
        if indexed.count() > 0 {
            return Ok(());
        }
        let ids = self.session_ids().await?;
        for id in ids {
            let response = self.kv().get(self.key(id), None).await.map_err(from_etcd)?;
            let Some(kv) = response.kvs().first() else {
                continue;
            };
            let record = decode(kv.key(), kv.value())?;
            if let Some(put) = self.idempotency_put(&record) {
                self.kv()
                    .txn(etcd_client::Txn::new().and_then(vec![put]))
                    .await
                    .map_err(from_etcd)?;
            }
        }
        self.kv().put(marker, "1", None).await.map_err(from_etcd)?;
        Ok(())
    }
}
