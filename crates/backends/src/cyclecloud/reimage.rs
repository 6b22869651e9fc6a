//! [`CycleCloudBootOrchestrator`]: "booting into a template" as a reimage:
//! each node gets a fresh VM whose OS disk comes from its node array's
//! current image.
//!
//! # Why terminate, not deallocate
//!
//! CycleCloud's `deallocate` stops a VM and keeps its OS disk, so a node
//! started again comes back from its old disk, on the image it had (that is
//! what power control wants; see `power.rs`). Only a VM that is terminated
//! (its OS disk deleted) or created anew is built from the image its node
//! array names now. What happens to a terminated node's record depends on
//! the record's `Fixed` attribute, so each node of a boot takes one of two
//! paths, chosen from its record when the boot starts:
//!
//! - a `Fixed` node stays in the cluster when terminated: `terminate`, then
//!   `start` (the API starts "deallocated or terminated" nodes);
//! - any other node is removed from the cluster by a termination: `remove`
//!   (terminate and remove, explicitly), then `create` of a node of the same
//!   name in the same node array (see `create.rs`).
//!
//! # Templates
//!
//! A template is what a node array is expected to run: the name of a node
//! array of the cluster, or an image (`ImageName`) one of its node arrays
//! boots, as `GET /clusters/{cluster}/status` reports them.
//! [`template_exists`](BootOrchestrator::template_exists) checks exactly
//! that, and a boot of a node whose array neither is the template nor boots
//! it is [`crus_core::Error::Invalid`], before anything is submitted.
//!
//! crus sets the image only through the node array, never per node. The
//! create request could carry `nodeAttributes` for each node, and a node's
//! image is one of its attributes, but `start` of a terminated `Fixed` node
//! has no attributes to give: such a node always takes its array's image.
//! Setting the image per node on one path only would leave the nodes of one
//! array on different images depending on `Fixed`, and CycleCloud's own
//! autoscaling would keep creating nodes from the array's image anyway. So:
//! change the array's image in CycleCloud first, then roll it out with crus.
//!
//! # One boot
//!
//! Each boot is up to four node operations whose request ids derive from the
//! boot's key (`plan.rs`), so starting a boot again under the same key
//! adopts them (CycleCloud answers 409 for a reused request id) instead of
//! terminating or removing a node twice. The handle's id carries the plan
//! (which node takes which path, and in which array a removed node is
//! created again), since a removed node is no longer listed anywhere.
//!
//! 1. [`start_boot`](BootOrchestrator::start_boot) submits the termination
//!    of the `Fixed` nodes and the removal of the others.
//! 2. [`boot_status`](BootOrchestrator::boot_status) reads them back; once
//!    every `Fixed` node is off (or failed) it submits the start of those
//!    that are off; once every other node is gone from the cluster (or
//!    failed) it submits the creation of those that are gone. Nodes are then
//!    in progress until CycleCloud reports them `Started` (its
//!    orchestration, cluster-init included, is done), and failed when
//!    CycleCloud refuses one (`status: Error` with its `error`, or a
//!    creation set that added nothing, with its `message`) or reports it
//!    `Failed`. A removed node that CycleCloud keeps listing as terminated
//!    is waited for (the boot timeout ends the wait).
//!
//! Refusals are only in the answers to the POSTs, so this instance keeps
//! them in memory; after a restart, a node CycleCloud refused to terminate
//! still shows as not headed off and is reported failed for that reason.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::ports::{
    BootHandle, BootOrchestrator, BootRequest, NodeBootState, NodeBootStatus, PowerState,
};

use super::client::CycleCloudClient;
use super::create::{Creation, create_nodes};
use super::error::CycleCloudError;
use super::nodes::{NodeRecord, list_nodes, node_arrays};
use super::operation::{Action, Submission, Tracking, nodes_of, submit};
use super::plan::{ReimagePlan, Step, request_id};

/// What this instance remembers of a boot it started or followed.
#[derive(Debug, Clone, Default)]
struct BootMemory {
    /// Nodes CycleCloud refused to terminate, remove, start or create, with
    /// its reason.
    refused: HashMap<String, String>,
    /// Cancelled before its nodes were started or created: nothing more is.
    cancelled: bool,
}

/// The [`BootOrchestrator`] of a CycleCloud cluster: reimaging by
/// terminate and start, or remove and create.
#[derive(Debug)]
pub struct CycleCloudBootOrchestrator {
    client: Arc<CycleCloudClient>,
    /// By boot key. Behind a std mutex held only for short, synchronous moments.
    boots: Mutex<HashMap<String, BootMemory>>,
}

/// The records an operation of a boot lists, by node name: `None` when the
/// step has no node or CycleCloud knows no such operation.
type Listing = Option<HashMap<String, NodeRecord>>;

/// What CycleCloud shows of one boot.
struct Observed {
    terminated: Listing,
    started: Listing,
    removed: Listing,
    created: Listing,
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

    fn remember_refusals(&self, key: &str, refused: HashMap<String, String>) {
        if !refused.is_empty() {
            self.memory()
                .entry(key.to_string())
                .or_default()
                .refused
                .extend(refused);
        }
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

    /// The records of an operation of the boot under `key`, by name.
    async fn listing(&self, key: &str, step: Step) -> Result<Listing, CycleCloudError> {
        let tracking = Tracking::Request(request_id(key, step));
        Ok(optional_nodes_of(&self.client, &tracking)
            .await?
            .map(by_name))
    }

    /// The plan of a new boot, or of one already started under the request's
    /// key: `Fixed` nodes are restarted, the others recreated in their array.
    /// A requested node missing from the cluster is accepted only when this
    /// boot's removal took it away.
    async fn plan(&self, request: &BootRequest, arrays: &[String]) -> Result<ReimagePlan> {
        let records = by_name(list_nodes(&self.client, &[]).await?);
        let mut plan = ReimagePlan::default();
        let mut elsewhere = Vec::new();
        let mut missing = Vec::new();
        for node in &request.nodes {
            let name = node.as_str();
            let Some(record) = records.get(name) else {
                missing.push(name.to_string());
                continue;
            };
            match &record.template {
                Some(array) if arrays.contains(array) => {
                    if record.is_fixed() {
                        plan.restarted.push(name.to_string());
                    } else {
                        plan.recreated.insert(name.to_string(), array.clone());
                    }
                }
                other => elsewhere.push(format!(
                    "{name} (node array {})",
                    other.as_deref().unwrap_or("unknown")
                )),
            }
        }
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
        if !missing.is_empty() {
            self.adopt_removed(request, arrays, &missing, &mut plan)
                .await?;
        }
        plan.restarted.sort();
        plan.restarted.dedup();
        Ok(plan)
    }

    /// Puts the requested nodes missing from the cluster into `plan` as
    /// recreated, when this boot's removal took them away: in the array
    /// its creation put them in, or the template's one array.
    async fn adopt_removed(
        &self,
        request: &BootRequest,
        arrays: &[String],
        missing: &[String],
        plan: &mut ReimagePlan,
    ) -> Result<()> {
        let unknown = || CycleCloudError::UnknownNodes {
            cluster: self.client.config().cluster.clone(),
            nodes: missing.join(", "),
        };
        if self.listing(&request.key, Step::Remove).await?.is_none() {
            return Err(unknown().into());
        }
        let created = self
            .listing(&request.key, Step::Create)
            .await?
            .unwrap_or_default();
        for name in missing {
            let array = match (created.get(name), arrays) {
                (
                    Some(NodeRecord {
                        template: Some(array),
                        ..
                    }),
                    _,
                ) => array.clone(),
                (_, [only]) => only.clone(),
                _ => {
                    return Err(Error::conflict(format!(
                        "boot {:?} removed {name} from CycleCloud cluster {:?}, and template \
                         {:?} is the image of several node arrays ({}), so this crus cannot \
                         tell which to create it in again; its handle still does: follow the \
                         boot, or create the node in CycleCloud",
                        request.key,
                        self.client.config().cluster,
                        request.template,
                        arrays.join(", ")
                    )));
                }
            };
            plan.recreated.insert(name.clone(), array);
        }
        Ok(())
    }

    /// Reads back every operation of the boot; submits the start of the
    /// terminated nodes and the creation of the removed ones when their time
    /// has come and the boot is not cancelled.
    async fn observe(
        &self,
        key: &str,
        plan: &ReimagePlan,
        cancelled: bool,
    ) -> Result<Observed, CycleCloudError> {
        let mut observed = Observed {
            terminated: None,
            started: None,
            removed: None,
            created: None,
        };
        if !plan.restarted.is_empty() {
            observed.terminated = self.listing(key, Step::Terminate).await?;
            observed.started = self.listing(key, Step::Start).await?;
            if observed.started.is_none()
                && !cancelled
                && let Some(terminated) = &observed.terminated
                && self.start_when_off(key, plan, terminated).await?
            {
                observed.started = self.listing(key, Step::Start).await?;
            }
        }
        if !plan.recreated.is_empty() {
            observed.removed = self.listing(key, Step::Remove).await?;
            observed.created = self.listing(key, Step::Create).await?;
            if observed.created.is_none()
                && !cancelled
                && let Some(removed) = &observed.removed
                && self.create_when_gone(key, plan, removed).await?
            {
                observed.created = self.listing(key, Step::Create).await?;
            }
        }
        Ok(observed)
    }

    /// Submits the start of the restarted nodes that are off, once none is
    /// still on its way off; remembers refusals. Whether it submitted.
    async fn start_when_off(
        &self,
        key: &str,
        plan: &ReimagePlan,
        terminated: &HashMap<String, NodeRecord>,
    ) -> Result<bool, CycleCloudError> {
        let refused = self.refused(key);
        let live: Vec<&NodeRecord> = plan
            .restarted
            .iter()
            .filter(|node| !refused.contains(*node))
            .filter_map(|node| terminated.get(node))
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
        let id = request_id(key, Step::Start);
        if let Submission::New { result, .. } =
            submit(&self.client, Action::Start, &to_start, &id).await?
        {
            self.remember_refusals(key, result.errors());
        }
        Ok(true)
    }

    /// Submits the creation of the recreated nodes that are gone from the
    /// cluster, once none is still on its way out; remembers refusals.
    /// Whether it submitted.
    async fn create_when_gone(
        &self,
        key: &str,
        plan: &ReimagePlan,
        removed: &HashMap<String, NodeRecord>,
    ) -> Result<bool, CycleCloudError> {
        let refused = self.refused(key);
        let live = plan
            .recreated
            .keys()
            .filter(|node| !refused.contains(*node))
            .filter(|node| {
                removed
                    .get(*node)
                    .is_none_or(|record| record.failure().is_none())
            });
        let mut to_create = Vec::new();
        for node in live {
            match removed.get(node) {
                // Still listed: on its way out (or refused, which the
                // node's state reports); wait for all before creating any.
                Some(record) if record.heading() == PowerState::Off => return Ok(false),
                Some(_) => {}
                None => to_create.push((node.clone(), plan.recreated[node].clone())),
            }
        }
        if to_create.is_empty() {
            return Ok(false);
        }
        let id = request_id(key, Step::Create);
        if let Creation::New { refused } = create_nodes(&self.client, &to_create, &id).await? {
            self.remember_refusals(key, refused);
        }
        Ok(true)
    }

    fn refused(&self, key: &str) -> HashSet<String> {
        self.memory()
            .get(key)
            .map(|boot| boot.refused.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The plan of `handle`, or [`Error::NotFound`] when it is not a handle
    /// of this orchestrator or CycleCloud knows none of its operations.
    async fn known_plan(&self, handle: &BootHandle) -> Result<ReimagePlan> {
        let not_found = || {
            Error::not_found(format!(
                "CycleCloud reimage {:?} (key {:?}): no termination or removal with the request \
                 ids crus derives from that key",
                handle.id, handle.key
            ))
        };
        let plan = ReimagePlan::from_handle_id(&handle.key, &handle.id).ok_or_else(not_found)?;
        let mut known = false;
        if !plan.restarted.is_empty() {
            known |= self.listing(&handle.key, Step::Terminate).await?.is_some();
        }
        if !known && !plan.recreated.is_empty() {
            known |= self.listing(&handle.key, Step::Remove).await?.is_some();
        }
        if known { Ok(plan) } else { Err(not_found()) }
    }
}

/// Where a restarted (`Fixed`) node stands.
fn restarted_state(node: &str, memory: &BootMemory, observed: &Observed) -> NodeBootState {
    let failed = |reason: String| NodeBootState::Failed { reason };
    if let Some(reason) = memory.refused.get(node) {
        return failed(reason.clone());
    }
    let Some(terminated) = observed.terminated.as_ref().and_then(|all| all.get(node)) else {
        return failed("CycleCloud did not take the node into the reimage's termination".into());
    };
    match &observed.started {
        Some(started) => match started.get(node) {
            Some(record) => running_state(record),
            None => failed(terminated.failure().unwrap_or_else(|| {
                "the node was not off when the reimage started its nodes".to_string()
            })),
        },
        None => match terminated.failure() {
            Some(reason) => failed(reason),
            None if memory.cancelled => failed(
                "the boot was cancelled; the node is left terminated (power it on to start it \
                 from its node array's image)"
                    .to_string(),
            ),
            None if terminated.heading() != PowerState::Off => failed(
                "CycleCloud did not terminate the node (its answer to the termination is not \
                 known to this crus instance)"
                    .to_string(),
            ),
            None => NodeBootState::InProgress,
        },
    }
}

/// Where a recreated node stands.
fn recreated_state(
    node: &str,
    array: &str,
    memory: &BootMemory,
    observed: &Observed,
) -> NodeBootState {
    let failed = |reason: String| NodeBootState::Failed { reason };
    if let Some(reason) = memory.refused.get(node) {
        return failed(reason.clone());
    }
    let Some(removed) = &observed.removed else {
        return failed("CycleCloud has no removal of this reimage".into());
    };
    if let Some(created) = &observed.created {
        return match created.get(node) {
            Some(record) => running_state(record),
            None => failed(match removed.get(node).and_then(NodeRecord::failure) {
                Some(reason) => reason,
                None => format!(
                    "CycleCloud did not create the node again in node array {array} (its \
                     answer to the creation is not known to this crus instance)"
                ),
            }),
        };
    }
    match removed.get(node) {
        Some(record) => match record.failure() {
            Some(reason) => failed(reason),
            None if record.heading() == PowerState::Off && !memory.cancelled => {
                NodeBootState::InProgress
            }
            None if record.heading() == PowerState::Off => failed(format!(
                "the boot was cancelled; the node is being removed and will not be created \
                 again: add a node of that name to node array {array} in CycleCloud"
            )),
            None => failed(
                "CycleCloud did not remove the node (its answer to the removal is not known to \
                 this crus instance)"
                    .to_string(),
            ),
        },
        None if memory.cancelled => failed(format!(
            "the boot was cancelled; the node was removed from the cluster: add a node of that \
             name to node array {array} in CycleCloud"
        )),
        None => NodeBootState::InProgress,
    }
}

/// A started or created node: ok once `Started`, failed when CycleCloud
/// says so.
fn running_state(record: &NodeRecord) -> NodeBootState {
    match record.failure() {
        Some(reason) => NodeBootState::Failed { reason },
        None if record.power_state() == PowerState::On => NodeBootState::Ok,
        None => NodeBootState::InProgress,
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
    /// Not supported: the API does not say which image a node's VM runs.
    /// `GET /clusters/{cluster}/nodes` answers a `NodeList` whose `nodes`
    /// are `Node` objects the API documents only as "A node record" (type
    /// `object`, no fields); the image is an attribute the record shares
    /// with its node array (`ImageName`), and it shows what the array names
    /// now, not what the VM was built from when the array changed since (see
    /// "Templates" above). The status API (`ClusterStatus`, its buckets'
    /// `definition` with `machineType`) and the usage API (`os`: Windows or
    /// Linux, `vm_size`) describe hardware and OS family, not images; a
    /// `NodeCreationRequest`'s `nodeAttributes` are written once at creation
    /// and never reported back as applied. So it cannot tell honestly, and a
    /// session with `skip_matching` is refused at creation.
    fn current_images_supported(&self) -> Result<()> {
        Err(crus_core::ports::current_images_not_supported("cyclecloud"))
    }

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
        let plan = self.plan(request, &arrays).await?;
        let handle = BootHandle {
            key: request.key.clone(),
            id: plan.handle_id(&request.key),
        };
        if !plan.restarted.is_empty() {
            let id = request_id(&request.key, Step::Terminate);
            if let Submission::New { result, .. } =
                submit(&self.client, Action::Terminate, &plan.restarted, &id).await?
            {
                self.remember_refusals(&request.key, result.errors());
            }
        }
        let recreated: Vec<String> = plan.recreated.keys().cloned().collect();
        if !recreated.is_empty() {
            let id = request_id(&request.key, Step::Remove);
            if let Submission::New { result, .. } =
                submit(&self.client, Action::Remove, &recreated, &id).await?
            {
                self.remember_refusals(&request.key, result.errors());
            }
        }
        Ok(handle)
    }

    async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
        let plan = self.known_plan(handle).await?;
        let cancelled = self
            .memory()
            .get(&handle.key)
            .is_some_and(|boot| boot.cancelled);
        let observed = self.observe(&handle.key, &plan, cancelled).await?;
        let memory = self.memory().get(&handle.key).cloned().unwrap_or_default();
        Ok(plan
            .nodes()
            .into_iter()
            .map(|node| {
                let state = match plan.recreated.get(&node) {
                    Some(array) => recreated_state(&node, array, &memory, &observed),
                    None => restarted_state(&node, &memory, &observed),
                };
                NodeBootStatus {
                    node: node.as_str().into(),
                    state,
                }
            })
            .collect())
    }

    /// Stops a boot whose nodes have not been started or created yet:
    /// terminated `Fixed` nodes are left terminated (power them on to start
    /// them from their array's image), removed nodes are left out of the
    /// cluster (add them to their node array in CycleCloud). Once the start
    /// or creation is submitted there is nothing left to stop, since
    /// CycleCloud cannot cancel an operation. Remembered by this instance
    /// only.
    async fn cancel_boot(&self, handle: &BootHandle) -> Result<()> {
        self.known_plan(handle).await?;
        self.memory()
            .entry(handle.key.clone())
            .or_default()
            .cancelled = true;
        Ok(())
    }
}
