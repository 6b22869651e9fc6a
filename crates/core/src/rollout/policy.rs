//! `RolloutPolicy`: the knobs of a rollout that CRUS hard-coded, and the
//! controls it never had (strategy, order, failure budget, canary, drain
//! timeout, boot retries, health gate, maintenance windows).
//!
//! Every field has a default that behaves as CRUS did, so a session created
//! without a `policy` object is a CRUS session.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::window::MaintenanceWindow;
use crate::ports::{GateCheck, HealthCheck};

/// How a rollout paces itself and when it gives up on a node.
///
/// Stored with the session, so a resumed controller keeps the policy the
/// session started with; shown as applied in the session's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolloutPolicy {
    /// How nodes enter service windows: CRUS's steps, or a sliding window.
    #[serde(default)]
    pub strategy: Strategy,
    /// Which pending node is taken next.
    #[serde(default)]
    pub order: Order,
    /// With `order: topology`: never two nodes of one failure domain out of
    /// service at once, where the step size allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Domain>,
    /// With `order: topology`: take whole failure domains together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub align: Option<Domain>,
    /// Step size as a percentage of the starting group, when the request gave
    /// one; the effective number is the session's `upgrade_step_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_percent: Option<f64>,
    /// The capacity floor: how many nodes of the starting group (a count,
    /// or a percentage rounded down) must stay in service, counting every
    /// node out of service for any reason. `None`: no floor, as CRUS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<FailureBudget>,
    /// At most this many nodes' boots are requested in any minute, so a
    /// large step does not overload the boot service or a power feed.
    /// `None`: no limit, as CRUS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_boots_per_minute: Option<u32>,
    /// How many failed nodes the session tolerates before it halts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<FailureBudget>,
    /// A first, smaller batch, then a pause (or a check) before the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// How long a node may take to drain before `on_drain_timeout` applies;
    /// `None` waits for as long as its jobs run, as CRUS did.
    #[serde(
        default,
        with = "humantime_serde_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "2h"))]
    pub drain_timeout: Option<Duration>,
    /// What happens to a node still draining after `drain_timeout`.
    #[serde(default)]
    pub on_drain_timeout: OnDrainTimeout,
    /// What happens to a node someone else took out of service (drained,
    /// draining or down with a reason crus did not write): it is never
    /// resumed by crus.
    #[serde(
        default,
        skip_serializing_if = "super::ForeignOutOfService::is_default"
    )]
    pub foreign_out_of_service: super::ForeignOutOfService,
    /// A node must be booted and answering the workload manager within this
    /// time of its boot starting, or it fails (alone, unlike CRUS, which failed
    /// the whole step). CRUS waited 10 minutes for the workload manager.
    #[serde(with = "humantime_serde_duration")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "10m"))]
    pub boot_timeout: Duration,
    /// How many more times a node whose boot failed is booted again before it
    /// counts as failed.
    #[serde(default)]
    pub retries: u32,
    /// Whether a node that did not come back is power-cycled (through the
    /// power control port) before its boot is retried.
    #[serde(default)]
    pub escalate_power_cycle: bool,
    /// With `escalate_power_cycle`: how long a graceful restart has to bring
    /// the node back (its boot included) before it is restarted by force;
    /// `None` gives it the boot timeout.
    #[serde(
        default,
        with = "humantime_serde_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "5m"))]
    pub power_cycle_grace: Option<Duration>,
    /// Checks a booted node must pass before it counts as upgraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthGate>,
    /// When new nodes may be taken; empty means at any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<MaintenanceWindow>,
    /// The site's alerts that hold the session (no new node is taken,
    /// nodes in flight finish) while they fire: asked before nodes are taken
    /// and while nodes soak. The server's own gates (`[[gates]]` in
    /// `crus.toml`) come first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub gates: Vec<GateCheck>,
    /// How long the gates may hold the session before it halts (and waits
    /// for an operator); `None` holds for as long as they block.
    #[serde(
        default,
        with = "humantime_serde_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "2h"))]
    pub max_hold: Option<Duration>,
    /// Boot nodes whose upgrade failed back to the image they ran before
    /// (`{ template, on: ["node_failed"] }`): they return to service as
    /// `reverted` instead of staying out as failed. `None`: they fail, as CRUS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<super::Rollback>,
    /// How often the workload manager and the boot orchestrator are asked how
    /// their nodes are doing. CRUS polled every 10 s.
    #[serde(with = "humantime_serde_duration")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "10s"))]
    pub poll_interval: Duration,
    /// How long to wait before repeating a session-level action that failed
    /// for a reason a retry cannot fix by itself (a missing group, a refused
    /// request): the operator may fix it meanwhile.
    #[serde(with = "humantime_serde_duration")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "30s"))]
    pub error_retry_interval: Duration,
    /// Steer new jobs away from the nodes still to upgrade: their scheduling
    /// weight in the workload manager is raised while the session runs (the
    /// scheduler fills the lowest weights first, so upgraded nodes), and each
    /// node's own weight is restored when it returns to service, fails, or
    /// the session ends, halts or is deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub steer_jobs: bool,
    /// Leave alone the nodes already on the target image: at the snapshot
    /// the boot orchestrator is asked which image each node runs, and those
    /// on the template are neither drained nor booted, reported skipped
    /// ("already on the target image"), so a session re-run after a partial
    /// one redoes nothing. `false` upgrades every node, as CRUS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_matching: bool,
    /// Drain ahead (with `strategy: continuous` and `order: drain_cost`):
    /// the pending nodes whose jobs end soonest are drained while those jobs
    /// still run, without holding a place in the step, so no new job lands
    /// on them and each is quiet about when a place frees (see
    /// `rollout/drain_ahead.rs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain_ahead: bool,
    /// With `drain_ahead`: at most this many nodes draining ahead at once;
    /// `None` is the step size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_draining: Option<u32>,
    /// Reserve ahead (with `strategy: continuous` and `order: drain_cost`):
    /// each node still to upgrade is reserved in the workload manager from
    /// the time the session plans to take it, so the scheduler starts there
    /// only jobs that end by then, and the node is quiet when its place in
    /// the step frees (see `rollout/reserve_ahead.rs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reserve_ahead: bool,
    /// Tag each node this session upgrades with the workload-manager
    /// feature naming its image (`img_<template>`, replacing any older
    /// `img_*`), so jobs can ask (`--constraint`) to run on one image; the
    /// other nodes keep their own features (see `rollout/image_tags.rs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub image_features: bool,
    /// Site hooks run at `pre_drain`, `pre_boot` and `post_boot`, per node
    /// or per step (see `rollout/hooks.rs`). Empty: none, as CRUS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<super::Hook>,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy {
            strategy: Strategy::Steps,
            order: Order::Inventory,
            spread: None,
            align: None,
            step_percent: None,
            max_failures: None,
            min_available: None,
            max_boots_per_minute: None,
            canary: None,
            drain_timeout: None,
            on_drain_timeout: OnDrainTimeout::Wait,
            foreign_out_of_service: super::ForeignOutOfService::UpgradeAndRestore,
            boot_timeout: Duration::from_secs(10 * 60),
            retries: 0,
            escalate_power_cycle: false,
            power_cycle_grace: None,
            health: None,
            windows: Vec::new(),
            gates: Vec::new(),
            max_hold: None,
            rollback: None,
            poll_interval: Duration::from_secs(10),
            error_retry_interval: Duration::from_secs(30),
            steer_jobs: false,
            skip_matching: false,
            drain_ahead: false,
            max_draining: None,
            reserve_ahead: false,
            image_features: false,
            hooks: Vec::new(),
        }
    }
}

impl RolloutPolicy {
    /// How long a graceful power restart has before a forced one.
    pub fn graceful_restart_grace(&self) -> Duration {
        self.power_cycle_grace.unwrap_or(self.boot_timeout)
    }

    /// The failure domain nodes are grouped by, when the policy groups them.
    pub fn domain(&self) -> Option<Domain> {
        self.spread.or(self.align)
    }

    /// How many failed nodes a session of `total` nodes tolerates, if bounded.
    pub fn failure_budget(&self, total: usize) -> Option<usize> {
        self.max_failures.map(|budget| budget.allowed(total))
    }
}

/// How nodes move through the rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// CRUS's procedure: a step is drained, booted and returned to service,
    /// and only then does the next step begin.
    #[default]
    Steps,
    /// A sliding window: as soon as a node is done the next one is taken,
    /// never more than the step size out of service; each node boots as soon
    /// as it is drained.
    Continuous,
}

/// Which pending node is taken next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// The starting group sorted by location (cabinet, chassis, slot, node), as CRUS.
    #[default]
    Inventory,
    /// Idle nodes first, then by the earliest expected end of their running
    /// jobs; re-evaluated each time nodes are taken.
    DrainCost,
    /// Drain-cost order within the failure-domain rule of `spread` or `align`.
    Topology,
}

/// A failure domain of the Cray EX hierarchy, read from the xname.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// A compute blade (slot): `x1000c0s3`.
    Blade,
    /// A chassis: `x1000c0`.
    Chassis,
    /// A cabinet: `x1000`.
    Cabinet,
}

impl Domain {
    /// The name as written in requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Blade => "blade",
            Domain::Chassis => "chassis",
            Domain::Cabinet => "cabinet",
        }
    }
}

/// A limit on failed nodes: a count, or a percentage of the starting group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FailureBudget {
    /// At most this many failed nodes.
    Count(u32),
    /// At most this percentage (0–100) of the session's nodes, rounded down.
    Percent(f64),
}

impl FailureBudget {
    /// How many failed nodes are tolerated out of `total`.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            FailureBudget::Count(count) => usize::try_from(count).unwrap_or(usize::MAX),
            // Rounded down: "10%" of 15 nodes tolerates 1 failure, not 2.
            FailureBudget::Percent(percent) => ((total as f64) * percent / 100.0).floor() as usize,
        }
    }

    /// Parses `3` or `"10%"`.
    pub fn parse(value: &serde_json::Value) -> Result<Self, String> {
        match value {
            serde_json::Value::Number(number) => number
                .as_u64()
                .and_then(|count| u32::try_from(count).ok())
                .map(FailureBudget::Count)
                .ok_or_else(|| "Must be a whole number of nodes, 0 or more.".to_string()),
            serde_json::Value::String(text) => {
                let percent = text
                    .trim()
                    .strip_suffix('%')
                    .and_then(|number| number.trim().parse::<f64>().ok())
                    .ok_or_else(|| format!("{text:?} is not a percentage such as \"10%\"."))?;
                if (0.0..=100.0).contains(&percent) {
                    Ok(FailureBudget::Percent(percent))
                } else {
                    Err("Must be between 0% and 100%.".to_string())
                }
            }
            _ => Err("Must be a count (3) or a percentage (\"10%\").".to_string()),
        }
    }
}

impl Serialize for FailureBudget {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FailureBudget::Count(count) => serializer.serialize_u32(*count),
            FailureBudget::Percent(percent) => serializer.collect_str(&format_args!("{percent}%")),
        }
    }
}

impl<'de> Deserialize<'de> for FailureBudget {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        FailureBudget::parse(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for FailureBudget {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^\d+(\.\d+)?%$")),
            )
            .description(Some("A count of nodes, or a percentage such as \"10%\"."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for FailureBudget {}

/// A first batch of `size` nodes, upgraded before any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// Nodes in the canary batch.
    pub size: u32,
    /// Pause once the canary batch is done, until an operator resumes; when
    /// false the session continues by itself if no canary node failed, and
    /// halts otherwise.
    #[serde(default = "default_true")]
    pub pause_after: bool,
}

fn default_true() -> bool {
    true
}

/// What happens to a node still draining when `drain_timeout` expires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum OnDrainTimeout {
    /// Keep waiting for its jobs to end (CRUS's behaviour).
    #[default]
    Wait,
    /// Return it to service without upgrading it; it is recorded as skipped.
    Skip,
    /// Ask the workload manager to requeue its jobs, then carry on.
    Requeue,
    /// Reboot it with its jobs still running; recorded in the messages.
    Force,
}

/// Checks a booted node must pass before it counts as upgraded, on top of
/// the workload manager seeing it answer again (always required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthGate {
    /// A command run with the node name as its last argument; exit 0 is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A URL template probed with GET, `{node}` replaced by the node name;
    /// a 2xx answer is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// How long the node must stay healthy before it counts as upgraded.
    #[serde(default, with = "humantime_serde_duration")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "5m"))]
    pub soak: Duration,
}

impl HealthGate {
    /// The command and HTTP probe to run on a booted node, if the gate has
    /// either (a gate with only a soak relies on the workload manager alone).
    pub fn check(&self) -> Option<HealthCheck> {
        let check = HealthCheck {
            command: self.command.clone(),
            http: self.http.clone(),
        };
        (!check.is_empty()).then_some(check)
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

/// Optional durations as humantime text.
mod humantime_serde_option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.collect_str(&humantime::format_duration(*duration)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(text) => humantime::parse_duration(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_counts_and_percentages() {
        assert_eq!(
            FailureBudget::parse(&serde_json::json!(3)),
            Ok(FailureBudget::Count(3))
        );
        assert_eq!(
            FailureBudget::parse(&serde_json::json!("12.5%")),
            Ok(FailureBudget::Percent(12.5))
        );
        for bad in [
            serde_json::json!(-1),
            serde_json::json!("ten"),
            serde_json::json!("150%"),
            serde_json::json!(true),
        ] {
            assert!(FailureBudget::parse(&bad).is_err(), "{bad}");
        }
        assert_eq!(FailureBudget::Percent(10.0).allowed(15), 1);
        assert_eq!(FailureBudget::Count(2).allowed(15), 2);
    }

    #[test]
    fn a_stored_policy_from_before_the_controls_still_loads() {
        let old = serde_json::json!({
            "boot_timeout": "10m", "poll_interval": "10s", "error_retry_interval": "30s"
        });
        let policy: RolloutPolicy = serde_json::from_value(old).unwrap();
        assert_eq!(policy, RolloutPolicy::default());
    }

    #[test]
    fn policies_round_trip() {
        let policy = RolloutPolicy {
            strategy: Strategy::Continuous,
            order: Order::Topology,
            spread: Some(Domain::Chassis),
            max_failures: Some(FailureBudget::Percent(5.0)),
            canary: Some(Canary {
                size: 2,
                pause_after: false,
            }),
            drain_timeout: Some(Duration::from_secs(7200)),
            on_drain_timeout: OnDrainTimeout::Skip,
            health: Some(HealthGate {
                command: Some("/usr/bin/check".into()),
                http: None,
                soak: Duration::from_secs(60),
            }),
            ..RolloutPolicy::default()
        };
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(json["max_failures"], "5%");
        assert_eq!(json["drain_timeout"], "2h");
        let back: RolloutPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(back, policy);
    }
}
