//! Leadership among `crus serve` replicas: a lease-bound leader key taken in
//! a transaction, kept alive while this replica lives, and the fenced store
//! whose every write requires that key to still be on this replica's lease.

use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, LeaseClient, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

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

    /// Waits until the lease is lost: etcd said it expired, or no keep-alive
    /// succeeded for a whole TTL (so it may have expired).
    pub async fn lost(&mut self) {
        while *self.held.borrow_and_update() {
            if self.held.changed().await.is_err() {
                return;
            }
        }
    }

    /// Gives leadership up now: stops the keep-alives and revokes the lease,
    /// so the leader key goes at once and another replica can take over
    /// without waiting for the TTL. Best effort, for at most `limit`: a lease
    /// that cannot be revoked (no quorum) expires by itself.
    pub async fn resign(self, limit: Duration) {
        self.keeper.abort();
        let mut lease_client = self.store.client().lease_client();
        match tokio::time::timeout(limit, lease_client.revoke(self.lease)).await {
            Ok(Ok(_)) => tracing::info!(lease = self.lease, "leadership given up"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not revoke the leader lease; it expires after its TTL");
            }
            Err(_) => tracing::warn!(
                "revoking the leader lease took over {limit:?}; it expires after its TTL"
            ),
        }
    }
}

/// Refreshes `lease` every `interval` and tells `held` when it is lost.
///
/// A failed refresh (the member serving the keep-alive stream went away, a
/// lost quorum) is not yet a lost lease: the stream is opened again, on any
/// member, until a whole `ttl` has passed since the last refresh etcd
/// acknowledged. Only then, or when etcd answers that the lease is gone, is
/// `false` sent. The time of a refresh is taken before it is sent, so this
/// replica never believes in a lease etcd has already dropped.
async fn keep_lease_alive(
    mut lease_client: LeaseClient,
    lease: i64,
    granted_at: Instant,
    ttl: Duration,
    interval: Duration,
    held: watch::Sender<bool>,
) {
    let mut refreshed = granted_at;
    let mut stream: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
    loop {
        let deadline = refreshed + ttl;
        if Instant::now() >= deadline {
            tracing::warn!(
                lease,
                "no keep-alive of the leader lease succeeded for {ttl:?}: leadership lost"
            );
            let _ = held.send(false);
            return;
        }
        let asked_at = Instant::now();
        let answer = tokio::time::timeout_at(deadline, async {
            if let Some((keeper, responses)) = stream.as_mut() {
                keeper.keep_alive().await?;
                return responses.message().await.map(|message| message.map(Some));
            }
            // Opening a stream sends a first keep-alive and reads its answer
            // (an error if the lease is gone).
            let (keeper, responses) = lease_client.keep_alive(lease).await?;
            stream = Some((keeper, responses));
            Ok(Some(None))
        })
        .await;
        let ttl_left = match answer {
            Ok(Ok(Some(Some(response)))) => Some(response.ttl()),
            // Just opened: acknowledged, with a TTL above zero.
            Ok(Ok(Some(None))) => Some(1),
            Ok(Ok(None)) => None,
            Ok(Err(error)) => {
                tracing::warn!(%error, lease, "keep-alive of the leader lease failed; retrying");
                None
            }
            Err(_) => None,
        };
        match ttl_left {
            Some(left) if left > 0 => {
                refreshed = asked_at;
                tokio::time::sleep(interval).await;
            }
            Some(_) => {
                tracing::warn!(lease, "etcd says the leader lease expired: leadership lost");
                let _ = held.send(false);
                return;
            }
            None => {
                // Open a new stream (possibly to another member) next time.
                stream = None;
                tokio::time::sleep((interval / 4).max(Duration::from_millis(50))).await;
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
        // Taken before asking: the lease lives at least its TTL from here.
        let granted_at = Instant::now();
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
            .kv()
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
        let keeper = tokio::spawn(keep_lease_alive(
            lease_client,
            lease,
            granted_at,
            // etcd leases count whole seconds: the TTL granted, not the one asked.
            Duration::from_secs(self.ttl.as_secs().max(1)),
            self.keep_alive,
            sender,
        ));
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
            .kv()
            .get(self.key(), None)
            .await
            .map_err(from_etcd)?;
        Ok(response
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }
}
