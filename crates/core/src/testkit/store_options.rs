//! Conformance checks of the server-wide options a [`SessionStore`] keeps
//! ([`SessionStore::get_options`], [`SessionStore::put_options`]): stored
//! and read back whole, revision-checked like a session, numbered from the
//! store-wide revisions. Each check leaves the options as it found their
//! value, so the suite can run on a shared store.

use super::session_store::{MakeRecord, forget, new_record};
use super::{CallResultExt, ConformanceError, expect_error};
use crate::error::Error;
use crate::options::ServerOptions;
use crate::store::{Revision, SessionStore};

/// Runs every options check in turn, stopping at the first failure.
pub async fn run_all(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    options_are_stored_and_read_back(store, make_record).await?;
    stale_options_writes_conflict(store, make_record).await?;
    Ok(())
}

/// Options written read back equal, at the revision the write returned,
/// larger than a session's written before.
pub async fn options_are_stored_and_read_back(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "store_options::options_are_stored_and_read_back";
    let before = store.get_options().await.or_fail(CHECK, "get_options()")?;
    let record = new_record(CHECK, make_record)?;
    let session_revision = store
        .create(&record)
        .await
        .or_fail(CHECK, "create(a record)")?;
    forget(store, record.upgrade_id()).await;
    let wanted = changed(before.as_ref().map(|stored| &stored.value));
    let written = store
        .put_options(&wanted, before.as_ref().map(|stored| stored.revision))
        .await
        .or_fail(CHECK, "put_options(new options, the revision read)")?;
    if written <= session_revision {
        return Err(ConformanceError::new(
            CHECK,
            format!(
                "put_options answered revision {}, not larger than revision {} of a session \
                 written before it",
                written.0, session_revision.0
            ),
        ));
    }
    let read = store
        .get_options()
        .await
        .or_fail(CHECK, "get_options() after put_options")?;
    let result = match read {
        Some(read) if read.value == wanted && read.revision == written => Ok(()),
        other => Err(ConformanceError::new(
            CHECK,
            format!(
                "get_options() after put_options should answer the options written at revision \
                 {}, but answered {other:?}",
                written.0
            ),
        )),
    };
    restore(store, before.map(|stored| stored.value), written).await;
    result
}

/// A write at a revision the options no longer have (or claiming none were
/// stored when some were) is [`Error::Conflict`] and changes nothing.
pub async fn stale_options_writes_conflict(
    store: &dyn SessionStore,
    _make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "store_options::stale_options_writes_conflict";
    let before = store.get_options().await.or_fail(CHECK, "get_options()")?;
    let first = changed(before.as_ref().map(|stored| &stored.value));
    let stored = store
        .put_options(&first, before.as_ref().map(|stored| stored.revision))
        .await
        .or_fail(CHECK, "put_options(options, the revision read)")?;
    let second = changed(Some(&first));
    let stale = Revision(stored.0.saturating_sub(1));
    let result = async {
        let is_conflict = |error: &Error| matches!(error, Error::Conflict { .. });
        expect_error(
            CHECK,
            "put_options(options, an older revision)",
            store.put_options(&second, Some(stale)).await,
            "Conflict",
            is_conflict,
        )?;
        expect_error(
            CHECK,
            "put_options(options, None) while options are stored",
            store.put_options(&second, None).await,
            "Conflict",
            is_conflict,
        )?;
        let read = store
            .get_options()
            .await
            .or_fail(CHECK, "get_options() after refused writes")?;
        match read {
            Some(read) if read.value == first && read.revision == stored => Ok(()),
            other => Err(ConformanceError::new(
                CHECK,
                format!(
                    "refused writes should leave the options written at revision {}, but \
                     get_options() answered {other:?}",
                    stored.0
                ),
            )),
        }
    }
    .await;
    restore(store, before.map(|stored| stored.value), stored).await;
    result
}

/// Options unlike `current`.
fn changed(current: Option<&ServerOptions>) -> ServerOptions {
    let mut options = current.cloned().unwrap_or_default();
    let rate = options.max_boots_per_minute.unwrap_or(0);
    options.max_boots_per_minute = Some(rate % 1000 + 1);
    options.log_level = Some("debug".to_string());
    options
        .boot_timeouts
        .insert("sim".to_string(), format!("{}m", rate % 1000 + 2));
    options
}

/// Puts the value the options had back (the defaults if none were stored).
async fn restore(store: &dyn SessionStore, value: Option<ServerOptions>, at: Revision) {
    if let Err(error) = store
        .put_options(&value.unwrap_or_default(), Some(at))
        .await
    {
        tracing::warn!(%error, "could not restore the server options after a conformance check");
    }
}
