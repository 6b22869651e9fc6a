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
        // The probes below go to a local mock server.
        allowed_http_hosts: vec!["127.0.0.1".to_string()],
    })
    .unwrap()
}

fn allowing(hosts: &[&str]) -> SiteHealthProbe {
    SiteHealthProbe::new(HealthProbeConfig {
        allowed_http_hosts: hosts.iter().map(|host| host.to_string()).collect(),
        ..HealthProbeConfig::default()
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

#[test]
fn http_probes_go_only_to_the_hosts_the_site_allows() {
    // By default, the nodes themselves only.
    let default = SiteHealthProbe::new(HealthProbeConfig::default()).unwrap();
    assert_eq!(
        default.refuses(&http("http://{node}:9100/healthy".to_string())),
        None
    );
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://{node}.mgmt.example.org/healthy",
        "http://{node}@metadata.internal/",
    ] {
        let refusal = default.refuses(&http(url.to_string())).unwrap();
        assert!(refusal.contains("allowed_http_hosts"), "{url}: {refusal}");
    }
    for url in ["file:///etc/passwd", "not a url", "gopher://{node}/"] {
        let refusal = default.refuses(&http(url.to_string())).unwrap();
        assert!(
            refusal.contains("http://{node}:9100/healthy"),
            "{url}: {refusal}"
        );
    }
    let site = allowing(&["{node}", "*.mgmt.example.org", "Monitor.example.org"]);
    for url in [
        "http://{node}.mgmt.example.org/healthy",
        "https://monitor.EXAMPLE.org/check/{node}",
        "http://{node}:9100/",
    ] {
        assert_eq!(site.refuses(&http(url.to_string())), None, "{url}");
    }
    for url in [
        "http://mgmt.example.org/",
        "http://monitor.example.org.evil.com/",
    ] {
        assert!(site.refuses(&http(url.to_string())).is_some(), "{url}");
    }
    assert_eq!(
        allowing(&["*"]).refuses(&http("http://anything.example/".to_string())),
        None
    );
}

#[tokio::test]
async fn a_probe_to_a_host_not_allowed_is_never_sent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let check = http(format!("{}/health/{{node}}", server.uri()));
    let failure = allowing(&["{node}"])
        .probe(&node(), &check)
        .await
        .unwrap()
        .unwrap();
    assert!(failure.contains("allowed_http_hosts"), "{failure}");
    // A node name cannot move the probe to another host.
    let check = http("http://{node}/healthy".to_string());
    let failure = allowing(&["{node}"])
        .probe(&NodeId::new("evil.example@127.0.0.1"), &check)
        .await
        .unwrap()
        .unwrap();
    assert!(failure.contains("was not sent"), "{failure}");
}

#[tokio::test]
async fn a_redirect_to_a_host_not_allowed_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health/x1000c0s0b0n0"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", "http://localhost:1/elsewhere"),
        )
        .mount(&server)
        .await;
    let check = http(format!("{}/health/{{node}}", server.uri()));
    let failure = prober(false).probe(&node(), &check).await.unwrap().unwrap();
    assert!(failure.contains("not an allowed host"), "{failure}");
}
