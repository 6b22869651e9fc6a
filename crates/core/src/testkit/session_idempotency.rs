//! Conformance checks of a [`SessionStore`]'s index of idempotency keys
//! ([`SessionStore::session_by_idempotency_key`]): a session created with a
//! key is found by it, and only while it exists; a key no session was
//! created with finds none (issue 25: the lookup used to decode every
//! record to find it).
//!
//! Every check works on a fresh id and key and removes what it created, so
//! the checks run against a shared store (etcd) too.

use uuid::Uuid;

use super::session_store::{MakeRecord, forget, new_record};
use super::{CallResultExt, ConformanceError};
use crate::store::{Idempotency, SessionStore};

/// Runs every check in turn, stopping at the first failure.
pub async fn run_all(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    a_session_is_found_by_its_idempotency_key_while_it_exists(store, make_record).await?;
    Ok(())
}

/// `session_by_idempotency_key(key)`, which must answer `expected`.
async fn expect_found(
    check: &'static str,
    store: &dyn SessionStore,
    key: &str,
    expected: Option<Uuid>,
    when: &str,
) -> Result<(), ConformanceError> {
    let call = format!("session_by_idempotency_key({key:?}) {when}");
    let found = store
        .session_by_idempotency_key(key)
        .await
        .or_fail(check, &call)?;
    if found == expected {
        Ok(())
    } else {
        Err(ConformanceError::new(
            check,
            format!("{call} should answer {expected:?}, but answered {found:?}"),
        ))
    }
}

/// A session created with a key is found by it (and a session created
/// without one, or another key, is not); once removed, it is not.
pub async fn a_session_is_found_by_its_idempotency_key_while_it_exists(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str =
        "session_idempotency::a_session_is_found_by_its_idempotency_key_while_it_exists";
    let key = format!("conformance-{}", Uuid::new_v4());
    let mut record = new_record(CHECK, make_record)?;
    record.desired.idempotency = Some(Idempotency {
        key: key.clone(),
        request: serde_json::json!({"starting_label": "compute"}),
    });
    let without = new_record(CHECK, make_record)?;
    let id = record.upgrade_id();
    let result = async {
        expect_found(CHECK, store, &key, None, "before any session has it").await?;
        let created = store
            .create(&record)
            .await
            .or_fail(CHECK, format!("create({id}) with an idempotency key"))?;
        store
            .create(&without)
            .await
            .or_fail(CHECK, "create() of a record without an idempotency key")?;
        expect_found(CHECK, store, &key, Some(id), "after the session's creation").await?;
        expect_found(
            CHECK,
            store,
            &format!("{key}-other"),
            None,
            "(a key no session has)",
        )
        .await?;
        store
            .delete(id, created)
            .await
            .or_fail(CHECK, format!("delete({id})"))?;
        expect_found(CHECK, store, &key, None, "after the session was removed").await
    }
    .await;
    forget(store, id).await;
    forget(store, without.upgrade_id()).await;
    result
}
