//! `crus plan` and `crus session create --idempotency-key` against the real
//! `crus serve --sim` binary.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use serde_json::Value;

use common::*;

const TOKEN: &str = "plan-token-0123456789";

fn start(dir: &tempfile::TempDir) -> Server {
    Server::start(
        &[
            "--sim",
            "--sim-nodes",
            "8",
            "--sim-trace",
            "none",
            "--db",
            &path_in(dir.path(), "crus.db"),
            "--token",
            TOKEN,
        ],
        &[],
    )
}

/// `crus ARGS` against `server`: (success, stdout, stderr).
fn crus(server: &Server, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_crus"))
        .args(args)
        .env("CRUS_URL", &server.url)
        .env("CRUS_TOKEN", TOKEN)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const SESSION: [&str; 10] = [
    "--starting-label",
    "compute",
    "--upgrading-label",
    "crus-upgrading",
    "--failed-label",
    "crus-failed",
    "--upgrade-template-id",
    "compute-image",
    "--upgrade-step-size",
    "3",
];

#[test]
fn plan_prints_the_steps_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir);

    let mut args = vec!["plan"];
    args.extend(SESSION);
    args.extend(["--order", "drain-cost"]);
    let (ok, table, stderr) = crus(&server, &args);
    assert!(ok, "{stderr}");
    assert!(table.starts_with("STEP"), "{table}");
    // A header, three steps (8 nodes by 3), a blank line, the summary.
    assert!(
        table.contains("8 nodes, 3 step(s) of at most 3; estimated duration"),
        "{table}"
    );
    assert!(table.contains("Idle nodes first"), "{table}");

    args.extend(["--format", "json"]);
    let (ok, json, stderr) = crus(&server, &args);
    assert!(ok, "{stderr}");
    let plan: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["steps"].as_array().unwrap().len(), 3, "{plan:#}");
    assert_eq!(plan["policy"]["order"], "drain_cost");

    // Nothing was created.
    let (ok, list, stderr) = crus(&server, &["session", "list", "--format", "json"]);
    assert!(ok, "{stderr}");
    assert_eq!(list.trim(), "[]");

    // A plan the server refuses says why, and fails.
    let mut bad = vec!["plan"];
    bad.extend(SESSION);
    bad[2] = "no-such-group";
    let (ok, _, stderr) = crus(&server, &bad);
    assert!(!ok);
    assert!(stderr.contains("starting_label"), "{stderr}");
}

#[test]
fn create_with_an_idempotency_key_is_safe_to_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir);
    let mut args = vec!["session", "create"];
    args.extend(SESSION);
    args.extend(["--idempotency-key", "7b1e2c", "--format", "json"]);

    let (ok, first, stderr) = crus(&server, &args);
    assert!(ok, "{stderr}");
    let (ok, second, stderr) = crus(&server, &args);
    assert!(ok, "{stderr}");
    let first: Value = serde_json::from_str(&first).unwrap();
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(first["upgrade_id"], second["upgrade_id"]);

    // The same key with other flags is refused, naming the key.
    let mut other = args.clone();
    other[11] = "4";
    assert_eq!(SESSION[9], "3", "the step size is what changes");
    let (ok, _, stderr) = crus(&server, &other);
    assert!(!ok);
    assert!(stderr.contains("Idempotency-Key"), "{stderr}");

    let (ok, list, stderr) = crus(&server, &["session", "list", "--format", "json"]);
    assert!(ok, "{stderr}");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
}

/// Issue 21: `crus plan` shows the capacity floor with its effective
/// numbers (the percentage's rounding) and the boot rate, in its text and
/// in the API's answer (`--format json`), additively.
#[test]
fn plan_shows_the_floor_and_the_boot_rate() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir);

    let mut args = vec!["plan"];
    args.extend(SESSION);
    args.extend(["--min-available", "70%", "--max-boots-per-minute", "2"]);
    let (ok, table, stderr) = crus(&server, &args);
    assert!(ok, "{stderr}");
    assert!(
        table.contains(
            "floor: min_available 70%: 70% of 8 nodes is 5.6, rounded down to 5 in service: at most 3 nodes out of service at a time"
        ),
        "{table}"
    );
    assert!(
        table.contains("boot rate: at most 2 boot(s) a minute"),
        "{table}"
    );

    args.extend(["--format", "json"]);
    let (ok, json, stderr) = crus(&server, &args);
    assert!(ok, "{stderr}");
    let plan: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["floor"]["min_in_service"], 5, "{plan:#}");
    assert_eq!(plan["floor"]["may_be_out"], 3, "{plan:#}");
    assert_eq!(plan["max_boots_per_minute"], 2, "{plan:#}");
    assert!(plan.get("skipped").is_none(), "nothing to skip: {plan:#}");
    assert_eq!(plan["steps"].as_array().unwrap().len(), 3, "{plan:#}");
}

/// The plan shows the rollback it would apply, with the revert of a halted
/// session's upgrades, and the alert gates it would check (issue 23).
#[test]
fn plan_shows_the_rollback_and_the_gates() {
    let dir = tempfile::tempdir().unwrap();
    // The session's own gate is on a host the server allows.
    let config = dir.path().join("crus.toml");
    std::fs::write(&config, "[alert_gates]\nallowed_hosts = [\"127.0.0.1\"]\n").unwrap();
    let config = config.display().to_string();
    let server = Server::start(
        &[
            "--config",
            &config,
            "--sim",
            "--sim-nodes",
            "8",
            "--sim-trace",
            "none",
            "--db",
            &path_in(dir.path(), "crus.db"),
            "--token",
            TOKEN,
        ],
        &[],
    );

    let mut args = vec!["plan"];
    args.extend(SESSION);
    // The simulator knows one template: the rollback names it too.
    args.extend([
        "--rollback-template",
        "compute-image",
        "--revert-upgraded-on-halt",
        "--revert-batch",
        "2",
        "--gate-alertmanager",
        "http://127.0.0.1:9/",
        "--max-hold",
        "2h",
    ]);
    let (ok, table, stderr) = crus(&server, &args);
    assert!(ok, "{stderr}");
    assert!(
        table.contains(
            "rollback: A node whose upgrade fails (after its retries) is booted back to template 'compute-image' and returned to service as reverted; if the session halts (failure budget or max_hold), the nodes it upgraded are booted back too, at most 2 at a time.\n"
        ),
        "{table}"
    );
    assert!(
        table.contains("alert gates: Checked before any node is taken"),
        "{table}"
    );
    assert!(
        table.contains("a hold longer than 2h (max_hold) halts the session"),
        "{table}"
    );

    args.extend(["--format", "json"]);
    let (ok, json, stderr) = crus(&server, &args);
    assert!(ok, "{stderr}");
    let plan: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["rollback"]["template"], "compute-image");
    assert_eq!(plan["rollback"]["on"], serde_json::json!(["node_failed"]));
    assert_eq!(plan["rollback"]["revert_upgraded_on_halt"], true);
    assert_eq!(plan["rollback"]["batch"], 2);
    assert_eq!(plan["gates"]["max_hold"], "2h");
    assert_eq!(plan["gates"]["checks"].as_array().unwrap().len(), 1);
}
