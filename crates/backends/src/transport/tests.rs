//! The transport against a mock service: what is retried, what is not, and
//! CA file errors.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::Method;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

/// How a try of the tests' requests failed.
#[derive(Debug)]
enum Failed {
    Status(u16),
    Transport(reqwest::Error),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Status(status) => write!(formatter, "HTTP {status}"),
            Failed::Transport(error) => write!(formatter, "{error}"),
        }
    }
}

impl TryFailure for Failed {
    fn may_pass(&self) -> bool {
        match self {
            Failed::Status(status) => *status >= 500,
            Failed::Transport(_) => true,
        }
    }

    fn not_sent(&self) -> bool {
        matches!(self, Failed::Transport(error) if error.is_connect())
    }
}

const FAST: Retries = Retries {
    retries: 3,
    base_delay: Duration::from_millis(1),
    max_delay: MAX_RETRY_DELAY,
};

/// Sends `method url` with the transport's retries; the status of the
/// answer, and how many tries were made.
async fn send(method: Method, url: &str, repeat: Repeat) -> (Result<u16, Failed>, u32) {
    let client = HttpClientSettings::new(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let tries = AtomicU32::new(0);
    let outcome = send_with_retries("test", &FAST, repeat, || async {
        tries.fetch_add(1, Ordering::SeqCst);
        let response = client
            .request(method.clone(), url)
            .send()
            .await
            .map_err(Failed::Transport)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            Ok(status)
        } else {
            Err(Failed::Status(status))
        }
    })
    .await;
    (outcome, tries.load(Ordering::SeqCst))
}

#[tokio::test]
async fn an_idempotent_request_is_retried_after_a_503_and_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/thing"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/thing"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/thing", server.uri());
    let (outcome, tries) = send(Method::GET, &url, Repeat::of_method(&Method::GET)).await;
    assert_eq!(outcome.unwrap(), 200);
    assert_eq!(tries, 3);
}

#[tokio::test]
async fn a_4xx_is_never_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let (outcome, tries) = send(Method::GET, &server.uri(), Repeat::Safe).await;
    assert!(matches!(outcome, Err(Failed::Status(404))));
    assert_eq!(tries, 1);
}

#[tokio::test]
async fn a_post_that_reached_the_service_is_not_sent_again_unless_the_caller_says_so() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    assert_eq!(Repeat::of_method(&Method::POST), Repeat::OnlyIfNotSent);
    let (outcome, tries) = send(Method::POST, &server.uri(), Repeat::OnlyIfNotSent).await;
    assert!(matches!(outcome, Err(Failed::Status(503))));
    assert_eq!(tries, 1, "a second POST could act twice");
    // A POST the caller knows is safe to repeat (a request id) is retried.
    let (outcome, tries) = send(Method::POST, &server.uri(), Repeat::Safe).await;
    assert!(matches!(outcome, Err(Failed::Status(503))));
    assert_eq!(tries, 1 + FAST.retries);
}

#[tokio::test]
async fn a_post_that_never_left_is_sent_again() {
    // A port nobody listens on: the connection is refused, nothing was sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let (outcome, tries) = send(Method::POST, &url, Repeat::OnlyIfNotSent).await;
    assert!(matches!(outcome, Err(Failed::Transport(_))));
    assert_eq!(tries, 1 + FAST.retries);
}

#[test]
fn ca_file_errors_name_the_setting_and_the_file() {
    let missing = HttpClientSettings::new(Duration::from_secs(1))
        .ca_file("redfish.ca_file", Some("/nonexistent/site-ca.pem".as_ref()))
        .build()
        .unwrap_err();
    let message = missing.to_string();
    assert!(
        message.contains("redfish.ca_file") && message.contains("/nonexistent/site-ca.pem"),
        "{message}"
    );
    let dir = tempfile::tempdir().unwrap();
    let garbled = dir.path().join("garbled-ca.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let not_pem = HttpClientSettings::new(Duration::from_secs(1))
        .ca_file("kadeploy.ca_file", Some(&garbled))
        .build()
        .unwrap_err();
    let message = not_pem.to_string();
    assert!(
        message.contains("kadeploy.ca_file")
            && message.contains("garbled-ca.pem")
            && message.contains("not PEM"),
        "{message}"
    );
}

#[test]
fn pauses_double_within_jitter_and_stay_under_the_cap() {
    let retries = Retries::new(20, Duration::from_millis(100));
    for attempt in 0..20 {
        let ceiling = Duration::from_millis(100)
            .saturating_mul(1 << attempt.min(16))
            .min(MAX_RETRY_DELAY);
        let delay = retries.delay(attempt);
        assert!(
            delay >= ceiling / 2 && delay <= ceiling,
            "{attempt}: {delay:?}"
        );
    }
}
