//! `crus serve` when its SQLite session store fails or is shared: a second
//! server on the same file refuses to start; a file made immutable halts the
//! session (said by the session, readiness and metrics) until it takes
//! writes again, then the session carries on by itself, booting no node
//! twice; a directory removed under a running server is never answered 201;
//! an empty file is refused at start.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

/// `crus serve ARGS` expected to refuse to start: its exit code and log.
fn refused_start(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crus"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("CRUS_TOKENS")
        .env_remove("CRUS_JWT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            return (
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    panic!(
        "crus serve {args:?} started instead of refusing: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_database_refuses_to_start_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let db = path_in(dir.path(), "crus.db");
    let state = path_in(dir.path(), "sim.json");
    let mut args = vec![
        "--sim",
        "--no-auth",
        "--db",
        &db,
        "--sim-state",
        &state,
        "--boot-timeout",
        "2h",
    ];
    args.extend(SMALL_NASA_CLUSTER);
    let first = Server::start(&args, &[]);
    let http = client();
    let id = create_session(&http, &first.url, None, &session_body(4)).await;

    let (code, log) = refused_start(&args);
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains(&db), "names the database: {log}");
    assert!(
        log.contains(&format!("pid {}", first.child.id())),
        "names the holder: {log}"
    );
    assert!(log.contains("another crus server"), "{log}");

    // A killed server leaves no lock behind: the next one resumes the session.
    first.kill_9();
    let second = Server::start(&args, &[]);
    let finished = wait_for(
        &http,
        &second.url,
        None,
        &id,
        Duration::from_secs(120),
        |session| session["state"] == "READY",
    )
    .await;
    assert_all_eight_upgraded(&finished);
    second.terminate();
    assert_every_node_booted_once(Path::new(&state));
}

#[test]
fn an_empty_database_file_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = path_in(dir.path(), "crus.db");
    std::fs::write(&db, b"").unwrap();
    let (code, log) = refused_start(&["--sim", "--no-auth", "--db", &db]);
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains(&db) && log.contains("is empty"), "{log}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "left untouched");
}

/// Files made immutable (`chattr +i`) until dropped, so a failed test does
/// not leave a directory nobody can remove.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    /// Makes `files` immutable; `None` where the file system cannot.
    fn set(files: Vec<PathBuf>) -> Option<Immutable> {
        let files: Vec<PathBuf> = files.into_iter().filter(|file| file.exists()).collect();
        let status = Command::new("chattr").arg("+i").args(&files).status();
        if status.is_ok_and(|status| status.success()) {
            Some(Immutable(files))
        } else {
            let _ = Command::new("chattr").arg("-i").args(&files).status();
            None
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

/// The database and its WAL; not the `-shm` index, which SQLite maps into
/// memory: a write fault on an immutable mapping is a SIGBUS, which kills
/// any process, not a write error crus could answer.
fn database_files(db: &Path) -> Vec<PathBuf> {
    ["", "-wal"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", db.display())))
        .collect()
}

async fn readiness(http: &reqwest::Client, url: &str) -> (u16, String) {
    let response = http.get(format!("{url}/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn an_immutable_database_halts_the_session_which_carries_on_by_itself_once_writable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crus.db");
    let db_text = db.display().to_string();
    let state = path_in(dir.path(), "sim.json");
    let mut args = vec![
        "--sim",
        "--no-auth",
        "--db",
        &db_text,
        "--sim-state",
        &state,
        "--boot-timeout",
        "2h",
    ];
    args.extend(SMALL_NASA_CLUSTER);
    let server = Server::start(&args, &[]);
    let http = client();
    let id = create_session(&http, &server.url, None, &session_body(4)).await;
    wait_for(
        &http,
        &server.url,
        None,
        &id,
        Duration::from_secs(30),
        |session| said(session, "Step 0 started: draining"),
    )
    .await;

    let Some(immutable) = Immutable::set(database_files(&db)) else {
        eprintln!("skipped: chattr +i is not supported here");
        return;
    };
    let halted = wait_for(
        &http,
        &server.url,
        None,
        &id,
        Duration::from_secs(60),
        |session| session["phase"] == "halted",
    )
    .await;
    assert!(
        said(&halted, "The session store refused to save this session"),
        "{halted:#}"
    );
    let (status, body) = readiness(&http, &server.url).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("refuses writes"), "{body}");
    let metrics = get_text(&http, &server.url, "/metrics", None).await;
    assert!(
        metrics.contains("crus_store_refusing_writes 1"),
        "{metrics}"
    );
    let listed: Value = http
        .get(format!("{}/session", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["phase"], "halted", "{listed:#}");
    // Held for a while: nothing moves while the store refuses writes.
    tokio::time::sleep(Duration::from_secs(3)).await;

    drop(immutable);
    let finished = wait_for(
        &http,
        &server.url,
        None,
        &id,
        Duration::from_secs(180),
        |session| session["state"] == "READY",
    )
    .await;
    assert_all_eight_upgraded(&finished);
    assert!(
        said(&finished, "The session store refused to save this session"),
        "the refusal is kept in the stored messages: {finished:#}"
    );
    let (status, body) = readiness(&http, &server.url).await;
    assert_eq!(status, 200, "{body}");
    server.terminate();
    assert_every_node_booted_once(Path::new(&state));
}

#[tokio::test]
async fn a_database_directory_removed_under_a_running_server_is_never_answered_201() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let db = path_in(&data, "crus.db");
    let mut args = vec!["--sim", "--no-auth", "--db", &db];
    args.extend(SMALL_NASA_CLUSTER);
    let server = Server::start(&args, &[]);
    let http = client();
    assert_eq!(readiness(&http, &server.url).await.0, 200);

    std::fs::remove_dir_all(&data).unwrap();
    let answer = http
        .post(format!("{}/session", server.url))
        .json(&session_body(4))
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let body = answer.text().await.unwrap();
    assert_ne!(status, 201, "a session that was not stored: {body}");
    assert!(status.is_server_error(), "{status}: {body}");
    let (status, body) = readiness(&http, &server.url).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("is gone"), "{body}");

    // Put back (a new, empty directory is not the file crus had open): the
    // store still refuses, rather than writing where nothing is kept.
    std::fs::create_dir(&data).unwrap();
    let (status, body) = readiness(&http, &server.url).await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn sim_store_fault_rate_fails_that_share_of_store_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = path_in(dir.path(), "crus.db");
    let (code, log) = refused_start(&[
        "--sim",
        "--no-auth",
        "--db",
        &db,
        "--sim-store-fault-rate",
        "1.5",
    ]);
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains("--sim-store-fault-rate"), "{log}");

    let server = Server::start(
        &[
            "--sim",
            "--no-auth",
            "--db",
            &db,
            "--sim-store-fault-rate",
            "1",
        ],
        &[],
    );
    let http = client();
    let answer = http
        .post(format!("{}/session", server.url))
        .json(&session_body(4))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_server_error(), "{}", answer.status());
    let (status, body) = readiness(&http, &server.url).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("injected write failure"), "{body}");
}
