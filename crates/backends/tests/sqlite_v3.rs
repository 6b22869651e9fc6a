//! A session database written by the release before nodes were rows
//! (schema version 3, `tests/fixtures/sessions-v3.db`, made by crus at
//! 8350934 from a 12-node session on the simulated cluster, step 4, whose
//! controller stopped right after its fourth write;
//! `sessions-v3.json` is that release's `get` of the session) opens under
//! schema version 4, reads back the same record, and a new controller
//! resumes the session to its end.

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a failure should stop them loudly.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use crus_backends::sim::SimConfig;
use crus_backends::sqlite::SqliteStore;
use crus_core::rollout::{NodePhase, Stage};
use crus_core::store::{SessionRecord, SessionStore, StatusView};

use common::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[tokio::test(start_paused = true)]
async fn a_version_3_database_loads_and_its_session_resumes() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sessions.db");
    std::fs::copy(fixture("sessions-v3.db"), &path).unwrap();
    let before: SessionRecord =
        serde_json::from_str(&std::fs::read_to_string(fixture("sessions-v3.json")).unwrap())
            .unwrap();
    let id = before.upgrade_id();
    assert_eq!(
        before.rollout.nodes.len(),
        12,
        "the fixture holds its nodes"
    );
    assert!(
        before
            .rollout
            .nodes
            .iter()
            .any(|node| node.phase != NodePhase::Pending),
        "the fixture stopped mid-run"
    );

    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = raw
        .query_row("SELECT schema_version FROM meta", [], |row| row.get(0))
        .unwrap();
    // Version 4 moved the nodes into rows, version 5 added the options,
    // version 6 the index of idempotency keys.
    assert_eq!(version, 6);
    let rows: i64 = raw
        .query_row(
            "SELECT count(*) FROM session_nodes WHERE upgrade_id = ?1",
            [id.to_string()],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(rows, 12, "one row per node");
    let header: String = raw
        .query_row(
            "SELECT record FROM sessions WHERE upgrade_id = ?1",
            [id.to_string()],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        header.contains("\"nodes\":[]"),
        "the record keeps no node: {header}"
    );

    let stored = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        stored.value, before,
        "the record reads back as the old release stored it"
    );
    assert_eq!(
        store.get_status(id).await.unwrap().unwrap(),
        before.status_json().unwrap()
    );

    // A new controller on the same (simulated) cluster takes it up.
    let clock = clock();
    let sim = sim(
        SimConfig {
            nodes: 12,
            seed: 3,
            ..SimConfig::default()
        },
        &clock,
    );
    let controller = controller(&sim, store.clone(), &clock);
    controller.drive(id).await.unwrap();
    let after = store.get(id).await.unwrap().unwrap().value;
    assert_eq!(after.rollout.stage, Stage::Finished);
    assert!(
        after
            .rollout
            .nodes
            .iter()
            .all(|node| node.phase.is_terminal()),
        "every node's part ended"
    );
    assert_eq!(
        after.rollout.count(NodePhase::Done),
        12,
        "every node upgraded"
    );

    // The new controller's header leaves the steps' and boots' node lists
    // out (issue 25), the step started by the old release included: its
    // nodes were given their boots when it was resumed, and reads rebuild
    // the lists from them.
    let header: serde_json::Value = serde_json::from_str(
        &raw.query_row(
            "SELECT record FROM sessions WHERE upgrade_id = ?1",
            [id.to_string()],
            |row| row.get::<_, String>(0),
        )
        .unwrap(),
    )
    .unwrap();
    let steps = header["rollout"]["steps"].as_array().unwrap();
    assert!(steps.len() >= 3, "{header}");
    for step in steps {
        assert!(step.get("nodes").is_none(), "{step}");
        for boot in step["boots"].as_array().unwrap() {
            assert!(boot.get("nodes").is_none(), "{boot}");
        }
    }
    assert_eq!(after.rollout.steps[0].nodes, before.rollout.steps[0].nodes);
    assert_eq!(
        after.rollout.steps[0].boots[0].nodes,
        before.rollout.steps[0].boots[0].nodes
    );
    assert!(
        after
            .rollout
            .steps
            .iter()
            .all(|step| step.nodes.len() == 4
                && step.boots.iter().all(|boot| !boot.nodes.is_empty()))
    );
}
