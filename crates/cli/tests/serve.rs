//! `crus serve` as a black box: the built binary on a free port, driven over
//! HTTP and by the `crus session` client.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::*;

const TOKEN: &str = "test-token-0123456789";

fn sim_args(dir: &tempfile::TempDir) -> Vec<String> {
    [
        "--sim",
        "--sim-nodes",
        "8",
        "--sim-trace",
        "none",
        "--sim-speed",
        "3000",
        "--db",
        &path_in(dir.path(), "crus.db"),
        "--token",
        TOKEN,
    ]
    .map(str::to_string)
    .to_vec()
}

fn start(dir: &tempfile::TempDir, extra: &[&str], envs: &[(&str, &str)]) -> Server {
    let mut args = sim_args(dir);
    args.extend(extra.iter().map(|arg| arg.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&args, envs)
}

#[tokio::test]
async fn a_session_runs_to_ready_and_is_listed_fetched_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, &[], &[]);
    let http = client();

    // Both the bare path and the gateway prefix serve the API.
    let created = http
        .post(format!("{}/apis/crus/session", server.url))
        .bearer_auth(TOKEN)
        .json(&session_body(3))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["content-type"], "application/json");
    let created: Value = created.json().await.unwrap();
    let id = created["upgrade_id"].as_str().unwrap().to_string();
    assert_eq!(created["kind"], "ComputeUpgradeSession");
    assert_eq!(created["completed"], false);

    let finished = wait_for(
        &http,
        &server.url,
        Some(TOKEN),
        &id,
        Duration::from_secs(60),
        |s| s["completed"] == true,
    )
    .await;
    assert_all_eight_upgraded(&finished);

    let list: Value = http
        .get(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["upgrade_id"], id.as_str());

    let deleted = http
        .delete(format!("{}/session/{id}", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let gone = http
        .get(format!("{}/apis/crus/session/{id}", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let problem: Value = gone.json().await.unwrap();
    assert_eq!(
        problem["detail"],
        "Requested resource does not exist. Re-run request with valid ID."
    );

    // SIGTERM: stop accepting, finish, exit 0.
    assert_eq!(server.terminate(), Some(0));
}

fn jwt(secret: &str, expires_in: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({"sub": "admin", "exp": now + expires_in, "iat": now});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn auth_rejects_missing_wrong_and_expired_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-long-enough-hs256-secret-for-tests";
    let server = start(&dir, &[], &[("CRUS_JWT_SECRET", secret)]);
    let http = client();
    let list = format!("{}/session", server.url);

    let none = http.get(&list).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(
        none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(none.headers()["content-type"], "application/problem+json");

    for bad in [
        "wrong-token".to_string(),
        jwt(secret, -3600),
        jwt("another-secret-of-enough-length", 3600),
    ] {
        let answer = http.get(&list).bearer_auth(&bad).send().await.unwrap();
        assert_eq!(answer.status(), 401, "accepted {bad}");
        assert!(
            answer.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
    for good in [TOKEN.to_string(), jwt(secret, 3600)] {
        let answer = http.get(&list).bearer_auth(&good).send().await.unwrap();
        assert_eq!(answer.status(), 200, "refused {good}");
    }
    for public in ["/healthz", "/readyz"] {
        assert_eq!(
            http.get(format!("{}{public}", server.url))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{public}"
        );
    }
}

#[test]
fn serve_refuses_to_start_without_any_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_crus"))
        .args([
            "serve",
            "--sim",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &path_in(dir.path(), "crus.db"),
        ])
        .env_remove("CRUS_TOKENS")
        .env_remove("CRUS_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--no-auth"), "{stderr}");
    assert!(
        !dir.path().join("crus.db").exists(),
        "nothing is created when refusing to start"
    );
}

fn crus_cli(server: &Server, args: &[&str]) -> (bool, String, String) {
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

#[tokio::test]
async fn the_cli_creates_watches_describes_lists_and_deletes_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, &[], &[]);
    let create = [
        "session",
        "create",
        "--starting-label",
        "compute",
        "--upgrading-label",
        "crus-upgrading",
        "--failed-label",
        "crus-failed",
        "--upgrade-step-size",
        "4",
        "--upgrade-template-id",
        "compute-image",
        "--workload-manager-type",
        "slurm",
        "--format",
        "json",
    ];
    let (ok, stdout, stderr) = crus_cli(&server, &create);
    assert!(ok, "{stderr}");
    let created: Value =
        serde_json::from_str(&stdout).expect("--format json prints the server's JSON");
    let id = created["upgrade_id"].as_str().unwrap().to_string();

    let (ok, stdout, stderr) = crus_cli(
        &server,
        &[
            "session",
            "watch",
            &id,
            "--interval",
            "50ms",
            "--format",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let watched: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(watched["completed"], true);
    assert_eq!(watched["state"], "READY");

    let (ok, stdout, _) = crus_cli(&server, &["session", "describe", &id]);
    assert!(ok);
    assert!(stdout.contains("READY"), "{stdout}");
    let (ok, stdout, _) = crus_cli(&server, &["session", "list"]);
    assert!(ok);
    assert!(stdout.contains(&id), "{stdout}");

    // A second session on the same nodes is fine once the first finished;
    // deleting it while it runs stops it, and it disappears.
    let (ok, stdout, stderr) = crus_cli(&server, &create);
    assert!(ok, "{stderr}");
    let second: Value = serde_json::from_str(&stdout).unwrap();
    let second_id = second["upgrade_id"].as_str().unwrap();
    let (ok, stdout, stderr) = crus_cli(
        &server,
        &["session", "delete", second_id, "--format", "json"],
    );
    assert!(ok, "{stderr}");
    let deleting: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        deleting["state"] == "DELETING" || deleting["completed"] == true,
        "{deleting:#}"
    );
    let http = client();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = http
            .get(format!("{}/session/{second_id}", server.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status();
        if status == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deleted session was never removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Errors from the server are printed as `title: detail`, exit non-zero.
    let (ok, _, stderr) = crus_cli(&server, &["session", "describe", "not-a-session"]);
    assert!(!ok);
    assert!(
        stderr.contains("Not Found: Requested resource does not exist."),
        "{stderr}"
    );
    let mut bad = create.to_vec();
    bad[9] = "0";
    let (ok, _, stderr) = crus_cli(&server, &bad);
    assert!(!ok);
    assert!(
        stderr.contains("Unprocessable Entity") && stderr.contains("upgrade_step_size"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_config_file_chooses_a_file_inventory_and_no_workload_manager() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.json");
    std::fs::write(
        &inventory,
        r#"{"nodes": [{"id": "x1000c0s0b0n0", "nid": 1}, {"id": "x1000c0s0b0n1", "nid": 2}, {"id": "x1000c0s0b1n0", "nid": 3}],
            "groups": {"compute": ["x1000c0s0b0n0", "x1000c0s0b0n1", "x1000c0s0b1n0"]}}"#,
    )
    .unwrap();
    let config = dir.path().join("crus.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndb = {db:?}\n[auth]\ntokens = [{TOKEN:?}]\n[backends]\ninventory = \"file\"\nworkload_manager = \"none\"\nboot = \"sim\"\n[file]\npath = {inventory:?}\n[sim]\nnodes = 4\nspeed = 3000.0\ntrace = \"none\"\n",
            db = path_in(dir.path(), "crus.db"),
            inventory = inventory.display().to_string(),
        ),
    )
    .unwrap();
    let server = Server::start(&["--config", &config.display().to_string()], &[]);
    let http = client();
    let created: Value = http
        .post(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .json(&session_body(2))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["upgrade_id"].as_str().unwrap().to_string();
    let finished = wait_for(
        &http,
        &server.url,
        Some(TOKEN),
        &id,
        Duration::from_secs(60),
        |s| s["completed"] == true,
    )
    .await;
    assert_completed_as_crus_said(&finished, "3 of 3 nodes upgraded");
    // The groups crus made live in the inventory file.
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&inventory).unwrap()).unwrap();
    assert_eq!(saved["groups"]["crus-upgrading"], serde_json::json!([]));
    assert_eq!(saved["groups"]["crus-failed"], serde_json::json!([]));
}

#[test]
fn a_misconfigured_backend_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("crus.toml");
    for (backends, expected) in [
        (
            "boot = \"slurm-reboot\"\n[slurm_reboot]\ntemplates = [\"two words\"]",
            "slurm_reboot.templates",
        ),
        ("inventory = \"hsm\"", "the [hsm] section"),
    ] {
        std::fs::write(
            &config,
            format!("[auth]\nno_auth = true\n[backends]\n{backends}\n"),
        )
        .unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_crus"))
            .args([
                "serve",
                "--config",
                &config.display().to_string(),
                "--listen",
                "127.0.0.1:0",
                "--db",
                &path_in(dir.path(), "crus.db"),
            ])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{backends} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{backends}: {stderr}");
    }
}

#[tokio::test]
async fn hsm_and_bos_from_the_config_file_check_new_sessions() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let cray = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/apis/smd/hsm/v2/groups/compute"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "label": "compute", "description": "", "members": {"ids": ["x1000c0s0b0n0", "x1000c0s0b0n1"]}
        })))
        .mount(&cray)
        .await;
    Mock::given(method("GET"))
        .and(path("/apis/smd/hsm/v2/groups/nosuch"))
        .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({
            "type": "about:blank", "title": "Not Found", "detail": "No such group: nosuch", "status": 404
        })))
        .mount(&cray)
        .await;
    Mock::given(method("GET"))
        .and(path("/apis/bos/v2/sessiontemplates/compute-image"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"name": "compute-image", "boot_sets": {}})),
        )
        .mount(&cray)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("service-token");
    std::fs::write(&token, "service-token-value\n").unwrap();
    let config = dir.path().join("crus.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndb = {db:?}\n[auth]\ntokens = [{TOKEN:?}]\n[backends]\ninventory = \"hsm\"\nworkload_manager = \"none\"\nboot = \"bos\"\n[hsm]\nbase_url = \"{uri}/apis/smd\"\ntoken_file = {token:?}\n[bos]\nbase_url = \"{uri}/apis/bos\"\ntoken_file = {token:?}\ntenant = \"vcluster-blue\"\n",
            db = path_in(dir.path(), "crus.db"),
            uri = cray.uri(),
            token = token.display().to_string(),
        ),
    )
    .unwrap();
    let server = Server::start(&["--config", &config.display().to_string()], &[]);
    let http = client();

    let mut missing = session_body(1);
    missing["starting_label"] = "nosuch".into();
    let refused = http
        .post(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .json(&missing)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(
        problem["errors"]["starting_label"][0],
        "Group 'nosuch' does not exist in the inventory."
    );

    let created = http
        .post(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .json(&session_body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // crus asked HSM and BOS, with the service token from the file.
    let requests = cray.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .any(|request| request.url.path() == "/apis/bos/v2/sessiontemplates/compute-image")
    );
    assert!(requests.iter().all(|request| {
        request
            .headers
            .get("authorization")
            .is_some_and(|value| value == "Bearer service-token-value")
    }));
    // BOS calls carry [bos] tenant; HSM calls do not.
    for request in &requests {
        let tenant = request.headers.get("cray-tenant-name");
        if request.url.path().starts_with("/apis/bos/") {
            assert_eq!(tenant.unwrap(), "vcluster-blue", "{}", request.url);
        } else {
            assert!(tenant.is_none(), "{}", request.url);
        }
    }
}

#[tokio::test]
async fn bos_v1_boots_check_templates_with_v1_and_sessions_get_the_bos_boot_timeout() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let cray = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/apis/smd/hsm/v2/groups/compute"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "label": "compute", "description": "", "members": {"ids": ["x1000c0s0b0n0"]}
        })))
        .mount(&cray)
        .await;
    Mock::given(method("GET"))
        .and(path("/apis/bos/v1/sessiontemplate/compute-image"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"name": "compute-image", "boot_sets": {"compute": {"node_groups": ["crus-upgrading"]}}}),
        ))
        .expect(1..)
        .mount(&cray)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("crus.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndb = {db:?}\n[auth]\ntokens = [{TOKEN:?}]\n[backends]\ninventory = \"hsm\"\nworkload_manager = \"none\"\nboot = \"bos-v1\"\n[hsm]\nbase_url = \"{uri}/apis/smd\"\n[bos]\nbase_url = \"{uri}/apis/bos\"\n",
            db = path_in(dir.path(), "crus.db"),
            uri = cray.uri(),
        ),
    )
    .unwrap();
    let server = Server::start(&["--config", &config.display().to_string()], &[]);
    let http = client();
    // A policy's own boot timeout wins (a dry run: a session of the same
    // nodes would overlap the one created below).
    let mut own = session_body(1);
    own["policy"] = serde_json::json!({"boot_timeout": "55m"});
    let planned: Value = http
        .post(format!("{}/session?dry_run=true", server.url))
        .bearer_auth(TOKEN)
        .json(&own)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(planned["policy"]["boot_timeout"], "55m", "{planned:#}");
    // The session's policy sets no boot timeout: it gets BOS's default, not
    // the old 10 minutes, and GET /session/{id} shows it.
    let created = http
        .post(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .json(&session_body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = created["upgrade_id"].as_str().unwrap();
    let fetched: Value = http
        .get(format!("{}/session/{id}", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["policy"]["boot_timeout"], "40m", "{fetched:#}");
}

#[cfg(unix)]
#[tokio::test]
async fn slurm_nid_names_come_from_hsm_at_start() {
    use std::os::unix::fs::PermissionsExt;
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let cray = MockServer::start().await;
    let group = |label: &str, ids: &[&str]| {
        Mock::given(method("GET"))
            .and(path(format!("/apis/smd/hsm/v2/groups/{label}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "label": label, "description": "", "members": {"ids": ids}
            })))
    };
    group("compute", &["x1000c0s0b0n0", "x1000c0s0b0n1"])
        .mount(&cray)
        .await;
    group("crus-upgrading", &[]).mount(&cray).await;
    group("crus-failed", &[]).mount(&cray).await;
    Mock::given(method("POST"))
        .and(path("/apis/smd/hsm/v2/groups"))
        .respond_with(ResponseTemplate::new(409).set_body_json(serde_json::json!({
            "type": "about:blank", "title": "Conflict", "status": 409,
            "detail": "operation would conflict with an existing group that has the same label."
        })))
        .mount(&cray)
        .await;
    Mock::given(method("GET"))
        .and(path("/apis/smd/hsm/v2/State/Components"))
        .and(query_param("type", "Node"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"Components": [
            {"ID": "x1000c0s0b0n0", "Type": "Node", "State": "Ready", "Enabled": true, "NID": 1},
            {"ID": "x1000c0s0b0n1", "Type": "Node", "State": "Ready", "Enabled": true, "NID": 2}
        ]})))
        .mount(&cray)
        .await;
    Mock::given(method("GET"))
        .and(path("/apis/bos/v2/sessiontemplates/compute-image"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"name": "compute-image", "boot_sets": {}})),
        )
        .mount(&cray)
        .await;

    // Fake Slurm commands that log their arguments; `sinfo` has no --json,
    // so nodes are read with `scontrol -o show node`, which knows only NIDs.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("slurm.log");
    // The nodes are idle and in service: drained with a reason crus did
    // not write, they would be an administrator's, and never drained again.
    let show = "NodeName=nid000001 State=IDLE\nNodeName=nid000002 State=IDLE";
    for (program, body) in [
        (
            "scontrol",
            format!("case \"$*\" in *show*) printf '%s\\n' '{show}' ;; esac"),
        ),
        (
            "sinfo",
            "echo \"sinfo: unrecognized option '--json'\" >&2; exit 1".to_string(),
        ),
        ("squeue", String::new()),
    ] {
        let script = bin.join(program);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"{program} $*\" >> {log:?}\n{body}\n",
                log = log.display().to_string()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let token = dir.path().join("service-token");
    std::fs::write(&token, "service-token-value\n").unwrap();
    let config = dir.path().join("crus.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndb = {db:?}\n[auth]\ntokens = [{TOKEN:?}]\n[backends]\ninventory = \"hsm\"\nworkload_manager = \"slurm\"\nboot = \"bos\"\n[slurm]\nbin_dir = {bin:?}\nnode_names = \"nid\"\n[hsm]\nbase_url = \"{uri}/apis/smd\"\ntoken_file = {token:?}\n[bos]\nbase_url = \"{uri}/apis/bos\"\ntoken_file = {token:?}\n",
            db = path_in(dir.path(), "crus.db"),
            bin = bin.display().to_string(),
            uri = cray.uri(),
            token = token.display().to_string(),
        ),
    )
    .unwrap();
    let server = Server::start(&["--config", &config.display().to_string()], &[]);

    // The NIDs were listed before the server started listening.
    let requests = cray.received_requests().await.unwrap();
    assert!(
        requests.iter().any(|request| {
            request.url.path() == "/apis/smd/hsm/v2/State/Components"
                && request
                    .url
                    .query_pairs()
                    .any(|(key, value)| key == "type" && value == "Node")
        }),
        "HSM was not asked for the nodes' NIDs"
    );

    let created = client()
        .post(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .json(&session_body(2))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // The first step drains its nodes under their Slurm names.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let commands = std::fs::read_to_string(&log).unwrap_or_default();
        if commands.contains("nid000001") {
            assert!(!commands.contains("x1000c0s0b0n0"), "{commands}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Slurm was never asked about nid000001; it ran:\n{commands}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
