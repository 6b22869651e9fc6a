//! crus-core: the domain of rolling upgrades of HPC compute nodes.
//!
//! - [`session`]: the CRUS session resource (`SessionSpec`, `SessionStatus`).
//! - [`ports`]: the four traits through which crus acts on a site
//!   (`Inventory`, `WorkloadManager`, `BootOrchestrator`, `PowerControl`).
//! - [`plan`]: the pure planner that orders nodes into steps.
//! - [`rollout`]: the sans-IO state machine of one session.
//! - [`controller`]: the async shell that runs rollouts against the ports.
//! - [`store`]: durable sessions with revision-checked writes.
//! - [`options`]: the server-wide options an operator changes live (`/options`).
//!
//! The state machine is deterministic: it never reads a clock or does IO, so
//! the same inputs always give the same actions.

pub mod clock;
pub mod controller;
pub mod dry_run;
pub mod error;
pub mod node;
pub mod options;
pub mod plan;
pub mod ports;
pub mod rollout;
pub mod session;
pub mod store;
#[cfg(any(feature = "testkit", test))]
pub mod testkit;
pub mod time;

pub use error::{Error, Result};
pub use node::{NodeFacts, NodeId, Xname};
pub use session::{SessionSpec, SessionState, SessionStatus};
pub use time::Timestamp;
