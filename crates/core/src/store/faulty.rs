//! `FaultyStore`: a [`SessionStore`] decorator that refuses writes on demand
//! (switched on and off, or a seeded fraction of them), as a disk made
//! read-only or a database that lost its quorum would: for tests of what the
//! controller and the API do when the store fails, and for the simulator's
//! `--sim-store-fault-rate`.
//!
//! Reads always pass: the failures crus must survive (an immutable file, a
//! file removed while open, a fenced etcd write) leave reads working.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use uuid::Uuid;

use super::{Revision, SessionRecord, SessionStore, Versioned};
use crate::error::{Error, Result};

/// The backend name of the errors it makes up.
const BACKEND: &str = "faulty store";

/// `inner`, refusing writes while switched to fail, and a fraction of the
/// others at random (deterministically, from a seed).
pub struct FaultyStore {
    inner: Arc<dyn SessionStore>,
    /// Whether every write fails now.
    failing: AtomicBool,
    /// The share of writes that fail while not switched to fail, in millionths.
    rate_ppm: u64,
    /// The state of the random sequence deciding which writes fail.
    random: Mutex<u64>,
    /// Writes refused so far.
    refused: AtomicU64,
    /// Writes let through so far.
    passed: AtomicU64,
}

impl FaultyStore {
    /// `inner`, failing no write until told to.
    pub fn new(inner: Arc<dyn SessionStore>) -> Self {
        Self::with_fault_rate(inner, 0.0, 0)
    }

    /// `inner`, failing about `rate` (0 to 1, clamped) of its writes, the
    /// same ones for the same `seed`.
    pub fn with_fault_rate(inner: Arc<dyn SessionStore>, rate: f64, seed: u64) -> Self {
        let rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        FaultyStore {
            inner,
            failing: AtomicBool::new(false),
            // Exact enough for a fraction of writes; the cast cannot overflow.
            rate_ppm: (rate * 1_000_000.0).round() as u64,
            random: Mutex::new(seed),
            refused: AtomicU64::new(0),
            passed: AtomicU64::new(0),
        }
    }

    /// Makes every write fail from now on, until [`FaultyStore::heal`].
    pub fn fail_writes(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }

    /// Lets writes through again (still failing the configured fraction).
    pub fn heal(&self) {
        self.failing.store(false, Ordering::SeqCst);
    }

    /// How many writes were refused so far.
    pub fn refused_writes(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// How many writes were let through so far.
    pub fn passed_writes(&self) -> u64 {
        self.passed.load(Ordering::SeqCst)
    }

    /// `Ok` if this write may go through, the made-up failure otherwise.
    fn admit(&self) -> Result<()> {
        let refuse = self.failing.load(Ordering::SeqCst) || self.draw_fault();
        if refuse {
            self.refused.fetch_add(1, Ordering::SeqCst);
            Err(Error::Other {
                backend: BACKEND,
                source: "injected write failure (disk I/O error)".into(),
            })
        } else {
            self.passed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// Whether the next write is one of the random failures (splitmix64).
    fn draw_fault(&self) -> bool {
        if self.rate_ppm == 0 {
            return false;
        }
        let mut state = self
            .random
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = *state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^= mixed >> 31;
        mixed % 1_000_000 < self.rate_ppm
    }
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultyStore")
            .field("failing", &self.failing)
            .field("rate_ppm", &self.rate_ppm)
            .field("refused", &self.refused)
            .field("passed", &self.passed)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionStore for FaultyStore {
    async fn create(&self, record: &SessionRecord) -> Result<Revision> {
        self.admit()?;
        self.inner.create(record).await
    }

    async fn get(&self, upgrade_id: Uuid) -> Result<Option<Versioned<SessionRecord>>> {
        self.inner.get(upgrade_id).await
    }

    async fn list(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        self.inner.list().await
    }

    async fn update(&self, record: &SessionRecord, expected: Revision) -> Result<Revision> {
        self.admit()?;
        self.inner.update(record, expected).await
    }

    async fn update_delta(
        &self,
        delta: &super::SessionDelta<'_>,
        expected: Revision,
    ) -> Result<Revision> {
        self.admit()?;
        self.inner.update_delta(delta, expected).await
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
        self.admit()?;
        self.inner.delete(upgrade_id, expected).await
    }

    async fn list_unfinished(&self) -> Result<Vec<Versioned<SessionRecord>>> {
        self.inner.list_unfinished().await
    }

    async fn session_by_idempotency_key(&self, key: &str) -> Result<Option<Uuid>> {
        self.inner.session_by_idempotency_key(key).await
    }

    async fn check_writable(&self) -> Result<()> {
        // A write like any other: refused as often.
        self.admit()?;
        self.inner.check_writable().await
    }

    async fn create_claiming(
        &self,
        record: &SessionRecord,
        nodes: &[crate::node::NodeId],
    ) -> Result<std::result::Result<Revision, super::NodesClaimed>> {
        self.admit()?;
        self.inner.create_claiming(record, nodes).await
    }

    async fn claims(&self) -> Result<std::collections::BTreeMap<crate::node::NodeId, Uuid>> {
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
        self.admit()?;
        self.inner.put_options(options, expected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn a_rate_fails_about_that_share_of_writes_the_same_way_for_a_seed() {
        let draws = |seed| {
            let store = FaultyStore::with_fault_rate(Arc::new(MemoryStore::new()), 0.25, seed);
            (0..10_000).map(|_| store.draw_fault()).collect::<Vec<_>>()
        };
        let first = draws(7);
        assert_eq!(first, draws(7));
        let failed = first.iter().filter(|failed| **failed).count();
        assert!((2_200..2_800).contains(&failed), "{failed} of 10000 failed");
        let none = FaultyStore::new(Arc::new(MemoryStore::new()));
        assert!((0..1000).all(|_| !none.draw_fault()));
    }
}
