//! Unit tests of crate internals (the HTTP API is tested end to end in `tests/api`).

mod auth;
mod jwks_url;
mod metrics;
