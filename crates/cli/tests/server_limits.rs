//! `crus serve` under hostile load, as a black box on loopback: a dry run
//! that would simulate for ever, a flood of idle connections, a client that
//! dribbles its headers, a keep-alive connection left idle, a health probe
//! aimed at a host the site did not allow, a request id of 64 KB.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::*;

const TOKEN: &str = "limits-token-0123456789";

/// `crus serve` on the simulated cluster with `crus.toml` holding `config`.
fn start(dir: &tempfile::TempDir, config: &str) -> Server {
    let path = path_in(dir.path(), "crus.toml");
    std::fs::write(&path, config).unwrap();
    let db = path_in(dir.path(), "crus.db");
    Server::start(
        &[
            "--config",
            &path,
            "--sim",
            "--sim-nodes",
            "8",
            "--sim-trace",
            "none",
            "--db",
            &db,
            "--token",
            TOKEN,
        ],
        &[],
    )
}

/// `host:port` of the server.
fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_string()
}

/// The session body of the seed with `policy`.
fn with_policy(policy: Value) -> Value {
    let mut body = session_body(2);
    body["policy"] = policy;
    body
}

/// Whether the server closed `stream`: a read ends (EOF or reset) within
/// `within`, rather than timing out. Bytes the server sent first are read
/// past.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Whether `stream` is still open: nothing to read and no end yet.
fn still_open(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buffer = [0u8; 4096];
    let open = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break false,
            Ok(_) => continue,
            Err(error) if error.kind() == ErrorKind::WouldBlock => break true,
            Err(_) => break false,
        }
    };
    stream.set_nonblocking(false).unwrap();
    open
}

/// `GET /healthz` on a connection of its own; the time it took.
async fn healthz_on_a_fresh_connection(server: &Server) -> Duration {
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let response = fresh
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_with_a_huge_soak_answers_422_within_its_budget_and_healthz_answers_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, "[server]\ndry_runs_at_once = 2\n");
    let body = with_policy(json!({"health": {"soak": "9999h"}}));
    let started = Instant::now();
    let dry_runs: Vec<_> = (0..4)
        .map(|_| {
            let url = format!("{}/session?dry_run=true", server.url);
            let body = body.clone();
            tokio::spawn(async move {
                let response = client()
                    .post(url)
                    .bearer_auth(TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").cloned();
                let problem: Value = response.json().await.unwrap();
                (status, retry_after, problem, started.elapsed())
            })
        })
        .collect();
    // /healthz answers while they plan.
    for _ in 0..3 {
        let took = healthz_on_a_fresh_connection(&server).await;
        assert!(took < Duration::from_secs(2), "/healthz took {took:?}");
    }
    let mut refused_for_the_soak = 0;
    for dry_run in dry_runs {
        let (status, retry_after, problem, took) = dry_run.await.unwrap();
        assert!(took < Duration::from_secs(10), "a dry run took {took:?}");
        match status {
            422 => {
                let messages = problem["errors"]["policy.health.soak"].to_string();
                assert!(messages.contains("soaks for 1year 1month"), "{problem:#}");
                assert!(
                    messages.contains("longer than the")
                        && messages.contains("a dry run simulates"),
                    "{problem:#}"
                );
                refused_for_the_soak += 1;
            }
            // More than two at once: the server is busy, and says when to retry.
            503 => {
                assert!(retry_after.is_some(), "{problem:#}");
                assert!(
                    problem["detail"].as_str().unwrap().contains("dry run"),
                    "{problem:#}"
                );
            }
            other => panic!("dry run answered {other}: {problem:#}"),
        }
    }
    assert!(refused_for_the_soak >= 2);
}

#[tokio::test]
async fn a_flood_of_idle_connections_beyond_the_limit_leaves_healthz_answering() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, "[server]\nmax_connections = 50\n");
    let flood: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(address(&server)).unwrap())
        .collect();
    let took = healthz_on_a_fresh_connection(&server).await;
    assert!(took < Duration::from_secs(3), "/healthz took {took:?}");
    // Give the server a moment to close what it displaced.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut open = 0;
    for mut stream in flood {
        if still_open(&mut stream) {
            open += 1;
        }
    }
    assert!(
        open <= 50,
        "{open} of 200 idle connections are held open, over the limit of 50"
    );
    // And the server still serves requests with a token.
    let list = client()
        .get(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
}

#[tokio::test]
async fn slow_headers_and_idle_keep_alive_connections_are_closed_after_their_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        &dir,
        "[server]\nheader_read_timeout = \"1s\"\nidle_timeout = \"4s\"\n",
    );

    // Headers begun and never finished: closed after about a second.
    let mut slow = TcpStream::connect(address(&server)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: crus\r\n")
        .unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(3)),
        "a client short of a whole request head was kept open"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));

    // A keep-alive connection, answered and then left idle: kept past the
    // header timeout, closed after the idle one.
    let mut idle = TcpStream::connect(address(&server)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: crus\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = [0u8; 1024];
    let read = idle.read(&mut answer).unwrap();
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..read])
    );
    let answered = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        still_open(&mut idle),
        "an idle connection was closed by the header timeout"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(6)),
        "an idle keep-alive connection was kept open past idle_timeout"
    );
    assert!(answered.elapsed() >= Duration::from_millis(3500));
}

#[tokio::test]
async fn a_health_probe_to_a_host_the_site_did_not_allow_is_refused_with_422() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        &dir,
        "[health]\nallowed_http_hosts = [\"{node}\", \"*.mgmt.example.org\"]\n",
    );
    let http = client();
    for dry_run in ["", "?dry_run=true"] {
        let response = http
            .post(format!("{}/session{dry_run}", server.url))
            .bearer_auth(TOKEN)
            .json(&with_policy(json!({"health": {
                "http": "http://169.254.169.254/latest/meta-data/{node}"
            }})))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "POST /session{dry_run}");
        let problem: Value = response.json().await.unwrap();
        let messages = problem["errors"]["policy.health"].to_string();
        assert!(messages.contains("allowed_http_hosts"), "{problem:#}");
        assert!(messages.contains("169.254.169.254"), "{problem:#}");
    }
    // Nothing was created.
    let list: Value = http
        .get(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
    // The nodes themselves and the allowed domain are fine.
    for url in [
        "http://{node}:9100/healthy",
        "https://{node}.mgmt.example.org/healthy",
    ] {
        let response = http
            .post(format!("{}/session?dry_run=true", server.url))
            .bearer_auth(TOKEN)
            .json(&with_policy(json!({"health": {"http": url}})))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
    }
}

#[tokio::test]
async fn a_request_id_of_64_kb_is_replaced_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, "");
    let http = client();
    let huge = "a".repeat(64 * 1024);
    let response = http
        .get(format!("{}/healthz", server.url))
        .header("x-request-id", &huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echoed = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(echoed, huge);
    assert!(uuid::Uuid::parse_str(echoed).is_ok(), "{echoed}");
    // A reasonable id is still echoed.
    let response = http
        .get(format!("{}/healthz", server.url))
        .header("x-request-id", "job-4711.step-2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "job-4711.step-2");
}
