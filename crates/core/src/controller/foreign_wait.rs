//! Admitting a session with `foreign_out_of_service: wait`: refused (422,
//! under `policy.foreign_out_of_service`) without a `drain_timeout`. The
//! wait for an owner to return their node is bounded by `drain_timeout`
//! only, and nothing supplies one by default (neither the engine's policy
//! nor the server's `[rollout]` defaults): a node whose owner never
//! returns it would hold its step, and the session, for ever.

use crate::rollout::{ForeignOutOfService, RolloutPolicy};
use crate::session::SessionSpec;

/// Why `spec` (over the server's `base` policy) cannot wait for foreign
/// nodes' owners, if it asks to and gives no `drain_timeout`.
pub(super) fn foreign_wait_refusal(spec: &SessionSpec, base: &RolloutPolicy) -> Option<String> {
    let policy = match &spec.policy {
        Some(request) => request.apply(base),
        None => base.clone(),
    };
    let unbounded = policy.foreign_out_of_service == ForeignOutOfService::Wait
        && policy.drain_timeout.is_none();
    unbounded.then(|| {
        "\"wait\" needs \"drain_timeout\", the longest crus waits for an owner to return a node \
         they hold out of service (after it the node is skipped); without one a node never \
         returned would hold the session for ever. Give policy.drain_timeout, or choose \
         \"upgrade_and_restore\" or \"skip\"."
            .to_string()
    })
}
