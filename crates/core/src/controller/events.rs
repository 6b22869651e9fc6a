//! `EventLog`: the controller's recent rollout events, numbered, for live
//! streams that may reconnect (`Last-Event-ID`) and for webhooks.
//!
//! Events live in memory only: the session's stored state is the record, and
//! a client that reconnects after the log moved past its last id (or after a
//! restart, which starts the numbering again) is told so and re-reads the
//! session instead.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::rollout::RolloutEvent;

/// An event with its number in the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NumberedEvent {
    /// Increasing from 1 in this process.
    pub id: u64,
    /// The event.
    #[serde(flatten)]
    pub event: RolloutEvent,
}

/// What a reconnecting reader missed.
#[derive(Debug, Clone, PartialEq)]
pub struct Missed {
    /// The events after the reader's last id that are still kept.
    pub events: Vec<NumberedEvent>,
    /// Whether older events it missed are gone (or its id is from before a restart).
    pub gap: bool,
}

/// Keeps the last `capacity` events and hands new ones to subscribers.
#[derive(Debug)]
pub struct EventLog {
    kept: Mutex<Kept>,
    capacity: usize,
    sender: broadcast::Sender<NumberedEvent>,
}

#[derive(Debug, Default)]
struct Kept {
    events: VecDeque<NumberedEvent>,
    last_id: u64,
}

impl EventLog {
    /// A log keeping the last `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (sender, _) = broadcast::channel(capacity);
        EventLog {
            kept: Mutex::new(Kept::default()),
            capacity,
            sender,
        }
    }

    /// Numbers `events`, keeps them and sends them to subscribers.
    pub fn publish(&self, events: Vec<RolloutEvent>) {
        if events.is_empty() {
            return;
        }
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for event in events {
            kept.last_id += 1;
            let numbered = NumberedEvent {
                id: kept.last_id,
                event,
            };
            if kept.events.len() == self.capacity {
                kept.events.pop_front();
            }
            kept.events.push_back(numbered.clone());
            // No subscriber is not an error: nobody is watching.
            let _ = self.sender.send(numbered);
        }
    }

    /// New events from now on. Subscribe before reading [`EventLog::since`]
    /// so nothing falls between the two (skip ids already seen).
    pub fn subscribe(&self) -> broadcast::Receiver<NumberedEvent> {
        self.sender.subscribe()
    }

    /// The kept events after `last_id`.
    pub fn since(&self, last_id: u64) -> Missed {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let oldest = kept
            .events
            .front()
            .map_or(kept.last_id + 1, |event| event.id);
        Missed {
            events: kept
                .events
                .iter()
                .filter(|event| event.id > last_id)
                .cloned()
                .collect(),
            gap: last_id > kept.last_id || last_id + 1 < oldest,
        }
    }

    /// The id of the newest event, 0 before any.
    pub fn last_id(&self) -> u64 {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last_id
    }
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new(10_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::EventKind;
    use crate::time::Timestamp;

    fn event(text: &str) -> RolloutEvent {
        RolloutEvent {
            upgrade_id: uuid::Uuid::nil(),
            at: Timestamp::from_secs(1),
            kind: EventKind::Message { text: text.into() },
        }
    }

    #[test]
    fn readers_get_what_they_missed_and_learn_of_gaps() {
        let log = EventLog::new(2);
        let mut live = log.subscribe();
        log.publish(vec![event("a")]);
        assert_eq!(live.try_recv().map(|event| event.id).ok(), Some(1));
        log.publish(vec![event("b"), event("c")]);
        assert_eq!(log.last_id(), 3);
        let missed = log.since(1);
        assert_eq!(
            missed
                .events
                .iter()
                .map(|event| event.id)
                .collect::<Vec<_>>(),
            [2, 3]
        );
        assert!(!missed.gap);
        // Event 1 is gone: a reader that saw none of them missed it.
        assert!(log.since(0).gap);
        // An id from before a restart is ahead of this log.
        assert!(log.since(99).gap);
        assert!(!log.since(3).gap);
    }
}
