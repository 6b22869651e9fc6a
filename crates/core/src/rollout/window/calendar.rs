//! The parts a maintenance window is written with: a day of the week, a time
//! of day and an IANA time zone, each read from text with a clear error.

use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

    pub(super) fn from_civil(day: jiff::civil::Weekday) -> Weekday {
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
pub struct TimeOfDay(pub(super) jiff::civil::Time);

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
    pub(super) zone: TimeZone,
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
pub struct WindowParseError(pub(super) String);

/// Deserialises a string and parses it, so serde reports the parse message.
fn parse_string<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = WindowParseError>,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}
