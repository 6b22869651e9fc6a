//! `SessionFeed`: every change to the stored sessions, as it is committed,
//! for a replica that must act on (or tell of) what other replicas wrote.
//!
//! An etcd watch ends when the member serving it goes away or the watched
//! revisions are compacted. The feed opens a new watch from the revision
//! after the last one it delivered, on whichever member answers, so no
//! change is missed; when etcd no longer has those revisions it reads every
//! session again and delivers them as one [`SessionChange::Resync`].

use std::time::Duration;

use etcd_client::EventType;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crus_core::store::{SessionRecord, SessionStore, Versioned};

use super::EtcdStore;

/// One change to the stored sessions.
#[derive(Debug, Clone)]
pub enum SessionChange {
    /// A session was created or written, at this revision (boxed: a record
    /// is large, the other changes small).
    Put(Box<Versioned<SessionRecord>>),
    /// A session was removed.
    Deleted(Uuid),
    /// Every session as stored now: at start, and after a gap in the watch.
    /// Sessions not in it are gone.
    Resync(Vec<Versioned<SessionRecord>>),
}

/// The task watching the sessions; stops when dropped.
#[derive(Debug)]
pub struct SessionFeed {
    /// The watching task.
    task: JoinHandle<()>,
}

impl Drop for SessionFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SessionFeed {
    /// Starts watching the sessions of `store`: first a [`SessionChange::Resync`]
    /// with every session, then each change as etcd commits it. Failures
    /// (a member down, no quorum) are retried every `retry`, for as long as
    /// the feed lives; the feed ends when the receiver is dropped.
    pub fn start(
        store: EtcdStore,
        retry: Duration,
    ) -> (SessionFeed, mpsc::Receiver<SessionChange>) {
        let (sender, receiver) = mpsc::channel(1024);
        let task = tokio::spawn(follow(store, retry, sender));
        (SessionFeed { task }, receiver)
    }
}

/// The feed's loop: watch, deliver, and on a broken watch watch again from
/// where it stopped.
async fn follow(store: EtcdStore, retry: Duration, sender: mpsc::Sender<SessionChange>) {
    // The revision to watch from; 0 until the first full read.
    let mut next_revision: i64 = 0;
    let prefix = store.sessions_prefix();
    loop {
        if sender.is_closed() {
            return;
        }
        // Watch first, then read everything: a change committed between the
        // two is in both, and the reader skips what it has seen (revisions).
        let (_watcher, mut stream) = match store.watch_sessions(next_revision).await {
            Ok(watch) => watch,
            Err(error) => {
                tracing::debug!(%error, "cannot watch the sessions yet; retrying");
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        if next_revision == 0 {
            match store.list().await {
                Ok(records) => {
                    next_revision = records
                        .iter()
                        .map(|record| i64::try_from(record.revision.0).unwrap_or(i64::MAX))
                        .max()
                        .unwrap_or(0)
                        + 1;
                    if sender.send(SessionChange::Resync(records)).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot read the sessions yet; retrying");
                    tokio::time::sleep(retry).await;
                    continue;
                }
            }
        }
        loop {
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(%error, "the session watch broke; watching again");
                    break;
                }
            };
            if response.compact_revision() > 0 || response.canceled() {
                // The revisions after the last delivered are gone: read all again.
                tracing::info!("the session watch lost its place; reading every session again");
                next_revision = 0;
                break;
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                next_revision = next_revision.max(kv.mod_revision() + 1);
                let Some(upgrade_id) = kv
                    .key_str()
                    .ok()
                    .and_then(|key| key.strip_prefix(&prefix))
                    .and_then(|id| Uuid::parse_str(id).ok())
                else {
                    continue;
                };
                let change = match event.event_type() {
                    EventType::Delete => SessionChange::Deleted(upgrade_id),
                    // The session key holds the record without its nodes:
                    // the record is read whole, as `get` assembles it.
                    EventType::Put => match store.get(upgrade_id).await {
                        Ok(Some(record)) => SessionChange::Put(Box::new(record)),
                        Ok(None) => SessionChange::Deleted(upgrade_id),
                        Err(error) => {
                            tracing::warn!(%error, "a stored session cannot be read; skipped");
                            continue;
                        }
                    },
                };
                if sender.send(change).await.is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(retry).await;
    }
}
