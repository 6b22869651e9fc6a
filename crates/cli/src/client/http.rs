//! The HTTP side of the client: requests, and server errors turned into
//! `title: detail` messages.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Why a client command failed.
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
    /// Something on this side went wrong.
    #[error("{0}")]
    Local(String),
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

/// A successful answer: the JSON, and the body exactly as the server sent it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The body, parsed.
    pub json: Value,
    /// The body, unchanged.
    pub raw: String,
}

/// A client of one CRUS API server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// The base URL, without a trailing slash.
    base: String,
    /// Bearer token, if any.
    token: Option<String>,
    /// The HTTP client (connection pool, timeouts).
    http: reqwest::Client,
    /// The client of event streams: a whole-request timeout would cut a
    /// stream that is meant to last, so only connecting and each read are bounded.
    stream_http: reqwest::Client,
}

/// Longest wait for any byte of an event stream; the server sends a comment
/// every 15 s, so a stream this quiet is dead.
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(60);

impl ApiClient {
    /// A client of the server at `base_url`.
    pub fn new(
        base_url: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Local(format!(
                "--url {base_url:?} must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("crus/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                ClientError::Local(format!("cannot build the HTTP client: {error}"))
            })?;
        let stream_http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(STREAM_READ_TIMEOUT.max(timeout))
            .user_agent(concat!("crus/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                ClientError::Local(format!("cannot build the HTTP client: {error}"))
            })?;
        Ok(ApiClient {
            base,
            token,
            http,
            stream_http,
        })
    }

    /// `POST /session/{id}/pause`.
    pub async fn pause(&self, upgrade_id: &str) -> Result<Answer, ClientError> {
        self.request(
            Method::POST,
            &format!("/session/{}/pause", path_segment(upgrade_id)),
            None,
        )
        .await
    }

    /// `POST /session/{id}/resume`, with `body` (a new failure budget) if given.
    pub async fn resume(
        &self,
        upgrade_id: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        self.request(
            Method::POST,
            &format!("/session/{}/resume", path_segment(upgrade_id)),
            body,
        )
        .await
    }

    /// `GET /session/{id}/nodes`.
    pub async fn nodes(&self, upgrade_id: &str) -> Result<Answer, ClientError> {
        self.request(
            Method::GET,
            &format!("/session/{}/nodes", path_segment(upgrade_id)),
            None,
        )
        .await
    }

    /// `GET /session/{id}/events`: the open stream, once the server answered 200.
    /// `last_event_id` resumes an earlier stream.
    pub async fn events(
        &self,
        upgrade_id: &str,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}/session/{}/events", self.base, path_segment(upgrade_id));
        let mut request = self
            .stream_http
            .get(&url)
            .header("Accept", "text/event-stream");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request
            .send()
            .await
            .map_err(|error| ClientError::Unreachable {
                url: url.clone(),
                message: describe_transport_error(&error),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(server_error(
            status,
            serde_json::from_str(&text).ok(),
            &text,
        ))
    }

    /// `POST /session`, with an `Idempotency-Key` if given (a repeat with the
    /// same key and body answers the session the first request created).
    pub async fn create(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, ClientError> {
        self.request_with(Method::POST, "/session", Some(body), idempotency_key)
            .await
    }

    /// `POST /session?dry_run=true`: the plan of `body`, nothing created.
    pub async fn plan(&self, body: &Value) -> Result<Answer, ClientError> {
        self.request(Method::POST, "/session?dry_run=true", Some(body))
            .await
    }

    /// `GET /session`.
    pub async fn list(&self) -> Result<Answer, ClientError> {
        self.request(Method::GET, "/session", None).await
    }

    /// `GET /session/{id}`.
    pub async fn get(&self, upgrade_id: &str) -> Result<Answer, ClientError> {
        self.request(
            Method::GET,
            &format!("/session/{}", path_segment(upgrade_id)),
            None,
        )
        .await
    }

    /// `DELETE /session/{id}`.
    pub async fn delete(&self, upgrade_id: &str) -> Result<Answer, ClientError> {
        self.request(
            Method::DELETE,
            &format!("/session/{}", path_segment(upgrade_id)),
            None,
        )
        .await
    }

    /// `GET /options`: the server-wide options.
    pub async fn options(&self) -> Result<Answer, ClientError> {
        self.request(Method::GET, "/options", None).await
    }

    /// `PATCH /options` with `patch` (a merge patch of the options).
    pub async fn patch_options(&self, patch: &Value) -> Result<Answer, ClientError> {
        self.request(Method::PATCH, "/options", Some(patch)).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        self.request_with(method, path, body, None).await
    }

    async fn request_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| ClientError::Unreachable {
                url: url.clone(),
                message: describe_transport_error(&error),
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| ClientError::Unreachable {
                url: url.clone(),
                message: describe_transport_error(&error),
            })?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return match json {
                Some(json) => Ok(Answer { json, raw: text }),
                None => Err(ClientError::Local(format!(
                    "{url} answered {status} with a body that is not JSON"
                ))),
            };
        }
        Err(server_error(status, json, &text))
    }
}

fn server_error(status: StatusCode, json: Option<Value>, text: &str) -> ClientError {
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

/// Why reading a response failed, for people.
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

/// Keeps an id from changing the path (`../`, `?`): ids are UUIDs, anything
/// else is sent percent-encoded and the server answers 404.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
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

    #[test]
    fn ids_cannot_escape_the_path() {
        assert_eq!(
            path_segment("c926acf6-b5c6-411e-ba6c-ea0448cab2ee"),
            "c926acf6-b5c6-411e-ba6c-ea0448cab2ee"
        );
        assert_eq!(path_segment("../x?y"), "..%2Fx%3Fy");
    }

    #[test]
    fn urls_must_be_http() {
        assert!(ApiClient::new("localhost:8080", None, Duration::from_secs(1)).is_err());
        assert!(ApiClient::new("http://localhost:8080/", None, Duration::from_secs(1)).is_ok());
    }
}
