//! [`CycleCloudPowerControl`]: node power through CycleCloud's node
//! operations, which start, shut down or deallocate the nodes' VMs.
//!
//! # Mapping
//!
//! CycleCloud has no power switch and no restart, only VM operations:
//!
//! | [`PowerOperation`] | CycleCloud |
//! | --- | --- |
//! | `On` | `start` |
//! | `ForceOff` | `deallocate` |
//! | `GracefulShutdown` | `shutdown` |
//! | `GracefulRestart`, `ForceRestart` | `deallocate`, wait until off, then `start` |
//!
//! `ForceOff` is `deallocate` rather than `shutdown` because `shutdown`
//! follows each node's `ShutdownPolicy`, which by default terminates the
//! VM and discards its OS disk; `deallocate` always stops the VM and keeps
//! its disk and node record, so `On` brings the same node back. For the same
//! reason both restarts deallocate: the node comes back as it was, from its
//! old disk and image, not reimaged (reimaging, which terminates or removes
//! the VM so that a fresh one is built from the node array's image, is what
//! [`CycleCloudBootOrchestrator`](super::CycleCloudBootOrchestrator) does).
//! `GracefulShutdown` is `shutdown`: the administrator's policy decides (and
//! a node it terminates may be removed from the cluster unless it is
//! `Fixed`, so `On` may not find it again).
//!
//! Every call follows its operation until every node is in the goal state
//! (or [`CycleCloudConfig::poll_timeout`](super::CycleCloudConfig::poll_timeout)
//! runs out), so a restart really is off, then on.
//!
//! # Request ids
//!
//! The port has no idempotency key, so the request id is derived from the
//! operation, the set of nodes, the UTC day and a generation number 0, 1,
//! 2, ...: the same call made again (a retry, or a controller resumed after
//! a crash) finds the operation it submitted and adopts it (CycleCloud
//! answers 409 for a reused request id) instead of submitting another. An
//! adopted operation whose nodes are no longer headed where it took them is
//! an earlier, finished intent (the nodes were turned off this morning and
//! on since); the next generation's id is then used for a fresh operation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use crus_core::error::Result;
use crus_core::node::NodeId;
use crus_core::ports::{PowerControl, PowerOperation, PowerState};

use super::client::CycleCloudClient;
use super::error::CycleCloudError;
use super::nodes::{NodeRecord, records_of};
use super::operation::{
    Action, Submission, Tracking, derived_request_id, submit, wait_until_settled,
};

/// How many operations of one kind on one node set a day may submit.
const MAX_GENERATIONS: u32 = 1000;

/// The [`PowerControl`] of a CycleCloud cluster's nodes.
#[derive(Debug)]
pub struct CycleCloudPowerControl {
    client: Arc<CycleCloudClient>,
}

impl CycleCloudPowerControl {
    /// Power control of the client's cluster.
    pub fn new(client: Arc<CycleCloudClient>) -> Self {
        CycleCloudPowerControl { client }
    }

    /// Runs `action` on `names` (sorted, without repeats) until they settle.
    async fn apply(&self, action: Action, names: &[String]) -> Result<(), CycleCloudError> {
        let what = format!("{} of {}", action.name(), names.join(", "));
        let day = utc_day().to_string();
        for generation in 0..MAX_GENERATIONS {
            let generation = generation.to_string();
            let mut parts = vec![
                "crus-power",
                action.name(),
                day.as_str(),
                generation.as_str(),
            ];
            parts.extend(names.iter().map(String::as_str));
            let request_id = derived_request_id(&parts);
            let tracking = match submit(&self.client, action, names, &request_id).await? {
                Submission::New { tracking, result } => {
                    let errors = result.errors();
                    if !errors.is_empty() {
                        return Err(nodes_failed(&what, errors));
                    }
                    tracking
                }
                Submission::Existing { nodes } if still_heading(&nodes, action.goal()) => {
                    Tracking::Request(request_id)
                }
                Submission::Existing { .. } => continue,
            };
            let records = wait_until_settled(&self.client, &tracking, &what, names, action).await?;
            let failures: HashMap<String, String> = records
                .iter()
                .filter_map(|record| record.failure().map(|reason| (record.name.clone(), reason)))
                .collect();
            if !failures.is_empty() {
                return Err(nodes_failed(&what, failures));
            }
            return Ok(());
        }
        Err(CycleCloudError::RequestIdsExhausted {
            what,
            generations: MAX_GENERATIONS,
        })
    }
}

/// Whether an adopted operation's nodes are still headed where it takes
/// them (it is the one this call means), rather than elsewhere since.
fn still_heading(nodes: &[NodeRecord], goal: PowerState) -> bool {
    !nodes.is_empty() && nodes.iter().all(|node| node.heading() == goal)
}

fn nodes_failed(what: &str, failures: HashMap<String, String>) -> CycleCloudError {
    let mut failures: Vec<String> = failures
        .into_iter()
        .map(|(node, reason)| format!("{node} ({reason})"))
        .collect();
    failures.sort();
    CycleCloudError::NodesFailed {
        what: what.to_string(),
        failures: failures.join(", "),
    }
}

/// Days since the Unix epoch, UTC; 0 if the clock is before it.
fn utc_day() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs() / 86_400)
        .unwrap_or_default()
}

/// Node names sorted and without repeats, so the same set gives the same
/// request id whatever order it comes in.
pub(crate) fn node_set(nodes: &[NodeId]) -> Vec<String> {
    let mut names: Vec<String> = nodes.iter().map(|node| node.as_str().to_string()).collect();
    names.sort();
    names.dedup();
    names
}

#[async_trait]
impl PowerControl for CycleCloudPowerControl {
    async fn power_state(&self, nodes: &[NodeId]) -> Result<Vec<PowerState>> {
        let records = records_of(&self.client, nodes).await?;
        Ok(records.iter().map(NodeRecord::power_state).collect())
    }

    async fn power(&self, nodes: &[NodeId], operation: PowerOperation) -> Result<()> {
        let names = node_set(nodes);
        if names.is_empty() {
            return Ok(());
        }
        match operation {
            PowerOperation::On => self.apply(Action::Start, &names).await?,
            PowerOperation::ForceOff => self.apply(Action::Deallocate, &names).await?,
            PowerOperation::GracefulShutdown => self.apply(Action::Shutdown, &names).await?,
            PowerOperation::GracefulRestart | PowerOperation::ForceRestart => {
                self.apply(Action::Deallocate, &names).await?;
                self.apply(Action::Start, &names).await?;
            }
        }
        Ok(())
    }
}
