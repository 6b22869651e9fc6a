//! `crus demo` as a user runs it: the built binary, its JSON and its errors.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::{Command, Output};

use serde_json::Value;

fn crus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crus"))
        .args(args)
        .output()
        .expect("the crus binary runs")
}

fn demo_json(args: &[&str]) -> Value {
    let mut all = vec!["demo", "--json"];
    all.extend_from_slice(args);
    let output = crus(&all);
    assert!(
        output.status.success(),
        "crus {all:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object on stdout")
}

fn number(value: &Value, field: &str) -> f64 {
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {value}"))
}

fn names(value: &Value, field: &str) -> BTreeSet<String> {
    value[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is not a list"))
        .iter()
        .map(|name| name.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_default_demo_upgrades_every_node_within_the_step_size() {
    let result = demo_json(&[]);
    for field in [
        "nodes",
        "upgraded",
        "failed",
        "steps",
        "step_size",
        "max_out_of_service",
        "makespan_s",
        "drained_idle_node_s",
        "boots",
    ] {
        assert!(result[field].is_number(), "{field} missing from {result}");
    }
    assert_eq!(number(&result, "nodes"), 128.0);
    assert_eq!(number(&result, "step_size"), 16.0);
    assert_eq!(
        number(&result, "upgraded") + number(&result, "failed"),
        number(&result, "nodes")
    );
    assert!(number(&result, "max_out_of_service") <= number(&result, "step_size"));
    assert!(number(&result, "boots") >= number(&result, "upgraded"));
    assert_eq!(number(&result, "reboots_with_running_jobs"), 0.0);
    assert!(number(&result, "makespan_s") > 0.0);
    assert!(
        number(&result, "jobs_completed") > 0.0,
        "the trace keeps the cluster busy"
    );
    assert_eq!(result["state"], "READY");
    assert_eq!(result["completed"], true);
}

#[test]
fn with_failures_the_failed_nodes_are_exactly_the_failed_group_and_nothing_stays_drained() {
    let result = demo_json(&["--fail-rate", "0.1", "--seed", "7"]);
    let failed = names(&result, "failed_nodes");
    assert!(!failed.is_empty(), "some nodes fail at a 10% failure rate");
    assert_eq!(failed, names(&result, "failed_group"));
    assert_eq!(number(&result, "failed") as usize, failed.len());
    assert_eq!(
        number(&result, "upgraded") + number(&result, "failed"),
        128.0
    );
    assert!(names(&result, "left_drained").is_empty());
    let messages: Vec<&str> = result["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for node in &failed {
        assert!(
            messages
                .iter()
                .any(|message| message.starts_with(&format!("Node {node} failed: "))),
            "no message says why {node} failed"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let args = [
        "--nodes",
        "48",
        "--step",
        "8",
        "--trace",
        "synthetic",
        "--fail-rate",
        "0.05",
        "--seed",
        "3",
    ];
    assert_eq!(demo_json(&args), demo_json(&args));
}

#[test]
fn bad_options_fail_clearly_and_print_no_results() {
    for (args, expected) in [
        (vec!["demo", "--step", "0"], "--step"),
        (vec!["demo", "--nodes", "0"], "--nodes"),
        (vec!["demo", "--fail-rate", "1.5"], "not between 0 and 1"),
        (vec!["demo", "--boot-time", "soon"], "--boot-time"),
        (
            vec!["demo", "--trace", "/nonexistent/trace.swf"],
            "/nonexistent/trace.swf",
        ),
    ] {
        let output = crus(&args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed results");
    }
}

#[test]
fn the_demo_takes_the_policy_flags_of_session_create() {
    let common = ["--nodes", "32", "--step", "4", "--trace", "synthetic"];
    let mut flags = common.to_vec();
    flags.extend([
        "--strategy",
        "continuous",
        "--order",
        "drain-cost",
        "--steer-jobs",
        "--boot-timeout",
        "25m",
    ]);
    let result = demo_json(&flags);
    let policy = &result["policy"];
    assert_eq!(policy["strategy"], "continuous", "{policy}");
    assert_eq!(policy["order"], "drain_cost", "{policy}");
    assert_eq!(policy["steer_jobs"], true, "{policy}");
    assert_eq!(number(&result, "boot_timeout_s"), 1500.0);
    assert_eq!(
        number(&result, "upgraded") + number(&result, "failed"),
        32.0
    );
    assert!(number(&result, "max_out_of_service") <= 4.0);
    assert_eq!(number(&result, "reboots_with_running_jobs"), 0.0);

    // Without policy flags, CRUS's policy, and the demo's boot timeout.
    let plain = demo_json(&common);
    assert_eq!(plain["policy"]["strategy"], "steps");
    assert_eq!(number(&plain, "boot_timeout_s"), 720.0);

    // A policy the server would refuse is refused the same way, before any run.
    let output = crus(&["demo", "--step-percent", "120"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("policy.step_percent"), "{stderr}");
    assert!(output.stdout.is_empty());
}
