//! The gate client against wiremock servers that answer as Prometheus's and
//! Alertmanager's APIs document.

use std::time::Duration;

use crus_core::ports::{AlertGate, BlockWhen, GateCheck};
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

fn open_gate() -> SiteAlertGate {
    SiteAlertGate::new(
        AlertGateConfig {
            timeout: Duration::from_secs(2),
            allowed_hosts: vec!["*".into()],
        },
        &[],
    )
    .unwrap()
}

fn prometheus(url: &str, block_when: BlockWhen) -> GateCheck {
    GateCheck::Prometheus {
        url: url.into(),
        query: "ALERTS{severity=\"critical\"}".into(),
        block_when,
    }
}

#[tokio::test]
async fn a_prometheus_query_blocks_on_the_series_it_returns() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(query_param("query", "ALERTS{severity=\"critical\"}"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [
                {"metric": {"__name__": "ALERTS", "alertname": "NodeDown", "severity": "critical"},
                 "value": [1700000000.0, "1"]}
            ]}
        })))
        .mount(&server)
        .await;
    let gate = open_gate();
    let blocking = gate
        .blocking(&prometheus(&server.uri(), BlockWhen::Nonempty))
        .await
        .unwrap();
    assert_eq!(
        blocking,
        ["ALERTS{alertname=\"NodeDown\",severity=\"critical\"} = 1"]
    );
    // The same answer clears a gate that blocks when the query is empty.
    let blocking = gate
        .blocking(&prometheus(&server.uri(), BlockWhen::Empty))
        .await
        .unwrap();
    assert!(blocking.is_empty());
}

#[tokio::test]
async fn an_empty_answer_clears_and_a_refused_query_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(query_param("query", "ALERTS{severity=\"critical\"}"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success", "data": {"resultType": "vector", "result": []}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(query_param("query", "rate("))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "status": "error", "errorType": "bad_data", "error": "parse error: unclosed left parenthesis"
        })))
        .mount(&server)
        .await;
    let gate = open_gate();
    assert!(
        gate.blocking(&prometheus(&server.uri(), BlockWhen::Nonempty))
            .await
            .unwrap()
            .is_empty()
    );
    let empty = gate
        .blocking(&prometheus(&server.uri(), BlockWhen::Empty))
        .await
        .unwrap();
    assert_eq!(empty.len(), 1, "{empty:?}");
    let bad = GateCheck::Prometheus {
        url: server.uri(),
        query: "rate(".into(),
        block_when: BlockWhen::Nonempty,
    };
    let error = gate.blocking(&bad).await.unwrap_err().to_string();
    assert!(error.contains("unclosed left parenthesis"), "{error}");
}

#[tokio::test]
async fn alertmanager_is_asked_for_active_unsilenced_alerts_matching_the_filter() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/alerts"))
        .and(query_param("filter", "severity=critical"))
        .and(query_param("active", "true"))
        .and(query_param("silenced", "false"))
        .and(query_param("inhibited", "false"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"labels": {"alertname": "PfsDegraded", "severity": "critical"},
             "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
             "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T01:00:00Z",
             "fingerprint": "1", "receivers": [{"name": "x"}], "updatedAt": "2026-01-01T00:00:00Z"},
            {"labels": {"alertname": "Quiet", "severity": "critical"},
             "status": {"state": "suppressed", "silencedBy": ["s"], "inhibitedBy": []}}
        ])))
        .mount(&server)
        .await;
    let blocking = open_gate()
        .blocking(&GateCheck::Alertmanager {
            url: server.uri(),
            filter: vec!["severity=critical".into()],
        })
        .await
        .unwrap();
    assert_eq!(blocking, ["PfsDegraded{severity=\"critical\"}"]);
}

#[tokio::test]
async fn an_unreachable_monitor_is_an_error_and_hosts_not_allowed_are_refused() {
    let gate = SiteAlertGate::new(
        AlertGateConfig {
            timeout: Duration::from_secs(1),
            allowed_hosts: vec![],
        },
        &[GateCheck::Alertmanager {
            url: "http://127.0.0.1:9".into(),
            filter: vec![],
        }],
    )
    .unwrap();
    let down = GateCheck::Alertmanager {
        url: "http://127.0.0.1:9".into(),
        filter: vec![],
    };
    assert_eq!(
        gate.refuses(&down),
        None,
        "the server's own gate's host is allowed"
    );
    assert!(gate.blocking(&down).await.is_err());
    let elsewhere = GateCheck::Alertmanager {
        url: "http://monitor.example.org:9093".into(),
        filter: vec![],
    };
    let refusal = gate.refuses(&elsewhere).unwrap();
    assert!(refusal.contains("allowed_hosts"), "{refusal}");
}

#[test]
fn many_alerts_are_counted_past_the_first_few() {
    let items: Vec<String> = (0..8).map(|n| format!("A{n}")).collect();
    let shown = named(items);
    assert_eq!(shown.len(), NAMED_AT_MOST + 1);
    assert_eq!(shown.last().unwrap(), "and 3 more");
}
