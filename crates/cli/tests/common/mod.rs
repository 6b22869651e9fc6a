//! Starting and stopping `crus serve` as a real process, and talking to it.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `crus serve` process; killed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Server {
    /// Starts `crus serve --listen 127.0.0.1:0 ARGS` and waits until it listens.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
        Server::start_with_stderr(args, envs, Stdio::inherit(), None)
    }

    /// As [`Server::start`], its log (standard error) written to `log`.
    pub fn start_logged(args: &[&str], envs: &[(&str, &str)], log: &Path) -> Server {
        let file = std::fs::File::create(log).expect("the server's log file");
        Server::start_with_stderr(args, envs, Stdio::from(file), Some(log))
    }

    fn start_with_stderr(
        args: &[&str],
        envs: &[(&str, &str)],
        stderr: Stdio,
        log: Option<&Path>,
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_crus"));
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("CRUS_TOKENS")
            .env_remove("CRUS_JWT_SECRET")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command.spawn().expect("crus serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("crus listening on ") {
                        return Server {
                            child,
                            url: url.to_string(),
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    // A server that stopped says why in its log.
                    let said = log
                        .and_then(|log| std::fs::read_to_string(log).ok())
                        .unwrap_or_default();
                    panic!(
                        "crus serve {args:?} did not start listening within 30 s (exit: {status:?}); its log:\n{said}"
                    );
                }
            }
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Asks the process to stop (SIGTERM) and returns its exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("crus serve did not stop within 20 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulated cluster of the crash and replica tests: 8 nodes on the NASA
/// trace, whose first job holds the whole machine, so at 600x the first step
/// drains for about 2.4 s; boots take 20 simulated minutes (2 s).
pub const SMALL_NASA_CLUSTER: [&str; 10] = [
    "--sim-nodes",
    "8",
    "--sim-trace",
    "nasa",
    "--sim-speed",
    "600",
    "--sim-boot-time",
    "20m",
    "--poll-interval",
    "10s",
];

/// Checks that `finished` is the completed session of [`SMALL_NASA_CLUSTER`]
/// with every node upgraded.
pub fn assert_all_eight_upgraded(finished: &Value) {
    assert_eq!(finished["state"], "READY");
    assert_completed_as_crus_said(finished, "8 of 8 nodes upgraded");
}

/// Checks that `session`'s last message is CRUS's, word for word, and that
/// the message before it is the summary `summary`.
pub fn assert_completed_as_crus_said(session: &Value, summary: &str) {
    let messages = session["messages"].as_array().cloned().unwrap_or_default();
    let last: Vec<&str> = messages
        .iter()
        .rev()
        .take(2)
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(last, ["Upgrade Session Completed", summary], "{session:#}");
}

/// The simulated cluster of [`SMALL_NASA_CLUSTER`] kept in `state`, as the
/// servers left it: every node booted exactly once, none rebooted with jobs,
/// none left drained, none failed, never more than a step out of service.
pub fn assert_every_node_booted_once(state: &Path) {
    let cluster = crus_backends::sim::SimCluster::inspect_state_file(state).unwrap();
    for node in cluster.node_ids() {
        assert_eq!(
            cluster.boot_count(&node),
            1,
            "node {node} booted {} times",
            cluster.boot_count(&node)
        );
    }
    let report = cluster.report();
    assert_eq!(report.boots, 8);
    assert_eq!(report.reboots_with_running_jobs, 0);
    assert!(
        cluster.drained_nodes().is_empty(),
        "left drained: {:?}",
        cluster.drained_nodes()
    );
    assert_eq!(cluster.group("crus-failed").unwrap_or_default(), Vec::new());
    assert!(report.max_out_of_service <= 4);
}

/// `GET {url}{path}` as text (with `token`, if any).
pub async fn get_text(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    token: Option<&str>,
) -> String {
    let mut request = client.get(format!("{url}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().text().await.unwrap()
}

/// A blocking HTTP client for tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// The session body of the seed, on the simulated cluster's group and template.
pub fn session_body(step: u32) -> Value {
    serde_json::json!({
        "starting_label": "compute",
        "upgrading_label": "crus-upgrading",
        "failed_label": "crus-failed",
        "upgrade_step_size": step,
        "upgrade_template_id": "compute-image",
        "workload_manager_type": "slurm"
    })
}

/// Polls `GET {url}/session/{id}` until `done` holds, for at most `limit`.
pub async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let mut request = client.get(format!("{url}/session/{id}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Ok(response) = request.send().await
            && response.status().is_success()
            && let Ok(session) = response.json::<Value>().await
        {
            if done(&session) {
                return session;
            }
            last = session;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("session {id} did not reach the expected state within {limit:?}; last seen: {last:#}");
}

/// Whether any message of `session` contains `text`.
pub fn said(session: &Value, text: &str) -> bool {
    session["messages"].as_array().is_some_and(|messages| {
        messages
            .iter()
            .any(|m| m.as_str().is_some_and(|m| m.contains(text)))
    })
}

/// A path inside `dir` as text.
pub fn path_in(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// `POST {url}/session` with `body` (and `token`, if any); the new session's id.
pub async fn create_session(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> String {
    let mut request = client.post(format!("{url}/session")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("POST /session answers");
    let status = response.status();
    let created: Value = response.json().await.expect("a JSON answer");
    assert_eq!(status, 201, "POST /session: {created:#}");
    created["upgrade_id"]
        .as_str()
        .expect("an upgrade_id")
        .to_string()
}
