//! crus backends: implementations of the `crus-core` ports.
//!
//! - [`sim`]: a simulated cluster replaying a real job trace, always built;
//!   it also holds [`sim::Faulty`], a fault-injecting wrapper for any port.
//! - `sqlite` (feature `sqlite`): `SqliteStore`, sessions in one SQLite file,
//!   the embedded default session store of `crus serve`.
//! - `etcd` (feature `etcd`): `EtcdStore`, sessions in etcd for several
//!   `crus serve` replicas, with writes fenced on a leader lease.
//! - `file_inventory` (feature `file-inventory`): `FileInventory`, node groups
//!   and node facts in a JSON file crus owns, for sites without HSM.
//!
//! - `alert_gate` (feature `alert-gate`): `SiteAlertGate`, which asks
//!   Prometheus and Alertmanager whether a session's alert gates block.
//! - `health` (feature `health`): `SiteHealthProbe`, which runs a policy's
//!   health command or HTTP probe on booted nodes.
//! - `hooks` (feature `hooks`): `SiteHookRunner`, which runs a policy's
//!   site hooks (commands and HTTP calls) around each node's drain and boot.
//! - [`no_workload_manager`]: `NoWorkloadManager`, for sites without one.
//! - `webhooks` (feature `webhooks`): rollout events POSTed to a site's
//!   URLs, signed with HMAC-SHA256, never blocking a rollout.
//! - `redfish` (feature `redfish`): `RedfishPowerControl`, node power
//!   through Redfish BMCs.
//! - `kadeploy` (feature `kadeploy`): `KadeployBootOrchestrator`, boots
//!   through Kadeploy3 deployments, and `KadeployPowerControl`, node power
//!   and reboots through Kadeploy3's power and reboot operations.
//! - `cyclecloud` (feature `cyclecloud`): Azure CycleCloud node arrays as the
//!   inventory, node power, and reimaging boots.
//! - `transport` (feature `transport`, enabled by every REST backend): the one
//!   HTTP client builder and retry loop they all use.
//!
//! Real backends (Slurm, HSM, BOS, Redfish, ...) come behind cargo features.

#[cfg(feature = "alert-gate")]
pub mod alert_gate;
mod atomic_file;
#[cfg(feature = "bos")]
pub mod bos;
#[cfg(feature = "cyclecloud")]
pub mod cyclecloud;
#[cfg(feature = "etcd")]
pub mod etcd;
/// The `[etcd]` settings alone, in a build without the etcd store: a server
/// still reads them, refuses unknown keys by name, and says how to build
/// one with etcd.
#[cfg(not(feature = "etcd"))]
pub mod etcd {
    mod settings;
    pub use settings::{DEFAULT_PREFIX, EtcdSettings};
}
#[cfg(feature = "file-inventory")]
pub mod file_inventory;
#[cfg(feature = "health")]
pub mod health;
#[cfg(feature = "hooks")]
pub mod hooks;
#[cfg(any(feature = "health", feature = "alert-gate", feature = "hooks"))]
mod host_patterns;
#[cfg(feature = "hsm")]
pub mod hsm;
#[cfg(feature = "kadeploy")]
pub mod kadeploy;
pub mod no_workload_manager;
#[cfg(feature = "redfish")]
pub mod redfish;
#[cfg(any(feature = "health", feature = "webhooks"))]
mod root_cause;
#[cfg(feature = "service")]
pub mod service;
// Used by the sections whose keys take one of a few names.
#[cfg(any(feature = "redfish", feature = "slurm"))]
mod setting_choice;
pub mod settings;
pub mod sim;
#[cfg(feature = "slurm")]
pub mod slurm;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "transport")]
pub mod transport;
#[cfg(feature = "webhooks")]
pub mod webhooks;
