//! A session's nodes in etcd: keys apart from the session's own key, so a
//! write of the controller sends the nodes that changed, not the whole
//! record (which outgrows etcd's request limit on a large machine: 10,000
//! nodes are about 2 MB of JSON, etcd takes 1.5 MiB by default).
//!
//! Layout: the session key `<prefix>sessions/<id>` holds the record without
//! its nodes (the header, `"nodes": []`); its nodes are under
//! `<prefix>sessions/<id>/nodes/<group>`, [`NODES_PER_KEY`] nodes a key
//! (group `g`, eight digits, holds the nodes at positions `64 g ..`), a JSON
//! array each. A key per group rather than per node: an etcd transaction
//! holds at most 128 operations by default, and a step moves hundreds of
//! nodes, mostly neighbours in the inventory order.
//!
//! A write goes in as few transactions as etcd's limits allow: at most
//! [`MAX_OPS_PER_TXN`] operations and [`MAX_TXN_BYTES`] of keys and values
//! each. Every one compares the session key's mod revision with the one the
//! write expects, and the leader fence; only the last one writes the
//! session key, so the record's revision moves only once every node of the
//! write is stored, and the controller acts (persist before act) only after
//! that last one. A write cut short (the process dies, the leader is
//! deposed, a compare fails between two of its transactions) leaves node
//! keys newer than the session key; they are not part of any record:
//!
//! - a read takes the session key, then its node keys *at the session key's
//!   mod revision* (etcd keeps every revision until it is compacted), so it
//!   sees exactly the nodes of the last complete write;
//! - the next write of the session finds the node keys newer than the
//!   revision it expects (one keys-only read, which also counts them) and
//!   writes those groups again from its own state, so they match the
//!   record again once that write is complete.
//!
//! Another writer of the session key between two transactions of a split
//! write (the API storing an operator's request) makes the node keys
//! written so far part of its revision; the split write then fails its next
//! compare, and the controller writes its state again at once (re-reading
//! the request), so the record is whole again a moment later. Only writes
//! of more than [`MAX_OPS_PER_TXN`] node keys or [`MAX_TXN_BYTES`] are
//! split: the snapshot of a machine of over 6,400 nodes, a step of
//! thousands of scattered nodes.
//!
//! One case is not covered: if the cut-short write was followed by no other
//! write of the session until etcd compacted the revision the session key
//! was written at (a session idle for longer than the cluster's compaction
//! retention), the read falls back to the newest node keys and may see the
//! cut-short write's nodes. It says so in the log.

use std::collections::BTreeSet;

use crus_core::Result;
use crus_core::rollout::NodeRecord;
use etcd_client::{GetOptions, TxnOp};
use uuid::Uuid;

use super::error::{EtcdError, from_etcd};
use super::{EtcdStore, prefix_end};

/// How many nodes one node key holds.
pub(super) const NODES_PER_KEY: usize = 64;

/// The most operations one transaction of a write holds: etcd refuses more
/// than 128 by default (`--max-txn-ops`); the rest is room for the session
/// key, the claims and the reads of a failed compare.
pub(super) const MAX_OPS_PER_TXN: usize = 100;

/// The most bytes of keys and values one transaction of a write holds:
/// etcd refuses requests over 1.5 MiB by default (`--max-request-bytes`).
pub(super) const MAX_TXN_BYTES: usize = 1024 * 1024;

/// How many node keys a read asks for at once: a reply stays a few MB.
pub(super) const KEYS_PER_READ: i64 = 128;

/// The groups of `positions` (a group of [`NODES_PER_KEY`] nodes a key).
pub(super) fn groups_of(positions: impl Iterator<Item = usize>) -> BTreeSet<usize> {
    positions.map(|position| position / NODES_PER_KEY).collect()
}

/// How many node keys `count` nodes take.
pub(super) fn group_count(count: usize) -> usize {
    count.div_ceil(NODES_PER_KEY)
}

/// The node keys of a session as a write finds them.
pub(super) struct StoredGroups {
    /// How many there are.
    pub(super) count: usize,
    /// Those written after the revision the write expects: left by a write
    /// cut short.
    pub(super) newer: BTreeSet<usize>,
}

impl EtcdStore {
    /// The prefix of session `upgrade_id`'s node keys.
    pub(super) fn nodes_prefix(&self, upgrade_id: Uuid) -> String {
        format!("{}{upgrade_id}/nodes/", self.sessions_prefix())
    }

    /// The key of group `group` of session `upgrade_id`'s nodes.
    pub(super) fn group_key(&self, upgrade_id: Uuid, group: usize) -> String {
        format!("{}{group:08}", self.nodes_prefix(upgrade_id))
    }

    /// The puts of `groups` of `nodes`, session `upgrade_id`'s nodes, each
    /// with its size in bytes.
    pub(super) fn group_puts(
        &self,
        upgrade_id: Uuid,
        nodes: &[NodeRecord],
        groups: &BTreeSet<usize>,
    ) -> Result<Vec<(TxnOp, usize)>> {
        groups
            .iter()
            .filter_map(|&group| {
                let start = group * NODES_PER_KEY;
                let end = (start + NODES_PER_KEY).min(nodes.len());
                nodes.get(start..end).map(|slice| (group, slice))
            })
            .map(|(group, slice)| {
                let value = serde_json::to_vec(slice).map_err(EtcdError::Encode)?;
                let key = self.group_key(upgrade_id, group);
                let size = key.len() + value.len();
                Ok((TxnOp::put(key, value, None), size))
            })
            .collect()
    }

    /// Deletes session `upgrade_id`'s node keys from group `from` on.
    pub(super) fn groups_delete_from(&self, upgrade_id: Uuid, from: usize) -> TxnOp {
        let prefix = self.nodes_prefix(upgrade_id);
        TxnOp::delete(
            self.group_key(upgrade_id, from),
            Some(etcd_client::DeleteOptions::new().with_range(prefix_end(&prefix))),
        )
    }

    /// Session `upgrade_id`'s node keys as a write expecting revision
    /// `expected` finds them: one keys-only read.
    pub(super) async fn stored_groups(
        &self,
        upgrade_id: Uuid,
        expected: i64,
    ) -> Result<StoredGroups> {
        let prefix = self.nodes_prefix(upgrade_id);
        let response = self
            .kv()
            .get(
                prefix.as_str(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .map_err(from_etcd)?;
        let newer = response
            .kvs()
            .iter()
            .filter(|kv| kv.mod_revision() > expected)
            .filter_map(|kv| group_number(kv.key(), &prefix))
            .collect();
        Ok(StoredGroups {
            count: response.kvs().len(),
            newer,
        })
    }

    /// Session `upgrade_id`'s nodes as of etcd revision `at` (the session
    /// key's mod revision), in order; the newest ones when `at` was
    /// compacted away (see the file's header).
    pub(super) async fn read_nodes(&self, upgrade_id: Uuid, at: i64) -> Result<Vec<NodeRecord>> {
        match self.read_nodes_at(upgrade_id, at).await {
            Err(error) if error.to_string().contains("compacted") => {
                tracing::warn!(
                    %upgrade_id,
                    revision = at,
                    "the revision of this session's last write was compacted; reading its newest \
                     node keys (a write of it cut short since would show)"
                );
                self.read_nodes_at(upgrade_id, 0).await
            }
            other => other,
        }
    }

    /// [`EtcdStore::read_nodes`] at revision `at` exactly (0: the newest),
    /// a page of keys at a time.
    async fn read_nodes_at(&self, upgrade_id: Uuid, at: i64) -> Result<Vec<NodeRecord>> {
        let prefix = self.nodes_prefix(upgrade_id);
        let end = prefix_end(&prefix);
        let mut start = prefix.clone().into_bytes();
        let mut nodes = Vec::new();
        let mut expected_group = 0;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(KEYS_PER_READ);
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
                let damaged = |problem: String| {
                    crus_core::Error::from(EtcdError::DamagedNodes {
                        key: key.clone(),
                        problem,
                    })
                };
                if group_number(kv.key(), &prefix) != Some(expected_group) {
                    return Err(damaged(format!(
                        "node key {expected_group} of the session is missing (found this one instead)"
                    )));
                }
                if nodes.len() != expected_group * NODES_PER_KEY {
                    return Err(damaged(format!(
                        "the node key before it holds fewer than {NODES_PER_KEY} nodes"
                    )));
                }
                let group: Vec<NodeRecord> =
                    serde_json::from_slice(kv.value()).map_err(|error| {
                        damaged(format!("it is not a JSON array of nodes ({error})"))
                    })?;
                nodes.extend(group);
                expected_group += 1;
            }
            match response.kvs().last() {
                Some(last) if response.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => return Ok(nodes),
            }
        }
    }
}

/// The group number a node key ends in.
pub(super) fn group_number(key: &[u8], prefix: &str) -> Option<usize> {
    std::str::from_utf8(key.strip_prefix(prefix.as_bytes())?)
        .ok()?
        .parse()
        .ok()
}

/// Splits `ops` into transactions within etcd's limits ([`MAX_OPS_PER_TXN`],
/// [`MAX_TXN_BYTES`]), leaving room in the last for `last_ops` more
/// operations of `last_bytes` bytes: the caller adds those to the last one.
/// Always at least one (maybe empty) transaction.
pub(super) fn split(
    ops: Vec<(TxnOp, usize)>,
    last_ops: usize,
    last_bytes: usize,
) -> Vec<Vec<TxnOp>> {
    let mut transactions: Vec<Vec<TxnOp>> = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for (op, size) in ops {
        if !current.is_empty()
            && (current.len() + 1 > MAX_OPS_PER_TXN || bytes + size > MAX_TXN_BYTES)
        {
            transactions.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(op);
        bytes += size;
    }
    if !current.is_empty()
        && (current.len() + last_ops > MAX_OPS_PER_TXN || bytes + last_bytes > MAX_TXN_BYTES)
    {
        transactions.push(std::mem::take(&mut current));
    }
    transactions.push(current);
    transactions
}
