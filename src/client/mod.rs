//! A client of the CRUS API, typed with the core's session types: the
//! requests are [`SessionSpec`]s, the answers [`SessionStatus`]es. Any server
//! that speaks the API (crus, or Cray's CRUS) will do; `crus session ...` is
//! this client plus argument parsing and printing.
//!
//! ```no_run
//! # async fn run() -> Result<(), crus::client::ClientError> {
//! use std::time::Duration;
//! let client = crus::client::Client::new("http://127.0.0.1:8080", None, Duration::from_secs(30))?;
//! for session in client.list().await?.value {
//!     println!("{} {}", session.upgrade_id, session.state);
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod events;
mod follow;
mod options;
mod sse;

use std::time::Duration;

use crus_core::SessionStatus;
use crus_core::options::ServerOptions;
use crus_core::rollout::FailureBudget;
use crus_core::session::{NodeStatus, SessionSpec};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use error::{ClientError, describe_transport_error};
pub use events::EventStream;
pub use follow::{Follow, Update};
pub use options::OptionsChanged;
pub use sse::{SseMessage, SseParser};

/// A successful answer: the body read as `T`, and exactly as the server sent
/// it (printed unchanged by `crus session ... --format json`, so fields this
/// build does not know are not lost).
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The body, read.
    pub value: T,
    /// The body, unchanged.
    pub raw: String,
}

/// A client of one CRUS API server.
#[derive(Debug, Clone)]
pub struct Client {
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

impl Client {
    /// A client of the server at `base_url` (`/session` is appended), sending
    /// `token` as a bearer token, giving up on a request after `timeout`.
    pub fn new(
        base_url: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::InvalidUrl(base_url.to_string()));
        }
        let built = |error: reqwest::Error| {
            ClientError::Local(format!("cannot build the HTTP client: {error}"))
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("crus/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(built)?;
        let stream_http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(STREAM_READ_TIMEOUT.max(timeout))
            .user_agent(concat!("crus/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(built)?;
        Ok(Client {
            base,
            token,
            http,
            stream_http,
        })
    }

    /// `POST /session`, with an `Idempotency-Key` if given (a repeat with the
    /// same key and body answers the session the first request created).
    ///
    /// The spec is sent as given, unchecked, so the server's validation
    /// speaks (as with `cray crus`); [`SessionSpec::validate`] checks it here.
    pub async fn create(
        &self,
        spec: &SessionSpec,
        idempotency_key: Option<&str>,
    ) -> Result<Answer<SessionStatus>, ClientError> {
        let body = spec.to_request_json();
        self.request(Method::POST, "/session", Some(&body), idempotency_key)
            .await
    }

    /// `POST /session?dry_run=true`: the plan of `spec`, nothing created.
    ///
    /// Read as JSON, not as the core's `DryRun`: the forecast gained fields
    /// over versions (`p10`, `dominated_by`, ...), and an older server's plan
    /// must still be shown.
    pub async fn plan(&self, spec: &SessionSpec) -> Result<Answer<Value>, ClientError> {
        let body = spec.to_request_json();
        self.request(Method::POST, "/session?dry_run=true", Some(&body), None)
            .await
    }

    /// `GET /session`: every session, newest first.
    pub async fn list(&self) -> Result<Answer<Vec<SessionStatus>>, ClientError> {
        self.request(Method::GET, "/session", None, None).await
    }

    /// `GET /session/{id}`.
    pub async fn get(&self, upgrade_id: &str) -> Result<Answer<SessionStatus>, ClientError> {
        self.request(Method::GET, &session_path(upgrade_id, ""), None, None)
            .await
    }

    /// `DELETE /session/{id}`: stops the session safely, then removes it.
    pub async fn delete(&self, upgrade_id: &str) -> Result<Answer<SessionStatus>, ClientError> {
        self.request(Method::DELETE, &session_path(upgrade_id, ""), None, None)
            .await
    }

    /// `POST /session/{id}/pause`.
    pub async fn pause(&self, upgrade_id: &str) -> Result<Answer<SessionStatus>, ClientError> {
        self.request(
            Method::POST,
            &session_path(upgrade_id, "/pause"),
            None,
            None,
        )
        .await
    }

    /// `POST /session/{id}/resume`, with a new failure budget if given.
    pub async fn resume(
        &self,
        upgrade_id: &str,
        max_failures: Option<FailureBudget>,
    ) -> Result<Answer<SessionStatus>, ClientError> {
        let body = max_failures.map(|budget| serde_json::json!({ "max_failures": budget }));
        self.request(
            Method::POST,
            &session_path(upgrade_id, "/resume"),
            body.as_ref(),
            None,
        )
        .await
    }

    /// `GET /session/{id}/nodes` (a crus addition): each node of the
    /// session, in the order the session takes them.
    pub async fn nodes(&self, upgrade_id: &str) -> Result<Answer<Vec<NodeStatus>>, ClientError> {
        self.request(Method::GET, &session_path(upgrade_id, "/nodes"), None, None)
            .await
    }

    /// `GET /options`: the server-wide options of a crus server (options a
    /// newer server has are in the answer's `raw` body only).
    pub async fn options(&self) -> Result<Answer<ServerOptions>, ClientError> {
        self.request(Method::GET, "/options", None, None).await
    }

    /// `PATCH /options` with `patch`, a merge patch of the options (`null`
    /// unsets one); the answer holds the options now and when they apply.
    pub async fn patch_options(
        &self,
        patch: &Value,
    ) -> Result<Answer<OptionsChanged>, ClientError> {
        self.request(Method::PATCH, "/options", Some(patch), None)
            .await
    }

    /// `GET /session/{id}/events`: the open stream, once the server answered 200.
    /// `last_event_id` resumes an earlier stream. A server without event
    /// streams (CRUS, an older crus) answers 404.
    pub async fn events(
        &self,
        upgrade_id: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, ClientError> {
        let url = format!("{}{}", self.base, session_path(upgrade_id, "/events"));
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
            return Ok(EventStream::new(response));
        }
        let text = response.text().await.unwrap_or_default();
        Err(error::server_error(
            status,
            serde_json::from_str(&text).ok(),
            &text,
        ))
    }

    async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Answer<T>, ClientError> {
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
        let unreachable = |error: reqwest::Error| ClientError::Unreachable {
            url: url.clone(),
            message: describe_transport_error(&error),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(error::server_error(
                status,
                serde_json::from_str(&text).ok(),
                &text,
            ));
        }
        let unexpected = |expected, detail| ClientError::UnexpectedBody {
            url: url.clone(),
            status: status.as_u16(),
            expected,
            detail,
        };
        let json: Value = serde_json::from_str(&text).map_err(|_| unexpected("JSON", None))?;
        let value = serde_json::from_value(json)
            .map_err(|error| unexpected("what the CRUS API documents", Some(error.to_string())))?;
        Ok(Answer { value, raw: text })
    }
}

/// `/session/{id}{rest}`, the id percent-encoded.
fn session_path(upgrade_id: &str, rest: &str) -> String {
    format!("/session/{}{rest}", path_segment(upgrade_id))
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
    fn ids_cannot_escape_the_path() {
        assert_eq!(
            path_segment("c926acf6-b5c6-411e-ba6c-ea0448cab2ee"),
            "c926acf6-b5c6-411e-ba6c-ea0448cab2ee"
        );
        assert_eq!(path_segment("../x?y"), "..%2Fx%3Fy");
    }

    #[test]
    fn urls_must_be_http() {
        assert!(Client::new("localhost:8080", None, Duration::from_secs(1)).is_err());
        assert!(Client::new("http://localhost:8080/", None, Duration::from_secs(1)).is_ok());
    }
}
