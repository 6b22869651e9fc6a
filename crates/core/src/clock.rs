//! Where the controller gets `now` from and how it waits.
//!
//! The rollout state machine never reads a clock; the controller asks a [`Clock`]
//! and passes the answer in. Tests and the simulator use [`TokioClock`], whose
//! time follows tokio's (pausable, auto-advancing) clock, so a whole upgrade of
//! hundreds of nodes runs in virtual time.

use std::fmt::Debug;
use std::time::Duration;

use crate::time::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// How long to wait in tokio time for `duration` to pass on this clock.
    /// The identity, except for clocks that run faster than the wall clock
    /// (a simulated cluster at `--sim-speed 600` waits 10 simulated seconds in
    /// 1/60 s).
    fn wall_duration(&self, duration: Duration) -> Duration {
        duration
    }
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Time measured by tokio's clock, counted from a chosen starting timestamp.
///
/// Under `tokio::time::pause()` (or a runtime built with `start_paused`) tokio
/// advances time by itself whenever every task is waiting, so sleeps cost no
/// wall time and the run is deterministic on a current-thread runtime.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    /// The timestamp that `started` corresponds to.
    epoch: Timestamp,
    /// The tokio instant at which the clock was made.
    started: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `epoch` now and advances with tokio's time.
    pub fn starting_at(epoch: Timestamp) -> Self {
        TokioClock {
            epoch,
            started: tokio::time::Instant::now(),
        }
    }

    /// How long, in tokio time, until `deadline`.
    pub fn until(&self, deadline: Timestamp) -> Duration {
        deadline.saturating_since(self.now())
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.epoch + self.started.elapsed()
    }
}
