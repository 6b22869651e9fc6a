//! `crus serve` with `backends.power`: `redfish` (a real Redfish service,
//! sushy-tools' emulator started by the test, see `redfish_harness`) gives
//! the controller a power control, so sessions asking for power-restart
//! escalation are taken and run; `none` takes it away, so they are refused;
//! `redfish` without its section stops the server at start, naming it.
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../backends/tests/redfish_harness/mod.rs"]
mod redfish_harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use common::{Server, client, create_session, path_in, session_body, wait_for};
use redfish_harness::{EmulatorOptions, RedfishEmulator};

/// A config file of a simulated cluster whose power is `power`, plus `extra`.
fn write_config(dir: &Path, power: &str, extra: &str) -> PathBuf {
    let config = format!(
        "[server]\ndb = \"{db}\"\n\n[sim]\nnodes = 4\nspeed = 600.0\ntrace = \"none\"\n\n\
         [backends]\ninventory = \"sim\"\nworkload_manager = \"sim\"\nboot = \"sim\"\npower = \"{power}\"\n\n{extra}",
        db = path_in(dir, "crus.db"),
    );
    let path = dir.join("crus.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn escalating_session() -> Value {
    let mut body = session_body(2);
    body["policy"] = json!({"escalate_power_cycle": true});
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_redfish_takes_escalating_sessions_and_power_none_refuses_them() {
    let emulator = RedfishEmulator::start(EmulatorOptions {
        credentials: Some(("admin".into(), "bmc-pw".into())),
        power_delay: Some(2),
        ..EmulatorOptions::new(2)
    });
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("bmc-password");
    std::fs::write(&password, "bmc-pw\n").unwrap();
    let redfish = format!(
        "[redfish]\nbmc_url = \"{url}\"\nsystem = \"{{node}}\"\nauth = \"basic\"\nusername = \"admin\"\n\
         password_file = \"{password}\"\ntimeout = \"5s\"\n",
        url = emulator.url,
        password = password.display(),
    );
    let config = write_config(dir.path(), "redfish", &redfish);
    let server = Server::start(
        &["--config", &config.display().to_string(), "--no-auth"],
        &[],
    );
    let http = client();
    let id = create_session(&http, &server.url, None, &escalating_session()).await;
    let session = wait_for(
        &http,
        &server.url,
        None,
        &id,
        Duration::from_secs(60),
        |session| session["completed"] == true,
    )
    .await;
    assert_eq!(session["state"], "READY", "{session:#}");
    assert_eq!(server.terminate(), Some(0));

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "none", "");
    let server = Server::start(
        &["--config", &config.display().to_string(), "--no-auth"],
        &[],
    );
    let response = http
        .post(format!("{}/session", server.url))
        .json(&escalating_session())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem.to_string().contains("no power control backend"),
        "{problem:#}"
    );
}

#[test]
fn power_redfish_without_its_section_stops_the_server_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "redfish", "");
    let output = Command::new(env!("CARGO_BIN_EXE_crus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-auth", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("redfish") && stderr.contains("backends.power"),
        "{stderr}"
    );
}
