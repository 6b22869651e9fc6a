//! `AlertGate`: the site's monitoring asked whether a rollout may take more
//! nodes (a policy's `gates`: a Prometheus instant query, or Alertmanager's
//! firing alerts).
//!
//! The engine stays sans-IO: it asks for [`crate::rollout::Action::CheckGates`],
//! the controller asks this port, and each gate's answer comes back as a
//! [`GateVerdict`], an observation like the workload manager's.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One check of the site's monitoring that can hold a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GateFields", into = "GateFields")]
pub enum GateCheck {
    /// A Prometheus instant query (`GET {url}/api/v1/query`).
    Prometheus {
        /// The Prometheus server, e.g. `http://prometheus:9090`.
        url: String,
        /// The PromQL expression.
        query: String,
        /// When its answer blocks the session.
        block_when: BlockWhen,
    },
    /// Alertmanager's API v2 (`GET {url}/api/v2/alerts`): blocks while an
    /// active, unsilenced, uninhibited alert matches every filter.
    Alertmanager {
        /// The Alertmanager, e.g. `http://alertmanager:9093`.
        url: String,
        /// Label matchers such as `severity=critical` or `cluster=~"a|b"`,
        /// as Alertmanager's `filter` parameter takes them.
        filter: Vec<String>,
    },
}

/// When a Prometheus query's answer blocks the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockWhen {
    /// The query returns at least one series (an alert expression that fires).
    #[default]
    Nonempty,
    /// The query returns nothing (a liveness expression such as `up == 1`
    /// that lost its target).
    Empty,
}

impl BlockWhen {
    /// The value as written in requests.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockWhen::Nonempty => "nonempty",
            BlockWhen::Empty => "empty",
        }
    }
}

/// A gate as written in a policy or `crus.toml`: one object whose keys say
/// which kind it is, so both kinds read naturally and every mistake is
/// named in the error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateFields {
    /// Prometheus's base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
    /// With `prometheus`: the PromQL expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// With `prometheus`: `nonempty` (default) or `empty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_when: Option<BlockWhen>,
    /// Alertmanager's base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<String>,
    /// With `alertmanager`: label matchers, e.g. `["severity=critical"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter: Vec<String>,
}

impl TryFrom<GateFields> for GateCheck {
    type Error = String;

    fn try_from(fields: GateFields) -> std::result::Result<Self, String> {
        let web_url = |url: &str, key: &str| {
            if url.starts_with("http://") || url.starts_with("https://") {
                Ok(url.trim_end_matches('/').to_string())
            } else {
                Err(format!(
                    "{key} must be an http:// or https:// URL, not {url:?}"
                ))
            }
        };
        match (fields.prometheus, fields.alertmanager) {
            (Some(url), None) => {
                if !fields.filter.is_empty() {
                    return Err("filter applies to an alertmanager gate; a prometheus gate selects with its query".into());
                }
                let query = fields
                    .query
                    .filter(|query| !query.trim().is_empty())
                    .ok_or("a prometheus gate needs a query, e.g. query = \"ALERTS{alertstate=\\\"firing\\\"}\"")?;
                Ok(GateCheck::Prometheus {
                    url: web_url(&url, "prometheus")?,
                    query,
                    block_when: fields.block_when.unwrap_or_default(),
                })
            }
            (None, Some(url)) => {
                if fields.query.is_some() || fields.block_when.is_some() {
                    return Err("query and block_when apply to a prometheus gate; an alertmanager gate selects with filter".into());
                }
                if let Some(empty) = fields.filter.iter().find(|matcher| matcher.trim().is_empty()) {
                    return Err(format!("filter has an empty matcher ({empty:?}); write label=value"));
                }
                Ok(GateCheck::Alertmanager {
                    url: web_url(&url, "alertmanager")?,
                    filter: fields.filter,
                })
            }
            (Some(_), Some(_)) => Err(
                "a gate is either a prometheus query or an alertmanager filter, not both: give two gates".into(),
            ),
            (None, None) => Err(
                "a gate needs prometheus (with query) or alertmanager (with filter)".into(),
            ),
        }
    }
}

impl From<GateCheck> for GateFields {
    fn from(gate: GateCheck) -> Self {
        match gate {
            GateCheck::Prometheus {
                url,
                query,
                block_when,
            } => GateFields {
                prometheus: Some(url),
                query: Some(query),
                block_when: Some(block_when),
                ..GateFields::default()
            },
            GateCheck::Alertmanager { url, filter } => GateFields {
                alertmanager: Some(url),
                filter,
                ..GateFields::default()
            },
        }
    }
}

impl GateCheck {
    /// The gate in a few words, for messages: `alertmanager http://am:9093
    /// (severity=critical)`.
    pub fn describe(&self) -> String {
        match self {
            GateCheck::Prometheus {
                url,
                query,
                block_when,
            } => format!(
                "prometheus {url} query {query:?} (blocks when {})",
                block_when.as_str()
            ),
            GateCheck::Alertmanager { url, filter } if filter.is_empty() => {
                format!("alertmanager {url} (any alert)")
            }
            GateCheck::Alertmanager { url, filter } => {
                format!("alertmanager {url} ({})", filter.join(", "))
            }
        }
    }
}

/// What one gate answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateVerdict {
    /// The gate, as [`GateCheck::describe`] says it.
    pub gate: String,
    /// What blocks: the firing alerts or the series the query returned
    /// (`HighLoad{cluster="a"}`), or why an empty answer blocks. Empty when
    /// the gate is clear.
    pub blocking: Vec<String>,
    /// Why the gate could not be asked, when it could not: the gate then
    /// blocks (fail closed).
    pub unreachable: Option<String>,
}

impl GateVerdict {
    /// Whether this gate holds the session.
    pub fn blocks(&self) -> bool {
        !self.blocking.is_empty() || self.unreachable.is_some()
    }

    /// Why it blocks, in one sentence fragment, or `None` when clear.
    pub fn reason(&self) -> Option<String> {
        if let Some(why) = &self.unreachable {
            return Some(format!(
                "{} cannot be reached, which blocks like an alert: {why}",
                self.gate
            ));
        }
        if self.blocking.is_empty() {
            return None;
        }
        Some(format!("{} fires: {}", self.gate, self.blocking.join(", ")))
    }
}

/// Asks the site's monitoring a [`GateCheck`].
///
/// Idempotent: it only reads.
#[async_trait]
pub trait AlertGate: Send + Sync {
    /// What blocks now: each firing alert or returned series as a short
    /// text, empty when the gate is clear. An error means the monitoring
    /// could not be asked (the session then holds: fail closed).
    async fn blocking(&self, gate: &GateCheck) -> Result<Vec<String>>;

    /// Why this server will not ask `gate` (a host the site did not
    /// allow), or `None` when it will. Asked when a session is created.
    fn refuses(&self, gate: &GateCheck) -> Option<String> {
        let _ = gate;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_kinds_parse_and_round_trip() {
        let gates: Vec<GateCheck> = serde_json::from_value(json!([
            {"prometheus": "http://prom:9090/", "query": "up == 0"},
            {"alertmanager": "http://am:9093", "filter": ["severity=critical"]}
        ]))
        .unwrap();
        assert_eq!(
            gates[0],
            GateCheck::Prometheus {
                url: "http://prom:9090".into(),
                query: "up == 0".into(),
                block_when: BlockWhen::Nonempty
            }
        );
        let back: Vec<GateCheck> =
            serde_json::from_value(serde_json::to_value(&gates).unwrap()).unwrap();
        assert_eq!(back, gates);
    }

    #[test]
    fn mistakes_are_named() {
        for (gate, says) in [
            (
                json!({"prometheus": "http://p", "alertmanager": "http://a"}),
                "not both",
            ),
            (json!({"prometheus": "http://p"}), "needs a query"),
            (json!({"prometheus": "ftp://p", "query": "x"}), "http://"),
            (
                json!({"alertmanager": "http://a", "query": "x"}),
                "prometheus gate",
            ),
            (
                json!({"alertmanager": "http://a", "filter": [""]}),
                "empty matcher",
            ),
            (json!({}), "needs prometheus"),
            (
                json!({"alertmanager": "http://a", "colour": 1}),
                "unknown field",
            ),
        ] {
            let error = serde_json::from_value::<GateCheck>(gate.clone()).unwrap_err();
            assert!(error.to_string().contains(says), "{gate}: {error}");
        }
    }

    #[test]
    fn an_unreachable_gate_blocks() {
        let verdict = GateVerdict {
            gate: "alertmanager http://a (any alert)".into(),
            blocking: vec![],
            unreachable: Some("connection refused".into()),
        };
        assert!(verdict.blocks());
        assert!(verdict.reason().unwrap().contains("cannot be reached"));
    }
}
