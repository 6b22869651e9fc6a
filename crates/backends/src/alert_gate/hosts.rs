//! Which hosts a session's alert gate may name: any API client can write a
//! gate URL, and the server would fetch it and repeat what it answered in
//! the session's messages.

use crate::host_patterns::HostPatterns;

/// Host names, `*.domain` for every host of a domain, `*` for any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AllowedHosts(HostPatterns);

impl AllowedHosts {
    /// The hosts `entries` allow (compared without regard to case).
    pub(super) fn new(entries: &[String]) -> AllowedHosts {
        AllowedHosts(HostPatterns::new(entries))
    }

    fn allows(&self, host: &str) -> bool {
        self.0.allows(host)
    }

    /// Why `url` will not be asked, or `None` when it will.
    pub(super) fn refusal(&self, url: &str) -> Option<String> {
        let host = match host_of(url) {
            Ok(host) => host,
            Err(why) => return Some(why),
        };
        if self.allows(&host) {
            return None;
        }
        let allowed = self.0.listed();
        Some(format!(
            "This server asks only the monitoring hosts of its own [[gates]] and of \
             allowed_hosts in the [alert_gates] section of crus.toml ({allowed}); {host:?} is \
             not one of them. Ask the site to allow the host."
        ))
    }
}

/// The host of `url`.
pub(super) fn host_of(url: &str) -> Result<String, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|error| format!("{url:?} is not a URL ({error})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    }
    parsed
        .host_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{url:?} names no host"))
}
