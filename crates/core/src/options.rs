//! `ServerOptions`: the server-wide settings an operator may change while
//! the server runs (`GET`/`PATCH /options`, as BOS has `/options`), kept in
//! the session store so every replica reads the same ones: the default
//! policy of new sessions, the log level, a server-wide boot rate and the
//! default boot timeout of each boot backend.
//!
//! An option left unset leaves the server's configuration in force. A change
//! applies to sessions created afterwards: a session's policy is resolved
//! once, when it is created, and stored with it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rollout::RolloutPolicy;
use crate::session::{FieldErrors, PolicyRequest};

/// The boot backends a default boot timeout may be set for: the sections of
/// `crus.toml` that have a `boot_timeout` (BOS v1 shares `bos`).
pub const BOOT_TIMEOUT_BACKENDS: [&str; 5] =
    ["bos", "kadeploy", "cyclecloud", "slurm_reboot", "sim"];

/// The log levels a directive may name.
const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// The most boots a server may be allowed to start per minute: far above
/// any boot service's pace, so a larger number is a typing mistake.
pub const MAX_BOOTS_PER_MINUTE: u32 = 100_000;

/// The server-wide options, as stored and as `GET /options` answers them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerOptions {
    /// The policy of sessions created from now on, under what each request's
    /// own `policy` sets (the same fields, checked the same way).
    #[serde(default)]
    pub default_policy: PolicyRequest,
    /// The log level of the server, as `RUST_LOG` takes it (`info`,
    /// `debug`, `crus_core=debug,info`); `null`: as the server was started.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(example = "debug"))]
    pub log_level: Option<String>,
    /// The boot rate limit (`max_boots_per_minute`) of each session created
    /// afterwards whose request sets none; `null`: the configuration's
    /// (`[rollout] max_boots_per_minute`), or no limit.
    #[serde(default)]
    pub max_boots_per_minute: Option<u32>,
    /// The boot timeout of new sessions whose policy sets none, by boot
    /// backend (`bos`, `kadeploy`, `cyclecloud`, `slurm_reboot`, `sim`),
    /// e.g. `{"bos": "45m"}`; over `crus.toml`'s timeouts.
    #[serde(default)]
    pub boot_timeouts: BTreeMap<String, String>,
}

impl ServerOptions {
    /// The options `patch` (a `PATCH /options` body) makes of these, checked
    /// as a whole; each problem under its field (`default_policy.retries`,
    /// `log_level`, `boot_timeouts.bos`, ...). Nothing changes on error.
    ///
    /// A merge patch: a member given replaces the option, `null` unsets it;
    /// `default_policy` and `boot_timeouts` are merged member by member the
    /// same way, so `{"default_policy": {"retries": 2}}` changes one field.
    pub fn patched(&self, patch: &Value) -> Result<ServerOptions, FieldErrors> {
        let mut errors = FieldErrors::new();
        let Some(members) = patch.as_object() else {
            errors.insert(
                "body".to_string(),
                vec!["Must be a JSON object of options.".to_string()],
            );
            return Err(errors);
        };
        let mut options = self.clone();
        for (key, value) in members {
            let outcome = match key.as_str() {
                "default_policy" => options.patch_default_policy(value),
                "log_level" => parse_log_level(value).map(|level| options.log_level = level),
                "max_boots_per_minute" => parse_boot_rate(value)
                    .map(|rate| options.max_boots_per_minute = rate)
                    .map_err(|message| field(key, message)),
                "boot_timeouts" => options.patch_boot_timeouts(value),
                _ => Err(field(
                    key,
                    "Unknown option; the options are default_policy, log_level, \
                     max_boots_per_minute and boot_timeouts."
                        .to_string(),
                )),
            };
            if let Err(found) = outcome {
                for (field, messages) in found {
                    errors.entry(field).or_default().extend(messages);
                }
            }
        }
        if errors.is_empty() {
            Ok(options)
        } else {
            Err(errors)
        }
    }

    /// Merges `patch` into the default policy, checked as a policy request.
    fn patch_default_policy(&mut self, patch: &Value) -> Result<(), FieldErrors> {
        let mut merged = match serde_json::to_value(&self.default_policy) {
            Ok(Value::Object(members)) => members,
            _ => Map::new(),
        };
        match patch {
            Value::Null => merged.clear(),
            Value::Object(members) => {
                for (key, value) in members {
                    if value.is_null() {
                        merged.remove(key);
                    } else {
                        merged.insert(key.clone(), value.clone());
                    }
                }
            }
            _ => {
                return Err(field(
                    "default_policy",
                    "Must be a JSON object of policy fields (as a session's \"policy\"), or null."
                        .to_string(),
                ));
            }
        }
        let policy = PolicyRequest::from_json(&Value::Object(merged)).map_err(|errors| {
            errors
                .into_iter()
                .map(|(key, messages)| {
                    let name = key.strip_prefix("policy").unwrap_or(&key);
                    (format!("default_policy{name}"), messages)
                })
                .collect::<FieldErrors>()
        })?;
        self.default_policy = policy;
        Ok(())
    }

    /// Merges `patch` into the boot timeouts, each checked.
    fn patch_boot_timeouts(&mut self, patch: &Value) -> Result<(), FieldErrors> {
        let members = match patch {
            Value::Null => {
                self.boot_timeouts.clear();
                return Ok(());
            }
            Value::Object(members) => members,
            _ => {
                return Err(field(
                    "boot_timeouts",
                    "Must be a JSON object of durations by boot backend, e.g. {\"bos\": \"45m\"}."
                        .to_string(),
                ));
            }
        };
        let mut errors = FieldErrors::new();
        let mut timeouts = self.boot_timeouts.clone();
        for (backend, value) in members {
            let key = format!("boot_timeouts.{backend}");
            if !BOOT_TIMEOUT_BACKENDS.contains(&backend.as_str()) {
                errors.entry(key).or_default().push(format!(
                    "Unknown boot backend; one of: {}.",
                    BOOT_TIMEOUT_BACKENDS.join(", ")
                ));
                continue;
            }
            match value {
                Value::Null => {
                    timeouts.remove(backend);
                }
                Value::String(text) => match humantime::parse_duration(text) {
                    Ok(timeout) if !timeout.is_zero() => {
                        timeouts.insert(backend.clone(), text.clone());
                    }
                    Ok(_) => errors
                        .entry(key)
                        .or_default()
                        .push("Must be longer than 0s.".to_string()),
                    Err(error) => errors.entry(key).or_default().push(format!(
                        "{text:?} is not a duration such as \"90s\" or \"45m\": {error}."
                    )),
                },
                _ => errors
                    .entry(key)
                    .or_default()
                    .push("Must be a duration such as \"90s\" or \"45m\", or null.".to_string()),
            }
        }
        if errors.is_empty() {
            self.boot_timeouts = timeouts;
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The default boot timeout these options set for `backend`, if any.
    pub fn boot_timeout(&self, backend: &str) -> Option<Duration> {
        self.boot_timeouts
            .get(backend)
            .and_then(|text| humantime::parse_duration(text).ok())
    }

    /// The policy of a session created now whose request sets nothing:
    /// `base` (the server's configuration), with the boot timeout these
    /// options set for `boot_backend` and their boot rate over it, and the
    /// default policy over all.
    pub fn policy_over(&self, base: &RolloutPolicy, boot_backend: Option<&str>) -> RolloutPolicy {
        let mut base = base.clone();
        if let Some(timeout) = boot_backend.and_then(|backend| self.boot_timeout(backend)) {
            base.boot_timeout = timeout;
        }
        if let Some(rate) = self.max_boots_per_minute {
            base.max_boots_per_minute = Some(rate);
        }
        self.default_policy.apply(&base)
    }
}

/// One field's one problem.
fn field(key: &str, message: String) -> FieldErrors {
    let mut errors = FieldErrors::new();
    errors.insert(key.to_string(), vec![message]);
    errors
}

/// A log level: `null`, or comma-separated directives each `level` or
/// `target=level` (the part of `RUST_LOG`'s syntax crus needs).
fn parse_log_level(value: &Value) -> Result<Option<String>, FieldErrors> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(text) => text.trim(),
        _ => {
            return Err(field(
                "log_level",
                "Must be a log level such as \"info\" or \"crus_core=debug,info\", or null."
                    .to_string(),
            ));
        }
    };
    let valid_level = |level: &str| LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str());
    let valid_target = |target: &str| {
        !target.is_empty()
            && target
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || "_:-".contains(character))
    };
    let bad = text.is_empty()
        || text.split(',').any(|directive| {
            let directive = directive.trim();
            match directive.split_once('=') {
                Some((target, level)) => !valid_target(target.trim()) || !valid_level(level.trim()),
                None => !valid_level(directive),
            }
        });
    if bad {
        return Err(field(
            "log_level",
            format!(
                "{text:?} is not a log level: give one of {} or directives such as \
                 \"crus_core=debug,info\".",
                LOG_LEVELS.join(", ")
            ),
        ));
    }
    Ok(Some(text.to_string()))
}

/// A boot rate: `null` or a whole number from 1 to [`MAX_BOOTS_PER_MINUTE`].
fn parse_boot_rate(value: &Value) -> Result<Option<u32>, String> {
    if value.is_null() {
        return Ok(None);
    }
    match value.as_u64() {
        Some(rate) if (1..=u64::from(MAX_BOOTS_PER_MINUTE)).contains(&rate) => {
            Ok(u32::try_from(rate).ok())
        }
        _ => Err(format!(
            "Must be a whole number from 1 to {MAX_BOOTS_PER_MINUTE} (boots per minute), or null \
             for no server-wide limit."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patch_merges_member_by_member_and_null_unsets() {
        let options = ServerOptions::default()
            .patched(&json!({
                "default_policy": {"retries": 2, "boot_timeout": "20m"},
                "log_level": "debug",
                "max_boots_per_minute": 30,
                "boot_timeouts": {"bos": "45m", "sim": "5m"}
            }))
            .unwrap();
        assert_eq!(options.default_policy.retries, Some(2));
        assert_eq!(options.log_level.as_deref(), Some("debug"));
        assert_eq!(options.max_boots_per_minute, Some(30));
        assert_eq!(
            options.boot_timeout("bos"),
            Some(Duration::from_secs(45 * 60))
        );

        let options = options
            .patched(&json!({
                "default_policy": {"retries": null, "strategy": "continuous"},
                "log_level": null,
                "boot_timeouts": {"sim": null}
            }))
            .unwrap();
        assert_eq!(options.default_policy.retries, None);
        assert_eq!(options.default_policy.boot_timeout.as_deref(), Some("20m"));
        assert_eq!(options.log_level, None);
        assert_eq!(options.max_boots_per_minute, Some(30));
        assert_eq!(options.boot_timeouts.len(), 1);
    }

    #[test]
    fn bad_values_are_refused_by_field_and_change_nothing() {
        let options = ServerOptions::default()
            .patched(&json!({"log_level": "info"}))
            .unwrap();
        let errors = options
            .patched(&json!({
                "default_policy": {"retries": 99, "colour": "blue"},
                "log_level": "loud",
                "max_boots_per_minute": 0,
                "boot_timeouts": {"bos": "0s", "pxe": "5m"},
                "colour": "blue"
            }))
            .unwrap_err();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "boot_timeouts.bos",
                "boot_timeouts.pxe",
                "colour",
                "default_policy.colour",
                "log_level",
                "max_boots_per_minute"
            ]
        );
        // Consistency between policy fields is checked on the merged policy.
        let errors = options
            .patched(&json!({"default_policy": {"order": "topology"}}))
            .unwrap_err();
        assert!(errors.contains_key("default_policy.order"), "{errors:?}");
        assert!(options.patched(&json!([1])).is_err());
        assert_eq!(options.log_level.as_deref(), Some("info"));
    }

    #[test]
    fn log_levels_take_rust_log_directives() {
        for good in [
            "info",
            "DEBUG",
            "crus_core=debug,info",
            "tower_http::trace=warn",
        ] {
            assert!(parse_log_level(&json!(good)).is_ok(), "{good}");
        }
        for bad in ["", "loud", "crus_core=", "=debug", "info;rm"] {
            assert!(parse_log_level(&json!(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_options_lay_over_the_configured_policy() {
        let options = ServerOptions::default()
            .patched(&json!({
                "default_policy": {"retries": 3},
                "boot_timeouts": {"bos": "45m"}
            }))
            .unwrap();
        let base = RolloutPolicy::default();
        let policy = options.policy_over(&base, Some("bos"));
        assert_eq!(policy.retries, 3);
        assert_eq!(policy.boot_timeout, Duration::from_secs(45 * 60));
        // Another backend's timeout does not apply.
        assert_eq!(
            options.policy_over(&base, Some("kadeploy")).boot_timeout,
            base.boot_timeout
        );
        // The default policy's own boot timeout wins over the backend's.
        let options = options
            .patched(&json!({"default_policy": {"boot_timeout": "20m"}}))
            .unwrap();
        assert_eq!(
            options.policy_over(&base, Some("bos")).boot_timeout,
            Duration::from_secs(20 * 60)
        );
        assert_eq!(ServerOptions::default().policy_over(&base, None), base);
    }

    #[test]
    fn the_boot_rate_option_is_the_default_of_sessions_created_afterwards() {
        let base = RolloutPolicy {
            max_boots_per_minute: Some(100),
            ..RolloutPolicy::default()
        };
        let options = ServerOptions::default()
            .patched(&json!({"max_boots_per_minute": 30}))
            .unwrap();
        assert_eq!(
            options.policy_over(&base, None).max_boots_per_minute,
            Some(30)
        );
        // The default policy's own rate wins, as for the boot timeout.
        let options = options
            .patched(&json!({"default_policy": {"max_boots_per_minute": 10}}))
            .unwrap();
        assert_eq!(
            options.policy_over(&base, None).max_boots_per_minute,
            Some(10)
        );
        // Unset, the configuration's rate stays.
        assert_eq!(
            ServerOptions::default()
                .policy_over(&base, None)
                .max_boots_per_minute,
            Some(100)
        );
    }
}
