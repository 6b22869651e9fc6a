//! A simulated cluster that outlives its process: its state saved to a file
//! after every change made through a port, for `crus serve --sim
//! --sim-state PATH`, so that a crash test can kill the server with SIGKILL
//! and find the cluster's nodes as it left them, like a real cluster's.
//!
//! What is saved, and when: the whole model, after every port call that
//! changes it (drain, resume, fail, group changes, boots, power), before the
//! call returns. Time passing is not saved: the model is deterministic and
//! port calls are its only inputs, so a process restarted from the last save
//! and advanced to the same time re-simulates exactly what the lost process
//! had simulated since (job ends, boot ends). A change the caller was told
//! about — a boot started, a node drained — is therefore never forgotten.
//!
//! Each save replaces the file atomically (write a temporary file in the same
//! directory, fsync it, rename it over the file, fsync the directory), so a
//! kill at any moment leaves either the previous state or the new one.
//!
//! Time across a restart: the file also records the wall time of the save;
//! [`SimCluster::open_scaled_with_state_file`] builds a [`ScaledClock`] that
//! continues from the saved simulated time plus the wall time that passed.
//!
//! One process at a time may use a state file: two would overwrite each
//! other's saves.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crus_core::clock::Clock;
use crus_core::{Error, Timestamp};
use serde::{Deserialize, Serialize};

use super::cluster::{SimCluster, SimState};
use super::config::SimConfig;
use super::faults::Faults;
use super::model::Model;
use super::scaled_clock::ScaledClock;
use crate::atomic_file::replace_atomically;

/// The layout of the state file. Bump it when the file (or the model's
/// serialised form) changes in a way an older build cannot read; an older
/// build then refuses the file instead of misreading it.
const FORMAT: u32 = 1;

/// What to do about a state file that cannot be used, at the end of every
/// such message.
const FRESH_START_ADVICE: &str = "delete it to start a fresh simulated cluster";

impl SimCluster {
    /// A cluster kept in the file at `path`: resumed from it if it exists,
    /// otherwise built from `config` (time zero `clock.now()`) and saved
    /// there at once. From then on, every port call that changes the cluster
    /// (drain, resume, fail, group changes, boots, power) saves it before
    /// returning, atomically, so a change a caller was told about survives a
    /// kill. Time passing alone is not saved: the cluster is deterministic,
    /// so a restart re-simulates from the last save exactly what happened
    /// since (boots ending, jobs ending). One process at a time per file.
    ///
    /// A resumed cluster is the saved one: `config` only has to match the
    /// configuration the file was made from (nodes, seed, boot time and
    /// jitter, faults, group, template, workload and its offset), which
    /// catches restarting with different options. `clock` should continue
    /// from the saved time ([`SimCluster::open_scaled_with_state_file`] does
    /// that); until it reaches the saved time the cluster stands still.
    ///
    /// Blocks on file IO; call it at startup.
    ///
    /// [`Error::Invalid`] when the file is damaged, was written by a newer
    /// crus or from another configuration, or `config` is inconsistent;
    /// [`Error::Other`] when it cannot be read; [`Error::Unavailable`] when
    /// the first save fails.
    pub fn open_with_state_file(
        path: &Path,
        config: SimConfig,
        clock: Arc<dyn Clock>,
    ) -> crus_core::Result<SimCluster> {
        let saved = read_state_file(path)?;
        open(path, config, clock, saved)
    }

    /// Like [`SimCluster::open_with_state_file`], with simulated time running
    /// `speed` times faster than the wall clock, as `crus serve --sim` wants:
    /// a new cluster starts at the wall clock's now; a resumed one continues
    /// at its saved time plus the wall time since that save times `speed`
    /// (see [`ScaledClock::resuming`]).
    ///
    /// Returns the clock too: the controller must read the same time.
    pub fn open_scaled_with_state_file(
        path: &Path,
        config: SimConfig,
        speed: f64,
    ) -> crus_core::Result<(SimCluster, Arc<ScaledClock>)> {
        let saved = read_state_file(path)?;
        let clock = Arc::new(match &saved {
            Some(saved) => ScaledClock::resuming(saved.state.now(), saved.saved_at, speed)?,
            None => ScaledClock::new(Timestamp::now(), speed)?,
        });
        let cluster = open(path, config, clock.clone(), saved)?;
        Ok((cluster, clock))
    }
}

impl SimCluster {
    /// The cluster saved at `path`, read-only and frozen at its saved time:
    /// for looking at what happened (boots per node, groups, drained nodes)
    /// after the server that ran it has stopped. Nothing is written back.
    ///
    /// [`Error::NotFound`] when there is no such file.
    pub fn inspect_state_file(path: &Path) -> crus_core::Result<SimCluster> {
        let saved = read_state_file(path)?.ok_or_else(|| {
            Error::not_found(format!("simulated cluster state file {}", path.display()))
        })?;
        let clock = Arc::new(FrozenClock(saved.state.now()));
        SimCluster::from_state(saved.state, clock)
    }
}

/// A clock that always reads the same time.
#[derive(Debug)]
struct FrozenClock(Timestamp);

impl Clock for FrozenClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// Builds or resumes the cluster, attaches the state file and saves once, so
/// an unwritable path fails at startup rather than at the first drain.
fn open(
    path: &Path,
    config: SimConfig,
    clock: Arc<dyn Clock>,
    saved: Option<SavedState>,
) -> crus_core::Result<SimCluster> {
    let digest = ConfigDigest::of(&config)?;
    let cluster = match saved {
        None => SimCluster::new(config, clock)?,
        Some(saved) => {
            digest.check_same(&saved.config, path)?;
            SimCluster::from_state(saved.state, clock).map_err(|error| StateFileError::Damaged {
                path: path.to_path_buf(),
                problem: error.to_string(),
            })?
        }
    };
    let file = Arc::new(StateFile::new(path, digest));
    let cluster = cluster.persisting_to(Arc::clone(&file));
    let snapshot = file.snapshot(&cluster.lock())?;
    snapshot.write()?;
    Ok(cluster)
}

/// The state file of a running cluster.
#[derive(Debug)]
pub(super) struct StateFile {
    /// The file.
    path: PathBuf,
    /// Where each save is written first: in the same directory, so renaming
    /// it over `path` is atomic; hidden, and reused, so a save interrupted by
    /// a kill leaves at most one stray file.
    temp_path: PathBuf,
    /// The configuration the cluster was built from, saved with the state.
    config: ConfigDigest,
    /// Numbers snapshots in the order they were taken, which is the order of
    /// the changes (snapshots are taken under the model's lock).
    taken: AtomicU64,
    /// The number of the snapshot last written. Held while writing, so
    /// writes never interleave and an older snapshot never replaces a newer.
    written: Mutex<u64>,
}

/// The model serialised after one change, to write.
pub(super) struct Snapshot {
    /// Where it goes.
    file: Arc<StateFile>,
    /// Its place in the order of changes.
    number: u64,
    /// The file's new contents.
    bytes: Vec<u8>,
}

/// The file as written. `state` comes last so the small header is readable
/// at the top of the file.
#[derive(Serialize)]
struct Saving<'a> {
    /// See [`FORMAT`].
    format: u32,
    /// The wall time of the save, to continue simulated time after a restart.
    saved_at: Timestamp,
    /// The configuration the cluster was built from.
    config: &'a ConfigDigest,
    /// The model, serialised as [`SimState`] is.
    state: &'a Model,
}

/// The file as read back.
#[derive(Deserialize)]
struct SavedState {
    /// See [`Saving::saved_at`].
    saved_at: Timestamp,
    /// See [`Saving::config`].
    config: ConfigDigest,
    /// The cluster's state.
    state: SimState,
}

/// Just the format, read first so that a newer layout is reported as such
/// rather than as damage.
#[derive(Deserialize)]
struct Header {
    /// See [`FORMAT`].
    format: u32,
}

/// What a resumed cluster's configuration must match: every option of
/// [`SimConfig`], the workload as a count and checksum (the full job list is
/// in the state already).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ConfigDigest {
    /// [`SimConfig::nodes`].
    nodes: usize,
    /// [`SimConfig::seed`].
    seed: u64,
    /// [`SimConfig::boot_time`].
    boot_time: Duration,
    /// [`SimConfig::boot_jitter`].
    boot_jitter: f64,
    /// [`SimConfig::faults`].
    faults: Faults,
    /// [`SimConfig::group`].
    group: String,
    /// [`SimConfig::template`].
    template: String,
    /// [`SimConfig::trace_offset`].
    trace_offset: Duration,
    /// [`SimConfig::workload`]: its number of jobs and the CRC-32 of their JSON.
    workload: String,
}

impl ConfigDigest {
    fn of(config: &SimConfig) -> Result<Self, StateFileError> {
        let jobs = serde_json::to_vec(&config.workload).map_err(StateFileError::Encode)?;
        let mut crc = flate2::Crc::new();
        crc.update(&jobs);
        Ok(ConfigDigest {
            nodes: config.nodes,
            seed: config.seed,
            boot_time: config.boot_time,
            boot_jitter: config.boot_jitter,
            faults: config.faults.clone(),
            group: config.group.clone(),
            template: config.template.clone(),
            trace_offset: config.trace_offset,
            workload: format!(
                "{} jobs, CRC-32 {:08x}",
                config.workload.jobs().len(),
                crc.sum()
            ),
        })
    }

    /// Checks that `saved`, read from the file at `path`, is this
    /// configuration, naming every option that differs.
    fn check_same(&self, saved: &ConfigDigest, path: &Path) -> Result<(), StateFileError> {
        let wanted = serde_json::to_value(self).map_err(StateFileError::Encode)?;
        let found = serde_json::to_value(saved).map_err(StateFileError::Encode)?;
        let (Some(wanted), Some(found)) = (wanted.as_object(), found.as_object()) else {
            return Ok(());
        };
        let differences: Vec<String> = wanted
            .iter()
            .filter(|(option, value)| found.get(*option) != Some(*value))
            .map(|(option, value)| {
                let saved = found
                    .get(option)
                    .map_or_else(|| "nothing".to_string(), ToString::to_string);
                format!("{option} is {saved} in the file but {value} now")
            })
            .collect();
        if differences.is_empty() {
            Ok(())
        } else {
            Err(StateFileError::OtherConfig {
                path: path.to_path_buf(),
                differences: differences.join("; "),
            })
        }
    }
}

/// The saved cluster at `path`, `None` if there is no file.
fn read_state_file(path: &Path) -> Result<Option<SavedState>, StateFileError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateFileError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let damaged = |error: serde_json::Error| StateFileError::Damaged {
        path: path.to_path_buf(),
        problem: format!("it is not a saved simulated cluster ({error})"),
    };
    let header: Header = serde_json::from_slice(&bytes).map_err(damaged)?;
    if header.format != FORMAT {
        return Err(StateFileError::OtherFormat {
            path: path.to_path_buf(),
            found: header.format,
        });
    }
    serde_json::from_slice(&bytes).map(Some).map_err(damaged)
}

impl StateFile {
    fn new(path: &Path, config: ConfigDigest) -> Self {
        let name = path
            .file_name()
            .map_or_else(|| "sim-state".into(), |name| name.to_string_lossy());
        StateFile {
            path: path.to_path_buf(),
            // One temporary file per process: replicas of a server that
            // share one simulated cluster save it too, and a shared name let
            // one rename away the file the other was about to rename.
            temp_path: path.with_file_name(format!(".{name}.{}.tmp", std::process::id())),
            config,
            taken: AtomicU64::new(0),
            written: Mutex::new(0),
        }
    }

    /// The file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Serialises `model` as the next save. Call it under the model's lock,
    /// right after the change, so the numbering follows the changes.
    pub(super) fn snapshot(self: &Arc<Self>, model: &Model) -> crus_core::Result<Snapshot> {
        let saving = Saving {
            format: FORMAT,
            saved_at: Timestamp::now(),
            config: &self.config,
            state: model,
        };
        let bytes = serde_json::to_vec(&saving).map_err(StateFileError::Encode)?;
        Ok(Snapshot {
            file: Arc::clone(self),
            number: self.taken.fetch_add(1, Ordering::SeqCst) + 1,
            bytes,
        })
    }
}

impl Snapshot {
    /// Writes the snapshot on tokio's blocking pool (fsync can take a while)
    /// and waits for it. If the caller stops waiting, the write still ends.
    ///
    /// [`Error::Unavailable`] when it could not be written: the change is
    /// made in memory but not saved, and repeating the (idempotent) call
    /// saves it.
    pub(super) async fn save(self) -> crus_core::Result<()> {
        let path = self.file.path.clone();
        let written = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(move || self.write())
                .await
                .map_err(|source| StateFileError::Worker { path, source })?,
            // Port calls always run on tokio; should one not, block instead.
            Err(_) => self.write(),
        };
        written.map_err(Error::from)
    }

    /// Writes the snapshot unless a newer one is on disk already (which
    /// holds this change too).
    fn write(self) -> Result<(), StateFileError> {
        let file = &self.file;
        // Held across the write: a panic in it leaves at worst a temporary
        // file, which the next write replaces, so the number is still right.
        let mut written = file.written.lock().unwrap_or_else(PoisonError::into_inner);
        if *written >= self.number {
            return Ok(());
        }
        replace_atomically(&file.path, &file.temp_path, &self.bytes).map_err(|source| {
            // Best effort: do not leave a partial temporary file behind.
            let _ = fs::remove_file(&file.temp_path);
            StateFileError::Write {
                path: file.path.clone(),
                source,
            }
        })?;
        *written = self.number;
        Ok(())
    }
}

/// What can go wrong with a state file. Private: callers see
/// [`crus_core::Error`] through the `From` impl below.
#[derive(Debug, thiserror::Error)]
enum StateFileError {
    /// The file exists but could not be read.
    #[error("cannot read the simulated cluster's state file {}: {source}; check its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },

    /// The file is not a saved cluster, or its state is inconsistent.
    #[error("the simulated cluster's state file {} is damaged: {problem}; {FRESH_START_ADVICE}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// The file has a layout this build does not know.
    #[error(
        "the simulated cluster's state file {} has format {found}, and this build of crus reads format {FORMAT}; \
         run the crus that wrote it, or {FRESH_START_ADVICE}",
        path.display()
    )]
    OtherFormat {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u32,
    },

    /// The file was made from another configuration.
    #[error(
        "the simulated cluster's state file {} was made with other simulation options ({differences}); \
         start with the options it was made with, or {FRESH_START_ADVICE}",
        path.display()
    )]
    OtherConfig {
        /// The file.
        path: PathBuf,
        /// Each option that differs, with both values.
        differences: String,
    },

    /// A save could not be written.
    #[error(
        "cannot save the simulated cluster's state to {}: {source}; the change is made but not saved, \
         check that the directory is writable and the disk has free space",
        path.display()
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },

    /// The blocking task writing a save panicked or was cancelled.
    #[error("the task saving the simulated cluster's state to {} stopped: {source}", path.display())]
    Worker {
        /// The file.
        path: PathBuf,
        /// tokio's error.
        source: tokio::task::JoinError,
    },

    /// The state could not be serialised (a bug, not a file problem).
    #[error("cannot serialise the simulated cluster's state: {0}")]
    Encode(serde_json::Error),
}

impl From<StateFileError> for Error {
    fn from(error: StateFileError) -> Self {
        match error {
            StateFileError::Damaged { .. }
            | StateFileError::OtherFormat { .. }
            | StateFileError::OtherConfig { .. } => Error::invalid(error.to_string()),
            // Retryable: the call that failed to save is idempotent, and
            // repeating it saves again (a full disk may have room by then).
            StateFileError::Write { .. } => Error::unavailable("sim", error.to_string()),
            StateFileError::Read { .. }
            | StateFileError::Worker { .. }
            | StateFileError::Encode(_) => Error::Other {
                backend: "sim",
                source: Box::new(error),
            },
        }
    }
}

#[cfg(test)]
mod tests;
