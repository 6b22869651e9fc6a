//! The rollout policy flags of `crus session create`, turned into the
//! optional `policy` object of `POST /session` (a crus addition: without any
//! of these flags the body is exactly CRUS's).

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

/// How nodes move through the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// CRUS's steps: drain, boot and return a step before the next begins.
    Steps,
    /// A sliding window: a node is taken as soon as another one finishes.
    Continuous,
}

/// Which pending node is taken next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderArg {
    /// By location, as CRUS.
    Inventory,
    /// Idle nodes first, then those whose jobs end soonest.
    DrainCost,
    /// Drain cost within the failure-domain rule of --spread or --align.
    Topology,
}

/// A failure domain of the Cray EX hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DomainArg {
    /// A blade (node card).
    Blade,
    /// A chassis.
    Chassis,
    /// A cabinet.
    Cabinet,
}

/// What happens to a node still draining after --drain-timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnDrainTimeoutArg {
    /// Keep waiting (CRUS's behaviour).
    Wait,
    /// Return it to service without upgrading it.
    Skip,
    /// Requeue its jobs, then carry on.
    Requeue,
    /// Reboot it with its jobs running.
    Force,
}

/// What happens to a node someone else took out of service (drained,
/// draining or down with a reason crus did not write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForeignArg {
    /// Upgrade it once quiet, then put it back as it was (same state and reason).
    UpgradeAndRestore,
    /// Leave it alone; report it skipped with its reason.
    Skip,
    /// Wait (within --drain-timeout) for it to be returned to service.
    Wait,
}

/// Flags that fill the `policy` object; each is left out of it unless given.
#[derive(Debug, Default, Args)]
pub struct PolicyArgs {
    /// `steps` (CRUS's) or `continuous`.
    #[arg(long, value_enum, help_heading = "Rollout policy")]
    pub strategy: Option<StrategyArg>,
    /// Which node is taken next.
    #[arg(long, value_enum, help_heading = "Rollout policy")]
    pub order: Option<OrderArg>,
    /// With `--order topology`: never two nodes of one domain out at once.
    #[arg(long, value_enum, help_heading = "Rollout policy")]
    pub spread: Option<DomainArg>,
    /// With `--order topology`: take whole domains together (chassis or cabinet).
    #[arg(long, value_enum, help_heading = "Rollout policy")]
    pub align: Option<DomainArg>,
    /// Step size as a percentage (0–100] of the starting group, instead of --upgrade-step-size.
    #[arg(long, value_name = "P", help_heading = "Rollout policy")]
    pub step_percent: Option<f64>,
    /// Failed nodes tolerated before the session halts: a count (3) or a percentage (10%).
    #[arg(long, value_name = "N|P%", value_parser = parse_failure_budget, help_heading = "Rollout policy")]
    pub max_failures: Option<Value>,
    /// Nodes of the starting group that must stay in service, counting every
    /// node out for any reason: a count (90) or a percentage (90%, rounded down).
    #[arg(long, value_name = "N|P%", value_parser = parse_failure_budget, help_heading = "Rollout policy")]
    pub min_available: Option<Value>,
    /// At most this many nodes' boots requested in any minute.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Rollout policy")]
    pub max_boots_per_minute: Option<u32>,
    /// What happens to a node someone else took out of service; crus never resumes it.
    #[arg(long, value_enum, help_heading = "Rollout policy")]
    pub foreign_out_of_service: Option<ForeignArg>,
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
    pub on_drain_timeout: Option<OnDrainTimeoutArg>,
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
    pub windows: Vec<Value>,
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
    /// their own back. For the shortest upgrade and the least disturbance
    /// to jobs use `--strategy continuous --order drain-cost --steer-jobs`
    /// (efficiency bench: 0.50-0.70x of CRUS's upgrade time, 0.23-0.96x of
    /// the job waiting it added).
    #[arg(long, help_heading = "Rollout policy")]
    pub steer_jobs: bool,
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
    pub gate_prometheus: Vec<Value>,
    /// How long the gates may hold the session before it halts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_text, help_heading = "Alert gates")]
    pub max_hold: Option<String>,
}

impl PolicyArgs {
    /// The `policy` object, or `None` when no policy flag was given.
    pub fn to_json(&self) -> Option<Value> {
        let mut policy = Map::new();
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                policy.insert(key.to_string(), value);
            }
        };
        set(
            "strategy",
            self.strategy.map(|strategy| {
                json!(match strategy {
                    StrategyArg::Steps => "steps",
                    StrategyArg::Continuous => "continuous",
                })
            }),
        );
        set(
            "order",
            self.order.map(|order| {
                json!(match order {
                    OrderArg::Inventory => "inventory",
                    OrderArg::DrainCost => "drain_cost",
                    OrderArg::Topology => "topology",
                })
            }),
        );
        set("spread", self.spread.map(domain));
        set("align", self.align.map(domain));
        set(
            "step_percent",
            self.step_percent.map(|percent| json!(percent)),
        );
        set("max_failures", self.max_failures.clone());
        set("min_available", self.min_available.clone());
        set(
            "max_boots_per_minute",
            self.max_boots_per_minute.map(Value::from),
        );
        set(
            "foreign_out_of_service",
            self.foreign_out_of_service.map(|action| {
                json!(match action {
                    ForeignArg::UpgradeAndRestore => "upgrade_and_restore",
                    ForeignArg::Skip => "skip",
                    ForeignArg::Wait => "wait",
                })
            }),
        );
        set(
            "canary",
            self.canary
                .map(|size| json!({"size": size, "pause_after": !self.canary_no_pause})),
        );
        set("drain_timeout", self.drain_timeout.clone().map(Value::from));
        set(
            "on_drain_timeout",
            self.on_drain_timeout.map(|action| {
                json!(match action {
                    OnDrainTimeoutArg::Wait => "wait",
                    OnDrainTimeoutArg::Skip => "skip",
                    OnDrainTimeoutArg::Requeue => "requeue",
                    OnDrainTimeoutArg::Force => "force",
                })
            }),
        );
        set("boot_timeout", self.boot_timeout.clone().map(Value::from));
        set("retries", self.retries.map(Value::from));
        set(
            "escalate_power_cycle",
            self.escalate_power_cycle.then_some(Value::Bool(true)),
        );
        set(
            "power_cycle_grace",
            self.power_cycle_grace.clone().map(Value::from),
        );
        set(
            "windows",
            (!self.windows.is_empty()).then(|| Value::Array(self.windows.clone())),
        );
        set("steer_jobs", self.steer_jobs.then_some(Value::Bool(true)));
        if self.health_command.is_some() || self.health_http.is_some() || self.soak.is_some() {
            let mut health = Map::new();
            if let Some(command) = &self.health_command {
                health.insert("command".into(), json!(command));
            }
            if let Some(url) = &self.health_http {
                health.insert("http".into(), json!(url));
            }
            if let Some(soak) = &self.soak {
                health.insert("soak".into(), json!(soak));
            }
            set("health", Some(Value::Object(health)));
        }
        let gates: Vec<Value> = self
            .gate_alertmanager
            .iter()
            .map(|url| json!({"alertmanager": url, "filter": self.gate_filter}))
            .chain(self.gate_prometheus.iter().cloned())
            .collect();
        set("gates", (!gates.is_empty()).then_some(Value::Array(gates)));
        set("max_hold", self.max_hold.clone().map(Value::from));
        (!policy.is_empty()).then_some(Value::Object(policy))
    }
}

/// `URL QUERY` as a Prometheus gate of the `policy` object.
pub fn parse_prometheus_gate(text: &str) -> Result<Value, String> {
    let (url, query) = text
        .trim()
        .split_once(char::is_whitespace)
        .ok_or("write the Prometheus URL, a space, then the query: 'http://prom:9090 up == 0'")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    }
    Ok(json!({"prometheus": url, "query": query.trim(), "block_when": "nonempty"}))
}

fn domain(domain: DomainArg) -> Value {
    json!(match domain {
        DomainArg::Blade => "blade",
        DomainArg::Chassis => "chassis",
        DomainArg::Cabinet => "cabinet",
    })
}

/// `3` or `10%`, as the JSON the server takes (a number or a string).
pub fn parse_failure_budget(text: &str) -> Result<Value, String> {
    let text = text.trim();
    if let Some(percent) = text.strip_suffix('%') {
        let value: f64 = percent
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a percentage such as 10%"))?;
        if !(0.0..=100.0).contains(&value) {
            return Err("a percentage must be between 0% and 100%".to_string());
        }
        return Ok(json!(format!("{}%", percent.trim())));
    }
    text.parse::<u32>()
        .map(Value::from)
        .map_err(|_| format!("{text:?} is neither a count of nodes (3) nor a percentage (10%)"))
}

/// A duration such as `90s` or `2h`, kept as the text given.
fn parse_duration_text(text: &str) -> Result<String, String> {
    humantime::parse_duration(text)
        .map(|_| text.to_string())
        .map_err(|error| format!("{text:?} is not a duration such as 90s or 2h: {error}"))
}

/// `[DAYS] HH:MM-HH:MM [TIME_ZONE]`, e.g. `sat,sun 22:00-06:00 Europe/Paris`,
/// as the window object of the policy. Day names and the zone are the
/// server's to check; this only splits the text.
pub fn parse_window(text: &str) -> Result<Value, String> {
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

    #[test]
    fn windows_split_into_days_hours_and_zone() {
        assert_eq!(
            parse_window("sat,SUN 22:00-06:00 Europe/Paris"),
            Ok(
                json!({"days": ["sat", "sun"], "start": "22:00", "end": "06:00", "time_zone": "Europe/Paris"})
            )
        );
        assert_eq!(
            parse_window("08:00-20:00"),
            Ok(json!({"start": "08:00", "end": "20:00"}))
        );
        assert!(parse_window("weekends").is_err());
        assert!(parse_window("a b 08:00-20:00").is_err());
        assert!(parse_window("08:00-20:00 UTC extra").is_err());
    }

    #[test]
    fn failure_budgets_are_counts_or_percentages() {
        assert_eq!(parse_failure_budget("3"), Ok(json!(3)));
        assert_eq!(parse_failure_budget("10%"), Ok(json!("10%")));
        assert!(parse_failure_budget("101%").is_err());
        assert!(parse_failure_budget("lots").is_err());
    }

    #[test]
    fn the_floor_and_foreign_flags_fill_the_policy() {
        let args = PolicyArgs {
            min_available: Some(json!("90%")),
            foreign_out_of_service: Some(ForeignArg::UpgradeAndRestore),
            max_boots_per_minute: Some(50),
            ..PolicyArgs::default()
        };
        assert_eq!(
            args.to_json(),
            Some(json!({
                "min_available": "90%",
                "foreign_out_of_service": "upgrade_and_restore",
                "max_boots_per_minute": 50
            }))
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
        assert_eq!(
            args.to_json(),
            Some(json!({
                "gates": [
                    {"alertmanager": "http://am:9093", "filter": ["severity=critical"]},
                    {"prometheus": "http://prom:9090", "query": "up == 0", "block_when": "nonempty"}
                ],
                "max_hold": "2h"
            }))
        );
        assert!(parse_prometheus_gate("http://prom:9090").is_err());
        assert!(parse_prometheus_gate("prom:9090 up").is_err());
    }

    #[test]
    fn no_flag_means_no_policy_object() {
        assert_eq!(PolicyArgs::default().to_json(), None);
        let args = PolicyArgs {
            order: Some(OrderArg::DrainCost),
            canary: Some(2),
            soak: Some("1m".into()),
            ..PolicyArgs::default()
        };
        assert_eq!(
            args.to_json(),
            Some(json!({
                "order": "drain_cost",
                "canary": {"size": 2, "pause_after": true},
                "health": {"soak": "1m"}
            }))
        );
    }
}
