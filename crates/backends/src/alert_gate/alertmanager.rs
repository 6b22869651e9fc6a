//! Alertmanager's API v2 (`GET /api/v2/alerts`), as its OpenAPI documents
//! it: `filter` label matchers (repeated), `active`, `silenced`,
//! `inhibited`; the answer is a list of alerts, each with `labels` and
//! `status.state` (`active`, `suppressed` or `unprocessed`).

use crus_core::error::{Error, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{BACKEND, labelled};

#[derive(Deserialize)]
struct Alert {
    #[serde(default)]
    labels: Map<String, Value>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Status {
    state: String,
}

/// The alerts at `base` matching every matcher of `filter` that fire
/// (neither silenced nor inhibited), as text.
pub(super) async fn blocking(
    client: &reqwest::Client,
    base: &str,
    filter: &[String],
) -> Result<Vec<String>> {
    let url = format!("{base}/api/v2/alerts");
    let mut query: Vec<(&str, &str)> = filter
        .iter()
        .map(|matcher| ("filter", matcher.as_str()))
        .collect();
    query.extend([
        ("active", "true"),
        ("silenced", "false"),
        ("inhibited", "false"),
    ]);
    let response = client
        .get(&url)
        .query(&query)
        .send()
        .await
        .map_err(|error| Error::unavailable(BACKEND, format!("GET {url}: {error}")))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|error| Error::unavailable(BACKEND, format!("GET {url}: {error}")))?;
    if !status.is_success() {
        // A bad matcher is answered 400 with the reason as the body.
        return Err(Error::unavailable(
            BACKEND,
            format!("GET {url} answered {status}: {}", body.trim()),
        ));
    }
    let alerts: Vec<Alert> = serde_json::from_str(&body).map_err(|error| {
        Error::unavailable(
            BACKEND,
            format!("GET {url} answered {status}, not Alertmanager's list of alerts ({error})"),
        )
    })?;
    Ok(alerts
        .iter()
        .filter(|alert| {
            alert
                .status
                .as_ref()
                .is_none_or(|status| status.state != "suppressed")
        })
        .map(|alert| labelled("alertname", &alert.labels))
        .collect())
}
