//! Extractors for JSON request bodies that fail with problem documents.
//!
//! axum's own `Json` answers a bad body with a plain-text 400/415/422 whose
//! wording is axum's. CRUS clients expect problem JSON, and CRUS sorted
//! failures in two: a body that is not JSON at all is a 400, a JSON body that
//! is not a valid session is a 422 listing the failures by field. These
//! extractors answer the first; the handlers, reading the JSON they hand
//! over, the second.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use crate::problem::AppError;

/// Any JSON body, sent with a JSON content type (`application/json` or `application/*+json`).
///
/// Rejections: 400 for a missing or non-JSON content type or a body that does
/// not parse, 413 for a body over the server's limit.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_content_type(request.headers())?;
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body that may be left out: `None` for an empty body (whatever its
/// content type, since clients often send none with an empty body).
///
/// Rejections: those of [`JsonBody`] when a body was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionalJsonBody(pub Option<Value>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        check_content_type(&headers)?;
        parse_json(&bytes).map(|value| OptionalJsonBody(Some(value)))
    }
}

/// The whole body, within the server's limit.
async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, AppError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            // The body limit layer makes the body fail with a length error
            // when no Content-Length announced the size; axum reports it as 413.
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge
            } else {
                AppError::BadRequest(format!(
                    "The request body could not be read: {}",
                    rejection.body_text()
                ))
            }
        })
}

/// 400 unless `bytes` are JSON.
fn parse_json(bytes: &[u8]) -> Result<Value, AppError> {
    serde_json::from_slice(bytes).map_err(|error| {
        AppError::BadRequest(format!("The request body is not valid JSON: {error}."))
    })
}

/// 400 unless the request declares a JSON body.
fn check_content_type(headers: &HeaderMap) -> Result<(), AppError> {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Err(AppError::BadRequest(
            "The request has no Content-Type: send the body as `Content-Type: application/json`."
                .to_string(),
        ));
    };
    let essence = content_type
        .to_str()
        .ok()
        .and_then(|value| value.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(AppError::BadRequest(format!(
            "The request body must be JSON, sent as `Content-Type: application/json`, not '{}'.",
            String::from_utf8_lossy(content_type.as_bytes())
        )))
    }
}
