//! `SessionSpec`: the six fields of a CRUS `POST /session` body, and their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PolicyRequest;
use super::policy_request::policy_member;

/// Workload manager types a session may name. CRUS accepted only `slurm`.
pub const SUPPORTED_WORKLOAD_MANAGERS: &[&str] = &["slurm"];

/// A request to upgrade every node of `starting_label`, `upgrade_step_size` at a time.
///
/// Field names and JSON shape are exactly those of the CRUS `Session` schema.
// The OpenAPI document names it `Session`, as CRUS did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Session))]
pub struct SessionSpec {
    /// Inventory group that receives every node whose upgrade failed.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, example = "nodes-that-failed")
    )]
    pub failed_label: String,
    /// Inventory group holding every node to upgrade.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, example = "nodes-to-upgrade")
    )]
    pub starting_label: String,
    /// Largest number of nodes taken out of service at once. May be left out
    /// when `policy.step_percent` is given; the effective number is then
    /// filled in when the session is created.
    #[cfg_attr(
        feature = "openapi",
        schema(format = Int64, minimum = 1, maximum = 4294967295_u32, example = 30)
    )]
    pub upgrade_step_size: u32,
    /// Boot orchestrator template (BOS session template) the nodes are booted with.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, example = "my-bos-session-template")
    )]
    pub upgrade_template_id: String,
    /// Inventory group that holds the nodes of the step being upgraded.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, example = "nodes-currently-upgrading")
    )]
    pub upgrading_label: String,
    /// Workload manager type; only `slurm` is supported, as in CRUS.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, example = "slurm"))]
    pub workload_manager_type: String,
    /// Rollout controls beyond CRUS (an addition; absent, the session runs as
    /// CRUS ran it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRequest>,
}

/// Validation failures keyed by field name, each with one or more messages
/// (the shape of the `errors` member of CRUS's 422 problem body).
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// The three fields naming inventory groups.
const LABEL_FIELDS: [&str; 3] = ["starting_label", "upgrading_label", "failed_label"];

/// Why `label` is not a group label HSM would take, if it is not.
///
/// HSM lower-cases a label (`NormalizeGroupField`) and then refuses it unless
/// it matches `^[-a-z0-9:._]+$` (`VerifyGroupField`). crus applies that rule
/// to every inventory, so a session is valid or not whatever the backend;
/// [`SessionSpec::from_json`] lower-cases first, as HSM did for CRUS, so
/// only a label already lower-cased can fail here on case.
pub fn label_rule_error(label: &str) -> Option<String> {
    let allowed = |character: char| {
        character.is_ascii_lowercase() || character.is_ascii_digit() || "-:._".contains(character)
    };
    if !label.is_empty() && label.chars().all(allowed) {
        return None;
    }
    Some(format!(
        "Not a valid group label: {label:?}. Labels are lower-cased (as HSM does: 'Compute' names the group 'compute') and may then hold only a-z, 0-9, '-', ':', '.' and '_' (HSM's rule ^[-a-z0-9:._]+$)."
    ))
}

const STRING_FIELDS: [&str; 5] = [
    "failed_label",
    "starting_label",
    "upgrade_template_id",
    "upgrading_label",
    "workload_manager_type",
];

impl SessionSpec {
    /// Whether the session asks for a switch of its policy: as its own
    /// policy request says (`requested`), or else as the server's default
    /// (`otherwise`).
    pub fn asks_for(
        &self,
        requested: impl FnOnce(&PolicyRequest) -> Option<bool>,
        otherwise: bool,
    ) -> bool {
        self.policy
            .as_ref()
            .and_then(requested)
            .unwrap_or(otherwise)
    }

    /// Builds a spec from a JSON body, reporting every schema problem at once
    /// (missing field, wrong type, empty string, step size below 1, unsupported
    /// workload manager, unknown field), the checks CRUS's schema made.
    pub fn from_json(body: &Value) -> Result<SessionSpec, FieldErrors> {
        let mut errors = FieldErrors::new();
        let Some(object) = body.as_object() else {
            errors.insert(
                "_schema".to_string(),
                vec!["The body must be a JSON object.".to_string()],
            );
            return Err(errors);
        };
        let mut strings = BTreeMap::new();
        for field in STRING_FIELDS {
            match object.get(field) {
                None | Some(Value::Null) => {
                    errors.insert(
                        field.to_string(),
                        vec!["Missing data for required field.".to_string()],
                    );
                }
                Some(Value::String(text)) if text.is_empty() => {
                    errors.insert(
                        field.to_string(),
                        vec!["Shorter than minimum length 1.".to_string()],
                    );
                }
                Some(Value::String(text)) => {
                    strings.insert(field, text.clone());
                }
                Some(_) => {
                    errors.insert(field.to_string(), vec!["Not a valid string.".to_string()]);
                }
            }
        }
        // HSM lower-cases labels before checking them, so a CRUS client's
        // "Compute" named the group "compute": crus keeps that meaning.
        for field in LABEL_FIELDS {
            if let Some(label) = strings.get_mut(field) {
                *label = label.to_lowercase();
                if let Some(error) = label_rule_error(label) {
                    errors.insert(field.to_string(), vec![error]);
                }
            }
        }
        if let Some(kind) = strings.get("workload_manager_type")
            && !SUPPORTED_WORKLOAD_MANAGERS.contains(&kind.as_str())
        {
            errors.insert(
                "workload_manager_type".to_string(),
                vec![format!(
                    "Must be one of: {}.",
                    SUPPORTED_WORKLOAD_MANAGERS.join(", ")
                )],
            );
        }
        let policy = match policy_member(object) {
            None => None,
            Some(Ok(policy)) => Some(policy),
            Some(Err(policy_errors)) => {
                errors.extend(policy_errors);
                None
            }
        };
        let has_step_percent = object
            .get("policy")
            .and_then(|policy| policy.get("step_percent"))
            .is_some_and(|percent| !percent.is_null());
        let step_size = match object.get("upgrade_step_size") {
            // Filled in from the percentage when the session is created.
            None | Some(Value::Null) if has_step_percent => Some(0),
            None | Some(Value::Null) => {
                errors.insert(
                    "upgrade_step_size".to_string(),
                    vec!["Missing data for required field.".to_string()],
                );
                None
            }
            Some(Value::Number(number)) => match number.as_i64() {
                Some(size) if size >= 1 => match u32::try_from(size) {
                    Ok(size) => Some(size),
                    Err(_) => {
                        errors.insert(
                            "upgrade_step_size".to_string(),
                            vec![format!("Must be less than or equal to {}.", u32::MAX)],
                        );
                        None
                    }
                },
                Some(_) => {
                    errors.insert(
                        "upgrade_step_size".to_string(),
                        vec!["Must be greater than or equal to 1.".to_string()],
                    );
                    None
                }
                None => {
                    errors.insert(
                        "upgrade_step_size".to_string(),
                        vec!["Not a valid integer.".to_string()],
                    );
                    None
                }
            },
            Some(_) => {
                errors.insert(
                    "upgrade_step_size".to_string(),
                    vec!["Not a valid integer.".to_string()],
                );
                None
            }
        };
        for key in object.keys() {
            if !STRING_FIELDS.contains(&key.as_str())
                && key != "upgrade_step_size"
                && key != "policy"
            {
                errors.insert(key.clone(), vec!["Unknown field.".to_string()]);
            }
        }
        match (errors.is_empty(), step_size) {
            (true, Some(upgrade_step_size)) => {
                let mut take = |field: &str| strings.remove(field).unwrap_or_default();
                Ok(SessionSpec {
                    failed_label: take("failed_label"),
                    starting_label: take("starting_label"),
                    upgrade_step_size,
                    upgrade_template_id: take("upgrade_template_id"),
                    upgrading_label: take("upgrading_label"),
                    workload_manager_type: take("workload_manager_type"),
                    policy,
                })
            }
            _ => Err(errors),
        }
    }

    /// The `POST /session` body of this spec, as [`SessionSpec::from_json`]
    /// reads it back: a step size of 0 with `policy.step_percent` is left
    /// out (the server derives it from the percentage), any other value is
    /// sent as it is, for the server to accept or refuse.
    pub fn to_request_json(&self) -> Value {
        let mut body = serde_json::to_value(self).unwrap_or(Value::Null);
        let sized_by_percent = self
            .policy
            .as_ref()
            .is_some_and(|policy| policy.step_percent.is_some());
        if self.upgrade_step_size == 0
            && sized_by_percent
            && let Some(fields) = body.as_object_mut()
        {
            fields.remove("upgrade_step_size");
        }
        body
    }

    /// Checks a spec built in code the same way [`SessionSpec::from_json`] checks a body.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let value = serde_json::to_value(self).map_err(|error| {
            FieldErrors::from([("_schema".to_string(), vec![error.to_string()])])
        })?;
        Self::from_json(&value).map(|_| ())
    }

    /// Problems CRUS did not check but that would make the session fail later:
    /// each label must follow HSM's rule ([`label_rule_error`]; a spec built
    /// in code is not lower-cased for it), and the three labels must name
    /// three different groups.
    pub fn label_errors(&self) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let labels = [
            ("starting_label", &self.starting_label),
            ("upgrading_label", &self.upgrading_label),
            ("failed_label", &self.failed_label),
        ];
        for (index, (field, label)) in labels.iter().enumerate() {
            for (other_field, other_label) in &labels[..index] {
                if label.eq_ignore_ascii_case(other_label) {
                    errors.entry(field.to_string()).or_default().push(format!(
                        "Must differ from {other_field}: both name the group '{label}'."
                    ));
                }
            }
        }
        for (field, label) in &labels {
            if let Some(error) = label_rule_error(label) {
                errors.entry(field.to_string()).or_default().push(error);
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seed_body() -> Value {
        json!({
            "failed_label": "nodes-that-failed",
            "starting_label": "nodes-to-upgrade",
            "upgrade_step_size": 30,
            "upgrade_template_id": "my-bos-session-template",
            "upgrading_label": "nodes-currently-upgrading",
            "workload_manager_type": "slurm"
        })
    }

    #[test]
    fn request_bodies_leave_out_a_step_size_the_percentage_gives() {
        let mut spec = SessionSpec::from_json(&seed_body()).unwrap();
        assert_eq!(spec.to_request_json(), seed_body());
        spec.upgrade_step_size = 0;
        spec.policy = Some(PolicyRequest {
            step_percent: Some(25.0),
            ..PolicyRequest::default()
        });
        let body = spec.to_request_json();
        assert!(body.get("upgrade_step_size").is_none(), "{body}");
        assert_eq!(SessionSpec::from_json(&body).unwrap(), spec);
        // Without the percentage a 0 is sent, for the server to refuse.
        spec.policy = None;
        assert_eq!(spec.to_request_json()["upgrade_step_size"], 0);
    }

    #[test]
    fn seed_body_round_trips() {
        let spec = SessionSpec::from_json(&seed_body()).unwrap();
        assert_eq!(spec.upgrade_step_size, 30);
        assert_eq!(serde_json::to_value(&spec).unwrap(), seed_body());
        assert!(spec.label_errors().is_empty());
    }

    #[test]
    fn reports_every_schema_problem_by_field() {
        let body = json!({
            "failed_label": "",
            "starting_label": 7,
            "upgrade_step_size": 0,
            "upgrade_template_id": "t",
            "workload_manager_type": "pbs",
            "surprise": true
        });
        let errors = SessionSpec::from_json(&body).unwrap_err();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "failed_label",
                "starting_label",
                "surprise",
                "upgrade_step_size",
                "upgrading_label",
                "workload_manager_type"
            ]
        );
        assert_eq!(
            errors["upgrading_label"],
            ["Missing data for required field."]
        );
        assert_eq!(
            errors["upgrade_step_size"],
            ["Must be greater than or equal to 1."]
        );
    }

    #[test]
    fn rejects_non_integer_step_sizes() {
        for bad in [json!(1.5), json!("3"), json!(-2), json!(u64::MAX)] {
            let mut body = seed_body();
            body["upgrade_step_size"] = bad.clone();
            let errors = SessionSpec::from_json(&body).unwrap_err();
            assert!(errors.contains_key("upgrade_step_size"), "{bad} accepted");
        }
    }

    #[test]
    fn labels_are_lower_cased_as_hsm_does() {
        let mut body = seed_body();
        body["starting_label"] = json!("Compute");
        body["upgrading_label"] = json!("CRUS-Upgrading");
        let spec = SessionSpec::from_json(&body).unwrap();
        assert_eq!(spec.starting_label, "compute");
        assert_eq!(spec.upgrading_label, "crus-upgrading");
        assert!(spec.label_errors().is_empty());
    }

    #[test]
    fn labels_hsm_would_refuse_are_refused_by_field() {
        for bad in [
            "compute nodes",
            "grp/1",
            "x\u{e9}",
            "a,b",
            " compute",
            "nodes*",
        ] {
            for field in LABEL_FIELDS {
                let mut body = seed_body();
                body[field] = json!(bad);
                let errors = SessionSpec::from_json(&body).unwrap_err();
                assert_eq!(errors.keys().collect::<Vec<_>>(), [field], "{bad}");
                assert!(errors[field][0].contains("^[-a-z0-9:._]+$"), "{errors:?}");
            }
        }
        for good in ["a", "compute-1", "rack:1.2_b", "0"] {
            let mut body = seed_body();
            body["starting_label"] = json!(good);
            assert!(SessionSpec::from_json(&body).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_spec_built_in_code_must_follow_the_label_rule() {
        let mut spec = SessionSpec::from_json(&seed_body()).unwrap();
        spec.failed_label = "Failed Nodes".to_string();
        let errors = spec.label_errors();
        assert!(errors["failed_label"][0].contains("Not a valid group label"));
    }

    #[test]
    fn finds_labels_that_are_not_distinct() {
        let mut spec = SessionSpec::from_json(&seed_body()).unwrap();
        spec.failed_label = "Nodes-To-Upgrade".to_string();
        let errors = spec.label_errors();
        assert_eq!(errors.len(), 1);
        assert!(errors["failed_label"][0].contains("starting_label"));
    }
}
