//! Leadership among `crus serve` replicas: a lease-bound leader key taken in
//! a transaction, kept alive while this replica lives, and the fenced store
//! whose every write requires that key to still be on this replica's lease.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crus_core::Result;

use super::EtcdStore;
use super::error::from_etcd;

/// How a replica campaigns: who it is and how long its lease lives.
#[derive(Debug, Clone)]
pub struct Election {
    /// The shared store (unfenced).
    store: EtcdStore,
    /// This replica's name, stored as the leader key's value for operators.
    replica: String,
    /// Lease time to live: how long a dead leader keeps the key.
    ttl: Duration,
    /// How often the lease is refreshed; well under `ttl`.
    keep_alive: Duration,
}

/// Held while this replica leads; dropping it stops the keep-alives (the
/// lease then expires after its TTL, as when the process dies).
#[derive(Debug)]
pub struct Leader {
    /// The lease the leader key is bound to.
    lease: i64,
    /// The store fenced on that lease.
    store: EtcdStore,
    /// `true` while keep-alives succeed; `false` once the lease is lost.
    held: watch::Receiver<bool>,
    /// The keep-alive task.
    keeper: JoinHandle<()>,
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl Leader {
    /// The store to give the controllers: every write is fenced on the lease.
    pub fn store(&self) -> &EtcdStore {
        &self.store
    }

    /// The lease id.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// Whether the keep-alives still succeed. Fencing is what guarantees
    /// safety; this only tells the replica to stop its controllers early.
    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }

    /// Waits until the lease is lost (a keep-alive failed or found it expired).
    pub async fn lost(&mut self) {
        while *self.held.borrow_and_update() {
            if self.held.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Election {
    /// An election on `store`'s prefix for replica `replica`.
    pub fn new(
        store: EtcdStore,
        replica: impl Into<String>,
        ttl: Duration,
        keep_alive: Duration,
    ) -> Self {
        Self {
            store,
            replica: replica.into(),
            ttl,
            keep_alive,
        }
    }

    /// The leader key, `<prefix>leader`.
    pub fn key(&self) -> String {
        format!("{}leader", self.store.prefix())
    }

    /// Takes leadership if nobody holds it now; `None` when another replica does.
    pub async fn try_acquire(&self) -> Result<Option<Leader>> {
        let mut lease_client = self.store.client().lease_client();
        let ttl = i64::try_from(self.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let lease = lease_client.grant(ttl, None).await.map_err(from_etcd)?.id();
        let key = self.key();
        // The key exists only while some replica's lease keeps it.
        let txn = Txn::new()
            .when(vec![Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then(vec![TxnOp::put(
                key.clone(),
                self.replica.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let won = self
            .store
            .client()
            .kv_client()
            .txn(txn)
            .await
            .map_err(from_etcd)?
            .succeeded();
        if !won {
            // Best effort: an unused lease expires on its own anyway.
            let _ = lease_client.revoke(lease).await;
            return Ok(None);
        }
        let (sender, held) = watch::channel(true);
        let keep_alive = self.keep_alive;
        let keeper = tokio::spawn(async move {
            let Ok((mut keeper, mut responses)) = lease_client.keep_alive(lease).await else {
                let _ = sender.send(false);
                return;
            };
            loop {
                tokio::time::sleep(keep_alive).await;
                let alive = match keeper.keep_alive().await {
                    Ok(()) => {
                        matches!(responses.message().await, Ok(Some(response)) if response.ttl() > 0)
                    }
                    Err(_) => false,
                };
                if !alive {
                    let _ = sender.send(false);
                    return;
                }
            }
        });
        Ok(Some(Leader {
            lease,
            store: self.store.fenced(key, lease),
            held,
            keeper,
        }))
    }

    /// Campaigns until this replica leads: tries, and retries every
    /// `keep_alive` (also after store errors, which a lost quorum causes).
    pub async fn campaign(&self) -> Leader {
        loop {
            match self.try_acquire().await {
                Ok(Some(leader)) => return leader,
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "campaigning for leadership failed; retrying"),
            }
            tokio::time::sleep(self.keep_alive).await;
        }
    }

    /// The replica leading now, if any.
    pub async fn current_leader(&self) -> Result<Option<String>> {
        let response = self
            .store
            .client()
            .kv_client()
            .get(self.key(), None)
            .await
            .map_err(from_etcd)?;
        Ok(response
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }
}
