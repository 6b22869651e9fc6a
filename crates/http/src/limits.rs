//! `ServerLimits`: how much of the server one client can take — connections,
//! how long a connection may sit idle or dribble its headers, how long a
//! request may run, and how many dry runs are planned at once and for how long.
//!
//! Every limit has a default fit for a real site; `crus serve` reads them
//! from the `[server]` section of `crus.toml`.

use std::time::Duration;

use crus_core::dry_run::DryRunBudget;

/// The limits [`crate::serve`] and [`crate::app`] enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections held open at most. At the limit, a new connection
    /// closes the one idle the longest (so a flood of idle connections
    /// cannot lock out `/healthz` or an operator); when none is idle it is
    /// answered 503 and closed at once.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, from their
    /// first byte; a connection still short of a whole head is closed.
    pub header_read_timeout: Duration,
    /// How long a connection may wait for its next request (or its first)
    /// before it is closed.
    pub idle_timeout: Duration,
    /// A request taking longer than this is answered 503.
    pub request_timeout: Duration,
    /// Dry runs planned at once at most; one more is answered 503.
    pub dry_runs_at_once: usize,
    /// How long one dry run may plan (at most `request_timeout`); one that
    /// would take longer is stopped and answered 503.
    pub dry_run_timeout: Duration,
    /// How far a dry run may simulate; a session outgrowing it is answered
    /// 422 naming the setting to change.
    pub dry_run_budget: DryRunBudget,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: crate::REQUEST_TIMEOUT,
            dry_runs_at_once: 2,
            dry_run_timeout: Duration::from_secs(10),
            dry_run_budget: DryRunBudget::default(),
        }
    }
}
