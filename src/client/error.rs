//! Why a request to a CRUS API server failed: the server's problem JSON as
//! `title: detail` (with a 422's field errors), a server out of reach, or a
//! problem on this side.

use reqwest::StatusCode;
use serde_json::Value;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error (its problem JSON's title and detail).
    #[error("{title}: {detail}{}", field_errors(.errors))]
    Server {
        /// HTTP status.
        status: u16,
        /// Problem title.
        title: String,
        /// Problem detail.
        detail: String,
        /// Per-field errors of a 422, if any.
        errors: Option<Value>,
    },
    /// The server could not be reached or did not answer in time.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What happened.
        message: String,
    },
    /// The server answered success with a body that is not what the API
    /// documents (not JSON, or JSON of another shape).
    #[error("{url} answered {status} with a body that is not {expected}{}", detail_suffix(.detail))]
    UnexpectedBody {
        /// The URL asked.
        url: String,
        /// HTTP status.
        status: u16,
        /// What the body should have been.
        expected: &'static str,
        /// Why it was not (serde's message), if known.
        detail: Option<String>,
    },
    /// The base URL is not an `http://` or `https://` URL.
    #[error("--url {0:?} must start with http:// or https://")]
    InvalidUrl(String),
    /// Something on this side went wrong (the HTTP client or the runtime
    /// could not be built).
    #[error("{0}")]
    Local(String),
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|detail| format!(" ({detail})"))
        .unwrap_or_default()
}

fn field_errors(errors: &Option<Value>) -> String {
    let Some(Value::Object(fields)) = errors else {
        return String::new();
    };
    let mut text = String::new();
    for (field, messages) in fields {
        let messages = match messages {
            Value::Array(list) => list
                .iter()
                .map(|message| {
                    message
                        .as_str()
                        .map_or_else(|| message.to_string(), str::to_string)
                })
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        text.push_str(&format!("\n  {field}: {messages}"));
    }
    text
}

/// The error of an answer with status `status` and body `text` (`json` when
/// it parsed): the problem JSON's title and detail, else the status's reason
/// and the start of the body.
pub(crate) fn server_error(status: StatusCode, json: Option<Value>, text: &str) -> ClientError {
    let reason = status.canonical_reason().unwrap_or("Error").to_string();
    match json {
        Some(problem) => ClientError::Server {
            status: status.as_u16(),
            title: problem["title"].as_str().map_or(reason, str::to_string),
            detail: problem["detail"]
                .as_str()
                .map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_string),
            errors: problem.get("errors").cloned(),
        },
        None => ClientError::Server {
            status: status.as_u16(),
            title: reason,
            detail: if text.trim().is_empty() {
                format!("HTTP {}", status.as_u16())
            } else {
                text.trim().chars().take(500).collect()
            },
            errors: None,
        },
    }
}

/// Why a request failed on the way, for people.
pub fn describe_transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer in time (raise --timeout, or check the server)".to_string()
    } else if error.is_connect() {
        "connection failed (is `crus serve` running there? check --url / CRUS_URL)".to_string()
    } else {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_json_becomes_title_and_detail_with_field_errors() {
        let problem = serde_json::json!({
            "title": "Unprocessable Entity",
            "detail": "Input data was understood, but failed validation.",
            "errors": {"upgrade_step_size": ["Must be greater than or equal to 1."]}
        });
        let error = server_error(StatusCode::UNPROCESSABLE_ENTITY, Some(problem), "");
        assert_eq!(
            error.to_string(),
            "Unprocessable Entity: Input data was understood, but failed validation.\n  upgrade_step_size: Must be greater than or equal to 1."
        );
        let plain = server_error(StatusCode::BAD_GATEWAY, None, "upstream down");
        assert_eq!(plain.to_string(), "Bad Gateway: upstream down");
    }
}
