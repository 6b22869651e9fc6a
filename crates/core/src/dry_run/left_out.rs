//! What a plan leaves out and holds to, for the people reading it (issue
//! 21): the nodes the session would leave alone and why (someone else holds
//! them under `foreign_out_of_service: skip`, or they already run the target
//! image under `skip_matching`), the capacity floor as it applies to this
//! group (with how a percentage was rounded), and the boot rate.
//!
//! The skipped nodes are the engine's own decisions in the simulated run,
//! not a second reading of the policy, so the plan cannot disagree with
//! what a session would do.

use serde::{Deserialize, Serialize};

use crate::node::NodeId;
use crate::rollout::{FailureBudget, NodePhase, RolloutPolicy, RolloutState};

/// A node the session would not upgrade, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SkippedNode {
    /// The node.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub node: NodeId,
    /// Why, as the session would report it ("already on the target image",
    /// "out of service by someone else, drained (\"bad DIMM\"): left alone").
    pub reason: String,
}

/// The capacity floor (`min_available`) as it applies to the starting group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedFloor {
    /// How many nodes must stay in service.
    pub min_in_service: usize,
    /// Of how many (the starting group).
    pub group: usize,
    /// How many may be out of service at once, for any reason.
    pub may_be_out: usize,
    /// The floor as asked for: `"90%"` or `"4"`.
    pub requested: String,
    /// The floor in words, with how a percentage was rounded: "90% of 5
    /// nodes is 4.5, rounded down to 4 in service: at most 1 node out of
    /// service at a time".
    pub effective: String,
}

/// The nodes `state` (a finished simulated run) left alone, with why.
pub(super) fn skipped_nodes(state: &RolloutState) -> Vec<SkippedNode> {
    state
        .nodes
        .iter()
        .filter(|record| record.phase == NodePhase::Skipped)
        .map(|record| SkippedNode {
            node: record.id.clone(),
            reason: record
                .reason
                .clone()
                .unwrap_or_else(|| "skipped".to_string()),
        })
        .collect()
}

/// The floor `policy` sets for a group of `group` nodes, if any.
pub(super) fn planned_floor(policy: &RolloutPolicy, group: usize) -> Option<PlannedFloor> {
    let budget = policy.min_available?;
    let min_in_service = budget.allowed(group).min(group);
    let may_be_out = group - min_in_service;
    let (requested, exact) = match budget {
        FailureBudget::Count(count) => (count.to_string(), None),
        FailureBudget::Percent(percent) => (
            format!("{percent}%"),
            Some((group as f64) * percent / 100.0),
        ),
    };
    let nodes = |count: usize| format!("{count} node{}", if count == 1 { "" } else { "s" });
    let kept = match exact {
        Some(exact) if exact.fract() != 0.0 => format!(
            "{requested} of {} is {exact}, rounded down to {min_in_service} in service",
            nodes(group)
        ),
        Some(_) => format!(
            "{requested} of {} is {min_in_service} in service",
            nodes(group)
        ),
        None => format!("{min_in_service} of {} in service", nodes(group)),
    };
    let out = if may_be_out == 0 {
        "no node may be taken out of service, so the session would hold from the start".to_string()
    } else {
        format!(
            "at most {} out of service at a time, for any reason",
            nodes(may_be_out)
        )
    };
    Some(PlannedFloor {
        min_in_service,
        group,
        may_be_out,
        requested,
        effective: format!("{kept}: {out}"),
    })
}

/// The rationale's lines for the floor and the boot rate of `policy`, with
/// `step_size` nodes a step.
pub(super) fn rationale(floor: Option<&PlannedFloor>, policy: &RolloutPolicy) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(floor) = floor {
        lines.push(format!(
            "Capacity floor (min_available {}): {}.",
            floor.requested, floor.effective
        ));
    }
    if let Some(rate) = policy.max_boots_per_minute {
        lines.push(format!(
            "Boot rate: at most {rate} node boot(s) requested in any minute (max_boots_per_minute); a larger step boots over several minutes."
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_floor(floor: FailureBudget) -> RolloutPolicy {
        RolloutPolicy {
            min_available: Some(floor),
            ..RolloutPolicy::default()
        }
    }

    #[test]
    fn a_percentage_floor_says_how_it_was_rounded() {
        let floor = planned_floor(&with_floor(FailureBudget::Percent(90.0)), 5).unwrap();
        assert_eq!(
            (floor.min_in_service, floor.group, floor.may_be_out),
            (4, 5, 1)
        );
        assert_eq!(floor.requested, "90%");
        assert_eq!(
            floor.effective,
            "90% of 5 nodes is 4.5, rounded down to 4 in service: at most 1 node out of service at a time, for any reason"
        );
        let even = planned_floor(&with_floor(FailureBudget::Percent(50.0)), 10).unwrap();
        assert_eq!(
            even.effective,
            "50% of 10 nodes is 5 in service: at most 5 nodes out of service at a time, for any reason"
        );
        let count = planned_floor(&with_floor(FailureBudget::Count(3)), 3).unwrap();
        assert_eq!(count.may_be_out, 0);
        assert!(
            count.effective.contains("would hold"),
            "{}",
            count.effective
        );
        assert_eq!(planned_floor(&RolloutPolicy::default(), 5), None);
    }

    /// The whole plan: a node an administrator drained (under `skip`) and
    /// one already on the target image (under `skip_matching`) are listed
    /// with why and never planned into a step; the floor and the rate are
    /// given with their effective numbers.
    #[test]
    fn a_plan_shows_the_nodes_it_skips_the_floor_and_the_rate() {
        use super::super::{DryRunAssumptions, DryRunInput, forecast};
        use crate::ports::{NodeImage, WorkloadNode, WorkloadState};
        use crate::rollout::ForeignOutOfService;
        use crate::session::SessionSpec;
        use crate::time::Timestamp;

        let members: Vec<NodeId> = ["n1", "n2", "n3", "n4", "n5"]
            .into_iter()
            .map(NodeId::from)
            .collect();
        let policy = RolloutPolicy {
            foreign_out_of_service: ForeignOutOfService::Skip,
            skip_matching: true,
            max_boots_per_minute: Some(3),
            ..with_floor(FailureBudget::Percent(70.0))
        };
        let input = DryRunInput {
            spec: SessionSpec {
                failed_label: "failed".into(),
                starting_label: "compute".into(),
                upgrade_step_size: 1,
                upgrade_template_id: "image-2".into(),
                upgrading_label: "upgrading".into(),
                workload_manager_type: "slurm".into(),
                policy: None,
            },
            policy,
            members: members.clone(),
            observed: vec![WorkloadNode {
                node: NodeId::from("n2"),
                state: WorkloadState::Drained,
                responding: true,
                jobs_end_by: None,
                reason: Some("bad DIMM".into()),
            }],
            now: Timestamp::from_secs(1_000_000),
            queue: None,
            queue_note: None,
            images: vec![
                NodeImage {
                    node: NodeId::from("n4"),
                    image: Some("image-2".into()),
                },
                NodeImage {
                    node: NodeId::from("n5"),
                    image: Some("image-1".into()),
                },
            ],
            images_note: None,
        };
        let plan = forecast(input, &DryRunAssumptions::default());
        let skipped: Vec<(&str, &str)> = plan
            .skipped
            .iter()
            .map(|skipped| (skipped.node.as_str(), skipped.reason.as_str()))
            .collect();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert_eq!(skipped[0].0, "n2");
        assert!(skipped[0].1.contains("bad DIMM"), "{skipped:?}");
        assert_eq!(skipped[1].0, "n4");
        assert!(
            skipped[1].1.contains("already on the target image"),
            "{skipped:?}"
        );
        let planned: Vec<&str> = plan
            .steps
            .iter()
            .flat_map(|step| step.nodes.iter().map(NodeId::as_str))
            .collect();
        assert_eq!(planned, ["n1", "n3", "n5"], "{plan:#?}");
        let floor = plan.floor.as_ref().unwrap();
        assert_eq!((floor.min_in_service, floor.may_be_out), (3, 2));
        assert!(
            floor
                .effective
                .starts_with("70% of 5 nodes is 3.5, rounded down to 3"),
            "{floor:?}"
        );
        assert_eq!(plan.max_boots_per_minute, Some(3));
        let said = plan.rationale.join("\n");
        assert!(
            said.contains("Capacity floor (min_available 70%)"),
            "{said}"
        );
        assert!(said.contains("at most 3 node boot(s)"), "{said}");
        // Fields a CRUS client reads are there as before; the new ones are
        // additive.
        let json = serde_json::to_value(&plan).unwrap();
        for field in ["steps", "nodes", "step_size", "estimated_duration"] {
            assert!(json.get(field).is_some(), "{field} missing: {json}");
        }
        assert_eq!(json["skipped"][0]["node"], "n2");
        assert_eq!(json["floor"]["min_in_service"], 3);
        assert_eq!(json["max_boots_per_minute"], 3);
    }

    #[test]
    fn the_rationale_names_the_floor_and_the_rate() {
        let policy = RolloutPolicy {
            max_boots_per_minute: Some(2),
            ..with_floor(FailureBudget::Count(1))
        };
        let floor = planned_floor(&policy, 4);
        let lines = rationale(floor.as_ref(), &policy);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("min_available 1"), "{lines:?}");
        assert!(lines[1].contains("at most 2 node boot(s)"), "{lines:?}");
        assert!(rationale(None, &RolloutPolicy::default()).is_empty());
    }
}
