//! An HTTP health probe: GET the policy's URL with `{node}` replaced by the
//! node name; any 2xx answer is healthy.

use crus_core::node::NodeId;

use crate::root_cause::root_cause;

/// The placeholder replaced by the node name in a probe URL.
const NODE_PLACEHOLDER: &str = "{node}";

/// Probes `template` for `node`: `None` when it answers 2xx, the failure
/// otherwise. A node whose endpoint cannot be reached yet (still booting)
/// fails the check; it is not an error of the prober.
pub(super) async fn get(client: &reqwest::Client, template: &str, node: &NodeId) -> Option<String> {
    let url = template.replace(NODE_PLACEHOLDER, node.as_str());
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(format!("GET {url} answered {}", response.status())),
        Err(error) if error.is_timeout() => Some(format!("GET {url} timed out")),
        Err(error) => Some(format!("GET {url} failed: {}", root_cause(&error))),
    }
}
