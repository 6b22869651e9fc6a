//! One hook's worker: POSTs its queued events in order, retrying what a
//! retry can fix (connection errors, timeouts, 429 and 5xx) with jittered
//! exponential backoff, and giving up on the rest.

use std::sync::Arc;
use std::time::Duration;

use crus_core::controller::NumberedEvent;
use tokio::sync::mpsc;

use super::{DeliveryObserver, SIGNATURE_HEADER, WebhookConfig, sign};
use crate::root_cause::root_cause;

/// The first wait between tries; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

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

/// Delivers `event`: the number of tries it took, or why it was given up.
async fn deliver(
    client: &reqwest::Client,
    hook: &WebhookConfig,
    event: &NumberedEvent,
) -> Result<u32, String> {
    let body = serde_json::to_vec(event).map_err(|error| format!("cannot encode: {error}"))?;
    // The same id on every try, so a receiver can drop duplicates.
    let delivery = uuid::Uuid::new_v4().to_string();
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let mut request = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-crus-event", event.event.kind.name())
            .header("x-crus-delivery", &delivery)
            .body(body.clone());
        if let Some(secret) = &hook.secret {
            request = request.header(SIGNATURE_HEADER, sign(secret, &body));
        }
        let why = match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(attempt),
            Ok(response) => {
                let status = response.status();
                let why = format!("{} answered {status}", hook.url);
                if !(status.is_server_error() || status.as_u16() == 429) {
                    // The receiver refuses this event; repeating it changes nothing.
                    return Err(why);
                }
                why
            }
            Err(error) => format!("POST {} failed: {}", hook.url, root_cause(&error)),
        };
        if attempt >= hook.max_attempts {
            return Err(format!("{why} (after {attempt} tries)"));
        }
        tracing::debug!(url = %hook.url, attempt, %why, "webhook delivery failed; retrying");
        let jitter = backoff.mul_f64(fastrand::f64() * 0.5);
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        attempt += 1;
    }
}
