//! `image_features` on the simulated cluster, through the controller: each
//! upgraded node ends with `img_<template>` in place of its old image's tag
//! and its other features kept, a node the session did not upgrade ends with
//! exactly its own features, whether the session ends, is deleted midway, or
//! is resumed by a new controller after a crash.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use crus_backends::sim::{SimCluster, SimConfig, Workload};
use crus_core::NodeId;
use crus_core::ports::WorkloadManager;
use crus_core::rollout::{NodePhase, RolloutPolicy, with_image_feature};
use crus_core::store::SessionStore;

use common::*;

/// Four idle nodes, each with features of its own (set as a site's
/// `slurm.conf` would have them), two with an older image's tag.
async fn cluster(clock: &std::sync::Arc<crus_core::clock::TokioClock>) -> SimCluster {
    let sim = sim(
        SimConfig {
            nodes: 4,
            workload: Workload::Jobs(Vec::new()),
            boot_time: Duration::from_secs(60),
            boot_jitter: 0.0,
            ..SimConfig::default()
        },
        clock,
    );
    let own: Vec<(NodeId, Vec<String>)> = sim.node_ids().into_iter().zip(own_features()).collect();
    sim.set_features(&own).await.unwrap();
    sim
}

fn own_features() -> Vec<Vec<String>> {
    [
        &["gpu", "img_compute_image_old"][..],
        &[],
        &["bigmem"],
        &["img_compute_image_old"],
    ]
    .iter()
    .map(|list| list.iter().map(|s| (*s).to_string()).collect())
    .collect()
}

fn tagging_policy() -> RolloutPolicy {
    RolloutPolicy {
        image_features: true,
        ..policy()
    }
}

/// Each node's features are its own with the image's tag when the session
/// upgraded it, exactly its own otherwise.
async fn assert_features(sim: &SimCluster, store: &dyn SessionStore, id: uuid::Uuid) {
    let phases: Vec<NodePhase> = match store.get(id).await.unwrap() {
        Some(record) => record
            .value
            .rollout
            .nodes
            .iter()
            .map(|node| node.phase)
            .collect(),
        None => Vec::new(),
    };
    for (position, (node, own)) in sim.node_ids().iter().zip(own_features()).enumerate() {
        let upgraded = phases.get(position) == Some(&NodePhase::Done);
        let expected = if upgraded {
            with_image_feature(&own, "compute-image")
        } else {
            own
        };
        assert_eq!(
            sim.features_of(node),
            Some(expected),
            "node {node} ({:?})",
            phases.get(position)
        );
    }
}

async fn wait_completed(store: &dyn SessionStore, id: uuid::Uuid) {
    for _ in 0..1440 {
        if store
            .get(id)
            .await
            .unwrap()
            .is_some_and(|record| record.value.rollout.completed)
        {
            return;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    panic!("session {id} did not complete in 4 simulated hours");
}

#[tokio::test(start_paused = true)]
async fn a_finished_session_leaves_every_node_tagged_with_its_image() {
    let clock = clock();
    let sim = cluster(&clock).await;
    let store = memory_store();
    let controller = controller(&sim, store.clone(), &clock);
    let session = controller
        .create_session(spec(2), tagging_policy())
        .await
        .unwrap();
    controller.start(session.upgrade_id);
    wait_completed(store.as_ref(), session.upgrade_id).await;
    let record = store.get(session.upgrade_id).await.unwrap().unwrap();
    assert_eq!(record.value.rollout.count(NodePhase::Done), 4);
    assert_features(&sim, store.as_ref(), session.upgrade_id).await;
    assert_eq!(
        sim.features_of(&sim.node_ids()[0]),
        Some(vec!["gpu".to_string(), "img_compute_image".to_string()])
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_deleted_midway_tags_only_the_nodes_it_upgraded() {
    let clock = clock();
    let sim = cluster(&clock).await;
    let store = memory_store();
    let controller = controller(&sim, store.clone(), &clock);
    let session = controller
        .create_session(spec(1), tagging_policy())
        .await
        .unwrap();
    let id = session.upgrade_id;
    controller.start(id);
    // The first node is upgraded after its minute's boot; the second is
    // being upgraded.
    for _ in 0..100 {
        let record = store.get(id).await.unwrap().unwrap();
        if record.value.rollout.count(NodePhase::Done) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let record = store.get(id).await.unwrap().unwrap();
    let phases: Vec<NodePhase> = record
        .value
        .rollout
        .nodes
        .iter()
        .map(|node| node.phase)
        .collect();
    assert!(
        phases.contains(&NodePhase::Pending),
        "the session must still have nodes to upgrade: {phases:?}"
    );
    controller.request_delete(id).await.unwrap();
    // The record goes once the deletion ends; the last one seen says which
    // nodes were upgraded.
    let mut last = record;
    for _ in 0..1440 {
        match store.get(id).await.unwrap() {
            Some(record) => last = record,
            None => break,
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    assert!(store.get(id).await.unwrap().is_none(), "not removed");
    let upgraded: Vec<bool> = last
        .value
        .rollout
        .nodes
        .iter()
        .map(|node| node.phase == NodePhase::Done)
        .collect();
    assert!(upgraded.iter().any(|done| *done), "{upgraded:?}");
    assert!(!upgraded.iter().all(|done| *done), "{upgraded:?}");
    for ((node, own), upgraded) in sim.node_ids().iter().zip(own_features()).zip(upgraded) {
        let expected = if upgraded {
            with_image_feature(&own, "compute-image")
        } else {
            own
        };
        assert_eq!(sim.features_of(node), Some(expected), "node {node}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_controller_resuming_after_a_crash_tags_from_the_stored_lists() {
    let clock = clock();
    let sim = cluster(&clock).await;
    let store = memory_store();
    let first = controller(&sim, store.clone(), &clock);
    let session = first
        .create_session(spec(1), tagging_policy())
        .await
        .unwrap();
    let id = session.upgrade_id;
    first.start(id);
    for _ in 0..100 {
        let record = store.get(id).await.unwrap().unwrap();
        if record.value.rollout.count(NodePhase::Done) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // The first controller dies midway; the workload manager meanwhile
    // loses what it set (a restart of slurmctld from slurm.conf).
    first.stop_all();
    drop(first);
    let own: Vec<(NodeId, Vec<String>)> = sim.node_ids().into_iter().zip(own_features()).collect();
    sim.set_features(&own).await.unwrap();
    let second = controller(&sim, store.clone(), &clock);
    second.drive(id).await.unwrap();
    let record = store.get(id).await.unwrap().unwrap();
    assert!(record.value.rollout.completed);
    assert_eq!(record.value.rollout.count(NodePhase::Done), 4);
    assert_features(&sim, store.as_ref(), id).await;
}
