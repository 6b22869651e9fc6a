//! Shared HTTP transport of the Cray services (HSM, BOS): where they are, how
//! to authenticate, which CA to trust, how long to wait and when to retry.
//!
//! Every backend of a Cray service builds one [`ServiceClient`] from a
//! [`ServiceConfig`]. The client retries only what may succeed later
//! (connection failures, timeouts, 5xx) and turns RFC 7807 problem answers
//! into a private error the backend can inspect before mapping it into the
//! core [`Error`](crus_core::error::Error).

// The helpers are crate-private and used by the `hsm` and `bos` backends; a
// build with only `service` has no user of them.
#![cfg_attr(
    not(any(feature = "hsm", feature = "bos")),
    allow(dead_code, unused_imports)
)]

mod client;
mod config;
mod error;
mod settings;
mod token;

pub use client::ServiceClient;
pub(crate) use client::path_segment;
pub use config::{ServiceConfig, TokenSource};
pub(crate) use error::ServiceError;
pub use settings::ServiceSettings;

#[cfg(test)]
mod tests;
