//! Two creations of overlapping sessions at once, 50 rounds: through two
//! `crus serve` replicas on a real 3-member etcd cluster (a leader and a
//! follower, each storing what it is asked to create), and through one
//! server on SQLite. Each round exactly one session is admitted and the
//! other request answers 409 naming it: the session and the claims on its
//! nodes are one store transaction, whichever process stores them. The
//! admitted session is deleted before the next round, which frees its nodes.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[cfg(feature = "etcd")]
#[path = "../../backends/tests/etcd_harness/mod.rs"]
mod etcd_harness;

use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

/// Rounds of each test.
const ROUNDS: usize = 50;

/// The simulated cluster every server runs: 8 nodes, no jobs, fast.
const SIM: [&str; 7] = [
    "--sim",
    "--sim-nodes",
    "8",
    "--sim-trace",
    "none",
    "--sim-speed",
    "3000",
];

/// `POST {url}/session` of the whole simulated cluster: the status code and the body.
async fn post(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http
        .post(format!("{url}/session"))
        .json(&session_body(8))
        .send()
        .await
        .expect("POST /session answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// One round: a creation sent to each of `urls` at once; exactly one is
/// admitted, the other is 409 naming it. Then the admitted session is
/// deleted and waited for until every url answers 404 for it.
async fn race(http: &reqwest::Client, urls: [&str; 2], round: usize) {
    let ((left_status, left), (right_status, right)) =
        tokio::join!(post(http, urls[0]), post(http, urls[1]));
    let (winner, loser) = match (left_status, right_status) {
        (201, 409) => (left, right),
        (409, 201) => (right, left),
        _ => panic!(
            "round {round}: expected one 201 and one 409, got {left_status} {left:#} and {right_status} {right:#}"
        ),
    };
    let id = winner["upgrade_id"].as_str().expect("an upgrade_id");
    assert_eq!(loser["status"], 409, "round {round}: {loser:#}");
    assert_eq!(loser["title"], "Conflict", "round {round}: {loser:#}");
    let detail = loser["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(id) && detail.contains("already belong to unfinished session"),
        "round {round}: the 409 should name {id}: {detail}"
    );

    let deleted = http
        .delete(format!("{}/session/{id}", urls[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200, "round {round}: DELETE");
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in urls {
        loop {
            let status = http
                .get(format!("{url}/session/{id}"))
                .send()
                .await
                .map(|response| response.status().as_u16())
                .unwrap_or(0);
            if status == 404 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: session {id} still there on {url} a minute after its deletion"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_overlapping_creations_is_admitted_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = path_in(dir.path(), "crus.db");
    let mut args: Vec<&str> = SIM.to_vec();
    args.extend(["--no-auth", "--db", &db]);
    let server = Server::start_logged(&args, &[], &dir.path().join("crus.log"));
    let http = client();
    for round in 0..ROUNDS {
        race(&http, [&server.url, &server.url], round).await;
    }
    assert_eq!(server.terminate(), Some(0));
}

#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_overlapping_creations_is_admitted_across_etcd_replicas() {
    let cluster = etcd_harness::EtcdCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = path_in(dir.path(), "sim.json");
    let endpoints = cluster.endpoints();
    let http = client();
    let replica = |name: &str| {
        let mut args: Vec<&str> = SIM.to_vec();
        args.extend([
            "--no-auth",
            "--store",
            "etcd",
            "--etcd-endpoints",
            &endpoints,
            "--etcd-lease-ttl",
            "2s",
            "--replica-name",
            name,
            "--sim-state",
            &state,
        ]);
        Server::start_logged(&args, &[], &dir.path().join(format!("{name}.log")))
    };
    let leader = replica("first");
    wait_for_role(&http, &leader.url, "leader").await;
    let follower = replica("second");
    wait_for_role(&http, &follower.url, "follower").await;
    for round in 0..ROUNDS {
        // Each replica first in turn: the follower stores what it is asked
        // to create as the leader does.
        let urls = if round % 2 == 0 {
            [leader.url.as_str(), follower.url.as_str()]
        } else {
            [follower.url.as_str(), leader.url.as_str()]
        };
        race(&http, urls, round).await;
    }
    assert_eq!(follower.terminate(), Some(0));
    assert_eq!(leader.terminate(), Some(0));
}

/// Waits until the replica at `url` is ready with `role`.
#[cfg(feature = "etcd")]
async fn wait_for_role(http: &reqwest::Client, url: &str, role: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(response) = http.get(format!("{url}/readyz")).send().await
            && response.status() == 200
            && response
                .json::<Value>()
                .await
                .is_ok_and(|body| body["role"] == role)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} not ready as {role} within 15 s");
}
