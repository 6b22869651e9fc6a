//! `PolicyRequest`: the optional `policy` object of `POST /session`, an
//! addition to CRUS's body. Every field is optional; what is left out takes
//! the server's default, which behaves as CRUS did.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::FieldErrors;
use crate::ports::GateCheck;
use crate::rollout::{
    Canary, Domain, FailureBudget, ForeignOutOfService, HealthGate, Hook, MaintenanceWindow,
    OnDrainTimeout, Order, Rollback, RolloutPolicy, Strategy,
};

/// What a client asked of the rollout; applied over the server's defaults
/// with [`PolicyRequest::apply`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// `steps` (default) or `continuous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// `inventory` (default), `drain_cost` or `topology`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// With `order: topology`: `blade`, `chassis` or `cabinet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Domain>,
    /// With `order: topology`: `chassis` or `cabinet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub align: Option<Domain>,
    /// Step size as a percentage (0–100] of the starting group, instead of
    /// `upgrade_step_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_percent: Option<f64>,
    /// A count (`90`) or a percentage (`"90%"`, rounded down) of the
    /// starting group that must stay in service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<FailureBudget>,
    /// At most this many nodes' boots requested in any minute (1 or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_boots_per_minute: Option<u32>,
    /// A count (`3`) or a percentage (`"10%"`) of failed nodes tolerated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<FailureBudget>,
    /// `{ "size": N, "pause_after": true }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// e.g. `"2h"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "2h"))]
    pub drain_timeout: Option<String>,
    /// `wait` (default), `skip`, `requeue` or `force`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_drain_timeout: Option<OnDrainTimeout>,
    /// `upgrade_and_restore` (default), `skip` or `wait`: what happens to a
    /// node someone else took out of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign_out_of_service: Option<ForeignOutOfService>,
    /// e.g. `"15m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "15m"))]
    pub boot_timeout: Option<String>,
    /// Extra boots of a node whose boot failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Power-cycle a node that did not come back before retrying it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_power_cycle: Option<bool>,
    /// With `escalate_power_cycle`: how long a graceful restart has before
    /// a forced one, e.g. `"5m"` (default: the boot timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "5m"))]
    pub power_cycle_grace: Option<String>,
    /// Checks before a node counts as upgraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthGate>,
    /// When new nodes may be taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Vec<MaintenanceWindow>>,
    /// Raise the scheduling weight of the nodes still to upgrade, so new
    /// jobs go to upgraded nodes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steer_jobs: Option<bool>,
    /// Drain nodes ahead of their place in the step, while their jobs end
    /// (needs `strategy: continuous` and `order: drain_cost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_ahead: Option<bool>,
    /// With `drain_ahead`: at most this many nodes draining ahead at once
    /// (1 or more; default the step size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_draining: Option<u32>,
    /// Reserve each node still to upgrade from the time the session plans
    /// to take it, so only jobs that end by then start there (needs
    /// `strategy: continuous` and `order: drain_cost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_ahead: Option<bool>,
    /// Alert gates, in addition to the server's: each
    /// `{"prometheus": URL, "query": "...", "block_when": "nonempty"}` or
    /// `{"alertmanager": URL, "filter": ["severity=critical"]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub gates: Option<Vec<GateCheck>>,
    /// How long the gates may hold the session before it halts, e.g. `"2h"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "2h"))]
    pub max_hold: Option<String>,
    /// Leave alone (report skipped) the nodes the boot orchestrator says
    /// already run the target template; refused (422) where it cannot tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_matching: Option<bool>,
    /// Boot nodes whose upgrade failed back to the image they ran before:
    /// `{"template": "<previous image>", "on": ["node_failed"]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// Tag each upgraded node with the workload-manager feature naming its
    /// image (`img_<template>`), so jobs can ask for it with `--constraint`;
    /// refused (422) where the workload manager cannot set features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_features: Option<bool>,
    /// Site hooks, each `{"at": "pre_drain"|"pre_boot"|"post_boot", "per":
    /// "node"|"step", "command": [argv...] | "http": {"url": URL},
    /// "timeout": "5m", "idempotent": false, "on_failure": "fail_node"|"halt"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Vec<Hook>>,
}

/// The most boot retries a request may ask for: beyond this a node is broken,
/// not unlucky, and the session should say so.
const MAX_RETRIES: u32 = 10;

impl PolicyRequest {
    /// Parses the `policy` member of a request body, reporting each problem
    /// under `policy.<field>`.
    pub fn from_json(value: &Value) -> Result<PolicyRequest, FieldErrors> {
        let mut errors = FieldErrors::new();
        let Some(object) = value.as_object() else {
            errors.insert(
                "policy".to_string(),
                vec!["Must be a JSON object.".to_string()],
            );
            return Err(errors);
        };
        let mut request = PolicyRequest::default();
        for (key, field) in object {
            if let Err(message) = request.set(key, field) {
                errors
                    .entry(format!("policy.{key}"))
                    .or_default()
                    .push(message);
            }
        }
        if errors.is_empty() {
            for (key, message) in request.consistency_errors() {
                errors
                    .entry(format!("policy.{key}"))
                    .or_default()
                    .push(message);
            }
        }
        if errors.is_empty() {
            Ok(request)
        } else {
            Err(errors)
        }
    }

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> Result<Option<T>, String> {
            if value.is_null() {
                return Ok(None);
            }
            serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|error| sentence(&error.to_string()))
        }
        match key {
            "strategy" => self.strategy = parse(value)?,
            "order" => self.order = parse(value)?,
            "spread" => self.spread = parse(value)?,
            "align" => self.align = parse(value)?,
            "step_percent" => self.step_percent = parse(value)?,
            "max_failures" => self.max_failures = parse(value)?,
            "min_available" => self.min_available = parse(value)?,
            "max_boots_per_minute" => self.max_boots_per_minute = parse(value)?,
            "canary" => self.canary = parse(value)?,
            "drain_timeout" => self.drain_timeout = parse_duration(value)?,
            "on_drain_timeout" => self.on_drain_timeout = parse(value)?,
            "foreign_out_of_service" => self.foreign_out_of_service = parse(value)?,
            "boot_timeout" => self.boot_timeout = parse_duration(value)?,
            "retries" => self.retries = parse(value)?,
            "escalate_power_cycle" => self.escalate_power_cycle = parse(value)?,
            "power_cycle_grace" => self.power_cycle_grace = parse_duration(value)?,
            "health" => self.health = parse(value)?,
            "windows" => self.windows = parse(value)?,
            "steer_jobs" => self.steer_jobs = parse(value)?,
            "drain_ahead" => self.drain_ahead = parse(value)?,
            "max_draining" => self.max_draining = parse(value)?,
            "reserve_ahead" => self.reserve_ahead = parse(value)?,
            "gates" => self.gates = parse_gates(value)?,
            "max_hold" => self.max_hold = parse_duration(value)?,
            "skip_matching" => self.skip_matching = parse(value)?,
            "rollback" => self.rollback = parse(value)?,
            "image_features" => self.image_features = parse(value)?,
            "hooks" => self.hooks = parse_hooks(value)?,
            _ => return Err("Unknown field.".to_string()),
        }
        Ok(())
    }

    /// Problems between fields, or with values serde accepted.
    fn consistency_errors(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        let topology = self.order == Some(Order::Topology);
        if let Some(domain) = self.spread
            && !topology
        {
            errors.push((
                "spread",
                format!(
                    "Needs \"order\": \"topology\" (spread: {}).",
                    domain.as_str()
                ),
            ));
        }
        if let Some(domain) = self.align {
            if !topology {
                errors.push(("align", "Needs \"order\": \"topology\".".to_string()));
            }
            if domain == Domain::Blade {
                errors.push(("align", "Must be one of: chassis, cabinet.".to_string()));
            }
        }
        if self.spread.is_some() && self.align.is_some() {
            errors.push((
                "align",
                "Give spread or align, not both: one keeps domains apart, the other takes them whole."
                    .to_string(),
            ));
        }
        if topology && self.spread.is_none() && self.align.is_none() {
            errors.push((
                "order",
                "\"topology\" needs \"spread\" (blade, chassis, cabinet) or \"align\" (chassis, cabinet)."
                    .to_string(),
            ));
        }
        if let Some(percent) = self.step_percent
            && !(percent > 0.0 && percent <= 100.0)
        {
            errors.push((
                "step_percent",
                "Must be more than 0 and at most 100.".to_string(),
            ));
        }
        if let Some(canary) = self.canary
            && canary.size == 0
        {
            errors.push(("canary", "size must be at least 1.".to_string()));
        }
        if self.max_boots_per_minute == Some(0) {
            errors.push((
                "max_boots_per_minute",
                "Must be at least 1 (leave it out for no limit).".to_string(),
            ));
        }
        if let Some(retries) = self.retries
            && retries > MAX_RETRIES
        {
            errors.push(("retries", format!("Must be at most {MAX_RETRIES}.")));
        }
        let waits = matches!(self.on_drain_timeout, None | Some(OnDrainTimeout::Wait));
        if !waits && self.drain_timeout.is_none() {
            errors.push((
                "on_drain_timeout",
                "Needs \"drain_timeout\", the time after which it applies.".to_string(),
            ));
        }
        if let Some(text) = &self.boot_timeout
            && humantime::parse_duration(text).is_ok_and(|timeout| timeout.is_zero())
        {
            errors.push(("boot_timeout", "Must be longer than 0s.".to_string()));
        }
        if let Some(text) = &self.power_cycle_grace
            && humantime::parse_duration(text).is_ok_and(|grace| grace.is_zero())
        {
            errors.push(("power_cycle_grace", "Must be longer than 0s.".to_string()));
        }
        if self.power_cycle_grace.is_some() && self.escalate_power_cycle != Some(true) {
            errors.push((
                "power_cycle_grace",
                "Applies only with \"escalate_power_cycle\": true.".to_string(),
            ));
        }
        if let Some(health) = &self.health {
            if let Some(url) = &health.http
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                errors.push((
                    "health",
                    format!("http must be an http:// or https:// URL template, not {url:?}."),
                ));
            }
            if health
                .command
                .as_deref()
                .is_some_and(|command| command.trim().is_empty())
            {
                errors.push(("health", "command must not be empty.".to_string()));
            }
        }
        if let Some(text) = &self.max_hold
            && humantime::parse_duration(text).is_ok_and(|hold| hold.is_zero())
        {
            errors.push(("max_hold", "Must be longer than 0s.".to_string()));
        }
        for problem in self.rollback.iter().flat_map(Rollback::problems) {
            errors.push(("rollback", problem));
        }
        for problem in crate::rollout::hook_problems(
            self.hooks.as_deref().unwrap_or_default(),
            self.drain_ahead == Some(true),
        ) {
            errors.push(("hooks", problem));
        }
        errors.extend(crate::rollout::drain_ahead_errors(
            self.drain_ahead,
            self.max_draining,
            self.strategy,
            self.order,
        ));
        errors.extend(crate::rollout::reserve_ahead_errors(
            self.reserve_ahead,
            self.strategy,
            self.order,
        ));
        for window in self.windows.iter().flatten() {
            if let Err(message) = window.validate() {
                errors.push(("windows", message));
            }
        }
        errors
    }

    /// The policy a session runs with: `defaults`, with what this request set.
    pub fn apply(&self, defaults: &RolloutPolicy) -> RolloutPolicy {
        let duration = |text: &Option<String>| {
            text.as_deref()
                .and_then(|text| humantime::parse_duration(text).ok())
        };
        RolloutPolicy {
            strategy: self.strategy.unwrap_or(defaults.strategy),
            order: self.order.unwrap_or(defaults.order),
            spread: self.spread.or(defaults.spread),
            align: self.align.or(defaults.align),
            step_percent: self.step_percent.or(defaults.step_percent),
            max_failures: self.max_failures.or(defaults.max_failures),
            min_available: self.min_available.or(defaults.min_available),
            max_boots_per_minute: self.max_boots_per_minute.or(defaults.max_boots_per_minute),
            canary: self.canary.or(defaults.canary),
            drain_timeout: duration(&self.drain_timeout).or(defaults.drain_timeout),
            on_drain_timeout: self.on_drain_timeout.unwrap_or(defaults.on_drain_timeout),
            foreign_out_of_service: self
                .foreign_out_of_service
                .unwrap_or(defaults.foreign_out_of_service),
            boot_timeout: duration(&self.boot_timeout).unwrap_or(defaults.boot_timeout),
            retries: self.retries.unwrap_or(defaults.retries),
            escalate_power_cycle: self
                .escalate_power_cycle
                .unwrap_or(defaults.escalate_power_cycle),
            power_cycle_grace: duration(&self.power_cycle_grace).or(defaults.power_cycle_grace),
            health: self.health.clone().or_else(|| defaults.health.clone()),
            windows: self
                .windows
                .clone()
                .unwrap_or_else(|| defaults.windows.clone()),
            // The server's gates hold every session; a request adds its own.
            gates: defaults
                .gates
                .iter()
                .chain(self.gates.iter().flatten())
                .cloned()
                .collect(),
            max_hold: duration(&self.max_hold).or(defaults.max_hold),
            rollback: self.rollback.clone().or_else(|| defaults.rollback.clone()),
            poll_interval: defaults.poll_interval,
            error_retry_interval: defaults.error_retry_interval,
            steer_jobs: self.steer_jobs.unwrap_or(defaults.steer_jobs),
            skip_matching: self.skip_matching.unwrap_or(defaults.skip_matching),
            drain_ahead: self.drain_ahead.unwrap_or(defaults.drain_ahead),
            max_draining: self.max_draining.or(defaults.max_draining),
            reserve_ahead: self.reserve_ahead.unwrap_or(defaults.reserve_ahead),
            image_features: self.image_features.unwrap_or(defaults.image_features),
            hooks: self.hooks.clone().unwrap_or_else(|| defaults.hooks.clone()),
        }
    }
}

/// A list of gates, each problem named with the gate's position.
fn parse_gates(value: &Value) -> Result<Option<Vec<GateCheck>>, String> {
    let Some(items) = value.as_array() else {
        return if value.is_null() {
            Ok(None)
        } else {
            Err("Must be a list of gates.".to_string())
        };
    };
    let mut gates = Vec::with_capacity(items.len());
    for (position, item) in items.iter().enumerate() {
        let gate = serde_json::from_value(item.clone())
            .map_err(|error| format!("Gate {position}: {}", sentence(&error.to_string())))?;
        gates.push(gate);
    }
    Ok(Some(gates))
}

/// A list of hooks, each problem named with the hook's position.
fn parse_hooks(value: &Value) -> Result<Option<Vec<Hook>>, String> {
    let Some(items) = value.as_array() else {
        return if value.is_null() {
            Ok(None)
        } else {
            Err("Must be a list of hooks.".to_string())
        };
    };
    let mut hooks = Vec::with_capacity(items.len());
    for (position, item) in items.iter().enumerate() {
        let hook = serde_json::from_value(item.clone())
            .map_err(|error| format!("Hook {position}: {}", sentence(&error.to_string())))?;
        hooks.push(hook);
    }
    Ok(Some(hooks))
}

/// A humantime duration given as text.
fn parse_duration(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => humantime::parse_duration(text)
            .map(|_: Duration| Some(text.clone()))
            .map_err(|error| {
                format!("{text:?} is not a duration such as \"90s\" or \"2h\": {error}.")
            }),
        _ => Err("Must be a duration such as \"90s\" or \"2h\".".to_string()),
    }
}

/// serde's messages, as sentences like the rest of the 422 body.
fn sentence(message: &str) -> String {
    let mut text = message.trim().to_string();
    if let Some(first) = text.get(..1) {
        text.replace_range(..1, &first.to_uppercase());
    }
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// Reads the `policy` member of a body object, if present.
pub(crate) fn policy_member(
    object: &Map<String, Value>,
) -> Option<Result<PolicyRequest, FieldErrors>> {
    match object.get("policy") {
        None | Some(Value::Null) => None,
        Some(value) => Some(PolicyRequest::from_json(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_policy_parses_and_applies_over_the_defaults() {
        let request = PolicyRequest::from_json(&json!({
            "strategy": "continuous",
            "order": "topology",
            "spread": "chassis",
            "max_failures": "10%",
            "canary": {"size": 2},
            "drain_timeout": "2h",
            "on_drain_timeout": "skip",
            "boot_timeout": "15m",
            "retries": 1,
            "health": {"command": "/usr/local/bin/nodecheck", "soak": "1m"},
            "windows": [{"days": ["sat", "sun"], "start": "08:00", "end": "20:00"}]
        }))
        .unwrap();
        let policy = request.apply(&RolloutPolicy::default());
        assert_eq!(policy.strategy, Strategy::Continuous);
        assert_eq!(policy.spread, Some(Domain::Chassis));
        assert_eq!(policy.max_failures, Some(FailureBudget::Percent(10.0)));
        assert_eq!(policy.canary.map(|canary| canary.pause_after), Some(true));
        assert_eq!(policy.drain_timeout, Some(Duration::from_secs(7200)));
        assert_eq!(policy.boot_timeout, Duration::from_secs(900));
        assert_eq!(policy.retries, 1);
        assert_eq!(policy.windows.len(), 1);
        assert_eq!(policy.poll_interval, RolloutPolicy::default().poll_interval);
    }

    #[test]
    fn a_rollback_parses_with_node_failed_by_default_and_bad_ones_are_refused() {
        let request =
            PolicyRequest::from_json(&json!({"rollback": {"template": "old-image"}})).unwrap();
        let rollback = request.apply(&RolloutPolicy::default()).rollback.unwrap();
        assert_eq!(rollback.template, "old-image");
        assert_eq!(rollback.on, [crate::rollout::RollbackTrigger::NodeFailed]);
        assert!(!rollback.revert_upgraded_on_halt);
        // Reverting a halted session's upgrades is carried out: accepted.
        let request = PolicyRequest::from_json(
            &json!({"rollback": {"template": "old", "revert_upgraded_on_halt": true, "batch": 2}}),
        )
        .unwrap();
        let rollback = request.apply(&RolloutPolicy::default()).rollback.unwrap();
        assert!(rollback.revert_upgraded_on_halt);
        assert_eq!(rollback.batch, Some(2));
        for body in [
            json!({"rollback": {"template": ""}}),
            json!({"rollback": {"template": "old", "batch": 0}}),
            json!({"rollback": {"template": "old", "on": []}}),
            json!({"rollback": {"template": "old", "on": ["node_rebooted"]}}),
            json!({"rollback": {"template": "old", "colour": "blue"}}),
            json!({"rollback": {"template": "old", "revert_upgraded_on_halt": "yes"}}),
            json!({"rollback": {"template": "old", "revert_upgraded_on_halt": true, "batch": -1}}),
            json!({"rollback": "old"}),
        ] {
            let errors = PolicyRequest::from_json(&body).unwrap_err();
            assert!(errors.contains_key("policy.rollback"), "{body}: {errors:?}");
        }
    }

    #[test]
    fn image_features_parses_and_a_wrong_value_is_refused_under_its_field() {
        let request = PolicyRequest::from_json(&json!({"image_features": true})).unwrap();
        assert!(request.apply(&RolloutPolicy::default()).image_features);
        assert!(!RolloutPolicy::default().image_features);
        let errors = PolicyRequest::from_json(&json!({"image_features": "yes"})).unwrap_err();
        assert!(errors.contains_key("policy.image_features"), "{errors:?}");
    }

    #[test]
    fn hooks_parse_with_their_defaults_and_bad_ones_are_refused_naming_the_hook() {
        let request = PolicyRequest::from_json(&json!({"hooks": [
            {"at": "pre_boot", "command": ["/opt/site/fw.sh", "--apply"]},
            {"at": "post_boot", "per": "step", "http": {"url": "https://site.example/hook"},
             "timeout": "30s", "idempotent": true, "on_failure": "halt"}
        ]}))
        .unwrap();
        let hooks = request.apply(&RolloutPolicy::default()).hooks;
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].per, crate::rollout::HookScope::Node);
        assert_eq!(hooks[0].timeout, crate::rollout::DEFAULT_HOOK_TIMEOUT);
        assert!(!hooks[0].idempotent);
        assert_eq!(hooks[0].on_failure, crate::rollout::HookOnFailure::FailNode);
        assert_eq!(hooks[1].http.as_ref().unwrap().method, "POST");
        assert_eq!(hooks[1].on_failure, crate::rollout::HookOnFailure::Halt);
        for (body, said) in [
            (
                json!({"hooks": [{"at": "pre_boot"}]}),
                "Hook 0: Give command",
            ),
            (
                json!({"hooks": [{"at": "pre_boot", "command": []}]}),
                "Hook 0: command must name",
            ),
            (
                json!({"hooks": [{"at": "pre_boot", "command": ["/x"], "http": {"url": "http://a"}}]}),
                "not both",
            ),
            (
                json!({"hooks": [{"at": "pre_boot", "command": ["/x"], "timeout": "0s"}]}),
                "timeout",
            ),
            (
                json!({"hooks": [{"at": "pre_boot", "http": {"url": "ftp://a"}}]}),
                "http.url",
            ),
            (
                json!({"hooks": [{"at": "after_boot", "command": ["/x"]}]}),
                "Hook 0: Unknown variant",
            ),
            (
                json!({"hooks": [{"at": "pre_drain", "command": ["/x"]}], "drain_ahead": true,
                    "strategy": "continuous", "order": "drain_cost"}),
                "drain_ahead",
            ),
            (
                json!({"hooks": {"at": "pre_boot"}}),
                "Must be a list of hooks",
            ),
        ] {
            let errors = PolicyRequest::from_json(&body).unwrap_err();
            let messages = errors
                .get("policy.hooks")
                .unwrap_or_else(|| panic!("{body}: {errors:?}"));
            assert!(
                messages.iter().any(|m| m.contains(said)),
                "{body}: {messages:?}"
            );
        }
    }

    #[test]
    fn an_empty_policy_is_crus() {
        let request = PolicyRequest::from_json(&json!({})).unwrap();
        assert_eq!(
            request.apply(&RolloutPolicy::default()),
            RolloutPolicy::default()
        );
    }

    #[test]
    fn every_problem_is_reported_under_its_field() {
        let errors = PolicyRequest::from_json(&json!({
            "strategy": "sideways",
            "max_failures": "lots",
            "drain_timeout": "soon",
            "colour": "blue"
        }))
        .unwrap_err();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "policy.colour",
                "policy.drain_timeout",
                "policy.max_failures",
                "policy.strategy"
            ]
        );
        assert_eq!(errors["policy.colour"], ["Unknown field."]);
        assert!(
            errors["policy.strategy"][0].contains("sideways"),
            "{errors:?}"
        );
    }

    #[test]
    fn drain_ahead_needs_the_sliding_window_in_drain_cost_order() {
        let good = json!({"strategy": "continuous", "order": "drain_cost", "drain_ahead": true, "max_draining": 3});
        let request = PolicyRequest::from_json(&good).unwrap();
        let policy = request.apply(&RolloutPolicy::default());
        assert!(policy.drain_ahead);
        assert_eq!(policy.max_draining, Some(3));
        for (body, field) in [
            (json!({"drain_ahead": true}), "policy.drain_ahead"),
            (
                json!({"strategy": "continuous", "drain_ahead": true}),
                "policy.drain_ahead",
            ),
            (json!({"max_draining": 2}), "policy.max_draining"),
            (
                json!({"strategy": "continuous", "order": "drain_cost", "drain_ahead": true, "max_draining": 0}),
                "policy.max_draining",
            ),
        ] {
            let errors = PolicyRequest::from_json(&body).unwrap_err();
            assert!(errors.contains_key(field), "{body}: {errors:?}");
        }
        // Without the fields, nothing changes: the contract is CRUS's.
        assert!(
            !PolicyRequest::from_json(&json!({}))
                .unwrap()
                .apply(&RolloutPolicy::default())
                .drain_ahead
        );
    }

    #[test]
    fn inconsistent_fields_are_refused() {
        for (body, field) in [
            (json!({"spread": "chassis"}), "policy.spread"),
            (json!({"order": "topology"}), "policy.order"),
            (
                json!({"order": "topology", "spread": "blade", "align": "cabinet"}),
                "policy.align",
            ),
            (
                json!({"order": "topology", "align": "blade"}),
                "policy.align",
            ),
            (json!({"step_percent": 0}), "policy.step_percent"),
            (json!({"step_percent": 120}), "policy.step_percent"),
            (json!({"canary": {"size": 0}}), "policy.canary"),
            (
                json!({"on_drain_timeout": "force"}),
                "policy.on_drain_timeout",
            ),
            (json!({"retries": 99}), "policy.retries"),
            (json!({"boot_timeout": "0s"}), "policy.boot_timeout"),
            (
                json!({"health": {"http": "ftp://x/{node}"}}),
                "policy.health",
            ),
        ] {
            let errors = PolicyRequest::from_json(&body).unwrap_err();
            assert!(errors.contains_key(field), "{body}: {errors:?}");
        }
        assert!(PolicyRequest::from_json(&json!([1])).is_err());
    }
}
