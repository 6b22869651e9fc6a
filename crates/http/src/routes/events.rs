//! Live rollout events as server-sent events (a crus addition):
//! `GET /session/{upgrade_id}/events` for one session, `GET /events` for all.
//!
//! Each event is sent with `id:` its number in the controller's event log,
//! `event:` its kind and `data:` the event as JSON. A client that reconnects
//! with `Last-Event-ID` first gets the events it missed that the log still
//! keeps; when some are gone (or the id is from before a restart) it gets an
//! `event: gap` first, and should re-read the session, which stays the record.
//!
//! Every stream subscribes to the log before it reads what was missed, so no
//! event falls between the two; an event seen both ways is sent once, by id.
//!
//! The messages are written here rather than by axum's `Sse`, so that the
//! events a controller pass publishes together (a step of 500 nodes moving
//! at once is 500 `node_phase` events) leave as one chunk of the body: one
//! wake-up, one frame and one write for the burst, instead of one each per
//! event, which is what made the last event of a burst late (issue 25).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use crus_core::SessionState;
use crus_core::controller::NumberedEvent;
use crus_core::rollout::{EventKind, RolloutEvent};
use serde_json::json;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::problem::{AppError, Problem};
use crate::routes::session::parse_upgrade_id;
use crate::state::AppState;

/// How often a stream without events sends a comment, so proxies and clients
/// do not take a quiet rollout (a long drain) for a dead connection.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often a session's stream checks that its session still exists: a
/// deleted session is removed without an event of its own.
const SESSION_CHECK: Duration = Duration::from_secs(1);

/// `event:` of the message telling a client it missed events.
const GAP: &str = "gap";

/// `event:` of the last message of a session's stream when the session was removed.
const DELETED: &str = "deleted";

/// The most bytes of messages sent in one chunk: a client far behind (or
/// reconnecting with a long backlog) gets its events in pieces of this size,
/// so neither side holds the whole backlog in one buffer.
const MAX_CHUNK: usize = 256 * 1024;

/// The comment a quiet stream sends to show it is alive.
const KEEP_ALIVE_COMMENT: &str = ":\n\n";

/// `GET /session/{upgrade_id}/events`: the session's events as they happen,
/// until it finishes or is removed.
#[utoipa::path(
    get,
    path = "/session/{upgrade_id}/events",
    tag = "controls",
    operation_id = "stream_session_events",
    summary = "Follow a session's events (server-sent events)",
    description = "A `text/event-stream` of the session's rollout events from now on: `id:` is the event's number, `event:` its type (`node_phase`, `step_started`, `step_finished`, `paused`, `halted`, `resumed`, `gated`, `gates_cleared`, `hook`, `state`, `message`) and `data:` the event as JSON (a `RolloutEvent`). With a `Last-Event-ID` header the kept events after that id are sent first; `event: gap` says some were lost (re-read the session). The stream ends after the session's `state` event `READY`, or with `event: deleted` once the session is removed. Comment lines keep a quiet stream alive.",
    params(
        ("upgrade_id" = Uuid, Path, description = "Upgrade ID"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received, to resume a stream"),
    ),
    responses(
        (status = 200, description = "The event stream", body = String, content_type = "text/event-stream"),
        (status = 404, description = "No session has this id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn stream_session_events(
    State(state): State<AppState>,
    upgrade_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let upgrade_id = parse_upgrade_id(upgrade_id)?;
    // Subscribed before the session is read: an event published meanwhile is
    // in the receiver, and one published before is in the log.
    let receiver = state.controller().events().subscribe();
    let record = state
        .controller()
        .store()
        .get(upgrade_id)
        .await?
        .ok_or(AppError::SessionNotFound)?;
    let mut feed = Feed::new(&state, receiver, Some(upgrade_id), &headers);
    if record.value.rollout.completed {
        // Nothing more will happen: send what was missed and end.
        feed.drain_received();
        feed.done = true;
    }
    Ok(respond(feed))
}

/// `GET /events`: every session's events as they happen.
#[utoipa::path(
    get,
    path = "/events",
    tag = "controls",
    operation_id = "stream_events",
    summary = "Follow every session's events (server-sent events)",
    description = "A `text/event-stream` of the rollout events of every session, as for `/session/{upgrade_id}/events`, without an end: `id:` is the event's number, `event:` its type and `data:` the event as JSON (a `RolloutEvent`, whose `upgrade_id` names the session). `Last-Event-ID` resumes a stream; `event: gap` says events were lost.",
    params(
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received, to resume a stream"),
    ),
    responses(
        (status = 200, description = "The event stream", body = String, content_type = "text/event-stream"),
    )
)]
pub(crate) async fn stream_events(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let receiver = state.controller().events().subscribe();
    respond(Feed::new(&state, receiver, None, &headers))
}

fn respond(feed: Feed) -> Response {
    let chunks = futures::stream::unfold(feed, |mut feed| async move {
        feed.next_chunk()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), feed))
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// One client's stream: the events to send next, and where new ones come from.
struct Feed {
    /// Reads sessions, to end a session's stream when it is removed.
    state: AppState,
    /// New events of the log.
    receiver: broadcast::Receiver<NumberedEvent>,
    /// Messages ready to send, in order, each already in the wire format.
    ready: VecDeque<String>,
    /// The newest event id queued, so an event both missed and received is sent once.
    last_id: u64,
    /// The session streamed, or every session.
    session: Option<Uuid>,
    /// Nothing is added to `ready` any more; the stream ends once it is empty.
    done: bool,
    /// Changes when the server shuts down.
    closing: watch::Receiver<bool>,
    /// Paces the checks that the session still exists.
    check: tokio::time::Interval,
    /// When a quiet stream next sends its keep-alive comment.
    keep_alive: tokio::time::Instant,
}

impl Feed {
    fn new(
        state: &AppState,
        receiver: broadcast::Receiver<NumberedEvent>,
        session: Option<Uuid>,
        headers: &HeaderMap,
    ) -> Feed {
        let mut check = tokio::time::interval(SESSION_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut feed = Feed {
            state: state.clone(),
            receiver,
            ready: VecDeque::new(),
            last_id: 0,
            session,
            done: false,
            closing: state.closing(),
            check,
            keep_alive: tokio::time::Instant::now() + KEEP_ALIVE,
        };
        let last_event_id = headers
            .get("last-event-id")
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok());
        if let Some(last_id) = last_event_id {
            let missed = state.controller().events().since(last_id);
            if missed.gap {
                feed.ready.push_back(gap_event(last_id));
            }
            feed.last_id = last_id;
            for event in missed.events {
                feed.accept(event);
            }
        }
        feed
    }

    /// The next chunk of the body: every message ready, including those the
    /// receiver already holds (a burst published together leaves together),
    /// or a keep-alive comment after a quiet spell; waits for one. `None`
    /// ends the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if !self.ready.is_empty() {
                self.drain_received();
                return Some(self.take_ready());
            }
            if self.done || *self.closing.borrow() {
                return None;
            }
            tokio::select! {
                received = self.receiver.recv() => match received {
                    Ok(event) => self.accept(event),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // The log moved on faster than this client read.
                        self.ready.push_back(gap_event(self.last_id));
                    }
                    Err(broadcast::error::RecvError::Closed) => self.done = true,
                },
                // An error means the state was dropped: the server is gone too.
                _ = self.closing.changed() => return None,
                _ = self.check.tick(), if self.session.is_some() => self.check_session().await,
                () = tokio::time::sleep_until(self.keep_alive) => {
                    self.keep_alive = tokio::time::Instant::now() + KEEP_ALIVE;
                    return Some(Bytes::from_static(KEEP_ALIVE_COMMENT.as_bytes()));
                }
            }
        }
    }

    /// The ready messages, in order, as one chunk of at most about
    /// [`MAX_CHUNK`] bytes (always at least one message).
    fn take_ready(&mut self) -> Bytes {
        let mut chunk = String::new();
        while let Some(message) = self.ready.front() {
            if !chunk.is_empty() && chunk.len() + message.len() > MAX_CHUNK {
                break;
            }
            chunk.push_str(message);
            self.ready.pop_front();
        }
        self.keep_alive = tokio::time::Instant::now() + KEEP_ALIVE;
        Bytes::from(chunk)
    }

    /// Ends a session's stream once its session is finished or removed.
    async fn check_session(&mut self) {
        let Some(upgrade_id) = self.session else {
            return;
        };
        match self.state.controller().store().get(upgrade_id).await {
            Ok(None) => {
                self.drain_received();
                if !self.done {
                    self.ready.push_back(deleted_event(upgrade_id));
                    self.done = true;
                }
            }
            Ok(Some(record)) if record.value.rollout.completed => {
                // Its last events may still be in the receiver: send them first.
                self.drain_received();
                self.done = true;
            }
            Ok(Some(_)) => {}
            // The store is down for now: the stream carries on and checks again.
            Err(error) => tracing::debug!(%error, "event stream cannot read its session"),
        }
    }

    /// Queues what the receiver already holds, without waiting.
    fn drain_received(&mut self) {
        loop {
            match self.receiver.try_recv() {
                Ok(event) => self.accept(event),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.ready.push_back(gap_event(self.last_id));
                }
                Err(_) => return,
            }
        }
    }

    /// Queues `event` if it is new and of this stream's session; a session's
    /// `state` event `READY` is its last.
    fn accept(&mut self, numbered: NumberedEvent) {
        if numbered.id <= self.last_id || self.done {
            return;
        }
        self.last_id = numbered.id;
        if self
            .session
            .is_some_and(|session| session != numbered.event.upgrade_id)
        {
            return;
        }
        let finished = matches!(
            numbered.event.kind,
            EventKind::State {
                state: SessionState::Ready
            }
        );
        if let Some(event) = message(numbered.id, &numbered.event) {
            self.ready.push_back(event);
        }
        if finished && self.session.is_some() {
            self.done = true;
        }
    }
}

/// One SSE message: `id:` (when given), `event:` and one `data:` line.
/// `data` is JSON written without newlines, so it needs no splitting.
fn sse_message(id: Option<u64>, event: &str, data: &str) -> String {
    let mut message = String::with_capacity(data.len() + event.len() + 32);
    if let Some(id) = id {
        message.push_str("id: ");
        message.push_str(&id.to_string());
        message.push('\n');
    }
    message.push_str("event: ");
    message.push_str(event);
    message.push_str("\ndata: ");
    message.push_str(data);
    message.push_str("\n\n");
    message
}

/// The SSE message of one rollout event.
fn message(id: u64, event: &RolloutEvent) -> Option<String> {
    match serde_json::to_string(event) {
        Ok(data) => Some(sse_message(Some(id), event.kind.name(), &data)),
        // A struct of strings and numbers always serialises; skip rather than
        // end the stream if one ever does not.
        Err(error) => {
            tracing::error!(%error, id, "a rollout event could not be encoded");
            None
        }
    }
}

/// Tells the client that events after `last_id` were lost. Without an `id:`,
/// so the client's last id stays the last event it really got.
fn gap_event(last_id: u64) -> String {
    sse_message(None, GAP, &json!({"last_event_id": last_id}).to_string())
}

/// Tells the client its session was removed; the stream ends with it.
fn deleted_event(upgrade_id: Uuid) -> String {
    sse_message(
        None,
        DELETED,
        &json!({"upgrade_id": upgrade_id}).to_string(),
    )
}
