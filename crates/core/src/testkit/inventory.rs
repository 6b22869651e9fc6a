//! Conformance suite for [`Inventory`] backends.
//!
//! The trait cannot delete groups, so checks that need a group of their own
//! create one named `scratch_label_prefix` + a fresh suffix and leave it behind
//! empty; against a real service, pick a prefix the site can clean up.

use std::collections::HashSet;

use super::{CallResultExt, ConformanceError, NodeList, expect_error, unique_suffix};
use crate::error::Error;
use crate::node::NodeId;
use crate::ports::Inventory;

/// What the inventory under test holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryFixture {
    /// A group that exists (it may be empty); the suite only reads it.
    pub existing_group: String,
    /// At least two nodes the inventory knows; the suite adds them to and
    /// removes them from its own scratch groups only.
    pub known_nodes: Vec<NodeId>,
    /// A well-formed node id the inventory does not know, so a backend that
    /// validates ids answers [`Error::NotFound`] rather than [`Error::Invalid`].
    pub unknown_node: NodeId,
    /// Start of the labels of the groups the suite creates; a fresh suffix is
    /// appended each time so the suite can run repeatedly against one service.
    pub scratch_label_prefix: String,
}

impl InventoryFixture {
    /// A fixture with `existing_group` and `known_nodes`, the unknown node
    /// `x9999c7s999b9n9` and the scratch prefix `crus-conformance-`.
    pub fn new(existing_group: impl Into<String>, known_nodes: Vec<NodeId>) -> Self {
        InventoryFixture {
            existing_group: existing_group.into(),
            known_nodes,
            unknown_node: NodeId::from("x9999c7s999b9n9"),
            scratch_label_prefix: "crus-conformance-".to_string(),
        }
    }

    /// The first two known nodes, or a failure of `check` if the fixture has fewer.
    fn two_nodes(&self, check: &'static str) -> Result<(&NodeId, &NodeId), ConformanceError> {
        match self.known_nodes.as_slice() {
            [first, second, ..] => Ok((first, second)),
            nodes => Err(ConformanceError::new(
                check,
                format!(
                    "the fixture needs at least two known_nodes, it has {}",
                    NodeList(nodes)
                ),
            )),
        }
    }

    /// A label no group has yet.
    fn scratch_label(&self, purpose: &str) -> String {
        format!("{}{purpose}-{}", self.scratch_label_prefix, unique_suffix())
    }
}

/// Runs every inventory check in turn, stopping at the first failure.
pub async fn run_all(
    inventory: &dyn Inventory,
    fixture: &InventoryFixture,
) -> Result<(), ConformanceError> {
    existing_group_lists_members(inventory, fixture).await?;
    unknown_group_is_not_found(inventory, fixture).await?;
    create_group_conflicts_when_it_exists(inventory, fixture).await?;
    ensure_group_is_idempotent(inventory, fixture).await?;
    add_members_is_idempotent(inventory, fixture).await?;
    remove_members_is_idempotent(inventory, fixture).await?;
    unknown_group_add_remove_is_not_found(inventory, fixture).await?;
    node_facts_in_request_order(inventory, fixture).await?;
    unknown_node_facts_is_not_found(inventory, fixture).await?;
    clear_group_empties_it(inventory, fixture).await?;
    Ok(())
}

/// The existing group's members can be read, and no node is listed twice.
pub async fn existing_group_lists_members(
    inventory: &dyn Inventory,
    fixture: &InventoryFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "inventory::existing_group_lists_members";
    let label = &fixture.existing_group;
    let members = inventory
        .group_members(label)
        .await
        .or_fail(CHECK, format!("group_members({label:?})"))?;
    expect_each_once(CHECK, label, &members)
}

/// Reading a group that does not exist is [`Error::NotFound`].
pub async fn unknown_group_is_not_found(
    inventory: &dyn Inventory,
    fixture: &InventoryFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "inventory::unknown_group_is_not_found";
    let label = fixture.scratch_label("never-created");
    expect_not_found(
        CHECK,
        format!("group_members({label:?}) of a group never created"),
        inventory.group_members(&label).await,
    )
}

/// A new group can be created and is empty; creating it again is [`Error::Conflict`].
pub async fn create_group_conflicts_when_it_exists(
    inventory: &dyn Inventory,
    fixture: &InventoryFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "inventory::create_group_conflicts_when_it_exists";
    let label = fixture.scratch_label("create");
    inventory
        .create_group(&label)
        .await
        .or_fail(CHECK, format!("create_group({label:?}) of a new group"))?;
    expect_members(CHECK, inventory, &label, &[], "a new group").await?;
    expect_error(
        CHECK,
        format!("create_group({label:?}) a second time"),
        inventory.create_group(&label).await,
        "Conflict",
        |error| matches!(error, Error::Conflict { .. }),
    )
}

/// `ensure_group` creates a missing group, and leaves an existing one and its members alone.
pub async fn ensure_group_is_idempotent(
    inventory: &dyn Inventory,
    fixture: &InventoryFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "inventory::ensure_group_is_idempotent";
    let (node, _) = fixture.two_nodes(CHECK)?;
    let label = fixture.scratch_label("ensure");
    inventory
        .ensure_group(&label)
        .await
        .or_fail(CHECK, format!("ensure_group({label:?}) of a new group"))?;
    expect_members(
        CHECK,
        inventory,
        &label,
        &[],
        "a group made by ensure_group",
    )
    .await?;
    let node = std::slice::from_ref(node);
    add(CHECK, inventory, &label, node).await?;
    inventory.ensure_group(&label).await.or_fail(
        CHECK,
        format!("ensure_group({label:?}) of an existing group"),
    )?;
    let kept = expect_members(
        CHECK,
        inventory,
        &label,
        node,
        "a group after ensure_group of it again",
    )
    .await;
    clean_up(inventory, &label, node).await;
    kept
}

/// Adding members that are already members succeeds and lists each node once.
pub async fn add_members_is_idempotent(
    inventory: &dyn Inventory,
    fixture: &InventoryFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "inventory::add_members_is_idempotent";
    let (first, second) = fixture.two_nodes(CHECK)?;
    let label = fixture.scratch_label("add");
    create(CHECK, inventory, &label).await?;
    let both = [first.clone(), second.clone()];
    let result = async {
        add(CHECK, inventory, &label, &both).await?;
        expect_members(CHECK, inventory, &label, &both, "after adding two nodes").await?;
        add(CHECK, inventory, &label, std::slice::from_ref(first)).await?;
        add(CHECK, inventory, &label, &both).await?;
        expect_members(
            CHECK,
            inventory,
            &label,
            &both,
            "after adding the same nodes again",
        )
        .await
    }
    .await;
    clean_up(inventory, &label, &both).await;
    result
}

/// Removing a node that is not a member succeeds and changes nothing; removing twice succeeds.
pub async fn remove_members_is_idempotent(
    inventory: &dyn Inventory,
    fixture: &InventoryFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "inventory::remove_members_is_idempotent";
    let (member, non_member) = fixture.two_nodes(CHECK)?;
    let label = fixture.scratch_label("remove");
    create(CHECK, inventory, &label).await?;
    let member = std::slice::from_ref(member);
    let result = async {
        add(CHECK, inventory, &label, member).await?;
        remove(CHECK, inventory, &label, std::slice::from_ref(non_member)).await?;
        expect_members(
            CHECK,
            inventory,
            &label,
            member,
            "after removing a node that is not a member",
        )
        .await?;
        remove(CHECK, inventory, &label, member).await?;
        expect_members(
            CHECK,
            inventory,
            &label,
            &[],
            "after removing the only member",
        )
        .await?;
        remove(CHECK, inventory, &label, member).await?;
        expect_members(CHECK, inventory, &label, &[], "after removing it again").await
    }
    .await;
    clean_up(inventory, &label, member).await;
    result
}

/// Adding to or removing from a group that does not exist is [`Error::NotFound`],
/// and does not create the group.
pub async fn unknown_group_add_remove_is_not_found(
    inventory: &dyn Inventory,
    fixture: &InventoryFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "inventory::unknown_group_add_remove_is_not_found";
    let (node, _) = fixture.two_nodes(CHECK)?;
    let label = fixture.scratch_label("never-created");
    let node = std::slice::from_ref(node);
    expect_not_found(
        CHECK,
        format!(
            "add_members({label:?}, {}) to a group never created",
            NodeList(node)
        ),
        inventory.add_members(&label, node).await,
    )?;
    expect_not_found(
        CHECK,
        format!(
            "remove_members({label:?}, {}) from a group never created",
            NodeList(node)
        ),
        inventory.remove_members(&label, node).await,
    )?;
    expect_not_found(
        CHECK,
        format!("group_members({label:?}) after add_members to it failed"),
        inventory.group_members(&label).await,
    )
}

/// `node_facts` answers one entry per node, in the order asked, with matching ids.
pub async fn node_facts_in_request_order(
    inventory: &dyn Inventory,
    fixture: &InventoryFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "inventory::node_facts_in_request_order";
    fixture.two_nodes(CHECK)?;
    let forward = fixture.known_nodes.clone();
    let mut backward = forward.clone();
    backward.reverse();
    for nodes in [forward, backward] {
        let call = format!("node_facts({})", NodeList(&nodes));
        let facts = inventory.node_facts(&nodes).await.or_fail(CHECK, &call)?;
        let ids: Vec<NodeId> = facts.iter().map(|fact| fact.id.clone()).collect();
        if ids != nodes {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "{call} should answer one entry per node in the same order, but answered for {}: {:?}",
                    NodeList(&ids),
                    facts
                ),
            ));
        }
    }
    Ok(())
}

/// `node_facts` with an unknown node among known ones is [`Error::NotFound`].
pub async fn unknown_node_facts_is_not_found(
    inventory: &dyn Inventory,
    fixture: &InventoryFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "inventory::unknown_node_facts_is_not_found";
    let (known, _) = fixture.two_nodes(CHECK)?;
    let nodes = [known.clone(), fixture.unknown_node.clone()];
    expect_not_found(
        CHECK,
        format!(
            "node_facts({}) with the unknown node {}",
            NodeList(&nodes),
            fixture.unknown_node
        ),
        inventory.node_facts(&nodes).await,
    )
}

/// `clear_group` removes and returns every member, and succeeds again on the empty group.
pub async fn clear_group_empties_it(
    inventory: &dyn Inventory,
    fixture: &InventoryFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "inventory::clear_group_empties_it";
    let (first, second) = fixture.two_nodes(CHECK)?;
    let label = fixture.scratch_label("clear");
    create(CHECK, inventory, &label).await?;
    let both = [first.clone(), second.clone()];
    let result = async {
        add(CHECK, inventory, &label, &both).await?;
        let call = format!("clear_group({label:?})");
        let removed = inventory.clear_group(&label).await.or_fail(CHECK, &call)?;
        if !same_set(&removed, &both) {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "{call} should return the members {}, but returned {}",
                    NodeList(&both),
                    NodeList(&removed)
                ),
            ));
        }
        expect_members(CHECK, inventory, &label, &[], "after clear_group").await?;
        let removed = inventory
            .clear_group(&label)
            .await
            .or_fail(CHECK, format!("{call} of the empty group"))?;
        if !removed.is_empty() {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "{call} of the empty group should return no node, but returned {}",
                    NodeList(&removed)
                ),
            ));
        }
        Ok(())
    }
    .await;
    clean_up(inventory, &label, &both).await;
    result
}

async fn create(
    check: &'static str,
    inventory: &dyn Inventory,
    label: &str,
) -> Result<(), ConformanceError> {
    inventory
        .create_group(label)
        .await
        .or_fail(check, format!("create_group({label:?}) of a new group"))
}

async fn add(
    check: &'static str,
    inventory: &dyn Inventory,
    label: &str,
    nodes: &[NodeId],
) -> Result<(), ConformanceError> {
    inventory.add_members(label, nodes).await.or_fail(
        check,
        format!("add_members({label:?}, {})", NodeList(nodes)),
    )
}

async fn remove(
    check: &'static str,
    inventory: &dyn Inventory,
    label: &str,
    nodes: &[NodeId],
) -> Result<(), ConformanceError> {
    inventory.remove_members(label, nodes).await.or_fail(
        check,
        format!("remove_members({label:?}, {})", NodeList(nodes)),
    )
}

/// Best effort: leaves a scratch group empty whether or not the check passed.
async fn clean_up(inventory: &dyn Inventory, label: &str, nodes: &[NodeId]) {
    if let Err(error) = inventory.remove_members(label, nodes).await {
        tracing::warn!(%error, label, "could not empty a conformance scratch group");
    }
}

/// Checks that group `label` holds exactly `expected` (in any order), each once.
async fn expect_members(
    check: &'static str,
    inventory: &dyn Inventory,
    label: &str,
    expected: &[NodeId],
    when: &str,
) -> Result<(), ConformanceError> {
    let call = format!("group_members({label:?}) {when}");
    let members = inventory.group_members(label).await.or_fail(check, &call)?;
    expect_each_once(check, label, &members)?;
    if !same_set(&members, expected) {
        return Err(ConformanceError::new(
            check,
            format!(
                "{call} should list {}, but listed {}",
                NodeList(expected),
                NodeList(&members)
            ),
        ));
    }
    Ok(())
}

fn expect_each_once(
    check: &'static str,
    label: &str,
    members: &[NodeId],
) -> Result<(), ConformanceError> {
    let mut seen = HashSet::new();
    match members.iter().find(|node| !seen.insert(*node)) {
        Some(twice) => Err(ConformanceError::new(
            check,
            format!(
                "group {label:?} lists {twice} more than once: {}",
                NodeList(members)
            ),
        )),
        None => Ok(()),
    }
}

fn expect_not_found<T: std::fmt::Debug>(
    check: &'static str,
    call: String,
    result: crate::Result<T>,
) -> Result<(), ConformanceError> {
    expect_error(check, call, result, "NotFound", |error| {
        matches!(error, Error::NotFound { .. })
    })
}

fn same_set(left: &[NodeId], right: &[NodeId]) -> bool {
    left.iter().collect::<HashSet<_>>() == right.iter().collect::<HashSet<_>>()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::error::Result;
    use crate::node::NodeFacts;
    use crate::testkit::test_support::{ExpectFailure, lock};

    /// Ways the fake can break the contract, to prove the suite notices.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Bug {
        None,
        /// `add_members` appends nodes that are already members.
        AddDuplicates,
        /// `remove_members` of a non-member is an error.
        RemoveNonMemberFails,
        /// `add_members` to a missing group creates it.
        AddCreatesGroup,
        /// `node_facts` answers in sorted order.
        FactsSorted,
        /// `create_group` of an existing group succeeds.
        CreateOverwrites,
    }

    /// An in-memory inventory with an optional bug.
    #[derive(Debug)]
    struct FakeInventory {
        bug: Bug,
        known: Vec<NodeId>,
        groups: Mutex<HashMap<String, Vec<NodeId>>>,
    }

    impl FakeInventory {
        fn new(bug: Bug, fixture: &InventoryFixture) -> Self {
            let groups =
                HashMap::from([(fixture.existing_group.clone(), fixture.known_nodes.clone())]);
            FakeInventory {
                bug,
                known: fixture.known_nodes.clone(),
                groups: Mutex::new(groups),
            }
        }
    }

    #[async_trait]
    impl Inventory for FakeInventory {
        async fn group_members(&self, label: &str) -> Result<Vec<NodeId>> {
            lock(&self.groups)
                .get(label)
                .cloned()
                .ok_or_else(|| Error::not_found(format!("group {label:?}")))
        }

        async fn create_group(&self, label: &str) -> Result<()> {
            let mut groups = lock(&self.groups);
            if groups.contains_key(label) && self.bug != Bug::CreateOverwrites {
                return Err(Error::conflict(format!("group {label:?} exists")));
            }
            groups.insert(label.to_string(), Vec::new());
            Ok(())
        }

        async fn add_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
            let mut groups = lock(&self.groups);
            if self.bug == Bug::AddCreatesGroup {
                groups.entry(label.to_string()).or_default();
            }
            let members = groups
                .get_mut(label)
                .ok_or_else(|| Error::not_found(format!("group {label:?}")))?;
            for node in nodes {
                if self.bug == Bug::AddDuplicates || !members.contains(node) {
                    members.push(node.clone());
                }
            }
            Ok(())
        }

        async fn remove_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
            let mut groups = lock(&self.groups);
            let members = groups
                .get_mut(label)
                .ok_or_else(|| Error::not_found(format!("group {label:?}")))?;
            if self.bug == Bug::RemoveNonMemberFails
                && let Some(stranger) = nodes.iter().find(|node| !members.contains(node))
            {
                return Err(Error::not_found(format!("member {stranger}")));
            }
            members.retain(|member| !nodes.contains(member));
            Ok(())
        }

        async fn node_facts(&self, nodes: &[NodeId]) -> Result<Vec<NodeFacts>> {
            let mut facts = nodes
                .iter()
                .map(|node| {
                    if self.known.contains(node) {
                        Ok(NodeFacts::enabled(node.clone()))
                    } else {
                        Err(Error::not_found(format!("node {node}")))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            if self.bug == Bug::FactsSorted {
                facts.sort_by(|left, right| left.id.cmp(&right.id));
            }
            Ok(facts)
        }
    }

    fn fixture() -> InventoryFixture {
        InventoryFixture::new(
            "compute",
            vec![NodeId::from("x1000c0s0b0n0"), NodeId::from("x1000c0s0b0n1")],
        )
    }

    #[tokio::test]
    async fn a_correct_inventory_passes() -> Result<(), ConformanceError> {
        let fixture = fixture();
        // Twice against the same backend: scratch labels do not collide.
        let inventory = FakeInventory::new(Bug::None, &fixture);
        run_all(&inventory, &fixture).await?;
        run_all(&inventory, &fixture).await
    }

    #[tokio::test]
    async fn each_bug_fails_the_check_that_covers_it() {
        let fixture = fixture();
        for (bug, failing_check) in [
            (Bug::AddDuplicates, "inventory::add_members_is_idempotent"),
            (
                Bug::RemoveNonMemberFails,
                "inventory::remove_members_is_idempotent",
            ),
            (
                Bug::AddCreatesGroup,
                "inventory::unknown_group_add_remove_is_not_found",
            ),
            (Bug::FactsSorted, "inventory::node_facts_in_request_order"),
            (
                Bug::CreateOverwrites,
                "inventory::create_group_conflicts_when_it_exists",
            ),
        ] {
            let error = run_all(&FakeInventory::new(bug, &fixture), &fixture)
                .await
                .failure();
            assert_eq!(error.check, failing_check, "{bug:?}: {error}");
        }
    }

    #[tokio::test]
    async fn a_duplicate_member_is_reported_with_the_members_seen() {
        let fixture = fixture();
        let error =
            add_members_is_idempotent(&FakeInventory::new(Bug::AddDuplicates, &fixture), &fixture)
                .await
                .failure();
        assert!(
            error.detail.contains("lists x1000c0s0b0n0 more than once: [x1000c0s0b0n0, x1000c0s0b0n1, x1000c0s0b0n0, x1000c0s0b0n0, x1000c0s0b0n1]"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_fixture_with_one_node_is_refused() {
        let mut fixture = fixture();
        fixture.known_nodes.truncate(1);
        let error = run_all(&FakeInventory::new(Bug::None, &fixture), &fixture)
            .await
            .failure();
        assert!(error.detail.contains("at least two known_nodes"), "{error}");
    }

    #[test]
    fn suite_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let fixture = fixture();
        let inventory = FakeInventory::new(Bug::None, &fixture);
        assert_send(&run_all(&inventory, &fixture));
    }
}
