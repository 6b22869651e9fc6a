//! The leader's store holds, published for the followers: while the
//! leader's store refuses to save sessions, their statuses (halted, saying
//! why) live in the leader's memory only, and a follower, which serves reads
//! from etcd, would show them running. So the leader writes them to one key,
//! `<prefix>held`, on its lease (gone with the leader), fenced like its
//! other writes, and removes it when it holds nothing; followers read it and
//! show those statuses instead of the stored ones.
//!
//! A small key of its own: a session whose record etcd refuses (too large)
//! still has its hold published. When etcd refuses every write (its space
//! quota exhausted), this key cannot be written either; then a follower
//! shows the stored status, and the leader's `/readyz` says why it is not ready.

use etcd_client::{PutOptions, TxnOp};

use crus_core::Result;
use crus_core::session::SessionStatus;

use super::EtcdStore;
use super::error::{EtcdError, from_etcd};

impl EtcdStore {
    /// The key of the published holds.
    pub fn held_key(&self) -> String {
        format!("{}held", self.prefix)
    }

    /// Publishes `statuses` (the sessions this leader holds back) on
    /// `lease`, fenced when the store is; none removes the key.
    pub async fn publish_held(&self, statuses: &[SessionStatus], lease: i64) -> Result<()> {
        let key = self.held_key();
        let then = if statuses.is_empty() {
            TxnOp::delete(key.as_str(), None)
        } else {
            let value = serde_json::to_vec(statuses).map_err(EtcdError::Encode)?;
            TxnOp::put(
                key.as_str(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )
        };
        self.checked_all(&key, Vec::new(), vec![then])
            .await
            .map(|_written| ())
    }

    /// The statuses the leader holds back, as it published them.
    pub async fn read_held(&self) -> Result<Vec<SessionStatus>> {
        let response = self
            .kv()
            .get(self.held_key(), None)
            .await
            .map_err(from_etcd)?;
        match response.kvs().first() {
            Some(kv) => serde_json::from_slice(kv.value()).map_err(|source| {
                EtcdError::Damaged {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    source,
                }
                .into()
            }),
            None => Ok(Vec::new()),
        }
    }
}
