//! The SQLite store's [`StatusView`]: statuses read from the `statuses`
//! table written beside each record (never decoding a record), a session's
//! status on the caller's task through the read-only connection when it is
//! free, and the listing kept while the file's `data_version` stays the same.

use std::sync::{Arc, TryLockError};

use async_trait::async_trait;
use crus_core::Result;
use crus_core::store::StatusView;
use uuid::Uuid;

use super::error::At;
use super::{
    SqliteStore, data_version, is_status_of, lock, read_listing, read_status, rebuilt_status,
};

#[async_trait]
impl StatusView for SqliteStore {
    async fn get_status(&self, upgrade_id: Uuid) -> Result<Option<String>> {
        let id = upgrade_id.to_string();
        // One indexed row of a file in WAL mode: microseconds, and the reader
        // never waits for a lock (its busy timeout is zero), so it may run on
        // this task. When the reader is in use, or the read failed (SQLite
        // busy with a recovery, say), the read is made again the usual way,
        // on the blocking pool with the writing connection, which waits.
        if let Some(reader) = &self.reader {
            let guard = match reader.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(connection) = guard
                && let Ok(status) = read_status(&connection, &self.location, &id)
            {
                return Ok(status);
            }
        }
        self.run(move |connection, location| read_status(connection, location, &id))
            .await
    }

    async fn list_statuses(&self) -> Result<Vec<String>> {
        // The order of `crus_core::store::listing_order`: newest first, ties
        // by id (a UUID's text sorts as its bytes do).
        self.run(|connection, location| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT upgrade_id, status FROM statuses ORDER BY created_at_ms DESC, upgrade_id",
                )
                .at(location)?;
            let rows = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .at(location)?;
            rows.map(|row| {
                let (id, status): (String, String) = row.at(location)?;
                if is_status_of(&status, &id) {
                    Ok(status)
                } else {
                    rebuilt_status(connection, location, &id)
                }
            })
            .collect()
        })
        .await
    }

    async fn list_statuses_json(&self) -> Result<Arc<str>> {
        // The version check is one read of the WAL index, microseconds on
        // this task; the reader is only ever held that long.
        let version = self
            .reader
            .as_ref()
            .and_then(|reader| data_version(&lock(reader), &self.location).ok());
        if let Some(version) = version
            && let Some((cached, listing)) = &*lock(&self.listing)
            && *cached == version
        {
            return Ok(Arc::clone(listing));
        }
        // Read after the version: a commit in between changes the version
        // again, so a listing newer than its version is refreshed at the
        // next call, never kept as if current.
        let listing: Arc<str> = Arc::from(self.run(read_listing).await?);
        if let Some(version) = version {
            *lock(&self.listing) = Some((version, Arc::clone(&listing)));
        }
        Ok(listing)
    }
}
