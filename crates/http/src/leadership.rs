//! `Leadership`: whether this replica leads, for `/readyz` and `/metrics`.
//!
//! With SQLite there is one replica and it always leads. With etcd every
//! replica serves the API and only the leader drives sessions; the replica's
//! election loop tells this value when its role changes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// This replica's role, and how often it changed.
#[derive(Debug)]
pub struct Leadership {
    /// Whether this replica leads now.
    leader: AtomicBool,
    /// How many times it became or stopped being the leader.
    changes: AtomicU64,
}

impl Leadership {
    /// The only replica: it leads, always.
    pub fn single() -> Self {
        Leadership {
            leader: AtomicBool::new(true),
            changes: AtomicU64::new(0),
        }
    }

    /// One replica of several, not leading until its election says so.
    pub fn follower() -> Self {
        Leadership {
            leader: AtomicBool::new(false),
            changes: AtomicU64::new(0),
        }
    }

    /// Records the role; a change of role is counted.
    pub fn set_leader(&self, leader: bool) {
        if self.leader.swap(leader, Ordering::SeqCst) != leader {
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// `leader` or `follower`, as `/readyz` says it.
    pub fn role(&self) -> &'static str {
        if self.is_leader() {
            "leader"
        } else {
            "follower"
        }
    }

    /// How many times the role changed since the start.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }
}

impl Default for Leadership {
    fn default() -> Self {
        Leadership::single()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_of_role_are_counted() {
        let leadership = Leadership::follower();
        assert_eq!(leadership.role(), "follower");
        leadership.set_leader(false);
        leadership.set_leader(true);
        leadership.set_leader(true);
        assert_eq!(leadership.role(), "leader");
        leadership.set_leader(false);
        assert_eq!(leadership.changes(), 2);
        assert_eq!(Leadership::single().role(), "leader");
    }
}
