//! The smoke test of the whole benchmark: the `--quick` run on the
//! synthetic trace produces every figure. (The lower bound has its own unit
//! tests; the heavy runs are the bench's.)

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

use super::*;

fn paused_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
}

/// The keys of JSON object `value`, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Every number in `value`, however deep, is finite (NaN and infinities
/// become JSON null, which would hide a broken figure).
fn assert_no_nulls(value: &Value, path: &str) {
    match value {
        Value::Null => panic!("{path} is null"),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                assert_no_nulls(item, &format!("{path}[{index}]"));
            }
        }
        Value::Object(fields) => {
            for (name, field) in fields {
                assert_no_nulls(field, &format!("{path}.{name}"));
            }
        }
        _ => {}
    }
}

#[test]
fn the_quick_run_on_the_synthetic_trace_has_every_figure() {
    let settings = EfficiencySettings::quick(vec![TraceChoice::Synthetic]);
    let report = run(&settings, &paused_runtime, &|_, _| {}).unwrap();
    assert!(report.passed(), "{:?}", report.violations);
    let json = serde_json::to_value(&report).unwrap();
    assert_no_nulls(&json, "report");

    assert_eq!(json["benchmark"], "efficiency");
    assert_eq!(json["settings"]["quick"], true);
    assert_eq!(
        keys(&json["definitions"]),
        [
            "added_wait",
            "drained_idle",
            "forecast",
            "lower_bound",
            "makespan",
            "max_out_of_service",
            "runs",
            "slowdown",
            "targets",
            "window"
        ]
    );
    let traces = json["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1);
    let trace = &traces[0];
    assert_eq!(trace["trace"], "synthetic");

    let starts = trace["starts"].as_array().unwrap();
    assert_eq!(starts.len(), settings.start_points);
    for start in starts {
        assert_eq!(start["lower_bounds"].as_array().unwrap().len(), 3);
        assert_eq!(
            keys(&start["baseline"]),
            ["jobs", "mean_bounded_slowdown", "wait_job_h", "wait_node_h"]
        );
        let runs = start["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 3 * Policy::ALL.len());
        for run in runs {
            assert_eq!(
                keys(run),
                [
                    "added_mean_bounded_slowdown",
                    "added_wait_job_h",
                    "added_wait_node_h",
                    "booting_node_h",
                    "boots",
                    "drained_idle_node_h",
                    "draining_for_new_jobs_node_h",
                    "draining_for_prior_jobs_node_h",
                    "draining_node_h",
                    "forecast",
                    "jobs",
                    "jobs_killed",
                    "makespan_over_lower_bound",
                    "makespan_s",
                    "max_out_of_service",
                    "not_upgraded",
                    "out_of_service_node_h",
                    "policy",
                    "reboots_with_running_jobs",
                    "step",
                    "step_respected",
                    "unused_step_node_h",
                    "upgraded"
                ]
            );
            assert_eq!(run["upgraded"], 128);
            assert_eq!(run["boots"], 128);
            assert_eq!(run["step_respected"], true);
            // No upgrade finishes faster than its lower bound.
            assert!(run["makespan_over_lower_bound"].as_f64().unwrap() >= 1.0);
            // Every run was forecast first, with a range around the median.
            let forecast = &run["forecast"];
            assert!(forecast["samples"].as_u64().unwrap() >= 1);
            let (p10, median, p90) = (
                forecast["p10_s"].as_f64().unwrap(),
                forecast["median_s"].as_f64().unwrap(),
                forecast["p90_s"].as_f64().unwrap(),
            );
            assert!(p10 <= median && median <= p90 && median > 0.0, "{forecast}");
            assert!(forecast["inside"].is_boolean());
        }
    }
    let aggregates = trace["aggregates"].as_array().unwrap();
    assert_eq!(aggregates.len(), 3 * Policy::ALL.len());
    for aggregate in aggregates {
        assert_eq!(aggregate["starts"], settings.start_points);
        assert!(
            aggregate["makespan_s"]["worst"].as_f64().unwrap()
                >= aggregate["makespan_s"]["mean"].as_f64().unwrap()
        );
    }
    let targets = trace["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3);
    for target in targets {
        for check in [
            "makespan_vs_crus_strict",
            "drained_idle_vs_crus_strict",
            "makespan_vs_lower_bound",
        ] {
            assert!(target[check]["met"].is_boolean(), "{check}");
        }
    }
    let forecasts = trace["forecasts"].as_array().unwrap();
    assert_eq!(forecasts.len(), 3 * Policy::ALL.len());
    for check in forecasts {
        assert_eq!(check["starts"], settings.start_points);
        assert!(check["error_met"].is_boolean() && check["coverage_met"].is_boolean());
    }
    let table = report.table();
    assert!(table.contains("forecasts (dry run before each run"));
    assert!(table.contains("crus-strict") && table.contains("lower bound"));
}
