//! What the tests of `crus serve` on a site's own backends (Kadeploy,
//! CycleCloud) share: a session run to its end over HTTP, and a start that
//! must fail.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{assert_completed_as_crus_said, client, create_session, wait_for};

/// The body of a session upgrading group `starting_label` to `template`,
/// `step` nodes at a time, plus the `extra` fields.
pub fn session_body(starting_label: &str, template: &str, step: u32, extra: Value) -> Value {
    let mut body = json!({
        "starting_label": starting_label,
        "upgrading_label": "crus-upgrading",
        "failed_label": "crus-failed",
        "upgrade_step_size": step,
        "upgrade_template_id": template,
        "workload_manager_type": "slurm"
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

/// Creates the session `body` on the server at `url` (no auth) and waits,
/// at most 15 s, until it completed with all `nodes` upgraded; the
/// finished session.
pub async fn upgrade_all(url: &str, body: &Value, nodes: usize) -> Value {
    let http = client();
    let id = create_session(&http, url, None, body).await;
    let session = wait_for(&http, url, None, &id, Duration::from_secs(15), |session| {
        session["completed"] == true
    })
    .await;
    assert_eq!(session["state"], "READY", "{session:#}");
    assert_completed_as_crus_said(&session, &format!("{nodes} of {nodes} nodes upgraded"));
    session
}

/// The standard error of `crus serve --config config`, which must stop at start.
pub fn start_failure(config: &Path, envs: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_crus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-auth", "--config"])
        .arg(config)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "crus serve started with {config:?}"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Checks that the group `label` of a groups file (`{"groups": {...}}`,
/// the file inventory's or CycleCloud's) has no members, or is not there.
pub fn assert_no_members(file: &Value, label: &str) {
    let members = &file["groups"][label];
    assert!(
        members.is_null() || members.as_array().is_some_and(Vec::is_empty),
        "{label}: {file:#}"
    );
}
