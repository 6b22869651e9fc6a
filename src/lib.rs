//! # crus
//!
//! Rolling upgrades of HPC compute nodes, a few at a time: drain them in the
//! workload manager, boot them into a new image, check they come back, return
//! them to service — while the rest of the machine keeps running jobs. A
//! faithful re-implementation of the Cray/HPE Compute Rolling Upgrade Service
//! (CRUS) API, as a library, a server and a CLI.
//!
//! This facade re-exports the library crates and assembles them:
//! - [`core`] (`crus-core`): the session model, the four ports, the planner,
//!   the rollout state machine, the controller and the session store.
//! - [`backends`] (`crus-backends`): backends for the ports, starting with the
//!   simulated cluster [`backends::sim`], each with its `crus.toml` settings.
//! - `server` (feature `server`, on by default): a server built from a
//!   `crus.toml` — ports, session store, leader election on etcd (feature
//!   `etcd`), HTTP API — in one call; `crus serve` is that call.
//! - `client` (feature `client`): a typed client of the CRUS API, for crus or
//!   Cray's CRUS; `crus session ...` is that client.
//!
//! See `examples/embed.rs` for a rolling upgrade of a simulated cluster in a
//! few dozen lines, `examples/serve.rs` for a server from a config file, and
//! `examples/client.rs` for a session created and followed through the API.

pub use crus_backends as backends;
pub use crus_core as core;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod server;

pub use crus_core::{Error, NodeId, Result, SessionSpec, SessionState, SessionStatus};

/// The README's examples, compiled by `cargo test --doc`.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
