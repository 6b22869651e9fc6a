//! `Instrumented`: every call counted, with its outcome, and forwarded unchanged.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crus_core::ports::Inventory;
use crus_core::{Error, NodeFacts, NodeId};

use crate::metrics::{Instrumented, Metrics};

/// An inventory whose answer depends on the label asked for.
struct ScriptedInventory;

#[async_trait]
impl Inventory for ScriptedInventory {
    async fn group_members(&self, label: &str) -> crus_core::Result<Vec<NodeId>> {
        match label {
            "ok" => Ok(Vec::new()),
            "missing" => Err(Error::not_found("group 'missing'")),
            "taken" => Err(Error::conflict("group 'taken'")),
            "bad" => Err(Error::invalid("bad label")),
            "down" => Err(Error::unavailable("hsm", "timeout")),
            _ => Err(Error::NotSupported {
                backend: "hsm",
                operation: "group_members",
            }),
        }
    }
    async fn create_group(&self, _: &str) -> crus_core::Result<()> {
        Ok(())
    }
    async fn add_members(&self, _: &str, _: &[NodeId]) -> crus_core::Result<()> {
        Ok(())
    }
    async fn remove_members(&self, _: &str, _: &[NodeId]) -> crus_core::Result<()> {
        Ok(())
    }
    async fn node_facts(&self, _: &[NodeId]) -> crus_core::Result<Vec<NodeFacts>> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn every_outcome_is_counted_and_results_pass_through() {
    let metrics = Arc::new(Metrics::new());
    let inventory: Arc<dyn Inventory> = Arc::new(ScriptedInventory);
    let instrumented = Instrumented::new(inventory, metrics.clone());
    assert!(instrumented.group_members("ok").await.is_ok());
    assert!(matches!(
        instrumented.group_members("missing").await,
        Err(Error::NotFound { .. })
    ));
    for label in ["taken", "bad", "down", "unsupported", "down"] {
        assert!(instrumented.group_members(label).await.is_err());
    }
    // Provided methods are forwarded too, and counted under their own name.
    instrumented.ensure_group("new").await.unwrap();

    let text = metrics.encode().unwrap();
    for (outcome, count) in [
        ("ok", 1),
        ("not_found", 1),
        ("conflict", 1),
        ("invalid", 1),
        ("unavailable", 2),
        ("other", 1),
    ] {
        let line = format!(
            r#"crus_port_calls_total{{port="inventory",operation="group_members",outcome="{outcome}"}} {count}"#
        );
        assert!(text.contains(&line), "missing {line}:\n{text}");
    }
    assert!(text.contains(
        r#"crus_port_calls_total{port="inventory",operation="ensure_group",outcome="ok"} 1"#
    ));
    assert!(text.contains(
        r#"crus_port_call_duration_seconds_count{port="inventory",operation="group_members"} 7"#
    ));
}

#[test]
fn http_requests_are_counted_by_route_template() {
    let metrics = Metrics::new();
    metrics.record_http(
        &axum::http::Method::GET,
        "/session/{upgrade_id}",
        404,
        Duration::from_millis(3),
    );
    metrics.record_http(
        &axum::http::Method::from_bytes(b"BREW").unwrap(),
        "unmatched",
        405,
        Duration::from_millis(1),
    );
    let text = metrics.encode().unwrap();
    assert!(text.contains(
        r#"crus_http_requests_total{method="GET",route="/session/{upgrade_id}",status="404"} 1"#
    ));
    assert!(text.contains(r#"method="other""#));
    assert!(text.contains("# UNIT crus_http_request_duration_seconds seconds"));
}
