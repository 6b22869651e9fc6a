//! Redfish BMCs as the [`PowerControl`]: each node is a `ComputerSystem` of
//! some BMC (placed by the explicit map or the naming rule of
//! [`RedfishConfig`]), found by listing the BMC's `/redfish/v1/Systems`; its
//! `PowerState` is read from the system and changed with
//! `ComputerSystem.Reset`, using the reset types the system advertises and
//! falling back (logged) when one is not allowed or is refused with 501.
//!
//! Basic and session authentication, TLS verified unless `insecure`, a
//! bound on the requests in flight per BMC, a timeout on every request, and
//! retries of reads only (a reset is repeated only when it never reached the
//! BMC). With session auth, call [`RedfishPowerControl::logout`] on shutdown.

mod client;
mod config;
mod error;
mod mapping;
mod reset;
mod settings;
mod systems;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::node::NodeId;
use crus_core::ports::{PowerControl, PowerOperation, PowerState};
use serde_json::json;

use client::{Bmc, Transport};
use error::RedfishError;
use reset::Step;
use systems::{SystemInfo, member_paths};

pub use config::{NamingRule, RedfishAuth, RedfishConfig, SystemLocation};
pub use settings::{RedfishAuthKind, RedfishNodeSettings, RedfishSettings};

/// The Redfish collection of a BMC's systems.
const SYSTEMS_PATH: &str = "/redfish/v1/Systems";

/// One BMC and what crus learnt about it.
#[derive(Debug)]
struct BmcState {
    bmc: Bmc,
    /// The systems found at `/redfish/v1/Systems`, listed once and again
    /// when a node's system is not among them (a system added since).
    systems: tokio::sync::Mutex<Option<Vec<SystemInfo>>>,
    /// Per system URI, the reset types it refused with 501 although they
    /// were allowed (or none were advertised): not tried again.
    refused: Mutex<HashMap<String, Vec<String>>>,
}

/// Power control through Redfish BMCs.
#[derive(Debug)]
pub struct RedfishPowerControl {
    config: RedfishConfig,
    transport: Transport,
    /// One state per BMC URL, made on first use.
    bmcs: Mutex<HashMap<String, Arc<BmcState>>>,
    /// The request permits of each BMC host (`host:port`).
    permits: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl RedfishPowerControl {
    /// A power control as `config` says. Nothing is contacted yet.
    ///
    /// [`Error::Invalid`] when the configuration cannot work (unreadable CA file).
    pub fn new(config: RedfishConfig) -> Result<Self> {
        Ok(RedfishPowerControl {
            transport: Transport::new(&config)?,
            config,
            bmcs: Mutex::new(HashMap::new()),
            permits: Mutex::new(HashMap::new()),
        })
    }

    /// Ends the Redfish sessions crus opened (a `DELETE` of each), so BMCs
    /// with few session slots are not left full. Does nothing with basic
    /// auth. Every BMC is tried; the first failure is returned.
    pub async fn logout(&self) -> Result<()> {
        let bmcs: Vec<Arc<BmcState>> = self
            .bmcs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut first_error = None;
        for state in bmcs {
            if let Err(error) = self.transport.logout(&state.bmc).await {
                tracing::warn!(bmc = %state.bmc.url, %error, "could not log out of the Redfish session");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), |error| Err(error.into()))
    }

    fn bmc(&self, url: &str) -> Arc<BmcState> {
        let key = url.trim_end_matches('/').to_string();
        let mut bmcs = self.bmcs.lock().unwrap_or_else(PoisonError::into_inner);
        bmcs.entry(key)
            .or_insert_with(|| {
                let permits = self
                    .permits
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(client::host_of(url))
                    .or_insert_with(|| {
                        Arc::new(tokio::sync::Semaphore::new(
                            self.config.max_requests_per_bmc.max(1),
                        ))
                    })
                    .clone();
                Arc::new(BmcState {
                    bmc: Bmc::new(url, permits),
                    systems: tokio::sync::Mutex::new(None),
                    refused: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// The BMC of `node` and the URI of its system.
    async fn locate(&self, node: &NodeId) -> Result<(Arc<BmcState>, String), RedfishError> {
        let location = mapping::locate(&self.config, node)
            .map_err(|message| RedfishError::Config { message })?;
        let state = self.bmc(&location.bmc_url);
        let mut systems = state.systems.lock().await;
        for listed_now in [false, true] {
            if systems.is_none() || listed_now {
                *systems = Some(self.discover(&state.bmc).await?);
            }
            let known = systems.as_deref().unwrap_or_default();
            let found = match &location.system {
                Some(selector) => known.iter().find(|system| system.is(selector)),
                None if known.len() == 1 => known.first(),
                None => None,
            };
            if let Some(system) = found {
                return Ok((state.clone(), system.path.clone()));
            }
        }
        let known = systems.as_deref().unwrap_or_default();
        Err(RedfishError::NoSuchSystem {
            bmc: state.bmc.url.clone(),
            node: node.to_string(),
            wanted: match &location.system {
                Some(selector) => format!("{selector:?}"),
                None => "(the only one: redfish.system is not set)".to_string(),
            },
            available: if known.is_empty() {
                "none".to_string()
            } else {
                known
                    .iter()
                    .map(SystemInfo::label)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }

    /// Lists `bmc`'s systems.
    async fn discover(&self, bmc: &Bmc) -> Result<Vec<SystemInfo>, RedfishError> {
        let collection = self.transport.get_json(bmc, SYSTEMS_PATH).await?;
        let mut found = Vec::new();
        for path in member_paths(&collection) {
            let body = self.transport.get_json(bmc, &path).await?;
            found.push(SystemInfo::parse(&path, &body));
        }
        tracing::debug!(bmc = %bmc.url, systems = found.len(), "listed the Redfish systems");
        Ok(found)
    }

    /// The system of `node`, read now.
    async fn read(&self, node: &NodeId) -> Result<(Arc<BmcState>, SystemInfo), RedfishError> {
        let (state, path) = self.locate(node).await?;
        match self.transport.get_json(&state.bmc, &path).await {
            Ok(body) => Ok((state, SystemInfo::parse(&path, &body))),
            Err(error) => {
                if error.status() == Some(404) {
                    // The BMC renamed or removed it: list again next time.
                    *state.systems.lock().await = None;
                }
                Err(error)
            }
        }
    }

    async fn node_state(&self, node: &NodeId) -> Result<PowerState, RedfishError> {
        Ok(self.read(node).await?.1.state())
    }

    async fn power_node(
        &self,
        node: &NodeId,
        operation: PowerOperation,
    ) -> Result<(), RedfishError> {
        let (state, system) = self.read(node).await?;
        let bmc = &state.bmc;
        // Already there: a second On or ForceOff is not sent, since some
        // BMCs answer it with an error.
        let target = match operation {
            PowerOperation::On => Some(PowerState::On),
            PowerOperation::ForceOff | PowerOperation::GracefulShutdown => Some(PowerState::Off),
            _ => None,
        };
        if target.is_some() && target == Some(system.state()) {
            tracing::debug!(%node, ?operation, "already in that power state; nothing sent");
            return Ok(());
        }
        let plan = reset::plan(operation, self.config.prefer_power_cycle);
        let mut tried = Vec::new();
        for step in plan {
            let refused = self.refused(&state, &system);
            if !reset::may_try_step(step, system.allowed.as_deref(), &refused) {
                tracing::info!(
                    %node, bmc = %bmc.url, system = %system.label(), %step,
                    "reset type not allowed by this system; trying the next one"
                );
                tried.push(format!("{step} (not allowed)"));
                continue;
            }
            let outcome = match step {
                Step::Reset(reset_type) => self.reset(bmc, &system, reset_type).await,
                Step::OffThenOn => self.off_then_on(node, &state, &system).await,
            };
            match outcome {
                Ok(()) => {
                    if !tried.is_empty() {
                        tracing::warn!(
                            %node, bmc = %bmc.url, system = %system.label(), ?operation,
                            used = %step, instead_of = %tried.join(", "),
                            "fell back to another reset type"
                        );
                    } else {
                        tracing::info!(%node, bmc = %bmc.url, system = %system.label(), %step, "reset sent");
                    }
                    return Ok(());
                }
                Err((reset_type, error)) if refuses(&error) => {
                    tracing::warn!(
                        %node, bmc = %bmc.url, system = %system.label(), %reset_type, %error,
                        "the BMC refused this reset type; trying the next one"
                    );
                    self.remember_refused(&state, &system, reset_type);
                    tried.push(format!("{step} (refused: {})", error.status().unwrap_or(0)));
                }
                Err((_, error)) => return Err(error),
            }
        }
        Err(RedfishError::NoResetType {
            bmc: bmc.url.clone(),
            what: format!(
                "system {} (node {node}), asked for {operation:?},",
                system.label()
            ),
            tried: tried.join(", "),
            allowed: system.allowed.as_ref().map_or_else(
                || "(not advertised)".to_string(),
                |allowed| allowed.join(", "),
            ),
        })
    }

    /// `ComputerSystem.Reset` with `reset_type`; on failure, the type with the error.
    async fn reset(
        &self,
        bmc: &Bmc,
        system: &SystemInfo,
        reset_type: &'static str,
    ) -> Result<(), (&'static str, RedfishError)> {
        self.transport
            .post(
                bmc,
                &system.reset_target,
                &json!({ "ResetType": reset_type }),
            )
            .await
            .map_err(|error| (reset_type, error))
    }

    /// A restart as `ForceOff`, a wait for `Off`, then `On`.
    async fn off_then_on(
        &self,
        node: &NodeId,
        state: &BmcState,
        system: &SystemInfo,
    ) -> Result<(), (&'static str, RedfishError)> {
        let bmc = &state.bmc;
        if system.state() != PowerState::Off {
            self.reset(bmc, system, "ForceOff").await?;
        }
        let started = tokio::time::Instant::now();
        loop {
            let body = self
                .transport
                .get_json(bmc, &system.path)
                .await
                .map_err(|error| ("ForceOff", error))?;
            let now = SystemInfo::parse(&system.path, &body);
            if now.state() == PowerState::Off {
                break;
            }
            if started.elapsed() >= self.config.power_off_wait {
                return Err((
                    "ForceOff",
                    RedfishError::StillOn {
                        bmc: bmc.url.clone(),
                        system: system.label(),
                        node: node.to_string(),
                        state: now.power_state,
                        waited: started.elapsed(),
                    },
                ));
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
        self.reset(bmc, system, "On").await
    }

    fn refused(&self, state: &BmcState, system: &SystemInfo) -> Vec<String> {
        state
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&system.path)
            .cloned()
            .unwrap_or_default()
    }

    fn remember_refused(&self, state: &BmcState, system: &SystemInfo, reset_type: &str) {
        state
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(system.path.clone())
            .or_default()
            .push(reset_type.to_string());
    }
}

/// Whether a reset's error says the system does not take that reset type
/// (so the next one is tried), rather than that the reset failed.
fn refuses(error: &RedfishError) -> bool {
    match error {
        RedfishError::Status { status: 501, .. } => true,
        // DSP0266 names these message ids for a value the action does not take.
        RedfishError::Status {
            status: 400,
            message,
            ..
        } => ["NotInList", "NotSupported", "not supported"]
            .iter()
            .any(|marker| message.contains(marker)),
        _ => false,
    }
}

/// Runs `call` for every node at once (each BMC bounds its own requests)
/// and keeps the answers in node order.
async fn for_each_node<'a, T, F, Fut>(nodes: &'a [NodeId], call: F) -> Vec<Result<T, RedfishError>>
where
    F: Fn(&'a NodeId) -> Fut,
    Fut: std::future::Future<Output = Result<T, RedfishError>>,
{
    futures::future::join_all(nodes.iter().map(call)).await
}

#[async_trait]
impl PowerControl for RedfishPowerControl {
    async fn power_state(&self, nodes: &[NodeId]) -> Result<Vec<PowerState>> {
        for_each_node(nodes, |node| self.node_state(node))
            .await
            .into_iter()
            .map(|result| result.map_err(Error::from))
            .collect()
    }

    async fn power(&self, nodes: &[NodeId], operation: PowerOperation) -> Result<()> {
        let results = for_each_node(nodes, |node| self.power_node(node, operation)).await;
        let mut failures = results.into_iter().filter_map(Result::err);
        match failures.next() {
            None => Ok(()),
            Some(first) => {
                let others = failures.count();
                if others > 0 {
                    tracing::warn!(?operation, others, "more nodes failed than the error tells");
                }
                Err(first.into())
            }
        }
    }
}

#[cfg(test)]
mod tests;
