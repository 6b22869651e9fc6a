//! Maintenance windows: the weekly hours, in a site's own time zone, during
//! which a rollout may take new nodes out of service.
//!
//! A window is wall-clock time in its zone ("Fridays 22:00 to 06:00 in
//! Europe/Paris"), so it follows daylight saving time. The rollout state
//! machine asks about instants ([`Timestamp`]) and never reads a clock, which
//! keeps it deterministic.
//!
//! # Which instants a window covers
//!
//! A window opens on each of its `days` at `start` and closes at the next
//! `end`: on the same day when `end` is later than `start`, otherwise on the
//! following day (`start == end` is a 24-hour window). An opening belongs to
//! the day it starts on: a Friday 22:00–06:00 window is open on Saturday at
//! 03:00, but not on Friday at 03:00.
//!
//! Each local date and time is turned into an instant with the time zone
//! database bundled into the binary (so the answer does not depend on the
//! machine's `/usr/share/zoneinfo`), with two rules for the hours a daylight
//! saving change makes odd:
//!
//! - A time the clocks skip (02:30 on a spring-forward night in Europe) stands
//!   for the first instant after the skipped hour, 03:00 local time: the
//!   window opens or closes as soon as the wall clock is past that time. When
//!   both ends fall in the same skipped hour the window does not open that day.
//! - A time that happens twice (the hour repeated when clocks go back) stands
//!   for its first occurrence, so the window opens, or closes, as soon as the
//!   wall clock first shows that time.

use jiff::civil::Date;
use jiff::tz::{AmbiguousOffset, TimeZone};
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

mod calendar;

pub use calendar::{IanaTimeZone, TimeOfDay, Weekday, WindowParseError};

/// How many local days around an instant are searched for the window's next
/// opening: two weeks see every weekday twice, so an opening that a time zone
/// change swallows (a skipped day, both ends in a skipped hour) still leaves
/// the next week's.
const SEARCH_DAYS: usize = 16;

/// A weekly window in a time zone during which new nodes may be taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Days the window opens on, in its time zone; empty (or absent) means
    /// every day. An opening that runs past midnight belongs to the day it
    /// starts on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Weekday>,
    /// Local time the window opens, `HH:MM`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "22:00"))]
    pub start: TimeOfDay,
    /// Local time the window closes, `HH:MM`; not after `start` means the next
    /// day, equal to `start` a 24-hour window.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "06:00"))]
    pub end: TimeOfDay,
    /// IANA time zone the days and times are in.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, example = "Europe/Paris", default = "UTC")
    )]
    pub time_zone: IanaTimeZone,
}

impl MaintenanceWindow {
    /// Checks what the field types cannot: each day is listed once, so a typo
    /// such as `["sat", "sat"]` for `["sat", "sun"]` is caught.
    pub fn validate(&self) -> Result<(), String> {
        for (index, day) in self.days.iter().enumerate() {
            if self.days[..index].contains(day) {
                return Err(format!(
                    "day {:?} is listed more than once.",
                    day.short_name()
                ));
            }
        }
        Ok(())
    }

    /// Whether the window is open at `at`. Always false for an instant outside
    /// the years -9999 to 9999, where no calendar is defined.
    ///
    /// ```
    /// use crus_core::rollout::MaintenanceWindow;
    /// use crus_core::time::Timestamp;
    ///
    /// let window: MaintenanceWindow = serde_json::from_str(
    ///     r#"{"days": ["fri"], "start": "22:00", "end": "06:00", "time_zone": "Europe/Paris"}"#,
    /// )?;
    /// // Saturday 2026-06-13 at 03:00 in Paris (01:00 UTC) is inside Friday's opening.
    /// assert!(window.is_open(Timestamp::from_secs(1_781_312_400)));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn is_open(&self, at: Timestamp) -> bool {
        to_instant(at).is_some_and(|instant| self.opening_containing(instant).is_some())
    }

    /// `at` itself when the window is open then, otherwise the instant it
    /// next opens. `None` only when `at` is too far from today (outside the
    /// years -9999 to 9999) to have a calendar.
    pub fn next_opening(&self, at: Timestamp) -> Option<Timestamp> {
        let instant = to_instant(at)?;
        if self.opening_containing(instant).is_some() {
            return Some(at);
        }
        let today = self.time_zone.zone.to_datetime(instant).date();
        local_dates(days_before(today, 1), SEARCH_DAYS)
            .filter_map(|date| self.opening_on(date))
            .map(|opening| opening.opens)
            .filter(|opens| *opens > instant)
            .min()
            .map(from_instant)
    }

    /// When the window that is open at `at` closes. Openings that touch (a
    /// 24-hour window on consecutive days) count as one, since the window
    /// does not close in between.
    ///
    /// `None` when the window is not open at `at`, and when it never closes
    /// (every day, `start == end`): check [`MaintenanceWindow::is_open`] to
    /// tell the two apart.
    pub fn closes_at(&self, at: Timestamp) -> Option<Timestamp> {
        let mut opening = self.opening_containing(to_instant(at)?)?;
        // Eight touching openings in a row cover all seven weekdays back to
        // back, which only a window open every day around the clock does.
        for _ in 0..8 {
            match self.opening_containing(opening.closes) {
                Some(next) => opening = next,
                None => return Some(from_instant(opening.closes)),
            }
        }
        None
    }

    /// Whether the window opens on `day` (local to its time zone).
    fn opens_on(&self, day: Weekday) -> bool {
        self.days.is_empty() || self.days.contains(&day)
    }

    /// The opening that starts on the local `date`, if the window opens that
    /// day and the daylight saving rules leave it any time.
    fn opening_on(&self, date: Date) -> Option<Opening> {
        if !self.opens_on(Weekday::from_civil(date.weekday())) {
            return None;
        }
        let closing_date = if self.end <= self.start {
            date.tomorrow().ok()?
        } else {
            date
        };
        let zone = &self.time_zone.zone;
        let opens = resolve_local(zone, date.to_datetime(self.start.0))?;
        let closes = resolve_local(zone, closing_date.to_datetime(self.end.0))?;
        (opens < closes).then_some(Opening { opens, closes })
    }

    /// The opening that contains `instant`, if any.
    fn opening_containing(&self, instant: jiff::Timestamp) -> Option<Opening> {
        let today = self.time_zone.zone.to_datetime(instant).date();
        // An opening lasts at most a day and a daylight saving hour, so it
        // started yesterday or today; the day before and after are searched
        // too because a zone that moves its clocks back across midnight shows
        // the same date twice.
        local_dates(days_before(today, 2), 4)
            .filter_map(|date| self.opening_on(date))
            .find(|opening| opening.opens <= instant && instant < opening.closes)
    }
}

/// Whether any of `windows` is open at `at`; true when there are none, since
/// a policy without windows may take nodes at any time.
pub fn any_open(windows: &[MaintenanceWindow], at: Timestamp) -> bool {
    windows.is_empty() || windows.iter().any(|window| window.is_open(at))
}

/// `at` itself when any of `windows` is open then (or there are none),
/// otherwise the earliest instant one of them opens.
pub fn next_opening(windows: &[MaintenanceWindow], at: Timestamp) -> Option<Timestamp> {
    if windows.is_empty() {
        return Some(at);
    }
    // Each window answers `at` when it is open and a later instant otherwise,
    // so the earliest answer is right in both cases.
    windows
        .iter()
        .filter_map(|window| window.next_opening(at))
        .min()
}

/// One opening of a window: open from `opens` (included) to `closes`
/// (excluded), with `opens < closes`.
#[derive(Debug, Clone, Copy)]
struct Opening {
    opens: jiff::Timestamp,
    closes: jiff::Timestamp,
}

fn to_instant(at: Timestamp) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(at.as_millis()).ok()
}

fn from_instant(instant: jiff::Timestamp) -> Timestamp {
    Timestamp::from_millis(instant.as_millisecond())
}

/// `count` consecutive dates from `first`, fewer at the end of the calendar.
fn local_dates(first: Date, count: usize) -> impl Iterator<Item = Date> {
    std::iter::successors(Some(first), |date| date.tomorrow().ok()).take(count)
}

/// The date `days` days before `date`, or the calendar's first date.
fn days_before(date: Date, days: usize) -> Date {
    (0..days).fold(date, |date, _| date.yesterday().unwrap_or(date))
}

/// The instant a local date and time stands for in `zone`, with the rules in
/// the module documentation for skipped and repeated times.
fn resolve_local(zone: &TimeZone, local: jiff::civil::DateTime) -> Option<jiff::Timestamp> {
    match zone.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local).ok(),
        AmbiguousOffset::Gap { before, after } => {
            // Read with the later offset, a skipped time lands before the
            // clocks jumped; the transition right after it is the first
            // instant the wall clock is past that time.
            let before_jump = after.to_timestamp(local).ok()?;
            match zone.following(before_jump).next() {
                Some(transition) => Some(transition.timestamp()),
                None => before.to_timestamp(local).ok(),
            }
        }
    }
}

#[cfg(test)]
mod tests;
