//! `StatusView`: the read model the API serves sessions from — each session's
//! status as the JSON the API answers, and the listing of every status —
//! kept apart from [`SessionStore`]'s storage primitives, so a store keeps to
//! storing records and a view may be kept however reads are fastest (beside
//! the records, in a cache, or fed from the store's changes).

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::{SessionRecord, SessionStore, encoded_status, listing_order};
use crate::error::Result;

/// What `GET /session` and `GET /session/{id}` read: session statuses as
/// their JSON ([`SessionRecord::status_json`]), newest first.
///
/// Implemented by every store crus ships (memory, SQLite, etcd) for its own
/// records, and by [`RecordStatuses`] for any [`SessionStore`]: a view must
/// answer what decoding the store's current records would, once a write has
/// returned.
#[async_trait]
pub trait StatusView: Send + Sync {
    /// The status of session `upgrade_id`, exactly
    /// [`SessionRecord::status_json`] of its current record, if it exists.
    async fn get_status(&self, upgrade_id: Uuid) -> Result<Option<String>>;

    /// The status of every session, as [`StatusView::get_status`] answers
    /// each, in [`listing_order`] (newest first).
    async fn list_statuses(&self) -> Result<Vec<String>>;

    /// [`StatusView::list_statuses`] as one JSON array (what `GET /session`
    /// answers), shared so a view may keep it between calls while nothing
    /// changes.
    async fn list_statuses_json(&self) -> Result<Arc<str>> {
        Ok(Arc::from(json_array(&self.list_statuses().await?)))
    }
}

/// The statuses of any [`SessionStore`], decoded from its whole records at
/// each read: correct for every store, and what a store without a faster
/// view of its own answers with (the rollout state holds every node, the
/// status a few hundred bytes, so a store that can should keep statuses).
#[derive(Debug, Clone)]
pub struct RecordStatuses<S: ?Sized> {
    store: Arc<S>,
}

impl<S: SessionStore + ?Sized> RecordStatuses<S> {
    /// The statuses of `store`'s records.
    pub fn new(store: Arc<S>) -> Self {
        RecordStatuses { store }
    }
}

#[async_trait]
impl<S: SessionStore + ?Sized> StatusView for RecordStatuses<S> {
    async fn get_status(&self, upgrade_id: Uuid) -> Result<Option<String>> {
        status_of_stored(&*self.store, upgrade_id).await
    }

    async fn list_statuses(&self) -> Result<Vec<String>> {
        statuses_of_stored(&*self.store).await
    }
}

/// [`StatusView::get_status`] by decoding the record `upgrade_id` of
/// `store`: for stores whose view is their records.
pub async fn status_of_stored<S: SessionStore + ?Sized>(
    store: &S,
    upgrade_id: Uuid,
) -> Result<Option<String>> {
    match store.get(upgrade_id).await? {
        Some(record) => encoded_status_of(&record.value).map(Some),
        None => Ok(None),
    }
}

/// [`StatusView::list_statuses`] by decoding every record of `store`: for
/// stores whose view is their records.
pub async fn statuses_of_stored<S: SessionStore + ?Sized>(store: &S) -> Result<Vec<String>> {
    let mut records = store.list().await?;
    records.sort_by(|left, right| listing_order(&left.value, &right.value));
    records
        .iter()
        .map(|record| encoded_status_of(&record.value))
        .collect()
}

/// [`SessionRecord::status_json`], its failure as a core error naming the
/// session.
fn encoded_status_of(record: &SessionRecord) -> Result<String> {
    encoded_status(record.upgrade_id(), &record.status())
}

/// Encoded JSON values joined as one JSON array, byte for byte what serde
/// would write for the sequence of the values themselves.
pub fn json_array(values: &[String]) -> String {
    let length = values.iter().map(String::len).sum::<usize>() + values.len() + 2;
    let mut array = String::with_capacity(length);
    array.push('[');
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            array.push(',');
        }
        array.push_str(value);
    }
    array.push(']');
    array
}

#[cfg(test)]
mod tests {
    use super::json_array;

    #[test]
    fn a_json_array_is_what_serde_writes_for_the_values() {
        let values = vec![r#"{"a":1}"#.to_string(), "[2]".to_string()];
        assert_eq!(json_array(&values), r#"[{"a":1},[2]]"#);
        assert_eq!(json_array(&[]), "[]");
    }
}
