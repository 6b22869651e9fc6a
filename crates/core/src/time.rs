//! Points in time as plain data, so the rollout state machine can be given `now`
//! instead of reading a clock (it must stay deterministic and replayable).

use std::fmt;
use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch.
///
/// Serialised as an RFC 3339 string (`2026-11-23T18:40:00.000Z`) so stored
/// records and API answers stay readable by people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch itself.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// A timestamp `seconds` seconds after the Unix epoch.
    pub const fn from_secs(seconds: i64) -> Self {
        Timestamp(seconds.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch.
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// The wall clock's current time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_millis(duration)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_millis(duration)))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(duration_millis(after)),
            Err(before) => Timestamp(-duration_millis(before.duration())),
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(time: Timestamp) -> Self {
        if time.0 >= 0 {
            UNIX_EPOCH + Duration::from_millis(time.0.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_millis(time.0.unsigned_abs())
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            // humantime only formats times after the epoch; such times only appear in
            // hand-made test data, so a plain number is good enough.
            return write!(formatter, "{}ms", self.0);
        }
        write!(
            formatter,
            "{}",
            humantime::format_rfc3339_millis(SystemTime::from(*self))
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if let Some(millis) = text.strip_suffix("ms") {
            return millis
                .parse::<i64>()
                .map(Timestamp)
                .map_err(serde::de::Error::custom);
        }
        humantime::parse_rfc3339_weak(&text)
            .map(Timestamp::from)
            .map_err(|error| {
                serde::de::Error::custom(format!("invalid timestamp {text:?}: {error}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let time = Timestamp::from_millis(1_795_000_000_123);
        let json = serde_json::to_string(&time).unwrap();
        assert_eq!(json, "\"2026-11-18T11:06:40.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), time);
    }

    #[test]
    fn arithmetic_saturates() {
        let time = Timestamp::from_secs(10);
        assert_eq!((time + Duration::from_secs(5)).as_secs(), 15);
        assert_eq!(
            time.saturating_since(Timestamp::from_secs(20)),
            Duration::ZERO
        );
        assert_eq!(
            Timestamp::from_secs(20).saturating_since(time),
            Duration::from_secs(10)
        );
    }
}
