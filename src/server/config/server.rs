//! `[server]` of `crus.toml`: where the server listens, where the session
//! database is, how logs are written and the limits that keep it responsive.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crus_backends::settings::{InvalidSetting, check_positive, humantime_duration};
use serde::Deserialize;

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// SQLite file holding the sessions.
    pub db: PathBuf,
    /// Log lines as `text` or `json`, or to the systemd journal (`journald`).
    pub log_format: LogFormat,
    /// A request taking longer than this is answered 503.
    #[serde(with = "humantime_duration")]
    pub request_timeout: Duration,
    /// Connections held open at most; at the limit a new one closes the
    /// connection idle the longest (or is answered 503 when none is idle).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, from their
    /// first byte, before its connection is closed.
    #[serde(with = "humantime_duration")]
    pub header_read_timeout: Duration,
    /// How long a connection may wait for its next (or first) request
    /// before it is closed.
    #[serde(with = "humantime_duration")]
    pub idle_timeout: Duration,
    /// Dry runs (`POST /session?dry_run=true`) planned at once at most; one
    /// more is answered 503.
    pub dry_runs_at_once: usize,
    /// How long one dry run may plan (at most `request_timeout`) before it
    /// is stopped and answered 503.
    #[serde(with = "humantime_duration")]
    pub dry_run_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let limits = crus_http::ServerLimits::default();
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            db: PathBuf::from("crus.db"),
            log_format: LogFormat::Text,
            request_timeout: limits.request_timeout,
            max_connections: limits.max_connections,
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            dry_runs_at_once: limits.dry_runs_at_once,
            dry_run_timeout: limits.dry_run_timeout,
        }
    }
}

impl ServerConfig {
    /// The limits the server enforces.
    pub fn limits(&self) -> crus_http::ServerLimits {
        crus_http::ServerLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            dry_runs_at_once: self.dry_runs_at_once,
            dry_run_timeout: self.dry_run_timeout,
            ..crus_http::ServerLimits::default()
        }
    }

    /// Checks what the types alone do not.
    pub(super) fn check(&self) -> Result<(), InvalidSetting> {
        let invalid =
            |key: &str, message: String| InvalidSetting::new(format!("server.{key}"), message);
        for (key, count) in [
            ("max_connections", self.max_connections),
            ("dry_runs_at_once", self.dry_runs_at_once),
        ] {
            if count == 0 || count > MAX_SERVER_COUNT {
                return Err(invalid(
                    key,
                    format!("{count} is not between 1 and {MAX_SERVER_COUNT}"),
                ));
            }
        }
        check_positive(
            "server",
            &[
                ("request_timeout", self.request_timeout),
                ("header_read_timeout", self.header_read_timeout),
                ("idle_timeout", self.idle_timeout),
                ("dry_run_timeout", self.dry_run_timeout),
            ],
        )
    }
}

/// The largest `server.max_connections` and `server.dry_runs_at_once`: far
/// beyond what one process serves well, and within what its semaphores count.
const MAX_SERVER_COUNT: usize = 1_000_000;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
    /// The systemd journal, each field its own (`CRUS_SESSION`, `CRUS_NODE`,
    /// `CRUS_STEP`); `text` under systemd (`JOURNAL_STREAM` set) means this.
    Journald,
}
