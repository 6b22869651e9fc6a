//! Azure CycleCloud backends, over the CycleCloud REST API of one cluster:
//!
//! - [`CycleCloudInventory`]: node arrays as groups, node facts from the
//!   node listing, and the groups crus creates kept in a state file;
//! - [`CycleCloudPowerControl`]: node power as VM start, shutdown and
//!   deallocation (the mapping is in its documentation);
//! - [`CycleCloudBootOrchestrator`]: boots as reimages, each node on a
//!   fresh VM from its node array's current image: `Fixed` nodes are
//!   terminated then started, the others removed then created again under
//!   the same name (why, and how a template is checked, in its
//!   documentation).
//!
//! All three share one [`CycleCloudClient`], made from a [`CycleCloudConfig`]:
//!
//! ```no_run
//! use std::sync::Arc;
//! use crus_backends::cyclecloud::{
//!     CycleCloudBootOrchestrator, CycleCloudClient, CycleCloudConfig, CycleCloudInventory,
//!     CycleCloudPowerControl, PasswordSource,
//! };
//!
//! # fn example() -> crus_core::Result<()> {
//! let config = CycleCloudConfig::new(
//!     "https://cyclecloud.example.com",
//!     "hpc",
//!     "crus",
//!     PasswordSource::File("/etc/crus/cyclecloud-password".into()),
//! )
//! .with_state_file("/var/lib/crus/cyclecloud-groups.json");
//! let client = Arc::new(CycleCloudClient::new(config)?);
//! let inventory = CycleCloudInventory::new(Arc::clone(&client));
//! let power = CycleCloudPowerControl::new(Arc::clone(&client));
//! let boots = CycleCloudBootOrchestrator::new(client);
//! # Ok(())
//! # }
//! ```
//!
//! Node operations are followed by their request ids (see `operation.rs`),
//! which crus derives deterministically, so every action is idempotent
//! across retries and restarts.

mod client;
mod config;
mod create;
mod error;
mod groups;
mod inventory;
mod nodes;
mod operation;
mod plan;
mod power;
mod reimage;
mod settings;

pub use client::CycleCloudClient;
pub use config::{CycleCloudConfig, PasswordSource};
pub use inventory::CycleCloudInventory;
pub use power::CycleCloudPowerControl;
pub use reimage::CycleCloudBootOrchestrator;
pub use settings::CycleCloudSettings;
