//! `StoreHealth`: whether the session store accepts writes, as the last
//! write found it, so readiness probes, metrics and the API can say so while
//! a session waits for the store (reads alone cannot tell: a file made
//! read-only, or removed while open, still answers reads); and the statuses
//! of the sessions held back meanwhile, as they stand in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use crate::session::SessionStatus;

/// Whether the store took its last write, shared by everyone who writes
/// through a [`super::WatchedStore`] and everyone who reports on it.
#[derive(Debug)]
pub struct StoreHealth {
    /// Why the last write failed, while no write has succeeded since.
    failure: Mutex<Option<String>>,
    /// Writes the store refused since the process started.
    refused_writes: AtomicU64,
    /// The status of each session whose state the store refused to save,
    /// as the controller driving it holds it (halted, saying why). Kept
    /// here, not in that controller, because the API may be served by
    /// another controller of the process (a replica's store-only one,
    /// while its leadership term's controller drives the sessions).
    held: Mutex<HashMap<Uuid, SessionStatus>>,
    /// Counts the writes the store took: a session held back tries again
    /// as soon as the store takes any write (another session's, a readiness
    /// probe's), not only when its own backoff ends.
    writes_taken: tokio::sync::watch::Sender<u64>,
    /// The statuses another process holds back (the leader of several
    /// replicas, as it publishes them): what a follower shows of a session
    /// the leader's store refuses to save. Never set on the leader itself.
    relayed: Mutex<HashMap<Uuid, SessionStatus>>,
    /// Counts the changes of `held`, so the holds can be published to
    /// other processes as they change.
    held_changes: tokio::sync::watch::Sender<u64>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth {
            failure: Mutex::default(),
            refused_writes: AtomicU64::default(),
            held: Mutex::default(),
            writes_taken: tokio::sync::watch::Sender::new(0),
            relayed: Mutex::default(),
            held_changes: tokio::sync::watch::Sender::new(0),
        }
    }
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
        drop(failure);
        self.writes_taken
            .send_modify(|taken| *taken = taken.wrapping_add(1));
    }

    /// Told each time the store takes a write (see [`StoreHealth::write_succeeded`]).
    pub fn writes_taken(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writes_taken.subscribe()
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

    /// Notes that session `status.upgrade_id` is held back, unsaved, and
    /// stands as `status` in memory; what the API shows until [`StoreHealth::release`].
    pub fn hold(&self, status: SessionStatus) {
        let changed = self
            .held_statuses()
            .insert(status.upgrade_id, status.clone())
            != Some(status);
        if changed {
            self.told_held_changed();
        }
    }

    /// The store took session `upgrade_id`'s state, or its driving task
    /// ended: the API shows the stored status again.
    pub fn release(&self, upgrade_id: Uuid) {
        if self.held_statuses().remove(&upgrade_id).is_some() {
            self.told_held_changed();
        }
    }

    /// Forgets every held session (the tasks driving them were stopped).
    pub fn release_all(&self) {
        let mut held = self.held_statuses();
        let changed = !held.is_empty();
        held.clear();
        drop(held);
        if changed {
            self.told_held_changed();
        }
    }

    /// The status of session `upgrade_id`, while it is held back: by this
    /// process, or by the leader that relays its holds here.
    pub fn held(&self, upgrade_id: Uuid) -> Option<SessionStatus> {
        self.held_statuses()
            .get(&upgrade_id)
            .cloned()
            .or_else(|| self.relayed_statuses().get(&upgrade_id).cloned())
    }

    /// The statuses of every session held back now, by this process or by
    /// the leader that relays its holds here.
    pub fn held_all(&self) -> Vec<SessionStatus> {
        let mut all: HashMap<Uuid, SessionStatus> = self.relayed_statuses().clone();
        all.extend(
            self.held_statuses()
                .iter()
                .map(|(id, status)| (*id, status.clone())),
        );
        all.into_values().collect()
    }

    /// The statuses this process holds back itself: what a leader publishes.
    pub fn held_here(&self) -> Vec<SessionStatus> {
        self.held_statuses().values().cloned().collect()
    }

    /// Told each time the statuses this process holds back change.
    pub fn held_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.held_changes.subscribe()
    }

    /// Replaces the statuses another process (the leader) holds back, as it
    /// published them; empty when it holds none, or when this process leads.
    pub fn set_relayed(&self, statuses: Vec<SessionStatus>) {
        *self.relayed_statuses() = statuses
            .into_iter()
            .map(|status| (status.upgrade_id, status))
            .collect();
    }

    fn told_held_changed(&self) {
        self.held_changes
            .send_modify(|changes| *changes = changes.wrapping_add(1));
    }

    fn relayed_statuses(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, SessionStatus>> {
        // Replaced whole: a panic elsewhere cannot leave it half-set.
        self.relayed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn held_statuses(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, SessionStatus>> {
        // Single inserts and removes: a panic elsewhere cannot leave it inconsistent.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    fn relayed_holds_show_beside_this_process_own_and_are_not_published_again() {
        let health = StoreHealth::new();
        let changes = health.held_changes();
        let spec = crate::session::SessionSpec {
            failed_label: "failed".into(),
            starting_label: "compute".into(),
            upgrade_step_size: 2,
            upgrade_template_id: "image".into(),
            upgrading_label: "upgrading".into(),
            workload_manager_type: "slurm".into(),
            policy: None,
        };
        let status = |id| SessionStatus::created(id, &spec);
        let mine = status(Uuid::new_v4());
        let leaders = status(Uuid::new_v4());
        health.set_relayed(vec![leaders.clone()]);
        assert!(!changes.has_changed().unwrap());
        assert_eq!(health.held(leaders.upgrade_id), Some(leaders.clone()));
        health.hold(mine.clone());
        assert!(changes.has_changed().unwrap());
        assert_eq!(health.held_all().len(), 2);
        assert_eq!(health.held_here(), vec![mine.clone()]);
        health.set_relayed(Vec::new());
        assert_eq!(health.held(leaders.upgrade_id), None);
        health.release(mine.upgrade_id);
        assert!(health.held_all().is_empty());
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
