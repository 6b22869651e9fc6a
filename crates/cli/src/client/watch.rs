//! `crus session watch`: live progress of one session until it completes.
//!
//! Follows the session's event stream (`GET /session/{id}/events`), printing
//! each message as it is told; a server without event streams (CRUS, or an
//! older crus) answers 404 there, and the session is polled instead.

use std::io::IsTerminal;
use std::time::Duration;

use crus::client::{Answer, Client, ClientError, SseMessage};
use crus_core::SessionStatus;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::output::node_count;

/// A session as the server answered it.
type Session = Answer<SessionStatus>;

/// Follows session `upgrade_id`, printing each new message and a progress bar
/// (from the additive `nodes` counts when the server sends them), until the
/// session completes or is removed. Returns its last answer.
pub async fn watch(
    client: &Client,
    upgrade_id: &str,
    interval: Duration,
) -> Result<Session, ClientError> {
    let mut progress = Progress::new();
    let result = follow(client, upgrade_id, interval, &mut progress).await;
    progress.bar.finish_and_clear();
    result
}

async fn follow(
    client: &Client,
    upgrade_id: &str,
    interval: Duration,
    progress: &mut Progress,
) -> Result<Session, ClientError> {
    let first = client.get(upgrade_id).await?;
    progress.show_session(&first.value);
    if is_completed(&first) {
        return Ok(first);
    }
    match stream(client, upgrade_id, interval, progress, first).await? {
        Followed::Finished(answer) => Ok(answer),
        Followed::NoStream(last) => poll(client, upgrade_id, interval, progress, last).await,
    }
}

/// How following the event stream ended.
enum Followed {
    /// The session completed or was removed; its last answer.
    Finished(Session),
    /// The server has no event stream; the last answer so far.
    NoStream(Session),
}

async fn stream(
    client: &Client,
    upgrade_id: &str,
    interval: Duration,
    progress: &mut Progress,
    mut last: Session,
) -> Result<Followed, ClientError> {
    let mut last_event_id: Option<String> = None;
    loop {
        let mut events = match client.events(upgrade_id, last_event_id.as_deref()).await {
            Ok(events) => events,
            // The session was just read, so a 404 is a server without the
            // route (or a session removed meanwhile, which polling tells).
            Err(ClientError::Server { status: 404, .. }) => return Ok(Followed::NoStream(last)),
            Err(error) => return Err(error),
        };
        // A cut connection ends the loop like the end of the stream: the
        // session is read again, and the stream resumed from the last id.
        while let Some(message) = events.next_message().await {
            if let Some(id) = &message.id {
                last_event_id = Some(id.clone());
            }
            match message.event.as_str() {
                "deleted" => return Ok(Followed::Finished(removed(upgrade_id, last))),
                "gap" => {
                    // Events were lost: the session is the record.
                    last = client.get(upgrade_id).await?;
                    progress.show_session(&last.value);
                }
                _ => progress.show_event(&message),
            }
        }
        match client.get(upgrade_id).await {
            Ok(answer) => {
                progress.show_session(&answer.value);
                if is_completed(&answer) {
                    return Ok(Followed::Finished(answer));
                }
                last = answer;
            }
            Err(ClientError::Server { status: 404, .. }) => {
                return Ok(Followed::Finished(removed(upgrade_id, last)));
            }
            Err(error) => return Err(error),
        }
        // Not finished, yet the stream ended: do not reconnect in a tight loop.
        tokio::time::sleep(interval).await;
    }
}

/// Asks for the session every `interval`, for servers without event streams.
async fn poll(
    client: &Client,
    upgrade_id: &str,
    interval: Duration,
    progress: &mut Progress,
    mut last: Session,
) -> Result<Session, ClientError> {
    loop {
        tokio::time::sleep(interval).await;
        let answer = match client.get(upgrade_id).await {
            Ok(answer) => answer,
            // A deleted session disappears once the controller has stopped it safely.
            Err(ClientError::Server { status: 404, .. }) => return Ok(removed(upgrade_id, last)),
            Err(error) => return Err(error),
        };
        progress.show_session(&answer.value);
        if is_completed(&answer) {
            return Ok(answer);
        }
        last = answer;
    }
}

fn is_completed(answer: &Session) -> bool {
    answer.value.completed
}

fn removed(upgrade_id: &str, last: Session) -> Session {
    eprintln!("session {upgrade_id} was deleted and removed");
    last
}

/// What has been shown: the progress bar, and how many messages were printed.
struct Progress {
    bar: ProgressBar,
    /// Messages of the session printed so far, so none is printed twice.
    printed: usize,
}

impl Progress {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(
            None,
            if std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:40.green/blue}] {pos}/{len} nodes  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Progress { bar, printed: 0 }
    }

    fn print(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Prints the session's messages not printed yet and sets the bar from its counts.
    fn show_session(&mut self, session: &SessionStatus) {
        let messages = &session.messages;
        // CRUS clears messages when a session becomes READY; never print twice.
        if messages.len() < self.printed {
            self.printed = 0;
        }
        for message in &messages[self.printed..] {
            self.print(message);
        }
        self.printed = messages.len();
        let count = |phase: &str| node_count(session, phase).unwrap_or(0);
        if let Some(total) = node_count(session, "total") {
            self.bar.set_length(total);
            self.bar.set_position(
                count("done") + count("failed") + count("skipped") + count("reverted"),
            );
        }
        let phase = session
            .phase
            .map_or_else(|| session.state.as_str(), |phase| phase.as_str());
        self.bar.set_message(phase.to_string());
        self.bar.tick();
    }

    /// Shows one event of the stream as it arrives.
    fn show_event(&mut self, message: &SseMessage) {
        let Ok(event) = serde_json::from_str::<Value>(&message.data) else {
            return;
        };
        match message.event.as_str() {
            "message" => {
                self.print(event["text"].as_str().unwrap_or_default());
                self.printed += 1;
            }
            "node_phase" => {
                let to = event["to"].as_str().unwrap_or("?");
                if matches!(to, "done" | "failed" | "skipped" | "reverted") {
                    self.bar.inc(1);
                }
                self.bar
                    .set_message(format!("{} {to}", event["node"].as_str().unwrap_or("?")));
            }
            // Until the session's counts give the bar its length.
            "step_started" if self.bar.length().is_none() => {
                self.bar.set_message(format!(
                    "step {} started",
                    event["step"].as_u64().unwrap_or_default()
                ));
            }
            "paused" | "halted" => {
                self.bar.set_message(format!(
                    "{}: {}",
                    message.event,
                    event["reason"].as_str().unwrap_or_default()
                ));
            }
            "gated" => {
                let reasons: Vec<&str> = event["reasons"]
                    .as_array()
                    .map(|reasons| reasons.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                self.bar
                    .set_message(format!("held by alert gates: {}", reasons.join("; ")));
            }
            "resumed" | "gates_cleared" => self.bar.set_message("running".to_string()),
            "state" => self
                .bar
                .set_message(event["state"].as_str().unwrap_or("?").to_string()),
            _ => {}
        }
        self.bar.tick();
    }
}
