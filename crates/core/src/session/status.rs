//! `SessionStatus`: the CRUS session as the API returns it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::SessionSpec;
use crate::rollout::RolloutPolicy;
use crate::time::Timestamp;

/// `api_version` of sessions created by this build.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `kind` of every session; CRUS has only this one.
pub const KIND: &str = "ComputeUpgradeSession";

/// A session's state, in CRUS's vocabulary. More detail goes in additive
/// fields, never in a new value here, so CRUS clients keep working.
///
/// CRUS answered a new session with `UPDATING` (its model's default state)
/// and so does crus. `CREATED` is listed because CRUS's API document lists
/// it and records stored by crus 0.1 may hold it; it is read, never written:
/// [`SessionState::served`] shows it as `UPDATING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = "UPDATING"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionState {
    /// Listed by CRUS's API but never assigned, by CRUS or by crus. Only
    /// records stored by crus 0.1 hold it (a session not yet picked up by a
    /// controller); it is served as [`SessionState::Updating`].
    Created,
    /// A controller is upgrading the nodes.
    Updating,
    /// Finished (see `completed` and `messages` for how it went).
    Ready,
    /// Deletion requested; the controller is stopping it safely.
    Deleting,
}

impl SessionState {
    /// The state as the API answers it: `CREATED`, which only old records
    /// hold, is `UPDATING`, what CRUS answered for a session not yet done.
    pub fn served(self) -> Self {
        match self {
            SessionState::Created => SessionState::Updating,
            other => other,
        }
    }

    /// The state as CRUS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Created => "CREATED",
            SessionState::Updating => "UPDATING",
            SessionState::Ready => "READY",
            SessionState::Deleting => "DELETING",
        }
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Where a session stands, in more detail than CRUS's `state` (an addition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionPhase {
    /// Taking and upgrading nodes.
    Running,
    /// Taking no new node until resumed (operator, or after a canary); nodes
    /// in flight finish.
    Paused,
    /// Taking no new node because more nodes failed than the failure budget
    /// allows, until an operator resumes (with a larger budget) or deletes it.
    Halted,
    /// Taking no new node while an alert gate of its policy blocks (or
    /// cannot be asked); nodes in flight finish, and it goes on when the
    /// gates clear.
    Gated,
    /// Being deleted: nodes not yet booted go back to service.
    Cancelling,
    /// Finished, every node upgraded.
    Succeeded,
    /// Finished with at least one node failed.
    Failed,
}

impl SessionPhase {
    /// The phase as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionPhase::Running => "running",
            SessionPhase::Paused => "paused",
            SessionPhase::Halted => "halted",
            SessionPhase::Gated => "gated",
            SessionPhase::Cancelling => "cancelling",
            SessionPhase::Succeeded => "succeeded",
            SessionPhase::Failed => "failed",
        }
    }
}

/// The status of a CRUS session, with exactly the CRUS field names and types.
///
/// Fields are declared in the order CRUS emits them, so the JSON matches the
/// published examples byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionStatus {
    /// Version of the API that created the session.
    #[cfg_attr(feature = "openapi", schema(example = "2.71.828"))]
    pub api_version: String,
    /// Whether the session has finished.
    pub completed: bool,
    /// Group receiving the nodes whose upgrade failed.
    #[cfg_attr(feature = "openapi", schema(example = "nodes-that-failed"))]
    pub failed_label: String,
    /// Always [`KIND`].
    #[cfg_attr(feature = "openapi", schema(example = "ComputeUpgradeSession"))]
    pub kind: String,
    /// Progress told in plain sentences, oldest first.
    pub messages: Vec<String>,
    /// Group holding every node to upgrade.
    #[cfg_attr(feature = "openapi", schema(example = "nodes-to-upgrade"))]
    pub starting_label: String,
    /// Current state.
    pub state: SessionState,
    /// The session's id (UUID v4).
    #[cfg_attr(
        feature = "openapi",
        schema(example = "c926acf6-b5c6-411e-ba6c-ea0448cab2ee")
    )]
    pub upgrade_id: Uuid,
    /// Largest number of nodes out of service at once.
    #[cfg_attr(
        feature = "openapi",
        schema(format = Int64, maximum = 4294967295_u32, example = 30)
    )]
    pub upgrade_step_size: u32,
    /// Boot template the nodes are booted with.
    #[cfg_attr(feature = "openapi", schema(example = "my-bos-session-template"))]
    pub upgrade_template_id: String,
    /// Group holding the nodes of the step being upgraded.
    #[cfg_attr(feature = "openapi", schema(example = "nodes-currently-upgrading"))]
    pub upgrading_label: String,
    /// Workload manager type.
    #[cfg_attr(feature = "openapi", schema(example = "slurm"))]
    pub workload_manager_type: String,
    /// crus addition: how many of the session's nodes are in each phase
    /// (`pending`, `draining`, `drained`, `booting`, `verifying`, `resuming`,
    /// `done`, `failing`, `failed`, `releasing`, `skipped`), plus `total`.
    /// Absent until the session has taken its snapshot of the starting group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = json!({"total": 128, "pending": 96, "draining": 16, "done": 15, "failed": 1})))]
    pub nodes: Option<BTreeMap<String, u64>>,
    /// crus addition: where the session stands beyond `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SessionPhase>,
    /// crus addition: the rollout policy as applied (request over server defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RolloutPolicy>,
    /// crus addition: when the session was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub created_at: Option<Timestamp>,
    /// crus addition: when a controller took it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<Timestamp>,
    /// crus addition: when it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// crus addition: while alert gates hold the session, what they say,
    /// since when, and when `max_hold` halts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_hold: Option<super::GateHoldStatus>,
    /// crus addition: while a halted session boots the nodes it upgraded
    /// back to the rollback template (`revert_upgraded_on_halt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverting: Option<super::RevertStatus>,
}

impl SessionStatus {
    /// The status of a session just created from `spec`: `UPDATING`, as
    /// CRUS answered a `POST /session`.
    pub fn created(upgrade_id: Uuid, spec: &SessionSpec) -> Self {
        SessionStatus {
            api_version: API_VERSION.to_string(),
            completed: false,
            failed_label: spec.failed_label.clone(),
            kind: KIND.to_string(),
            messages: Vec::new(),
            starting_label: spec.starting_label.clone(),
            state: SessionState::Updating,
            upgrade_id,
            upgrade_step_size: spec.upgrade_step_size,
            upgrade_template_id: spec.upgrade_template_id.clone(),
            upgrading_label: spec.upgrading_label.clone(),
            workload_manager_type: spec.workload_manager_type.clone(),
            nodes: None,
            phase: None,
            policy: None,
            created_at: None,
            started_at: None,
            finished_at: None,
            gate_hold: None,
            reverting: None,
        }
    }

    /// The spec this session was created from.
    pub fn spec(&self) -> SessionSpec {
        SessionSpec {
            failed_label: self.failed_label.clone(),
            starting_label: self.starting_label.clone(),
            upgrade_step_size: self.upgrade_step_size,
            upgrade_template_id: self.upgrade_template_id.clone(),
            upgrading_label: self.upgrading_label.clone(),
            workload_manager_type: self.workload_manager_type.clone(),
            // The request's policy is not kept, only the policy as applied.
            policy: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 201/200 example of the CRUS API document, as printed there.
    const SEED_EXAMPLE: &str = r#"{
"api_version": "2.71.828",
"completed": true,
"failed_label": "nodes-that-failed",
"kind": "ComputeUpgradeSession",
"messages": [
"string"
],
"starting_label": "nodes-to-upgrade",
"state": "UPDATING",
"upgrade_id": "c926acf6-b5c6-411e-ba6c-ea0448cab2ee",
"upgrade_step_size": 30,
"upgrade_template_id": "my-bos-session-template",
"upgrading_label": "nodes-currently-upgrading",
"workload_manager_type": "slurm"
}"#;

    #[test]
    fn seed_example_round_trips_unchanged() {
        let status: SessionStatus = serde_json::from_str(SEED_EXAMPLE).unwrap();
        assert_eq!(status.state, SessionState::Updating);
        let emitted = serde_json::to_string(&status).unwrap();
        let compact: String = SEED_EXAMPLE.split('\n').collect::<Vec<_>>().join("");
        assert_eq!(emitted, compact.replace(": ", ":"));
        let original: serde_json::Value = serde_json::from_str(SEED_EXAMPLE).unwrap();
        assert_eq!(serde_json::to_value(&status).unwrap(), original);
    }

    #[test]
    fn states_use_crus_spelling() {
        for (state, text) in [
            (SessionState::Created, "\"CREATED\""),
            (SessionState::Updating, "\"UPDATING\""),
            (SessionState::Ready, "\"READY\""),
            (SessionState::Deleting, "\"DELETING\""),
        ] {
            assert_eq!(serde_json::to_string(&state).unwrap(), text);
            assert_eq!(format!("\"{state}\""), text);
        }
    }

    #[test]
    fn created_is_still_read_and_served_as_updating() {
        let stored: SessionState = serde_json::from_str("\"CREATED\"").unwrap();
        assert_eq!(stored, SessionState::Created);
        assert_eq!(stored.served(), SessionState::Updating);
        for state in [
            SessionState::Updating,
            SessionState::Ready,
            SessionState::Deleting,
        ] {
            assert_eq!(state.served(), state);
        }
    }

    #[test]
    fn created_status_carries_the_spec() {
        let spec = SessionSpec {
            failed_label: "f".into(),
            starting_label: "s".into(),
            upgrade_step_size: 4,
            upgrade_template_id: "t".into(),
            upgrading_label: "u".into(),
            workload_manager_type: "slurm".into(),
            policy: None,
        };
        let status = SessionStatus::created(Uuid::new_v4(), &spec);
        assert_eq!(status.kind, KIND);
        assert_eq!(status.api_version, API_VERSION);
        assert_eq!(status.state, SessionState::Updating);
        assert!(!status.completed);
        assert_eq!(status.spec(), spec);
    }
}
