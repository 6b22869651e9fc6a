//! A simulated cluster kept in a state file: what a restarted process finds,
//! how saves are written, and how unusable files are refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crus_core::clock::{Clock, TokioClock};
use crus_core::ports::{
    BootOrchestrator, BootRequest, Inventory, NodeBootState, WorkloadManager, WorkloadState,
};
use crus_core::testkit::{self, BootOrchestratorFixture, InventoryFixture, PowerControlFixture};
use crus_core::{Error, NodeId, Timestamp};
use tempfile::TempDir;

use crate::sim::{SimCluster, SimConfig, Workload};

/// Sim time zero of the tests on tokio time.
const EPOCH: Timestamp = Timestamp::from_secs(1_700_000_000);

/// What a state file must tell a person to do when it cannot be used.
const ADVICE: &str = "delete it to start a fresh simulated cluster";

/// Four idle nodes whose boots take exactly one minute.
fn config() -> SimConfig {
    SimConfig {
        nodes: 4,
        boot_time: Duration::from_secs(60),
        boot_jitter: 0.0,
        workload: Workload::None,
        ..SimConfig::default()
    }
}

/// A fresh directory and the path of a state file in it (not created yet).
fn state_path() -> (TempDir, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sim-state.json");
    (directory, path)
}

/// A clock on tokio time that reads `at` now.
fn clock_at(at: Timestamp) -> Arc<dyn Clock> {
    Arc::new(TokioClock::starting_at(at))
}

fn node(cluster: &SimCluster, index: usize) -> NodeId {
    cluster.node_ids()[index].clone()
}

fn boot_request(key: &str, nodes: &[NodeId]) -> BootRequest {
    BootRequest {
        key: key.to_string(),
        template: "compute-image".to_string(),
        nodes: nodes.to_vec(),
    }
}

/// The state file as JSON.
fn saved(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn files_in(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The message of opening the state file at `path`, which must fail as Invalid.
fn refusal(path: &Path, config: SimConfig) -> String {
    let error = SimCluster::open_with_state_file(path, config, clock_at(EPOCH)).unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    error.to_string()
}

#[tokio::test(start_paused = true)]
async fn a_new_cluster_is_saved_at_once_and_after_every_change() {
    let (_directory, path) = state_path();
    let cluster = SimCluster::open_with_state_file(&path, config(), clock_at(EPOCH)).unwrap();
    assert_eq!(saved(&path)["state"]["now"], EPOCH.to_string());

    tokio::time::sleep(Duration::from_secs(10)).await;
    let drained = node(&cluster, 0);
    cluster
        .drain(std::slice::from_ref(&drained), "upgrade")
        .await
        .unwrap();
    let file = saved(&path);
    assert_eq!(file["format"], 1);
    assert_eq!(
        file["state"]["now"],
        (EPOCH + Duration::from_secs(10)).to_string()
    );
    assert_eq!(file["state"]["nodes"][0]["drain_reason"], "upgrade");

    // Reading does not save (time passing is re-simulated after a restart).
    tokio::time::sleep(Duration::from_secs(10)).await;
    cluster.node_states(&[drained]).await.unwrap();
    assert_eq!(saved(&path), file);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_process_finds_the_cluster_as_it_left_it() {
    let (_directory, path) = state_path();
    let (drained, booting, handle) = {
        let cluster = SimCluster::open_with_state_file(&path, config(), clock_at(EPOCH)).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let drained = node(&cluster, 0);
        let booting = node(&cluster, 1);
        cluster
            .drain(std::slice::from_ref(&drained), "upgrade")
            .await
            .unwrap();
        cluster.create_group("upgrading").await.unwrap();
        cluster
            .add_members("upgrading", std::slice::from_ref(&booting))
            .await
            .unwrap();
        let handle = cluster
            .start_boot(&boot_request(
                "session-1-step-0",
                std::slice::from_ref(&booting),
            ))
            .await
            .unwrap();
        // The process dies here, with the boot 0 s into its 60.
        (drained, booting, handle)
    };

    // The new process's clock continues where the saved cluster stopped.
    let saved_now = EPOCH + Duration::from_secs(10);
    let cluster = SimCluster::open_with_state_file(&path, config(), clock_at(saved_now)).unwrap();
    assert_eq!(cluster.now(), saved_now);
    assert_eq!(cluster.drained_nodes(), vec![drained.clone()]);
    assert_eq!(cluster.group("upgrading"), Some(vec![booting.clone()]));
    assert_eq!(cluster.boot_count(&booting), 1);
    assert_eq!(
        cluster.boot_status(&handle).await.unwrap()[0].state,
        NodeBootState::InProgress
    );
    // The controller's retry after its own restart finds the same boot.
    let again = cluster
        .start_boot(&boot_request(
            "session-1-step-0",
            std::slice::from_ref(&booting),
        ))
        .await
        .unwrap();
    assert_eq!(again, handle);
    assert_eq!(cluster.boot_count(&booting), 1);

    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(
        cluster.boot_status(&handle).await.unwrap()[0].state,
        NodeBootState::Ok
    );
    let states = cluster.node_states(&[drained, booting]).await.unwrap();
    assert_eq!(states[0].state, WorkloadState::Drained);
    assert_eq!(states[1].state, WorkloadState::Idle);
}

#[tokio::test(start_paused = true)]
async fn a_restart_re_simulates_what_happened_since_the_last_save() {
    let (_directory, path) = state_path();
    let handle = {
        let cluster = SimCluster::open_with_state_file(&path, config(), clock_at(EPOCH)).unwrap();
        let handle = cluster
            .start_boot(&boot_request("b", &[node(&cluster, 2)]))
            .await
            .unwrap();
        // The boot ends in this process, but nothing saves that...
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(
            cluster.boot_status(&handle).await.unwrap()[0].state,
            NodeBootState::Ok
        );
        handle
    };
    assert_eq!(saved(&path)["state"]["now"], EPOCH.to_string());
    // ...and a process resuming at the same time sees it ended all the same.
    let cluster = SimCluster::open_with_state_file(
        &path,
        config(),
        clock_at(EPOCH + Duration::from_secs(90)),
    )
    .unwrap();
    assert_eq!(
        cluster.boot_status(&handle).await.unwrap()[0].state,
        NodeBootState::Ok
    );
}

#[tokio::test]
async fn a_scaled_restart_continues_with_the_wall_time_that_passed() {
    let (_directory, path) = state_path();
    let speed = 60.0;
    let (saved_now, handle) = {
        let (cluster, clock) =
            SimCluster::open_scaled_with_state_file(&path, config(), speed).unwrap();
        assert_eq!(clock.speed(), speed);
        let handle = cluster
            .start_boot(&boot_request("b", &[node(&cluster, 0)]))
            .await
            .unwrap();
        (cluster.now(), handle)
    };
    // Killed, and restarted 5 wall seconds after the last save.
    let mut file = saved(&path);
    let saved_at: Timestamp = serde_json::from_value(file["saved_at"].clone()).unwrap();
    file["saved_at"] = serde_json::to_value(saved_at - Duration::from_secs(5)).unwrap();
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();

    let (cluster, clock) = SimCluster::open_scaled_with_state_file(&path, config(), speed).unwrap();
    let now = clock.now();
    // 5 s × 60 = 300 simulated seconds, plus what this test took in between.
    // `saved_now` was read a moment after the save and `saved_at` is stored
    // to the millisecond, so allow a simulated second of slack below.
    assert!(
        now >= saved_now + Duration::from_secs(299),
        "{now} after {saved_now}"
    );
    assert!(
        now < saved_now + Duration::from_secs(400),
        "{now} after {saved_now}"
    );
    // The 60 s boot ended while the process was down.
    assert_eq!(
        cluster.boot_status(&handle).await.unwrap()[0].state,
        NodeBootState::Ok
    );
}

#[tokio::test(start_paused = true)]
async fn saves_leave_no_temporary_files() {
    let (directory, path) = state_path();
    let cluster = SimCluster::open_with_state_file(&path, config(), clock_at(EPOCH)).unwrap();
    for index in 0..4 {
        let id = node(&cluster, index);
        cluster
            .drain(std::slice::from_ref(&id), "upgrade")
            .await
            .unwrap();
        cluster.resume(&[id]).await.unwrap();
    }
    assert_eq!(files_in(directory.path()), vec!["sim-state.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_are_all_saved() {
    let (_directory, path) = state_path();
    let config = SimConfig {
        nodes: 32,
        ..config()
    };
    let cluster = SimCluster::open_with_state_file(
        &path,
        config.clone(),
        Arc::new(crus_core::clock::SystemClock),
    )
    .unwrap();
    let drains: Vec<_> = cluster
        .node_ids()
        .into_iter()
        .map(|id| {
            let cluster = cluster.clone();
            tokio::spawn(async move { cluster.drain(&[id], "upgrade").await })
        })
        .collect();
    for drain in drains {
        drain.await.unwrap().unwrap();
    }
    // Whatever order the saves were written in, the last one holds every drain.
    let reopened =
        SimCluster::open_with_state_file(&path, config, Arc::new(crus_core::clock::SystemClock))
            .unwrap();
    assert_eq!(reopened.drained_nodes().len(), 32);
}

#[test]
fn an_unwritable_place_fails_at_startup() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("missing").join("sim-state.json");
    let error = SimCluster::open_with_state_file(&path, config(), clock_at(EPOCH)).unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("writable"), "{message}");
}

#[test]
fn a_damaged_state_file_is_refused_with_its_path_and_what_to_do() {
    let (_directory, path) = state_path();
    drop(SimCluster::open_with_state_file(&path, config(), clock_at(EPOCH)).unwrap());
    let whole = std::fs::read(&path).unwrap();

    let mut inconsistent = saved(&path);
    inconsistent["state"]["nodes"][0]["job"] = serde_json::json!(42);
    for contents in [
        b"not json at all".to_vec(),
        Vec::new(),
        whole[..whole.len() / 2].to_vec(),
        serde_json::to_vec(&inconsistent).unwrap(),
    ] {
        std::fs::write(&path, &contents).unwrap();
        let message = refusal(&path, config());
        assert!(message.contains("damaged"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(ADVICE), "{message}");
    }
}

#[test]
fn a_state_file_from_other_options_or_a_newer_crus_is_refused() {
    let (_directory, path) = state_path();
    drop(SimCluster::open_with_state_file(&path, config(), clock_at(EPOCH)).unwrap());

    let bigger = SimConfig {
        nodes: 8,
        seed: 7,
        ..config()
    };
    let message = refusal(&path, bigger);
    assert!(
        message.contains("nodes is 4 in the file but 8 now"),
        "{message}"
    );
    assert!(
        message.contains("seed is 1 in the file but 7 now"),
        "{message}"
    );
    assert!(message.contains(ADVICE), "{message}");

    let mut newer = saved(&path);
    newer["format"] = serde_json::json!(2);
    std::fs::write(&path, serde_json::to_vec(&newer).unwrap()).unwrap();
    let message = refusal(&path, config());
    assert!(message.contains("format 2"), "{message}");
    assert!(message.contains(ADVICE), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_saved_workload_resumes_where_it_was() {
    let (_directory, path) = state_path();
    let config = SimConfig {
        nodes: 128,
        workload: Workload::nasa_ipsc().unwrap(),
        trace_offset: Duration::from_secs((33 * 24 + 8) * 3600),
        ..SimConfig::default()
    };
    let running = {
        let cluster =
            SimCluster::open_with_state_file(&path, config.clone(), clock_at(EPOCH)).unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        cluster
            .drain(&[node(&cluster, 0)], "upgrade")
            .await
            .unwrap();
        cluster.running_jobs()
    };
    assert!(running > 0);
    let cluster = SimCluster::open_with_state_file(
        &path,
        config.clone(),
        clock_at(EPOCH + Duration::from_secs(3600)),
    )
    .unwrap();
    assert_eq!(cluster.running_jobs(), running);

    // Another trace is another cluster.
    let other = SimConfig {
        workload: Workload::None,
        ..config
    };
    let message = refusal(&path, other);
    assert!(message.contains("workload is"), "{message}");
}

/// The ports behave exactly as without a state file.
mod conformance {
    use super::*;

    fn persisting() -> (TempDir, SimCluster) {
        let (directory, path) = state_path();
        let cluster = SimCluster::open_with_state_file(&path, config(), clock_at(EPOCH)).unwrap();
        (directory, cluster)
    }

    #[tokio::test(start_paused = true)]
    async fn inventory() {
        let (_directory, cluster) = persisting();
        let fixture = InventoryFixture::new("compute", cluster.node_ids());
        testkit::inventory::run_all(&cluster, &fixture)
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn boot_orchestrator() {
        let (_directory, cluster) = persisting();
        let fixture = BootOrchestratorFixture {
            template: "compute-image".to_string(),
            nodes: cluster.node_ids()[..2].to_vec(),
            boot_timeout: Duration::from_secs(10 * 60),
            poll_interval: Duration::from_secs(5),
        };
        testkit::boot_orchestrator::run_all(&cluster, &fixture)
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn power_control() {
        let (_directory, cluster) = persisting();
        let fixture = PowerControlFixture {
            nodes: cluster.node_ids()[2..].to_vec(),
            settle_timeout: Duration::from_secs(10 * 60),
            poll_interval: Duration::from_secs(5),
        };
        testkit::power_control::run_all(&cluster, &fixture)
            .await
            .unwrap();
    }
}
