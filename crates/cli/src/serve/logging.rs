//! Where `crus serve` logs: standard error as text or JSON lines, or the
//! systemd journal with each field its own (`CRUS_SESSION`, `CRUS_NODE`,
//! `CRUS_STEP`, ...) so `journalctl -u crus CRUS_SESSION=<id>` finds one
//! session. `RUST_LOG` sets the level (default `info`); the `log_level`
//! option (`PATCH /options`) changes it while the server runs. What is
//! logged, the rollout events among it, is the server's
//! (`crus::server::spawn_event_logging`).

use std::sync::Arc;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crus::server::{LogFormat, LogLevelControl};

/// The prefix of crus's own fields in the journal (`CRUS_SESSION`): it
/// keeps them apart from the journal's (`MESSAGE`, `PRIORITY`, ...).
const JOURNAL_FIELD_PREFIX: &str = "CRUS";

/// The format to log in: `journald` when asked, or when the default text
/// format would go to the journal anyway (systemd sets `JOURNAL_STREAM` for
/// a service whose standard error is the journal).
pub fn effective_format(format: LogFormat, journal_stream: Option<&str>) -> LogFormat {
    match (format, journal_stream) {
        (LogFormat::Text, Some(stream)) if !stream.is_empty() => LogFormat::Journald,
        (format, _) => format,
    }
}

/// The filter of the level the process starts with: `RUST_LOG`, or `info`.
fn starting_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Sets up logging in `format` (see [`effective_format`]); with no journal
/// to write to, logs text to standard error and says why. Answers how to
/// change the level while the process runs (the `log_level` option), unless
/// logging could not be set up.
pub fn init(format: LogFormat) -> Option<LogLevelControl> {
    let (filter, handle) = reload::Layer::new(starting_filter());
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
    if let Err(error) = result {
        eprintln!("warning: logging not set up: {error}");
        return None;
    }
    if let Some(error) = fallback {
        tracing::warn!(%error, "cannot write to the systemd journal; logging text to standard error instead");
    }
    Some(Arc::new(move |directives: Option<&str>| {
        let filter = match directives {
            Some(directives) => EnvFilter::try_new(directives)
                .map_err(|error| format!("{directives:?} is not a log level: {error}"))?,
            None => starting_filter(),
        };
        handle
            .reload(filter)
            .map_err(|error| format!("cannot change the log level: {error}"))
    }))
}

/// The subscriber under the output: the registry and its filter, which the
/// `log_level` option replaces while the process runs.
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
}
