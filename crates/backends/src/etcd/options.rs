//! The server-wide options in etcd: one key, `<prefix>options`, holding
//! them as JSON. Written in a transaction comparing the key's revision (and
//! the leader fence, on a fenced store), so two replicas changing options at
//! once cannot both win; read by every replica.

use etcd_client::{Compare, CompareOp, TxnOp};

use crus_core::Result;
use crus_core::options::ServerOptions;
use crus_core::store::{Revision, Versioned};

use super::error::{EtcdError, from_etcd};
use super::{EtcdStore, Lost, etcd_revision, revision};

impl EtcdStore {
    /// The key of the server-wide options.
    pub fn options_key(&self) -> String {
        format!("{}options", self.prefix)
    }

    /// The stored options, if any were stored.
    pub(super) async fn read_options(&self) -> Result<Option<Versioned<ServerOptions>>> {
        let response = self
            .kv()
            .get(self.options_key(), None)
            .await
            .map_err(from_etcd)?;
        let Some(kv) = response.kvs().first() else {
            return Ok(None);
        };
        let value = serde_json::from_slice(kv.value()).map_err(|source| EtcdError::Damaged {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            source,
        })?;
        Ok(Some(Versioned {
            value,
            revision: revision(kv.mod_revision()),
        }))
    }

    /// Stores the options if they are still at `expected` (`None`: never stored).
    pub(super) async fn write_options(
        &self,
        options: &ServerOptions,
        expected: Option<Revision>,
    ) -> Result<Revision> {
        let key = self.options_key();
        let value = serde_json::to_vec(options).map_err(EtcdError::Encode)?;
        let compare = match expected {
            None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
            Some(expected) => {
                Compare::mod_revision(key.clone(), CompareOp::Equal, etcd_revision(expected))
            }
        };
        match self
            .checked(&key, compare, vec![TxnOp::put(key.clone(), value, None)])
            .await?
        {
            Ok(written) => Ok(revision(written)),
            Err(Lost { current }) => Err(crus_core::Error::conflict(format!(
                "the server options changed since they were read (revision {}, now {}); \
                 re-read them and retry",
                expected.map_or_else(|| "none".to_string(), |revision| revision.0.to_string()),
                current.map_or_else(|| "none".to_string(), |now| now.to_string()),
            ))),
        }
    }
}
