//! An HTTP health probe: GET the policy's URL with `{node}` replaced by the
//! node name; any 2xx answer is healthy. Only the hosts the site allows
//! (`[health] allowed_http_hosts`) are probed: a probe URL comes from an API
//! client, and the server must not fetch whatever a token holder names
//! (a cloud metadata service, an internal admin page).

use crus_core::node::NodeId;

use crate::host_patterns::HostPatterns;
use crate::root_cause::root_cause;

/// The placeholder replaced by the node name in a probe URL.
pub(super) const NODE_PLACEHOLDER: &str = "{node}";

/// What stands for `{node}` while a template is parsed as a URL (a brace is
/// not allowed in a host name); lower case, as a parsed host is.
const PLACEHOLDER_HOST: &str = "crus-node-placeholder";

/// The hosts a prober may GET, as the site wrote them: host names
/// (`monitor.example.org`), `*.example.org` for any host of that domain,
/// `{node}` for the nodes themselves (a template whose host is `{node}`),
/// or `*` for any host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AllowedHosts(HostPatterns);

impl AllowedHosts {
    /// The hosts `entries` allow (compared without regard to case).
    pub(super) fn new(entries: &[String]) -> AllowedHosts {
        AllowedHosts(HostPatterns::new(entries))
    }

    /// Whether `host` (a template's host, `{node}` kept) is allowed.
    fn allows(&self, host: &str) -> bool {
        self.0.allows(host)
    }

    /// Why `template` will not be probed, or `None` when it will: it must
    /// be an `http://` or `https://` URL to an allowed host.
    pub(super) fn refusal(&self, template: &str) -> Option<String> {
        let host = match template_host(template) {
            Ok(host) => host,
            Err(why) => return Some(why),
        };
        if self.allows(&host) {
            return None;
        }
        let allowed = self.0.listed();
        Some(format!(
            "This server probes only the hosts in allowed_http_hosts of the [health] section \
             of crus.toml ({allowed}); {host:?} is not one of them. Probe the node itself \
             (http://{{node}}:PORT/...) or ask the site to allow the host."
        ))
    }

    /// Whether a redirect to `host` may be followed: an allowed host named
    /// in full (not through `{node}`).
    fn allows_redirect_to(&self, host: &str) -> bool {
        !host.contains(NODE_PLACEHOLDER) && self.allows(host)
    }
}

/// The host of probe URL template `template`, `{node}` kept as written.
fn template_host(template: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(&template.replace(NODE_PLACEHOLDER, PLACEHOLDER_HOST))
        .map_err(|error| {
            format!(
                "{template:?} is not a URL ({error}); write e.g. \"http://{{node}}:9100/healthy\""
            )
        })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{template:?} is not an http:// or https:// URL; write e.g. \"http://{{node}}:9100/healthy\""
        ));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{template:?} names no host"))?;
    Ok(host.replace(PLACEHOLDER_HOST, NODE_PLACEHOLDER))
}

/// The redirect policy of the probes' client: at most 3 redirects, each to
/// the host of the first request or to a host `allowed` names in full, so a
/// redirect cannot take a probe where a template could not.
pub(super) fn redirect_policy(allowed: AllowedHosts) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > 3 {
            return attempt.error("more than 3 redirects");
        }
        let host = attempt.url().host_str().unwrap_or_default().to_string();
        let first_host = attempt
            .previous()
            .first()
            .and_then(|url| url.host_str())
            .unwrap_or_default();
        if host.eq_ignore_ascii_case(first_host) || allowed.allows_redirect_to(&host) {
            attempt.follow()
        } else {
            attempt.error(format!(
                "redirected to {host}, which is not an allowed host"
            ))
        }
    })
}

/// Probes `template` for `node`: `None` when it answers 2xx, the failure
/// otherwise. A node whose endpoint cannot be reached yet (still booting)
/// fails the check; it is not an error of the prober.
pub(super) async fn get(
    client: &reqwest::Client,
    allowed: &AllowedHosts,
    template: &str,
    node: &NodeId,
) -> Option<String> {
    // A session stored before the site narrowed its list is held to it too.
    if let Some(refusal) = allowed.refusal(template) {
        return Some(refusal);
    }
    let url = template.replace(NODE_PLACEHOLDER, node.as_str());
    // The node name must not move the request to another host (a name with
    // `@` or `/` in it would).
    if let Ok(expected) = template_host(template) {
        let expected = expected.replace(NODE_PLACEHOLDER, &node.as_str().to_ascii_lowercase());
        let actual = reqwest::Url::parse(&url)
            .ok()
            .and_then(|parsed| parsed.host_str().map(str::to_string));
        if actual.as_deref() != Some(expected.as_str()) {
            return Some(format!(
                "GET {url} was not sent: the node name makes its host {actual:?}, not {expected:?}"
            ));
        }
    }
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(format!("GET {url} answered {}", response.status())),
        Err(error) if error.is_timeout() => Some(format!("GET {url} timed out")),
        Err(error) => Some(format!("GET {url} failed: {}", root_cause(&error))),
    }
}
