//! `RolloutPolicy`: the knobs of a rollout that CRUS hard-coded.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a rollout paces itself and when it gives up on a node.
///
/// Stored with the session, so a resumed controller keeps the policy the
/// session started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPolicy {
    /// A node must be booted and answering the workload manager within this
    /// time of its boot starting, or it fails (alone, unlike CRUS, which failed
    /// the whole step). CRUS waited 10 minutes for the workload manager.
    #[serde(with = "humantime_serde_duration")]
    pub boot_timeout: Duration,
    /// How often the workload manager and the boot orchestrator are asked how
    /// their nodes are doing. CRUS polled every 10 s.
    #[serde(with = "humantime_serde_duration")]
    pub poll_interval: Duration,
    /// How long to wait before repeating a session-level action that failed
    /// for a reason a retry cannot fix by itself (a missing group, a refused
    /// request): the operator may fix it meanwhile.
    #[serde(with = "humantime_serde_duration")]
    pub error_retry_interval: Duration,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy {
            boot_timeout: Duration::from_secs(10 * 60),
            poll_interval: Duration::from_secs(10),
            error_retry_interval: Duration::from_secs(30),
        }
    }
}

/// Durations as humantime text (`"10m"`, `"30s"`) in stored records.
pub(crate) mod humantime_serde_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}
