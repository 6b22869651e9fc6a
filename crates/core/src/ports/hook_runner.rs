//! `HookRunner`: runs a policy's site hooks (a command on the crus server,
//! or an HTTP call) at `pre_drain`, `pre_boot` and `post_boot`.
//!
//! The engine stays sans-IO: it asks for [`crate::rollout::Action::RunHook`]
//! after it persisted the run as started, and the controller asks this port.

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use crate::error::Result;
use crate::node::NodeId;
use crate::rollout::{Hook, HookScope};

/// One run of a hook: the hook and what it runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRequest {
    /// The hook, as the policy names it.
    pub hook: Hook,
    /// The session.
    pub session: Uuid,
    /// The session's boot template.
    pub template: String,
    /// The step the nodes belong to.
    pub step: u32,
    /// The node (a per-node hook), or the step's nodes that reached the
    /// hook's point (a per-step hook).
    pub nodes: Vec<NodeId>,
}

/// The JSON body of an HTTP hook (and what a command hook finds in its
/// environment: `CRUS_HOOK`, `CRUS_SESSION`, `CRUS_TEMPLATE`, `CRUS_STEP`,
/// `CRUS_NODE` for a per-node hook, `CRUS_NODES` for either).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookBody {
    /// `pre_drain`, `pre_boot` or `post_boot`.
    pub hook: &'static str,
    /// `node` or `step`.
    pub per: &'static str,
    /// The session id.
    pub session: Uuid,
    /// The session's boot template.
    pub template: String,
    /// The step number.
    pub step: u32,
    /// The node, for a per-node hook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    /// Every node the run is for.
    pub nodes: Vec<NodeId>,
}

impl HookRequest {
    /// What the hook is told, as a JSON body or environment.
    pub fn body(&self) -> HookBody {
        HookBody {
            hook: self.hook.at.as_str(),
            per: self.hook.per.as_str(),
            session: self.session,
            template: self.template.clone(),
            step: self.step,
            node: match self.hook.per {
                HookScope::Node => self.nodes.first().cloned(),
                HookScope::Step => None,
            },
            nodes: self.nodes.clone(),
        }
    }
}

/// Runs hooks.
///
/// Not idempotent in general (a hook may flash firmware): the engine asks
/// for a run once, and after a restart again only if the hook is marked
/// idempotent. A failing hook is an answer (`Ok(Some(why))`), not an error.
#[async_trait]
pub trait HookRunner: Send + Sync {
    /// `Ok(None)` when the hook succeeded, `Ok(Some(why))` when it failed,
    /// timed out or could not be run.
    async fn run(&self, request: &HookRequest) -> Result<Option<String>>;

    /// Why this runner will not run `hook` (for example, the server's
    /// configuration does not allow commands), or `None` when it will.
    /// Asked when a session is created, so such a policy is refused then.
    fn refuses(&self, hook: &Hook) -> Option<String> {
        let _ = hook;
        None
    }
}
