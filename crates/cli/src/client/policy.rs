//! The rollout policy flags of `crus session create`, turned into the core's
//! [`PolicyRequest`], the optional `policy` object of `POST /session` (a
//! crus addition: without any of these flags the body is exactly CRUS's).
//! The flags take the values the API does: the enums are the core's.

use clap::Args;
use crus_core::ports::{BlockWhen, GateCheck};
use crus_core::rollout::{
    Canary, Domain, FailureBudget, ForeignOutOfService, HealthGate, MaintenanceWindow,
    OnDrainTimeout, Order, Rollback, RollbackTrigger, Strategy,
};
use crus_core::session::PolicyRequest;
use serde_json::{Map, Value, json};

/// Flags that fill the `policy` object; each is left out of it unless given.
#[derive(Debug, Default, Args)]
pub struct PolicyArgs {
    /// `steps` (CRUS's) or `continuous`.
    #[arg(long, value_enum, help_heading = "Rollout policy")]
    pub strategy: Option<Strategy>,
    /// Which node is taken next.
    #[arg(long, value_enum, help_heading = "Rollout policy")]
    pub order: Option<Order>,
    /// With `--order topology`: never two nodes of one domain out at once.
    #[arg(long, value_enum, help_heading = "Rollout policy")]
    pub spread: Option<Domain>,
    /// With `--order topology`: take whole domains together (chassis or cabinet).
    #[arg(long, value_enum, help_heading = "Rollout policy")]
    pub align: Option<Domain>,
    /// Step size as a percentage (0–100] of the starting group, instead of --upgrade-step-size.
    #[arg(long, value_name = "P", help_heading = "Rollout policy")]
    pub step_percent: Option<f64>,
    /// Failed nodes tolerated before the session halts: a count (3) or a percentage (10%).
    #[arg(long, value_name = "N|P%", value_parser = parse_failure_budget, help_heading = "Rollout policy")]
    pub max_failures: Option<FailureBudget>,
    /// Nodes of the starting group that must stay in service, counting every
    /// node out for any reason: a count (90) or a percentage (90%, rounded down).
    #[arg(long, value_name = "N|P%", value_parser = parse_failure_budget, help_heading = "Rollout policy")]
    pub min_available: Option<FailureBudget>,
    /// At most this many nodes' boots requested in any minute.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Rollout policy")]
    pub max_boots_per_minute: Option<u32>,
    /// What happens to a node someone else took out of service; crus never resumes it.
    #[arg(long, value_enum, help_heading = "Rollout policy")]
    pub foreign_out_of_service: Option<ForeignOutOfService>,
    /// Upgrade this many nodes first, then pause until resumed.
    #[arg(long, value_name = "N", help_heading = "Rollout policy")]
    pub canary: Option<u32>,
    /// With --canary: carry on by itself after the canary if none of its nodes failed.
    #[arg(long, requires = "canary", help_heading = "Rollout policy")]
    pub canary_no_pause: bool,
    /// How long a node may take to drain before --on-drain-timeout applies (e.g. 2h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_text, help_heading = "Rollout policy")]
    pub drain_timeout: Option<String>,
    /// What happens to a node still draining after --drain-timeout.
    #[arg(
        long,
        value_enum,
        requires = "drain_timeout",
        help_heading = "Rollout policy"
    )]
    pub on_drain_timeout: Option<OnDrainTimeout>,
    /// How long a node may take to boot and answer again (e.g. 15m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_text, help_heading = "Rollout policy")]
    pub boot_timeout: Option<String>,
    /// Extra boots of a node whose boot failed.
    #[arg(long, value_name = "N", help_heading = "Rollout policy")]
    pub retries: Option<u32>,
    /// Power-restart a node that does not come back within the boot timeout
    /// (gracefully, then by force) before retrying or failing it.
    #[arg(long, help_heading = "Rollout policy")]
    pub escalate_power_cycle: bool,
    /// How long a graceful power restart has before a forced one (default:
    /// the boot timeout).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_text, requires = "escalate_power_cycle", help_heading = "Rollout policy")]
    pub power_cycle_grace: Option<String>,
    /// When new nodes may be taken, e.g. 'sat,sun 22:00-06:00 Europe/Paris'
    /// (days and time zone optional); repeat for several windows.
    #[arg(long = "window", value_name = "[DAYS] HH:MM-HH:MM [TZ]", value_parser = parse_window, help_heading = "Rollout policy")]
    pub windows: Vec<MaintenanceWindow>,
    /// Health check run with the node name as its last argument; exit 0 is healthy.
    #[arg(long, value_name = "CMD", help_heading = "Rollout policy")]
    pub health_command: Option<String>,
    /// Health check URL, `{node}` replaced by the node name; a 2xx answer is healthy.
    #[arg(long, value_name = "URL", help_heading = "Rollout policy")]
    pub health_http: Option<String>,
    /// How long a node must stay healthy before it counts as upgraded.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_text, help_heading = "Rollout policy")]
    pub soak: Option<String>,
    /// Steer new jobs to upgraded nodes: the nodes still to upgrade get a
    /// higher scheduling weight (Slurm `Weight`) until each returns, then
    /// their own back. For the shortest upgrade: --strategy continuous
    /// --order drain-cost --steer-jobs --reserve-ahead (efficiency bench:
    /// 0.30-0.38x of CRUS's upgrade time, 1.02-1.20x the lower bound). For
    /// the least disturbance to jobs: --strategy continuous --order
    /// drain-cost --steer-jobs (0.23-0.96x of the job waiting CRUS added;
    /// with a queue and small steps adding --reserve-ahead gave 0.32-0.43x,
    /// but where nodes stand idle and nothing queues it makes long jobs
    /// wait). See BENCHMARKS.md.
    #[arg(long, help_heading = "Rollout policy")]
    pub steer_jobs: bool,
    /// Leave alone the nodes the boot service says already run the
    /// template (reported skipped, "already on the target image"), so a
    /// session re-run after a partial one redoes nothing; refused where the
    /// boot backend cannot tell.
    #[arg(long, help_heading = "Rollout policy")]
    pub skip_matching: bool,
    /// With `--strategy continuous --order drain-cost`: drain the nodes whose
    /// jobs end soonest ahead of their place in the step, so no new job
    /// starts there; only nodes out of service and running nothing count
    /// against the step. A node drained ahead that goes quiet while the
    /// step is full goes back to service until a place frees. Efficiency
    /// bench: no shorter than without it (0.50-0.73x of CRUS's upgrade time
    /// with --steer-jobs), and about twice the drained-idle capacity.
    #[arg(long, help_heading = "Rollout policy")]
    pub drain_ahead: bool,
    /// With --drain-ahead: at most N nodes draining ahead at once (default:
    /// the step size).
    #[arg(long, value_name = "N", requires = "drain_ahead", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Rollout policy")]
    pub max_draining: Option<u32>,
    /// With `--strategy continuous --order drain-cost`: reserve each node
    /// still to upgrade (a Slurm maintenance reservation) from when the
    /// session plans to take it, so only jobs that end by then start there
    /// and the node is quiet when its turn comes; each reservation goes
    /// when its node is taken, and all when the session pauses, halts or
    /// ends. Refused where the workload manager cannot reserve nodes.
    /// No node is taken before the reservations are in place.
    /// Efficiency bench, with --steer-jobs: 0.30-0.38x of CRUS's upgrade
    /// time, 1.02-1.20x the lower bound; on a machine with an empty queue
    /// long jobs wait for upgraded nodes (see --steer-jobs).
    #[arg(long, help_heading = "Rollout policy")]
    pub reserve_ahead: bool,
    /// Tag each node the session upgrades with the Slurm feature naming its
    /// image (`img_<template>`, the old `img_*` removed), so multi-node jobs
    /// can ask for one image with `--constraint=img_<template>`; the other
    /// nodes keep their own features. Refused where the workload manager
    /// cannot set features.
    #[arg(long, help_heading = "Rollout policy")]
    pub image_features: bool,
    /// Hold the session while Alertmanager at URL has a firing alert
    /// matching every --gate-filter; repeat for several.
    #[arg(long, value_name = "URL", help_heading = "Alert gates")]
    pub gate_alertmanager: Vec<String>,
    /// A label matcher of the --gate-alertmanager gates, e.g.
    /// 'severity=critical'; repeat for several.
    #[arg(
        long,
        value_name = "MATCHER",
        requires = "gate_alertmanager",
        help_heading = "Alert gates"
    )]
    pub gate_filter: Vec<String>,
    /// Hold the session while a Prometheus instant query returns a series:
    /// 'URL QUERY', e.g. 'http://prom:9090 ALERTS{severity="critical"}';
    /// repeat for several.
    #[arg(long, value_name = "URL QUERY", value_parser = parse_prometheus_gate, help_heading = "Alert gates")]
    pub gate_prometheus: Vec<GateCheck>,
    /// How long the gates may hold the session before it halts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_text, help_heading = "Alert gates")]
    pub max_hold: Option<String>,
    /// Boot a node whose upgrade failed (after its retries and power
    /// escalation) back to this template, the image it ran before, and
    /// return it to service as reverted instead of failed.
    #[arg(long, value_name = "TEMPLATE", help_heading = "Rollback")]
    pub rollback_template: Option<String>,
    /// With --rollback-template: when the session halts (failure budget or
    /// --max-hold), boot the nodes it already upgraded back to that
    /// template too, and report them reverted.
    #[arg(long, requires = "rollback_template", help_heading = "Rollback")]
    pub revert_upgraded_on_halt: bool,
    /// With --revert-upgraded-on-halt: how many upgraded nodes are booted
    /// back at once (default: the step size).
    #[arg(long, value_name = "N", requires = "revert_upgraded_on_halt", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Rollback")]
    pub revert_batch: Option<u32>,
    /// A site hook: 'AT[:step]=PROGRAM ARGS' (no shell; split on spaces) or
    /// 'AT[:step]=URL' (POSTed a JSON body), AT one of pre_drain (before
    /// the node's drain), pre_boot (the node quiet, before its boot),
    /// post_boot (booted, before the health gate); ':step' runs it once per
    /// step. Commands get CRUS_NODE, CRUS_NODES, CRUS_SESSION, CRUS_TEMPLATE,
    /// CRUS_STEP, CRUS_HOOK, and run only where the server's crus.toml has
    /// [hooks] allow_commands = true. 5m timeout; a failure fails the node.
    /// Repeat for several.
    #[arg(long, value_name = "AT=COMMAND", value_parser = super::hook_flags::parse_hook, help_heading = "Site hooks")]
    pub hook: Vec<crus_core::rollout::Hook>,
    /// A JSON list of hooks with every option, as the API's policy.hooks:
    /// [{"at": "pre_boot", "per": "node", "command": ["/opt/fw.sh"],
    /// "timeout": "10m", "idempotent": false, "on_failure": "fail_node"}]
    /// (or "http": {"url": ...} instead of a command; on_failure "halt"
    /// halts the session). Run before the --hook ones.
    #[arg(long, value_name = "PATH", help_heading = "Site hooks")]
    pub hooks_file: Option<std::path::PathBuf>,
}

impl PolicyArgs {
    /// The `policy` object, or `None` when no policy flag was given.
    pub fn to_request(&self) -> Result<Option<PolicyRequest>, String> {
        let health =
            if self.health_command.is_some() || self.health_http.is_some() || self.soak.is_some() {
                Some(health_gate(
                    self.health_command.as_deref(),
                    self.health_http.as_deref(),
                    self.soak.as_deref(),
                )?)
            } else {
                None
            };
        let gates: Vec<GateCheck> = self
            .gate_alertmanager
            .iter()
            .map(|url| GateCheck::Alertmanager {
                url: url.clone(),
                filter: self.gate_filter.clone(),
            })
            .chain(self.gate_prometheus.iter().cloned())
            .collect();
        let request = PolicyRequest {
            strategy: self.strategy,
            order: self.order,
            spread: self.spread,
            align: self.align,
            step_percent: self.step_percent,
            max_failures: self.max_failures,
            min_available: self.min_available,
            max_boots_per_minute: self.max_boots_per_minute,
            foreign_out_of_service: self.foreign_out_of_service,
            canary: self.canary.map(|size| Canary {
                size,
                pause_after: !self.canary_no_pause,
            }),
            drain_timeout: self.drain_timeout.clone(),
            on_drain_timeout: self.on_drain_timeout,
            boot_timeout: self.boot_timeout.clone(),
            retries: self.retries,
            escalate_power_cycle: self.escalate_power_cycle.then_some(true),
            power_cycle_grace: self.power_cycle_grace.clone(),
            health,
            windows: (!self.windows.is_empty()).then(|| self.windows.clone()),
            steer_jobs: self.steer_jobs.then_some(true),
            drain_ahead: self.drain_ahead.then_some(true),
            max_draining: self.max_draining,
            reserve_ahead: self.reserve_ahead.then_some(true),
            gates: (!gates.is_empty()).then_some(gates),
            max_hold: self.max_hold.clone(),
            skip_matching: self.skip_matching.then_some(true),
            rollback: self.rollback_template.as_ref().map(|template| Rollback {
                template: template.clone(),
                on: vec![RollbackTrigger::NodeFailed],
                revert_upgraded_on_halt: self.revert_upgraded_on_halt,
                batch: self.revert_batch,
            }),
            image_features: self.image_features.then_some(true),
            hooks: super::hook_flags::hooks_of(&self.hook, self.hooks_file.as_deref())?,
        };
        Ok((request != PolicyRequest::default()).then_some(request))
    }
}

/// The health gate of `--health-command`, `--health-http` and `--soak`, read
/// as the API reads the `health` object (the soak is a duration text there).
fn health_gate(
    command: Option<&str>,
    http: Option<&str>,
    soak: Option<&str>,
) -> Result<HealthGate, String> {
    let mut health = Map::new();
    if let Some(command) = command {
        health.insert("command".into(), json!(command));
    }
    if let Some(url) = http {
        health.insert("http".into(), json!(url));
    }
    if let Some(soak) = soak {
        health.insert("soak".into(), json!(soak));
    }
    serde_json::from_value(Value::Object(health))
        .map_err(|error| format!("--health-command/--health-http/--soak: {error}"))
}

/// `3` or `10%`, as the failure budget the server takes (a number or a string).
pub fn parse_failure_budget(text: &str) -> Result<FailureBudget, String> {
    let text = text.trim();
    if let Some(percent) = text.strip_suffix('%') {
        let value: f64 = percent
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a percentage such as 10%"))?;
        if !(0.0..=100.0).contains(&value) {
            return Err("a percentage must be between 0% and 100%".to_string());
        }
        return Ok(FailureBudget::Percent(value));
    }
    text.parse::<u32>()
        .map(FailureBudget::Count)
        .map_err(|_| format!("{text:?} is neither a count of nodes (3) nor a percentage (10%)"))
}

/// `URL QUERY` of `--gate-prometheus`: a Prometheus instant query that
/// holds the session while it returns a series.
pub fn parse_prometheus_gate(text: &str) -> Result<GateCheck, String> {
    let (url, query) = text
        .trim()
        .split_once(char::is_whitespace)
        .ok_or("write the Prometheus URL, a space, then the query: 'http://prom:9090 up == 0'")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    }
    Ok(GateCheck::Prometheus {
        url: url.to_string(),
        query: query.trim().to_string(),
        block_when: BlockWhen::Nonempty,
    })
}

/// A duration such as `90s` or `2h`, kept as the text given.
fn parse_duration_text(text: &str) -> Result<String, String> {
    humantime::parse_duration(text)
        .map(|_| text.to_string())
        .map_err(|error| format!("{text:?} is not a duration such as 90s or 2h: {error}"))
}

/// `[DAYS] HH:MM-HH:MM [TIME_ZONE]`, e.g. `sat,sun 22:00-06:00 Europe/Paris`,
/// as the window of the policy, read as the API reads its JSON form.
pub fn parse_window(text: &str) -> Result<MaintenanceWindow, String> {
    let window = window_json(text)?;
    let window: MaintenanceWindow =
        serde_json::from_value(window).map_err(|error| format!("{text:?}: {error}"))?;
    window
        .validate()
        .map_err(|error| format!("{text:?}: {error}"))?;
    Ok(window)
}

/// The JSON object of a window's text: days, start, end, time zone.
fn window_json(text: &str) -> Result<Value, String> {
    let usage = "expected [DAYS] HH:MM-HH:MM [TIME_ZONE], e.g. 'sat,sun 22:00-06:00 Europe/Paris'";
    let words: Vec<&str> = text.split_whitespace().collect();
    let hours = words
        .iter()
        .position(|word| word.contains(':') && word.contains('-'))
        .ok_or_else(|| format!("{text:?}: no HH:MM-HH:MM hours; {usage}"))?;
    if hours > 1 || words.len() > hours + 2 {
        return Err(format!("{text:?}: {usage}"));
    }
    let (start, end) = words[hours]
        .split_once('-')
        .ok_or_else(|| format!("{text:?}: {usage}"))?;
    let mut window = Map::new();
    if hours == 1 {
        let days: Vec<Value> = words[0]
            .split(',')
            .filter(|day| !day.is_empty())
            .map(|day| json!(day.to_ascii_lowercase()))
            .collect();
        window.insert("days".into(), Value::Array(days));
    }
    window.insert("start".into(), json!(start));
    window.insert("end".into(), json!(end));
    if let Some(zone) = words.get(hours + 1) {
        window.insert("time_zone".into(), json!(zone));
    }
    Ok(Value::Object(window))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_json(window: &MaintenanceWindow) -> Value {
        serde_json::to_value(window).unwrap()
    }

    #[test]
    fn windows_split_into_days_hours_and_zone() {
        assert_eq!(
            as_json(&parse_window("sat,SUN 22:00-06:00 Europe/Paris").unwrap()),
            json!({"days": ["sat", "sun"], "start": "22:00", "end": "06:00", "time_zone": "Europe/Paris"})
        );
        let every_day = as_json(&parse_window("08:00-20:00").unwrap());
        assert_eq!(
            (
                &every_day["start"],
                &every_day["end"],
                every_day.get("days")
            ),
            (&json!("08:00"), &json!("20:00"), None)
        );
        assert!(parse_window("weekends").is_err());
        assert!(parse_window("a b 08:00-20:00").is_err());
        assert!(parse_window("08:00-20:00 UTC extra").is_err());
        // What the server would refuse is refused here, by the same types.
        assert!(parse_window("caturday 08:00-20:00").is_err());
        assert!(parse_window("08:00-25:00").is_err());
    }

    #[test]
    fn failure_budgets_are_counts_or_percentages() {
        assert_eq!(parse_failure_budget("3"), Ok(FailureBudget::Count(3)));
        assert_eq!(
            parse_failure_budget("10%"),
            Ok(FailureBudget::Percent(10.0))
        );
        assert!(parse_failure_budget("101%").is_err());
        assert!(parse_failure_budget("lots").is_err());
    }

    #[test]
    fn the_floor_and_foreign_flags_fill_the_policy() {
        let args = PolicyArgs {
            min_available: Some(FailureBudget::Percent(90.0)),
            foreign_out_of_service: Some(ForeignOutOfService::UpgradeAndRestore),
            max_boots_per_minute: Some(50),
            steer_jobs: true,
            ..PolicyArgs::default()
        };
        let request = args.to_request().unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "min_available": "90%",
                "foreign_out_of_service": "upgrade_and_restore",
                "max_boots_per_minute": 50,
                "steer_jobs": true
            })
        );
    }

    #[test]
    fn skip_matching_fills_the_policy() {
        let args = PolicyArgs {
            skip_matching: true,
            ..PolicyArgs::default()
        };
        let request = args.to_request().unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"skip_matching": true})
        );
    }

    /// `crus session create --help`, as the user reads it.
    fn session_create_help() -> String {
        use clap::CommandFactory;
        #[derive(clap::Parser)]
        struct SessionCreate {
            #[command(flatten)]
            create: crate::client::CreateArgs,
        }
        SessionCreate::command().render_long_help().to_string()
    }

    #[test]
    fn session_create_help_names_the_policy_for_each_goal() {
        let help = session_create_help();
        // Unwrapped, so a line break in the help does not split a phrase.
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for named in [
            "For the shortest upgrade: --strategy continuous --order drain-cost --steer-jobs --reserve-ahead (",
            "For the least disturbance to jobs: --strategy continuous --order drain-cost --steer-jobs (",
        ] {
            assert!(help.contains(named), "{named:?} not in:\n{help}");
        }
    }

    #[test]
    fn image_features_fills_the_policy() {
        let args = PolicyArgs {
            image_features: true,
            ..PolicyArgs::default()
        };
        let request = args.to_request().unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"image_features": true})
        );
    }

    #[test]
    fn the_drain_ahead_flags_fill_the_policy() {
        let args = PolicyArgs {
            strategy: Some(Strategy::Continuous),
            order: Some(Order::DrainCost),
            drain_ahead: true,
            max_draining: Some(4),
            ..PolicyArgs::default()
        };
        let request = args.to_request().unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "strategy": "continuous",
                "order": "drain_cost",
                "drain_ahead": true,
                "max_draining": 4
            })
        );
    }

    #[test]
    fn the_reserve_ahead_flag_fills_the_policy() {
        let args = PolicyArgs {
            strategy: Some(Strategy::Continuous),
            order: Some(Order::DrainCost),
            reserve_ahead: true,
            ..PolicyArgs::default()
        };
        let request = args.to_request().unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "strategy": "continuous",
                "order": "drain_cost",
                "reserve_ahead": true
            })
        );
    }

    #[test]
    fn gate_flags_become_the_policy_s_gates() {
        let args = PolicyArgs {
            gate_alertmanager: vec!["http://am:9093".into()],
            gate_filter: vec!["severity=critical".into()],
            gate_prometheus: vec![parse_prometheus_gate("http://prom:9090 up == 0").unwrap()],
            max_hold: Some("2h".into()),
            ..PolicyArgs::default()
        };
        let request = args.to_request().unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "gates": [
                    {"alertmanager": "http://am:9093", "filter": ["severity=critical"]},
                    {"prometheus": "http://prom:9090", "query": "up == 0", "block_when": "nonempty"}
                ],
                "max_hold": "2h"
            })
        );
        assert!(parse_prometheus_gate("http://prom:9090").is_err());
        assert!(parse_prometheus_gate("prom:9090 up").is_err());
    }

    #[test]
    fn the_rollback_flag_fills_the_policy_s_rollback() {
        let args = PolicyArgs {
            rollback_template: Some("old-image".into()),
            ..PolicyArgs::default()
        };
        let request = args.to_request().unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"rollback": {"template": "old-image", "on": ["node_failed"]}})
        );
    }

    #[test]
    fn the_revert_flags_fill_the_rollback_s_revert() {
        let args = PolicyArgs {
            rollback_template: Some("old-image".into()),
            revert_upgraded_on_halt: true,
            revert_batch: Some(3),
            ..PolicyArgs::default()
        };
        let request = args.to_request().unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"rollback": {
                "template": "old-image",
                "on": ["node_failed"],
                "revert_upgraded_on_halt": true,
                "batch": 3
            }})
        );
    }

    #[test]
    fn no_flag_means_no_policy_object() {
        assert_eq!(PolicyArgs::default().to_request(), Ok(None));
        let args = PolicyArgs {
            order: Some(Order::DrainCost),
            canary: Some(2),
            soak: Some("1m".into()),
            max_failures: Some(FailureBudget::Percent(10.0)),
            ..PolicyArgs::default()
        };
        let request = args.to_request().unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "order": "drain_cost",
                "max_failures": "10%",
                "canary": {"size": 2, "pause_after": true},
                "health": {"soak": "1m"}
            })
        );
    }
}
