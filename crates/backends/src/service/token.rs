//! Bearer tokens: read from where the configuration says, and for OAuth2
//! cached until shortly before they expire.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::config::TokenSource;
use super::error::ServiceError;

/// How long before its expiry an OAuth2 token is replaced, so that a request
/// never leaves with a token that expires on the way.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// The lifetime assumed when the token endpoint does not say (`expires_in`).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// A token and when to stop using it.
#[derive(Debug, Clone)]
struct CachedToken {
    token: String,
    refresh_at: Instant,
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Debug, serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Hands out the current token of a [`TokenSource`].
#[derive(Debug)]
pub(super) struct TokenProvider {
    source: TokenSource,
    /// The OAuth2 token; behind an async lock so that concurrent calls
    /// fetch one new token, not one each.
    cached: Mutex<Option<CachedToken>>,
}

impl TokenProvider {
    pub(super) fn new(source: TokenSource) -> Self {
        TokenProvider {
            source,
            cached: Mutex::new(None),
        }
    }

    /// The token to send now, or `None` when the source has none.
    pub(super) async fn token(
        &self,
        service: &'static str,
        http: &reqwest::Client,
    ) -> Result<Option<String>, ServiceError> {
        let not_found = |message: String| ServiceError::Token {
            service,
            message,
            retryable: false,
        };
        match &self.source {
            TokenSource::None => Ok(None),
            TokenSource::Static(token) => Ok(Some(token.clone())),
            TokenSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(|token| Some(token.trim().to_string()))
                .map_err(|error| {
                    not_found(format!(
                        "cannot read the token file {}: {error}",
                        path.display()
                    ))
                }),
            TokenSource::Env(variable) => std::env::var(variable)
                .map(|token| Some(token.trim().to_string()))
                .map_err(|error| {
                    not_found(format!(
                        "environment variable {variable} holds no token: {error}"
                    ))
                }),
            TokenSource::OAuth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
            } => {
                let mut cached = self.cached.lock().await;
                if let Some(current) = cached.as_ref()
                    && Instant::now() < current.refresh_at
                {
                    return Ok(Some(current.token.clone()));
                }
                let fresh = fetch_token(service, http, token_url, client_id, client_secret).await?;
                let token = fresh.token.clone();
                *cached = Some(fresh);
                Ok(Some(token))
            }
        }
    }
}

async fn fetch_token(
    service: &'static str,
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    client_secret: &str,
) -> Result<CachedToken, ServiceError> {
    let asked_at = Instant::now();
    let failure = |message: String, retryable: bool| ServiceError::Token {
        service,
        message: format!("token endpoint {token_url}: {message}"),
        retryable,
    };
    let response = http
        .post(token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ])
        .send()
        .await
        .map_err(|error| failure(format!("no answer: {error}"), true))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failure(
            format!("answered {status}; check the client id and secret"),
            status.is_server_error(),
        ));
    }
    let answer: TokenAnswer = response
        .json()
        .await
        .map_err(|error| failure(format!("unreadable answer: {error}"), false))?;
    let lifetime = answer
        .expires_in
        .map_or(DEFAULT_LIFETIME, Duration::from_secs);
    Ok(CachedToken {
        token: answer.access_token,
        refresh_at: asked_at + lifetime.saturating_sub(EXPIRY_MARGIN),
    })
}
