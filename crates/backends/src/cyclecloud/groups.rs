//! The groups crus creates itself on a CycleCloud cluster (a session's
//! upgrading and failed groups), kept in a small JSON file since CycleCloud
//! has no group API:
//!
//! ```json
//! {"groups": {"crus-upgrading-1": ["hpc-1", "hpc-2"], "crus-failed-1": []}}
//! ```
//!
//! Every change rereads the file, applies itself and replaces the file
//! atomically before the call returns (see `atomic_file`), so a call that
//! returned is on disk, a crash leaves the old file or the new one, and a
//! second [`CycleCloudInventory`](super::CycleCloudInventory) on the same
//! file in the same process sees the first one's groups. Changes are
//! serialised within one instance; two processes must not share the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::CycleCloudError;
use crate::atomic_file::replace_atomically;

/// Group labels and their members, in the order they were added.
pub(crate) type Groups = BTreeMap<String, Vec<String>>;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    #[serde(default)]
    groups: Groups,
}

/// The state file and the lock that serialises its changes.
#[derive(Debug)]
pub(crate) struct GroupStore {
    path: Arc<PathBuf>,
    /// Held across a whole read, change and write.
    writer: tokio::sync::Mutex<()>,
}

impl GroupStore {
    pub(crate) fn new(path: PathBuf) -> Self {
        GroupStore {
            path: Arc::new(path),
            writer: tokio::sync::Mutex::new(()),
        }
    }

    /// The groups on disk now; none when the file does not exist yet.
    pub(crate) async fn read(&self) -> Result<Groups, CycleCloudError> {
        let path = Arc::clone(&self.path);
        run_blocking(&self.path, move || read_file(&path)).await
    }

    /// Applies `change` to the groups on disk and writes them back when it
    /// says it changed something; returns what `change` returned.
    pub(crate) async fn update<T, Change>(&self, change: Change) -> Result<T, CycleCloudError>
    where
        T: Send + 'static,
        Change: FnOnce(&mut Groups) -> Result<(bool, T), CycleCloudError> + Send + 'static,
    {
        let _writer = self.writer.lock().await;
        let path = Arc::clone(&self.path);
        run_blocking(&self.path, move || {
            let mut groups = read_file(&path)?;
            let (changed, value) = change(&mut groups)?;
            if changed {
                write_file(&path, groups)?;
            }
            Ok(value)
        })
        .await
    }
}

/// Runs file IO on tokio's blocking pool: an fsync can take a while.
async fn run_blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T, CycleCloudError> + Send + 'static,
) -> Result<T, CycleCloudError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| state_error(path, format!("the file task failed: {error}")))?
}

fn state_error(path: &Path, message: String) -> CycleCloudError {
    CycleCloudError::StateFile {
        path: path.display().to_string(),
        message,
    }
}

fn read_file(path: &Path) -> Result<Groups, CycleCloudError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<GroupFile>(&bytes)
            .map(|file| file.groups)
            .map_err(|error| {
                state_error(
                    path,
                    format!(
                        "is not a crus group file ({error}); fix it or move it away (crus then starts with no groups of its own)"
                    ),
                )
            }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Groups::new()),
        Err(error) => Err(state_error(path, format!("cannot be read: {error}"))),
    }
}

fn write_file(path: &Path, groups: Groups) -> Result<(), CycleCloudError> {
    let bytes = serde_json::to_vec_pretty(&GroupFile { groups })
        .map_err(|error| state_error(path, format!("cannot be encoded: {error}")))?;
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".tmp");
    replace_atomically(path, Path::new(&temp_name), &bytes).map_err(|error| {
        state_error(
            path,
            format!("cannot be written: {error}; check that its directory exists and is writable"),
        )
    })
}
