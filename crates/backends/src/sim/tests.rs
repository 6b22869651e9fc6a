//! Behaviour of the simulated cluster through its ports, in virtual time.

use std::sync::Arc;
use std::time::Duration;

use crus_core::clock::TokioClock;
use crus_core::ports::{
    BootHandle, BootOrchestrator, BootRequest, Inventory, NodeBootState, PowerControl,
    PowerOperation, PowerState, WorkloadManager, WorkloadNode, WorkloadState,
};
use crus_core::{Error, NodeId, Timestamp};

use super::*;

/// Sim time zero of every test.
const EPOCH: Timestamp = Timestamp::from_secs(1_700_000_000);

/// A cluster whose time zero is EPOCH at the current tokio time.
fn cluster(config: SimConfig) -> SimCluster {
    SimCluster::new(config, Arc::new(TokioClock::starting_at(EPOCH))).unwrap()
}

/// A cluster of `nodes` nodes running `jobs`, whose boots take exactly one minute.
fn small(nodes: usize, jobs: Vec<TraceJob>) -> SimConfig {
    SimConfig {
        nodes,
        workload: Workload::Jobs(jobs),
        boot_time: Duration::from_secs(60),
        boot_jitter: 0.0,
        ..SimConfig::default()
    }
}

fn job(id: u64, submit_s: u64, nodes: u32, run_s: u64, requested_s: u64) -> TraceJob {
    TraceJob {
        id,
        submit: Duration::from_secs(submit_s),
        run_time: Duration::from_secs(run_s),
        nodes,
        requested_time: Duration::from_secs(requested_s),
    }
}

/// Node `index` of a simulated cluster.
fn node(index: usize) -> NodeId {
    cluster_ids()[index].clone()
}

fn cluster_ids() -> Vec<NodeId> {
    [
        "x1000c0s0b0n0",
        "x1000c0s0b0n1",
        "x1000c0s0b1n0",
        "x1000c0s0b1n1",
    ]
    .into_iter()
    .map(NodeId::new)
    .collect()
}

/// Waits, in paused tokio time, until `seconds` after the cluster's time zero.
async fn at(cluster: &SimCluster, seconds: u64) {
    let target = EPOCH + Duration::from_secs(seconds);
    tokio::time::sleep(target.saturating_since(cluster.now())).await;
    assert_eq!(cluster.now(), target);
}

async fn states(cluster: &SimCluster, nodes: &[NodeId]) -> Vec<WorkloadState> {
    cluster
        .node_states(nodes)
        .await
        .unwrap()
        .into_iter()
        .map(|node| node.state)
        .collect()
}

async fn state_of(cluster: &SimCluster, node: &NodeId) -> WorkloadNode {
    cluster
        .node_states(std::slice::from_ref(node))
        .await
        .unwrap()
        .remove(0)
}

fn boot_request(key: &str, nodes: &[NodeId]) -> BootRequest {
    BootRequest {
        key: key.to_string(),
        template: "compute-image".to_string(),
        nodes: nodes.to_vec(),
    }
}

async fn boot_states(cluster: &SimCluster, handle: &BootHandle) -> Vec<NodeBootState> {
    cluster
        .boot_status(handle)
        .await
        .unwrap()
        .into_iter()
        .map(|status| status.state)
        .collect()
}

fn is_not_found(error: &Error, what: &str) -> bool {
    matches!(error, Error::NotFound { what: found } if found == what)
}

// Inventory and layout.

#[tokio::test(start_paused = true)]
async fn inventory_lists_nodes_facts_and_groups() {
    let cluster = cluster(SimConfig::default());
    let members = cluster.group_members("compute").await.unwrap();
    assert_eq!(members.len(), 128);
    assert_eq!(members[..4], cluster_ids()[..]);
    assert_eq!(members[127].as_str(), "x1000c3s7b1n1");
    assert_eq!(cluster.node_ids(), members);

    let facts = cluster.node_facts(&[node(1)]).await.unwrap();
    assert_eq!(facts[0].id, node(1));
    assert_eq!(facts[0].nid, Some(2));
    assert!(facts[0].enabled);
    assert_eq!(facts[0].state.as_deref(), Some("Ready"));
    assert_eq!(slurm_name(2), "nid000002");

    cluster.create_group("upgraded").await.unwrap();
    assert!(matches!(
        cluster.create_group("upgraded").await,
        Err(Error::Conflict { .. })
    ));
    cluster.ensure_group("upgraded").await.unwrap();
    cluster
        .add_members("upgraded", &[node(2), node(0)])
        .await
        .unwrap();
    cluster
        .add_members("upgraded", &[node(0), node(3)])
        .await
        .unwrap();
    assert_eq!(
        cluster.group("upgraded"),
        Some(vec![node(2), node(0), node(3)])
    );
    cluster
        .remove_members("upgraded", &[node(0), node(1)])
        .await
        .unwrap();
    assert_eq!(cluster.group("upgraded"), Some(vec![node(2), node(3)]));
    assert_eq!(
        cluster.clear_group("upgraded").await.unwrap(),
        [node(2), node(3)]
    );
    assert_eq!(cluster.group("upgraded"), Some(vec![]));
    assert_eq!(cluster.group("nope"), None);
    assert!(cluster.template_exists("compute-image").await.unwrap());
    assert!(!cluster.template_exists("other-image").await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn unknown_ids_are_not_found_and_change_nothing() {
    let cluster = cluster(small(4, vec![]));
    let stranger = NodeId::new("x9999c0s0b0n0");
    let not_found = "node 'x9999c0s0b0n0'";

    let error = cluster.group_members("nope").await.unwrap_err();
    assert!(is_not_found(&error, "group 'nope'"), "{error}");
    let error = cluster.add_members("nope", &[node(0)]).await.unwrap_err();
    assert!(is_not_found(&error, "group 'nope'"), "{error}");
    let error = cluster
        .remove_members("nope", &[node(0)])
        .await
        .unwrap_err();
    assert!(is_not_found(&error, "group 'nope'"), "{error}");
    let error = cluster
        .add_members("compute", std::slice::from_ref(&stranger))
        .await
        .unwrap_err();
    assert!(is_not_found(&error, not_found), "{error}");
    let error = cluster
        .node_facts(&[node(0), stranger.clone()])
        .await
        .unwrap_err();
    assert!(is_not_found(&error, not_found), "{error}");
    // A node of the layout beyond the cluster's size is a stranger too.
    let error = cluster
        .node_facts(&[node(0), NodeId::new("x1000c0s1b0n0")])
        .await
        .unwrap_err();
    assert!(is_not_found(&error, "node 'x1000c0s1b0n0'"), "{error}");

    let both = [node(0), stranger.clone()];
    for error in [
        cluster.drain(&both, "upgrade").await.unwrap_err(),
        cluster.resume(&both).await.unwrap_err(),
        cluster.fail(&both, "broken").await.unwrap_err(),
        cluster
            .power(&both, PowerOperation::ForceOff)
            .await
            .unwrap_err(),
        cluster.power_state(&both).await.unwrap_err(),
        cluster
            .start_boot(&boot_request("b", &both))
            .await
            .unwrap_err(),
    ] {
        assert!(is_not_found(&error, not_found), "{error}");
    }
    assert!(cluster.drained_nodes().is_empty());
    assert!(cluster.failed_marked_nodes().is_empty());
    assert_eq!(cluster.report().boots, 0);
    assert_eq!(cluster.report().power_operations, 0);
    assert_eq!(states(&cluster, &[node(0)]).await, [WorkloadState::Idle]);

    let unknown = state_of(&cluster, &stranger).await;
    assert_eq!(unknown.state, WorkloadState::Unknown);
    assert!(!unknown.responding);

    let error = cluster
        .start_boot(&BootRequest {
            template: "other-image".to_string(),
            ..boot_request("b", &[node(0)])
        })
        .await
        .unwrap_err();
    assert!(is_not_found(&error, "template 'other-image'"), "{error}");
    assert_eq!(error.to_string(), "template 'other-image' not found");
    let error = cluster
        .start_boot(&boot_request("empty", &[]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error}");

    let handle = BootHandle {
        key: "never-started".to_string(),
        id: "sim-boot-0001".to_string(),
    };
    assert!(matches!(
        cluster.boot_status(&handle).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        cluster.cancel_boot(&handle).await,
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn inconsistent_configurations_are_invalid() {
    let clock: Arc<dyn crus_core::clock::Clock> = Arc::new(crus_core::clock::SystemClock);
    let mut faults = Faults::none();
    faults.fail_boot.insert(NodeId::new("x1000c0s1b0n0"));
    for config in [
        SimConfig {
            nodes: 0,
            ..SimConfig::default()
        },
        SimConfig {
            boot_jitter: 1.5,
            ..SimConfig::default()
        },
        SimConfig {
            nodes: 4,
            faults,
            ..SimConfig::default()
        },
        SimConfig {
            faults: Faults {
                boot_fail_rate: 0.7,
                never_return_rate: 0.7,
                ..Faults::none()
            },
            ..SimConfig::default()
        },
    ] {
        let error = SimCluster::new(config, clock.clone()).unwrap_err();
        assert!(matches!(error, Error::Invalid { .. }), "{error}");
    }
}

// Workload manager and scheduler.

#[tokio::test(start_paused = true)]
async fn jobs_start_first_come_first_served() {
    // B, the head, waits for A; C would delay B, so it waits behind it.
    let cluster = cluster(small(
        4,
        vec![
            job(1, 0, 2, 100, 100),
            job(2, 1, 4, 100, 100),
            job(3, 2, 2, 1000, 1000),
        ],
    ));
    at(&cluster, 2).await;
    assert_eq!((cluster.running_jobs(), cluster.queued_jobs()), (1, 2));
    let all = cluster_ids();
    assert_eq!(
        states(&cluster, &all).await,
        [
            WorkloadState::Allocated,
            WorkloadState::Allocated,
            WorkloadState::Idle,
            WorkloadState::Idle
        ]
    );
    let first = state_of(&cluster, &node(0)).await;
    assert_eq!(first.jobs_end_by, Some(EPOCH + Duration::from_secs(100)));
    assert!(first.responding);

    at(&cluster, 100).await;
    assert_eq!((cluster.running_jobs(), cluster.queued_jobs()), (1, 1));
    assert_eq!(states(&cluster, &all).await, [WorkloadState::Allocated; 4]);
    at(&cluster, 200).await;
    assert_eq!((cluster.running_jobs(), cluster.queued_jobs()), (1, 0));
    let report = cluster.report();
    assert_eq!((report.jobs_started, report.jobs_completed), (3, 2));
    // A waited 0 s, B 99 s, C 198 s.
    assert_eq!(report.job_wait_s_total, 297.0);
}

#[tokio::test(start_paused = true)]
async fn short_jobs_backfill_without_delaying_the_head() {
    // C fits in the two idle nodes and ends (by its limit) before B can start.
    let cluster = cluster(small(
        4,
        vec![
            job(1, 0, 2, 100, 100),
            job(2, 1, 4, 100, 100),
            job(3, 2, 2, 50, 60),
        ],
    ));
    at(&cluster, 2).await;
    assert_eq!((cluster.running_jobs(), cluster.queued_jobs()), (2, 1));
    let backfilled = state_of(&cluster, &node(2)).await;
    assert_eq!(backfilled.state, WorkloadState::Allocated);
    assert_eq!(
        backfilled.jobs_end_by,
        Some(EPOCH + Duration::from_secs(62))
    );
    at(&cluster, 100).await;
    assert_eq!(
        states(&cluster, &cluster_ids()).await,
        [WorkloadState::Allocated; 4]
    );
    assert_eq!(
        cluster.report().job_wait_s_total,
        99.0,
        "the head started on time"
    );
}

#[tokio::test(start_paused = true)]
async fn drained_nodes_get_no_jobs() {
    let cluster = cluster(small(
        4,
        vec![job(1, 10, 2, 100, 100), job(2, 20, 1, 10, 10)],
    ));
    cluster.drain(&[node(0), node(1)], "upgrade").await.unwrap();
    at(&cluster, 30).await;
    assert_eq!(
        states(&cluster, &cluster_ids()).await,
        [
            WorkloadState::Drained,
            WorkloadState::Drained,
            WorkloadState::Allocated,
            WorkloadState::Allocated
        ]
    );
    assert_eq!(cluster.queued_jobs(), 1);
    assert_eq!(cluster.drained_nodes(), [node(0), node(1)]);
    let drained = state_of(&cluster, &node(0)).await;
    assert_eq!(drained.reason.as_deref(), Some("upgrade"));
    assert!(drained.responding);

    cluster.resume(&[node(0)]).await.unwrap();
    cluster.resume(&[node(0)]).await.unwrap();
    assert_eq!(
        state_of(&cluster, &node(0)).await.state,
        WorkloadState::Allocated
    );
    assert_eq!(cluster.queued_jobs(), 0);
    assert_eq!(cluster.drained_nodes(), [node(1)]);
}

#[tokio::test(start_paused = true)]
async fn drained_nodes_do_not_count_as_coming_free() {
    // A's two nodes are drained, so B (all four nodes) can never start and
    // holds no reservation: C backfills at once instead of waiting for A.
    let cluster = cluster(small(
        4,
        vec![
            job(1, 0, 2, 100, 100),
            job(2, 20, 4, 100, 100),
            job(3, 30, 2, 1000, 1000),
        ],
    ));
    at(&cluster, 10).await;
    cluster.drain(&[node(0), node(1)], "upgrade").await.unwrap();
    at(&cluster, 30).await;
    assert_eq!((cluster.running_jobs(), cluster.queued_jobs()), (2, 1));
    assert_eq!(
        states(&cluster, &cluster_ids()).await,
        [
            WorkloadState::Draining,
            WorkloadState::Draining,
            WorkloadState::Allocated,
            WorkloadState::Allocated
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_draining_node_is_drained_when_its_job_ends() {
    let cluster = cluster(small(2, vec![job(1, 0, 2, 100, 150)]));
    at(&cluster, 10).await;
    cluster.drain(&[node(0)], "upgrade").await.unwrap();
    cluster.drain(&[node(0)], "upgrade").await.unwrap();
    let draining = state_of(&cluster, &node(0)).await;
    assert_eq!(draining.state, WorkloadState::Draining);
    assert_eq!(draining.jobs_end_by, Some(EPOCH + Duration::from_secs(150)));
    at(&cluster, 99).await;
    assert_eq!(
        states(&cluster, &[node(0)]).await,
        [WorkloadState::Draining]
    );
    at(&cluster, 100).await;
    assert_eq!(
        states(&cluster, &[node(0), node(1)]).await,
        [WorkloadState::Drained, WorkloadState::Idle]
    );
    at(&cluster, 150).await;
    let report = cluster.report();
    assert_eq!(report.out_of_service_node_s, 140.0);
    assert_eq!(report.drained_idle_node_s, 50.0);
    assert_eq!(report.max_out_of_service, 1);
}

#[tokio::test(start_paused = true)]
async fn stuck_jobs_never_end() {
    let mut config = small(2, vec![]);
    config.faults.stuck_jobs.insert(node(1));
    let cluster = cluster(config);
    cluster.drain(&[node(1)], "upgrade").await.unwrap();
    at(&cluster, 30 * 24 * 3600).await;
    let stuck = state_of(&cluster, &node(1)).await;
    assert_eq!(stuck.state, WorkloadState::Draining);
    assert_eq!(stuck.jobs_end_by, None);
    assert_eq!(cluster.running_jobs(), 1);
}

#[tokio::test(start_paused = true)]
async fn failed_marks_keep_nodes_down_until_resumed() {
    let cluster = cluster(small(2, vec![]));
    cluster.fail(&[node(0)], "did not boot").await.unwrap();
    cluster.fail(&[node(0)], "did not boot").await.unwrap();
    let failed = state_of(&cluster, &node(0)).await;
    assert_eq!(failed.state, WorkloadState::Down);
    assert_eq!(failed.reason.as_deref(), Some("did not boot"));
    assert_eq!(cluster.failed_marked_nodes(), [node(0)]);
    cluster.resume(&[node(0)]).await.unwrap();
    assert_eq!(states(&cluster, &[node(0)]).await, [WorkloadState::Idle]);
    assert!(cluster.failed_marked_nodes().is_empty());
}

// Boot orchestrator and power control.

#[tokio::test(start_paused = true)]
async fn boots_are_idempotent_by_key() {
    let cluster = cluster(small(4, vec![]));
    let nodes = [node(0), node(1)];
    cluster.drain(&nodes, "upgrade").await.unwrap();
    let handle = cluster
        .start_boot(&boot_request("upgrade-1", &nodes))
        .await
        .unwrap();
    let again = cluster
        .start_boot(&boot_request("upgrade-1", &nodes))
        .await
        .unwrap();
    assert_eq!(handle, again);
    assert_eq!(cluster.report().boots, 2);
    assert_eq!(cluster.boot_count(&node(0)), 1);
    assert_eq!(
        boot_states(&cluster, &handle).await,
        [const { NodeBootState::InProgress }; 2]
    );
    let booting = state_of(&cluster, &node(0)).await;
    assert_eq!(booting.state, WorkloadState::Down);
    assert!(!booting.responding);
    assert_eq!(
        cluster.power_state(&nodes).await.unwrap(),
        [PowerState::PoweringOn; 2]
    );

    at(&cluster, 60).await;
    assert_eq!(
        boot_states(&cluster, &handle).await,
        [const { NodeBootState::Ok }; 2]
    );
    // The drain flag survives the reboot, as in Slurm.
    let booted = state_of(&cluster, &node(0)).await;
    assert_eq!(
        (booted.state, booted.responding),
        (WorkloadState::Drained, true)
    );
    assert_eq!(
        cluster.power_state(&nodes).await.unwrap(),
        [PowerState::On; 2]
    );

    cluster.cancel_boot(&handle).await.unwrap();
    cluster.cancel_boot(&handle).await.unwrap();
    let report = cluster.report();
    assert_eq!(report.node_boots.len(), 2);
    assert_eq!(report.reboots_with_running_jobs, 0);
    // A wrong id under a known key is not that boot.
    let forged = BootHandle {
        id: "sim-boot-9999".to_string(),
        ..handle
    };
    assert!(matches!(
        cluster.boot_status(&forged).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_node_still_booting_when_resumed_comes_back_in_service() {
    let cluster = cluster(small(1, vec![job(1, 10, 1, 100, 100)]));
    cluster.drain(&[node(0)], "upgrade").await.unwrap();
    cluster
        .start_boot(&boot_request("b", &[node(0)]))
        .await
        .unwrap();
    cluster.resume(&[node(0)]).await.unwrap();
    at(&cluster, 30).await;
    assert_eq!(states(&cluster, &[node(0)]).await, [WorkloadState::Down]);
    assert_eq!(cluster.queued_jobs(), 1);
    at(&cluster, 60).await;
    assert_eq!(
        states(&cluster, &[node(0)]).await,
        [WorkloadState::Allocated]
    );
    assert_eq!(cluster.report().job_wait_s_total, 50.0);
}

#[tokio::test(start_paused = true)]
async fn rebooting_a_busy_node_kills_its_job_and_is_counted() {
    let cluster = cluster(small(2, vec![job(1, 0, 2, 1000, 1000)]));
    at(&cluster, 1).await;
    cluster
        .start_boot(&boot_request("rude", &[node(0)]))
        .await
        .unwrap();
    let report = cluster.report();
    assert_eq!(report.reboots_with_running_jobs, 1);
    assert_eq!(report.jobs_killed, 1);
    assert_eq!(cluster.running_jobs(), 0);
    assert_eq!(states(&cluster, &[node(1)]).await, [WorkloadState::Idle]);
}

#[tokio::test(start_paused = true)]
async fn boot_faults_decide_each_node_outcome() {
    let mut config = small(4, vec![]);
    config.faults.fail_boot.insert(node(1));
    config.faults.never_return.insert(node(2));
    let cluster = cluster(config);
    let nodes = [node(0), node(1), node(2)];
    let handle = cluster
        .start_boot(&boot_request("b", &nodes))
        .await
        .unwrap();
    at(&cluster, 600).await;
    let failed = NodeBootState::Failed {
        reason: BOOT_FAILURE_REASON.to_string(),
    };
    assert_eq!(
        boot_states(&cluster, &handle).await,
        [NodeBootState::Ok, failed.clone(), NodeBootState::InProgress]
    );
    let after: Vec<(WorkloadState, bool)> = cluster
        .node_states(&nodes)
        .await
        .unwrap()
        .into_iter()
        .map(|node| (node.state, node.responding))
        .collect();
    assert_eq!(
        after,
        [
            (WorkloadState::Idle, true),
            (WorkloadState::Down, false),
            (WorkloadState::Down, false)
        ]
    );
    assert_eq!(
        state_of(&cluster, &node(1)).await.reason.as_deref(),
        Some(BOOT_FAILURE_REASON)
    );
    assert_eq!(
        cluster.power_state(&nodes).await.unwrap(),
        [PowerState::On, PowerState::On, PowerState::PoweringOn]
    );
    // A boot of a hung node counts as out of service by crus until it ends.
    assert_eq!(cluster.report().max_out_of_service, 3);

    // A power restart clears the hang, and the boot it belonged to completes;
    // a node that cannot boot fails again.
    cluster
        .power(&[node(2), node(1)], PowerOperation::ForceRestart)
        .await
        .unwrap();
    at(&cluster, 660).await;
    assert_eq!(
        boot_states(&cluster, &handle).await,
        [NodeBootState::Ok, failed, NodeBootState::Ok]
    );
    assert_eq!(
        states(&cluster, &nodes).await,
        [
            WorkloadState::Idle,
            WorkloadState::Down,
            WorkloadState::Idle
        ]
    );
    let report = cluster.report();
    assert_eq!(report.power_operations, 2);
    assert_eq!(report.boots, 3, "power restarts are not boots");
}

#[tokio::test(start_paused = true)]
async fn boot_fault_rates_are_seeded() {
    let config = SimConfig {
        nodes: 64,
        faults: Faults {
            boot_fail_rate: 0.25,
            never_return_rate: 0.25,
            ..Faults::none()
        },
        ..SimConfig::default()
    };
    let outcomes = |seed: u64| {
        let config = SimConfig {
            seed,
            ..config.clone()
        };
        async move {
            let cluster = cluster(config);
            let nodes = cluster.node_ids();
            let handle = cluster
                .start_boot(&boot_request("b", &nodes))
                .await
                .unwrap();
            // Boots take 3 to 5 minutes.
            at(&cluster, 299).await;
            let early = boot_states(&cluster, &handle).await;
            at(&cluster, 301).await;
            (early, boot_states(&cluster, &handle).await)
        }
    };
    let (early, first) = outcomes(7).await;
    assert!(early.contains(&NodeBootState::Ok), "some boots are quick");
    assert_eq!(first, outcomes(7).await.1);
    assert_ne!(first, outcomes(8).await.1);
    let count = |wanted: fn(&NodeBootState) -> bool| first.iter().filter(|s| wanted(s)).count();
    let ok = count(|state| *state == NodeBootState::Ok);
    let failed = count(|state| matches!(state, NodeBootState::Failed { .. }));
    let hung = count(|state| *state == NodeBootState::InProgress);
    assert_eq!(ok + failed + hung, 64);
    for outcome in [ok, failed, hung] {
        assert!(
            (6..=40).contains(&outcome),
            "{ok} ok, {failed} failed, {hung} hung"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn power_off_and_on() {
    let cluster = cluster(small(2, vec![]));
    cluster.drain(&[node(0)], "upgrade").await.unwrap();
    cluster
        .power(&[node(0)], PowerOperation::ForceOff)
        .await
        .unwrap();
    cluster
        .power(&[node(0)], PowerOperation::ForceOff)
        .await
        .unwrap();
    assert_eq!(
        cluster.power_state(&[node(0)]).await.unwrap(),
        [PowerState::Off]
    );
    let off = state_of(&cluster, &node(0)).await;
    assert_eq!((off.state, off.responding), (WorkloadState::Down, false));
    assert_eq!(
        cluster.node_facts(&[node(0)]).await.unwrap()[0]
            .state
            .as_deref(),
        Some("Off")
    );
    cluster.power(&[node(0)], PowerOperation::On).await.unwrap();
    assert_eq!(
        cluster.power_state(&[node(0)]).await.unwrap(),
        [PowerState::PoweringOn]
    );
    at(&cluster, 60).await;
    assert_eq!(
        cluster.power_state(&[node(0)]).await.unwrap(),
        [PowerState::On]
    );
    assert_eq!(states(&cluster, &[node(0)]).await, [WorkloadState::Drained]);
    assert_eq!(cluster.report().power_operations, 3);
}

#[tokio::test(start_paused = true)]
async fn powering_off_a_booting_node_fails_its_boot() {
    let cluster = cluster(small(2, vec![]));
    let handle = cluster
        .start_boot(&boot_request("b", &[node(0)]))
        .await
        .unwrap();
    cluster
        .power(&[node(0)], PowerOperation::ForceOff)
        .await
        .unwrap();
    at(&cluster, 600).await;
    assert_eq!(
        boot_states(&cluster, &handle).await,
        [NodeBootState::Failed {
            reason: "powered off during boot".to_string()
        }]
    );
    assert_eq!(
        cluster.power_state(&[node(0)]).await.unwrap(),
        [PowerState::Off]
    );
}

// Report.

#[tokio::test(start_paused = true)]
async fn report_integrates_exactly_between_events() {
    let cluster = cluster(small(4, vec![]));
    let pair = [node(0), node(1)];
    cluster.drain(&pair, "upgrade").await.unwrap();
    at(&cluster, 10).await;
    cluster.start_boot(&boot_request("b", &pair)).await.unwrap();
    at(&cluster, 20).await;
    cluster.drain(&[node(2)], "upgrade").await.unwrap();
    at(&cluster, 40).await;
    cluster.fail(&[node(2)], "broken").await.unwrap();
    at(&cluster, 50).await;
    cluster.resume(&[node(2)]).await.unwrap();
    at(&cluster, 100).await;
    // The boots ended at 70 and kept the drain flag.
    assert_eq!(cluster.drained_nodes(), pair);
    cluster.resume(&pair).await.unwrap();
    at(&cluster, 120).await;

    let report = cluster.report();
    assert_eq!(report.elapsed_s, 120.0);
    // Out of service: 2 nodes on [0, 20), 3 on [20, 40), 2 on [40, 100).
    assert_eq!(
        report.out_of_service_node_s,
        2.0 * 20.0 + 3.0 * 20.0 + 2.0 * 60.0
    );
    assert_eq!(report.max_out_of_service, 3);
    // Drained and idle: 2 nodes on [0, 10), node 2 on [20, 40), 2 nodes on [70, 100).
    assert_eq!(report.drained_idle_node_s, 2.0 * 10.0 + 20.0 + 2.0 * 30.0);
    assert_eq!(report.boots, 2);
    assert_eq!(
        report.node_boots.into_iter().collect::<Vec<_>>(),
        [(node(0), 1), (node(1), 1)]
    );
    assert_eq!(report.reboots_with_running_jobs, 0);
    assert_eq!(report.jobs_killed, 0);
}

// Trace replay, determinism and saved state.

#[tokio::test(start_paused = true)]
async fn replays_the_bundled_trace_deterministically() {
    let config = SimConfig {
        workload: Workload::nasa_ipsc().unwrap(),
        trace_offset: Duration::from_secs(7 * 24 * 3600),
        ..SimConfig::default()
    };
    let run = |config: SimConfig| async move {
        let cluster = cluster(config);
        at(&cluster, 3600).await;
        let nodes: Vec<NodeId> = cluster.node_ids()[..32].to_vec();
        cluster.drain(&nodes, "upgrade").await.unwrap();
        at(&cluster, 24 * 3600).await;
        cluster.report()
    };
    let report = run(config.clone()).await;
    assert!(report.jobs_completed > 50, "{report:?}");
    assert!(report.drained_idle_node_s > 0.0);
    assert_eq!(report.max_out_of_service, 32);
    assert_eq!(report, run(config).await);
}

#[tokio::test(start_paused = true)]
async fn the_whole_trace_runs_to_completion() {
    let workload = Workload::nasa_ipsc().unwrap();
    let jobs = workload.jobs().len() as u64;
    let cluster = cluster(SimConfig {
        workload,
        ..SimConfig::default()
    });
    at(&cluster, 100 * 24 * 3600).await;
    let report = cluster.report();
    assert_eq!(report.jobs_submitted, jobs);
    assert_eq!(report.jobs_completed, jobs);
    assert_eq!(cluster.running_jobs() + cluster.queued_jobs(), 0);
}

#[tokio::test(start_paused = true)]
async fn synthetic_workloads_keep_a_large_cluster_busy() {
    let cluster = cluster(SimConfig {
        nodes: 1024,
        workload: Workload::synthetic(&SyntheticWorkload {
            nodes: 1024,
            duration: Duration::from_secs(2 * 24 * 3600),
            ..SyntheticWorkload::default()
        }),
        ..SimConfig::default()
    });
    at(&cluster, 24 * 3600).await;
    let busy = states(&cluster, &cluster.node_ids())
        .await
        .into_iter()
        .filter(|state| *state == WorkloadState::Allocated)
        .count();
    assert!(busy > 512, "{busy} of 1024 nodes busy");
    assert_eq!(cluster.node_ids()[1023].as_str(), "x1003c7s7b1n1");
}

#[tokio::test(start_paused = true)]
async fn saved_state_resumes_exactly() {
    let clock = Arc::new(TokioClock::starting_at(EPOCH));
    let config = SimConfig {
        workload: Workload::nasa_ipsc().unwrap(),
        trace_offset: Duration::from_secs((33 * 24 + 8) * 3600),
        faults: Faults {
            boot_fail_rate: 0.2,
            ..Faults::none()
        },
        ..SimConfig::default()
    };
    let original = SimCluster::new(config, clock.clone()).unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let nodes = original.node_ids()[..16].to_vec();
    original.drain(&nodes, "upgrade").await.unwrap();

    let saved = serde_json::to_string(&original.state()).unwrap();
    let state: SimState = serde_json::from_str(&saved).unwrap();
    assert_eq!(state.now(), EPOCH + Duration::from_secs(3600));
    let resumed = SimCluster::from_state(state, clock).unwrap();

    for cluster in [&original, &resumed] {
        cluster
            .start_boot(&boot_request("b", &nodes))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
    assert_eq!(
        serde_json::to_string(&original.state()).unwrap(),
        serde_json::to_string(&resumed.state()).unwrap()
    );
    assert_eq!(original.report(), resumed.report());
    assert!(original.report().jobs_completed > 10);
}

#[test]
fn inconsistent_saved_state_is_rejected() {
    let cluster = SimCluster::new(
        small(2, vec![job(1, 0, 2, 100, 100)]),
        Arc::new(crus_core::clock::SystemClock),
    )
    .unwrap();
    let mut saved = serde_json::to_value(cluster.state()).unwrap();
    saved["nodes"][0]["job"] = serde_json::json!(42);
    let state: SimState = serde_json::from_value(saved).unwrap();
    let error = SimCluster::from_state(state, Arc::new(crus_core::clock::SystemClock)).unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error}");
}

// Injected port errors.

#[tokio::test(start_paused = true)]
async fn faulty_ports_fail_at_a_seeded_rate_without_effect() {
    let cluster = cluster(small(4, vec![]));
    let pattern = |seed: u64| {
        let faulty = Faulty::new(cluster.clone(), 0.3, seed);
        async move {
            let mut failures = Vec::new();
            for _ in 0..1000 {
                failures.push(faulty.node_states(&[node(0)]).await.is_err());
            }
            assert_eq!(
                faulty.injected_errors(),
                failures.iter().filter(|failed| **failed).count() as u64
            );
            failures
        }
    };
    let first = pattern(42).await;
    assert_eq!(first, pattern(42).await);
    assert_ne!(first, pattern(43).await);
    let failed = first.iter().filter(|failed| **failed).count();
    assert!((200..400).contains(&failed), "{failed} of 1000 failed");

    let always = Faulty::new(cluster.clone(), 1.0, 1);
    let error = always.drain(&[node(0)], "upgrade").await.unwrap_err();
    assert!(error.is_retryable());
    assert!(matches!(error, Error::Unavailable { backend: "sim", .. }));
    assert!(
        always
            .start_boot(&boot_request("b", &[node(0)]))
            .await
            .is_err()
    );
    assert!(
        cluster.drained_nodes().is_empty(),
        "a failed call has no effect"
    );
    assert_eq!(cluster.report().boots, 0);

    let never = Faulty::new(cluster.clone(), 0.0, 1);
    for _ in 0..100 {
        never.power_state(&[node(0)]).await.unwrap();
    }
    assert_eq!(never.injected_errors(), 0);
}

#[tokio::test(start_paused = true)]
async fn ports_inject_the_configured_error_rate() {
    let mut config = small(4, vec![]);
    let clean = cluster(config.clone()).ports();
    for _ in 0..100 {
        clean
            .workload_manager
            .node_states(&[node(0)])
            .await
            .unwrap();
    }
    assert!(clean.power_control.is_some());

    config.faults.port_error_rate = 0.5;
    let flaky = cluster(config).ports();
    let mut failed = 0;
    for _ in 0..100 {
        if let Err(error) = flaky.inventory.group_members("compute").await {
            assert!(error.is_retryable(), "{error}");
            failed += 1;
        }
    }
    assert!((25..75).contains(&failed), "{failed} of 100 failed");
    // Wrapping dyn ports works too.
    let wrapped = faulty_ports(&clean, 1.0, 3);
    assert!(
        wrapped
            .boot_orchestrator
            .template_exists("compute-image")
            .await
            .is_err()
    );
}

// The conformance suites every backend runs.

mod conformance {
    use crus_core::testkit::{
        self, BootOrchestratorFixture, InventoryFixture, PowerControlFixture,
        WorkloadManagerFixture,
    };

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn inventory() {
        let cluster = cluster(small(4, vec![]));
        let fixture = InventoryFixture::new("compute", cluster_ids());
        testkit::inventory::run_all(&cluster, &fixture)
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn workload_manager() {
        // The one job starts at once on the lowest-numbered node and runs 10 minutes.
        let cluster = cluster(small(4, vec![job(1, 0, 1, 600, 900)]));
        let fixture = WorkloadManagerFixture {
            idle_nodes: cluster_ids()[1..].to_vec(),
            unknown_node: NodeId::new("x9999c7s7b1n1"),
            busy_node: Some(node(0)),
            jobs_end_within: Duration::from_secs(15 * 60),
            settle_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
        };
        testkit::workload_manager::run_all(&cluster, &fixture)
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn boot_orchestrator() {
        let cluster = cluster(SimConfig {
            nodes: 4,
            ..SimConfig::default()
        });
        let fixture = BootOrchestratorFixture {
            template: "compute-image".to_string(),
            nodes: cluster_ids()[..2].to_vec(),
            boot_timeout: Duration::from_secs(10 * 60),
            poll_interval: Duration::from_secs(5),
        };
        testkit::boot_orchestrator::run_all(&cluster, &fixture)
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn power_control() {
        let cluster = cluster(SimConfig {
            nodes: 4,
            ..SimConfig::default()
        });
        let fixture = PowerControlFixture {
            nodes: cluster_ids()[2..].to_vec(),
            settle_timeout: Duration::from_secs(10 * 60),
            poll_interval: Duration::from_secs(5),
        };
        testkit::power_control::run_all(&cluster, &fixture)
            .await
            .unwrap();
    }
}
