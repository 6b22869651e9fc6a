//! Replacing a file so that a crash at any point leaves either its old
//! contents or the new ones, never a mix: the backends that keep state in a
//! file (the simulated cluster's state, the file inventory) rely on it for
//! "a call that returned is durable".

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes`, writing through `temp_path` (which must be in
/// the same directory, so the rename is atomic). The new file keeps the old
/// one's permissions.
pub(crate) fn replace_atomically(path: &Path, temp_path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temp = File::create(temp_path)?;
    if let Ok(metadata) = fs::metadata(path) {
        temp.set_permissions(metadata.permissions())?;
    }
    temp.write_all(bytes)?;
    // The data must be on disk before the rename makes it the file.
    temp.sync_all()?;
    drop(temp);
    fs::rename(temp_path, path)?;
    sync_directory(path)
}

/// Makes the rename itself durable (a kill alone would not lose it, but a
/// power cut could).
#[cfg(unix)]
fn sync_directory(path: &Path) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)?.sync_all()
}

/// Directories cannot be opened for syncing here; the rename is already
/// atomic, which is what a kill needs.
#[cfg(not(unix))]
fn sync_directory(_path: &Path) -> io::Result<()> {
    Ok(())
}
