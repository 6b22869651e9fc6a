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

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::{AmbiguousOffset, TimeZone};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::Timestamp;

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

/// A day of the week. Written `mon` … `sun`; the full English names are
/// accepted too, in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Weekday {
    /// Monday, `mon`.
    #[serde(rename = "mon")]
    Monday,
    /// Tuesday, `tue`.
    #[serde(rename = "tue")]
    Tuesday,
    /// Wednesday, `wed`.
    #[serde(rename = "wed")]
    Wednesday,
    /// Thursday, `thu`.
    #[serde(rename = "thu")]
    Thursday,
    /// Friday, `fri`.
    #[serde(rename = "fri")]
    Friday,
    /// Saturday, `sat`.
    #[serde(rename = "sat")]
    Saturday,
    /// Sunday, `sun`.
    #[serde(rename = "sun")]
    Sunday,
}

impl Weekday {
    /// Every day, Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    /// The three-letter name it is written as: `mon` … `sun`.
    pub fn short_name(self) -> &'static str {
        match self {
            Weekday::Monday => "mon",
            Weekday::Tuesday => "tue",
            Weekday::Wednesday => "wed",
            Weekday::Thursday => "thu",
            Weekday::Friday => "fri",
            Weekday::Saturday => "sat",
            Weekday::Sunday => "sun",
        }
    }

    /// The full English name in lower case.
    fn full_name(self) -> &'static str {
        match self {
            Weekday::Monday => "monday",
            Weekday::Tuesday => "tuesday",
            Weekday::Wednesday => "wednesday",
            Weekday::Thursday => "thursday",
            Weekday::Friday => "friday",
            Weekday::Saturday => "saturday",
            Weekday::Sunday => "sunday",
        }
    }

    fn from_civil(day: jiff::civil::Weekday) -> Weekday {
        match day {
            jiff::civil::Weekday::Monday => Weekday::Monday,
            jiff::civil::Weekday::Tuesday => Weekday::Tuesday,
            jiff::civil::Weekday::Wednesday => Weekday::Wednesday,
            jiff::civil::Weekday::Thursday => Weekday::Thursday,
            jiff::civil::Weekday::Friday => Weekday::Friday,
            jiff::civil::Weekday::Saturday => Weekday::Saturday,
            jiff::civil::Weekday::Sunday => Weekday::Sunday,
        }
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.short_name())
    }
}

impl FromStr for Weekday {
    type Err = WindowParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Weekday::ALL
            .into_iter()
            .find(|day| {
                text.eq_ignore_ascii_case(day.short_name())
                    || text.eq_ignore_ascii_case(day.full_name())
            })
            .ok_or_else(|| {
                WindowParseError(format!(
                    "{text:?} is not a day of the week (mon, tue, wed, thu, fri, sat, sun)"
                ))
            })
    }
}

impl<'de> Deserialize<'de> for Weekday {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_string(deserializer)
    }
}

/// A local time of day to the minute, written `HH:MM` (24-hour clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(jiff::civil::Time);

impl TimeOfDay {
    /// Midnight, `00:00`.
    pub const MIDNIGHT: TimeOfDay = TimeOfDay(jiff::civil::Time::MIN);

    /// `hour:minute`; `None` unless `hour < 24` and `minute < 60`.
    pub fn new(hour: u8, minute: u8) -> Option<TimeOfDay> {
        let hour = i8::try_from(hour).ok()?;
        let minute = i8::try_from(minute).ok()?;
        jiff::civil::Time::new(hour, minute, 0, 0)
            .ok()
            .map(TimeOfDay)
    }

    /// The hour, 0 to 23.
    pub fn hour(self) -> u8 {
        self.0.hour().unsigned_abs()
    }

    /// The minute, 0 to 59.
    pub fn minute(self) -> u8 {
        self.0.minute().unsigned_abs()
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:02}:{:02}", self.hour(), self.minute())
    }
}

impl FromStr for TimeOfDay {
    type Err = WindowParseError;

    /// Reads `HH:MM`; a one-digit hour (`8:00`) is accepted as well.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || WindowParseError(format!("{text:?} is not a time of day HH:MM"));
        let (hour, minute) = text.split_once(':').ok_or_else(invalid)?;
        // Checked by hand because `u8::from_str` also takes a leading `+`.
        let digits = |part: &str, lengths: &[usize]| {
            lengths.contains(&part.len()) && part.bytes().all(|byte| byte.is_ascii_digit())
        };
        if !digits(hour, &[1, 2]) || !digits(minute, &[2]) {
            return Err(invalid());
        }
        let hour = hour.parse().map_err(|_| invalid())?;
        let minute = minute.parse().map_err(|_| invalid())?;
        TimeOfDay::new(hour, minute).ok_or_else(invalid)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_string(deserializer)
    }
}

/// A time zone of the IANA database, by name (`Europe/Paris`, `UTC`).
///
/// The name is checked against the database when parsed, so a window never
/// holds a zone it cannot compute with; it is kept in the database's own
/// spelling (`europe/paris` becomes `Europe/Paris`). Two zones are equal when
/// their names are.
#[derive(Debug, Clone)]
pub struct IanaTimeZone {
    /// The database's name for it, written back when serialised.
    name: String,
    /// Its rules, looked up once when parsed.
    zone: TimeZone,
}

impl IanaTimeZone {
    /// Coordinated Universal Time, the default zone of a window.
    pub fn utc() -> IanaTimeZone {
        IanaTimeZone {
            name: "UTC".to_string(),
            zone: TimeZone::UTC,
        }
    }

    /// The zone's name in the IANA database.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Default for IanaTimeZone {
    fn default() -> Self {
        IanaTimeZone::utc()
    }
}

impl PartialEq for IanaTimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for IanaTimeZone {}

impl fmt::Display for IanaTimeZone {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name)
    }
}

impl FromStr for IanaTimeZone {
    type Err = WindowParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || WindowParseError(format!("unknown time zone {text:?}"));
        let zone = TimeZone::get(text).map_err(|_| unknown())?;
        // `Etc/Unknown` is jiff's marker for a zone it could not find, not a
        // zone of the database.
        if zone.is_unknown() {
            return Err(unknown());
        }
        let name = zone.iana_name().unwrap_or(text).to_string();
        Ok(IanaTimeZone { name, zone })
    }
}

impl Serialize for IanaTimeZone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for IanaTimeZone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_string(deserializer)
    }
}

/// Why a day, time of day or time zone could not be read; the message quotes
/// the text it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WindowParseError(String);

/// Deserialises a string and parses it, so serde reports the parse message.
fn parse_string<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = WindowParseError>,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An instant written in RFC 3339, e.g. `2026-06-12T22:00Z`.
    fn instant(text: &str) -> Timestamp {
        from_instant(text.parse::<jiff::Timestamp>().unwrap())
    }

    fn window(value: serde_json::Value) -> MaintenanceWindow {
        serde_json::from_value(value).unwrap()
    }

    fn parse_error(value: serde_json::Value) -> String {
        serde_json::from_value::<MaintenanceWindow>(value)
            .unwrap_err()
            .to_string()
    }

    // Calendar used below: 2026-06-08 is a Monday. Europe/Paris is UTC+2 in
    // summer and UTC+1 in winter; its clocks go forward on 2026-03-29 at 01:00
    // UTC (02:00 → 03:00) and back on 2026-10-25 at 01:00 UTC (03:00 → 02:00).

    #[test]
    fn every_day_window_is_open_from_start_until_end() {
        let window = window(json!({"start": "08:00", "end": "17:00"}));
        assert!(window.days.is_empty());
        assert_eq!(window.time_zone, IanaTimeZone::utc());

        assert!(!window.is_open(instant("2026-06-10T07:59:59.999Z")));
        assert!(window.is_open(instant("2026-06-10T08:00Z")));
        assert!(window.is_open(instant("2026-06-10T16:59:59.999Z")));
        assert!(!window.is_open(instant("2026-06-10T17:00Z")));
        assert!(window.is_open(instant("2026-06-14T12:00Z")));

        let noon = instant("2026-06-10T12:00Z");
        assert_eq!(window.next_opening(noon), Some(noon));
        assert_eq!(window.closes_at(noon), Some(instant("2026-06-10T17:00Z")));
        assert_eq!(
            window.next_opening(instant("2026-06-10T07:00Z")),
            Some(instant("2026-06-10T08:00Z"))
        );
        assert_eq!(
            window.next_opening(instant("2026-06-10T17:00Z")),
            Some(instant("2026-06-11T08:00Z"))
        );
        assert_eq!(window.closes_at(instant("2026-06-10T18:00Z")), None);
    }

    #[test]
    fn opens_only_on_its_days() {
        let window = window(json!({"days": ["sat", "sun"], "start": "08:00", "end": "20:00"}));
        assert!(!window.is_open(instant("2026-06-12T10:00Z")), "Friday");
        assert!(window.is_open(instant("2026-06-13T10:00Z")), "Saturday");
        assert!(window.is_open(instant("2026-06-14T10:00Z")), "Sunday");
        assert!(!window.is_open(instant("2026-06-15T10:00Z")), "Monday");
        assert_eq!(
            window.next_opening(instant("2026-06-15T10:00Z")),
            Some(instant("2026-06-20T08:00Z"))
        );
        // Saturday's and Sunday's openings do not touch: it closes at 20:00.
        assert_eq!(
            window.closes_at(instant("2026-06-13T19:00Z")),
            Some(instant("2026-06-13T20:00Z"))
        );
    }

    #[test]
    fn window_crossing_midnight_belongs_to_its_start_day() {
        let window = window(json!({"days": ["fri"], "start": "22:00", "end": "06:00"}));
        assert!(
            !window.is_open(instant("2026-06-11T23:00Z")),
            "Thursday night"
        );
        assert!(
            !window.is_open(instant("2026-06-12T03:00Z")),
            "early Friday"
        );
        assert!(!window.is_open(instant("2026-06-12T21:59Z")));
        assert!(window.is_open(instant("2026-06-12T22:00Z")));
        assert!(
            window.is_open(instant("2026-06-13T00:00Z")),
            "Saturday midnight"
        );
        assert!(
            window.is_open(instant("2026-06-13T03:00Z")),
            "early Saturday"
        );
        assert!(!window.is_open(instant("2026-06-13T06:00Z")));
        assert_eq!(
            window.closes_at(instant("2026-06-13T03:00Z")),
            Some(instant("2026-06-13T06:00Z"))
        );
        assert_eq!(
            window.next_opening(instant("2026-06-12T03:00Z")),
            Some(instant("2026-06-12T22:00Z"))
        );
    }

    #[test]
    fn end_equal_to_start_is_a_whole_day() {
        let monday = window(json!({"days": ["monday"], "start": "09:00", "end": "09:00"}));
        assert!(!monday.is_open(instant("2026-06-08T08:59Z")));
        assert!(monday.is_open(instant("2026-06-08T09:00Z")));
        assert!(monday.is_open(instant("2026-06-09T08:59Z")));
        assert!(!monday.is_open(instant("2026-06-09T09:00Z")));
        assert_eq!(
            monday.closes_at(instant("2026-06-08T20:00Z")),
            Some(instant("2026-06-09T09:00Z"))
        );

        // Monday's and Tuesday's openings touch, so it closes Wednesday.
        let two_days = window(json!({"days": ["mon", "tue"], "start": "09:00", "end": "09:00"}));
        assert_eq!(
            two_days.closes_at(instant("2026-06-08T10:00Z")),
            Some(instant("2026-06-10T09:00Z"))
        );

        // Every day around the clock: always open, never closes.
        let always = window(json!({"start": "00:00", "end": "00:00"}));
        let at = instant("2026-06-10T12:34Z");
        assert!(always.is_open(at));
        assert_eq!(always.next_opening(at), Some(at));
        assert_eq!(always.closes_at(at), None);
    }

    #[test]
    fn times_and_days_are_local_to_the_time_zone() {
        let paris = window(json!({"start": "22:00", "end": "06:00", "time_zone": "Europe/Paris"}));
        let utc = window(json!({"start": "22:00", "end": "06:00"}));

        // Summer: 20:30 UTC is 22:30 in Paris.
        let summer = instant("2026-06-10T20:30Z");
        assert!(paris.is_open(summer));
        assert!(!utc.is_open(summer));
        assert_eq!(paris.closes_at(summer), Some(instant("2026-06-11T04:00Z")));
        assert_eq!(utc.next_opening(summer), Some(instant("2026-06-10T22:00Z")));
        assert_eq!(
            paris.next_opening(instant("2026-06-11T12:00Z")),
            Some(instant("2026-06-11T20:00Z"))
        );

        // Winter: Paris is one hour ahead, 20:30 UTC is 21:30 there.
        let winter = instant("2026-01-14T20:30Z");
        assert!(!paris.is_open(winter));
        assert_eq!(
            paris.next_opening(winter),
            Some(instant("2026-01-14T21:00Z"))
        );

        // The day is Paris's: Friday 22:30 UTC is already Saturday there.
        let saturday = window(json!({
            "days": ["sat"], "start": "00:00", "end": "02:00", "time_zone": "Europe/Paris"
        }));
        assert!(saturday.is_open(instant("2026-06-12T22:30Z")));
        assert!(!saturday.is_open(instant("2026-06-13T22:30Z")));
    }

    #[test]
    fn time_skipped_by_spring_forward_opens_when_the_clocks_jump() {
        // 02:30 does not exist in Paris on 2026-03-29: opens at 03:00 CEST.
        let night = window(json!({"start": "02:30", "end": "04:00", "time_zone": "Europe/Paris"}));
        assert!(!night.is_open(instant("2026-03-29T00:45Z")), "01:45 CET");
        assert!(night.is_open(instant("2026-03-29T01:00Z")), "03:00 CEST");
        assert_eq!(
            night.next_opening(instant("2026-03-29T00:00Z")),
            Some(instant("2026-03-29T01:00Z"))
        );
        assert_eq!(
            night.closes_at(instant("2026-03-29T01:00Z")),
            Some(instant("2026-03-29T02:00Z"))
        );
        // The day before and after are ordinary.
        assert_eq!(
            night.next_opening(instant("2026-03-28T00:00Z")),
            Some(instant("2026-03-28T01:30Z"))
        );
        assert_eq!(
            night.next_opening(instant("2026-03-29T12:00Z")),
            Some(instant("2026-03-30T00:30Z"))
        );

        // Both ends skipped: no opening on that day at all.
        let skipped =
            window(json!({"start": "02:00", "end": "02:30", "time_zone": "Europe/Paris"}));
        assert!(!skipped.is_open(instant("2026-03-29T01:00Z")));
        assert_eq!(
            skipped.next_opening(instant("2026-03-28T12:00Z")),
            Some(instant("2026-03-30T00:00Z"))
        );

        // A 24-hour window over the change lasts 23 hours.
        let saturday = window(json!({
            "days": ["sat"], "start": "12:00", "end": "12:00", "time_zone": "Europe/Paris"
        }));
        assert_eq!(
            saturday.next_opening(instant("2026-03-28T00:00Z")),
            Some(instant("2026-03-28T11:00Z"))
        );
        assert_eq!(
            saturday.closes_at(instant("2026-03-28T11:00Z")),
            Some(instant("2026-03-29T10:00Z"))
        );

        // Same rule in New York (02:00 EST → 03:00 EDT at 07:00 UTC on 2026-03-08).
        let new_york = window(json!({
            "start": "02:30", "end": "03:30", "time_zone": "America/New_York"
        }));
        assert_eq!(
            new_york.next_opening(instant("2026-03-08T05:00Z")),
            Some(instant("2026-03-08T07:00Z"))
        );
        assert_eq!(
            new_york.closes_at(instant("2026-03-08T07:00Z")),
            Some(instant("2026-03-08T07:30Z"))
        );
    }

    #[test]
    fn time_repeated_by_fall_back_means_its_first_occurrence() {
        // On 2026-10-25 Paris shows 02:00-03:00 twice: 00:00-01:00 UTC (CEST)
        // and 01:00-02:00 UTC (CET).
        let night = window(json!({"start": "02:30", "end": "05:00", "time_zone": "Europe/Paris"}));
        assert!(!night.is_open(instant("2026-10-25T00:29Z")));
        assert!(night.is_open(instant("2026-10-25T00:30Z")), "first 02:30");
        assert_eq!(
            night.closes_at(instant("2026-10-25T00:30Z")),
            Some(instant("2026-10-25T04:00Z"))
        );

        // Closing at 02:30 also means the first one: the window stays closed
        // while the clock shows 02:15 again.
        let evening = window(json!({
            "days": ["sat"], "start": "22:00", "end": "02:30", "time_zone": "Europe/Paris"
        }));
        assert!(evening.is_open(instant("2026-10-25T00:15Z")), "first 02:15");
        assert_eq!(
            evening.closes_at(instant("2026-10-24T20:00Z")),
            Some(instant("2026-10-25T00:30Z"))
        );
        assert!(
            !evening.is_open(instant("2026-10-25T01:15Z")),
            "second 02:15"
        );
    }

    #[test]
    fn next_opening_searches_the_coming_week() {
        let wednesday = window(json!({"days": ["wed"], "start": "01:00", "end": "02:00"}));
        assert_eq!(
            wednesday.next_opening(instant("2026-06-10T00:59Z")),
            Some(instant("2026-06-10T01:00Z"))
        );
        assert_eq!(
            wednesday.next_opening(instant("2026-06-10T02:00Z")),
            Some(instant("2026-06-17T01:00Z"))
        );
        assert_eq!(
            wednesday.next_opening(instant("2026-06-11T12:00Z")),
            Some(instant("2026-06-17T01:00Z"))
        );
        // Sunday night to Monday morning, asked on Monday after it closed.
        let sunday = window(json!({
            "days": ["Sunday"], "start": "23:00", "end": "01:00", "time_zone": "Asia/Tokyo"
        }));
        assert_eq!(
            sunday.next_opening(instant("2026-06-07T17:00Z")),
            Some(instant("2026-06-14T14:00Z"))
        );
    }

    #[test]
    fn instants_without_a_calendar_are_never_open() {
        let window = window(json!({"start": "08:00", "end": "17:00"}));
        let far = Timestamp::from_millis(i64::MAX);
        assert!(!window.is_open(far));
        assert_eq!(window.next_opening(far), None);
        assert_eq!(window.closes_at(far), None);
    }

    #[test]
    fn lists_of_windows() {
        let at = instant("2026-06-10T12:00Z");
        assert!(any_open(&[], at));
        assert_eq!(next_opening(&[], at), Some(at));

        let morning = window(json!({"start": "08:00", "end": "10:00"}));
        let evening = window(json!({"start": "18:00", "end": "20:00"}));
        let weekend = window(json!({"days": ["sat"], "start": "00:00", "end": "00:00"}));
        let windows = [weekend, evening.clone(), morning.clone()];
        assert!(!any_open(&windows, at));
        assert_eq!(
            next_opening(&windows, at),
            Some(instant("2026-06-10T18:00Z"))
        );
        assert_eq!(
            next_opening(&windows, instant("2026-06-10T21:00Z")),
            Some(instant("2026-06-11T08:00Z"))
        );
        let in_the_morning = instant("2026-06-10T09:00Z");
        assert!(any_open(&windows, in_the_morning));
        assert_eq!(next_opening(&windows, in_the_morning), Some(in_the_morning));
        assert!(any_open(&windows, instant("2026-06-13T12:00Z")), "Saturday");
    }

    #[test]
    fn validation_rejects_a_day_listed_twice() {
        let valid = window(json!({"days": ["sat", "sun"], "start": "08:00", "end": "20:00"}));
        assert_eq!(valid.validate(), Ok(()));
        let repeated =
            window(json!({"days": ["sat", "Saturday"], "start": "08:00", "end": "20:00"}));
        assert_eq!(
            repeated.validate(),
            Err("day \"sat\" is listed more than once.".to_string())
        );
    }

    #[test]
    fn serde_round_trip_writes_short_canonical_names() {
        let window = window(json!({
            "days": ["Monday", "SAT", "sun"],
            "start": "8:05",
            "end": "23:59",
            "time_zone": "europe/paris"
        }));
        assert_eq!(
            window.days,
            [Weekday::Monday, Weekday::Saturday, Weekday::Sunday]
        );
        assert_eq!(window.start, TimeOfDay::new(8, 5).unwrap());
        assert_eq!(window.time_zone.name(), "Europe/Paris");
        let written = serde_json::to_value(&window).unwrap();
        assert_eq!(
            written,
            json!({
                "days": ["mon", "sat", "sun"],
                "start": "08:05",
                "end": "23:59",
                "time_zone": "Europe/Paris"
            })
        );
        let read_back: MaintenanceWindow = serde_json::from_value(written).unwrap();
        assert_eq!(read_back, window);

        let minimal =
            serde_json::to_value(self::window(json!({"start": "00:00", "end": "06:00"}))).unwrap();
        assert_eq!(
            minimal,
            json!({"start": "00:00", "end": "06:00", "time_zone": "UTC"})
        );
    }

    #[test]
    fn parse_errors_quote_what_was_wrong() {
        let error = parse_error(json!({"start": "25:00", "end": "06:00"}));
        assert!(
            error.contains(r#""25:00" is not a time of day HH:MM"#),
            "{error}"
        );
        let error =
            parse_error(json!({"start": "08:00", "end": "06:00", "time_zone": "Mars/Olympus"}));
        assert!(
            error.contains(r#"unknown time zone "Mars/Olympus""#),
            "{error}"
        );
        let error = parse_error(json!({"days": ["funday"], "start": "08:00", "end": "06:00"}));
        assert!(
            error.contains(r#""funday" is not a day of the week"#),
            "{error}"
        );
        let error = parse_error(json!({"start": "08:00", "end": "06:00", "zone": "UTC"}));
        assert!(error.contains("unknown field `zone`"), "{error}");
        let error = parse_error(json!({"start": "08:00"}));
        assert!(error.contains("missing field `end`"), "{error}");

        for bad in [
            "24:00", "12:60", "1200", "12:5", "+8:00", " 08:00", "08:00:00", "123:00", "",
        ] {
            assert_eq!(
                bad.parse::<TimeOfDay>(),
                Err(WindowParseError(format!(
                    "{bad:?} is not a time of day HH:MM"
                ))),
            );
        }
        assert_eq!("23:59".parse::<TimeOfDay>().unwrap().to_string(), "23:59");
        for bad in ["Etc/Unknown", "", "Europe/Paris/", "/etc/passwd"] {
            assert_eq!(
                bad.parse::<IanaTimeZone>(),
                Err(WindowParseError(format!("unknown time zone {bad:?}")))
            );
        }
    }
}
