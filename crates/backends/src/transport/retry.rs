//! [`send_with_retries`]: a request tried again, after a jittered
//! exponential pause, while it fails in a way that may pass and repeating it
//! is safe.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// The longest pause between two tries, however many retries are configured.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Whether a request may be sent a second time.
///
/// Idempotent requests (GET, HEAD, PUT, DELETE: a second copy changes
/// nothing more) are [`Repeat::Safe`]: sent again after no answer, a timeout
/// or a 5xx. Others (POST, PATCH) are [`Repeat::OnlyIfNotSent`]: sent again
/// only when the connection failed, so the service never saw them, since a
/// second one could act twice (deploy twice, reset a node twice). A caller
/// that knows its POST is safe to repeat (the service answers a repeat with
/// 409, or the body carries a request id) says so with [`Repeat::Safe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Sent again after any failure that may pass.
    Safe,
    /// Sent again only when it never reached the service.
    OnlyIfNotSent,
}

impl Repeat {
    /// What `method` allows by itself: [`Repeat::Safe`] for the idempotent
    /// methods of RFC 9110 (GET, HEAD, OPTIONS, TRACE, PUT, DELETE),
    /// [`Repeat::OnlyIfNotSent`] otherwise.
    pub fn of_method(method: &reqwest::Method) -> Repeat {
        use reqwest::Method;
        if [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::PUT,
            Method::DELETE,
        ]
        .contains(method)
        {
            Repeat::Safe
        } else {
            Repeat::OnlyIfNotSent
        }
    }
}

/// How a failed try failed, as far as trying again goes; each backend tells
/// it of its own error type.
pub trait TryFailure: Display {
    /// Whether the same request may succeed later: no answer, a timeout, a
    /// 5xx (the backend decides which statuses; a 4xx never is).
    fn may_pass(&self) -> bool;
    /// Whether the request never reached the service (the connection
    /// failed), so even a request that is not safe to repeat may be sent again.
    fn not_sent(&self) -> bool;
}

/// How many times, and how soon, a failed request is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Tries after the first.
    pub retries: u32,
    /// The pause before the first retry; each further one doubles it (at
    /// most `max_delay`), with jitter so clients do not retry in step.
    pub base_delay: Duration,
    /// The longest pause, however many retries ([`MAX_RETRY_DELAY`] unless
    /// a backend needs less).
    pub max_delay: Duration,
}

impl Retries {
    /// `retries` retries, the first after about `base_delay`.
    pub fn new(retries: u32, base_delay: Duration) -> Self {
        Retries {
            retries,
            base_delay,
            max_delay: MAX_RETRY_DELAY,
        }
    }

    /// These retries with pauses of at most `max_delay`.
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// The pause before retry number `attempt` (0 for the first retry):
    /// `base × 2^attempt`, capped, then a random point in its upper half.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
            .min(self.max_delay);
        ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    /// Whether a try that failed with `error` is sent again, `attempt`
    /// retries having been made.
    pub fn again<E: TryFailure>(&self, repeat: Repeat, error: &E, attempt: u32) -> bool {
        let repeatable = match repeat {
            Repeat::Safe => error.may_pass(),
            Repeat::OnlyIfNotSent => error.not_sent(),
        };
        repeatable && attempt < self.retries
    }
}

/// Runs `try_once` until it succeeds, fails in a way that is final, or the
/// retries of `retries` are spent; `service` names the backend in the log.
pub async fn send_with_retries<T, E, F, Fut>(
    service: &str,
    retries: &Retries,
    repeat: Repeat,
    mut try_once: F,
) -> Result<T, E>
where
    E: TryFailure,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0u32;
    loop {
        match try_once().await {
            Err(error) if retries.again(repeat, &error, attempt) => {
                let delay = retries.delay(attempt);
                tracing::warn!(%error, attempt, ?delay, "retrying a {service} request");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}
