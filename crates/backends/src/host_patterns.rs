//! `HostPatterns`: the hosts a site lets the server fetch from when a URL
//! comes from an API client (a health probe's, an alert gate's), as the site
//! wrote them in crus.toml: host names, `*.domain` for every host of a
//! domain, `*` for any. One matcher, so both lists read the same way.

/// Host patterns, compared without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPatterns(Vec<String>);

impl HostPatterns {
    /// The patterns of `entries`, trimmed and in lower case.
    pub(crate) fn new(entries: &[String]) -> HostPatterns {
        HostPatterns(
            entries
                .iter()
                .map(|entry| entry.trim().to_ascii_lowercase())
                .collect(),
        )
    }

    /// Whether `host` matches a pattern: the same name, a `*.domain` it
    /// ends with, or `*`.
    pub(crate) fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.0.iter().any(|entry| {
            entry == "*"
                || *entry == host
                || entry
                    .strip_prefix('*')
                    .is_some_and(|suffix| suffix.starts_with('.') && host.ends_with(suffix))
        })
    }

    /// The patterns as a refusal names them: `a, b`, or `none`.
    pub(crate) fn listed(&self) -> String {
        if self.0.is_empty() {
            "none".to_string()
        } else {
            self.0.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_domains_and_any_host_match_without_regard_to_case() {
        let patterns = HostPatterns::new(&[" Monitor.Example.org ".into(), "*.lab.org".into()]);
        assert!(patterns.allows("monitor.example.org"));
        assert!(patterns.allows("PROM.lab.org"));
        assert!(!patterns.allows("lab.org"));
        assert!(!patterns.allows("evil-lab.org"));
        assert!(!patterns.allows("metadata.internal"));
        assert!(HostPatterns::new(&["*".into()]).allows("anything"));
        assert_eq!(patterns.listed(), "monitor.example.org, *.lab.org");
        assert_eq!(HostPatterns::new(&[]).listed(), "none");
    }
}
