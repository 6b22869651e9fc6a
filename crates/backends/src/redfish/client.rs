//! HTTP to the BMCs: one [`Bmc`] per BMC URL (its request permits, its
//! Redfish session), and a [`Transport`] that authenticates each request,
//! times it out, and retries only what is safe to repeat.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use super::config::{RedfishAuth, RedfishConfig};
use super::error::RedfishError;
pub(crate) use crate::transport::Repeat;
use crate::transport::{HttpClientSettings, Retries, TryFailure, send_with_retries};

/// A failed try of a request, as the transport's retries see it.
#[derive(Debug)]
struct FailedTry {
    error: RedfishError,
    /// The login before the request failed: never tried again here, since
    /// every login that arrives makes a session on the BMC (the login sends
    /// itself again only when it never left).
    from_login: bool,
}

impl FailedTry {
    fn login(error: RedfishError) -> Self {
        FailedTry {
            error,
            from_login: true,
        }
    }
}

impl std::fmt::Display for FailedTry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(formatter)
    }
}

impl TryFailure for FailedTry {
    /// No answer, or a 5xx other than 501 (which says the BMC lacks the
    /// operation, for good).
    fn may_pass(&self) -> bool {
        !self.from_login
            && match &self.error {
                RedfishError::Status { status, .. } => {
                    (500..600).contains(status) && *status != 501
                }
                RedfishError::Transport { .. } => true,
                _ => false,
            }
    }

    fn not_sent(&self) -> bool {
        !self.from_login
            && matches!(&self.error, RedfishError::Transport { source, .. } if source.is_connect())
    }
}

/// Where a Redfish service creates sessions (DSP0266 §13.3.4).
pub(crate) const SESSIONS_PATH: &str = "/redfish/v1/SessionService/Sessions";

/// A logged-in Redfish session.
#[derive(Debug, Clone)]
struct Session {
    /// The `X-Auth-Token` to send.
    token: String,
    /// The session resource, deleted at logout.
    location: String,
}

/// One BMC: its base URL, a bound on the requests it gets at once, and its
/// session when session auth is used.
#[derive(Debug)]
pub(crate) struct Bmc {
    /// The base URL without a trailing slash, as in errors.
    pub(crate) url: String,
    /// One permit per request in flight, so a wide power operation does not
    /// overwhelm a BMC serving many systems; shared by every URL of the
    /// same host and port.
    permits: Arc<Semaphore>,
    /// Behind an async lock so that concurrent requests log in once, not once each.
    session: Mutex<Option<Session>>,
}

impl Bmc {
    pub(crate) fn new(url: &str, permits: Arc<Semaphore>) -> Self {
        Bmc {
            url: url.trim_end_matches('/').to_string(),
            permits,
            session: Mutex::new(None),
        }
    }

    /// `path` as an absolute URL; Redfish links are usually paths, a
    /// session's `Location` may be a whole URL.
    fn absolute(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.url)
        }
    }
}

/// Sends authenticated requests to any BMC.
#[derive(Debug)]
pub(crate) struct Transport {
    http: reqwest::Client,
    auth: RedfishAuth,
    retries: Retries,
}

impl Transport {
    pub(crate) fn new(config: &RedfishConfig) -> Result<Self, RedfishError> {
        let http = HttpClientSettings::new(config.timeout)
            .connect_timeout(config.timeout)
            .ca_file("redfish.ca_file", config.ca_file.as_deref())
            .insecure(config.insecure)
            .build()
            .map_err(|error| RedfishError::Config {
                message: error.to_string(),
            })?;
        Ok(Transport {
            http,
            auth: config.auth.clone(),
            retries: Retries::new(config.retries, config.retry_base_delay),
        })
    }

    /// `GET path` on `bmc` and its JSON body; retried on no answer and 5xx.
    pub(crate) async fn get_json(&self, bmc: &Bmc, path: &str) -> Result<Value, RedfishError> {
        let body = self
            .send(bmc, Method::GET, path, None, Repeat::Safe)
            .await?;
        serde_json::from_slice(&body).map_err(|error| RedfishError::Decode {
            bmc: bmc.url.clone(),
            method: "GET",
            path: path.to_string(),
            message: error.to_string(),
        })
    }

    /// `POST path` on `bmc` with `body`; the answer's body is ignored.
    pub(crate) async fn post(
        &self,
        bmc: &Bmc,
        path: &str,
        body: &Value,
    ) -> Result<(), RedfishError> {
        self.send(bmc, Method::POST, path, Some(body), Repeat::OnlyIfNotSent)
            .await
            .map(drop)
    }

    /// Deletes `bmc`'s session, if it has one. A session the BMC no longer
    /// knows (expired: 401 or 404) counts as logged out.
    pub(crate) async fn logout(&self, bmc: &Bmc) -> Result<(), RedfishError> {
        let Some(session) = bmc.session.lock().await.take() else {
            return Ok(());
        };
        let _permit = bmc.permits.acquire().await.ok();
        let url = bmc.absolute(&session.location);
        let answer = self
            .http
            .delete(&url)
            .header("X-Auth-Token", &session.token)
            .send()
            .await
            .map_err(|source| RedfishError::Transport {
                bmc: bmc.url.clone(),
                method: "DELETE",
                path: session.location.clone(),
                source,
            })?;
        let status = answer.status();
        if status.is_success() || matches!(status.as_u16(), 401 | 404) {
            tracing::debug!(bmc = %bmc.url, "logged out of the Redfish session");
            return Ok(());
        }
        let bytes = answer.bytes().await.unwrap_or_default();
        Err(RedfishError::Status {
            bmc: bmc.url.clone(),
            method: "DELETE",
            path: session.location,
            status: status.as_u16(),
            message: redfish_message(&bytes),
        })
    }

    /// Sends the request, logging in again once on a 401 with session auth,
    /// and retrying what `repeat` allows (the transport's retries); the body
    /// of a 2xx answer.
    async fn send(
        &self,
        bmc: &Bmc,
        method: Method,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<Vec<u8>, RedfishError> {
        // Once per request, not per try: a BMC that refuses a fresh session
        // too is refusing the credentials.
        let logged_in_again = AtomicBool::new(false);
        send_with_retries("Redfish", &self.retries, repeat, || {
            self.try_once(bmc, &method, path, body, &logged_in_again)
        })
        .await
        .map_err(|failed| failed.error)
    }

    /// One try of [`Transport::send`]; a 401 on a session that may have
    /// expired logs in again and sends the request once more, within the try.
    async fn try_once(
        &self,
        bmc: &Bmc,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        logged_in_again: &AtomicBool,
    ) -> Result<Vec<u8>, FailedTry> {
        let method_name = method_name(method);
        loop {
            let token = match &self.auth {
                RedfishAuth::Session { username, password } => Some(
                    self.session_token(bmc, username, password)
                        .await
                        .map_err(FailedTry::login)?,
                ),
                _ => None,
            };
            let outcome = self
                .send_once(bmc, method, path, body, token.as_deref())
                .await;
            let error = match outcome {
                Ok((status, bytes)) if status.is_success() => return Ok(bytes),
                Ok((StatusCode::UNAUTHORIZED, _))
                    if token.is_some() && !logged_in_again.swap(true, Ordering::SeqCst) =>
                {
                    // The session expired or the BMC restarted: log in again, once.
                    tracing::info!(bmc = %bmc.url, "Redfish session refused (401); logging in again");
                    forget_session(bmc, token.as_deref()).await;
                    continue;
                }
                Ok((status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN), _)) => {
                    RedfishError::Auth {
                        bmc: bmc.url.clone(),
                        what: self.who(),
                        status: status.as_u16(),
                    }
                }
                Ok((status, bytes)) => RedfishError::Status {
                    bmc: bmc.url.clone(),
                    method: method_name,
                    path: path.to_string(),
                    status: status.as_u16(),
                    message: redfish_message(&bytes),
                },
                Err(source) => RedfishError::Transport {
                    bmc: bmc.url.clone(),
                    method: method_name,
                    path: path.to_string(),
                    source,
                },
            };
            return Err(FailedTry {
                error,
                from_login: false,
            });
        }
    }

    async fn send_once(
        &self,
        bmc: &Bmc,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<(StatusCode, Vec<u8>), reqwest::Error> {
        let _permit = bmc.permits.acquire().await.ok();
        let mut request = self
            .http
            .request(method.clone(), bmc.absolute(path))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        match (&self.auth, token) {
            (_, Some(token)) => request = request.header("X-Auth-Token", token),
            (RedfishAuth::Basic { username, password }, None) => {
                request = request.basic_auth(username, Some(password));
            }
            _ => {}
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok((status, bytes.to_vec()))
    }

    /// The current session's token, logging in first when there is none.
    async fn session_token(
        &self,
        bmc: &Bmc,
        username: &str,
        password: &str,
    ) -> Result<String, RedfishError> {
        let mut session = bmc.session.lock().await;
        if let Some(current) = session.as_ref() {
            return Ok(current.token.clone());
        }
        let fresh = self.login(bmc, username, password).await?;
        let token = fresh.token.clone();
        *session = Some(fresh);
        Ok(token)
    }

    async fn login(
        &self,
        bmc: &Bmc,
        username: &str,
        password: &str,
    ) -> Result<Session, RedfishError> {
        let body = serde_json::json!({ "UserName": username, "Password": password });
        let mut attempt = 0u32;
        let response = loop {
            let _permit = bmc.permits.acquire().await.ok();
            match self
                .http
                .post(bmc.absolute(SESSIONS_PATH))
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&body)
                .send()
                .await
            {
                Ok(response) => break response,
                // Only a login that never left is sent again: each one that
                // arrives makes a session on the BMC.
                Err(source) if source.is_connect() && attempt < self.retries.retries => {
                    drop(_permit);
                    tokio::time::sleep(self.retries.delay(attempt)).await;
                    attempt += 1;
                }
                Err(source) => {
                    return Err(RedfishError::Transport {
                        bmc: bmc.url.clone(),
                        method: "POST",
                        path: SESSIONS_PATH.to_string(),
                        source,
                    });
                }
            }
        };
        let status = response.status();
        match status.as_u16() {
            401 | 403 => {
                return Err(RedfishError::Auth {
                    bmc: bmc.url.clone(),
                    what: self.who(),
                    status: status.as_u16(),
                });
            }
            404 | 405 | 501 => {
                return Err(RedfishError::NoSessionService {
                    bmc: bmc.url.clone(),
                    path: SESSIONS_PATH.to_string(),
                    status: status.as_u16(),
                });
            }
            _ => {}
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let token = header("X-Auth-Token");
        let location = header("Location");
        let bytes = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(RedfishError::Status {
                bmc: bmc.url.clone(),
                method: "POST",
                path: SESSIONS_PATH.to_string(),
                status: status.as_u16(),
                message: redfish_message(&bytes),
            });
        }
        let decode = |message: &str| RedfishError::Decode {
            bmc: bmc.url.clone(),
            method: "POST",
            path: SESSIONS_PATH.to_string(),
            message: message.to_string(),
        };
        let token = token.ok_or_else(|| decode("the login answer has no X-Auth-Token header"))?;
        // The session's URI is in `Location`; some BMCs only give it in the body.
        let location = location
            .or_else(|| {
                serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|body| body["@odata.id"].as_str().map(str::to_string))
            })
            .ok_or_else(|| {
                decode("the login answer names no session (no Location, no @odata.id)")
            })?;
        tracing::info!(bmc = %bmc.url, "logged in to the Redfish session service");
        Ok(Session { token, location })
    }

    /// Who crus authenticates as, for errors.
    fn who(&self) -> String {
        match &self.auth {
            RedfishAuth::None => "no account (redfish.username is not set)".to_string(),
            RedfishAuth::Basic { username, .. } => format!("user {username:?} (basic auth)"),
            RedfishAuth::Session { username, .. } => format!("user {username:?} (session auth)"),
        }
    }
}

/// Drops `bmc`'s session if it is still the one whose token was refused (a
/// concurrent request may have logged in again already).
async fn forget_session(bmc: &Bmc, refused: Option<&str>) {
    let mut session = bmc.session.lock().await;
    if session.as_ref().map(|current| current.token.as_str()) == refused {
        *session = None;
    }
}

/// The message of a Redfish error body (`error.message`, and the first
/// extended message), or the start of a body that is not one.
fn redfish_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let error = &value["error"];
        let message = error["message"].as_str().unwrap_or("");
        let extended = error["@Message.ExtendedInfo"][0]["Message"]
            .as_str()
            .unwrap_or("");
        match (message.is_empty(), extended.is_empty()) {
            (false, false) if message != extended => return format!("{message} ({extended})"),
            (false, _) => return message.to_string(),
            (true, false) => return extended.to_string(),
            (true, true) => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let first: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    if first.is_empty() {
        "(no body)".to_string()
    } else {
        first
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "request",
    }
}

/// The host and port of a BMC URL, which requests to it are bounded by; the
/// URL itself when it cannot be parsed (its requests then fail with a clear
/// error anyway).
pub(crate) fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}:{}",
            parsed.host_str().unwrap_or_default(),
            parsed.port_or_known_default().unwrap_or_default()
        ),
        Err(_) => url.to_string(),
    }
}
