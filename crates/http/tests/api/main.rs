//! The HTTP API end to end, through the router (`oneshot`, no socket) over a
//! simulated cluster in paused tokio time; one test serves on a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod common;
mod controls;
mod dry_run_idempotency;
mod ops;
mod session;
mod ui;
