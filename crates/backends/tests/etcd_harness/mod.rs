//! A real 3-member etcd cluster on loopback for the tests, started from the
//! Debian `etcd-server` package: free client and peer ports per run, data
//! directories in a temporary directory, stopped (only what it started) on drop.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crus_backends::etcd::etcd_client;
use tempfile::TempDir;

/// How long a fresh or restarted cluster may take to answer.
const STARTUP: Duration = Duration::from_secs(30);

/// One member: its ports and, while it runs, its process.
struct Member {
    /// `etcdN`.
    name: String,
    /// Client port on 127.0.0.1.
    client_port: u16,
    /// The running process, `None` after a kill.
    process: Option<Child>,
}

/// A running 3-member cluster; dropping it kills its members.
pub struct EtcdCluster {
    /// Data directories and logs; removed on drop, after the members stop.
    directory: TempDir,
    /// The members, in `--initial-cluster` order.
    members: Vec<Member>,
    /// The `--initial-cluster` value, the same for every member.
    initial_cluster: String,
    /// Peer ports, for restarting a member on the same ones.
    peer_ports: Vec<u16>,
    /// A per-run token, so members of two runs never mix.
    token: String,
}

/// A port free on 127.0.0.1 now (the listener is dropped at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free loopback port")
}

/// Where the etcd binary is (`CRUS_ETCD` overrides).
fn etcd_binary() -> PathBuf {
    std::env::var_os("CRUS_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"))
}

impl EtcdCluster {
    /// Starts 3 members and waits until the cluster accepts writes.
    ///
    /// Panics, naming what is missing, when etcd is not installed or does not
    /// become healthy: these tests are never skipped.
    pub async fn start() -> Self {
        let binary = etcd_binary();
        assert!(
            binary.exists(),
            "{} not found: install the Debian package etcd-server (scripts/test.sh does)",
            binary.display()
        );
        let directory = tempfile::tempdir().expect("temporary directory");
        // Pick all six ports first, so no two are the same.
        let mut ports = std::collections::BTreeSet::new();
        while ports.len() < 6 {
            ports.insert(free_port());
        }
        let ports: Vec<u16> = ports.into_iter().collect();
        let (client_ports, peer_ports) = ports.split_at(3);
        let initial_cluster = (0..3)
            .map(|index| format!("etcd{}=http://127.0.0.1:{}", index + 1, peer_ports[index]))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("crus-test-{}", uuid::Uuid::new_v4());
        let members = (0..3)
            .map(|index| Member {
                name: format!("etcd{}", index + 1),
                client_port: client_ports[index],
                process: None,
            })
            .collect();
        let mut cluster = Self {
            directory,
            members,
            initial_cluster,
            peer_ports: peer_ports.to_vec(),
            token,
        };
        for index in 0..3 {
            cluster.start_member(index);
        }
        cluster.wait_healthy().await;
        cluster
    }

    /// The client URLs of every member, comma separated (as `--etcd-endpoints` takes).
    pub fn endpoints(&self) -> String {
        self.endpoint_list().join(",")
    }

    /// The client URLs of every member.
    pub fn endpoint_list(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|member| format!("http://127.0.0.1:{}", member.client_port))
            .collect()
    }

    /// Starts (or restarts, with its data) member `index`.
    pub fn start_member(&mut self, index: usize) {
        let data = self.directory.path().join(&self.members[index].name);
        let log = std::fs::File::create(
            self.directory
                .path()
                .join(format!("{}.log", self.members[index].name)),
        )
        .expect("etcd log file");
        let member = &self.members[index];
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_ports[index]);
        let child = Command::new(etcd_binary())
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &self.initial_cluster])
            .args([
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                &self.token,
            ])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start etcd");
        self.members[index].process = Some(child);
    }

    /// Kills member `index` with SIGKILL, as a crash would.
    pub fn kill_member(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until a write goes through (a quorum is up).
    pub async fn wait_healthy(&self) {
        let deadline = Instant::now() + STARTUP;
        let mut last_error = String::new();
        while Instant::now() < deadline {
            match etcd_client::Client::connect(self.endpoint_list(), None).await {
                Ok(mut client) => match client.put("/crus-harness/health", "ok", None).await {
                    Ok(_) => return,
                    Err(error) => last_error = error.to_string(),
                },
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the etcd cluster did not become healthy within {STARTUP:?}: {last_error}; logs in {}",
            self.directory.path().display()
        );
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill_member(index);
        }
    }
}
