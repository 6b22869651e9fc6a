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

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use crus_core::SessionState;
use crus_core::controller::NumberedEvent;
use crus_core::rollout::{EventKind, RolloutEvent};
use futures::Stream;
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
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        feed.next()
            .await
            .map(|event| (Ok::<_, Infallible>(event), feed))
    });
    sse(stream).into_response()
}

fn sse<S>(stream: S) -> Sse<axum::response::sse::KeepAliveStream<S>>
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// One client's stream: the events to send next, and where new ones come from.
struct Feed {
    /// Reads sessions, to end a session's stream when it is removed.
    state: AppState,
    /// New events of the log.
    receiver: broadcast::Receiver<NumberedEvent>,
    /// Messages ready to send, in order.
    ready: VecDeque<Event>,
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

    /// The next message, waiting for one; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
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
            }
        }
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

/// The SSE message of one rollout event.
fn message(id: u64, event: &RolloutEvent) -> Option<Event> {
    match Event::default()
        .id(id.to_string())
        .event(event.kind.name())
        .json_data(event)
    {
        Ok(message) => Some(message),
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
fn gap_event(last_id: u64) -> Event {
    Event::default()
        .event(GAP)
        .data(json!({"last_event_id": last_id}).to_string())
}

/// Tells the client its session was removed; the stream ends with it.
fn deleted_event(upgrade_id: Uuid) -> Event {
    Event::default()
        .event(DELETED)
        .data(json!({"upgrade_id": upgrade_id}).to_string())
}
