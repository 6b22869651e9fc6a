//! The Redfish `ComputerSystem` resources crus reads: where a system is, its
//! names, its power state and the reset types it advertises; and which
//! system a node's selector names.

use crus_core::ports::PowerState;
use serde_json::Value;

/// The parts of one `ComputerSystem` crus uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemInfo {
    /// Its URI (`@odata.id`), e.g. `/redfish/v1/Systems/<uuid>`.
    pub(crate) path: String,
    /// `Id`.
    pub(crate) id: String,
    /// `Name`.
    pub(crate) name: String,
    /// `UUID`.
    pub(crate) uuid: String,
    /// `PowerState` as the BMC wrote it (`On`, `Off`, `PoweringOn`, ...).
    pub(crate) power_state: String,
    /// Where `ComputerSystem.Reset` is posted.
    pub(crate) reset_target: String,
    /// `ResetType@Redfish.AllowableValues`; `None` when the system does not
    /// advertise them (so any type may be tried).
    pub(crate) allowed: Option<Vec<String>>,
}

impl SystemInfo {
    /// Reads a `ComputerSystem` fetched from `fetched_at`.
    pub(crate) fn parse(fetched_at: &str, body: &Value) -> SystemInfo {
        let text = |value: &Value| value.as_str().unwrap_or("").to_string();
        let path = body["@odata.id"]
            .as_str()
            .unwrap_or(fetched_at)
            .trim_end_matches('/')
            .to_string();
        let reset = &body["Actions"]["#ComputerSystem.Reset"];
        let reset_target = reset["target"].as_str().map_or_else(
            || format!("{path}/Actions/ComputerSystem.Reset"),
            str::to_string,
        );
        let allowed = reset["ResetType@Redfish.AllowableValues"]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            });
        SystemInfo {
            id: text(&body["Id"]),
            name: text(&body["Name"]),
            uuid: text(&body["UUID"]),
            power_state: text(&body["PowerState"]),
            path,
            reset_target,
            allowed,
        }
    }

    /// Whether `selector` names this system: its `Id`, `Name`, `UUID`, or the
    /// last segment of its URI.
    pub(crate) fn is(&self, selector: &str) -> bool {
        let last_segment = self.path.rsplit('/').next().unwrap_or("");
        [self.id.as_str(), &self.name, &self.uuid, last_segment]
            .iter()
            .any(|name| !name.is_empty() && *name == selector)
    }

    /// `PowerState` in the core vocabulary.
    pub(crate) fn state(&self) -> PowerState {
        power_state(&self.power_state)
    }

    /// How the system is named in messages: its name and id.
    pub(crate) fn label(&self) -> String {
        if self.name.is_empty() || self.name == self.id {
            self.id.clone()
        } else {
            format!("{} ({})", self.name, self.id)
        }
    }
}

/// A Redfish `PowerState` in the core vocabulary.
pub(crate) fn power_state(value: &str) -> PowerState {
    match value {
        "On" => PowerState::On,
        "Off" => PowerState::Off,
        "PoweringOn" => PowerState::PoweringOn,
        "PoweringOff" => PowerState::PoweringOff,
        // `Paused` and anything a BMC invents.
        _ => PowerState::Unknown,
    }
}

/// The member URIs of a `/redfish/v1/Systems` collection.
pub(crate) fn member_paths(collection: &Value) -> Vec<String> {
    collection["Members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .filter_map(|member| member["@odata.id"].as_str())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_system_is_read_and_named_by_id_name_uuid_or_uri() {
        let system = SystemInfo::parse(
            "/redfish/v1/Systems/node001",
            &json!({
                "@odata.id": "/redfish/v1/Systems/0000-1",
                "Id": "0000-1", "Name": "node001", "UUID": "0000-1",
                "PowerState": "PoweringOff",
                "Actions": {"#ComputerSystem.Reset": {
                    "target": "/redfish/v1/Systems/0000-1/Actions/ComputerSystem.Reset",
                    "ResetType@Redfish.AllowableValues": ["On", "ForceOff"]
                }}
            }),
        );
        assert_eq!(system.path, "/redfish/v1/Systems/0000-1");
        assert!(system.is("node001") && system.is("0000-1"));
        assert!(!system.is("node002") && !system.is(""));
        assert_eq!(system.state(), PowerState::PoweringOff);
        assert_eq!(system.allowed.as_deref().map(<[String]>::len), Some(2));
        assert_eq!(system.label(), "node001 (0000-1)");

        let bare = SystemInfo::parse("/redfish/v1/Systems/Self", &json!({"Id": "Self"}));
        assert_eq!(
            bare.reset_target,
            "/redfish/v1/Systems/Self/Actions/ComputerSystem.Reset"
        );
        assert_eq!(bare.allowed, None);
        assert_eq!(bare.state(), PowerState::Unknown);
    }
}
