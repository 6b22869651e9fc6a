//! Slurm's own reboot as the [`BootOrchestrator`], for plain Slurm clusters
//! without BOS: `scontrol reboot ASAP nextstate=RESUME` runs the site's
//! `RebootProgram` on each node once it has no job, and the node returns to
//! service when its slurmd registers with a fresh boot. A node someone else
//! took out of service (drained or down with a reason crus did not write)
//! is rebooted so that it comes back still out of service, never resumed by
//! Slurm (see `reboot/held.rs`).
//!
//! # What a template is here
//!
//! Slurm reboots a node; it does not choose what it boots. The template is the
//! name of the image the site's `RebootProgram` switches the node to before it
//! reboots (a PXE/iPXE entry, a kernel and initramfs pair, a `grub-reboot`
//! target, ...). crus hands it over in the reboot reason, which every node
//! can read from Slurm:
//!
//! ```text
//! Reason=crus <key> image=<template>            (Slurm appends " : reboot issued")
//! ```
//!
//! so a `RebootProgram` reads `scontrol show node $(hostname -s)`, takes the
//! word after `image=`, points the node's next boot at that image, and
//! reboots. A `RebootProgram` that only reboots ignores it. A template is one
//! word; [`SlurmRebootConfig::templates`] lists the ones the site's
//! `RebootProgram` knows, and any other is refused before a node is touched.
//!
//! # Progress
//!
//! Slurm keeps no record of a reboot besides per-node flags, so the boot id
//! carries the request time and the node list (see `reboot/handle.rs`), and
//! each node's progress is judged from its flags, state and `BootTime` (see
//! `reboot/progress.rs`). A node that does not come back is marked `DOWN`
//! with reason `... reboot timed out` by slurmctld after `ResumeTimeout`
//! (checked on a coarse timer: allow up to about 30 s more), and is reported
//! failed with that reason.
//!
//! # Idempotency
//!
//! - In one process, keys are remembered: `start_boot` with a key it has seen
//!   returns the first handle and runs nothing.
//! - After a restart, a reboot still pending under the key (reboot flag set,
//!   reason `crus <key> ...`) is found on the nodes and not asked for again.
//! - Remaining window: if the process stops after `scontrol reboot` ran but
//!   before its caller stored the handle, and the reboot has *finished* by the
//!   time the caller asks again (Slurm clears the reason when the node
//!   returns), nothing in Slurm names the key any more, and the nodes are
//!   rebooted a second time. The nodes were drained for the boot anyway, so
//!   the cost is one more reboot of them, not a lost job.
//!
//! # Cancelling
//!
//! `scontrol cancel_reboot` stops a reboot that is waiting for jobs to end
//! (`REBOOT_REQUESTED`). A reboot already issued to the node cannot be called
//! back, so [`cancel_boot`](BootOrchestrator::cancel_boot) cancels what is
//! still pending and lets the rest finish; cancelled nodes report failed.

mod handle;
mod held;
mod images;
mod progress;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::node::NodeId;
use crus_core::ports::{BootHandle, BootOrchestrator, BootRequest, NodeBootStatus, NodeImage};
use crus_core::time::Timestamp;

use super::SlurmConfig;
use super::command::{SlurmCommands, SlurmError};
use super::names::Names;
use handle::{BootId, can_carry, is_reason_of, is_word, reboot_reason};
use held::ways_back;
use progress::{RebootFacts, boot_state, parse_reboot_facts, reboot_cancellable, reboot_pending};

/// Settings of Slurm reboots beyond how to run Slurm's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmRebootConfig {
    /// The templates (images) the site's `RebootProgram` can boot. `None`
    /// accepts any one-word template, for a `RebootProgram` that ignores it;
    /// listing them catches a misspelt template before any node reboots.
    pub templates: Option<BTreeSet<String>>,
    /// How far a node's clock may be behind crus's clock: a node whose
    /// `BootTime` is at most this long before the reboot request still counts
    /// as rebooted. Real reboots take minutes, so this only needs to cover
    /// clock skew.
    pub clock_skew: Duration,
}

impl Default for SlurmRebootConfig {
    fn default() -> Self {
        SlurmRebootConfig {
            templates: None,
            // NTP keeps cluster clocks within milliseconds; 10 s is generous
            // and still far shorter than any real reboot.
            clock_skew: Duration::from_secs(10),
        }
    }
}

/// Reboots nodes through `scontrol reboot`; see the module documentation.
#[derive(Debug)]
pub struct SlurmRebootOrchestrator {
    commands: SlurmCommands,
    names: Names,
    config: SlurmRebootConfig,
    /// Handles of the boots this process started or found, by key. Locked for
    /// the whole of `start_boot`, so two calls with one key cannot both
    /// reboot.
    started: tokio::sync::Mutex<HashMap<String, BootHandle>>,
}

impl SlurmRebootOrchestrator {
    /// An orchestrator running Slurm's commands as `slurm` says, with the
    /// reboot settings `config`.
    pub fn new(slurm: SlurmConfig, config: SlurmRebootConfig) -> Self {
        SlurmRebootOrchestrator {
            commands: SlurmCommands::new(&slurm),
            names: Names::new(&slurm.node_names),
            config,
            started: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    fn allows(&self, template: &str) -> bool {
        is_word(template)
            && self
                .config
                .templates
                .as_ref()
                .is_none_or(|templates| templates.contains(template))
    }

    /// Refuses a template that is not one word (Invalid) or not listed (NotFound).
    fn check_template(&self, template: &str) -> Result<()> {
        if !is_word(template) {
            return Err(Error::invalid(format!(
                "template {template:?} cannot be handed to the RebootProgram: it must be one word"
            )));
        }
        if let Some(templates) = &self.config.templates
            && !templates.contains(template)
        {
            let known: Vec<&str> = templates.iter().map(String::as_str).collect();
            return Err(Error::not_found(format!(
                "template {template:?} (the Slurm reboot templates are: {})",
                known.join(", ")
            )));
        }
        Ok(())
    }

    /// Every node `scontrol -o show node` lists, by Slurm name (all of them:
    /// naming one unknown node would make scontrol fail for the whole list).
    async fn show_nodes(&self) -> Result<HashMap<String, RebootFacts>, SlurmError> {
        let output = self
            .commands
            .run(
                "scontrol",
                &["-o".to_string(), "show".into(), "node".into()],
            )
            .await?;
        Ok(parse_reboot_facts(&output)
            .into_iter()
            .map(|facts| (facts.name.clone(), facts))
            .collect())
    }

    /// Finds the reboot pending under `request.key`, or asks Slurm for it.
    async fn find_or_reboot(&self, request: &BootRequest) -> Result<BootHandle> {
        let names = self.names.slurm_names(&request.nodes)?;
        let handle = |requested_at: Timestamp| BootHandle {
            key: request.key.clone(),
            id: BootId {
                requested_at,
                nodes: request.nodes.clone(),
            }
            .encode(),
        };
        if names.is_empty() {
            // Never run scontrol here: `scontrol reboot` without a node list
            // reboots every node of the cluster.
            return Ok(handle(Timestamp::now()));
        }
        let shown = self.show_nodes().await?;
        if let Some(unknown) = names.iter().find(|name| !shown.contains_key(*name)) {
            return Err(SlurmError::UnknownNode(unknown.clone()).into());
        }
        // A reboot still pending under this key was asked for by an earlier
        // process; its reason was set when it was asked for (or issued, a
        // moment later), which stands in for the lost request time.
        let pending_since = names
            .iter()
            .filter_map(|name| shown.get(name))
            .filter(|facts| {
                reboot_pending(&facts.state)
                    && facts
                        .reason
                        .as_deref()
                        .is_some_and(|reason| is_reason_of(reason, &request.key))
            })
            .map(|facts| facts.reason_set_at.unwrap_or_else(Timestamp::now))
            .min();
        if let Some(since) = pending_since {
            tracing::info!(key = %request.key, "found a Slurm reboot already pending under this key");
            return Ok(handle(since));
        }
        // Whole seconds, as BootTime: taken before the reboot is asked for,
        // so every boot it causes is at or after it.
        let requested_at = Timestamp::from_secs(Timestamp::now().as_secs());
        let reason = reboot_reason(&request.key, &request.template);
        // One command per way back (see `reboot/held.rs`). A crash between
        // two of them leaves the later ones' nodes unrebooted; they are then
        // reported failed ("cancelled"), never returned to service.
        for (way_back, group) in ways_back(&names, &shown) {
            let mut args = vec!["reboot".to_string()];
            args.extend(way_back.options().iter().map(|option| option.to_string()));
            // One argv element, so the reason needs no quoting.
            args.push(format!("reason={reason}"));
            args.push(group.join(","));
            self.commands.run("scontrol", &args).await?;
        }
        Ok(handle(requested_at))
    }
}

/// The boot id of `handle`, or NotFound: Slurm has no other boots to look up.
fn decode(handle: &BootHandle) -> Result<BootId> {
    BootId::decode(&handle.id).ok_or_else(|| {
        Error::not_found(format!(
            "boot {:?} (not a Slurm reboot started by crus)",
            handle.id
        ))
    })
}

#[async_trait]
impl BootOrchestrator for SlurmRebootOrchestrator {
    /// `scontrol reboot` keeps no record of the image a node booted; crus
    /// reads the one its sessions keep in Slurm, the node feature
    /// `img_<template>` (see `reboot/images.rs`). A node without one is
    /// unknown, and upgraded.
    fn current_images_supported(&self) -> Result<()> {
        Ok(())
    }

    async fn current_images(&self, nodes: &[NodeId], template: &str) -> Result<Vec<NodeImage>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let names = self.names.slurm_names(nodes)?;
        let output = self
            .commands
            .run(
                "scontrol",
                &["-o".to_string(), "show".into(), "node".into()],
            )
            .await
            .map_err(Error::from)?;
        let named: Vec<(NodeId, String)> = nodes.iter().cloned().zip(names).collect();
        images::images_from_features(&output, &named, template)
    }

    async fn template_exists(&self, template: &str) -> Result<bool> {
        Ok(self.allows(template))
    }

    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
        self.check_template(&request.template)?;
        if !is_word(&request.key) {
            return Err(Error::invalid(format!(
                "boot key {:?} must be one word: it is written into the Slurm reason",
                request.key
            )));
        }
        if let Some(node) = request.nodes.iter().find(|node| !can_carry(node)) {
            return Err(Error::invalid(format!(
                "node id {node:?} cannot be part of a Slurm reboot's id (empty, or has a comma)"
            )));
        }
        let mut started = self.started.lock().await;
        if let Some(handle) = started.get(&request.key) {
            return Ok(handle.clone());
        }
        let handle = self.find_or_reboot(request).await?;
        started.insert(request.key.clone(), handle.clone());
        Ok(handle)
    }

    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        let boot = decode(handle)?;
        if boot.nodes.is_empty() {
            return Ok(Vec::new());
        }
        let shown = self.show_nodes().await?;
        Ok(boot
            .nodes
            .iter()
            .map(|node| {
                let facts = self
                    .names
                    .slurm_name(node)
                    .and_then(|name| shown.get(&name));
                NodeBootStatus {
                    node: node.clone(),
                    state: boot_state(
                        node.as_str(),
                        facts,
                        boot.requested_at,
                        self.config.clock_skew,
                    ),
                }
            })
            .collect())
    }

    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        let boot = decode(handle)?;
        if boot.nodes.is_empty() {
            return Ok(());
        }
        let shown = self.show_nodes().await?;
        // Only reboots this boot asked for and Slurm has not issued yet: a
        // later reboot under another key is not this boot's to cancel.
        let cancellable: Vec<String> = boot
            .nodes
            .iter()
            .filter_map(|node| self.names.slurm_name(node))
            .filter(|name| {
                shown.get(name).is_some_and(|facts| {
                    reboot_cancellable(&facts.state)
                        && facts
                            .reason
                            .as_deref()
                            .is_some_and(|reason| is_reason_of(reason, &handle.key))
                })
            })
            .collect();
        if cancellable.is_empty() {
            return Ok(());
        }
        let args = vec!["cancel_reboot".to_string(), cancellable.join(",")];
        match self.commands.run("scontrol", &args).await {
            // Issued since `show_nodes`: too late to stop, which is what
            // cancelling promises for such nodes.
            Err(SlurmError::Failed { stderr, .. })
                if stderr.contains("Invalid node state specified") =>
            {
                tracing::debug!(%stderr, "some reboots were issued before they could be cancelled");
                Ok(())
            }
            result => result.map(drop).map_err(Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crus_core::node::NodeId;

    fn orchestrator(templates: Option<&[&str]>) -> SlurmRebootOrchestrator {
        SlurmRebootOrchestrator::new(
            SlurmConfig {
                // A Slurm that cannot be run: these tests must not reach it.
                bin_dir: Some("/nonexistent".into()),
                ..SlurmConfig::default()
            },
            SlurmRebootConfig {
                templates: templates.map(|list| list.iter().map(|t| t.to_string()).collect()),
                ..SlurmRebootConfig::default()
            },
        )
    }

    fn request(key: &str, template: &str, nodes: &[&str]) -> BootRequest {
        BootRequest {
            key: key.into(),
            template: template.into(),
            nodes: nodes.iter().map(|node| NodeId::from(*node)).collect(),
        }
    }

    #[tokio::test]
    async fn templates_are_checked_before_slurm_is_asked() {
        let listed = orchestrator(Some(&["compute-2.5"]));
        assert!(listed.template_exists("compute-2.5").await.unwrap());
        assert!(!listed.template_exists("compute-2.6").await.unwrap());
        let error = listed
            .start_boot(&request("k", "compute-2.6", &["node001"]))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
        assert!(error.to_string().contains("compute-2.5"), "{error}");

        let any = orchestrator(None);
        assert!(any.template_exists("whatever").await.unwrap());
        assert!(!any.template_exists("two words").await.unwrap());
        let error = any
            .start_boot(&request("k", "two words", &["node001"]))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn keys_and_node_ids_that_cannot_be_carried_are_invalid() {
        let slurm = orchestrator(None);
        for bad in [
            request("two words", "img", &["node001"]),
            request("k", "img", &["a,b"]),
        ] {
            let error = slurm.start_boot(&bad).await.unwrap_err();
            assert!(matches!(error, Error::Invalid { .. }), "{bad:?}: {error:?}");
        }
    }

    #[tokio::test]
    async fn an_empty_boot_reboots_nothing_and_is_found_again() {
        // The Slurm binaries do not exist: any command would fail.
        let slurm = orchestrator(None);
        let first = slurm.start_boot(&request("k", "img", &[])).await.unwrap();
        assert!(first.id.starts_with("slurm-reboot:"), "{first:?}");
        let again = slurm.start_boot(&request("k", "img", &[])).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(slurm.boot_status(&first).await.unwrap(), Vec::new());
        slurm.cancel_boot(&first).await.unwrap();
    }

    #[tokio::test]
    async fn handles_of_other_orchestrators_are_not_found() {
        let slurm = orchestrator(None);
        let handle = BootHandle {
            key: "k".into(),
            id: "3f2b8a0e-6c3e-4c71-9d7e-2f6f0d1c9a10".into(),
        };
        for result in [
            slurm.boot_status(&handle).await.map(drop),
            slurm.cancel_boot(&handle).await,
        ] {
            assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
        }
    }
}
