//! The server-wide options (`GET`/`PATCH /options`, `crus options`) through
//! the built binary on SQLite: read, changed, bad values refused with
//! nothing changed, kept across a restart, the log level applied at once,
//! and a session created after a change starting from the new defaults
//! while one created before keeps its policy.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::*;

/// Starts a server on the simulated cluster and the database in `dir`, its log in `log`.
fn start(dir: &Path, log: &str) -> Server {
    let db = path_in(dir, "crus.db");
    let state = path_in(dir, "sim.json");
    let mut args = vec!["--sim", "--no-auth", "--db", &db, "--sim-state", &state];
    args.extend(SMALL_NASA_CLUSTER);
    Server::start_logged(&args, &[("RUST_LOG", "info")], &dir.join(log))
}

/// `GET /options`.
async fn get_options(http: &reqwest::Client, url: &str) -> Value {
    let response = http.get(format!("{url}/options")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `PATCH /options` with `patch`: the status and the body.
async fn patch_options(http: &reqwest::Client, url: &str, patch: &Value) -> (u16, Value) {
    let response = http
        .patch(format!("{url}/options"))
        .json(patch)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Waits until the log file `log` in `dir` contains `text`.
async fn wait_for_log(dir: &Path, log: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let said = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
        if said.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{log} never said {text:?}:\n{said}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_are_read_changed_checked_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let server = start(dir.path(), "first.log");
    let untouched = get_options(&http, &server.url).await;
    assert_eq!(
        untouched,
        json!({"default_policy": {}, "log_level": null, "max_boots_per_minute": null, "boot_timeouts": {}})
    );

    // Created before the change: keeps the policy it was created with.
    let before = create_session(&http, &server.url, None, &session_body(4)).await;
    let finished = wait_for(
        &http,
        &server.url,
        None,
        &before,
        Duration::from_secs(90),
        |s| s["completed"] == true,
    )
    .await;
    assert_eq!(finished["policy"]["retries"], 0, "{finished:#}");
    assert_eq!(finished["policy"]["boot_timeout"], "10m", "{finished:#}");
    let said = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    assert!(
        !said.contains("DEBUG"),
        "debug lines before the change:\n{said}"
    );

    let (status, changed) = patch_options(
        &http,
        &server.url,
        &json!({
            "default_policy": {"retries": 2, "max_failures": "25%"},
            "log_level": "debug",
            "max_boots_per_minute": 30,
            "boot_timeouts": {"sim": "45m"}
        }),
    )
    .await;
    assert_eq!(status, 200, "{changed:#}");
    assert!(
        changed["applies_to"]
            .as_str()
            .unwrap()
            .contains("created from now on"),
        "{changed:#}"
    );
    let options = changed["options"].clone();
    assert_eq!(options["default_policy"]["retries"], 2);
    assert_eq!(get_options(&http, &server.url).await, options);
    // The log level applies at once: tower-http logs each request at DEBUG.
    get_options(&http, &server.url).await;
    wait_for_log(dir.path(), "first.log", "DEBUG").await;

    // Bad values: 422 naming each field, nothing changed.
    let (status, refused) = patch_options(
        &http,
        &server.url,
        &json!({
            "default_policy": {"retries": 99},
            "log_level": "loud",
            "max_boots_per_minute": 0,
            "boot_timeouts": {"sim": "soon", "pxe": "5m"},
            "colour": "blue"
        }),
    )
    .await;
    assert_eq!(status, 422, "{refused:#}");
    for field in [
        "default_policy.retries",
        "log_level",
        "max_boots_per_minute",
        "boot_timeouts.sim",
        "boot_timeouts.pxe",
        "colour",
    ] {
        assert!(
            refused["errors"].get(field).is_some(),
            "{field}: {refused:#}"
        );
    }
    assert_eq!(get_options(&http, &server.url).await, options);

    // Created after the change: the new defaults (under its own policy).
    let mut body = session_body(4);
    body["policy"] = json!({"max_failures": 1});
    let after = create_session(&http, &server.url, None, &body).await;
    let session = wait_for(
        &http,
        &server.url,
        None,
        &after,
        Duration::from_secs(10),
        |s| s["policy"].is_object(),
    )
    .await;
    assert_eq!(session["policy"]["retries"], 2, "{session:#}");
    assert_eq!(session["policy"]["boot_timeout"], "45m", "{session:#}");
    assert_eq!(session["policy"]["max_failures"], 1, "{session:#}");
    let earlier = wait_for(
        &http,
        &server.url,
        None,
        &before,
        Duration::from_secs(5),
        |_| true,
    )
    .await;
    assert_eq!(earlier["policy"], finished["policy"]);
    wait_for(
        &http,
        &server.url,
        None,
        &after,
        Duration::from_secs(90),
        |s| s["completed"] == true,
    )
    .await;

    // Kept across a restart, the log level applied from the start.
    assert_eq!(server.terminate(), Some(0));
    let server = start(dir.path(), "second.log");
    assert_eq!(get_options(&http, &server.url).await, options);
    wait_for_log(dir.path(), "second.log", "DEBUG").await;

    // Unset again: null.
    let (status, changed) = patch_options(
        &http,
        &server.url,
        &json!({"default_policy": null, "log_level": null, "boot_timeouts": {"sim": null}}),
    )
    .await;
    assert_eq!(status, 200, "{changed:#}");
    assert_eq!(changed["options"]["default_policy"], json!({}));
    assert_eq!(changed["options"]["boot_timeouts"], json!({}));
    assert_eq!(changed["options"]["max_boots_per_minute"], 30);
    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crus_options_get_and_set_speak_to_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "server.log");
    let crus = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_crus"))
            .args(["options"])
            .args(args)
            .args(["--url", &server.url])
            .env_remove("CRUS_TOKEN")
            .env_remove("CRUS_URL")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = crus(&[
        "set",
        "log_level=warn",
        "default_policy.retries=1",
        "boot_timeouts.sim=30m",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("default_policy.retries = 1"), "{out}");
    assert!(out.contains("created from now on"), "{out}");

    let patch = dir.path().join("patch.json");
    std::fs::write(&patch, r#"{"max_boots_per_minute": 12}"#).unwrap();
    let (ok, out, err) = crus(&["set", "--file", patch.to_str().unwrap()]);
    assert!(ok, "{out}{err}");

    let (ok, out, err) = crus(&["get", "--format", "json"]);
    assert!(ok, "{out}{err}");
    let options: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(options["log_level"], "warn");
    assert_eq!(options["max_boots_per_minute"], 12);
    assert_eq!(options["boot_timeouts"]["sim"], "30m");

    // A refused value: the field named, exit status 1, nothing changed.
    let (ok, _, err) = crus(&["set", "default_policy.step_percent=0"]);
    assert!(!ok);
    assert!(err.contains("default_policy.step_percent"), "{err}");
    let (_, out, _) = crus(&["get", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), options);
}
