//! API overhead (issue 7, part 3): the real router and HTTP stack on a
//! loopback port, over a SQLite store holding 1,000 sessions, against a bare
//! axum handler that returns the same bytes.
//!
//! - `GET /session/{id}`, `GET /session` and `POST /session?dry_run=true` at
//!   1, 16 and 64 concurrent connections, a fixed number of requests each:
//!   requests/s, p50 and p99 latency, and throughput as a share of the bare
//!   handler's on the same bytes;
//! - event latency: from a node transition (the event published in the
//!   controller's log) to the event read by a client of `GET /events`.
//!
//! - the API under a large session (issue 25): a session of
//!   `CRUS_BENCH_LARGE_NODES` nodes (10,000; 0 skips it) running on the
//!   simulator while `GET /session/{id}` of it is measured as above, while
//!   `/metrics` is scraped, and while a client reads its events.
//!
//! Run with `cargo bench -p crus-http --bench http`. Targets: throughput ≥ 0.5×
//! the bare handler, p99 ≤ 5 ms at 64 connections, event p99 ≤ 20 ms, a
//! `/metrics` scrape ≤ 50 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use crus_backends::sim::{SimCluster, SimConfig};
use crus_backends::sqlite::SqliteStore;
use crus_core::clock::TokioClock;
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::rollout::RolloutPolicy;
use crus_core::store::SessionStore;
use crus_core::{SessionSpec, Timestamp};
use crus_http::{AppState, Auth, AuthConfig, Metrics, ServerLimits, app, instrument_ports};
use futures::StreamExt;
use tokio::net::TcpListener;

const TOKEN: &str = "bench-token-0123456789";
const SESSIONS: usize = 1_000;
const REQUESTS: usize = 4_000;
const CONCURRENCY: [usize; 3] = [1, 16, 64];
/// The large session's nodes, unless `CRUS_BENCH_LARGE_NODES` says otherwise.
const LARGE_NODES: usize = 10_000;
/// Its step: 20 steps at 10,000 nodes, so it runs through the measurements.
const LARGE_STEP: u32 = 500;

fn spec(step: u32) -> SessionSpec {
    SessionSpec {
        starting_label: "compute".into(),
        upgrading_label: "crus-upgrading".into(),
        failed_label: "crus-failed".into(),
        upgrade_step_size: step,
        upgrade_template_id: "compute-image".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    }
}

/// Latencies of one run, and how long it took.
struct Run {
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    fn percentile(&mut self, share: f64) -> Duration {
        self.latencies.sort();
        let index = ((self.latencies.len() as f64 - 1.0) * share).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

/// `REQUESTS` requests made by `connections` clients, each with its own
/// connection (a client per task, pool of one), one request at a time.
async fn load(
    connections: usize,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> Run {
    let request = Arc::new(request);
    let per_client = REQUESTS / connections;
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap_or_else(|error| panic!("cannot build an HTTP client: {error}"));
                let mut latencies = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let sent = Instant::now();
                    let response = request(&client)
                        .send()
                        .await
                        .unwrap_or_else(|error| panic!("request failed: {error}"));
                    let status = response.status();
                    let body = response
                        .bytes()
                        .await
                        .unwrap_or_else(|error| panic!("reading a body failed: {error}"));
                    assert!(status.is_success(), "{status}: {body:?}");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(REQUESTS);
    for task in tasks {
        latencies.extend(
            task.await
                .unwrap_or_else(|error| panic!("a client task failed: {error}")),
        );
    }
    Run {
        wall: started.elapsed(),
        latencies,
    }
}

/// Serves `router` on a loopback port; the address.
async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("cannot bind a loopback port: {error}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("no local address: {error}"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

/// The crus server over a SQLite store of `finished` finished sessions, on
/// a sim of `nodes` nodes whose boots take `boot_time`.
async fn crus_server(
    directory: &std::path::Path,
    nodes: usize,
    boot_time: Duration,
    finished: usize,
) -> (String, AppState, Vec<uuid::Uuid>) {
    let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)));
    let sim = SimCluster::new(
        SimConfig {
            nodes,
            boot_time,
            ..SimConfig::default()
        },
        clock.clone(),
    )
    .unwrap_or_else(|error| panic!("cannot build the simulated cluster: {error}"));
    let metrics = Arc::new(Metrics::new());
    let ports = instrument_ports(sim.ports(), &metrics);
    let sqlite = Arc::new(
        SqliteStore::open(&directory.join("sessions.db"))
            .unwrap_or_else(|error| panic!("cannot open the SQLite store: {error}")),
    );
    let store: Arc<dyn SessionStore> = sqlite.clone();
    let config = ControllerConfig {
        default_policy: RolloutPolicy {
            poll_interval: Duration::from_millis(50),
            ..RolloutPolicy::default()
        },
        ..ControllerConfig::default()
    };
    let controller = Controller::new(ports, store.clone(), clock, config);
    // Stored and marked finished, as on a server that has run many upgrades:
    // the server answers about them like any others, and a new session (the
    // dry run) does not overlap them.
    let mut ids = Vec::with_capacity(finished);
    for _ in 0..finished {
        let status = controller
            .create_session(spec(2), controller.default_policy().clone())
            .await
            .unwrap_or_else(|error| panic!("cannot store a session: {error}"));
        let stored = store
            .get(status.upgrade_id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("the session just stored is not in the store"));
        let mut record = stored.value;
        record.rollout.completed = true;
        record.rollout.state = crus_core::SessionState::Ready;
        record.rollout.stage = crus_core::rollout::Stage::Finished;
        store
            .update(&record, stored.revision)
            .await
            .unwrap_or_else(|error| panic!("cannot mark a session finished: {error}"));
        ids.push(status.upgrade_id);
    }
    let auth = Auth::new(AuthConfig {
        tokens: vec![TOKEN.to_string()],
        ..AuthConfig::default()
    })
    .unwrap_or_else(|error| panic!("bad auth configuration: {error}"));
    // The statuses kept beside the records, as `crus serve` answers them.
    // As many dry runs at once as the bench's connections: the rows measure
    // what a plan costs, not the server's bound on plans at once (2 by
    // default, which turns 16 and 64 connections into 503s).
    let limits = ServerLimits {
        dry_runs_at_once: 64,
        ..ServerLimits::default()
    };
    let state = AppState::new(controller, Arc::new(auth), metrics)
        .with_status_view(sqlite)
        .with_limits(limits);
    let url = serve(app(state.clone())).await;
    // The sim must outlive the server: its ports hold it.
    std::mem::forget(sim);
    (url, state, ids)
}

fn table_header(title: &str) {
    println!("\n{title}");
    println!(
        "{:>5}  {:>10}  {:>9}  {:>9}  {:>10}  {:>9}  {:>9}",
        "conns", "req/s", "p50", "p99", "bare req/s", "bare p99", "ratio"
    );
}

/// Measures `path` (GET, or POST with `body`) at every concurrency, with a
/// bare handler serving the same bytes beside it.
async fn compare(
    title: &str,
    url: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Vec<serde_json::Value> {
    let client = reqwest::Client::new();
    let mut probe = match &body {
        Some(body) => client.post(format!("{url}{path}")).json(body),
        None => client.get(format!("{url}{path}")),
    };
    probe = probe.bearer_auth(TOKEN);
    let sample = probe
        .send()
        .await
        .unwrap_or_else(|error| panic!("probe of {path} failed: {error}"));
    let status = sample.status();
    let bytes: Bytes = sample
        .bytes()
        .await
        .unwrap_or_else(|error| panic!("probe body of {path} failed: {error}"));
    // 200 only: a 201 to the dry run would mean the server created a session.
    if status != reqwest::StatusCode::OK {
        println!("\n{title}: not measured, the server answered {status}");
        return Vec::new();
    }
    let bare_bytes = bytes.clone();
    let bare = serve(
        Router::new().route(
            "/{*path}",
            get(move || {
                let bytes = bare_bytes.clone();
                async move { bytes }
            })
            .post({
                let bytes = bytes.clone();
                move || {
                    let bytes = bytes.clone();
                    async move { bytes }
                }
            }),
        ),
    )
    .await;
    table_header(&format!("{title} ({} bytes)", bytes.len()));
    let mut rows = Vec::new();
    for connections in CONCURRENCY {
        let make = |base: String| {
            let path = path.to_string();
            let body = body.clone();
            move |client: &reqwest::Client| {
                let request = match &body {
                    Some(body) => client.post(format!("{base}{path}")).json(body),
                    None => client.get(format!("{base}{path}")),
                };
                request.bearer_auth(TOKEN)
            }
        };
        let mut crus = load(connections, make(url.to_string())).await;
        let mut bare_run = load(connections, make(bare.clone())).await;
        let ratio = crus.per_second() / bare_run.per_second();
        let (p50, p99) = (crus.percentile(0.50), crus.percentile(0.99));
        // The bare handler's own p99: at 64 connections on a small machine
        // the clients' share of the CPU alone sets a floor under crus's.
        let bare_p99 = bare_run.percentile(0.99);
        println!(
            "{connections:>5}  {:>10.0}  {:>7.2}ms  {:>7.2}ms  {:>10.0}  {:>7.2}ms  {:>8.2}×",
            crus.per_second(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            bare_run.per_second(),
            bare_p99.as_secs_f64() * 1e3,
            ratio
        );
        rows.push(serde_json::json!({
            "route": title,
            "connections": connections,
            "requests": crus.latencies.len(),
            "requests_per_s": crus.per_second(),
            "p50_ms": p50.as_secs_f64() * 1e3,
            "p99_ms": p99.as_secs_f64() * 1e3,
            "bare_requests_per_s": bare_run.per_second(),
            "bare_p99_ms": bare_p99.as_secs_f64() * 1e3,
            "ratio_to_bare": ratio,
            "throughput_target_met": ratio >= 0.5,
            "p99_target_met": connections != 64 || p99 <= Duration::from_millis(5),
        }));
    }
    rows
}

/// Event latency: four sessions, one after the other, on the 16-node sim.
async fn event_latency(url: &str, state: &AppState) -> serde_json::Value {
    let controller = state.controller().clone();
    let runner = tokio::spawn(async move {
        for _ in 0..4 {
            let status = controller
                .create_session(
                    SessionSpec {
                        starting_label: "compute".into(),
                        ..spec(4)
                    },
                    controller.default_policy().clone(),
                )
                .await
                .unwrap_or_else(|error| panic!("cannot create a session: {error}"));
            controller
                .drive(status.upgrade_id)
                .await
                .unwrap_or_else(|error| panic!("a session failed: {error}"));
        }
    });
    events_while(url, state, runner, "Events").await
}

/// Reads `GET /events` until `runner` ends (two minutes at most); each
/// event's publication is seen by an in-process subscriber of the
/// controller's log, and its arrival by the client.
async fn events_while(
    url: &str,
    state: &AppState,
    runner: tokio::task::JoinHandle<()>,
    title: &str,
) -> serde_json::Value {
    let published = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let mut log = state.controller().events().subscribe();
    let recorder = {
        let published = published.clone();
        tokio::spawn(async move {
            loop {
                match log.recv().await {
                    Ok(event) => {
                        published
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .insert(event.id, Instant::now());
                    }
                    // Behind the log: the events missed are not measured.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    };
    let response = reqwest::Client::new()
        .get(format!("{url}/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_or_else(|error| panic!("cannot open /events: {error}"));
    let mut stream = response.bytes_stream();
    let mut latencies = Vec::new();
    let mut buffer = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !runner.is_finished() && Instant::now() < deadline {
        let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_millis(500), stream.next()).await
        else {
            continue;
        };
        let arrived = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        // Every complete message of the buffer in one pass (a chunk may
        // hold hundreds: draining them one by one from the front is
        // quadratic, and it delayed the next reads of a busy stream).
        let Some(end) = buffer.rfind("\n\n") else {
            continue;
        };
        let ids: Vec<u64> = buffer[..end]
            .split("\n\n")
            .filter_map(|message| {
                message
                    .lines()
                    .find_map(|line| line.strip_prefix("id:"))
                    .and_then(|id| id.trim().parse::<u64>().ok())
            })
            .collect();
        buffer.drain(..end + 2);
        let published = published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        latencies.extend(
            ids.iter()
                .filter_map(|id| published.get(id))
                .map(|&sent| arrived.saturating_duration_since(sent)),
        );
    }
    recorder.abort();
    let mut run = Run {
        wall: Duration::ZERO,
        latencies,
    };
    let (p50, p99) = (run.percentile(0.50), run.percentile(0.99));
    println!(
        "\n{title}: {} read from GET /events; publication to arrival p50 {:.2} ms, p99 {:.2} ms (target ≤ 20 ms: {})",
        run.latencies.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        if p99 <= Duration::from_millis(20) {
            "met"
        } else {
            "NOT MET"
        }
    );
    serde_json::json!({
        "events": run.latencies.len(),
        "p50_ms": p50.as_secs_f64() * 1e3,
        "p99_ms": p99.as_secs_f64() * 1e3,
        "target_met": p99 <= Duration::from_millis(20),
    })
}

/// `scrapes` scrapes of `/metrics`, one after the other.
async fn metrics_scrapes(url: &str, scrapes: usize) -> serde_json::Value {
    let client = reqwest::Client::new();
    let mut run = Run {
        wall: Duration::ZERO,
        latencies: Vec::with_capacity(scrapes),
    };
    let started = Instant::now();
    let mut size = 0;
    for _ in 0..scrapes {
        let sent = Instant::now();
        let response = client
            .get(format!("{url}/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap_or_else(|error| panic!("cannot scrape /metrics: {error}"));
        let status = response.status();
        let body = response
            .bytes()
            .await
            .unwrap_or_else(|error| panic!("cannot read /metrics: {error}"));
        assert!(status.is_success(), "/metrics answered {status}");
        size = body.len();
        run.latencies.push(sent.elapsed());
    }
    run.wall = started.elapsed();
    let longest = run.latencies.iter().max().copied().unwrap_or_default();
    let (p50, p99) = (run.percentile(0.50), run.percentile(0.99));
    let met = p99 <= Duration::from_millis(50);
    println!(
        "\n/metrics: {scrapes} scrapes of {size} bytes, p50 {:.2} ms, p99 {:.2} ms, longest {:.2} ms (target ≤ 50 ms: {})",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        longest.as_secs_f64() * 1e3,
        if met { "met" } else { "NOT MET" }
    );
    serde_json::json!({
        "scrapes": scrapes,
        "bytes": size,
        "p50_ms": p50.as_secs_f64() * 1e3,
        "p99_ms": p99.as_secs_f64() * 1e3,
        "longest_ms": longest.as_secs_f64() * 1e3,
        "target_met": met,
    })
}

/// How far session `id` is, as `GET /session/{id}` says: nodes done, and
/// whether it completed.
async fn progress_of(url: &str, id: uuid::Uuid) -> (u64, bool) {
    let status: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/session/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_or_else(|error| panic!("cannot read the large session: {error}"))
        .json()
        .await
        .unwrap_or_else(|error| panic!("the large session's status is not JSON: {error}"));
    (
        status["nodes"]["done"].as_u64().unwrap_or(0),
        status["completed"] == true,
    )
}

/// The API while a session of `nodes` nodes runs on the simulator (boots of
/// 3 s, polls of 50 ms): `GET /session/{id}` of it at each concurrency,
/// `/metrics` scrapes, and its events read from `GET /events`.
async fn large_session(directory: &std::path::Path, nodes: usize) -> serde_json::Value {
    let (url, state, _) = crus_server(directory, nodes, Duration::from_secs(3), 0).await;
    let controller = state.controller().clone();
    let step = LARGE_STEP.min(u32::try_from(nodes).unwrap_or(u32::MAX));
    let status = controller
        .create_session(spec(step), controller.default_policy().clone())
        .await
        .unwrap_or_else(|error| panic!("cannot create the large session: {error}"));
    let id = status.upgrade_id;
    let driver = {
        let controller = controller.clone();
        tokio::spawn(async move {
            if let Err(error) = controller.drive(id).await {
                eprintln!("the large session stopped: {error}");
            }
        })
    };
    // Under way: its first steps taken.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "\nAPI under a running session of {nodes} nodes (step {step}), SQLite store, loopback"
    );
    let (done_before, _) = progress_of(&url, id).await;
    let routes = compare(
        &format!("GET /session/{{id}} of the running {nodes}-node session"),
        &url,
        &format!("/session/{id}"),
        None,
    )
    .await;
    let metrics = metrics_scrapes(&url, 200).await;
    let events = events_while(
        &url,
        &state,
        tokio::spawn(tokio::time::sleep(Duration::from_secs(20))),
        &format!("Events of the {nodes}-node session"),
    )
    .await;
    let (done_after, completed) = progress_of(&url, id).await;
    println!(
        "\nThe session went from {done_before} to {done_after} of {nodes} nodes upgraded while measured{}",
        if completed {
            "; it completed before the end (the figures after that are of a finished session)"
        } else {
            ", and was still running"
        }
    );
    driver.abort();
    serde_json::json!({
        "nodes": nodes,
        "step": step,
        "routes": routes,
        "metrics": metrics,
        "events": events,
        "done_before": done_before,
        "done_after": done_after,
        "completed_while_measured": completed,
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("cannot build a tokio runtime: {error}"));
    runtime.block_on(async {
        let directory = tempfile::tempdir()
            .unwrap_or_else(|error| panic!("cannot make a temporary directory: {error}"));
        let (url, state, ids) =
            crus_server(directory.path(), 16, Duration::from_millis(200), SESSIONS).await;
        println!(
            "API overhead: {REQUESTS} requests per run, SQLite store of {SESSIONS} sessions, loopback"
        );
        let mut rows = Vec::new();
        rows.extend(
            compare(
                "GET /session/{id}",
                &url,
                &format!("/session/{}", ids[SESSIONS / 2]),
                None,
            )
            .await,
        );
        rows.extend(compare("GET /session", &url, "/session", None).await);
        rows.extend(
            compare(
                "POST /session?dry_run=true",
                &url,
                "/session?dry_run=true",
                Some(serde_json::to_value(spec(4)).unwrap_or_default()),
            )
            .await,
        );
        let events = event_latency(&url, &state).await;
        let large_nodes = std::env::var("CRUS_BENCH_LARGE_NODES")
            .ok()
            .and_then(|nodes| nodes.parse().ok())
            .unwrap_or(LARGE_NODES);
        let large = if large_nodes == 0 {
            serde_json::Value::Null
        } else {
            let large_directory = tempfile::tempdir()
                .unwrap_or_else(|error| panic!("cannot make a temporary directory: {error}"));
            large_session(large_directory.path(), large_nodes).await
        };
        let report = serde_json::json!({ "routes": rows, "events": events, "large_session": large });
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/bench/http.json");
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        match serde_json::to_vec_pretty(&report) {
            Ok(bytes) => match std::fs::write(&path, bytes) {
                Ok(()) => println!("\nFigures saved to {}", path.display()),
                Err(error) => eprintln!("cannot write {}: {error}", path.display()),
            },
            Err(error) => eprintln!("cannot encode the figures: {error}"),
        }
    });
}
