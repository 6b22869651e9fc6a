//! Which hosts a session's alert gate may name: any API client can write a
//! gate URL, and the server would fetch it and repeat what it answered in
//! the session's messages.

/// Host names, `*.domain` for every host of a domain, `*` for any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// The hosts `entries` allow (compared without regard to case).
    pub(super) fn new(entries: &[String]) -> AllowedHosts {
        AllowedHosts(
            entries
                .iter()
                .map(|entry| entry.trim().to_ascii_lowercase())
                .collect(),
        )
    }

    fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.0.iter().any(|entry| {
            entry == "*"
                || *entry == host
                || entry
                    .strip_prefix('*')
                    .is_some_and(|suffix| suffix.starts_with('.') && host.ends_with(suffix))
        })
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
        let allowed = if self.0.is_empty() {
            "none".to_string()
        } else {
            self.0.join(", ")
        };
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
