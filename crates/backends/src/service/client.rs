//! [`ServiceClient`]: JSON requests to one Cray service, with authentication,
//! timeouts and retries of failures that may pass.

use crus_core::error::{Error, Result};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::config::ServiceConfig;
use super::error::{Problem, ServiceError};
use super::token::TokenProvider;
use crate::transport::{HttpClientSettings, Repeat, Retries, send_with_retries};

/// An HTTP client for one Cray service (HSM, BOS).
///
/// Calls that fail with no answer (connection refused, timeout) or with a 5xx
/// are tried again up to [`ServiceConfig::retries`] times with jittered
/// exponential backoff (the shared [`transport`](crate::transport)); a 4xx is never retried, since the same request would
/// get the same answer. Callers only send requests that are safe to repeat
/// (GET, DELETE, and POSTs whose repetition the service answers with 409).
#[derive(Debug)]
pub struct ServiceClient {
    /// The service's name in errors and logs: `hsm`, `bos`.
    service: &'static str,
    /// The base URL without a trailing slash.
    base_url: String,
    http: reqwest::Client,
    tokens: TokenProvider,
    retries: Retries,
    /// Headers sent with every request (BOS's `Cray-Tenant-Name`).
    headers: Vec<(&'static str, String)>,
}

impl ServiceClient {
    /// A client for the service named `service` (`hsm`, `bos`) as `config` says.
    ///
    /// [`Error::Invalid`] when the CA file cannot be read or parsed.
    pub fn new(service: &'static str, config: &ServiceConfig) -> Result<Self> {
        let http = HttpClientSettings::new(config.timeout)
            .ca_file(format!("{service}.ca_file"), config.ca_file.as_deref())
            .build()
            .map_err(|error| {
                Error::from(ServiceError::Config {
                    service,
                    message: error.to_string(),
                })
            })?;
        Ok(ServiceClient {
            service,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            http,
            tokens: TokenProvider::new(config.token.clone()),
            retries: Retries::new(config.retries, config.retry_base_delay),
            headers: Vec::new(),
        })
    }

    /// This client, sending header `name: value` with every request.
    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// `GET path?query` and the answer's JSON body.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ServiceError> {
        let body = self.send(Method::GET, path, query, None).await?;
        self.decode("GET", path, &body)
    }

    /// `POST path` with `body` as JSON, and the answer's JSON body.
    /// Whether the resource at `path` exists: 200 yes, 404 no, any other
    /// answer an error (a template check must not take an outage for "no").
    pub(crate) async fn exists(&self, path: &str) -> Result<bool, ServiceError> {
        match self.get_json::<serde_json::Value>(path, &[]).await {
            Ok(_) => Ok(true),
            Err(error) if error.status() == Some(404) => Ok(false),
            Err(error) => Err(error),
        }
    }

    pub(crate) async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ServiceError> {
        let json = serde_json::to_vec(body).map_err(|error| ServiceError::Decode {
            service: self.service,
            method: "POST",
            path: path.to_string(),
            message: format!("cannot encode the request: {error}"),
        })?;
        let answer = self.send(Method::POST, path, &[], Some(json)).await?;
        self.decode("POST", path, &answer)
    }

    /// `DELETE path`; the answer's body is ignored.
    pub(crate) async fn delete(&self, path: &str) -> Result<(), ServiceError> {
        self.send(Method::DELETE, path, &[], None).await.map(drop)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: &[u8],
    ) -> Result<T, ServiceError> {
        serde_json::from_slice(body).map_err(|error| ServiceError::Decode {
            service: self.service,
            method,
            path: path.to_string(),
            message: error.to_string(),
        })
    }

    /// Sends the request, retrying failures that may pass, and returns the
    /// body of a 2xx answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ServiceError> {
        // Every request of HSM and BOS is safe to repeat (module docs).
        send_with_retries(self.service, &self.retries, Repeat::Safe, || {
            self.send_once(&method, path, query, body.as_deref())
        })
        .await
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, ServiceError> {
        let method_name = method_name(method);
        let transport = |source: reqwest::Error| ServiceError::Transport {
            service: self.service,
            method: method_name,
            path: path.to_string(),
            source,
        };
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url))
            .header(reqwest::header::ACCEPT, "application/json");
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        if let Some(token) = self.tokens.token(self.service, &self.http).await? {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(ServiceError::Status {
            service: self.service,
            method: method_name,
            path: path.to_string(),
            status: status.as_u16(),
            problem: problem(status, &bytes),
        })
    }
}

/// The problem in an error answer; a body that is not RFC 7807 (a gateway's
/// HTML page) keeps the status text as title and its first line as detail.
fn problem(status: StatusCode, body: &[u8]) -> Problem {
    let mut problem: Problem = serde_json::from_slice(body).unwrap_or_default();
    if problem.title.is_empty() {
        problem.title = status.canonical_reason().unwrap_or("error").to_string();
    }
    if problem.detail.is_empty() {
        let text = String::from_utf8_lossy(body);
        problem.detail = text
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
    }
    problem
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        _ => "request",
    }
}

/// `segment` percent-encoded for use as one URL path segment; the
/// unreserved characters of RFC 3986 stay as they are.
pub(crate) fn path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
