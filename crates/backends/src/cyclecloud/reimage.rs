//! [`CycleCloudBootOrchestrator`]: "booting into a template" as a reimage:
//! deallocate the nodes, then start them, so each comes up from its node
//! array's current image.
//!
//! # Templates
//!
//! A template is what a node array is expected to run: the name of a node
//! array of the cluster, or an image (`ImageName`) one of its node arrays
//! boots, as `GET /clusters/{cluster}/status` reports them.
//! [`template_exists`](BootOrchestrator::template_exists) checks exactly
//! that. crus cannot change a node's array or an array's image, so a boot
//! of a node whose array neither is the template nor boots it is
//! [`crus_core::Error::Invalid`]: change the array's image in CycleCloud
//! first, then roll it out with crus.
//!
//! # One boot
//!
//! Each boot is two node operations whose request ids derive from the
//! boot's key, so starting a boot again under the same key adopts them
//! (CycleCloud answers 409 for a reused request id) instead of reimaging
//! twice; the handle's id is the deallocation's request id.
//!
//! 1. [`start_boot`](BootOrchestrator::start_boot) submits the deallocation.
//! 2. [`boot_status`](BootOrchestrator::boot_status) reads it back; once
//!    every node is off (or failed), it submits the start of the nodes that
//!    are off. Nodes are then in progress until CycleCloud reports them
//!    `Started` (its orchestration, cluster-init included, is done), and
//!    failed when CycleCloud refuses one (`status: Error`, its `error` the
//!    reason) or reports it `Failed`.
//!
//! Refusals are only in the answers to the POSTs, so this instance keeps
//! them in memory; after a restart, a node CycleCloud refused to deallocate
//! still shows as not headed off and is reported failed for that reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::ports::{
    BootHandle, BootOrchestrator, BootRequest, NodeBootState, NodeBootStatus, PowerState,
};

use super::client::CycleCloudClient;
use super::error::CycleCloudError;
use super::nodes::{NodeRecord, node_arrays, records_of};
use super::operation::{Action, Submission, Tracking, derived_request_id, nodes_of, submit};
use super::power::node_set;

/// What this instance remembers of a boot it started or followed.
#[derive(Debug, Clone, Default)]
struct BootMemory {
    /// The nodes asked for, in the request's order.
    nodes: Vec<String>,
    /// Nodes CycleCloud refused to deallocate or to start, with its reason.
    refused: HashMap<String, String>,
    /// Cancelled before its start was submitted: nothing more is started.
    cancelled: bool,
}

/// The [`BootOrchestrator`] of a CycleCloud cluster: reimaging by deallocate
/// and start.
#[derive(Debug)]
pub struct CycleCloudBootOrchestrator {
    client: Arc<CycleCloudClient>,
    /// By handle id. Behind a std mutex held only for short, synchronous moments.
    boots: Mutex<HashMap<String, BootMemory>>,
}

/// The request id of a boot's deallocation, which is also its handle's id.
fn deallocate_request_id(key: &str) -> String {
    derived_request_id(&["crus-reimage", key, Action::Deallocate.name()])
}

/// The request id of a boot's start.
fn start_request_id(key: &str) -> String {
    derived_request_id(&["crus-reimage", key, Action::Start.name()])
}

impl CycleCloudBootOrchestrator {
    /// Reimaging boots on the client's cluster.
    pub fn new(client: Arc<CycleCloudClient>) -> Self {
        CycleCloudBootOrchestrator {
            client,
            boots: Mutex::new(HashMap::new()),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<String, BootMemory>> {
        // The map stays consistent even if a holder panicked: each change is one insert.
        self.boots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The node arrays whose nodes boot `template`: the array of that name,
    /// and those whose image it is.
    async fn arrays_for(&self, template: &str) -> Result<Vec<String>, CycleCloudError> {
        Ok(node_arrays(&self.client)
            .await?
            .into_iter()
            .filter(|array| array.name == template || array.image() == Some(template))
            .map(|array| array.name)
            .collect())
    }

    /// Submits the start of the boot's nodes that are off, once none is
    /// still on its way off; remembers refusals. Whether it submitted.
    async fn start_when_off(
        &self,
        handle: &BootHandle,
        memory: &BootMemory,
        deallocated: &HashMap<String, NodeRecord>,
    ) -> Result<bool, CycleCloudError> {
        let live: Vec<&NodeRecord> = memory
            .nodes
            .iter()
            .filter(|node| !memory.refused.contains_key(*node))
            .filter_map(|node| deallocated.get(node))
            .filter(|record| record.failure().is_none())
            .collect();
        if live.iter().any(|record| {
            record.power_state() != PowerState::Off && record.heading() == PowerState::Off
        }) {
            return Ok(false);
        }
        let to_start: Vec<String> = live
            .iter()
            .filter(|record| record.power_state() == PowerState::Off)
            .map(|record| record.name.clone())
            .collect();
        if to_start.is_empty() {
            return Ok(false);
        }
        let request_id = start_request_id(&handle.key);
        if let Submission::New { result, .. } =
            submit(&self.client, Action::Start, &to_start, &request_id).await?
        {
            let refused = result.errors();
            if !refused.is_empty()
                && let Some(boot) = self.memory().get_mut(&handle.id)
            {
                boot.refused.extend(refused);
            }
        }
        Ok(true)
    }
}

/// Where one node of a boot stands.
fn node_state(
    node: &str,
    memory: &BootMemory,
    deallocated: Option<&NodeRecord>,
    started: Option<&HashMap<String, NodeRecord>>,
) -> NodeBootState {
    let failed = |reason: String| NodeBootState::Failed { reason };
    if let Some(reason) = memory.refused.get(node) {
        return failed(reason.clone());
    }
    let Some(deallocated) = deallocated else {
        return failed("CycleCloud did not take the node into the reimage's deallocation".into());
    };
    match started {
        Some(started) => match started.get(node) {
            Some(record) => match record.failure() {
                Some(reason) => failed(reason),
                None if record.power_state() == PowerState::On => NodeBootState::Ok,
                None => NodeBootState::InProgress,
            },
            None => failed(deallocated.failure().unwrap_or_else(|| {
                "the node was not off when the reimage started its nodes".to_string()
            })),
        },
        None => match deallocated.failure() {
            Some(reason) => failed(reason),
            None if memory.cancelled => {
                failed("the boot was cancelled; the node is left deallocated".to_string())
            }
            None if deallocated.heading() != PowerState::Off => failed(
                "CycleCloud did not deallocate the node (its answer to the deallocation is \
                 not known to this crus instance)"
                    .to_string(),
            ),
            None => NodeBootState::InProgress,
        },
    }
}

fn by_name(records: Vec<NodeRecord>) -> HashMap<String, NodeRecord> {
    records
        .into_iter()
        .map(|record| (record.name.clone(), record))
        .collect()
}

/// The records of an operation, `None` when CycleCloud knows none (404).
async fn optional_nodes_of(
    client: &CycleCloudClient,
    tracking: &Tracking,
) -> Result<Option<Vec<NodeRecord>>, CycleCloudError> {
    match nodes_of(client, tracking).await {
        Ok(records) => Ok(Some(records)),
        Err(error) if error.status() == Some(404) => Ok(None),
        Err(error) => Err(error),
    }
}

#[async_trait]
impl BootOrchestrator for CycleCloudBootOrchestrator {
    async fn template_exists(&self, template: &str) -> Result<bool> {
        Ok(!self.arrays_for(template).await?.is_empty())
    }

    async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
        let arrays = self.arrays_for(&request.template).await?;
        if arrays.is_empty() {
            return Err(Error::not_found(format!(
                "template {:?}: no node array of CycleCloud cluster {:?} has that name or boots \
                 that image",
                request.template,
                self.client.config().cluster
            )));
        }
        let records = records_of(&self.client, &request.nodes).await?;
        let elsewhere: Vec<String> = records
            .iter()
            .filter(|record| {
                !record
                    .template
                    .as_ref()
                    .is_some_and(|array| arrays.contains(array))
            })
            .map(|record| {
                format!(
                    "{} (node array {})",
                    record.name,
                    record.template.as_deref().unwrap_or("unknown")
                )
            })
            .collect();
        if !elsewhere.is_empty() {
            return Err(Error::invalid(format!(
                "cannot boot {} into template {:?}: a reimage boots a node from its own node \
                 array's image, and only {} boot(s) that template; set the image of their \
                 arrays in CycleCloud first",
                elsewhere.join(", "),
                request.template,
                arrays.join(", ")
            )));
        }
        let handle = BootHandle {
            key: request.key.clone(),
            id: deallocate_request_id(&request.key),
        };
        let names = node_set(&request.nodes);
        let refused = match submit(&self.client, Action::Deallocate, &names, &handle.id).await? {
            Submission::New { result, .. } => result.errors(),
            Submission::Existing { .. } => HashMap::new(),
        };
        let mut boots = self.memory();
        let boot = boots.entry(handle.id.clone()).or_default();
        if boot.nodes.is_empty() {
            boot.nodes = request
                .nodes
                .iter()
                .map(|node| node.as_str().to_string())
                .collect();
        }
        boot.refused.extend(refused);
        Ok(handle)
    }

    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        let deallocation = Tracking::Request(handle.id.clone());
        let Some(deallocated) = optional_nodes_of(&self.client, &deallocation).await? else {
            return Err(Error::not_found(format!(
                "CycleCloud reimage {} (key {:?}): no deallocation with that request id",
                handle.id, handle.key
            )));
        };
        let deallocated = by_name(deallocated);
        let mut memory = {
            let mut boots = self.memory();
            let boot = boots.entry(handle.id.clone()).or_default();
            if boot.nodes.is_empty() {
                // Not started by this instance: the deallocation names the nodes.
                let mut names: Vec<String> = deallocated.keys().cloned().collect();
                names.sort();
                boot.nodes = names;
            }
            boot.clone()
        };
        let start = Tracking::Request(start_request_id(&handle.key));
        let mut started = optional_nodes_of(&self.client, &start).await?;
        if started.is_none()
            && !memory.cancelled
            && self.start_when_off(handle, &memory, &deallocated).await?
        {
            started = optional_nodes_of(&self.client, &start).await?;
            if let Some(boot) = self.memory().get(&handle.id) {
                memory = boot.clone();
            }
        }
        let started = started.map(by_name);
        Ok(memory
            .nodes
            .iter()
            .map(|node| NodeBootStatus {
                node: node.as_str().into(),
                state: node_state(node, &memory, deallocated.get(node), started.as_ref()),
            })
            .collect())
    }

    /// Stops a boot whose nodes have not been started yet: they are left
    /// deallocated (power them on to bring them back). Once the start is
    /// submitted there is nothing left to stop, since CycleCloud cannot
    /// cancel an operation. Remembered by this instance only.
    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        let deallocation = Tracking::Request(handle.id.clone());
        if optional_nodes_of(&self.client, &deallocation)
            .await?
            .is_none()
        {
            return Err(Error::not_found(format!(
                "CycleCloud reimage {} (key {:?})",
                handle.id, handle.key
            )));
        }
        self.memory()
            .entry(handle.id.clone())
            .or_default()
            .cancelled = true;
        Ok(())
    }
}
