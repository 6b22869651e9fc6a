//! Every rollout event as a log line, with its session, node and step as
//! fields (`session`, `node`, `step`): a JSON log or the journal
//! (`journalctl -u crus CRUS_SESSION=<id>`) can then be searched by them.
//! The server spawns it when it serves, so any program embedding it logs
//! the same lines; where they go is the program's `tracing` subscriber.

use crus_core::controller::EventLog;
use crus_core::rollout::EventKind;
use tokio::sync::broadcast::error::RecvError;

/// Logs every rollout event of `events` from now on, until the log closes
/// (needs a Tokio runtime).
pub fn spawn_event_logging(events: &EventLog) {
    let mut receiver = events.subscribe();
    tokio::spawn(async move {
        loop {
            match receiver.recv().await {
                Ok(numbered) => {
                    let event = &numbered.event;
                    let session = event.upgrade_id;
                    match &event.kind {
                        EventKind::NodePhase {
                            node,
                            from,
                            to,
                            reason,
                        } => tracing::info!(
                            %session, node = %node, from = ?from, to = ?to, reason = reason.as_deref().unwrap_or(""),
                            "node {node}: {from:?} -> {to:?}"
                        ),
                        EventKind::StepStarted { step, nodes } => tracing::info!(
                            %session, step, nodes = nodes.len(),
                            "step {step} started with {} node(s)", nodes.len()
                        ),
                        EventKind::StepFinished { step, .. } => {
                            tracing::info!(%session, step, "step {step} finished");
                        }
                        other => tracing::info!(%session, event = ?other, "rollout event"),
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(
                        missed,
                        "rollout events not logged: they came faster than the log took them"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}
