//! Conformance suites for the four ports and the session store, written once and
//! run by every backend's tests (the `object_store` integration-suite pattern).
//!
//! Each suite is a module of `pub async fn` checks taking the implementation as
//! `&dyn Trait` and a small fixture struct that says what the backend under test
//! has (which nodes, which template, how long things may take). Every check
//! returns `Result<(), ConformanceError>` instead of panicking, so a test against
//! a real component prints which check failed and what was observed. Each module
//! also has a `run_all` that runs every check in turn and stops at the first
//! failure (later checks would only fail in its wake, e.g. on a node it left
//! drained); call the checks one by one from separate tests for a full picture.
//!
//! The checks rely only on behaviour the trait documentation promises. They
//! work on real time and under tokio's paused time: every wait goes through
//! [`wait_until`], which sleeps with `tokio::time::sleep` between polls.
//!
//! ```no_run
//! # async fn example(inventory: &dyn crus_core::ports::Inventory) {
//! use crus_core::testkit::{self, InventoryFixture};
//!
//! let fixture = InventoryFixture::new("compute", vec!["x1000c0s0b0n0".into(), "x1000c0s0b0n1".into()]);
//! if let Err(failure) = testkit::inventory::run_all(inventory, &fixture).await {
//!     panic!("{failure}");
//! }
//! # }
//! ```

pub mod boot_orchestrator;
pub mod inventory;
pub mod power_control;
pub mod session_claims;
pub mod session_idempotency;
pub mod session_node_pages;
pub mod session_nodes;
pub mod session_step_lists;
pub mod session_store;
pub mod status_view;
pub mod store_options;
pub mod workload_manager;

use std::fmt::{self, Debug, Display};
use std::future::Future;
use std::time::Duration;

pub use boot_orchestrator::BootOrchestratorFixture;
pub use inventory::InventoryFixture;
pub use power_control::PowerControlFixture;
pub use workload_manager::WorkloadManagerFixture;

/// A store that refuses writes on demand, for tests of store failures.
pub use crate::store::FaultyStore;

use crate::error::Error;
use crate::node::NodeId;

/// A conformance check that failed: which one, and what was seen.
#[derive(Debug, thiserror::Error)]
#[error("conformance check {check} failed: {detail}")]
#[non_exhaustive]
pub struct ConformanceError {
    /// The failing check, as `suite::function`, e.g. `inventory::add_members_is_idempotent`.
    pub check: &'static str,
    /// What was expected and what was observed instead, in words.
    pub detail: String,
    /// The port's error, when the check failed because a call returned one the
    /// check did not expect (its text is also quoted in `detail`).
    pub error: Option<Error>,
}

impl ConformanceError {
    /// A failure of `check`, described by `detail`.
    pub fn new(check: &'static str, detail: impl Into<String>) -> Self {
        ConformanceError {
            check,
            detail: detail.into(),
            error: None,
        }
    }

    /// A failure of `check` because `call` returned `error` where success was expected.
    pub fn unexpected_error(check: &'static str, call: impl Display, error: Error) -> Self {
        ConformanceError {
            check,
            detail: format!("{call} returned an error: {error} ({error:?})"),
            error: Some(error),
        }
    }
}

/// Attaches the check and the call to a port result, for `?` inside checks.
pub(crate) trait CallResultExt<T> {
    /// The value, or a [`ConformanceError`] of `check` saying that `call` failed.
    fn or_fail(self, check: &'static str, call: impl Display) -> Result<T, ConformanceError>;
}

impl<T> CallResultExt<T> for crate::Result<T> {
    fn or_fail(self, check: &'static str, call: impl Display) -> Result<T, ConformanceError> {
        self.map_err(|error| ConformanceError::unexpected_error(check, call, error))
    }
}

/// Checks that `result` is an error accepted by `is_expected`; `expected`
/// names the accepted errors in the failure message.
pub(crate) fn expect_error<T: Debug>(
    check: &'static str,
    call: impl Display,
    result: crate::Result<T>,
    expected: &str,
    is_expected: impl FnOnce(&Error) -> bool,
) -> Result<(), ConformanceError> {
    match result {
        Err(error) if is_expected(&error) => Ok(()),
        Err(error) => Err(ConformanceError {
            check,
            detail: format!(
                "{call} should fail with {expected}, but failed with: {error} ({error:?})"
            ),
            error: Some(error),
        }),
        Ok(value) => Err(ConformanceError::new(
            check,
            format!("{call} should fail with {expected}, but succeeded with {value:?}"),
        )),
    }
}

/// Why [`wait_until`] gave up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError<T: Debug> {
    /// An observation failed with an error that retrying will not fix.
    #[error("an observation failed after {waited:?}: {error}")]
    Failed {
        /// The error.
        error: Error,
        /// How long the wait had lasted.
        waited: Duration,
    },
    /// The condition still did not hold when the timeout ran out.
    #[error(
        "still not done after {timeout:?} ({attempts} observations); last observed {last:?}, last error {last_error:?}"
    )]
    TimedOut {
        /// The timeout given.
        timeout: Duration,
        /// How many observations returned.
        attempts: u32,
        /// The last value observed, if any observation succeeded.
        last: Option<T>,
        /// The last retryable error, if any observation failed.
        last_error: Option<Error>,
    },
    /// One observation did not return before the timeout ran out.
    #[error("an observation did not return within {timeout:?}; last observed {last:?}")]
    Stalled {
        /// The timeout given.
        timeout: Duration,
        /// The last value observed before it, if any.
        last: Option<T>,
    },
}

impl<T: Debug> WaitError<T> {
    /// A [`ConformanceError`] of `check` saying that `condition` was not reached,
    /// with observed values shown by `describe`.
    pub fn into_conformance_error(
        self,
        check: &'static str,
        condition: impl Display,
        describe: impl Fn(&T) -> String,
    ) -> ConformanceError {
        let describe_last = |last: &Option<T>| match last {
            Some(value) => describe(value),
            None => "nothing (no observation succeeded)".to_string(),
        };
        match self {
            WaitError::Failed { error, waited } => ConformanceError {
                check,
                detail: format!(
                    "while waiting for {condition}, an observation failed after {waited:?}: {error} ({error:?})"
                ),
                error: Some(error),
            },
            WaitError::TimedOut {
                timeout,
                attempts,
                last,
                last_error,
            } => {
                let errors = match &last_error {
                    Some(error) => format!("; the last failed observation said: {error}"),
                    None => String::new(),
                };
                ConformanceError {
                    check,
                    detail: format!(
                        "{condition} did not happen within {timeout:?} ({attempts} observations); last observed {}{errors}",
                        describe_last(&last)
                    ),
                    error: last_error,
                }
            }
            WaitError::Stalled { timeout, last } => ConformanceError::new(
                check,
                format!(
                    "while waiting for {condition}, an observation did not return within {timeout:?}; last observed {}",
                    describe_last(&last)
                ),
            ),
        }
    }
}

/// The shortest pause between two observations, so a zero `poll_interval`
/// cannot spin without letting (paused) time advance.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Observes with `observe` until `done` holds for the observed value, and returns that value.
///
/// Observes once at once, then every `poll_interval` (sleeping with
/// `tokio::time::sleep`, so it works on real time and under tokio's paused time,
/// where the sleeps let virtual time advance), and a last time when `timeout`
/// has run out. Retryable errors ([`Error::is_retryable`]) count as "not yet"
/// because a real service may be briefly busy; any other error ends the wait. An
/// observation that itself does not return before the timeout (with at least
/// `poll_interval` granted) ends the wait too.
pub async fn wait_until<T, Observe, Observation, Done>(
    timeout: Duration,
    poll_interval: Duration,
    mut observe: Observe,
    mut done: Done,
) -> Result<T, WaitError<T>>
where
    T: Debug,
    Observe: FnMut() -> Observation,
    Observation: Future<Output = crate::Result<T>>,
    Done: FnMut(&T) -> bool,
{
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let poll_interval = poll_interval.max(MIN_POLL_INTERVAL);
    let mut attempts = 0u32;
    let mut last = None;
    let mut last_error = None;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining.max(poll_interval), observe()).await {
            Err(_elapsed) => return Err(WaitError::Stalled { timeout, last }),
            Ok(Ok(value)) => {
                attempts = attempts.saturating_add(1);
                if done(&value) {
                    return Ok(value);
                }
                last = Some(value);
            }
            Ok(Err(error)) if error.is_retryable() => last_error = Some(error),
            Ok(Err(error)) => {
                return Err(WaitError::Failed {
                    error,
                    waited: started.elapsed(),
                });
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(WaitError::TimedOut {
                timeout,
                attempts,
                last,
                last_error,
            });
        }
        // The last sleep ends at the deadline, so one observation always happens there.
        tokio::time::sleep(poll_interval.min(deadline - now)).await;
    }
}

/// A fresh suffix for names the suites create (groups, keys, reasons), so a
/// suite can run again and again against the same real service.
pub(crate) fn unique_suffix() -> String {
    let mut suffix = uuid::Uuid::new_v4().simple().to_string();
    suffix.truncate(12);
    suffix
}

/// Node ids as `[a, b]`, for messages.
pub(crate) struct NodeList<'a>(pub(crate) &'a [NodeId]);

impl Display for NodeList<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("[")?;
        for (index, node) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str(", ")?;
            }
            write!(formatter, "{node}")?;
        }
        formatter.write_str("]")
    }
}

/// Helpers for the suites' own tests, which prove each suite catches broken fakes.
#[cfg(test)]
pub(crate) mod test_support {
    use std::fmt::Debug;
    use std::sync::{Mutex, MutexGuard, PoisonError};

    /// Takes the error out of a result that must have failed.
    pub(crate) trait ExpectFailure<E> {
        /// The error; panics, showing the value, if the result is `Ok`.
        fn failure(self) -> E;
    }

    impl<T: Debug, E> ExpectFailure<E> for Result<T, E> {
        fn failure(self) -> E {
            match self {
                Ok(value) => panic!("expected a failure, but got Ok({value:?})"),
                Err(error) => error,
            }
        }
    }

    /// Locks a fake's state; a test that panicked while holding it has failed already.
    pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::test_support::ExpectFailure;
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wait_until_advances_paused_time() -> Result<(), Box<dyn std::error::Error>> {
        let started = tokio::time::Instant::now();
        let ready_at = started + Duration::from_secs(300);
        let value = wait_until(
            Duration::from_secs(600),
            Duration::from_secs(10),
            || async { Ok(tokio::time::Instant::now() >= ready_at) },
            |ready| *ready,
        )
        .await?;
        assert!(value);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(300) && waited < Duration::from_secs(311),
            "{waited:?}"
        );
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_times_out_with_the_last_observation() {
        let attempts = AtomicU32::new(0);
        let error = wait_until(
            Duration::from_secs(35),
            Duration::from_secs(10),
            || async { Ok(attempts.fetch_add(1, Ordering::SeqCst)) },
            |_| false,
        )
        .await
        .failure();
        // At 0, 10, 20, 30 and at the deadline, 35.
        match error {
            WaitError::TimedOut { attempts, last, .. } => {
                assert_eq!(attempts, 5);
                assert_eq!(last, Some(4));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_retries_retryable_errors_only() -> Result<(), Box<dyn std::error::Error>> {
        let attempts = AtomicU32::new(0);
        let value = wait_until(
            Duration::from_secs(60),
            Duration::from_secs(1),
            || async {
                match attempts.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(Error::unavailable("test", "busy")),
                    count => Ok(count),
                }
            },
            |_| true,
        )
        .await?;
        assert_eq!(value, 2);

        let error = wait_until(
            Duration::from_secs(60),
            Duration::from_secs(1),
            || async { Err::<u32, _>(Error::invalid("no")) },
            |_| true,
        )
        .await
        .failure();
        assert!(
            matches!(
                error,
                WaitError::Failed {
                    error: Error::Invalid { .. },
                    ..
                }
            ),
            "{error:?}"
        );
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_gives_up_on_a_stalled_observation() {
        let error = wait_until(
            Duration::from_secs(5),
            Duration::from_secs(1),
            std::future::pending::<crate::Result<u32>>,
            |_| true,
        )
        .await
        .failure();
        assert!(matches!(error, WaitError::Stalled { .. }), "{error:?}");
        let conformance =
            error.into_conformance_error("testkit::stall", "nothing", |value| value.to_string());
        assert!(
            conformance.to_string().contains("did not return within 5s"),
            "{conformance}"
        );
    }

    #[tokio::test]
    async fn wait_until_works_on_real_time() -> Result<(), Box<dyn std::error::Error>> {
        let started = std::time::Instant::now();
        let ready_at = started + Duration::from_millis(30);
        let value = wait_until(
            Duration::from_secs(5),
            Duration::from_millis(5),
            || async { Ok(std::time::Instant::now() >= ready_at) },
            |ready| *ready,
        )
        .await?;
        assert!(value);
        assert!(started.elapsed() < Duration::from_secs(5));

        let error = wait_until(
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { Ok(false) },
            |ready| *ready,
        )
        .await
        .failure();
        assert!(matches!(error, WaitError::TimedOut { .. }), "{error:?}");
        Ok(())
    }

    #[test]
    fn messages_name_the_check_and_the_call() {
        let error = Err::<(), _>(Error::not_found("group 'x'"))
            .or_fail("inventory::example", "group_members(\"x\")")
            .failure();
        assert_eq!(error.check, "inventory::example");
        assert!(matches!(error.error, Some(Error::NotFound { .. })));
        assert_eq!(
            error.to_string(),
            "conformance check inventory::example failed: group_members(\"x\") returned an error: \
             group 'x' not found (NotFound { what: \"group 'x'\" })"
        );
        let nodes = [NodeId::from("a"), NodeId::from("b")];
        assert_eq!(NodeList(&nodes).to_string(), "[a, b]");
    }
}
