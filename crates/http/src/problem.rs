//! Errors as RFC 7807 problem documents: the [`Problem`] body every error
//! response carries, and [`AppError`], which handlers return.
//!
//! Real CRUS answered errors with `httpproblem` bodies (`type`, `title`,
//! `status`, `detail`, and `errors` by field for validation failures), so
//! CRUS clients that parse them keep working. Internal details (backend
//! messages, store errors) are logged with the request's span, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crus_core::controller::AdmissionRefusal;
use crus_core::error::PartFailure;
use crus_core::session::FieldErrors;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `detail` of a 422, word for word as CRUS sent it.
pub const VALIDATION_DETAIL: &str = "Input data was understood, but failed validation. Re-run request with valid input values for the fields indicated in the response.";

/// `detail` of a 404 for a session that does not exist, word for word as CRUS sent it.
pub const NOT_FOUND_DETAIL: &str =
    "Requested resource does not exist. Re-run request with valid ID.";

/// An RFC 7807 problem document, the body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "about:blank",
    "title": "Not Found",
    "status": 404,
    "detail": NOT_FOUND_DETAIL,
}))]
pub struct Problem {
    /// Always `about:blank`: the status code says all there is to say about the type.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub problem_type: String,
    /// The status code's reason phrase, e.g. `Unprocessable Entity`; for a
    /// backend or the store failing, which one (`Inventory failed`,
    /// `Session store unavailable`).
    #[schema(example = "Not Found")]
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599, example = 404)]
    pub status: u16,
    /// What went wrong and what to do about it.
    pub detail: String,
    /// Validation failures by field name (422 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub errors: Option<FieldErrors>,
}

impl Problem {
    /// A problem of `status` with `detail`, titled with the status's reason phrase.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            problem_type: "about:blank".to_string(),
            title: status
                .canonical_reason()
                .unwrap_or("Unknown Status")
                .to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
        }
    }

    /// CRUS's 422: the fixed detail and the failures by field.
    pub fn validation(errors: FieldErrors) -> Self {
        Problem {
            errors: Some(errors),
            ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, VALIDATION_DETAIL)
        }
    }

    /// The status code, falling back to 500 for a value outside 100..=999.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = match serde_json::to_vec(&self) {
            Ok(body) => body,
            // A struct of strings and a map of strings always serialises;
            // keep a valid body anyway rather than panic on a request path.
            Err(_) => br#"{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"The error could not be encoded."}"#.to_vec(),
        };
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response()
    }
}

/// Everything a handler can fail with; each variant is one kind of problem response.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request could not be read (not JSON, wrong content type).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: no credentials, or credentials that were rejected.
    #[error("unauthorized")]
    Unauthorized {
        /// A token was given but rejected (adds `error="invalid_token"` to the challenge).
        token_rejected: bool,
    },
    /// 404: no session has this id (whether or not it is a valid UUID).
    #[error("session not found")]
    SessionNotFound,
    /// 404: no route matches the path.
    #[error("no route for {0}")]
    NoRoute(String),
    /// 409: nodes of the starting group belong to another unfinished session.
    #[error("{nodes} node(s) belong to unfinished session {other}")]
    Overlap {
        /// The other session.
        other: Uuid,
        /// How many nodes are shared.
        nodes: usize,
    },
    /// 409: the session cannot do what was asked now (pause a finished
    /// session, resume one that is running); the reason is the controller's.
    #[error("refused: {0}")]
    Refused(String),
    /// 413: the body is larger than the server accepts.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 422: the body is JSON but not a valid session; messages by field.
    #[error("invalid session: {0:?}")]
    Invalid(FieldErrors),
    /// 502 or 503: a backend (or the store) failed while a new session was
    /// checked or stored; the answer's title names which one.
    #[error("{0}")]
    Failed(PartFailure),
    /// 503: the session store (or the controller over it) failed.
    #[error("store failed: {0}")]
    Store(crus_core::Error),
    /// 503: the server cannot serve requests now (readiness).
    #[error("not ready: {0}")]
    NotReady(crus_core::Error),
    /// 503: the server is too busy for this request now (as many dry runs
    /// as it plans at once); the message says what to do.
    #[error("busy: {0}")]
    Busy(String),
    /// 503: the session store refuses writes (readiness), for this reason.
    #[error("the session store refuses writes: {0}")]
    StoreRefusesWrites(String),
    /// 500: a bug or an impossible state; the message is logged only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Said instead of internal details; the request id ties the answer to the log.
const INTERNAL_DETAIL: &str = "The server failed to handle the request. Its log has the details under this request's x-request-id.";

impl AppError {
    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            AppError::SessionNotFound | AppError::NoRoute(_) => StatusCode::NOT_FOUND,
            AppError::Overlap { .. } | AppError::Refused(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Failed(failure)
                if failure.error.is_retryable() || !failure.part.is_backend() =>
            {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Failed(_) => StatusCode::BAD_GATEWAY,
            // The store is a dependency: whatever it answered, the request
            // may succeed once it takes reads and writes again (`/readyz`
            // tells when), so the client is told to come back, not that
            // the server is broken.
            AppError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::NotReady(_) | AppError::Busy(_) | AppError::StoreRefusesWrites(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The problem document sent for this error. Logs what the client is not told.
    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        match self {
            AppError::BadRequest(detail) => Problem::new(status, detail.clone()),
            AppError::Unauthorized { token_rejected } => Problem::new(
                status,
                if *token_rejected {
                    "The bearer token was rejected: it is unknown, expired, or not valid for this service."
                } else {
                    "This resource requires authentication: send `Authorization: Bearer <token>`."
                },
            ),
            AppError::SessionNotFound => Problem::new(status, NOT_FOUND_DETAIL),
            AppError::NoRoute(path) => Problem::new(
                status,
                format!(
                    "The server has no resource at '{path}'. Sessions are under /session and /apis/crus/session."
                ),
            ),
            AppError::Overlap { other, nodes } => Problem::new(
                status,
                format!(
                    "{nodes} node(s) of the starting group already belong to unfinished session {other}. Wait for it to finish or delete it, then retry."
                ),
            ),
            AppError::Refused(reason) => Problem::new(
                status,
                format!(
                    "The session cannot do this now: {}.",
                    reason.trim_end_matches('.')
                ),
            ),
            AppError::PayloadTooLarge => Problem::new(
                status,
                "The request body is larger than the server accepts.",
            ),
            AppError::Invalid(errors) => Problem::validation(errors.clone()),
            AppError::Failed(failure) if !failure.part.is_backend() => {
                store_problem(status, &failure.error)
            }
            AppError::Failed(PartFailure { part, error }) => {
                tracing::error!(%error, %part, "a backend failed while a new session was checked");
                let (title, detail) = if error.is_retryable() {
                    (
                        format!("{part} unavailable"),
                        format!(
                            "The {} is unavailable. Retry the request later.",
                            lowercase(part.title())
                        ),
                    )
                } else {
                    (
                        format!("{part} failed"),
                        format!(
                            "The {} failed. The server's log has the details under this request's x-request-id.",
                            lowercase(part.title())
                        ),
                    )
                };
                Problem {
                    title,
                    ..Problem::new(status, detail)
                }
            }
            AppError::Store(error) => store_problem(status, error),
            AppError::NotReady(error) => {
                tracing::warn!(%error, "not ready: the session store does not answer");
                Problem::new(status, "The server cannot reach its session store.")
            }
            AppError::Busy(detail) => {
                tracing::warn!(%detail, "busy");
                Problem::new(status, detail.clone())
            }
            AppError::StoreRefusesWrites(reason) => {
                tracing::warn!(%reason, "not ready: the session store refuses writes");
                Problem::new(
                    status,
                    format!(
                        "The session store refuses writes: {reason}. Sessions do nothing more \
                         until it takes writes again, then carry on by themselves."
                    ),
                )
            }
            AppError::Internal(message) => {
                tracing::error!(%message, "internal error");
                Problem::new(status, INTERNAL_DETAIL)
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = self.to_problem().into_response();
        match &self {
            AppError::Unauthorized { token_rejected } => {
                // RFC 6750 §3: no error code when no credentials were sent.
                let challenge = if *token_rejected {
                    r#"Bearer error="invalid_token""#
                } else {
                    "Bearer"
                };
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            AppError::Store(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            AppError::Failed(_) if self.status() == StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            AppError::Busy(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

impl From<AdmissionRefusal> for AppError {
    fn from(refusal: AdmissionRefusal) -> Self {
        match refusal {
            AdmissionRefusal::Invalid(errors) => AppError::Invalid(errors),
            AdmissionRefusal::Overlap { other, nodes } => AppError::Overlap { other, nodes },
            AdmissionRefusal::KeyReused { key, other } => AppError::Invalid(FieldErrors::from([(
                "Idempotency-Key".to_string(),
                vec![format!(
                    "Key {key:?} was used with another request (session {other}); use a new key for a new request."
                )],
            )])),
            AdmissionRefusal::Failed(failure) => AppError::Failed(failure),
        }
    }
}

/// The 503 of a failing session store, titled as such; what it said is logged only.
fn store_problem(status: StatusCode, error: &crus_core::Error) -> Problem {
    tracing::error!(%error, "session store failed");
    let (title, detail) = if error.is_retryable() {
        (
            "Session store unavailable",
            "The session store is unavailable. Retry the request later.",
        )
    } else {
        (
            "Session store failed",
            "The session store failed; the server's log has the details under this \
             request's x-request-id. Retry the request later: GET /readyz tells \
             whether the store takes writes again.",
        )
    };
    Problem {
        title: title.to_string(),
        ..Problem::new(status, detail)
    }
}

/// `Workload manager` as `workload manager`, for the middle of a sentence.
fn lowercase(title: &str) -> String {
    let mut chars = title.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Errors of the session store and controller (as opposed to the checks of a new session).
impl From<crus_core::Error> for AppError {
    fn from(error: crus_core::Error) -> Self {
        AppError::Store(error)
    }
}

/// Router fallback: 404 problem for a path no route matches.
pub(crate) async fn no_route(uri: axum::http::Uri) -> AppError {
    AppError::NoRoute(uri.path().to_string())
}

/// Middleware: gives a problem body to error responses made by layers and by
/// axum itself (405 Method Not Allowed, 413 from the body limit, the timeout's
/// 503), so every error a client sees has the same shape. Headers such as
/// `Allow` are kept.
pub(crate) async fn problem_bodies(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with(PROBLEM_JSON));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = response
                .headers()
                .get(header::ALLOW)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            if allowed.is_empty() {
                // axum sets `Allow` outside this layer; the client still gets it.
                format!(
                    "{method} is not allowed on this resource; the Allow header lists the methods it accepts."
                )
            } else {
                format!("{method} is not allowed on this resource; allowed: {allowed}.")
            }
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            "The request body is larger than the server accepts.".to_string()
        }
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
            "The request took too long to handle. Retry it later.".to_string()
        }
        _ => status
            .canonical_reason()
            .unwrap_or("The request failed.")
            .to_string(),
    };
    let (mut parts, _) = response.into_parts();
    let problem = Problem::new(status, detail).into_response();
    let (problem_parts, body) = problem.into_parts();
    // Keep the original headers (Allow, request id) but describe the new body.
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(content_type) = problem_parts.headers.get(header::CONTENT_TYPE) {
        parts
            .headers
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    Response::from_parts(parts, body)
}
