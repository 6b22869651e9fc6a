//! Kadeploy deployments (workflows) as the API shows them: the
//! `POST /deployment` body, the `GET /deployment/{wid}` answer with its
//! `ok` / `ko` / `processing` host lists, the `/error` answer, and what
//! they mean for each node.

use std::collections::{BTreeSet, HashMap};

use crus_core::ports::{NodeBootState, NodeBootStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::environment::{EnvironmentRequest, ListedEnvironment, Template};
use super::hosts::HostNames;

/// The reason of a failed node when Kadeploy gives none.
const NO_REASON_GIVEN: &str = "Kadeploy reported the node ko without saying why; see the \
                               deployment's logs (GET /deployment/{wid}/logs)";

/// The body of a `POST /deployment`.
#[derive(Debug, Serialize)]
pub(crate) struct DeploymentRequest<'a> {
    pub(crate) nodes: &'a [String],
    pub(crate) environment: EnvironmentRequest<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ssh_authorized_keys: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) block_device: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) deploy_partition: Option<&'a str>,
}

/// The answer to a `POST /deployment`: the workflow id, `D-<uuid>`.
#[derive(Debug, Deserialize)]
pub(crate) struct Created {
    pub(crate) wid: String,
}

/// A deployment as `GET /deployment/{wid}` (and the listing) shows it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Deployment {
    pub(crate) wid: String,
    #[serde(default)]
    pub(crate) user: Option<String>,
    /// True once the workflow ended, well or not; it stays true.
    #[serde(default)]
    pub(crate) done: bool,
    /// True when the workflow itself failed (Kadeploy then also sets `done`).
    #[serde(default)]
    pub(crate) error: bool,
    #[serde(default)]
    pub(crate) environment: Option<ListedEnvironment>,
    #[serde(default)]
    pub(crate) nodes: DeploymentNodes,
}

/// Where each host of a deployment stands. `processing` is absent once the
/// deployment is done.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DeploymentNodes {
    #[serde(default)]
    pub(crate) ok: Vec<String>,
    #[serde(default)]
    pub(crate) ko: Vec<String>,
    #[serde(default)]
    pub(crate) processing: Vec<String>,
}

impl Deployment {
    /// Every host of the deployment, whatever its state.
    pub(crate) fn hosts(&self) -> BTreeSet<&str> {
        let nodes = &self.nodes;
        nodes
            .ok
            .iter()
            .chain(&nodes.ko)
            .chain(&nodes.processing)
            .map(String::as_str)
            .collect()
    }

    /// Whether this unfinished deployment is the one a request for `hosts`
    /// with `template` as `user` would start, so it can be adopted.
    pub(crate) fn is_running(
        &self,
        hosts: &BTreeSet<&str>,
        template: &Template,
        user: Option<&str>,
    ) -> bool {
        !self.ended()
            && user.is_none_or(|user| self.user.as_deref() == Some(user))
            && self
                .environment
                .as_ref()
                .is_some_and(|environment| template.matches(environment))
            && self.hosts() == *hosts
    }

    /// Whether the workflow ended; Kadeploy sets `done` with `error`, a
    /// server that sets only `error` has ended it as well.
    fn ended(&self) -> bool {
        self.done || self.error
    }

    /// Whether some node failed, so the failure reasons are worth reading.
    pub(crate) fn has_failures(&self) -> bool {
        !self.nodes.ko.is_empty() || (self.ended() && !self.nodes.processing.is_empty())
    }

    /// One state per host, named as crus nodes.
    ///
    /// A host still `processing` when the workflow ended (it failed as a
    /// whole, or was cancelled) will not finish, so it counts as failed.
    pub(crate) fn node_states(
        &self,
        names: &HostNames,
        reasons: &FailureReasons,
    ) -> Vec<NodeBootStatus> {
        let failed = |host: &str| NodeBootState::Failed {
            reason: reasons.of(host),
        };
        let nodes = &self.nodes;
        let mut seen = BTreeSet::new();
        let states = nodes
            .ok
            .iter()
            .map(|host| (host, NodeBootState::Ok))
            .chain(nodes.ko.iter().map(|host| (host, failed(host))))
            .chain(nodes.processing.iter().map(|host| {
                let state = if self.ended() {
                    failed(host)
                } else {
                    NodeBootState::InProgress
                };
                (host, state)
            }));
        // A host Kadeploy lists twice (moving between lists while it
        // answers) is reported once, in its first (most final) state.
        states
            .filter(|(host, _)| seen.insert(host.as_str()))
            .map(|(host, state)| NodeBootStatus {
                node: names.node(host),
                state,
            })
            .collect()
    }
}

/// A `GET /deployment` listing; read as an array of deployments, or as an
/// object of them by wid, since servers differ.
pub(crate) fn listed_deployments(listing: Value) -> Vec<Deployment> {
    let items: Vec<Value> = match listing {
        Value::Array(items) => items,
        Value::Object(by_wid) => by_wid.into_iter().map(|(_, item)| item).collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|item| serde_json::from_value(item).ok())
        .collect()
}

/// Why nodes failed, from `GET /deployment/{wid}/error`.
///
/// A successful deployment answers `{}`. crus reads an object of texts by
/// host as per-host reasons, and any other answer as the reason of every
/// failed node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FailureReasons {
    by_host: HashMap<String, String>,
    whole: Option<String>,
}

impl FailureReasons {
    pub(crate) fn from_answer(answer: &Value) -> Self {
        let mut reasons = FailureReasons::default();
        match answer {
            Value::Null => {}
            Value::String(text) if text.trim().is_empty() => {}
            Value::String(text) => reasons.whole = Some(text.trim().to_string()),
            Value::Object(fields) if fields.is_empty() => {}
            Value::Object(fields) => {
                for (key, value) in fields {
                    if let Some(text) = value.as_str() {
                        reasons.by_host.insert(key.clone(), text.to_string());
                    }
                }
                if reasons.by_host.is_empty() {
                    reasons.whole = Some(answer.to_string());
                }
            }
            other => reasons.whole = Some(other.to_string()),
        }
        reasons
    }

    /// Reasons for when `/error` could not be read at all.
    pub(crate) fn unreadable(why: String) -> Self {
        FailureReasons {
            by_host: HashMap::new(),
            whole: Some(format!(
                "Kadeploy reported the node ko; its error could not be read: {why}"
            )),
        }
    }

    fn of(&self, host: &str) -> String {
        if let Some(reason) = self.by_host.get(host).or(self.whole.as_ref()) {
            return reason.clone();
        }
        if self.by_host.is_empty() {
            return NO_REASON_GIVEN.to_string();
        }
        // Texts under keys that are not this host (`{"error": "..."}`)
        // still say what went wrong.
        let mut texts: Vec<String> = self
            .by_host
            .iter()
            .map(|(key, text)| format!("{key}: {text}"))
            .collect();
        texts.sort();
        texts.join("; ")
    }
}
