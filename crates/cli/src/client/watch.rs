//! `crus session watch`: live progress of one session until it completes.
//!
//! Following is the library's ([`Client::follow`]: the event stream,
//! resumed after a cut, polling on servers without one); this file prints
//! each message as it is told and keeps a progress bar.

use std::io::IsTerminal;
use std::time::Duration;

use crus::client::{Answer, Client, ClientError, Update};
use crus_core::SessionStatus;
use crus_core::rollout::{EventKind, NodePhase, RolloutEvent};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::node_count;

/// A session as the server answered it.
type Session = Answer<SessionStatus>;

/// Follows session `upgrade_id` ([`Client::follow`]), printing each new
/// message and a progress bar (from the additive `nodes` counts when the
/// server sends them), until the session completes or is removed. Returns
/// its last answer.
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
    let mut follow = client.follow(upgrade_id, interval);
    let mut last = None;
    while let Some(update) = follow.next().await? {
        match update {
            Update::Session(answer) => {
                progress.show_session(&answer.value);
                last = Some(*answer);
            }
            Update::Event(event) => progress.show_event(&event),
            Update::Removed => eprintln!("session {upgrade_id} was deleted and removed"),
        }
    }
    // Following starts by reading the session, or fails.
    last.ok_or_else(|| ClientError::Local(format!("session {upgrade_id} was never read")))
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
    fn show_event(&mut self, event: &RolloutEvent) {
        match &event.kind {
            EventKind::Message { text } => {
                self.print(text);
                self.printed += 1;
            }
            EventKind::NodePhase { node, to, .. } => {
                if matches!(
                    to,
                    NodePhase::Done | NodePhase::Failed | NodePhase::Skipped | NodePhase::Reverted
                ) {
                    self.bar.inc(1);
                }
                self.bar.set_message(format!("{node} {}", to.as_str()));
            }
            // Until the session's counts give the bar its length.
            EventKind::StepStarted { step, .. } if self.bar.length().is_none() => {
                self.bar.set_message(format!("step {step} started"));
            }
            EventKind::Paused { reason } | EventKind::Halted { reason } => {
                self.bar
                    .set_message(format!("{}: {reason}", event.kind.name()));
            }
            EventKind::Gated { reasons } => {
                self.bar
                    .set_message(format!("held by alert gates: {}", reasons.join("; ")));
            }
            EventKind::Resumed | EventKind::GatesCleared => {
                self.bar.set_message("running".to_string());
            }
            EventKind::State { state } => self.bar.set_message(state.as_str().to_string()),
            _ => {}
        }
        self.bar.tick();
    }
}
