//! Where `crus serve` logs: standard error as text or JSON lines, or the
//! systemd journal with each field its own (`CRUS_SESSION`, `CRUS_NODE`,
//! `CRUS_STEP`, ...) so `journalctl -u crus CRUS_SESSION=<id>` finds one
//! session. The level (`RUST_LOG`, default `info`) can be changed while the
//! server runs, by the `log_level` runtime option.

use std::sync::OnceLock;

use crus_core::controller::EventLog;
use crus_core::rollout::EventKind;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use super::config::LogFormat;

/// The prefix of crus's own fields in the journal (`CRUS_SESSION`): it
/// keeps them apart from the journal's (`MESSAGE`, `PRIORITY`, ...).
const JOURNAL_FIELD_PREFIX: &str = "CRUS";

/// Changes the level of the running server's logging.
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// The format to log in: `journald` when asked, or when the default text
/// format would go to the journal anyway (systemd sets `JOURNAL_STREAM` for
/// a service whose standard error is the journal).
pub fn effective_format(format: LogFormat, journal_stream: Option<&str>) -> LogFormat {
    match (format, journal_stream) {
        (LogFormat::Text, Some(stream)) if !stream.is_empty() => LogFormat::Journald,
        (format, _) => format,
    }
}

/// Sets up logging in `format` (see [`effective_format`]); with no journal
/// to write to, logs text to standard error and says why.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let journal_stream = std::env::var("JOURNAL_STREAM").ok();
    let mut fallback = None;
    let output: Output = match effective_format(format, journal_stream.as_deref()) {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(journal) => Box::new(
                journal
                    .with_field_prefix(Some(JOURNAL_FIELD_PREFIX.to_string()))
                    .with_syslog_identifier("crus".to_string()),
            ),
            Err(error) => {
                fallback = Some(error);
                text_layer()
            }
        },
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr),
        ),
        LogFormat::Text => text_layer(),
    };
    // The filter applies to every output.
    let result = Registry::default().with(filter).with(output).try_init();
    match result {
        Ok(()) => {
            let _ = LEVEL.set(handle);
        }
        Err(error) => eprintln!("warning: logging not set up: {error}"),
    }
    if let Some(error) = fallback {
        tracing::warn!(%error, "cannot write to the systemd journal; logging text to standard error instead");
    }
}

/// The subscriber under the output: the registry and its reloadable filter.
type Filtered = tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;

/// Where log lines go.
type Output = Box<dyn Layer<Filtered> + Send + Sync>;

fn text_layer() -> Output {
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    Box::new(
        tracing_subscriber::fmt::layer()
            .with_ansi(colours)
            .with_writer(std::io::stderr),
    )
}

/// Whether `level` is a level or filter `RUST_LOG` accepts (`info`,
/// `warn,crus_backends=debug`).
pub fn check_level(level: &str) -> Result<(), String> {
    EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|error| format!("{level:?} is not a log level or filter (e.g. info, debug, warn,crus_backends=debug): {error}"))
}

/// Logs at `level` from now on (what `RUST_LOG` would say); a server whose
/// logging was not set up here ignores it.
pub fn set_level(level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|error| format!("{level:?}: {error}"))?;
    if let Some(handle) = LEVEL.get() {
        handle
            .reload(filter)
            .map_err(|error| format!("cannot change the log level: {error}"))?;
    }
    Ok(())
}

/// Logs every rollout event of `events` with its session, node and step as
/// fields, so the journal (or a JSON log) can be searched by them.
pub fn log_events(events: &EventLog) {
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
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(
                        missed,
                        "rollout events not logged: they came faster than the log took them"
                    );
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_goes_to_the_journal_under_systemd_and_explicit_choices_stay() {
        assert_eq!(effective_format(LogFormat::Text, None), LogFormat::Text);
        assert_eq!(
            effective_format(LogFormat::Text, Some("8:12345")),
            LogFormat::Journald
        );
        assert_eq!(
            effective_format(LogFormat::Json, Some("8:12345")),
            LogFormat::Json
        );
        assert_eq!(
            effective_format(LogFormat::Journald, None),
            LogFormat::Journald
        );
    }

    #[test]
    fn log_levels_are_checked_like_rust_log() {
        assert!(check_level("info").is_ok());
        assert!(check_level("warn,crus_backends=debug").is_ok());
        let error = check_level("loud[").unwrap_err();
        assert!(error.contains("not a log level"), "{error}");
    }
}
