//! `[file]` of `crus.toml`: where the inventory file crus owns is.

use std::path::PathBuf;

use serde::Deserialize;

/// `[file]`: the inventory file crus owns.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileInventorySettings {
    /// The JSON file with the nodes and groups.
    pub path: PathBuf,
}

impl Default for FileInventorySettings {
    fn default() -> Self {
        FileInventorySettings {
            path: PathBuf::from("inventory.json"),
        }
    }
}
