//! `Timers`: every due time of a rollout in one map, keyed by what is due.
//! A new kind of wake-up is one more [`Timer`]; when to wake is one walk
//! over the map ([`Timers::earliest`]), with the rule of which timers count
//! now given by the caller. Not persisted: after a restart every poll is
//! due at once and every refusal's delay is over, which is harmless since
//! every action is idempotent.

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
    /// The alert gates are asked again.
    GatePoll,
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

    /// The earliest due time among the timers `armed` says count now.
    pub(super) fn earliest(&self, armed: impl Fn(Timer) -> bool) -> Option<Timestamp> {
        self.due
            .iter()
            .filter(|(timer, _)| armed(**timer))
            .map(|(_, at)| *at)
            .min()
    }
}
