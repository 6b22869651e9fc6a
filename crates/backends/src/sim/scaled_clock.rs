//! `ScaledClock`: simulated time running `speed` times faster than the wall
//! clock (`crus serve --sim --sim-speed S`), and able to continue a saved
//! simulation after a process restart as if the simulated cluster had kept
//! running meanwhile, as a real one does.
//!
//! All the arithmetic between wall time and simulated time is here: [`scale`]
//! turns wall durations into simulated ones and [`continue_from`] places a
//! restarted simulation in time.

use std::time::Duration;

use crus_core::clock::Clock;
use crus_core::{Error, Timestamp};

/// Simulated time that advances `speed` simulated seconds per wall second.
///
/// Within a process it is measured on tokio's monotonic clock (the wall
/// clock in production; pausable in tests), so changes of the system time
/// never move it back. Across processes, [`ScaledClock::resuming`] continues
/// from a saved (simulated time, wall time) pair.
///
/// ```
/// use crus_backends::sim::ScaledClock;
/// use crus_core::Timestamp;
/// use crus_core::clock::Clock;
///
/// let clock = ScaledClock::new(Timestamp::from_secs(1_800_000_000), 600.0)?;
/// assert!(clock.now() >= Timestamp::from_secs(1_800_000_000));
/// // Ten simulated minutes pass in one wall second.
/// assert_eq!(clock.wall_duration(std::time::Duration::from_secs(600)).as_secs(), 1);
/// # Ok::<(), crus_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    /// The simulated time at `origin`.
    origin_sim: Timestamp,
    /// When (in tokio's monotonic time) the simulated time was `origin_sim`.
    origin: tokio::time::Instant,
    /// Simulated seconds per wall second; finite and above 0.
    speed: f64,
}

impl ScaledClock {
    /// A clock that reads `start` now and runs `speed` times faster than the
    /// wall clock.
    ///
    /// [`Error::Invalid`] unless `speed` is a finite number above 0.
    pub fn new(start: Timestamp, speed: f64) -> crus_core::Result<Self> {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(Error::invalid(format!(
                "the simulation speed must be a positive number of simulated seconds per wall second, not {speed}"
            )));
        }
        Ok(ScaledClock {
            origin_sim: start,
            origin: tokio::time::Instant::now(),
            speed,
        })
    }

    /// A clock continuing a simulation that was at simulated time
    /// `saved_sim` at wall time `saved_wall` (when it was last saved): it
    /// reads `saved_sim` plus the wall time since `saved_wall` times `speed`.
    ///
    /// So a process killed at wall time T and restarted at T + 5 s continues
    /// at the saved time + 5 s × `speed`. The wall time between the runs is
    /// scaled by this run's `speed`; if the wall clock is now before
    /// `saved_wall` (it was set back), no time has passed.
    ///
    /// [`Error::Invalid`] unless `speed` is a finite number above 0.
    pub fn resuming(
        saved_sim: Timestamp,
        saved_wall: Timestamp,
        speed: f64,
    ) -> crus_core::Result<Self> {
        // Validated before it is used to scale anything.
        let clock = ScaledClock::new(saved_sim, speed)?;
        Ok(ScaledClock {
            origin_sim: continue_from(saved_sim, saved_wall, Timestamp::now(), speed),
            ..clock
        })
    }

    /// Simulated seconds per wall second.
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        self.origin_sim + scale(self.origin.elapsed(), self.speed)
    }

    fn wall_duration(&self, duration: Duration) -> Duration {
        scale(duration, 1.0 / self.speed)
    }
}

/// `duration` times `factor` (finite, above 0), saturating instead of
/// panicking as `Duration::mul_f64` would on overflow.
fn scale(duration: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(duration.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// The simulated time at wall time `wall_now` of a simulation that was at
/// `saved_sim` at wall time `saved_wall` and runs `speed` times faster than
/// the wall clock. A wall clock set back before `saved_wall` counts as no
/// time passed: simulated time never goes back.
fn continue_from(
    saved_sim: Timestamp,
    saved_wall: Timestamp,
    wall_now: Timestamp,
    speed: f64,
) -> Timestamp {
    saved_sim + scale(wall_now.saturating_since(saved_wall), speed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIM: Timestamp = Timestamp::from_secs(1_700_000_000);
    const WALL: Timestamp = Timestamp::from_secs(1_800_000_000);

    #[test]
    fn a_restart_continues_after_the_scaled_wall_time_that_passed() {
        let restarted = WALL + Duration::from_secs(5);
        assert_eq!(
            continue_from(SIM, WALL, restarted, 60.0),
            SIM + Duration::from_secs(300)
        );
        assert_eq!(
            continue_from(SIM, WALL, WALL + Duration::from_millis(1500), 0.5),
            SIM + Duration::from_millis(750)
        );
        // The wall clock was set back: the simulation resumes where it stopped.
        assert_eq!(
            continue_from(SIM, WALL, WALL - Duration::from_secs(3600), 60.0),
            SIM
        );
    }

    #[test]
    fn resuming_uses_the_saved_wall_time() {
        let saved_wall = Timestamp::now() - Duration::from_secs(5);
        let clock = ScaledClock::resuming(SIM, saved_wall, 60.0).unwrap();
        let now = clock.now();
        // 5 s × 60 have passed, plus the little time this test took.
        assert!(now >= SIM + Duration::from_secs(300), "{now}");
        assert!(now < SIM + Duration::from_secs(360), "{now}");
    }

    #[tokio::test(start_paused = true)]
    async fn runs_speed_times_faster_than_tokio_time() {
        let clock = ScaledClock::new(SIM, 600.0).unwrap();
        assert_eq!(clock.now(), SIM);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(clock.now(), SIM + Duration::from_secs(1200));
        assert_eq!(
            clock.wall_duration(Duration::from_secs(60)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn speeds_must_be_positive_and_finite() {
        for speed in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let error = ScaledClock::new(SIM, speed).unwrap_err();
            assert!(matches!(error, Error::Invalid { .. }), "{speed}: {error}");
            assert!(ScaledClock::resuming(SIM, WALL, speed).is_err(), "{speed}");
        }
        assert_eq!(ScaledClock::new(SIM, 1e-3).unwrap().speed(), 1e-3);
    }

    #[test]
    fn huge_scales_saturate() {
        assert_eq!(scale(Duration::MAX, 1e12), Duration::MAX);
        let clock = ScaledClock::new(SIM, 1e300).unwrap();
        assert!(clock.now() >= SIM);
    }
}
