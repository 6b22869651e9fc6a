//! A page of a session's nodes read from its node keys alone (see
//! `nodes.rs`): the session key's revision (its name only, not its value),
//! then the keys of the groups the page falls in, at that revision, so a
//! page of a 100,000-node session reads a few of its 1,563 keys.

use crus_core::Result;
use crus_core::rollout::NodeRecord;
use crus_core::store::{NodePage, PageAfter, PageRead};
use etcd_client::GetOptions;
use uuid::Uuid;

use super::error::{EtcdError, from_etcd};
use super::nodes::{KEYS_PER_READ, NODES_PER_KEY, group_number};
use super::{EtcdStore, prefix_end};

/// Node groups as read: `(group number, its nodes)`, in order.
type Groups = Vec<(usize, Vec<NodeRecord>)>;

impl EtcdStore {
    /// [`crus_core::store::SessionStore::get_node_page`] from the node keys:
    /// `Ok(None)` when the session does not exist, `Ok(Some(None))` when it
    /// has no node key (no nodes yet, or a record written whole by an
    /// earlier release: read the whole record).
    pub(super) async fn read_node_page(
        &self,
        upgrade_id: Uuid,
        after: Option<PageAfter<'_>>,
        limit: usize,
    ) -> Result<Option<Option<PageRead>>> {
        let response = self
            .kv()
            .get(
                self.key(upgrade_id),
                Some(GetOptions::new().with_keys_only()),
            )
            .await
            .map_err(from_etcd)?;
        let Some(kv) = response.kvs().first() else {
            return Ok(None);
        };
        let at = kv.mod_revision();
        // As `read_nodes`: the revision of the last complete write, or the
        // newest keys once it was compacted away.
        match self.node_page_at(upgrade_id, at, after, limit).await {
            Err(error) if error.to_string().contains("compacted") => self
                .node_page_at(upgrade_id, 0, after, limit)
                .await
                .map(Some),
            other => other.map(Some),
        }
    }

    /// The page at revision `at` (0: the newest); `None` when the session
    /// has no node key.
    async fn node_page_at(
        &self,
        upgrade_id: Uuid,
        at: i64,
        after: Option<PageAfter<'_>>,
        limit: usize,
    ) -> Result<Option<PageRead>> {
        let start = match after {
            None => 0,
            Some(after) => match self.position_of(upgrade_id, at, after).await? {
                Found::At(position) => position + 1,
                Found::Nowhere => return Ok(Some(PageRead::UnknownAfter)),
                Found::NoKeys => return Ok(None),
            },
        };
        // The groups holding positions start ..= start + limit: the page
        // and the node after it, which says whether more follow.
        let first = start / NODES_PER_KEY;
        let last = start.saturating_add(limit) / NODES_PER_KEY;
        let groups = self
            .read_groups(upgrade_id, at, first, last.checked_add(1), None)
            .await?;
        if groups.is_empty() && start == 0 {
            return Ok(None);
        }
        let mut following = Vec::new();
        for (expected, (group, nodes)) in (first..).zip(groups) {
            if group != expected {
                return Err(damaged(
                    self.group_key(upgrade_id, expected),
                    "this node key of the session is missing".into(),
                ));
            }
            following.extend(nodes);
        }
        let skip = start - first * NODES_PER_KEY;
        let mut nodes: Vec<NodeRecord> = following.into_iter().skip(skip).collect();
        let more = nodes.len() > limit;
        nodes.truncate(limit);
        Ok(Some(PageRead::Page(NodePage { nodes, start, more })))
    }

    /// Where node `after` is: at its hinted position when the group there
    /// holds it there (one key read), else found by a pass over the groups
    /// a page of keys at a time (a page asked for by hand).
    async fn position_of(&self, upgrade_id: Uuid, at: i64, after: PageAfter<'_>) -> Result<Found> {
        if let Some(hint) = after.position {
            let group = hint / NODES_PER_KEY;
            let groups = self
                .read_groups(upgrade_id, at, group, group.checked_add(1), Some(1))
                .await?;
            let held = groups
                .first()
                .filter(|(number, _)| *number == group)
                .and_then(|(_, nodes)| nodes.get(hint % NODES_PER_KEY))
                .is_some_and(|node| node.id.as_str() == after.id);
            if held {
                return Ok(Found::At(hint));
            }
        }
        let mut from = 0;
        let mut any = false;
        loop {
            let groups = self
                .read_groups(upgrade_id, at, from, None, Some(KEYS_PER_READ))
                .await?;
            let Some((last, _)) = groups.last() else {
                return Ok(if any { Found::Nowhere } else { Found::NoKeys });
            };
            from = last + 1;
            any = true;
            for (group, nodes) in &groups {
                if let Some(index) = nodes.iter().position(|node| node.id.as_str() == after.id) {
                    return Ok(Found::At(group * NODES_PER_KEY + index));
                }
            }
            if groups.len() < usize::try_from(KEYS_PER_READ).unwrap_or(usize::MAX) {
                return Ok(Found::Nowhere);
            }
        }
    }

    /// The node keys of groups `from .. to` (to the last without `to`) at
    /// revision `at`, decoded, at most `max_keys` of them (all without).
    async fn read_groups(
        &self,
        upgrade_id: Uuid,
        at: i64,
        from: usize,
        to: Option<usize>,
        max_keys: Option<i64>,
    ) -> Result<Groups> {
        let prefix = self.nodes_prefix(upgrade_id);
        let end = match to {
            Some(to) => self.group_key(upgrade_id, to).into_bytes(),
            None => prefix_end(&prefix),
        };
        let mut start = self.group_key(upgrade_id, from).into_bytes();
        let mut groups = Groups::new();
        loop {
            let asked = max_keys
                .map(|max| max - i64::try_from(groups.len()).unwrap_or(i64::MAX))
                .unwrap_or(KEYS_PER_READ)
                .min(KEYS_PER_READ);
            if asked <= 0 {
                return Ok(groups);
            }
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(asked);
            if at > 0 {
                options = options.with_revision(at);
            }
            let response = self
                .kv()
                .get(start.clone(), Some(options))
                .await
                .map_err(from_etcd)?;
            for kv in response.kvs() {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let Some(group) = group_number(kv.key(), &prefix) else {
                    return Err(damaged(key, "it is not a node key".into()));
                };
                let nodes: Vec<NodeRecord> =
                    serde_json::from_slice(kv.value()).map_err(|error| {
                        damaged(
                            key.clone(),
                            format!("it is not a JSON array of nodes ({error})"),
                        )
                    })?;
                groups.push((group, nodes));
            }
            match response.kvs().last() {
                Some(last) if response.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => return Ok(groups),
            }
        }
    }
}

/// Where a node named by a page's `after` was found.
enum Found {
    /// At this position.
    At(usize),
    /// Not among the session's nodes.
    Nowhere,
    /// The session has no node key.
    NoKeys,
}

/// A node key that is not what this store writes.
fn damaged(key: String, problem: String) -> crus_core::Error {
    crus_core::Error::from(EtcdError::DamagedNodes { key, problem })
}
