//! `WriterLock`: one `crus serve` per session database. An advisory lock
//! (`flock`) on a lock file beside the database, held for as long as the
//! store lives; the operating system releases it when the process ends,
//! however it ends, so a killed server never blocks the next start.
//!
//! SQLite's own locks keep two writers from corrupting the file, but not two
//! servers from both driving the same sessions (each would boot the same
//! nodes): that needs one server per file, which this lock enforces.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::SqliteError;

/// The lock on a session database, held until dropped.
#[derive(Debug)]
pub(super) struct WriterLock {
    /// The open, locked lock file: closing it releases the lock.
    _file: File,
}

/// The lock file of the database at `database`: its name with `.lock` added.
pub(super) fn lock_file_of(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl WriterLock {
    /// Takes the lock of the database at `database`, or says which process
    /// holds it. Never waits.
    pub(super) fn acquire(database: &Path, location: &Arc<str>) -> Result<Self, SqliteError> {
        let path = lock_file_of(database);
        let lock_file = path.display().to_string();
        let failed = |source| SqliteError::Lock {
            location: Arc::clone(location),
            lock_file: lock_file.clone(),
            source,
        };
        // Not truncated on open: the holder's pid must stay readable until
        // the lock is ours.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(failed)?;
        // rustix rather than std's `File::try_lock`, which needs Rust 1.89
        // (the workspace builds with 1.85).
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut holder = String::new();
                // Best effort: the holder writes its pid right after locking.
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "a process that has not written its pid yet".to_string(),
                };
                return Err(SqliteError::InUse {
                    location: Arc::clone(location),
                    lock_file,
                    holder,
                });
            }
            Err(errno) => return Err(failed(std::io::Error::from(errno))),
        }
        // Tells the next server who holds the lock; the lock, not this
        // content, is what excludes it.
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(failed)?;
        Ok(WriterLock { _file: file })
    }
}
