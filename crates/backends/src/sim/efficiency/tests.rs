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
                    "max_idle_out_of_service",
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

/// A small Standard Workload Format trace for 8 nodes over 4 days: a job
/// every 20 minutes, 1 to 4 nodes wide, running 10 minutes to 3 hours (the
/// time limit a little above), and one job wider than the cluster.
fn small_swf() -> String {
    let mut text = String::from("; a site's own trace, written by the test\n");
    let mut draw = 17u64;
    for job in 0..(4 * 24 * 3) {
        draw = draw.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let width = 1 + (draw >> 33) % 4;
        let run = 600 + (draw >> 40) % (3 * 3600 - 600);
        let limit = run + 600;
        let submit = job * 1200;
        text.push_str(&format!(
            "{} {submit} 0 {run} {width} -1 -1 {width} {limit} -1 1 1 1 1 1 -1 -1 -1\n",
            job + 1
        ));
    }
    text.push_str("9999 3600 0 600 16 -1 -1 16 1200 -1 1 1 1 1 1 -1 -1 -1\n");
    text
}

/// Settings small enough for a test: 2 start points, one step size, CRUS's
/// policy and the continuous one, on `trace`.
fn small_settings(trace: TraceChoice) -> EfficiencySettings {
    EfficiencySettings {
        steps: vec![2],
        policies: vec![Policy::CrusStrict, Policy::ContinuousDrainCost],
        ..EfficiencySettings::quick(vec![trace])
    }
}

#[test]
fn any_swf_file_plain_or_gzipped_is_replayed_with_the_same_figures() {
    let directory = tempfile::tempdir().unwrap();
    let plain = directory.path().join("site.swf");
    std::fs::write(&plain, small_swf()).unwrap();
    let gzipped = directory.path().join("site.swf.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, small_swf().as_bytes()).unwrap();
    std::fs::write(&gzipped, encoder.finish().unwrap()).unwrap();

    let mut figures = Vec::new();
    for (path, name) in [(&plain, "site.swf"), (&gzipped, "site.swf.gz")] {
        let choices = TraceChoice::parse_with_nodes(path.to_str().unwrap(), Some(8)).unwrap();
        let report = run(
            &small_settings(choices[0].clone()),
            &paused_runtime,
            &|_, _| {},
        )
        .unwrap();
        assert!(report.passed(), "{:?}", report.violations);
        let json = serde_json::to_value(&report).unwrap();
        assert_no_nulls(&json, "report");
        let trace = &json["traces"][0];
        assert_eq!(trace["trace"], name);
        assert_eq!(trace["nodes"], 8);
        assert!(
            trace["description"]
                .as_str()
                .unwrap()
                .contains("1 wider than the cluster left out"),
            "{}",
            trace["description"]
        );
        let starts = trace["starts"].as_array().unwrap();
        assert_eq!(starts.len(), 2);
        for start in starts {
            for run in start["runs"].as_array().unwrap() {
                assert_eq!(run["upgraded"], 8);
                assert_eq!(run["step_respected"], true);
            }
        }
        assert_eq!(trace["targets"].as_array().unwrap().len(), 1);
        // Every figure but the forecasts' wall-clock time.
        let mut starts = trace["starts"].clone();
        for start in starts.as_array_mut().unwrap() {
            for run in start["runs"].as_array_mut().unwrap() {
                run["forecast"].as_object_mut().unwrap().remove("wall_ms");
            }
        }
        figures.push(starts);
    }
    // Gzip or plain, the same jobs: the same figures.
    assert_eq!(figures[0], figures[1]);
}

#[test]
fn a_trace_file_needs_the_cluster_size_and_a_bundled_trace_refuses_one() {
    assert!(
        TraceChoice::parse_with_nodes("site.swf", None)
            .unwrap_err()
            .contains("--nodes")
    );
    assert!(TraceChoice::parse_with_nodes("nasa", Some(64)).is_err());
    assert!(TraceChoice::parse_with_nodes("site.swf", Some(0)).is_err());
    assert_eq!(
        TraceChoice::parse_with_nodes("both", None).unwrap(),
        [TraceChoice::Nasa, TraceChoice::Synthetic]
    );
    let missing = TraceChoice::parse_with_nodes("/nonexistent/site.swf", Some(8)).unwrap();
    let error = run(
        &small_settings(missing[0].clone()),
        &paused_runtime,
        &|_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("/nonexistent/site.swf"), "{error}");
}
