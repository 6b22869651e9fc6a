//! crus backends: implementations of the `crus-core` ports.
//!
//! - [`sim`]: a simulated cluster replaying a real job trace, always built;
//!   it also holds [`sim::Faulty`], a fault-injecting wrapper for any port.
//! - `sqlite` (feature `sqlite`): `SqliteStore`, sessions in one SQLite file,
//!   the embedded default session store of `crus serve`.
//!
//! Real backends (Slurm, HSM, BOS, Redfish, ...) come behind cargo features.

pub mod sim;
#[cfg(feature = "sqlite")]
pub mod sqlite;
