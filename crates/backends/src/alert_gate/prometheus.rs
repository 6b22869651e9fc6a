//! A Prometheus instant query (`GET /api/v1/query`), as Prometheus's HTTP
//! API documents it: `{"status": "success", "data": {"resultType":
//! "vector", "result": [{"metric": {...}, "value": [time, "v"]}]}}`, or
//! `{"status": "error", "errorType": ..., "error": ...}` with a 4xx/5xx.

use crus_core::error::{Error, Result};
use crus_core::ports::BlockWhen;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{BACKEND, labelled};

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: Value,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: Map<String, Value>,
    #[serde(default)]
    value: Option<(Value, String)>,
}

/// The series `query` returns at `base` that block, as text; an empty
/// answer blocks under `block_when: empty`.
pub(super) async fn blocking(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    block_when: BlockWhen,
) -> Result<Vec<String>> {
    let url = format!("{base}/api/v1/query");
    let response = client
        .get(&url)
        .query(&[("query", query)])
        .send()
        .await
        .map_err(|error| Error::unavailable(BACKEND, format!("GET {url}: {error}")))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|error| Error::unavailable(BACKEND, format!("GET {url}: {error}")))?;
    let answer: Answer = serde_json::from_str(&body).map_err(|error| {
        Error::unavailable(
            BACKEND,
            format!("GET {url} answered {status}, not Prometheus's query JSON ({error})"),
        )
    })?;
    if answer.status != "success" {
        return Err(Error::unavailable(
            BACKEND,
            format!(
                "Prometheus refused the query {query:?} ({status}): {}",
                answer.error.unwrap_or_default()
            ),
        ));
    }
    let data = answer
        .data
        .ok_or_else(|| Error::unavailable(BACKEND, format!("GET {url}: a success without data")))?;
    let found: Vec<String> = match data.result_type.as_str() {
        "vector" | "matrix" => {
            let series: Vec<Series> = serde_json::from_value(data.result).map_err(|error| {
                Error::unavailable(BACKEND, format!("GET {url}: unreadable series ({error})"))
            })?;
            series
                .iter()
                .map(|series| {
                    let name = labelled("__name__", &series.metric);
                    match &series.value {
                        Some((_, value)) => format!("{name} = {value}"),
                        None => name,
                    }
                })
                .collect()
        }
        // A scalar or a string is one value: never empty.
        _ => vec![format!("{} {}", data.result_type, data.result)],
    };
    Ok(match block_when {
        BlockWhen::Nonempty => found,
        BlockWhen::Empty if found.is_empty() => {
            vec![format!("the query {query:?} returned nothing")]
        }
        BlockWhen::Empty => Vec::new(),
    })
}
