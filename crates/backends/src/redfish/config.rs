//! Where each node's Redfish system is and how crus talks to its BMC:
//! credentials, TLS, timeouts, retries and how many requests a BMC gets at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crus_core::node::NodeId;

/// How crus authenticates to the BMCs.
#[derive(Clone, PartialEq, Eq)]
pub enum RedfishAuth {
    /// No credentials (a BMC behind an authenticating proxy, or an emulator).
    None,
    /// HTTP basic authentication on every request.
    Basic {
        /// The BMC account.
        username: String,
        /// Its password.
        password: String,
    },
    /// A Redfish session: one login per BMC
    /// (`POST /redfish/v1/SessionService/Sessions`), its `X-Auth-Token` on
    /// every request, a new login when the BMC answers 401 (the session
    /// expired), and a logout through
    /// [`RedfishPowerControl::logout`](super::RedfishPowerControl::logout).
    Session {
        /// The BMC account.
        username: String,
        /// Its password.
        password: String,
    },
}

// Hand-written so that passwords never reach logs through `{:?}`.
impl std::fmt::Debug for RedfishAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedfishAuth::None => formatter.write_str("None"),
            RedfishAuth::Basic { username, .. } => formatter
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            RedfishAuth::Session { username, .. } => formatter
                .debug_struct("Session")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// Where one node's system is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemLocation {
    /// The BMC's base URL, `https://x1000c0s0b0` (no `/redfish/v1`).
    pub bmc_url: String,
    /// The system among the BMC's `/redfish/v1/Systems` members, matched
    /// against each member's `Id`, `Name` or `UUID`; `None` when the BMC has
    /// exactly one system.
    pub system: Option<String>,
}

/// A naming rule from a node id to its system, for sites where BMC host
/// names follow node names (Cray xnames: node `x1000c0s0b0n1` is system
/// `Node1`, say, on BMC `x1000c0s0b0`).
///
/// Both templates may use `{node}` (the node id), `{bmc}` (the node's
/// xname without its trailing `n<N>`: the BMC's xname) and `{n}` (that
/// `<N>`); a node whose id is not such an xname cannot use `{bmc}` or `{n}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamingRule {
    /// The BMC URL template, e.g. `https://{bmc}`.
    pub bmc_url: String,
    /// The system template, e.g. `Node{n}` or `{node}`; `None`: the BMC's
    /// only system.
    pub system: Option<String>,
}

/// Everything the Redfish power control needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedfishConfig {
    /// Nodes placed explicitly; they take precedence over `rule`.
    pub nodes: HashMap<NodeId, SystemLocation>,
    /// Where the other nodes are; `None`: only `nodes` are known.
    pub rule: Option<NamingRule>,
    /// How to authenticate.
    pub auth: RedfishAuth,
    /// Accept any TLS certificate (BMCs' factory self-signed ones). Off
    /// unless asked for: it lets anyone on the path impersonate the BMC.
    pub insecure: bool,
    /// A PEM bundle of CAs that signed the BMCs' certificates.
    pub ca_file: Option<PathBuf>,
    /// How long one HTTP request may take.
    pub timeout: Duration,
    /// How many times a read (or a request that never reached the BMC) is
    /// tried again after a connection error, a timeout or a 5xx.
    pub retries: u32,
    /// The first pause before a retry; each further retry doubles it.
    pub retry_base_delay: Duration,
    /// At most this many requests in flight to one BMC: BMCs are small
    /// computers and some answer 503 (or stall) under load.
    pub max_requests_per_bmc: usize,
    /// Restart hung nodes with `PowerCycle` when the system offers it, and
    /// `ForceRestart` only when it does not (some BMCs' `ForceRestart` is a
    /// warm reset that does not clear a hung node).
    pub prefer_power_cycle: bool,
    /// When a restart has to be done as `ForceOff` then `On`, how long to
    /// wait for the system to report `Off` before asking for `On`.
    pub power_off_wait: Duration,
    /// Pause between two power state reads during that wait.
    pub poll_interval: Duration,
}

impl RedfishConfig {
    /// A configuration with no nodes placed, no credentials, TLS verified,
    /// 10 s timeout, 3 retries from 200 ms, 4 requests per BMC at once, and
    /// 60 s for a system to power off.
    pub fn new() -> Self {
        RedfishConfig {
            nodes: HashMap::new(),
            rule: None,
            auth: RedfishAuth::None,
            insecure: false,
            ca_file: None,
            timeout: Duration::from_secs(10),
            retries: 3,
            retry_base_delay: Duration::from_millis(200),
            max_requests_per_bmc: 4,
            prefer_power_cycle: false,
            power_off_wait: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl Default for RedfishConfig {
    fn default() -> Self {
        RedfishConfig::new()
    }
}
