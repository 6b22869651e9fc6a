//! Unit tests of crate internals (the HTTP API is tested end to end in `tests/api`).

mod auth;
mod dry_run;
mod jwks_url;
mod metrics;
mod status_view;
