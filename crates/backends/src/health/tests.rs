use std::time::Duration;

use crus_core::node::NodeId;
use crus_core::ports::{HealthCheck, HealthProbe};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{HealthProbeConfig, SiteHealthProbe};

fn prober(allow_commands: bool) -> SiteHealthProbe {
    SiteHealthProbe::new(HealthProbeConfig {
        allow_commands,
        timeout: Duration::from_secs(2),
    })
    .unwrap()
}

fn command(command: &str) -> HealthCheck {
    HealthCheck {
        command: Some(command.to_string()),
        http: None,
    }
}

fn http(url: String) -> HealthCheck {
    HealthCheck {
        command: None,
        http: Some(url),
    }
}

fn node() -> NodeId {
    NodeId::new("x1000c0s0b0n0")
}

#[tokio::test]
async fn a_command_gets_the_node_as_its_last_argument_and_in_the_environment() {
    let check = command(r#"test "$CRUS_NODE" = x1000c0s0b0n0 && test"#);
    // `test x1000c0s0b0n0` (the appended argument) is true: non-empty.
    assert_eq!(prober(true).probe(&node(), &check).await.unwrap(), None);
    let check = command("test x1000c0s0b0n0 =");
    assert_eq!(prober(true).probe(&node(), &check).await.unwrap(), None);
}

#[tokio::test]
async fn a_failing_command_says_its_status_and_last_line() {
    let check = command("echo first >&2; echo 'GPU 3 missing' >&2; exit 3; true");
    let failure = prober(true).probe(&node(), &check).await.unwrap().unwrap();
    assert!(failure.contains("exited with status 3"), "{failure}");
    assert!(failure.ends_with(": GPU 3 missing"), "{failure}");
}

#[tokio::test]
async fn a_command_that_hangs_is_killed_after_the_timeout() {
    let check = command("sleep 30; true");
    let started = std::time::Instant::now();
    let failure = prober(true).probe(&node(), &check).await.unwrap().unwrap();
    assert!(failure.contains("did not finish within 2s"), "{failure}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn commands_are_refused_unless_the_site_allows_them() {
    let check = command("true");
    let refusal = prober(false).refuses(&check).unwrap();
    assert!(refusal.contains("allow_commands = true"), "{refusal}");
    let failure = prober(false).probe(&node(), &check).await.unwrap().unwrap();
    assert!(failure.contains("allow_commands = true"), "{failure}");
    assert_eq!(prober(true).refuses(&check), None);
    let probe_only = http("http://127.0.0.1/{node}".to_string());
    assert_eq!(prober(false).refuses(&probe_only), None);
}

#[tokio::test]
async fn an_http_probe_is_healthy_on_2xx_only() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health/x1000c0s0b0n0"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/health/x1000c0s0b1n0"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let check = http(format!("{}/health/{{node}}", server.uri()));
    assert_eq!(prober(false).probe(&node(), &check).await.unwrap(), None);
    let failure = prober(false)
        .probe(&NodeId::new("x1000c0s0b1n0"), &check)
        .await
        .unwrap()
        .unwrap();
    assert!(
        failure.contains("/health/x1000c0s0b1n0 answered 503"),
        "{failure}"
    );
}

#[tokio::test]
async fn an_unreachable_probe_is_a_failed_check_not_an_error() {
    // A port nothing listens on: bind one, then let it go.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let check = http(format!("http://127.0.0.1:{port}/{{node}}"));
    let failure = prober(false).probe(&node(), &check).await.unwrap().unwrap();
    assert!(failure.starts_with("GET http://127.0.0.1:"), "{failure}");
    assert!(failure.contains("failed: "), "{failure}");
}

#[tokio::test]
async fn both_checks_must_pass() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let both = HealthCheck {
        command: Some("false".to_string()),
        http: Some(format!("{}/{{node}}", server.uri())),
    };
    let failure = prober(true).probe(&node(), &both).await.unwrap().unwrap();
    assert!(
        failure.starts_with("`false` exited with status 1"),
        "{failure}"
    );
}
