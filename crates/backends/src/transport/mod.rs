//! The one HTTP transport of every REST backend (HSM, BOS, Redfish,
//! Kadeploy, CycleCloud, webhooks, the health `http` probe) and of the API's
//! JWKS fetch: how the client is built ([`HttpClientSettings`]: rustls, the
//! site's CA file, the `insecure` switch, timeouts, redirects) and when a
//! failed request is sent again ([`send_with_retries`]: jittered exponential
//! backoff on connection errors, timeouts and 5xx, for idempotent requests
//! only, see [`Repeat`]).
//!
//! Each backend keeps its own error type and what it makes of an answer;
//! this module holds what they all do the same way, so a fix to TLS or to
//! retries is made once.
//!
//! No REST backend authenticates with a client certificate today (Redfish,
//! Kadeploy and CycleCloud use passwords, HSM and BOS bearer tokens), so the
//! builder has no setting for one.

mod builder;
mod retry;

pub use builder::{HttpClientSettings, TransportError};
pub use retry::{MAX_RETRY_DELAY, Repeat, Retries, TryFailure, send_with_retries};

#[cfg(test)]
mod tests;
