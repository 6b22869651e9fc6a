//! Kadeploy deployments (workflows) as the API shows them: the
//! `POST /deployment` body, the `GET /deployment/{wid}` answer with its
//! `ok` / `ko` / `processing` host lists (or a plain list, or none), the
//! `/state` and `/error` answers, and what they mean for each node.
//!
//! Where a failed node's reason comes from (Kadeploy 3 server,
//! `lib/kadeploy3/server/kaworkflow.rb`):
//! - a node `ko` in a run that otherwise worked: `GET /deployment/{wid}/state`,
//!   a map from host to `{macro, micro, state, error, out}` (`NodeState#set`
//!   in `common/nodes.rb`; `Debug::Logger#error` in `server/debug.rb` writes
//!   `error` as `"<macro>-<micro>: <stderr>"` when the node fails). `/error`
//!   answers nothing for such a run (`work_get_error` returns early unless
//!   the whole run failed);
//! - a run that failed as a whole (`error: true`): `/error` answers the
//!   exception that ended it as text, with a 400 for Kadeploy's own errors
//!   ("Invalid file -- Unable to grab the file ...", `common/httpd.rb`), and
//!   `/state` answers nothing. `GET /deployment/{wid}` then has no `nodes`
//!   at all for the deployment's owner (`work_get` adds them only when there
//!   is no error) and a plain list of hosts for other users.

use std::collections::{BTreeSet, HashMap};

use crus_core::ports::{NodeBootState, NodeBootStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::environment::{EnvironmentRequest, ListedEnvironment, Template};
use super::hosts::HostNames;

/// The reason of a failed node when Kadeploy gives none.
const NO_REASON_GIVEN: &str = "Kadeploy reported the node ko without saying why; see the \
                               deployment's logs (GET /deployment/{wid}/logs)";

/// The reason of every node of a run that failed as a whole when `/error`
/// says nothing.
const RUN_FAILED: &str = "Kadeploy's deployment failed as a whole without saying why; see \
                          kadeploy-server's log";

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

/// The answer to a request that starts a workflow (`POST /deployment`,
/// `PUT /power`, `POST /reboot`, `GET /power?nodes=…`): its id, `D-<uuid>`
/// for a deployment (`P-` for power, `R-` for a reboot).
#[derive(Debug, Deserialize)]
pub(crate) struct Created {
    pub(crate) wid: String,
}

/// A deployment as `GET /deployment/{wid}` (and the listing) shows it; a
/// power run's `GET /power/{wid}` has the same shape (`work_get`).
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
    #[serde(default, deserialize_with = "deployment_nodes")]
    pub(crate) nodes: DeploymentNodes,
}

/// The hosts of a deployment, in the shapes `work_get` answers them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum DeploymentNodes {
    /// `{ok, ko, processing}`: where each host stands, as the owner sees a
    /// run that has not failed as a whole. `processing` is absent once done.
    ByState {
        ok: Vec<String>,
        ko: Vec<String>,
        processing: Vec<String>,
    },
    /// A plain list of hosts without their states: what users other than
    /// the owner see (`ret[:nodes] = info[:nodelist]`).
    Listed(Vec<String>),
    /// No `nodes` at all: the owner's view of a run that failed as a whole.
    #[default]
    Absent,
}

/// The `nodes` lists of the object shape; a missing list is empty.
#[derive(Deserialize)]
struct NodesByState {
    #[serde(default)]
    ok: Vec<String>,
    #[serde(default)]
    ko: Vec<String>,
    #[serde(default)]
    processing: Vec<String>,
}

/// Reads `nodes` whatever its shape, so that a deployment is never
/// unreadable because of it: a shape crus does not know counts as absent.
fn deployment_nodes<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<DeploymentNodes, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(match value {
        Some(value @ Value::Object(_)) => match serde_json::from_value::<NodesByState>(value) {
            Ok(lists) => DeploymentNodes::ByState {
                ok: lists.ok,
                ko: lists.ko,
                processing: lists.processing,
            },
            Err(_) => DeploymentNodes::Absent,
        },
        Some(Value::Array(items)) => DeploymentNodes::Listed(
            items
                .into_iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect(),
        ),
        _ => DeploymentNodes::Absent,
    })
}

impl Deployment {
    /// Every host of the deployment Kadeploy shows, whatever its state.
    pub(crate) fn hosts(&self) -> BTreeSet<&str> {
        match &self.nodes {
            DeploymentNodes::ByState { ok, ko, processing } => ok
                .iter()
                .chain(ko)
                .chain(processing)
                .map(String::as_str)
                .collect(),
            DeploymentNodes::Listed(hosts) => hosts.iter().map(String::as_str).collect(),
            DeploymentNodes::Absent => BTreeSet::new(),
        }
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

    /// Whether some node failed in a run that did not fail as a whole, so
    /// the nodes' states (`/state`) are worth reading.
    pub(crate) fn has_failed_nodes(&self) -> bool {
        match &self.nodes {
            DeploymentNodes::ByState { ko, processing, .. } => {
                !ko.is_empty() || (self.ended() && !processing.is_empty())
            }
            _ => false,
        }
    }

    /// Whether Kadeploy shows no host of this deployment, so that only the
    /// request that started it knows them.
    pub(crate) fn hides_its_hosts(&self) -> bool {
        self.nodes == DeploymentNodes::Absent
    }

    /// One state per host, named as crus nodes. `requested` are the hosts
    /// the deployment was started for, when this process knows them: a run
    /// that failed as a whole shows its owner none.
    ///
    /// A host still `processing` when the workflow ended (it failed as a
    /// whole, or was cancelled) will not finish, so it counts as failed;
    /// every host of a run that failed as a whole fails with the run's error.
    pub(crate) fn node_states(
        &self,
        names: &HostNames,
        reasons: &FailureReasons,
        requested: Option<&BTreeSet<String>>,
    ) -> Vec<NodeBootStatus> {
        let failed = |host: &str| NodeBootState::Failed {
            reason: reasons.of(host, self.error),
        };
        let unfinished = |host: &str| {
            if self.ended() {
                failed(host)
            } else {
                NodeBootState::InProgress
            }
        };
        let states: Vec<(&str, NodeBootState)> = match &self.nodes {
            DeploymentNodes::ByState { ok, ko, processing } => ok
                .iter()
                .map(|host| (host.as_str(), NodeBootState::Ok))
                .chain(ko.iter().map(|host| (host.as_str(), failed(host))))
                .chain(
                    processing
                        .iter()
                        .map(|host| (host.as_str(), unfinished(host))),
                )
                .collect(),
            DeploymentNodes::Listed(hosts) => hosts
                .iter()
                .map(|host| (host.as_str(), unfinished(host)))
                .collect(),
            DeploymentNodes::Absent => requested
                .into_iter()
                .flatten()
                .map(|host| (host.as_str(), unfinished(host)))
                .collect(),
        };
        // A host Kadeploy lists twice (moving between lists while it
        // answers) is reported once, in its first (most final) state.
        let mut seen = BTreeSet::new();
        states
            .into_iter()
            .filter(|(host, _)| seen.insert(*host))
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

/// Why nodes failed: per host from `/state`, or for the whole run from
/// `/error`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FailureReasons {
    by_host: HashMap<String, String>,
    whole: Option<String>,
    /// Whether `by_host` came from an `/error` object, whose keys may not be
    /// hosts (`{"error": "..."}`); `/state`'s keys always are, and another
    /// host's error is no reason for this one.
    keys_may_not_be_hosts: bool,
}

/// One host's entry in `GET /deployment/{wid}/state` (`NodeState#set`:
/// each field is present only once set).
#[derive(Debug, Default, Deserialize)]
struct NodeStateEntry {
    #[serde(default, rename = "macro")]
    macro_step: Option<String>,
    #[serde(default)]
    micro: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl FailureReasons {
    /// The reasons in a `GET /deployment/{wid}/state` answer: each host's
    /// `error`, with the macro and micro step it failed in. A host with no
    /// `error` gets the generic reason.
    pub(crate) fn from_states(answer: &Value) -> Self {
        let mut reasons = FailureReasons::default();
        let Value::Object(hosts) = answer else {
            return reasons;
        };
        for (host, entry) in hosts {
            let state: NodeStateEntry = serde_json::from_value(entry.clone()).unwrap_or_default();
            if let Some(reason) = state.reason() {
                reasons.by_host.insert(host.clone(), reason);
            }
        }
        reasons
    }

    /// The reason in a `GET /deployment/{wid}/error` answer of a run that
    /// failed as a whole: its text, whatever the status (Kadeploy answers
    /// its own errors with a 400). Answers that say nothing (`{}`, empty)
    /// leave the generic reason; an object of texts by host (which some
    /// servers answer) gives per-host reasons.
    pub(crate) fn from_run_error(status: u16, text: &str) -> Self {
        let mut reasons = FailureReasons::default();
        let text = text.trim();
        let parsed = if status < 300 {
            serde_json::from_str::<Value>(text).ok()
        } else {
            None
        };
        match parsed {
            Some(Value::Null) => {}
            Some(Value::String(said)) if said.trim().is_empty() => {}
            Some(Value::String(said)) => reasons.whole = Some(said.trim().to_string()),
            Some(Value::Object(fields)) if fields.is_empty() => {}
            Some(Value::Object(fields)) => {
                reasons.keys_may_not_be_hosts = true;
                for (key, value) in &fields {
                    if let Some(said) = value.as_str() {
                        reasons.by_host.insert(key.clone(), said.to_string());
                    }
                }
                if reasons.by_host.is_empty() {
                    reasons.whole = Some(Value::Object(fields).to_string());
                }
            }
            Some(other) => reasons.whole = Some(other.to_string()),
            None if text.is_empty() => {}
            None => reasons.whole = Some(text.to_string()),
        }
        reasons
    }

    /// Reasons for when `what` could not be read at all.
    pub(crate) fn unreadable(what: &str, why: String) -> Self {
        FailureReasons {
            whole: Some(format!(
                "Kadeploy reported the node ko; its {what} could not be read: {why}"
            )),
            ..FailureReasons::default()
        }
    }

    /// The reason of a run that failed as a whole, for no host in particular.
    pub(crate) fn of_run(&self) -> String {
        self.of("", true)
    }

    /// The reason `host` failed; `run_failed`: the run failed as a whole.
    fn of(&self, host: &str, run_failed: bool) -> String {
        if let Some(reason) = self.by_host.get(host).or(self.whole.as_ref()) {
            return reason.clone();
        }
        if self.by_host.is_empty() || !self.keys_may_not_be_hosts {
            let generic = if run_failed {
                RUN_FAILED
            } else {
                NO_REASON_GIVEN
            };
            return generic.to_string();
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

impl NodeStateEntry {
    /// The node's `error` with the step it failed in: Kadeploy writes it as
    /// `"<macro>-<micro>: <stderr>"` already, so the step is added only when
    /// it is not there.
    fn reason(&self) -> Option<String> {
        let error = self
            .error
            .as_deref()
            .map(str::trim)
            .filter(|error| !error.is_empty())?;
        let step = match (self.macro_step.as_deref(), self.micro.as_deref()) {
            (Some(macro_step), Some(micro)) => Some(format!("{macro_step}-{micro}")),
            (Some(step), None) | (None, Some(step)) => Some(step.to_string()),
            (None, None) => None,
        };
        Some(match step {
            Some(step) if !error.starts_with(&step) => format!("{step}: {error}"),
            _ => error.to_string(),
        })
    }
}
