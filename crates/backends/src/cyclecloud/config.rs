//! Where the CycleCloud server is, which cluster crus works on, and how it
//! talks to it: credentials, TLS, timeouts, retries, and how long it follows
//! a node operation.

use std::path::PathBuf;
use std::time::Duration;

/// Where the password of the CycleCloud account comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// This password, as given (tests, or a config already holding secrets).
    Static(String),
    /// The first line of this file (a Kubernetes secret mount, a file only
    /// the crus user can read), so the password stays out of the config.
    File(PathBuf),
    /// The value of this environment variable.
    Env(String),
}

// Hand-written so that the password never reaches logs through `{:?}`.
impl std::fmt::Debug for PasswordSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordSource::Static(_) => formatter.write_str("Static(<redacted>)"),
            PasswordSource::File(path) => formatter.debug_tuple("File").field(path).finish(),
            PasswordSource::Env(variable) => formatter.debug_tuple("Env").field(variable).finish(),
        }
    }
}

/// Everything the CycleCloud backends need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleCloudConfig {
    /// The CycleCloud server's URL, to which API paths such as
    /// `/clusters/{cluster}/nodes` are appended: `https://cyclecloud.example.com`.
    pub base_url: String,
    /// The CycleCloud cluster whose nodes crus upgrades.
    pub cluster: String,
    /// The CycleCloud account crus authenticates as (HTTP basic auth).
    pub username: String,
    /// Where that account's password comes from; read once, when the client is made.
    pub password: PasswordSource,
    /// A PEM bundle of CAs that signed the server's TLS certificate, added
    /// to the system roots (CycleCloud installs often use a private CA).
    pub ca_file: Option<PathBuf>,
    /// Accept any TLS certificate (a fresh install's self-signed one). Off
    /// unless asked for: it lets anyone on the path read the password.
    pub insecure: bool,
    /// How long one HTTP request (connect, send, answer) may take.
    pub timeout: Duration,
    /// How many times a request that failed in a way that may pass
    /// (no answer, timeout, 5xx) is tried again.
    pub retries: u32,
    /// The first pause before a retry; each further retry doubles it.
    pub retry_base_delay: Duration,
    /// Pause between two reads of a node operation's progress.
    pub poll_interval: Duration,
    /// How long a power call follows its node operation before giving up
    /// (a retryable error: the operation goes on in CycleCloud).
    pub poll_timeout: Duration,
    /// The JSON file in which crus keeps the groups it creates itself (a
    /// session's upgrading and failed groups), since CycleCloud has no group
    /// API. `None`: such groups cannot be created.
    pub state_file: Option<PathBuf>,
}

impl CycleCloudConfig {
    /// A configuration for `cluster` on the server at `base_url`, with TLS
    /// verified against the system roots, a 30 s request timeout, 3 retries
    /// from 200 ms, operations polled every 5 s for at most 15 minutes, and
    /// no state file.
    pub fn new(
        base_url: impl Into<String>,
        cluster: impl Into<String>,
        username: impl Into<String>,
        password: PasswordSource,
    ) -> Self {
        CycleCloudConfig {
            base_url: base_url.into(),
            cluster: cluster.into(),
            username: username.into(),
            password,
            ca_file: None,
            insecure: false,
            timeout: Duration::from_secs(30),
            retries: 3,
            retry_base_delay: Duration::from_millis(200),
            poll_interval: Duration::from_secs(5),
            poll_timeout: Duration::from_secs(15 * 60),
            state_file: None,
        }
    }

    /// This configuration with crus-kept groups in `path`.
    pub fn with_state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }
}
