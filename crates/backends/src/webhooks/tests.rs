use std::sync::{Arc, Mutex};
use std::time::Duration;

use crus_core::controller::EventLog;
use crus_core::rollout::{EventKind, RolloutEvent};
use crus_core::{SessionState, Timestamp};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

#[derive(Default)]
struct Tally {
    delivered: Mutex<Vec<(String, u32)>>,
    failed: Mutex<Vec<String>>,
}

impl DeliveryObserver for Tally {
    fn delivered(&self, url: &str, attempts: u32) {
        self.delivered
            .lock()
            .unwrap()
            .push((url.to_string(), attempts));
    }
    fn failed(&self, _url: &str, why: &str) {
        self.failed.lock().unwrap().push(why.to_string());
    }
    fn dropped(&self, _url: &str, _count: u64) {}
}

fn event(kind: EventKind) -> RolloutEvent {
    RolloutEvent {
        upgrade_id: uuid::Uuid::nil(),
        at: Timestamp::from_secs(1_800_000_000),
        kind,
    }
}

fn state_ready() -> RolloutEvent {
    event(EventKind::State {
        state: SessionState::Ready,
    })
}

fn message(text: &str) -> RolloutEvent {
    event(EventKind::Message { text: text.into() })
}

/// Waits until `done` holds, for at most 20 s.
async fn until(done: impl Fn() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not done within 20 s");
}

#[test]
fn signatures_are_hmac_sha256_in_hex() {
    // RFC 4231, test case 2.
    assert_eq!(
        sign("Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn bad_hooks_are_refused_naming_the_field() {
    let mut hook = WebhookConfig::new("ftp://example.invalid/");
    assert!(hook.validate().unwrap_err().starts_with("url must be"));
    hook.url = "http://127.0.0.1:9/".into();
    hook.events = vec!["node_phase".into(), "nodephase".into()];
    let error = hook.validate().unwrap_err();
    assert!(error.contains("unknown event \"nodephase\""), "{error}");
    hook.events.clear();
    hook.max_attempts = 0;
    assert!(hook.validate().unwrap_err().starts_with("max_attempts"));
}

#[tokio::test]
async fn subscribed_events_are_posted_signed_and_others_are_not() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(header("x-crus-event", "state"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let log = EventLog::new(16);
    let tally = Arc::new(Tally::default());
    let hook = WebhookConfig {
        events: vec!["state".into()],
        secret: Some("s3cret".into()),
        ..WebhookConfig::new(format!("{}/hook", server.uri()))
    };
    let _task = spawn(vec![hook], log.subscribe(), tally.clone()).unwrap();
    log.publish(vec![message("not wanted"), state_ready()]);
    until(|| !tally.delivered.lock().unwrap().is_empty()).await;
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "the message event is filtered out");
    let request = &requests[0];
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["type"], "state");
    assert_eq!(body["state"], "READY");
    assert_eq!(body["id"], 2);
    let signature = request.headers.get(SIGNATURE_HEADER).unwrap();
    assert_eq!(signature.to_str().unwrap(), sign("s3cret", &request.body));
    assert!(request.headers.get("x-crus-delivery").is_some());
    assert_eq!(tally.delivered.lock().unwrap()[0].1, 1);
}

#[tokio::test]
async fn a_server_error_is_retried_with_the_same_delivery_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let log = EventLog::new(16);
    let tally = Arc::new(Tally::default());
    let _task = spawn(
        vec![WebhookConfig::new(server.uri())],
        log.subscribe(),
        tally.clone(),
    )
    .unwrap();
    log.publish(vec![state_ready()]);
    until(|| !tally.delivered.lock().unwrap().is_empty()).await;
    assert_eq!(tally.delivered.lock().unwrap()[0].1, 2);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].headers.get("x-crus-delivery"),
        requests[1].headers.get("x-crus-delivery")
    );
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_later_events_still_go() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-crus-event", "message"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("x-crus-event", "state"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let log = EventLog::new(16);
    let tally = Arc::new(Tally::default());
    let _task = spawn(
        vec![WebhookConfig::new(server.uri())],
        log.subscribe(),
        tally.clone(),
    )
    .unwrap();
    log.publish(vec![message("refused"), state_ready()]);
    until(|| !tally.delivered.lock().unwrap().is_empty()).await;
    let failed = tally.failed.lock().unwrap().clone();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].ends_with("answered 400 Bad Request"),
        "{failed:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_unreachable_hook_is_given_up_after_its_attempts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let log = EventLog::new(16);
    let tally = Arc::new(Tally::default());
    let hook = WebhookConfig {
        max_attempts: 2,
        ..WebhookConfig::new(format!("http://127.0.0.1:{port}/"))
    };
    let _task = spawn(vec![hook], log.subscribe(), tally.clone()).unwrap();
    log.publish(vec![state_ready()]);
    until(|| !tally.failed.lock().unwrap().is_empty()).await;
    let why = tally.failed.lock().unwrap()[0].clone();
    assert!(
        why.starts_with(&format!("POST http://127.0.0.1:{port}/ failed")),
        "{why}"
    );
    assert!(why.ends_with("(after 2 tries)"), "{why}");
}
