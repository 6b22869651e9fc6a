//! The answer of a dry run: a forecast of the session and of each step.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::left_out::{PlannedFloor, SkippedNode};
use super::safety::{PlannedGates, PlannedRollback};
use crate::node::NodeId;
use crate::rollout::RolloutPolicy;
use crate::time::Timestamp;

/// One step of a dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedStep {
    /// Step number, from 0.
    pub step: u32,
    /// Its nodes, in the order they were taken (in the median sampled run).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub nodes: Vec<NodeId>,
    /// When it is expected to start.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub starts_at: Timestamp,
    /// When its last node is expected to be back in service (median run).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub done_at: Timestamp,
    /// The 10th percentile of when this step is done, as a prediction of
    /// the real run from the sampled runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub done_at_p10: Option<Timestamp>,
    /// The 90th percentile of when this step is done, as a prediction of
    /// the real run from the sampled runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub done_at_p90: Option<Timestamp>,
    /// What this step's time goes to: its boot, or waiting for its jobs
    /// ("waiting for jobs that end by 2026-12-06 14:20 UTC").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dominated_by: Option<String>,
}

/// The outcome of a dry run: a forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRun {
    /// The steps in the order they would start (in the median sampled run).
    pub steps: Vec<PlannedStep>,
    /// Nodes the session would upgrade.
    pub nodes: usize,
    /// The effective step size.
    pub step_size: u32,
    /// The policy as it would be applied.
    pub policy: RolloutPolicy,
    /// How long the session is expected to take: the median of the sampled runs.
    #[serde(with = "humantime_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "3h 12m"))]
    pub estimated_duration: Duration,
    /// The 10th percentile of the duration, as a prediction of the real run:
    /// one real run in ten would be faster. Read from the sampled runs at
    /// rank 0.1 (n + 1), interpolated, so that p10–p90 holds the real run
    /// 80% of the time when the runs are drawn as it will go. Below nine
    /// runs (a forecast whose first three runs agreed, or one the pass
    /// budget cut short) the rank falls below the first run, and p10 and
    /// p90 are the shortest and longest runs.
    #[serde(default, with = "humantime_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "2h 50m"))]
    pub p10: Duration,
    /// The 90th percentile of the duration, as p10 is: one real run in ten
    /// would be slower.
    #[serde(default, with = "humantime_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "3h 40m"))]
    pub p90: Duration,
    /// How many seeded runs the forecast sampled (one when nothing is uncertain).
    #[serde(default)]
    pub samples: u32,
    /// The part of the session that dominates its duration, e.g. "waiting
    /// for jobs that end by 2026-12-06 14:20 UTC" or "boot rounds".
    #[serde(default)]
    pub dominated_by: String,
    /// Why the nodes come in this order, and what the estimate assumes.
    pub rationale: Vec<String>,
    /// Nodes the session would leave alone, with why: held out of service
    /// by someone else under `foreign_out_of_service: skip`, or already on
    /// the target image under `skip_matching` (issue 21; absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedNode>,
    /// The capacity floor as it applies to this group (absent without
    /// `min_available`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<PlannedFloor>,
    /// At most this many node boots are requested in any minute (absent
    /// without `max_boots_per_minute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_boots_per_minute: Option<u32>,
    /// The rollback the session would apply, if its policy has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<PlannedRollback>,
    /// The alert gates the session would check, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<PlannedGates>,
}
mod humantime_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        // Whole seconds: a plan is not precise to the millisecond.
        serializer.collect_str(&humantime::format_duration(Duration::from_secs(
            duration.as_secs(),
        )))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}
