//! `FileIdentity`: which file a store opened (device and inode), so a write
//! can tell that the path now names another file, or none: the database
//! removed, renamed, or replaced with its directory while crus runs. SQLite
//! would go on writing to the open file, and the next start would find the
//! sessions gone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::SqliteError;

/// The device and inode of the file a store opened, and its path.
#[derive(Debug)]
pub(super) struct FileIdentity {
    /// Where the file was opened.
    path: PathBuf,
    /// Its device and inode then.
    opened: (u64, u64),
}

impl FileIdentity {
    /// The identity of the file at `path` now.
    pub(super) fn of(path: &Path, location: &Arc<str>) -> Result<Self, SqliteError> {
        let opened = device_and_inode(path).map_err(|problem| SqliteError::Replaced {
            location: Arc::clone(location),
            problem,
        })?;
        Ok(FileIdentity {
            path: path.to_path_buf(),
            opened,
        })
    }

    /// `Ok` while the path still names the file that was opened.
    pub(super) fn check(&self, location: &Arc<str>) -> Result<(), SqliteError> {
        let replaced = |problem: String| SqliteError::Replaced {
            location: Arc::clone(location),
            problem,
        };
        let now = device_and_inode(&self.path).map_err(replaced)?;
        if now == self.opened {
            Ok(())
        } else {
            Err(replaced(format!(
                "was replaced by another file (device {} inode {}, was device {} inode {})",
                now.0, now.1, self.opened.0, self.opened.1
            )))
        }
    }
}

#[cfg(unix)]
fn device_and_inode(path: &Path) -> Result<(u64, u64), String> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(metadata) => Ok((metadata.dev(), metadata.ino())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err("is gone (the file or its directory was removed or renamed)".to_string())
        }
        Err(error) => Err(format!("cannot be looked at ({error})")),
    }
}

/// Elsewhere only the file's presence is checked.
#[cfg(not(unix))]
fn device_and_inode(path: &Path) -> Result<(u64, u64), String> {
    match std::fs::metadata(path) {
        Ok(_) => Ok((0, 0)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err("is gone (the file or its directory was removed or renamed)".to_string())
        }
        Err(error) => Err(format!("cannot be looked at ({error})")),
    }
}
