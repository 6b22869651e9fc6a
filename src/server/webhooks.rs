//! Rollout events delivered to the `[[webhooks]]` URLs, their outcomes
//! counted in the server's metrics.

use std::sync::Arc;

use crus_core::controller::EventLog;
use crus_http::Metrics;

use super::ServerError;
use super::config::Config;

/// Starts delivering rollout events from `events` to the `[[webhooks]]`
/// URLs, counting outcomes in `metrics`.
pub fn spawn(
    settings: &Config,
    events: &EventLog,
    metrics: &Arc<Metrics>,
) -> Result<(), ServerError> {
    if settings.webhooks.is_empty() {
        return Ok(());
    }
    let hooks = settings
        .webhooks
        .iter()
        .map(|hook| hook.to_config())
        .collect::<Result<Vec<_>, _>>()
        .map_err(ServerError::Webhooks)?;
    for hook in &hooks {
        tracing::info!(url = %hook.url, events = ?hook.events, signed = hook.secret.is_some(), "webhook");
    }
    crus_backends::webhooks::spawn(
        hooks,
        events.subscribe(),
        Arc::new(WebhookMetrics(metrics.clone())),
    )
    .map(|_deliveries| ())
    .map_err(ServerError::Webhooks)
}

/// Webhook outcomes as `crus_webhook_events_total`.
struct WebhookMetrics(Arc<Metrics>);

impl crus_backends::webhooks::DeliveryObserver for WebhookMetrics {
    fn delivered(&self, url: &str, _attempts: u32) {
        self.0.record_webhook(url, "delivered", 1);
    }
    fn failed(&self, url: &str, _why: &str) {
        self.0.record_webhook(url, "failed", 1);
    }
    fn dropped(&self, url: &str, count: u64) {
        self.0.record_webhook(url, "dropped", count);
    }
}
