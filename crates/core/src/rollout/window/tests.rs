//! Tests of maintenance windows: openings, daylight saving changes, parsing.

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
    let skipped = window(json!({"start": "02:00", "end": "02:30", "time_zone": "Europe/Paris"}));
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
    let repeated = window(json!({"days": ["sat", "Saturday"], "start": "08:00", "end": "20:00"}));
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
    let error = parse_error(json!({"start": "08:00", "end": "06:00", "time_zone": "Mars/Olympus"}));
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
