//! [`CycleCloudClient`]: JSON requests to one CycleCloud cluster, with basic
//! authentication, TLS as configured, a timeout on every request, and retries
//! of what is safe to repeat.

use crus_core::error::Result;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::config::{CycleCloudConfig, PasswordSource};
use super::error::CycleCloudError;
use crate::transport::{HttpClientSettings, Repeat, Retries, send_with_retries};

/// The media type of every body crus sends and accepts.
const JSON: &str = "application/json";

/// How much of an error answer's body is quoted in errors.
const BODY_EXCERPT_CHARS: usize = 200;

/// A 2xx answer: its body and the `Location` header of a 202.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) body: Vec<u8>,
    pub(crate) location: Option<String>,
}

/// The HTTP client shared by [`CycleCloudInventory`](super::CycleCloudInventory),
/// [`CycleCloudPowerControl`](super::CycleCloudPowerControl) and
/// [`CycleCloudBootOrchestrator`](super::CycleCloudBootOrchestrator).
///
/// Every request carries the configured timeout. Failures that may pass (no
/// answer, timeout, 5xx) are tried again up to [`CycleCloudConfig::retries`]
/// times with jittered exponential backoff. That is safe for every request
/// crus sends: GETs change nothing, and every POST carries a `requestId`,
/// which makes CycleCloud ignore a repetition of it (it answers 409, which
/// the caller takes as "already submitted"). A 4xx is never retried.
pub struct CycleCloudClient {
    http: reqwest::Client,
    /// The base URL without a trailing slash.
    base_url: String,
    username: String,
    /// Read once from its source, so a missing file is reported at startup.
    password: String,
    config: CycleCloudConfig,
}

// Hand-written so that the password never reaches logs through `{:?}`.
impl std::fmt::Debug for CycleCloudClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CycleCloudClient")
            .field("base_url", &self.base_url)
            .field("cluster", &self.config.cluster)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl CycleCloudClient {
    /// A client for the cluster and server `config` names.
    ///
    /// [`crus_core::Error::Invalid`] when the password cannot be read or the
    /// CA file cannot be read or parsed.
    pub fn new(config: CycleCloudConfig) -> Result<Self> {
        let password = read_password(&config.password)?;
        let http = http_client(&config)?;
        Ok(CycleCloudClient {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            username: config.username.clone(),
            password,
            config,
        })
    }

    /// The configuration the client was made from.
    pub(crate) fn config(&self) -> &CycleCloudConfig {
        &self.config
    }

    /// `/clusters/{cluster}` followed by `rest`, with the cluster name encoded.
    pub(crate) fn cluster_path(&self, rest: &str) -> String {
        format!("/clusters/{}{rest}", path_segment(&self.config.cluster))
    }

    /// `GET path?query` and the answer's JSON body.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, CycleCloudError> {
        let call = Call {
            method: Method::GET,
            path,
            query,
            body: None,
        };
        let Answer { body, .. } = self.send(&call).await?;
        serde_json::from_slice(&body).map_err(|error| unreadable("GET", path, error))
    }

    /// `POST path` with `body` as JSON. Only for bodies carrying a
    /// `requestId`, since the request may be sent more than once.
    pub(crate) async fn post_with_request_id<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Answer, CycleCloudError> {
        match serde_json::to_vec(body) {
            Ok(json) => {
                let call = Call {
                    method: Method::POST,
                    path,
                    query: &[],
                    body: Some(json),
                };
                self.send(&call).await
            }
            Err(error) => Err(unreadable("POST", path, error)),
        }
    }

    /// Sends `call`, again while it fails in a way that may pass and
    /// retries are left.
    async fn send(&self, call: &Call<'_>) -> Result<Answer, CycleCloudError> {
        let retries = Retries::new(self.config.retries, self.config.retry_base_delay);
        // Safe for every request crus sends (see the type's docs): GETs, and
        // POSTs carrying a `requestId`.
        send_with_retries("CycleCloud", &retries, Repeat::Safe, || {
            self.send_once(call)
        })
        .await
    }

    async fn send_once(&self, call: &Call<'_>) -> Result<Answer, CycleCloudError> {
        let Call {
            method,
            path,
            query,
            body,
        } = call;
        let method_name = method_name(method);
        let transport = |source: reqwest::Error| CycleCloudError::Transport {
            method: method_name,
            path: path.to_string(),
            source,
        };
        let request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url))
            .basic_auth(&self.username, Some(&self.password))
            .header(reqwest::header::ACCEPT, JSON)
            // An empty query adds nothing to the URL.
            .query(*query);
        let request = match body {
            Some(body) => request
                .header(reqwest::header::CONTENT_TYPE, JSON)
                .body(body.to_vec()),
            None => request,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(Answer {
                body: bytes.to_vec(),
                location,
            });
        }
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(CycleCloudError::Auth {
                method: method_name,
                path: path.to_string(),
                username: self.username.clone(),
                status: status.as_u16(),
            });
        }
        Err(CycleCloudError::Status {
            method: method_name,
            path: path.to_string(),
            status: status.as_u16(),
            body: excerpt(&bytes),
        })
    }
}

/// One request, as sent (and sent again).
struct Call<'a> {
    method: Method,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    body: Option<Vec<u8>>,
}

/// The password from its source; a file's first line, without its newline.
fn read_password(source: &PasswordSource) -> Result<String, CycleCloudError> {
    let config_error = |message: String| CycleCloudError::Config { message };
    match source {
        PasswordSource::Static(password) => Ok(password.clone()),
        PasswordSource::File(path) => std::fs::read_to_string(path)
            .map(|text| text.lines().next().unwrap_or_default().to_string())
            .map_err(|error| {
                config_error(format!(
                    "cannot read the password file {}: {error}",
                    path.display()
                ))
            }),
        PasswordSource::Env(variable) => std::env::var(variable).map_err(|error| {
            config_error(format!(
                "cannot read the password from environment variable {variable}: {error}"
            ))
        }),
    }
}

/// The HTTP client: rustls, the configured timeout for connecting and for
/// the whole request, the site's CAs, and certificate checks unless
/// `insecure` is asked for.
fn http_client(config: &CycleCloudConfig) -> Result<reqwest::Client, CycleCloudError> {
    if config.insecure {
        tracing::warn!(
            base_url = %config.base_url,
            "cyclecloud.insecure is set: the server's TLS certificate is not checked"
        );
    }
    HttpClientSettings::new(config.timeout)
        .connect_timeout(config.timeout)
        .ca_file("cyclecloud.ca_file", config.ca_file.as_deref())
        .insecure(config.insecure)
        .build()
        .map_err(|error| CycleCloudError::Config {
            message: error.to_string(),
        })
}

/// A JSON body that could not be read (or, for a request, written).
fn unreadable(method: &'static str, path: &str, error: serde_json::Error) -> CycleCloudError {
    CycleCloudError::Decode {
        method,
        path: path.to_string(),
        message: error.to_string(),
    }
}

/// The first line of an error body, shortened, or `(no body)`.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let first: String = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(BODY_EXCERPT_CHARS)
        .collect();
    if first.trim().is_empty() {
        "(no body)".to_string()
    } else {
        first
    }
}

fn method_name(method: &Method) -> &'static str {
    if *method == Method::GET {
        "GET"
    } else if *method == Method::POST {
        "POST"
    } else {
        "request"
    }
}

/// `segment` percent-encoded as one URL path segment (RFC 3986 unreserved
/// characters stay as they are), so a cluster name with a space or a slash
/// cannot change the path.
fn path_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}
