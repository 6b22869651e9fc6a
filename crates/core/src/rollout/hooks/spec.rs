//! A site hook as a policy names it (`hooks: [{ at, per, command | http,
//! timeout, idempotent, on_failure }]`): what runs, where in a node's
//! upgrade, and what a failure means.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where in a node's upgrade a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HookPoint {
    /// Once the node is taken into a step, before its drain is asked for.
    PreDrain,
    /// Once the node is quiet (drained and running nothing), before its boot.
    PreBoot,
    /// Once the boot orchestrator says the node booted, before the health
    /// gate (its checks and soak) judges it.
    PostBoot,
}

impl HookPoint {
    /// The point as written in policies, messages and `CRUS_HOOK`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPoint::PreDrain => "pre_drain",
            HookPoint::PreBoot => "pre_boot",
            HookPoint::PostBoot => "post_boot",
        }
    }
}

/// Whether a hook runs once per node or once per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HookScope {
    /// Once for each node, as the node reaches the hook's point.
    #[default]
    Node,
    /// Once for each step, with the step's nodes that reached the hook's
    /// point, when none of the step's nodes is still before it.
    Step,
}

impl HookScope {
    /// The scope as written in policies and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            HookScope::Node => "node",
            HookScope::Step => "step",
        }
    }
}

/// What a failing hook does to the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HookOnFailure {
    /// The hook's nodes fail; the session goes on.
    #[default]
    FailNode,
    /// The hook's nodes fail and the session halts (no new node is taken
    /// until an operator resumes it).
    Halt,
}

/// An HTTP call a hook makes: the JSON body names the hook, session,
/// template, step and nodes; a 2xx answer is success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HookHttp {
    /// Where the call goes.
    pub url: String,
    /// `POST` (default) or `PUT`.
    #[serde(default = "default_method")]
    pub method: String,
}

fn default_method() -> String {
    "POST".to_string()
}

/// The longest a hook may run when its policy does not say.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// One site hook of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// Where in a node's upgrade it runs.
    pub at: HookPoint,
    /// Once per node (default) or once per step.
    #[serde(default)]
    pub per: HookScope,
    /// A program and its arguments, run without a shell on the crus server
    /// (only where `[hooks] allow_commands = true`); exit status 0 is success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// An HTTP call instead of a command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HookHttp>,
    /// How long it may run before it counts as failed (a command's process
    /// group is killed). Default 5m.
    #[serde(
        default = "default_timeout",
        with = "super::super::policy::humantime_serde_duration"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "5m"))]
    pub timeout: Duration,
    /// Whether running it twice does no harm: a run the server lost in a
    /// restart is then run again; otherwise its nodes fail (its outcome is
    /// unknown).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotent: bool,
    /// `fail_node` (default) or `halt`.
    #[serde(default)]
    pub on_failure: HookOnFailure,
}

fn default_timeout() -> Duration {
    DEFAULT_HOOK_TIMEOUT
}

impl Hook {
    /// What it runs, for messages: the command line or the HTTP call.
    pub fn target(&self) -> String {
        match (&self.command, &self.http) {
            (Some(argv), _) => format!("`{}`", argv.join(" ")),
            (None, Some(http)) => format!("{} {}", http.method, http.url),
            (None, None) => "nothing".to_string(),
        }
    }

    /// A short description for messages: `pre_boot hook `/opt/fw.sh``.
    pub fn describe(&self) -> String {
        let per = match self.per {
            HookScope::Node => "",
            HookScope::Step => " (per step)",
        };
        format!("{} hook {}{per}", self.at.as_str(), self.target())
    }

    /// What is wrong with it, one sentence each; empty when nothing is.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match (&self.command, &self.http) {
            (Some(_), Some(_)) => {
                problems.push("Give either command or http, not both.".to_string());
            }
            (None, None) => problems.push(
                "Give command (a program and its arguments) or http ({ url, method }).".to_string(),
            ),
            _ => {}
        }
        if let Some(argv) = &self.command
            && argv.first().is_none_or(|program| program.trim().is_empty())
        {
            problems
                .push("command must name a program first, e.g. [\"/opt/site/fw.sh\"].".to_string());
        }
        if let Some(http) = &self.http {
            if !(http.url.starts_with("http://") || http.url.starts_with("https://")) {
                problems.push(format!(
                    "http.url {:?} must be an http:// or https:// URL.",
                    http.url
                ));
            }
            if !matches!(http.method.as_str(), "POST" | "PUT") {
                problems.push(format!(
                    "http.method {:?} must be POST or PUT.",
                    http.method
                ));
            }
        }
        if self.timeout.is_zero() {
            problems.push("timeout must be longer than 0s.".to_string());
        }
        problems
    }
}

/// What a dry run says of `hooks`: one line per hook, in the order they
/// run at each point. A forecast counts no time for them.
pub fn hooks_plan(hooks: &[Hook]) -> Vec<String> {
    hooks
        .iter()
        .map(|hook| {
            let when = match hook.at {
                HookPoint::PreDrain => "before its drain",
                HookPoint::PreBoot => "once quiet, before its boot",
                HookPoint::PostBoot => "once booted, before the health gate",
            };
            let whom = match hook.per {
                HookScope::Node => "each node",
                HookScope::Step => "each step's nodes together",
            };
            let failure = match hook.on_failure {
                HookOnFailure::FailNode => "fails its nodes",
                HookOnFailure::Halt => "fails its nodes and halts the session",
            };
            format!(
                "Runs the {} hook {} for {whom} {when} (within {}; a failure {failure}); the \
                 forecast counts no time for it.",
                hook.at.as_str(),
                hook.target(),
                humantime::format_duration(hook.timeout)
            )
        })
        .collect()
}

/// The problems of a policy's hooks, each named with the hook's position.
pub(crate) fn hook_problems(hooks: &[Hook], drain_ahead: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (position, hook) in hooks.iter().enumerate() {
        for problem in hook.problems() {
            problems.push(format!("Hook {position}: {problem}"));
        }
        if drain_ahead && hook.at == HookPoint::PreDrain {
            problems.push(format!(
                "Hook {position}: pre_drain hooks cannot be combined with drain_ahead, which \
                 drains nodes before they are taken; leave one of them out."
            ));
        }
    }
    problems
}
