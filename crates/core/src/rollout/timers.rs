//! `Timers`: every due time of a rollout in one map, keyed by what is due.
//! A new kind of wake-up is one more [`Timer`]; when to wake is one walk
//! over the map ([`Timers::earliest`]), with the rule of which timers count
//! now given by the caller. No due time is worked out anywhere else: one
//! that follows from the state (a node due back from its boot, a drain's
//! timeout, a hold's `max_hold`) is set where that state changes and
//! cleared when it no longer applies (`state_timers.rs`).
//!
//! Not persisted. After a restart every poll is due at once and every
//! refusal's delay is over, which is harmless since every action is
//! idempotent; the due times that follow from the state are rebuilt from
//! it, in one place ([`Rollout::arm_timers_from_state`]).
//!
//! [`Rollout::arm_timers_from_state`]: super::Rollout::arm_timers_from_state

use std::collections::BTreeMap;

use crate::time::Timestamp;

/// What is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Timer {
    /// A refused session-level action (or the start of a step's boot) may be
    /// tried again.
    SessionRetry,
    /// The workload manager is asked again about the nodes being watched.
    WorkloadPoll,
    /// The boot orchestrator is asked again about boot `boot` of `step`.
    BootPoll {
        /// The step.
        step: u32,
        /// Which of its boots.
        boot: u32,
    },
    /// A refused resume, drain or mark-failed of the node at this index may
    /// be tried again.
    NodeRetry(usize),
    /// The maintenance windows open, while nodes wait to be taken.
    WindowOpens,
    /// The nodes are looked at again while the session holds at its
    /// capacity floor (`min_available`).
    FloorCheck,
    /// Drained nodes waiting for the boot rate limit may be booted.
    BootRate,
    /// A refused weight read or setting (`steer_jobs`) may be tried again.
    WeightRetry,
    /// The raised weights are read back (`steer_jobs`), to set again any
    /// the workload manager lost.
    WeightCheck,
    /// A refused feature read or setting (`image_features`) may be tried again.
    FeatureRetry,
    /// The features set are read back (`image_features`), to set again any
    /// the workload manager lost.
    FeatureCheck,
    /// A refused reservation or its removal (`reserve_ahead`) may be tried again.
    ReserveRetry,
    /// The reservations set are read back (`reserve_ahead`), to set again
    /// any the workload manager lost.
    ReservationCheck,
    /// The alert gates are asked again.
    GatePoll,
    /// The node at this index, booting or verifying and not healthy yet, is
    /// due back: `boot_timeout` after its boot was acknowledged (after it
    /// was asked for, while unacknowledged), or after its power restart.
    /// Past it the node is power-restarted, booted again or failed.
    ComeBack(usize),
    /// The node at this index, drained by crus, reaches `drain_timeout`
    /// counted from its drain's ask, and `on_drain_timeout` acts on it.
    DrainTimeout(usize),
    /// The node at this index, held by someone else under
    /// `foreign_out_of_service: wait`, has waited `drain_timeout` for its
    /// owner: it is left alone.
    ForeignWait(usize),
    /// The gates' hold turns into a halt (`max_hold`).
    HoldExpires,
}

/// The due times, by timer.
#[derive(Debug, Clone, Default)]
pub(super) struct Timers {
    due: BTreeMap<Timer, Timestamp>,
}

impl Timers {
    /// Sets `timer` to fire at `at`, replacing any earlier setting.
    pub(super) fn set(&mut self, timer: Timer, at: Timestamp) {
        self.due.insert(timer, at);
    }

    /// Sets `timer` to `at`, or unsets it when nothing is due.
    pub(super) fn set_or_clear(&mut self, timer: Timer, at: Option<Timestamp>) {
        match at {
            Some(at) => self.set(timer, at),
            None => self.clear(timer),
        }
    }

    /// Sets `timer` to `at` if it is unset or due later.
    pub(super) fn bring_forward(&mut self, timer: Timer, at: Timestamp) {
        let due = self.due.entry(timer).or_insert(at);
        *due = (*due).min(at);
    }

    /// When `timer` fires, if it is set.
    pub(super) fn get(&self, timer: Timer) -> Option<Timestamp> {
        self.due.get(&timer).copied()
    }

    /// Whether `timer` is unset or has fired by `now`.
    pub(super) fn passed(&self, timer: Timer, now: Timestamp) -> bool {
        self.get(timer).is_none_or(|at| at <= now)
    }

    /// Unsets `timer`.
    pub(super) fn clear(&mut self, timer: Timer) {
        self.due.remove(&timer);
    }

    /// Unsets the timers `which` selects that have fired by `now`.
    pub(super) fn clear_passed(&mut self, now: Timestamp, which: impl Fn(Timer) -> bool) {
        self.due
            .retain(|&timer, &mut at| !(which(timer) && at <= now));
    }

    /// Moves every timer `which` selects by `change`.
    pub(super) fn reschedule(
        &mut self,
        which: impl Fn(Timer) -> bool,
        change: impl Fn(Timestamp) -> Timestamp,
    ) {
        for (_, at) in self.due.iter_mut().filter(|(timer, _)| which(**timer)) {
            *at = change(*at);
        }
    }

    /// Whether any of the timers `which` selects has fired by `now`.
    pub(super) fn any_due(&self, now: Timestamp, which: impl Fn(Timer) -> bool) -> bool {
        self.due
            .iter()
            .any(|(&timer, &at)| at <= now && which(timer))
    }

    /// The earliest due time among the timers `armed` says count now
    /// (given each timer and its due time).
    pub(super) fn earliest(&self, armed: impl Fn(Timer, Timestamp) -> bool) -> Option<Timestamp> {
        self.due
            .iter()
            .filter(|(timer, at)| armed(**timer, **at))
            .map(|(_, at)| *at)
            .min()
    }
}
