//! Following one session until it completes ([`Client::follow`]): its event
//! stream read as typed events, resumed with `Last-Event-ID` after a cut
//! connection, the session read again when events were lost (`gap`) or the
//! stream ended, and polling instead on a server without event streams
//! (CRUS, an older crus: 404 on `/events`).
//!
//! `crus session watch` is this plus a progress bar.

use std::time::Duration;

use crus_core::SessionStatus;
use crus_core::rollout::RolloutEvent;

use super::{Answer, Client, ClientError, EventStream};

/// What following a session tells, in the order it happened.
#[derive(Debug, Clone)]
pub enum Update {
    /// The session as just read: first, after lost events, whenever the
    /// stream ended, and at each poll on a server without event streams.
    /// The last one is `completed`, unless the session was removed.
    Session(Box<Answer<SessionStatus>>),
    /// One rollout event, as it happened. Events this build cannot read
    /// (a kind a newer server added) are skipped: the next
    /// [`Update::Session`] holds what they changed.
    Event(RolloutEvent),
    /// The session was deleted and removed; nothing follows.
    Removed,
}

/// A session being followed; [`Follow::next`] waits for the next update.
#[derive(Debug)]
pub struct Follow {
    client: Client,
    upgrade_id: String,
    /// Pause before reconnecting to an ended stream, and between polls.
    interval: Duration,
    /// The `id:` of the last event received, to resume the stream after it.
    last_event_id: Option<String>,
    state: State,
}

/// Where following is.
#[derive(Debug)]
enum State {
    /// Nothing read yet: the session is read first.
    Start,
    /// The event stream is to be opened (again).
    Connect,
    /// Reading the event stream.
    Streaming(Box<EventStream>),
    /// The stream ended before the session completed: wait, then reconnect
    /// (never in a tight loop).
    Reconnect,
    /// The server has no event stream: the session is read every interval.
    Polling,
    /// The session completed or was removed.
    Done,
}

impl Client {
    /// Follows session `upgrade_id` until it completes or is removed (see
    /// [`Update`]); `interval` paces reconnections and, on servers without
    /// event streams, polls.
    pub fn follow(&self, upgrade_id: &str, interval: Duration) -> Follow {
        Follow {
            client: self.clone(),
            upgrade_id: upgrade_id.to_string(),
            interval,
            last_event_id: None,
            state: State::Start,
        }
    }
}

impl Follow {
    /// The next update, or `None` once the session completed or was
    /// removed. An error ends following (the session could not be read).
    pub async fn next(&mut self) -> Result<Option<Update>, ClientError> {
        loop {
            // An error returns with the state left `Done`: following ends.
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Ok(None),
                State::Start => {
                    let first = self.client.get(&self.upgrade_id).await?;
                    if !first.value.completed {
                        self.state = State::Connect;
                    }
                    return Ok(Some(Update::Session(Box::new(first))));
                }
                State::Connect => {
                    let last_event_id = self.last_event_id.as_deref();
                    match self.client.events(&self.upgrade_id, last_event_id).await {
                        Ok(events) => self.state = State::Streaming(Box::new(events)),
                        // The session was just read, so a 404 is a server
                        // without the route (or a session removed meanwhile,
                        // which polling tells).
                        Err(ClientError::Server { status: 404, .. }) => {
                            self.state = State::Polling;
                        }
                        Err(error) => return Err(error),
                    }
                }
                State::Streaming(mut events) => {
                    // A cut connection ends the stream like its end: the
                    // session is read again, then the stream resumed.
                    let Some(message) = events.next_message().await else {
                        return self.read_again(State::Reconnect).await;
                    };
                    if let Some(id) = &message.id {
                        self.last_event_id = Some(id.clone());
                    }
                    match message.event.as_str() {
                        "deleted" => return Ok(Some(Update::Removed)),
                        "gap" => {
                            // Events were lost: the session is the record.
                            let answer = self.client.get(&self.upgrade_id).await?;
                            self.state = State::Streaming(events);
                            return Ok(Some(Update::Session(Box::new(answer))));
                        }
                        _ => {
                            self.state = State::Streaming(events);
                            if let Ok(event) = serde_json::from_str(&message.data) {
                                return Ok(Some(Update::Event(event)));
                            }
                        }
                    }
                }
                State::Reconnect => {
                    tokio::time::sleep(self.interval).await;
                    self.state = State::Connect;
                }
                State::Polling => {
                    tokio::time::sleep(self.interval).await;
                    return self.read_again(State::Polling).await;
                }
            }
        }
    }

    /// Reads the session again; unless it completed (or is gone: a deleted
    /// session disappears once it was stopped safely), goes on to `then`.
    async fn read_again(&mut self, then: State) -> Result<Option<Update>, ClientError> {
        match self.client.get(&self.upgrade_id).await {
            Ok(answer) => {
                if !answer.value.completed {
                    self.state = then;
                }
                Ok(Some(Update::Session(Box::new(answer))))
            }
            Err(ClientError::Server { status: 404, .. }) => Ok(Some(Update::Removed)),
            Err(error) => Err(error),
        }
    }
}
