//! How `start_boot` stays idempotent under the caller's key although
//! Kadeploy has no idempotency key and stores no field of crus's choosing
//! that it lists back for a registered environment.
//!
//! Two layers:
//!
//! 1. [`Ledger`]: in this process, the key → deployment id of every boot it
//!    started or adopted. A repeated `start_boot` (while the deployment runs
//!    or after it finished) answers the same handle without asking Kadeploy;
//!    the same key with other nodes or another template is a conflict. The
//!    ledger lock is held for the whole of `start_boot`, so two concurrent
//!    calls with one key cannot both POST (boots are rare, one per batch, so
//!    serialising them costs nothing).
//! 2. Adoption, for what the ledger cannot know (a restarted controller, or
//!    a `POST /deployment` whose answer was lost): before any POST, and
//!    again after a POST whose outcome is unknown, `GET /deployment` lists
//!    the deployments, and an unfinished one of the same user, the same host
//!    set and the same environment is taken as this key's. crus holds these
//!    nodes drained for this batch and deploys as its own user, so an
//!    unfinished deployment of exactly these nodes with this environment by
//!    that user is the one this request started. A *finished* one is not
//!    adopted: it may be an earlier
//!    rollout's, and the nodes may have been rebooted since. The cost of not
//!    adopting it is, after a crash in the few seconds between a deployment's
//!    end and the controller reading it, one redeployment of nodes crus still
//!    holds drained — never two deployments running at once.
//!
//! A POST that timed out or got a 5xx is never sent again blindly: when the
//! listing does not show its deployment, `start_boot` fails as retryable,
//! and the caller's next `start_boot` looks again before posting.

use std::collections::{BTreeSet, HashMap};

use tokio::sync::{Mutex, MutexGuard};

use super::error::KadeployError;

/// One boot this process started or adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    wid: String,
    /// The request it was started for, to refuse the key's reuse for another.
    hosts: BTreeSet<String>,
    template: String,
}

/// The boots started or adopted by this process, by idempotency key.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Ledger {
    /// The hosts deployment `wid` was started for under `key`, if this
    /// process started or adopted it: Kadeploy shows the owner of a run that
    /// failed as a whole none of its hosts.
    pub(crate) async fn hosts_of(&self, key: &str, wid: &str) -> Option<BTreeSet<String>> {
        let entries = self.entries.lock().await;
        entries
            .get(key)
            .filter(|entry| entry.wid == wid)
            .map(|entry| entry.hosts.clone())
    }

    /// The ledger, locked for one `start_boot`.
    pub(crate) async fn lock(&self) -> LockedLedger<'_> {
        LockedLedger {
            entries: self.entries.lock().await,
        }
    }
}

/// The ledger while one `start_boot` runs.
pub(crate) struct LockedLedger<'a> {
    entries: MutexGuard<'a, HashMap<String, Entry>>,
}

impl LockedLedger<'_> {
    /// The deployment id already recorded for `key`, if any;
    /// [`KadeployError::KeyReused`] when it was for another request.
    pub(crate) fn find(
        &self,
        key: &str,
        hosts: &BTreeSet<&str>,
        template: &str,
    ) -> Result<Option<String>, KadeployError> {
        let Some(entry) = self.entries.get(key) else {
            return Ok(None);
        };
        let same_hosts = entry
            .hosts
            .iter()
            .map(String::as_str)
            .eq(hosts.iter().copied());
        if same_hosts && entry.template == template {
            Ok(Some(entry.wid.clone()))
        } else {
            Err(KadeployError::KeyReused {
                key: key.to_string(),
                wid: entry.wid.clone(),
            })
        }
    }

    /// Records that `key` is deployment `wid`.
    pub(crate) fn record(&mut self, key: &str, hosts: &BTreeSet<&str>, template: &str, wid: &str) {
        self.entries.insert(
            key.to_string(),
            Entry {
                wid: wid.to_string(),
                hosts: hosts.iter().map(|host| (*host).to_string()).collect(),
                template: template.to_string(),
            },
        );
    }
}
