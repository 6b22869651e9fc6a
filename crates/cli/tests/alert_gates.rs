//! Alert gates against a real Alertmanager and a real Prometheus (Debian
//! packages `prometheus-alertmanager` and `prometheus`, started here on
//! loopback ports with temporary directories) and the real `crus serve
//! --sim`: a firing alert holds a session before it takes any node, and the
//! session finishes once the alert is released; a Prometheus query on a
//! metric this test serves does the same; a stopped Alertmanager holds a
//! session too (fail closed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{Server, client, create_session, path_in, said, session_body, wait_for};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A free loopback port.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A monitoring daemon, killed when dropped.
struct Daemon {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Daemon {
    /// Starts `program args`, logging to `log`, and waits (at most 30 s)
    /// until `{url}/-/ready` answers 200; fails loudly with its log if not.
    async fn start(program: &str, args: &[String], url: String, log: &Path) -> Daemon {
        assert!(
            Path::new(program).exists(),
            "{program} is missing: install the Debian packages prometheus-alertmanager and \
             prometheus (scripts/test.sh does)"
        );
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|error| panic!("{program} cannot start: {error}"));
        let mut daemon = Daemon {
            child,
            url,
            log: log.to_path_buf(),
        };
        let http = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("{program} exited ({status}); its log:\n{}", daemon.said());
            }
            if let Ok(response) = http.get(format!("{}/-/ready", daemon.url)).send().await
                && response.status().is_success()
            {
                return daemon;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{program} not ready within 30 s; its log:\n{}",
            daemon.said()
        );
    }

    fn said(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real Alertmanager on `port` that routes every alert nowhere.
async fn alertmanager(dir: &Path, port: u16) -> Daemon {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n",
    )
    .unwrap();
    let storage = dir.join("alertmanager-data");
    std::fs::create_dir_all(&storage).unwrap();
    Daemon::start(
        ALERTMANAGER,
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", storage.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // One instance: no gossip port.
            "--cluster.listen-address=".to_string(),
        ],
        format!("http://127.0.0.1:{port}"),
        &dir.join("alertmanager.log"),
    )
    .await
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Posts the alert `PfsDegraded{severity="critical"}` to Alertmanager's API,
/// firing for an hour, or (with `released`) ended a minute ago.
async fn post_alert(alertmanager: &str, released: bool) {
    let now = SystemTime::now();
    let ends = if released {
        now - Duration::from_secs(60)
    } else {
        now + Duration::from_secs(3600)
    };
    let alert = json!([{
        "labels": {"alertname": "PfsDegraded", "severity": "critical", "cluster": "test"},
        "annotations": {"summary": "the parallel file system is degraded"},
        "startsAt": rfc3339(now - Duration::from_secs(120)),
        "endsAt": rfc3339(ends),
    }]);
    let response = client()
        .post(format!("{alertmanager}/api/v2/alerts"))
        .json(&alert)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
}

fn count(session: &Value, phase: &str) -> u64 {
    session["nodes"][phase].as_u64().unwrap_or(0)
}

/// The arguments of a small, quick simulated cluster: 4 nodes, no jobs,
/// boots of a simulated minute at 60x (a second).
fn sim_args<'a>(config: &'a str, db: &'a str) -> Vec<&'a str> {
    vec![
        "--config",
        config,
        "--sim",
        "--sim-nodes",
        "4",
        "--sim-trace",
        "none",
        "--sim-speed",
        "60",
        "--sim-boot-time",
        "1m",
        "--poll-interval",
        "10s",
        "--db",
        db,
        "--no-auth",
    ]
}

async fn held_with_nothing_taken(url: &str, id: &str, text: &str) -> Value {
    let http = client();
    let held = wait_for(&http, url, None, id, Duration::from_secs(20), |session| {
        session["phase"] == "gated" && said(session, text)
    })
    .await;
    assert_eq!(count(&held, "pending"), 4, "{held:#}");
    // Held, it stays held: nothing taken a few polls later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = wait_for(&http, url, None, id, Duration::from_secs(5), |_| true).await;
    assert_eq!(later["phase"], "gated", "{later:#}");
    assert_eq!(count(&later, "pending"), 4, "{later:#}");
    later
}

async fn finished(url: &str, id: &str) -> Value {
    let done = wait_for(
        &client(),
        url,
        None,
        id,
        Duration::from_secs(30),
        |session| session["completed"] == true,
    )
    .await;
    assert_eq!(count(&done, "done"), 4, "{done:#}");
    assert_eq!(done["phase"], "succeeded", "{done:#}");
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_alerts_hold_a_session_and_a_stopped_alertmanager_holds_it_too() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut manager = alertmanager(dir.path(), port).await;
    post_alert(&manager.url, false).await;

    let config = dir.path().join("crus.toml");
    std::fs::write(
        &config,
        format!(
            "[[gates]]\nalertmanager = \"{}\"\nfilter = [\"severity=critical\", \"cluster=test\"]\n",
            manager.url
        ),
    )
    .unwrap();
    let (config, db) = (config.display().to_string(), path_in(dir.path(), "crus.db"));
    let server = Server::start_logged(&sim_args(&config, &db), &[], &dir.path().join("crus.log"));
    let http = client();

    // A firing alert: held before any node is taken, and says which.
    let id = create_session(&http, &server.url, None, &session_body(2)).await;
    let held = held_with_nothing_taken(&server.url, &id, "PfsDegraded").await;
    assert!(said(&held, "Held by alert gates"), "{held:#}");
    let metrics = common::get_text(&http, &server.url, "/metrics", None).await;
    assert!(metrics.contains("crus_sessions_gated 1"), "{metrics}");
    // Released: the session goes on and finishes.
    post_alert(&manager.url, true).await;
    let done = finished(&server.url, &id).await;
    assert!(said(&done, "Alert gates clear"), "{done:#}");

    // Alertmanager stopped: a new session holds (fail closed), and goes on
    // once Alertmanager is back.
    manager.stop();
    let id = create_session(&http, &server.url, None, &session_body(2)).await;
    held_with_nothing_taken(&server.url, &id, "cannot be reached").await;
    let _manager = alertmanager(dir.path(), port).await;
    finished(&server.url, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_query_on_a_site_metric_holds_a_session_until_it_clears() {
    let dir = tempfile::tempdir().unwrap();
    // The site's exporter: a maintenance flag Prometheus scrapes.
    let exporter = MockServer::start().await;
    let serve_flag = |value: u32| {
        Mock::given(method("GET"))
            .and(path("/metrics"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "text/plain; version=0.0.4")
                    .set_body_string(format!(
                        "# HELP site_maintenance 1 while the site is in maintenance.\n\
                         # TYPE site_maintenance gauge\nsite_maintenance {value}\n"
                    )),
            )
    };
    serve_flag(1).mount(&exporter).await;
    let target = exporter.uri().trim_start_matches("http://").to_string();
    let prometheus_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: site\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let storage = dir.path().join("prometheus-data");
    let prometheus = Daemon::start(
        PROMETHEUS,
        &[
            format!("--config.file={}", prometheus_config.display()),
            format!("--storage.tsdb.path={}", storage.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        format!("http://127.0.0.1:{port}"),
        &dir.path().join("prometheus.log"),
    )
    .await;
    // Wait for the first scrape, so the query has something to say.
    let http = client();
    let query = "site_maintenance == 1";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer: Value = http
            .get(format!("{}/api/v1/query", prometheus.url))
            .query(&[("query", query)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if answer["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the exporter within 30 s: {answer}; its log:\n{}",
            prometheus.said()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The session names its own gate; the server allows the host.
    let config = dir.path().join("crus.toml");
    std::fs::write(&config, "[alert_gates]\nallowed_hosts = [\"127.0.0.1\"]\n").unwrap();
    let (config, db) = (config.display().to_string(), path_in(dir.path(), "crus.db"));
    let server = Server::start_logged(&sim_args(&config, &db), &[], &dir.path().join("crus.log"));
    let mut body = session_body(2);
    body["policy"] = json!({
        "gates": [{"prometheus": prometheus.url, "query": query, "block_when": "nonempty"}]
    });
    let id = create_session(&http, &server.url, None, &body).await;
    held_with_nothing_taken(&server.url, &id, "site_maintenance").await;

    // The flag drops: after the next scrape the query is empty.
    exporter.reset().await;
    serve_flag(0).mount(&exporter).await;
    finished(&server.url, &id).await;

    // A gate on a host the server does not allow is refused at creation.
    let mut refused = session_body(2);
    refused["policy"] = json!({
        "gates": [{"alertmanager": "http://monitor.example.org:9093"}]
    });
    let response = http
        .post(format!("{}/session", server.url))
        .json(&refused)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert!(problem.to_string().contains("policy.gates"), "{problem:#}");
}
