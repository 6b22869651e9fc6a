//! `[hooks]` of `crus.toml`: how the server runs a policy's site hooks,
//! read with serde and turned into a [`HookRunnerConfig`].

use serde::Deserialize;

use super::HookRunnerConfig;

/// `[hooks]`: whether policies' hook commands run on this server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookSettings {
    /// Whether policies may name a hook command, run on this server with
    /// its rights; off by default, so a token holder cannot run anything here.
    pub allow_commands: bool,
    /// The hosts a policy's HTTP hooks may call: host names, `*.domain`,
    /// or `*` (any host: any token holder could make the server POST to
    /// any URL). Empty by default: no HTTP hook is allowed.
    pub allowed_http_hosts: Vec<String>,
}

impl HookSettings {
    /// The runner's settings.
    pub fn to_config(&self) -> HookRunnerConfig {
        if self.allow_commands {
            tracing::warn!(
                "[hooks] allow_commands = true: sessions' hook commands run on this server with its rights"
            );
        }
        HookRunnerConfig {
            allow_commands: self.allow_commands,
            allowed_http_hosts: self.allowed_http_hosts.clone(),
        }
    }
}
