//! The site's hooks (a policy's `hooks`): a command run on the crus server
//! without a shell, or an HTTP call, at `pre_drain`, `pre_boot` and
//! `post_boot`. A hook that fails, times out or cannot be run is an
//! answer (its nodes fail), never an error retried: a hook may not be
//! idempotent, so it is not run twice unasked.

mod command;
mod http;
mod settings;

pub use settings::HookSettings;

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::ports::{HookRequest, HookRunner};
use crus_core::rollout::Hook;

use crate::host_patterns::HostPatterns;
use crate::transport::HttpClientSettings;

/// The backend name in errors and logs.
const BACKEND: &str = "hooks";

/// How [`SiteHookRunner`] runs hooks (`[hooks]` in `crus.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookRunnerConfig {
    /// Whether policies may name a command. A command runs on the crus
    /// server with the server's rights, so it is off unless the site turns
    /// it on: any client with a token could otherwise run anything there.
    pub allow_commands: bool,
    /// The hosts an HTTP hook may call: host names, `*.domain` for every
    /// host of a domain, `*` for any. Any API client can name a hook URL,
    /// so none is allowed unless the site lists it.
    pub allowed_http_hosts: Vec<String>,
}

/// Runs hook commands with `tokio::process` and HTTP hooks with reqwest.
#[derive(Debug, Clone)]
pub struct SiteHookRunner {
    config: HookRunnerConfig,
    /// `config.allowed_http_hosts`, ready to match.
    allowed_hosts: HostPatterns,
    client: reqwest::Client,
}

impl SiteHookRunner {
    /// A runner with `config`; fails only if no HTTP client can be built
    /// (no TLS roots on this system).
    pub fn new(config: HookRunnerConfig) -> Result<SiteHookRunner> {
        // Each call sets its hook's own timeout; this one only bounds connecting.
        let client = HttpClientSettings::new(crus_core::rollout::DEFAULT_HOOK_TIMEOUT)
            .build()
            .map_err(|error| Error::Other {
                backend: BACKEND,
                source: format!("cannot build the hooks' HTTP client: {error}").into(),
            })?;
        let allowed_hosts = HostPatterns::new(&config.allowed_http_hosts);
        Ok(SiteHookRunner {
            config,
            allowed_hosts,
            client,
        })
    }

    /// Why an HTTP hook to `url` will not be called, or `None` when it will.
    fn http_refusal(&self, url: &str) -> Option<String> {
        let host = match reqwest::Url::parse(url) {
            Ok(parsed) => match parsed.host_str() {
                Some(host) => host.to_string(),
                None => return Some(format!("{url:?} names no host")),
            },
            Err(error) => return Some(format!("{url:?} is not a URL ({error})")),
        };
        if self.allowed_hosts.allows(&host) {
            return None;
        }
        Some(format!(
            "This server calls only the hook hosts of allowed_http_hosts in the [hooks] section \
             of crus.toml ({}); {host:?} is not one of them. Ask the site to allow the host.",
            self.allowed_hosts.listed()
        ))
    }

    fn command_refusal() -> String {
        "This server does not run hook commands: a command would run on the crus server with \
         its rights. The site may allow them with `allow_commands = true` in the [hooks] \
         section of crus.toml; an HTTP hook (`http`) needs no such setting."
            .to_string()
    }
}

#[async_trait]
impl HookRunner for SiteHookRunner {
    async fn run(&self, request: &HookRequest) -> Result<Option<String>> {
        if let Some(argv) = &request.hook.command {
            if !self.config.allow_commands {
                return Ok(Some(Self::command_refusal()));
            }
            return Ok(command::run(argv, request).await);
        }
        if let Some(call) = &request.hook.http {
            if let Some(refusal) = self.http_refusal(&call.url) {
                return Ok(Some(refusal));
            }
            return Ok(http::call(&self.client, call, request).await);
        }
        Ok(Some(
            "the hook names neither a command nor an HTTP call".to_string(),
        ))
    }

    fn refuses(&self, hook: &Hook) -> Option<String> {
        if hook.command.is_some() && !self.config.allow_commands {
            return Some(Self::command_refusal());
        }
        hook.http
            .as_ref()
            .and_then(|call| self.http_refusal(&call.url))
    }
}

#[cfg(test)]
mod tests;
