//! Several `crus serve` replicas on one real 3-member etcd cluster (started
//! by the test, see `etcd_harness`), each the built binary on the same
//! simulated cluster (one `--sim-state` file, which plays the real cluster):
//! a session created on one replica is read on the other; the leader killed
//! with SIGKILL is replaced within the lease TTL + 5 s; etcd members lost and
//! back; a leader paused past its lease cannot write when it wakes. In every
//! case the session completes with every node booted exactly once and none
//! left drained.

#![cfg(feature = "etcd")]
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../backends/tests/etcd_harness/mod.rs"]
mod etcd_harness;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use crus_backends::etcd::{EtcdConfig, EtcdStore, etcd_client};
use crus_core::rollout::NodePhase;
use crus_core::store::{SessionRecord, SessionStore};
use serde_json::Value;

use common::*;
use etcd_harness::EtcdCluster;

/// The leader lease of every replica: short, so takeovers are quick.
const TTL: Duration = Duration::from_secs(2);

/// The `crus serve` options of replica `name` on `cluster`, sharing `state`
/// (a [`SMALL_NASA_CLUSTER`]). The boot timeout is far (10 h: a minute of
/// wall time), so a node booting while etcd has no quorum is not failed for it.
fn replica_args(cluster: &EtcdCluster, state: &str, name: &str) -> Vec<String> {
    [
        "--sim",
        "--no-auth",
        "--store",
        "etcd",
        "--etcd-endpoints",
        &cluster.endpoints(),
        "--etcd-lease-ttl",
        "2s",
        "--replica-name",
        name,
        "--sim-state",
        state,
        "--boot-timeout",
        "10h",
    ]
    .iter()
    .chain(&SMALL_NASA_CLUSTER)
    .map(|arg| arg.to_string())
    .collect()
}

/// Starts replica `name`, its log in `dir/name.log`.
fn start_replica(cluster: &EtcdCluster, dir: &Path, state: &str, name: &str) -> Server {
    let args = replica_args(cluster, state, name);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_logged(&args, &[], &dir.join(format!("{name}.log")))
}

/// The replica's log so far.
fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// `GET /readyz`: the status code and the body.
async fn readyz(http: &reqwest::Client, url: &str) -> Option<(u16, Value)> {
    let response = http
        .get(format!("{url}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

/// Waits until `check` holds, for at most `limit`; panics naming `what`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {limit:?}");
}

/// Waits until the replica at `url` says it has `role` (and is ready).
async fn wait_for_role(http: &reqwest::Client, url: &str, role: &str, limit: Duration) -> Duration {
    wait_until(limit, &format!("{url} ready as {role}"), || async {
        readyz(http, url)
            .await
            .is_some_and(|(status, body)| status == 200 && body["role"] == role)
    })
    .await
}

/// Waits until a message of session `id`, read from `url`, contains `text`.
async fn wait_to_say(
    http: &reqwest::Client,
    url: &str,
    id: &str,
    text: &str,
    limit: Duration,
) -> Value {
    wait_for(http, url, None, id, limit, |s| said(s, text)).await
}

/// Waits until the session is complete (read from `url`) with every node upgraded.
async fn wait_until_complete(http: &reqwest::Client, url: &str, id: &str) {
    let finished = wait_for(http, url, None, id, Duration::from_secs(90), |s| {
        s["completed"] == true
    })
    .await;
    assert_all_eight_upgraded(&finished);
}

/// Two replicas on a fresh etcd cluster, sharing a simulated cluster:
/// `first` leads, `second` follows.
struct TwoReplicas {
    /// The etcd cluster.
    cluster: EtcdCluster,
    /// Logs and the simulated cluster's state file.
    dir: tempfile::TempDir,
    /// The simulated cluster's state file.
    state: String,
    /// The leader.
    first: Server,
    /// The follower.
    second: Server,
}

impl TwoReplicas {
    async fn start(http: &reqwest::Client) -> TwoReplicas {
        let cluster = EtcdCluster::start().await;
        let dir = tempfile::tempdir().unwrap();
        let state = path_in(dir.path(), "sim.json");
        let first = start_replica(&cluster, dir.path(), &state, "first");
        wait_for_role(http, &first.url, "leader", Duration::from_secs(10)).await;
        let second = start_replica(&cluster, dir.path(), &state, "second");
        wait_for_role(http, &second.url, "follower", Duration::from_secs(10)).await;
        TwoReplicas {
            cluster,
            dir,
            state,
            first,
            second,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_created_on_a_follower_survives_the_leader_killed() {
    let http = client();
    let TwoReplicas {
        cluster: _cluster,
        dir,
        state,
        first,
        second,
    } = TwoReplicas::start(&http).await;

    // Created on the follower, driven by the leader, read on both.
    let id = create_session(&http, &second.url, None, &session_body(4)).await;
    let mut events = http
        .get(format!("{}/session/{id}/events", second.url))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let on_leader = wait_to_say(
        &http,
        &first.url,
        &id,
        "Step 0 started: draining",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(on_leader["upgrade_id"], id.as_str());
    // The follower's event stream tells what the leader did.
    let mut streamed = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(streamed.contains("event: node_phase") && streamed.contains("\"to\":\"draining\"")) {
        assert!(
            Instant::now() < deadline,
            "no node_phase event on the follower within 10 s: {streamed}"
        );
        if let Ok(Ok(Some(bytes))) =
            tokio::time::timeout(Duration::from_millis(200), events.chunk()).await
        {
            streamed.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    drop(events);
    // Commands given to the follower are carried out by the leader.
    for (command, done) in [
        ("pause", "Paused: "),
        ("resume", "Resumed: taking nodes again"),
    ] {
        let answer = http
            .post(format!("{}/session/{id}/{command}", second.url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{command}");
        wait_to_say(&http, &first.url, &id, done, Duration::from_secs(10)).await;
    }
    let draining = wait_to_say(
        &http,
        &second.url,
        &id,
        "Step 0 started: draining",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        !said(&draining, "Step 0 finished"),
        "killed mid-session: {draining:#}"
    );

    first.kill_9();
    let takeover = wait_for_role(&http, &second.url, "leader", TTL + Duration::from_secs(5)).await;
    eprintln!("the follower took over {takeover:?} after the leader was killed");
    wait_until_complete(&http, &second.url, &id).await;
    assert_eq!(second.terminate(), Some(0));
    assert_every_node_booted_once(Path::new(&state));
    assert!(
        log_of(dir.path(), "second").contains("took up the unfinished sessions"),
        "{}",
        log_of(dir.path(), "second")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_members_lost_and_restarted_neither_repeat_nor_lose_work() {
    let mut cluster = EtcdCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = path_in(dir.path(), "sim.json");
    let http = client();
    let replica = start_replica(&cluster, dir.path(), &state, "only");
    wait_for_role(&http, &replica.url, "leader", Duration::from_secs(10)).await;
    let id = create_session(&http, &replica.url, None, &session_body(4)).await;
    wait_to_say(
        &http,
        &replica.url,
        &id,
        "Step 0 started: draining",
        Duration::from_secs(30),
    )
    .await;

    // One member of three lost: a quorum remains, the session goes on.
    cluster.kill_member(0);
    let booting = wait_to_say(
        &http,
        &replica.url,
        &id,
        "Step 0: boot of 4 nodes started",
        Duration::from_secs(30),
    )
    .await;
    assert!(!said(&booting, "Step 0 finished"), "{booting:#}");

    // Two lost: no quorum. Not ready, and once the lease is given up for
    // lost, nothing is done to the cluster.
    cluster.kill_member(1);
    wait_until(
        Duration::from_secs(15),
        "/readyz 503 without quorum",
        || async {
            readyz(&http, &replica.url)
                .await
                .is_some_and(|(status, _)| status == 503)
        },
    )
    .await;
    wait_until(
        TTL + Duration::from_secs(5),
        "leadership lost without quorum",
        || async { log_of(dir.path(), "only").contains("leadership lost") },
    )
    .await;
    let before = std::fs::read(&state).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        std::fs::read(&state).unwrap() == before,
        "the simulated cluster changed while etcd had no quorum"
    );
    let (status, _) = readyz(&http, &replica.url).await.unwrap();
    assert_eq!(status, 503);

    cluster.start_member(0);
    cluster.start_member(1);
    cluster.wait_healthy().await;
    let back = wait_for_role(&http, &replica.url, "leader", Duration::from_secs(30)).await;
    eprintln!("leading again {back:?} after the quorum came back");
    wait_until_complete(&http, &replica.url, &id).await;
    let metrics = get_text(&http, &replica.url, "/metrics", None).await;
    assert!(metrics.contains("crus_leader 1"), "{metrics}");
    let changes: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("crus_leadership_changes_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no crus_leadership_changes_total: {metrics}"));
    // Led, lost it, led again (at least).
    assert!(changes >= 3, "{changes} leadership changes");
    assert_eq!(replica.terminate(), Some(0));
    assert_every_node_booted_once(Path::new(&state));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_cannot_write_when_it_wakes() {
    let http = client();
    let TwoReplicas {
        cluster,
        dir,
        state,
        first,
        second,
    } = TwoReplicas::start(&http).await;
    let id = create_session(&http, &first.url, None, &session_body(4)).await;
    wait_to_say(
        &http,
        &second.url,
        &id,
        "Step 0: boot of 4 nodes started",
        Duration::from_secs(30),
    )
    .await;

    let (leader_key, old_lease) = leader_key_and_lease(&cluster).await;
    assert_eq!(leader_key.1, "first");

    // Frozen while its nodes boot: it keeps its controller, its lease lapses.
    first.signal("STOP");
    let takeover = wait_for_role(&http, &second.url, "leader", TTL + Duration::from_secs(5)).await;
    eprintln!("the follower took over {takeover:?} after the leader was paused");
    // What the old leader's store would do now, done from here: a write
    // fenced on its lease is refused, and changes nothing.
    let store = EtcdStore::connect(&EtcdConfig {
        endpoints: cluster.endpoint_list(),
        ..EtcdConfig::default()
    })
    .await
    .unwrap();
    let stale_store = store.fenced(leader_key.0.clone(), old_lease);
    let mut current = store.get(id.parse().unwrap()).await.unwrap().unwrap();
    current.value.rollout.messages.push(STALE.to_string());
    let refused = stale_store
        .update(&current.value, current.revision)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, crus_core::Error::Unavailable { .. })
            && refused.to_string().contains("no longer the leader"),
        "{refused}"
    );
    wait_to_say(
        &http,
        &second.url,
        &id,
        "Step 0 finished",
        Duration::from_secs(30),
    )
    .await;
    first.signal("CONT");
    wait_until(
        Duration::from_secs(10),
        "the woken leader sees it lost its lease",
        || async { log_of(dir.path(), "first").contains("leadership lost") },
    )
    .await;
    wait_for_role(&http, &first.url, "follower", Duration::from_secs(10)).await;

    wait_until_complete(&http, &second.url, &id).await;
    let refused = log_of(dir.path(), "first")
        .matches("no longer the leader")
        .count();
    eprintln!("writes of the woken leader refused by the fence: {refused}");
    assert_eq!(second.terminate(), Some(0));
    assert_eq!(first.terminate(), Some(0));

    // Every version the session record ever had, in order: none goes back,
    // so no write of the old leader's stale state got through.
    let history = session_history(&cluster, &id).await;
    assert!(history.len() > 5, "{} versions", history.len());
    assert!(
        history
            .iter()
            .all(|version| !version.rollout.messages.iter().any(|m| m == STALE)),
        "the fenced write got through"
    );
    for (older, newer) in history.iter().zip(history.iter().skip(1)) {
        assert!(newer.rollout.messages.len() >= older.rollout.messages.len());
        assert!(newer.rollout.messages.starts_with(&older.rollout.messages));
        for (old, new) in older.rollout.nodes.iter().zip(&newer.rollout.nodes) {
            assert_eq!(old.id, new.id);
            assert!(
                new.phase >= old.phase,
                "node {} went back from {:?} to {:?}",
                new.id,
                old.phase,
                new.phase
            );
        }
    }
    let last = history.last().unwrap();
    assert!(
        last.rollout
            .nodes
            .iter()
            .all(|n| n.phase == NodePhase::Done)
    );
    let completions = last
        .rollout
        .messages
        .iter()
        .filter(|message| message.starts_with("Upgrade Session Completed"))
        .count();
    assert_eq!(completions, 1, "{:#?}", last.rollout.messages);
    assert_every_node_booted_once(Path::new(&state));
}

/// The message the test's own stale write tries to add.
const STALE: &str = "written on the old leader's lease";

/// The leader key (its name and value, the leading replica) and its lease.
async fn leader_key_and_lease(cluster: &EtcdCluster) -> ((String, String), i64) {
    let mut client = etcd_client::Client::connect(cluster.endpoint_list(), None)
        .await
        .unwrap();
    let key = "/crus/leader".to_string();
    let response = client.get(key.as_str(), None).await.unwrap();
    let kv = response.kvs().first().expect("a leader key");
    ((key, kv.value_str().unwrap().to_string()), kv.lease())
}

/// Every stored version of session `id`, oldest first, read from etcd's history.
async fn session_history(cluster: &EtcdCluster, id: &str) -> Vec<SessionRecord> {
    let mut client = etcd_client::Client::connect(cluster.endpoint_list(), None)
        .await
        .unwrap();
    let key = format!("/crus/sessions/{id}");
    let current = client.get(key.as_str(), None).await.unwrap();
    let newest = current
        .kvs()
        .first()
        .expect("the session is stored")
        .mod_revision();
    let (_watcher, mut stream) = client
        .watch(
            key.as_str(),
            Some(etcd_client::WatchOptions::new().with_start_revision(1)),
        )
        .await
        .unwrap();
    let mut versions = Vec::new();
    'read: while let Some(response) =
        tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the history is read within 10 s")
            .unwrap()
    {
        for event in response.events() {
            let kv = event.kv().unwrap();
            let mut version: SessionRecord = serde_json::from_slice(kv.value()).unwrap();
            // The session key holds the record without its nodes; they are
            // the node keys as of the same revision.
            let nodes = client
                .get(
                    format!("{key}/nodes/"),
                    Some(
                        etcd_client::GetOptions::new()
                            .with_prefix()
                            .with_revision(kv.mod_revision()),
                    ),
                )
                .await
                .unwrap();
            for group in nodes.kvs() {
                let group: Vec<crus_core::rollout::NodeRecord> =
                    serde_json::from_slice(group.value()).unwrap();
                version.rollout.nodes.extend(group);
            }
            versions.push(version);
            if kv.mod_revision() >= newest {
                break 'read;
            }
        }
    }
    versions
}

/// Starts replica `name` with `extra` options besides [`replica_args`].
fn start_replica_with(
    cluster: &EtcdCluster,
    dir: &Path,
    state: &str,
    name: &str,
    extra: &[&str],
) -> Server {
    let mut args = replica_args(cluster, state, name);
    args.extend(extra.iter().map(|arg| arg.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_logged(&args, &[], &dir.join(format!("{name}.log")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_changed_on_a_follower_apply_to_sessions_the_leader_creates() {
    let http = client();
    let replicas = TwoReplicas::start(&http).await;
    let (leader, follower) = (&replicas.first.url, &replicas.second.url);
    let patch = serde_json::json!({"default_policy": {"retries": 2}, "max_boots_per_minute": 40});
    let answer = http
        .patch(format!("{follower}/options"))
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let changed: Value = answer.json().await.unwrap();
    let on_leader: Value = http
        .get(format!("{leader}/options"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(on_leader, changed["options"]);
    assert_eq!(on_leader["max_boots_per_minute"], 40);
    // Refused on the leader: nothing changes on either.
    let refused = http
        .patch(format!("{leader}/options"))
        .json(&serde_json::json!({"default_policy": {"canary": {"size": 0}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let on_follower: Value = http
        .get(format!("{follower}/options"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(on_follower, on_leader);
    // Created on the leader, the follower's change applies.
    let id = create_session(&http, leader, None, &session_body(4)).await;
    let session = wait_for(&http, follower, None, &id, Duration::from_secs(10), |s| {
        s["policy"].is_object()
    })
    .await;
    assert_eq!(session["policy"]["retries"], 2, "{session:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_shows_the_session_the_leader_store_refuses_to_save_as_halted() {
    let cluster = EtcdCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = path_in(dir.path(), "sim.json");
    let http = client();
    // Every session write of the leader fails (the test hook); the API's
    // writes (creations) and the published holds do not.
    let faulty = ["--sim-store-fault-rate", "1"];
    let first = start_replica_with(&cluster, dir.path(), &state, "first", &faulty);
    wait_for_role(&http, &first.url, "leader", Duration::from_secs(10)).await;
    let second = start_replica_with(&cluster, dir.path(), &state, "second", &faulty);
    wait_for_role(&http, &second.url, "follower", Duration::from_secs(10)).await;

    let id = create_session(&http, &second.url, None, &session_body(4)).await;
    let on_leader = wait_for(&http, &first.url, None, &id, Duration::from_secs(30), |s| {
        s["phase"] == "halted"
    })
    .await;
    assert!(
        said(&on_leader, "The session store refused to save this session"),
        "{on_leader:#}"
    );
    // The follower reads etcd, where the session is stored as created: it
    // shows the leader's hold instead, in the session and in the listing.
    let on_follower = wait_for(
        &http,
        &second.url,
        None,
        &id,
        Duration::from_secs(10),
        |s| s["phase"] == "halted",
    )
    .await;
    assert!(
        said(
            &on_follower,
            "The session store refused to save this session"
        ),
        "{on_follower:#}"
    );
    let listed: Value = http
        .get(format!("{}/session", second.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["phase"], "halted", "{listed:#}");
}
