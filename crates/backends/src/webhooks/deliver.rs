//! One hook's worker: POSTs its queued events in order, retrying what a
//! retry can fix (connection errors, timeouts, 429 and 5xx) with the
//! transport's jittered exponential backoff, and giving up on the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crus_core::controller::NumberedEvent;
use tokio::sync::mpsc;

use super::{DeliveryObserver, SIGNATURE_HEADER, WebhookConfig, sign};
use crate::root_cause::root_cause;
use crate::transport::{Repeat, Retries, TryFailure, send_with_retries};

/// About the first wait between tries (1–2 s); it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between tries (45–90 s with jitter).
const MAX_BACKOFF: Duration = Duration::from_secs(90);

pub(super) async fn worker(
    client: reqwest::Client,
    hook: Arc<WebhookConfig>,
    mut queue: mpsc::Receiver<NumberedEvent>,
    observer: Arc<dyn DeliveryObserver>,
) {
    while let Some(event) = queue.recv().await {
        match deliver(&client, &hook, &event).await {
            Ok(attempts) => observer.delivered(&hook.url, attempts),
            Err(why) => {
                tracing::warn!(url = %hook.url, event = event.id, %why, "webhook delivery given up");
                observer.failed(&hook.url, &why);
            }
        }
    }
}

/// Why one try of a delivery failed.
#[derive(Debug)]
struct TryFailed {
    why: String,
    /// A connection error, a timeout, a 429 or a 5xx: the receiver may take
    /// the event later.
    may_pass: bool,
    /// The connection failed: the receiver never saw the event.
    not_sent: bool,
}

impl std::fmt::Display for TryFailed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.why)
    }
}

impl TryFailure for TryFailed {
    fn may_pass(&self) -> bool {
        self.may_pass
    }

    fn not_sent(&self) -> bool {
        self.not_sent
    }
}

/// Delivers `event`: the number of tries it took, or why it was given up.
async fn deliver(
    client: &reqwest::Client,
    hook: &WebhookConfig,
    event: &NumberedEvent,
) -> Result<u32, String> {
    let body = serde_json::to_vec(event).map_err(|error| format!("cannot encode: {error}"))?;
    // The same id on every try, so a receiver can drop duplicates: that is
    // what makes this POST safe to repeat.
    let delivery = uuid::Uuid::new_v4().to_string();
    let retries = Retries::new(hook.max_attempts.saturating_sub(1), FIRST_BACKOFF * 2)
        .with_max_delay(MAX_BACKOFF);
    let tries = AtomicU32::new(0);
    let outcome = send_with_retries("webhook", &retries, Repeat::Safe, || {
        tries.fetch_add(1, Ordering::Relaxed);
        let mut request = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-crus-event", event.event.kind.name())
            .header("x-crus-delivery", &delivery)
            .body(body.clone());
        if let Some(secret) = &hook.secret {
            request = request.header(SIGNATURE_HEADER, sign(secret, &body));
        }
        async move {
            match request.send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => {
                    let status = response.status();
                    Err(TryFailed {
                        why: format!("{} answered {status}", hook.url),
                        // Any other answer is the receiver refusing this
                        // event; repeating it changes nothing.
                        may_pass: status.is_server_error() || status.as_u16() == 429,
                        not_sent: false,
                    })
                }
                Err(error) => Err(TryFailed {
                    why: format!("POST {} failed: {}", hook.url, root_cause(&error)),
                    may_pass: true,
                    not_sent: error.is_connect(),
                }),
            }
        }
    })
    .await;
    let attempts = tries.load(Ordering::Relaxed);
    match outcome {
        Ok(()) => Ok(attempts),
        Err(failed) if failed.may_pass => Err(format!("{failed} (after {attempts} tries)")),
        Err(failed) => Err(failed.why),
    }
}
