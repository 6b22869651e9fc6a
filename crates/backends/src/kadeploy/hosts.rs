//! crus node ids and Kadeploy host names: with `host_domain`, node
//! `econome-8` is host `econome-8.nantes.grid5000.fr`, and back.

use crus_core::node::NodeId;

/// Maps node ids to host names and back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostNames {
    /// `.nantes.grid5000.fr`, with its leading dot; `None`: ids are hosts.
    suffix: Option<String>,
}

impl HostNames {
    pub(crate) fn new(domain: Option<&str>) -> Self {
        let suffix = domain
            .map(|domain| domain.trim_matches('.'))
            .filter(|domain| !domain.is_empty())
            .map(|domain| format!(".{domain}"));
        HostNames { suffix }
    }

    /// The host Kadeploy knows `node` as. The domain is appended even to an
    /// id that ends with it, so that [`HostNames::node`] gives the id back.
    pub(crate) fn host(&self, node: &NodeId) -> String {
        match &self.suffix {
            Some(suffix) => format!("{}{suffix}", node.as_str()),
            None => node.as_str().to_string(),
        }
    }

    /// The node id of `host`, which Kadeploy reports in its lists.
    pub(crate) fn node(&self, host: &str) -> NodeId {
        let id = self
            .suffix
            .as_deref()
            .and_then(|suffix| host.strip_suffix(suffix))
            .filter(|id| !id.is_empty())
            .unwrap_or(host);
        NodeId::from(id)
    }
}
