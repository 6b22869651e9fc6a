//! Webhooks: every rollout event a site subscribed to, POSTed as JSON to the
//! URLs of the server's configuration, signed with HMAC-SHA256.
//!
//! Delivery never blocks a rollout: the controller's event log hands events
//! to a dispatcher task, which puts each in the bounded queue of every hook
//! that wants it. A hook that falls behind loses the oldest events it could
//! not take (counted, and logged), never the rollout's time. Each hook has
//! its own worker, so a slow receiver delays only itself.

mod deliver;
mod settings;
mod signature;

use std::sync::Arc;
use std::time::Duration;

use crus_core::controller::NumberedEvent;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::transport::HttpClientSettings;

pub use settings::WebhookSettings;
pub use signature::{SIGNATURE_HEADER, sign};

/// One subscriber (`[[webhooks]]` in `crus.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// Event names to send (`node_phase`, `step_started`, `step_finished`,
    /// `paused`, `halted`, `resumed`, `state`, `message`); empty sends all.
    pub events: Vec<String>,
    /// Key of the `X-Crus-Signature-256` HMAC; no signature without one.
    pub secret: Option<String>,
    /// How long one POST may take.
    pub timeout: Duration,
    /// How many times an event is tried before it is given up.
    pub max_attempts: u32,
    /// Events waiting for this hook at most; older ones are dropped beyond.
    pub queue: usize,
}

impl WebhookConfig {
    /// A hook for `url` with the defaults: every event, 10 s timeout,
    /// 5 attempts, 1,000 events queued.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            events: Vec::new(),
            secret: None,
            timeout: Duration::from_secs(10),
            max_attempts: 5,
            queue: 1_000,
        }
    }

    /// Whether this hook wants events named `name`.
    pub fn wants(&self, name: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|wanted| wanted == name)
    }

    /// What is wrong with this hook, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "url must be an http:// or https:// URL, not {:?}",
                self.url
            ));
        }
        for name in &self.events {
            if !EVENT_NAMES.contains(&name.as_str()) {
                return Err(format!(
                    "events: unknown event {name:?}; known: {}",
                    EVENT_NAMES.join(", ")
                ));
            }
        }
        if self.timeout.is_zero() {
            return Err("timeout must be longer than zero".into());
        }
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if self.queue == 0 {
            return Err("queue must be at least 1".into());
        }
        Ok(())
    }
}

/// The event names a hook may subscribe to (`EventKind::name`).
pub const EVENT_NAMES: [&str; 11] = [
    "node_phase",
    "step_started",
    "step_finished",
    "paused",
    "halted",
    "resumed",
    "gated",
    "gates_cleared",
    "hook",
    "state",
    "message",
];

/// What became of deliveries, for metrics.
pub trait DeliveryObserver: Send + Sync {
    /// An event reached `url` (a 2xx answer) after `attempts` tries.
    fn delivered(&self, url: &str, attempts: u32);
    /// An event was given up for `url`: `why`.
    fn failed(&self, url: &str, why: &str);
    /// `count` events were dropped for `url` because its queue was full.
    fn dropped(&self, url: &str, count: u64);
}

/// An observer that only logs (the tests and embedders without metrics).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogOnly;

impl DeliveryObserver for LogOnly {
    fn delivered(&self, _url: &str, _attempts: u32) {}
    fn failed(&self, _url: &str, _why: &str) {}
    fn dropped(&self, _url: &str, _count: u64) {}
}

/// Starts delivering the events of `events` to `hooks`; runs until the
/// event log is dropped. Fails if a hook is invalid or no HTTP client can be
/// built.
pub fn spawn(
    hooks: Vec<WebhookConfig>,
    events: broadcast::Receiver<NumberedEvent>,
    observer: Arc<dyn DeliveryObserver>,
) -> Result<JoinHandle<()>, String> {
    let mut queues = Vec::new();
    let mut workers = Vec::new();
    for hook in hooks {
        hook.validate()
            .map_err(|error| format!("webhook {}: {error}", hook.url))?;
        let client = HttpClientSettings::new(hook.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                format!("webhook {}: cannot build an HTTP client: {error}", hook.url)
            })?;
        let (sender, receiver) = mpsc::channel(hook.queue);
        let hook = Arc::new(hook);
        queues.push((hook.clone(), sender));
        workers.push(tokio::spawn(deliver::worker(
            client,
            hook,
            receiver,
            observer.clone(),
        )));
    }
    Ok(tokio::spawn(dispatch(events, queues, observer, workers)))
}

/// Hands each event to the queue of every hook that wants it.
async fn dispatch(
    mut events: broadcast::Receiver<NumberedEvent>,
    queues: Vec<(Arc<WebhookConfig>, mpsc::Sender<NumberedEvent>)>,
    observer: Arc<dyn DeliveryObserver>,
    workers: Vec<JoinHandle<()>>,
) {
    loop {
        match events.recv().await {
            Ok(event) => {
                let name = event.event.kind.name();
                for (hook, queue) in &queues {
                    if !hook.wants(name) {
                        continue;
                    }
                    if queue.try_send(event.clone()).is_err() {
                        tracing::warn!(url = %hook.url, event = event.id, "webhook queue full; event dropped");
                        observer.dropped(&hook.url, 1);
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "webhooks fell behind the event log; events dropped");
                for (hook, _) in &queues {
                    observer.dropped(&hook.url, missed);
                }
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    // The queues close with this task; the workers finish what they hold.
    drop(queues);
    for worker in workers {
        let _ = worker.await;
    }
}

#[cfg(test)]
mod tests;
