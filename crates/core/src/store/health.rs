//! `StoreHealth`: whether the session store accepts writes, as the last
//! write found it, so readiness probes, metrics and the API can say so while
//! a session waits for the store (reads alone cannot tell: a file made
//! read-only, or removed while open, still answers reads).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether the store took its last write, shared by everyone who writes
/// through a [`super::WatchedStore`] and everyone who reports on it.
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// Why the last write failed, while no write has succeeded since.
    failure: Mutex<Option<String>>,
    /// Writes the store refused since the process started.
    refused_writes: AtomicU64,
}

impl StoreHealth {
    /// A store not known to fail.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that a write was committed: the store takes writes again.
    pub fn write_succeeded(&self) {
        let mut failure = self.lock();
        if let Some(reason) = failure.take() {
            tracing::info!(previous_failure = %reason, "the session store takes writes again");
        }
    }

    /// Notes that the store refused a write, and why.
    pub fn write_failed(&self, reason: String) {
        self.refused_writes.fetch_add(1, Ordering::Relaxed);
        let mut failure = self.lock();
        if failure.is_none() {
            tracing::error!(%reason, "the session store refuses writes");
        }
        *failure = Some(reason);
    }

    /// Why the store refuses writes, if its last write failed.
    pub fn failure(&self) -> Option<String> {
        self.lock().clone()
    }

    /// How many writes the store refused since the process started.
    pub fn refused_writes(&self) -> u64 {
        self.refused_writes.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // One value replaced whole: a panic elsewhere cannot leave it half-set.
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `error`, from a store write, means the store itself failed (as
/// opposed to the write's own outcome: a lost compare-and-swap, a missing
/// record, a request the store rejects).
pub fn is_store_failure(error: &crate::Error) -> bool {
    !matches!(
        error,
        crate::Error::Conflict { .. }
            | crate::Error::NotFound { .. }
            | crate::Error::Invalid { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_lasts_until_a_write_succeeds() {
        let health = StoreHealth::new();
        assert_eq!(health.failure(), None);
        health.write_failed("disk I/O error".to_string());
        health.write_failed("disk I/O error again".to_string());
        assert_eq!(health.failure().as_deref(), Some("disk I/O error again"));
        assert_eq!(health.refused_writes(), 2);
        health.write_succeeded();
        assert_eq!(health.failure(), None);
        assert_eq!(health.refused_writes(), 2);
    }

    #[test]
    fn lost_races_and_missing_records_are_not_store_failures() {
        assert!(!is_store_failure(&crate::Error::conflict("changed")));
        assert!(!is_store_failure(&crate::Error::not_found("session")));
        assert!(is_store_failure(&crate::Error::unavailable(
            "sqlite", "busy"
        )));
        assert!(is_store_failure(&crate::Error::Other {
            backend: "sqlite",
            source: "disk I/O error".into(),
        }));
    }
}
