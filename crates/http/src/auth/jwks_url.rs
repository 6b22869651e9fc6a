//! Keys of accepted JWTs published at a JWKS URL, the way identity providers
//! publish them (Keycloak on Cray EX:
//! `https://api-gw-service-nmn.local/keycloak/realms/shasta/protocol/openid-connect/certs`).
//!
//! The keys are fetched at start and kept. A token whose `kid` the kept keys
//! do not have makes them fetched again, since the provider may have rotated
//! its keys; at most once per [`JwksUrlConfig::min_refetch_interval`], so
//! tokens with made-up `kid`s cannot turn the server into a load on the
//! provider. They are also fetched every [`JwksUrlConfig::refresh_interval`],
//! so a key the provider withdrew stops verifying.
//!
//! Until a first fetch succeeds no JWT verifies (401): a server never accepts
//! a token it cannot check. It says why in its log and tries again every
//! [`JwksUrlConfig::retry_interval`]; `/readyz` tells `auth_keys: unavailable`.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crus_backends::transport::HttpClientSettings;
use tokio::time::Instant;

use super::{AuthError, ClaimRules, JwtVerifier, verifiers_from_jwks};

/// Largest JWKS document read; a provider's key set is a few kilobytes.
const JWKS_SIZE_LIMIT: usize = 1024 * 1024;

/// Where the keys are published and how to fetch them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrlConfig {
    /// The JWKS URL (`https://…/protocol/openid-connect/certs`).
    pub url: String,
    /// A PEM file with the CA certificate(s) that signed the provider's TLS
    /// certificate (the site's platform CA), added to the system roots, as
    /// the Cray service clients do.
    pub ca_file: Option<PathBuf>,
    /// How long one fetch (connect, send, answer) may take.
    pub timeout: Duration,
    /// The shortest time between two fetches caused by tokens naming an
    /// unknown `kid`.
    pub min_refetch_interval: Duration,
    /// How soon a failed fetch is tried again while no key is known.
    pub retry_interval: Duration,
    /// How often the keys are fetched again once known.
    pub refresh_interval: Duration,
}

impl JwksUrlConfig {
    /// The keys at `url`, fetched within 10 s, again at most once a minute
    /// for an unknown `kid`, every 10 s while none could be fetched, and
    /// every 15 minutes once known.
    pub fn new(url: impl Into<String>) -> Self {
        JwksUrlConfig {
            url: url.into(),
            ca_file: None,
            timeout: Duration::from_secs(10),
            min_refetch_interval: Duration::from_secs(60),
            retry_interval: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(15 * 60),
        }
    }
}

/// The keys of a JWKS URL as last fetched, and how to fetch them again.
pub(super) struct RemoteJwks {
    /// Where and how often.
    config: JwksUrlConfig,
    /// The HTTP client (timeout and CA of `config`).
    http: reqwest::Client,
    /// Required `aud`, applied to every fetched key.
    audience: Option<String>,
    /// Required `iss`, applied to every fetched key.
    issuer: Option<String>,
    /// The verifiers of the last successful fetch; `None` before one.
    keys: RwLock<Option<Arc<Vec<JwtVerifier>>>>,
    /// When the last fetch began. Held across a fetch, so requests that
    /// all name a new `kid` wait for one fetch instead of each making one.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl RemoteJwks {
    /// A source of keys as `config` says, checking claims as the other keys
    /// do. Reads the CA file now, so a bad one stops the start.
    pub(super) fn new(
        config: JwksUrlConfig,
        audience: Option<String>,
        issuer: Option<String>,
    ) -> Result<Self, AuthError> {
        let url = reqwest::Url::parse(&config.url).map_err(|error| {
            AuthError::JwksUrl(format!("{:?} is not a URL: {error}", config.url))
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(AuthError::JwksUrl(format!(
                "{:?} is not an http:// or https:// URL",
                config.url
            )));
        }
        let http = HttpClientSettings::new(config.timeout)
            .ca_file("auth.jwks_ca_file", config.ca_file.as_deref())
            .build()
            .map_err(|error| AuthError::JwksUrl(error.to_string()))?;
        Ok(RemoteJwks {
            config,
            http,
            audience,
            issuer,
            keys: RwLock::new(None),
            last_attempt: tokio::sync::Mutex::new(None),
        })
    }

    /// The URL, for the log.
    pub(super) fn url(&self) -> &str {
        &self.config.url
    }

    /// The verifiers of the last successful fetch, `None` before one.
    pub(super) fn keys(&self) -> Option<Arc<Vec<JwtVerifier>>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the kept keys could verify a token naming `kid`: keys were
    /// fetched, and (when the token names one) one of them has that `kid`.
    pub(super) fn knows(&self, kid: Option<&str>) -> bool {
        self.keys().is_some_and(|keys| match kid {
            None => true,
            Some(kid) => keys.iter().any(|key| key.key_id.as_deref() == Some(kid)),
        })
    }

    /// Fetches the keys again because a token named a `kid` they lack (or
    /// none are known), unless the last fetch began less than
    /// `min_refetch_interval` ago. Returns whether a fetch succeeded.
    pub(super) async fn refetch_for_unknown_key(&self) -> bool {
        let mut last_attempt = self.last_attempt.lock().await;
        if last_attempt.is_some_and(|at| at.elapsed() < self.config.min_refetch_interval) {
            tracing::debug!(url = %self.config.url, "a JWT names an unknown key; the JWKS was fetched too recently to fetch it again");
            return false;
        }
        *last_attempt = Some(Instant::now());
        self.fetch_and_log("a JWT names a key not in the JWKS")
            .await
    }

    /// Fetches the keys now (whatever the rate limit) and records the attempt.
    async fn fetch_recorded(&self, why: &str) -> bool {
        let mut last_attempt = self.last_attempt.lock().await;
        *last_attempt = Some(Instant::now());
        self.fetch_and_log(why).await
    }

    async fn fetch_and_log(&self, why: &str) -> bool {
        match self.fetch().await {
            Ok(count) => {
                tracing::info!(url = %self.config.url, keys = count, "fetched the JWT keys ({why})");
                true
            }
            Err(error) if self.keys().is_none() => {
                tracing::warn!(
                    url = %self.config.url,
                    "cannot fetch the JWT keys: {error}; every JWT is refused (401) until they can be fetched, tried again every {:?}",
                    self.config.retry_interval
                );
                false
            }
            Err(error) => {
                tracing::warn!(url = %self.config.url, "cannot fetch the JWT keys again: {error}; the keys fetched before are kept");
                false
            }
        }
    }

    /// One fetch: the document at the URL, parsed; replaces the kept keys
    /// when it holds a usable signing key. Returns how many.
    async fn fetch(&self) -> Result<usize, String> {
        let response = self
            .http
            .get(&self.config.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| format!("no answer: {error}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("it answered {status}"));
        }
        if response
            .content_length()
            .is_some_and(|length| length > JWKS_SIZE_LIMIT as u64)
        {
            return Err(format!("its answer is larger than {JWKS_SIZE_LIMIT} bytes"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|error| format!("its answer could not be read: {error}"))?;
        if body.len() > JWKS_SIZE_LIMIT {
            return Err(format!("its answer is larger than {JWKS_SIZE_LIMIT} bytes"));
        }
        let text =
            std::str::from_utf8(&body).map_err(|_| "its answer is not UTF-8 text".to_string())?;
        let claims = ClaimRules {
            audience: self.audience.as_deref(),
            issuer: self.issuer.as_deref(),
        };
        let verifiers = verifiers_from_jwks(text, &claims).map_err(|error| error.to_string())?;
        let count = verifiers.len();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(verifiers));
        Ok(count)
    }

    /// Keeps the keys fresh in a task of the current runtime: fetches them
    /// now, then again every `refresh_interval`, or every `retry_interval`
    /// while none are known. The task ends once `self` is dropped.
    pub(super) fn spawn_refresh(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let remote = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut why = "at start";
            loop {
                let Some(remote) = remote.upgrade() else {
                    return;
                };
                remote.fetch_recorded(why).await;
                let wait = if remote.keys().is_some() {
                    why = "periodic refresh";
                    remote.config.refresh_interval
                } else {
                    why = "retry";
                    remote.config.retry_interval
                };
                drop(remote);
                tokio::time::sleep(wait).await;
            }
        })
    }
}
