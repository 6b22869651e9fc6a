//! The file inventory: conformance, durability across reopening, atomic
//! rewrites, and how bad files are refused.

use std::path::{Path, PathBuf};

use crus_core::ports::Inventory;
use crus_core::testkit::{self, InventoryFixture};
use crus_core::{Error, NodeFacts, NodeId};
use tempfile::TempDir;

use super::FileInventory;

/// Three nodes, two in `compute`, and an empty `spare` group.
const INVENTORY: &str = r#"{
  "nodes": [
    {"id": "node001", "nid": 1, "enabled": true},
    {"id": "node002", "nid": 2},
    {"id": "x1000c0s0b0n0", "enabled": false, "state": "Off"}
  ],
  "groups": {
    "compute": ["node001", "node002"],
    "Spare": []
  }
}"#;

/// A fresh directory and the path of an inventory file in it holding `contents`.
fn inventory_file(contents: &str) -> (TempDir, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("inventory.json");
    std::fs::write(&path, contents).unwrap();
    (directory, path)
}

fn ids(ids: &[&str]) -> Vec<NodeId> {
    ids.iter().copied().map(NodeId::from).collect()
}

/// The names of the files in `directory`, sorted.
fn files_in(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The message of the error `FileInventory::open` gives for `contents`.
fn refusal(contents: &str) -> (Error, String, PathBuf) {
    let (_directory, path) = inventory_file(contents);
    let error = FileInventory::open(&path).unwrap_err();
    let message = error.to_string();
    (error, message, path)
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let (_directory, path) = inventory_file(INVENTORY);
    let inventory = FileInventory::open(&path).unwrap();
    let fixture = InventoryFixture::new("compute", ids(&["node001", "node002", "x1000c0s0b0n0"]));
    if let Err(failure) = testkit::inventory::run_all(&inventory, &fixture).await {
        panic!("{failure}");
    }
    // Again, on the file as the first run left it.
    let reopened = FileInventory::open(&path).unwrap();
    if let Err(failure) = testkit::inventory::run_all(&reopened, &fixture).await {
        panic!("{failure}");
    }
}

#[tokio::test]
async fn reads_nodes_and_groups() {
    let (_directory, path) = inventory_file(INVENTORY);
    let inventory = FileInventory::open(&path).unwrap();
    assert_eq!(
        inventory.group_members("compute").await.unwrap(),
        ids(&["node001", "node002"])
    );
    // Labels are compared lower-cased.
    assert!(inventory.group_members("SPARE").await.unwrap().is_empty());
    assert_eq!(inventory.groups(), ["compute", "spare"]);
    let facts = inventory
        .node_facts(&ids(&["x1000c0s0b0n0", "node002"]))
        .await
        .unwrap();
    assert_eq!(
        facts,
        [
            NodeFacts {
                id: "x1000c0s0b0n0".into(),
                nid: None,
                enabled: false,
                state: Some("Off".to_string()),
            },
            NodeFacts {
                id: "node002".into(),
                nid: Some(2),
                enabled: true,
                state: None,
            },
        ]
    );
    assert_eq!(inventory.nodes().len(), 3);
    assert_eq!(inventory.path(), path);
}

#[tokio::test]
async fn errors_name_the_group_or_node() {
    let (_directory, path) = inventory_file(INVENTORY);
    let inventory = FileInventory::open(&path).unwrap();

    let error = inventory.group_members("gpu").await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("'gpu'"), "{error}");

    let error = inventory.create_group("Compute").await.unwrap_err();
    assert!(matches!(error, Error::Conflict { .. }), "{error:?}");

    let error = inventory
        .add_members("compute", &ids(&["x1000c0s0b0n0", "node999"]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("'node999'"), "{error}");
    // Nothing was added: the request is checked whole first.
    assert_eq!(
        inventory.group_members("compute").await.unwrap(),
        ids(&["node001", "node002"])
    );

    let error = inventory
        .add_members("gpu", &ids(&["node001"]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("'gpu'"), "{error}");

    let error = inventory
        .node_facts(&ids(&["node001", "node404"]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("'node404'"), "{error}");

    let error = inventory.create_group("bad label").await.unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    assert!(error.to_string().contains("\"bad label\""), "{error}");
}

#[tokio::test]
async fn changes_survive_reopening() {
    let (_directory, path) = inventory_file(INVENTORY);
    let inventory = FileInventory::open(&path).unwrap();
    inventory.create_group("Rolling.Upgrade:1").await.unwrap();
    inventory
        .add_members(
            "rolling.upgrade:1",
            &ids(&["node002", "node001", "node002"]),
        )
        .await
        .unwrap();
    inventory
        .remove_members("compute", &ids(&["node001", "x1000c0s0b0n0"]))
        .await
        .unwrap();
    drop(inventory);

    let reopened = FileInventory::open(&path).unwrap();
    assert_eq!(
        reopened.group_members("rolling.upgrade:1").await.unwrap(),
        ids(&["node002", "node001"])
    );
    assert_eq!(
        reopened.group_members("compute").await.unwrap(),
        ids(&["node002"])
    );
    assert!(reopened.group_members("spare").await.unwrap().is_empty());
    // Node facts are written back as they were read.
    let facts = reopened
        .node_facts(&ids(&["node001", "x1000c0s0b0n0"]))
        .await
        .unwrap();
    assert_eq!(facts[0].nid, Some(1));
    assert!(!facts[1].enabled);
    assert_eq!(facts[1].state.as_deref(), Some("Off"));
}

#[tokio::test]
async fn rewrites_atomically_and_leaves_no_temporary_file() {
    let (directory, path) = inventory_file(INVENTORY);
    let inventory = FileInventory::open(&path).unwrap();
    for round in 0..5 {
        let label = format!("batch-{round}");
        inventory.create_group(&label).await.unwrap();
        inventory
            .add_members(&label, &ids(&["node001"]))
            .await
            .unwrap();
        assert_eq!(files_in(directory.path()), ["inventory.json"]);
    }
    // Concurrent changes are all applied and all written.
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let inventory = inventory.clone();
            tokio::spawn(async move { inventory.create_group(&format!("parallel-{task}")).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(files_in(directory.path()), ["inventory.json"]);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let groups = saved["groups"].as_object().unwrap();
    assert_eq!(groups.len(), 2 + 5 + 8, "{saved}");
    assert_eq!(saved["groups"]["batch-4"], serde_json::json!(["node001"]));
    assert_eq!(
        saved["nodes"][0],
        serde_json::json!({"id": "node001", "nid": 1, "enabled": true})
    );
}

#[tokio::test]
async fn a_change_that_changes_nothing_does_not_rewrite() {
    let (_directory, path) = inventory_file(INVENTORY);
    let inventory = FileInventory::open(&path).unwrap();
    inventory
        .add_members("compute", &ids(&["node001"]))
        .await
        .unwrap();
    inventory
        .remove_members("spare", &ids(&["node001"]))
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), INVENTORY);
}

#[tokio::test]
async fn a_failed_write_changes_nothing_and_can_be_retried() {
    let (directory, path) = inventory_file(INVENTORY);
    let inventory = FileInventory::open(&path).unwrap();
    // A directory where the temporary file should go makes the write fail.
    let temp_path = directory.path().join(".inventory.json.tmp");
    std::fs::create_dir(&temp_path).unwrap();
    let error = inventory.create_group("new").await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    assert!(matches!(
        inventory.group_members("new").await,
        Err(Error::NotFound { .. })
    ));
    std::fs::remove_dir(&temp_path).unwrap();
    inventory.create_group("new").await.unwrap();
    assert!(
        FileInventory::open(&path)
            .unwrap()
            .group_members("new")
            .await
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_missing_file_says_how_to_create_one() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("inventory.json");
    let message = FileInventory::open(&path).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("create it"), "{message}");
    assert!(message.contains(r#""groups": {"compute""#), "{message}");
}

#[test]
fn a_corrupt_file_is_refused_naming_the_path() {
    for contents in [
        "{\"nodes\": [",
        "not json",
        "",
        r#"{"nodes": [{"id": "n1", "enabeld": true}]}"#,
    ] {
        let (error, message, path) = refusal(contents);
        assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("is not a valid inventory"), "{message}");
        assert!(message.contains("line"), "{message}");
    }
    let (_, message, _) = refusal(r#"{"nodes": [{"id": "n1", "enabeld": true}]}"#);
    assert!(message.contains("enabeld"), "{message}");
}

#[test]
fn invalid_entries_are_named() {
    for (contents, expected) in [
        (
            r#"{"nodes": [{"id": "n1"}], "groups": {"compute": ["n1", "n2"]}}"#,
            "group 'compute' lists node 'n2', which is not among the file's nodes",
        ),
        (
            r#"{"nodes": [{"id": "n1"}, {"id": "n2"}, {"id": "n1"}]}"#,
            "node 'n1' is listed more than once",
        ),
        (
            r#"{"nodes": [{"id": "n1", "nid": 7}, {"id": "n2", "nid": 7}]}"#,
            "nodes 'n1' and 'n2' both have nid 7",
        ),
        (
            r#"{"nodes": [{"id": "n1"}], "groups": {"gpu nodes": ["n1"]}}"#,
            "group label \"gpu nodes\" may only hold",
        ),
        (
            r#"{"nodes": [{"id": "n1"}], "groups": {"": []}}"#,
            "group label \"\" is empty",
        ),
        (
            r#"{"nodes": [{"id": "n1"}], "groups": {"GPU": [], "gpu": []}}"#,
            "groups 'GPU' and 'gpu' are the same group 'gpu'",
        ),
        (
            r#"{"nodes": [{"id": "n1"}], "groups": {"gpu": [], "gpu": ["n1"]}}"#,
            "group 'gpu' is listed more than once",
        ),
        (
            r#"{"nodes": [{"id": "n1"}], "groups": {"gpu": ["n1", "n1"]}}"#,
            "group 'gpu' lists node 'n1' more than once",
        ),
        (
            r#"{"nodes": [{"id": "n1"}, {"id": "node 2"}]}"#,
            "node #2 has id \"node 2\", which holds white space",
        ),
    ] {
        let (error, message, path) = refusal(contents);
        assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains(expected),
            "{message}\nshould contain: {expected}"
        );
    }
}

#[test]
fn every_problem_is_listed() {
    let (_, message, _) =
        refusal(r#"{"nodes": [{"id": "n1"}, {"id": "n1"}], "groups": {"a": ["x"], "b": ["y"]}}"#);
    for expected in ["'n1' is listed more than once", "node 'x'", "node 'y'"] {
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn an_empty_inventory_is_fine() {
    let (_directory, path) = inventory_file(r#"{"nodes": []}"#);
    let inventory = FileInventory::open(&path).unwrap();
    assert!(inventory.nodes().is_empty());
    assert!(inventory.groups().is_empty());
}

#[tokio::test]
async fn outside_edits_are_replaced_by_the_next_change() {
    let (_directory, path) = inventory_file(INVENTORY);
    let inventory = FileInventory::open(&path).unwrap();
    std::fs::write(&path, r#"{"nodes": [{"id": "node001"}]}"#).unwrap();
    inventory.create_group("new").await.unwrap();
    let reopened = FileInventory::open(&path).unwrap();
    assert_eq!(reopened.nodes().len(), 3);
    assert_eq!(reopened.groups(), ["compute", "new", "spare"]);
}
