//! Every kind of message in words, written out in full: the texts clients
//! and tests match on, pinned where they are made.

use std::time::Duration;

use super::*;
use crate::rollout::ALREADY_ON_TARGET_IMAGE;

fn node(id: &str) -> NodeId {
    NodeId::new(id)
}

fn nodes(ids: &[&str]) -> Vec<NodeId> {
    ids.iter().map(|id| node(id)).collect()
}

fn floor(percent: Option<f64>) -> Floor {
    Floor {
        kept: 4,
        total: 5,
        percent,
    }
}

fn assert_says(cases: Vec<(Said, &str)>) {
    for (said, text) in cases {
        assert_eq!(said.to_string(), text, "{said:?}");
    }
}

#[test]
fn operator_requests() {
    assert_says(vec![
        (
            Said::DeletionRequested,
            "Deletion requested: no new node will be taken; nodes not yet booted are returned to service",
        ),
        (
            Said::Paused {
                reason: "requested by an operator".to_string(),
            },
            "Paused: requested by an operator; nodes in flight finish, no new node is taken until resumed",
        ),
        (Said::Resumed, "Resumed: taking nodes again"),
        (
            Said::RequestRefused {
                reason: "no".to_string(),
            },
            "Operator request refused: no",
        ),
    ]);
}

#[test]
fn the_snapshot_and_its_plan() {
    let plan = |strategy, order, to_upgrade| Plan {
        label: "compute".to_string(),
        to_upgrade,
        step_size: 2,
        strategy,
        order,
        spread: Some(Domain::Chassis),
        align: Some(Domain::Blade),
        allowed_failures: None,
        floor: None,
    };
    let full = Plan {
        allowed_failures: Some(1),
        floor: Some(floor(Some(80.0))),
        ..plan(Strategy::Steps, Order::DrainCost, 5)
    };
    assert_says(vec![
        (
            Said::EmptyGroup {
                label: "compute".to_string(),
            },
            "Group 'compute' has no members: nothing to upgrade",
        ),
        (
            Said::AllOnTarget {
                label: "compute".to_string(),
            },
            "Every node of group 'compute' is already on the target image: nothing to upgrade",
        ),
        (
            Said::Plan(plan(Strategy::Steps, Order::Inventory, 1)),
            "Upgrading 1 node of group 'compute' in 1 step of at most 2",
        ),
        (
            Said::Plan(full),
            "Upgrading 5 nodes of group 'compute' in 3 steps of at most 2, cheapest drains first; halts if more than 1 fail; keeps at least 4 of 5 nodes (80%) in service (min_available)",
        ),
        (
            Said::Plan(plan(Strategy::Continuous, Order::Topology, 5)),
            "Upgrading 5 nodes of group 'compute', at most 2 out of service at once, each taken as soon as another is done, never two of one chassis at once, a whole blade at a time",
        ),
        (
            Said::SkippedMatching {
                count: 1,
                template: "t".to_string(),
            },
            &format!(
                "1 node already on template 't': left alone, reported skipped ({ALREADY_ON_TARGET_IMAGE})"
            ),
        ),
        (
            Said::NoneMatching {
                template: "t".to_string(),
            },
            "No node is already on template 't' (skip_matching)",
        ),
        (
            Said::ImagesUnknown {
                error: "e".to_string(),
            },
            "Cannot tell which nodes are already on the target image (e); every node is upgraded",
        ),
        (
            Said::ClearedFailedGroup {
                label: "failed".to_string(),
                count: 2,
            },
            "Cleared node group 'failed' (2 nodes from an earlier session)",
        ),
        (
            Said::ClearedUpgradingGroup {
                label: "up".to_string(),
                count: 1,
            },
            "Cleared node group 'up' (1 node)",
        ),
    ]);
}

#[test]
fn capitalised_counts_start_the_skipped_message() {
    let said = Said::SkippedMatching {
        count: 16,
        template: "t".to_string(),
    };
    assert!(
        said.to_string()
            .starts_with("16 nodes already on template 't'")
    );
}

#[test]
fn steps_and_boots() {
    let at = Timestamp::from_secs(1_800_000_000);
    assert_says(vec![
        (
            Said::OutsideWindows { opens_at: Some(at) },
            &format!(
                "Outside the maintenance windows: the next nodes are taken when one opens ({at})"
            ),
        ),
        (
            Said::OutsideWindows { opens_at: None },
            "Outside the maintenance windows, which never open: no node is taken",
        ),
        (
            Said::BootsPaced { limit: 3 },
            "Boots paced at max_boots_per_minute = 3: drained nodes wait their turn",
        ),
        (
            Said::StepStarted {
                step: 0,
                canary: true,
                nodes: nodes(&["x1"]),
                inventory_order: true,
            },
            "Step 0 (canary) started: draining 1 node (x1)",
        ),
        (
            Said::StepStarted {
                step: 1,
                canary: false,
                nodes: nodes(&["x1", "x2", "x3"]),
                inventory_order: true,
            },
            "Step 1 started: draining 3 nodes (x1 … x3)",
        ),
        (
            Said::StepStarted {
                step: 1,
                canary: false,
                nodes: nodes(&["x3", "x1"]),
                inventory_order: false,
            },
            "Step 1 started: draining 2 nodes (x3, x1)",
        ),
        (
            Said::StepBooting {
                step: 2,
                count: 1,
                template: "new".to_string(),
            },
            "Step 2: 1 node drained; booting it with template 'new'",
        ),
        (
            Said::StepBooting {
                step: 2,
                count: 2,
                template: "new".to_string(),
            },
            "Step 2: 2 nodes drained; booting them with template 'new'",
        ),
        (
            Said::StepBootingBack {
                step: 2,
                count: 2,
                template: "old".to_string(),
            },
            "Step 2: booting 2 nodes back to template 'old' (rollback)",
        ),
        (
            Said::BootStarted {
                step: 2,
                count: 2,
                template: "new".to_string(),
                boot: "b-1".to_string(),
            },
            "Step 2: boot of 2 nodes started with template 'new' (boot b-1)",
        ),
        (
            Said::StepFinished {
                step: 3,
                upgraded: 1,
                reverted: 0,
                failed: 0,
                skipped: 0,
            },
            "Step 3 finished: 1 node upgraded",
        ),
        (
            Said::StepFinished {
                step: 3,
                upgraded: 2,
                reverted: 1,
                failed: 2,
                skipped: 3,
            },
            "Step 3 finished: 2 nodes upgraded, 1 reverted, 2 failed, 3 returned to service without upgrade",
        ),
        (
            Said::CanaryPaused {
                reason: "canary step finished".to_string(),
            },
            "Paused: canary step finished; resume the session to upgrade the rest",
        ),
        (Said::CanaryPassed, "Canary step passed; continuing"),
    ]);
}

#[test]
fn halts_and_the_end() {
    let summary = |reverted, failed| {
        Said::Summary(Summary {
            upgraded: 3,
            total: 5,
            reverted,
            rollback_template: "old".to_string(),
            failed,
            failed_label: "failed".to_string(),
        })
    };
    assert_says(vec![
        (
            Said::Halted {
                reason: "why".to_string(),
            },
            "Halted: why; nodes in flight finish, no new node is taken. Resume the session (with a larger max_failures) or delete it",
        ),
        (
            Said::Deleted {
                upgraded: 1,
                failed: 0,
            },
            "Upgrade session deleted: 1 node upgraded, 0 failed before it stopped",
        ),
        (summary(0, 0), "3 of 5 nodes upgraded"),
        (
            summary(1, 1),
            "3 of 5 nodes upgraded, 1 reverted to template 'old', 1 failed (in group 'failed')",
        ),
        (Said::Completed, "Upgrade Session Completed"),
    ]);
}

#[test]
fn nodes_said() {
    let grace = Duration::from_secs(90);
    let waited = Duration::from_secs(600);
    assert_says(vec![
        (
            Said::NodeFailed {
                node: node("x1"),
                reason: "why".to_string(),
            },
            "Node x1 failed: why",
        ),
        (
            Said::NodeLeftAlone {
                node: node("x1"),
                reason: "why".to_string(),
            },
            "Node x1: why",
        ),
        (
            Said::BootingAgain {
                node: node("x1"),
                reason: "why".to_string(),
                attempts: 1,
                allowed: 3,
            },
            "Node x1: why; booting it again (attempt 2 of 3)",
        ),
        (
            Said::RollingBack {
                node: node("x1"),
                reason: "why".to_string(),
                template: "old".to_string(),
            },
            "Node x1: why; booting it back to template 'old' (rollback)",
        ),
        (
            Said::RestartingGracefully {
                node: node("x1"),
                boot_timeout: waited,
                grace,
            },
            "Node x1 did not come back within 10m of its boot starting; restarting it gracefully through power control (by force if it is not back within 1m 30s)",
        ),
        (
            Said::RestartingByForce {
                node: node("x1"),
                grace,
            },
            "Node x1 did not come back within 1m 30s of a graceful restart; restarting it by force",
        ),
        (
            Said::PowerRestartFailed {
                node: node("x1"),
                error: "e".to_string(),
            },
            "Node x1: the power restart failed: e",
        ),
        (
            Said::DrainTimedOutSkipped {
                node: node("x1"),
                waited,
            },
            "Node x1 did not drain within 10m: skipped, returned to service without upgrade",
        ),
        (
            Said::DrainTimedOutForced {
                node: node("x1"),
                waited,
            },
            "WARNING: node x1 did not drain within 10m: rebooting it with its jobs still running (on_drain_timeout: force)",
        ),
        (
            Said::DrainTimedOutRequeueing {
                node: node("x1"),
                waited,
            },
            "Node x1 did not drain within 10m: requeueing its jobs",
        ),
        (
            Said::CouldNotRequeue {
                node: node("x1"),
                error: "e".to_string(),
            },
            "Could not requeue the jobs of node x1: e; waiting for them to end",
        ),
    ]);
}

#[test]
fn nodes_someone_else_holds() {
    let described = || "drained (\"bad DIMM\")".to_string();
    assert_says(vec![
        (
            Said::ForeignReturned {
                node: node("x1"),
                described: described(),
            },
            "Node x1: returned to service by someone else (it was drained (\"bad DIMM\")); crus treats it as any other node again",
        ),
        (
            Said::ForeignPending {
                node: node("x1"),
                described: described(),
                policy: ForeignOutOfService::Wait,
            },
            "Node x1: out of service by someone else, drained (\"bad DIMM\"); crus will wait for it to be returned to service before upgrading it",
        ),
        (
            Said::ForeignPending {
                node: node("x1"),
                described: described(),
                policy: ForeignOutOfService::Skip,
            },
            "Node x1: out of service by someone else, drained (\"bad DIMM\"); crus will upgrade it and put it back as it was, never resuming it",
        ),
        (
            Said::ForeignWaiting {
                node: node("x1"),
                described: described(),
            },
            "Node x1: out of service by someone else, drained (\"bad DIMM\"); waiting for it to be returned to service (foreign_out_of_service: wait)",
        ),
        (
            Said::ForeignUpgraded {
                node: node("x1"),
                described: described(),
            },
            "Node x1: out of service by someone else, drained (\"bad DIMM\"); it will be upgraded and put back as it was, never resumed",
        ),
    ]);
}

#[test]
fn draining_ahead_and_the_floor() {
    assert_says(vec![
        (
            Said::ReturningAhead {
                nodes: nodes(&["x1"]),
                stopped: true,
            },
            "Returning 1 node drained ahead to service (x1): no node may be taken now; it is taken when a place frees",
        ),
        (
            Said::ReturningAhead {
                nodes: nodes(&["x1", "x2"]),
                stopped: false,
            },
            "Returning 2 nodes drained ahead to service (x1, x2): their jobs ended while every place of the step was held; they are taken when a place frees",
        ),
        (
            Said::DrainingAhead {
                nodes: nodes(&["x1", "x2"]),
            },
            "Draining ahead 2 nodes whose jobs end soonest (x1, x2): no new job starts there, and each takes a place in the step when one frees",
        ),
        (
            Said::DrainsHeldAtFloor {
                nodes: nodes(&["x1"]),
                floor: floor(None),
                elsewhere: Vec::new(),
            },
            "Holding the drain of x1 at the capacity floor: min_available keeps 4 of 5 nodes in service, and nodes went out of service since it was taken; out of service by someone else: none known. It is drained when a node returns to service",
        ),
        (
            Said::DrainsHeldAtFloor {
                nodes: nodes(&["x1", "x2"]),
                floor: floor(Some(80.0)),
                elsewhere: vec![(node("x3"), "down".to_string())],
            },
            "Holding the drain of x1, x2 at the capacity floor: min_available keeps 4 of 5 nodes (80%) in service, and nodes went out of service since they were taken; out of service by someone else: x3 (down). They are drained when a node returns to service",
        ),
        (
            Said::HeldAtFloor {
                floor: floor(None),
                in_service: 3,
                out: vec![(node("x1"), "failed".to_string())],
                more: 0,
            },
            "Holding at the capacity floor: min_available keeps 4 of 5 nodes in service, 3 are; out of service: x1 (failed). The next node is taken when one returns",
        ),
        (
            Said::HeldAtFloor {
                floor: floor(Some(12.5)),
                in_service: 3,
                out: vec![
                    (node("x1"), "draining by this session".to_string()),
                    (node("x2"), "failed".to_string()),
                ],
                more: 4,
            },
            "Holding at the capacity floor: min_available keeps 4 of 5 nodes (12.5%) in service, 3 are; out of service: x1 (draining by this session), x2 (failed), and 4 more. The next node is taken when one returns",
        ),
    ]);
}

#[test]
fn reverting_and_gates() {
    let reasons = || vec!["a".to_string(), "b".to_string()];
    assert_says(vec![
        (
            Said::Reverting {
                count: 3,
                template: "old".to_string(),
                batch: 2,
            },
            "Reverting (revert_upgraded_on_halt): booting the 3 nodes this session upgraded back to template 'old', at most 2 at a time",
        ),
        (
            Said::RevertStepStarted {
                step: 4,
                nodes: nodes(&["x1", "x2"]),
                template: "old".to_string(),
            },
            "Step 4 (revert) started: draining 2 nodes (x1, x2) to boot them back to template 'old'",
        ),
        (
            Said::RevertLeavesHeld {
                node: NodeId::from("x3"),
                why: "down: \"bad DIMM\"".to_string(),
            },
            "Node x3: out of service by someone else, down: \"bad DIMM\": left upgraded, not booted back (foreign_out_of_service: skip)",
        ),
        (
            Said::GatesCleared {
                held: Duration::from_secs(125),
            },
            "Alert gates clear (held 2m 5s): taking nodes again",
        ),
        (
            Said::Gated {
                reasons: reasons(),
                max_hold: None,
            },
            "Held by alert gates: a; b. No new node is taken and nodes in flight finish; the session goes on when the gates clear",
        ),
        (
            Said::Gated {
                reasons: reasons(),
                max_hold: Some(Duration::from_secs(3600)),
            },
            "Held by alert gates: a; b. No new node is taken and nodes in flight finish; the session goes on when the gates clear, or halts after 1h (max_hold)",
        ),
        (
            Said::StillGated { reasons: reasons() },
            "Still held by alert gates: a; b",
        ),
    ]);
}

#[test]
fn hooks_said() {
    let hook = || "pre_boot hook 'x'".to_string();
    assert_says(vec![
        (
            Said::HookStarted {
                subject: Subject::Node(node("x1")),
                hook: hook(),
            },
            "Node x1: pre_boot hook 'x' started",
        ),
        (
            Said::HookRunAgain {
                subject: Subject::Step(2),
                hook: hook(),
            },
            "Step 2: pre_boot hook 'x' was running when the server stopped; running it again (idempotent)",
        ),
        (
            Said::HookFinished {
                subject: Subject::Step(2),
                hook: hook(),
            },
            "Step 2: pre_boot hook 'x' finished",
        ),
        (
            Said::HookFailed {
                subject: Subject::Node(node("x1")),
                reason: "why".to_string(),
            },
            "Node x1: why",
        ),
        (
            Said::HookFailedEarlierBoot {
                subject: Subject::Node(node("x1")),
                reason: "why".to_string(),
            },
            "Node x1: why (after an earlier boot; it runs again after the node's next boot)",
        ),
    ]);
}

#[test]
fn steering_tags_and_errors() {
    let every = Duration::from_secs(30);
    assert_says(vec![
        (
            Said::WeightsLost,
            "The workload manager lost scheduling weights this session set (a restart or reconfiguration of it resets them): they are set again",
        ),
        (
            Said::WeightsUnsupported {
                error: "e".to_string(),
            },
            "steer_jobs: the workload manager cannot set node weights (e); new jobs are not steered to upgraded nodes",
        ),
        (
            Said::FeaturesLost,
            "The workload manager lost node features this session set (a restart or reconfiguration of it resets them): they are set again",
        ),
        (
            Said::FeaturesUnsupported {
                error: "e".to_string(),
            },
            "image_features: the workload manager cannot set node features (e); upgraded nodes are not tagged with their image",
        ),
        (
            Said::ReservationsLost,
            "The workload manager lost reservations this session set (one made just before it crashed may not have been saved): they are set again",
        ),
        (
            Said::ReservationsUnsupported {
                error: "e".to_string(),
            },
            "reserve_ahead: the workload manager cannot reserve nodes (e); nodes still to upgrade are not kept for their turn",
        ),
        (
            Said::Retrying {
                action: "draining 2 nodes".to_string(),
                error: "e".to_string(),
                every,
            },
            "Draining 2 nodes failed: e; retrying every 30s",
        ),
        (
            Said::RetryingAsDescribed {
                action: "reading the features of 2 nodes".to_string(),
                error: "e".to_string(),
                every,
            },
            "reading the features of 2 nodes failed: e; retrying every 30s",
        ),
        (
            Said::RetryingNow {
                action: "resuming 1 node".to_string(),
                error: "e".to_string(),
            },
            "Resuming 1 node failed, retrying: e",
        ),
        (
            Said::WorkloadUnreadable {
                error: "e".to_string(),
                every,
            },
            "Could not read node states from the workload manager: e; retrying every 30s",
        ),
        (
            Said::BootProgressUnreadable {
                step: 1,
                error: "e".to_string(),
                every,
            },
            "Could not read the boot progress of step 1: e; retrying every 30s",
        ),
        (
            Said::StoreRefused {
                error: "e".to_string(),
            },
            "The session store refused to save this session (e); nothing more is done until it takes writes again (retried with backoff, and at once on resume)",
        ),
    ]);
}
