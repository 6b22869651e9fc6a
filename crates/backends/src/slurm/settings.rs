//! `[slurm]` and `[slurm_reboot]` of `crus.toml`, read with serde and turned
//! into a [`SlurmConfig`] and a [`SlurmRebootConfig`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crus_core::node::NodeId;
use serde::Deserialize;

use super::{NodeNaming, SlurmConfig, SlurmRebootConfig};
use crate::setting_choice::setting_choice;
use crate::settings::{InvalidSetting, humantime_duration};

setting_choice!(
    /// `slurm.node_names`: how node ids become Slurm node names.
    SlurmNodeNames, "slurm.node_names", {
        /// A node's id is its Slurm name.
        Identity = "identity",
        /// `nid000001` from each node's NID in the inventory, as Cray
        /// systems name them.
        Nid = "nid",
    }
);

/// `[slurm]`: how Slurm's commands are run and how nodes are named to it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSettings {
    /// The `slurm.conf` to use (`SLURM_CONF`); Slurm's default when absent.
    pub conf: Option<PathBuf>,
    /// Where `scontrol` and `squeue` are; `PATH` when absent.
    pub bin_dir: Option<PathBuf>,
    /// How long one Slurm command may run.
    #[serde(with = "humantime_duration")]
    pub command_timeout: Duration,
    /// How node ids become Slurm names: `identity`, or `nid` (`nid000001` from
    /// each node's NID in the inventory, as Cray systems name them).
    pub node_names: SlurmNodeNames,
}

impl Default for SlurmSettings {
    fn default() -> Self {
        SlurmSettings {
            conf: None,
            bin_dir: None,
            command_timeout: SlurmConfig::default().command_timeout,
            node_names: SlurmNodeNames::Identity,
        }
    }
}

impl SlurmSettings {
    /// Checks what the types alone do not: nothing today (an unknown
    /// `node_names` is refused while the file is read), kept so every
    /// section is checked alike.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        Ok(())
    }

    /// Whether Slurm names come from the nodes' NIDs, which the inventory
    /// must then give to [`to_config`](Self::to_config).
    pub fn names_from_nids(&self) -> bool {
        self.node_names == SlurmNodeNames::Nid
    }

    /// The settings of the Slurm backends; `nids` are the nodes' NIDs, read
    /// from the inventory when [`names_from_nids`](Self::names_from_nids).
    pub fn to_config(
        &self,
        nids: Option<HashMap<NodeId, u32>>,
    ) -> Result<SlurmConfig, InvalidSetting> {
        self.check()?;
        let node_names = match (self.names_from_nids(), nids) {
            (true, Some(nids)) => NodeNaming::NidFromInventory(nids),
            (true, None) => {
                return Err(InvalidSetting::new(
                    "slurm.node_names",
                    "\"nid\" needs backends.inventory = \"file\" or \"hsm\"",
                ));
            }
            (false, _) => NodeNaming::Identity,
        };
        Ok(SlurmConfig {
            bin_dir: self.bin_dir.clone(),
            conf: self.conf.clone(),
            command_timeout: self.command_timeout,
            node_names,
        })
    }
}

/// `[slurm_reboot]`: booting with `scontrol reboot`: the template a session
/// names is written into the reboot reason as `image=<template>`, for the
/// site's `RebootProgram` to boot that image.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmRebootSettings {
    /// The templates (images) the `RebootProgram` can boot; a boot naming
    /// another is refused before any node reboots. Empty: any one-word name.
    pub templates: Vec<String>,
    /// How far a node's clock may be behind crus's and its new `BootTime`
    /// still count as the reboot crus asked for.
    #[serde(with = "humantime_duration")]
    pub clock_skew: Duration,
    /// The boot timeout of sessions whose policy sets none, unless
    /// `rollout.boot_timeout` is set; keep it above slurm.conf's
    /// `ResumeTimeout`. Absent: [`SlurmRebootSettings::DEFAULT_BOOT_TIMEOUT`].
    #[serde(with = "crate::settings::humantime_duration_option")]
    pub boot_timeout: Option<Duration>,
}

impl Default for SlurmRebootSettings {
    fn default() -> Self {
        SlurmRebootSettings {
            templates: Vec::new(),
            clock_skew: SlurmRebootConfig::default().clock_skew,
            boot_timeout: None,
        }
    }
}

impl SlurmRebootSettings {
    /// slurmctld marks a node DOWN ("reboot timed out") when it has not come
    /// back within slurm.conf's `ResumeTimeout` (checked on a coarse timer).
    /// crus's timeout should end later, so the node fails with Slurm's
    /// verdict rather than crus's; sites that reboot through Slurm commonly
    /// set `ResumeTimeout` between 10 and 30 minutes.
    pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(35 * 60);

    /// The boot timeout of sessions whose policy sets none (unless the
    /// server sets one for all): `boot_timeout`, or the default.
    pub fn boot_timeout(&self) -> Duration {
        self.boot_timeout.unwrap_or(Self::DEFAULT_BOOT_TIMEOUT)
    }

    /// Checks what the types alone do not.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.boot_timeout.is_some_and(|timeout| timeout.is_zero()) {
            return Err(InvalidSetting::new(
                "slurm_reboot.boot_timeout",
                "must be longer than zero",
            ));
        }
        if let Some(template) = self
            .templates
            .iter()
            .find(|template| template.is_empty() || template.contains(char::is_whitespace))
        {
            return Err(InvalidSetting::new(
                "slurm_reboot.templates",
                format!(
                    "{template:?} is not a template name: it is handed to the RebootProgram as one word"
                ),
            ));
        }
        Ok(())
    }

    /// The reboot settings of `backends.boot = "slurm-reboot"`.
    pub fn to_config(&self) -> SlurmRebootConfig {
        let templates = if self.templates.is_empty() {
            tracing::warn!(
                "slurm_reboot.templates is empty: any template a session names is handed to the RebootProgram; list the images it can boot to catch typos"
            );
            None
        } else {
            Some(self.templates.iter().cloned().collect())
        };
        SlurmRebootConfig {
            templates,
            clock_skew: self.clock_skew,
        }
    }
}
