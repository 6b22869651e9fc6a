//! The efficiency report as people read it: one table per trace, the
//! targets met or not, violations in capitals, and the definitions; and the
//! JSON file with every figure.

use std::fmt::Write as _;
use std::path::Path;

use super::EfficiencyError;
use super::results::{Check, EfficiencyReport, Stat, TraceReport};

impl EfficiencyReport {
    /// Whether no invariant was broken.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Writes every figure to `path` as pretty JSON, creating its directory.
    pub fn write_json(&self, path: &Path) -> Result<(), EfficiencyError> {
        let output_error = |error| EfficiencyError::Output {
            path: path.display().to_string(),
            error,
        };
        if let Some(directory) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(directory).map_err(output_error)?;
        }
        let json = serde_json::to_string_pretty(self)
            .map_err(|error| output_error(std::io::Error::other(error)))?;
        std::fs::write(path, json + "\n").map_err(output_error)
    }

    /// The tables, targets, violations and definitions as text.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let settings = &self.settings;
        let _ = writeln!(
            out,
            "Rollout efficiency{}: {} start points per trace, boots {:.0} min, steps {:?}; \
             figures are mean / worst over the start points",
            if settings.quick {
                " (QUICK smoke run)"
            } else {
                ""
            },
            settings.start_points,
            settings.boot_time_s / 60.0,
            settings.steps
        );
        for trace in &self.traces {
            write_trace(&mut out, trace);
        }
        if self.violations.is_empty() {
            let _ = writeln!(
                out,
                "\nInvariants: no run had more nodes out of service than its step, rebooted a \
                 node running a job, or left a node not upgraded."
            );
        } else {
            let _ = writeln!(
                out,
                "\n!!! {} INVARIANT VIOLATIONS !!!",
                self.violations.len()
            );
            for violation in &self.violations {
                let _ = writeln!(out, "!!! VIOLATION: {violation}");
            }
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        let definitions = &self.definitions;
        let _ = writeln!(out, "\nDefinitions");
        for (name, text) in [
            ("Runs", &definitions.runs),
            ("Window", &definitions.window),
            ("Makespan", &definitions.makespan),
            ("Idle node-h", &definitions.drained_idle),
            ("Added wait", &definitions.added_wait),
            ("Added BSLD", &definitions.slowdown),
            ("Max out", &definitions.max_out_of_service),
            ("Lower bound", &definitions.lower_bound),
            ("Targets", &definitions.targets),
            ("Forecasts", &definitions.forecast),
        ] {
            let _ = writeln!(out, "- {name}: {text}");
        }
        let _ = writeln!(
            out,
            "\n{} simulated runs in {:.1} s wall time on {} worker(s); {} CPU(s), {}",
            self.simulated_runs,
            self.wall_time_s,
            self.machine.workers,
            self.machine.cpus,
            self.machine.cpu_model
        );
        out
    }
}

fn write_trace(out: &mut String, trace: &TraceReport) {
    let _ = writeln!(out, "\n== {}: {} ==", trace.trace, trace.description);
    let busy: Vec<String> = trace
        .starts
        .iter()
        .map(|start| {
            format!(
                "{} ({} busy, {} queued)",
                start.start_label, start.busy_nodes_at_start, start.queued_jobs_at_start
            )
        })
        .collect();
    let _ = writeln!(out, "start points: {}", busy.join(", "));
    let _ = writeln!(
        out,
        "{:>4}  {:<36} {:>13}  {:>11}  {:>13}  {:>15}  {:>11}  {:>7}",
        "step",
        "policy",
        "makespan h",
        "x bound",
        "idle node-h",
        "+wait node-h",
        "+BSLD",
        "max out"
    );
    for (index, bound) in trace.lower_bounds.iter().enumerate() {
        if index > 0 {
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "{:>4}  {:<36} {}",
            bound.step,
            "lower bound",
            pair(hours(bound.makespan_s), 6, 1)
        );
        for aggregate in trace
            .aggregates
            .iter()
            .filter(|aggregate| aggregate.step == bound.step)
        {
            let _ = writeln!(
                out,
                "{:>4}  {:<36} {}  {}  {}  {}  {}  {:>4} {}",
                aggregate.step,
                aggregate.policy,
                pair(hours(aggregate.makespan_s), 6, 1),
                pair(aggregate.makespan_over_lower_bound, 5, 2),
                pair(aggregate.drained_idle_node_h, 6, 1),
                pair(aggregate.added_wait_node_h, 7, 0),
                pair(aggregate.added_mean_bounded_slowdown, 5, 2),
                aggregate.max_out_of_service,
                if aggregate.step_respected {
                    "ok"
                } else {
                    "EXCEEDED"
                }
            );
        }
    }
    let _ = writeln!(
        out,
        "where the step's capacity went, mean node-h (step x makespan = booting + draining + drained-idle + unused;\n\
         draining split: for jobs running at the start + for jobs started later on nodes not yet taken):"
    );
    for aggregate in &trace.aggregates {
        let _ = writeln!(
            out,
            "{:>4}  {:<36} {:>6.1} = {:>5.1} + {:>5.1} + {:>5.1} + {:>6.1}   draining {:>5.1} + {:>5.1}",
            aggregate.step,
            aggregate.policy,
            f64::from(aggregate.step) * aggregate.makespan_s.mean / 3600.0,
            aggregate.booting_node_h.mean,
            aggregate.draining_node_h.mean,
            aggregate.drained_idle_node_h.mean,
            aggregate.unused_step_node_h.mean,
            aggregate.draining_for_prior_jobs_node_h.mean,
            aggregate.draining_for_new_jobs_node_h.mean
        );
    }
    let baseline = Stat::of(trace.starts.iter().map(|start| start.baseline.wait_node_h));
    let slowdown = Stat::of(
        trace
            .starts
            .iter()
            .map(|start| start.baseline.mean_bounded_slowdown),
    );
    let jobs = Stat::of(trace.starts.iter().map(|start| start.baseline.jobs as f64));
    let _ = writeln!(
        out,
        "no-upgrade baseline over the window: {:.0} jobs, wait {:.0} node-h (worst {:.0}), mean BSLD {:.2} (worst {:.2})",
        jobs.mean, baseline.mean, baseline.worst, slowdown.mean, slowdown.worst
    );
    write_forecasts(out, trace);
    if trace.targets.is_empty() {
        let _ = writeln!(
            out,
            "targets: not judged (needs crus-strict and continuous+drain_cost)"
        );
        return;
    }
    let _ = writeln!(
        out,
        "targets, continuous+drain_cost (ratios of means over the start points; worst single start in brackets):"
    );
    for target in &trace.targets {
        let _ = writeln!(
            out,
            "  step {:>2}: makespan {} of crus-strict | drained-idle {} of crus-strict | makespan {} of the lower bound",
            target.step,
            check(&target.makespan_vs_crus_strict),
            check(&target.drained_idle_vs_crus_strict),
            check(&target.makespan_vs_lower_bound),
        );
        if let Some(ratio) = target.busy_starts.makespan_vs_crus_strict {
            let _ = writeln!(
                out,
                "           (reading aid, not a target: on the {} of {} start points where at least half the nodes were busy, makespan {ratio:.2}x of crus-strict)",
                target.busy_starts.count,
                trace.starts.len()
            );
        }
    }
}

/// Forecast quality per policy and step, each against its targets.
fn write_forecasts(out: &mut String, trace: &TraceReport) {
    if trace.forecasts.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "forecasts (dry run before each run; median |error| over the start points, target <= {:.0}%; actual inside p10-p90, target >= {:.0}%):",
        super::FORECAST_ERROR_TARGET * 100.0,
        super::FORECAST_COVERAGE_TARGET * 100.0
    );
    for check in &trace.forecasts {
        let _ = writeln!(
            out,
            "{:>4}  {:<36} |error| {:>5.1}% (worst {:>6.1}%) {:<7}  inside {:>5.1}% {}",
            check.step,
            check.policy,
            check.median_abs_error_pct,
            check.worst_abs_error_pct,
            if check.error_met { "met" } else { "NOT MET" },
            check.inside_p10_p90_pct,
            if check.coverage_met { "met" } else { "NOT MET" }
        );
    }
}

fn hours(stat: Stat) -> Stat {
    Stat {
        mean: stat.mean / 3600.0,
        worst: stat.worst / 3600.0,
    }
}

/// `mean / worst`, each `width` wide with `decimals` decimals.
fn pair(stat: Stat, width: usize, decimals: usize) -> String {
    format!(
        "{:>width$.decimals$} /{:>width$.decimals$}",
        stat.mean, stat.worst
    )
}

fn check(check: &Check) -> String {
    let ratio = check
        .ratio
        .map_or_else(|| "n/a".to_string(), |ratio| format!("{ratio:.3}x"));
    let worst = check
        .worst_start_ratio
        .map_or_else(|| "n/a".to_string(), |ratio| format!("{ratio:.2}x"));
    format!(
        "{ratio} [{worst}] (target <= {:.2}x: {})",
        check.limit,
        if check.met { "met" } else { "NOT MET" }
    )
}
