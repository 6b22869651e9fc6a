//! What every backend's settings share: the error naming the key that is
//! wrong, durations written as text (`"90s"`, `"10m"`), secrets read from
//! files, and the checks several sections make (URLs, positive durations).
//!
//! Each backend's `settings` module holds the `Deserialize` type of its
//! section of `crus.toml`: its keys, their defaults, their checks and how
//! they become the backend's configuration, in one place.

use std::path::Path;
use std::time::Duration;

/// A setting that cannot be used, named by its key (e.g. `bos.base_url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidSetting {
    /// The key, with its section: `kadeploy.timeout`, `webhooks[0]`.
    pub key: String,
    /// What is wrong with it, and what to write instead.
    pub message: String,
}

impl InvalidSetting {
    /// The setting `key` is wrong for the reason `message`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidSetting {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// `{section}.base_url` (or another URL key) is an HTTP(S) URL.
pub fn check_http_url(key: &str, url: &str) -> Result<(), InvalidSetting> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(());
    }
    Err(InvalidSetting::new(
        key,
        format!("{url:?} must start with http:// or https://"),
    ))
}

/// Each of `durations`, keys of `[section]`, is longer than zero.
pub fn check_positive(section: &str, durations: &[(&str, Duration)]) -> Result<(), InvalidSetting> {
    match durations.iter().find(|(_, duration)| duration.is_zero()) {
        Some((key, _)) => Err(InvalidSetting::new(
            format!("{section}.{key}"),
            "must be longer than zero",
        )),
        None => Ok(()),
    }
}

/// The contents of the file `path`, the value of the setting `key`.
pub fn read_setting_file(path: &Path, key: &str) -> Result<String, InvalidSetting> {
    std::fs::read_to_string(path).map_err(|error| {
        InvalidSetting::new(key, format!("cannot read {}: {error}", path.display()))
    })
}

/// The contents of the secret file `path` (the setting `key`), without its
/// line ending; an unreadable or empty file is refused, naming the key.
pub fn read_secret(path: &Path, key: &str) -> Result<String, InvalidSetting> {
    let text = read_setting_file(path, key)?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(InvalidSetting::new(
            key,
            format!("{} is empty; write the secret into it", path.display()),
        ));
    }
    Ok(secret.to_string())
}

/// Durations written as humantime text (`"10m"`, `"30s"`), for
/// `#[serde(with = "crus_backends::settings::humantime_duration")]`.
pub mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Reads `"90s"`, `"10m"`, `"1h 30m"`; anything else is refused, quoted.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|error| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({error}; e.g. \"90s\", \"10m\")"
            ))
        })
    }
}

/// Optional durations written as humantime text; absent is `None` (with
/// `#[serde(default)]`).
pub mod humantime_duration_option {
    use std::time::Duration;

    use serde::Deserializer;

    /// Reads a present duration as [`super::humantime_duration`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::humantime_duration::deserialize(deserializer).map(Some)
    }
}
