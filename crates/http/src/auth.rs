//! Bearer authentication: static tokens and JWTs (HS256 secret, a PEM public
//! key, a JWKS document, or the keys published at a JWKS URL), checked by
//! [`require_auth`] on every route but the health probes.
//!
//! CRUS sat behind the Cray API gateway, which checked a Keycloak JWT before
//! any request reached it; `crus serve` checks the token itself, so it is
//! safe to expose without that gateway.

mod jwks_url;
mod settings;

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::problem::AppError;
pub use jwks_url::JwksUrlConfig;
use jwks_url::RemoteJwks;
pub use settings::AuthSettings;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// Every algorithm an RSA key can verify; the token's header picks one.
const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// How requests are authenticated. Several methods may be configured at once;
/// a token passes when any of them accepts it.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// Static bearer tokens (`--token`, `--tokens-file`, `CRUS_TOKENS`);
    /// surrounding whitespace is ignored.
    pub tokens: Vec<String>,
    /// Secret of HS256-signed JWTs (`--jwt-secret`).
    pub jwt_hs256_secret: Option<Vec<u8>>,
    /// PEM public key of RS256 (any RSA algorithm), ES256/ES384 or EdDSA
    /// signed JWTs (`--jwt-public-key`); the algorithm family is read from the key.
    pub jwt_public_key_pem: Option<Vec<u8>>,
    /// A JWKS document (`--jwks-file`); a token's `kid` picks the key.
    pub jwks_json: Option<String>,
    /// A JWKS URL (`--jwks-url`) whose keys are fetched at start and again
    /// when a token names a `kid` they lack (see [`JwksUrlConfig`]).
    pub jwks_url: Option<JwksUrlConfig>,
    /// When set, a JWT must carry this `aud`.
    pub audience: Option<String>,
    /// When set, a JWT must carry this `iss`.
    pub issuer: Option<String>,
    /// Accept every request without credentials (`--no-auth`); for tests and
    /// for servers behind a gateway that authenticates.
    pub no_auth: bool,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets stay out of logs: only say what is configured.
        formatter
            .debug_struct("AuthConfig")
            .field("tokens", &self.tokens.len())
            .field("jwt_hs256_secret", &self.jwt_hs256_secret.is_some())
            .field("jwt_public_key_pem", &self.jwt_public_key_pem.is_some())
            .field("jwks_json", &self.jwks_json.is_some())
            .field("jwks_url", &self.jwks_url)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("no_auth", &self.no_auth)
            .finish()
    }
}

/// Why an [`AuthConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No method configured, and `no_auth` not set.
    #[error(
        "no authentication configured: give --token, --tokens-file, CRUS_TOKENS, --jwt-secret, --jwt-public-key, --jwks-file or --jwks-url, or --no-auth to accept every request"
    )]
    NothingConfigured,
    /// `no_auth` set together with tokens or keys: which was meant is unclear.
    #[error(
        "--no-auth accepts every request, but tokens or keys were given too: give one or the other"
    )]
    NoAuthWithCredentials,
    /// A static token is empty (or only whitespace), which would be guessable.
    #[error("static token number {position} is empty")]
    EmptyToken {
        /// 1-based position in the token list.
        position: usize,
    },
    /// The HS256 secret is empty.
    #[error("the JWT secret is empty")]
    EmptySecret,
    /// The PEM public key could not be used.
    #[error("the JWT public key is not usable: {0}")]
    PublicKey(String),
    /// The JWKS document could not be used.
    #[error("the JWKS document is not usable: {0}")]
    Jwks(String),
    /// The JWKS URL (or its CA file) could not be used.
    #[error("the JWKS URL is not usable: {0}")]
    JwksUrl(String),
}

/// Who made a request, as authentication found out; handlers find it in the
/// request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Authentication is off (`no_auth`).
    Anyone,
    /// A static token matched.
    StaticToken,
    /// A JWT was verified.
    Jwt {
        /// Its `sub` claim, if any.
        subject: Option<String>,
    },
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` credentials were sent.
    Missing,
    /// A bearer token was sent but not accepted.
    Rejected,
}

impl From<AuthFailure> for AppError {
    fn from(failure: AuthFailure) -> Self {
        AppError::Unauthorized {
            token_rejected: failure == AuthFailure::Rejected,
        }
    }
}

/// One way of checking a JWT signature, with the claims rules that go with it.
struct JwtVerifier {
    /// Where the key came from, for the log.
    source: String,
    /// The JWKS `kid` of the key; `None` for keys that did not come from a JWKS.
    key_id: Option<String>,
    /// The key.
    key: DecodingKey,
    /// Accepted algorithms (all of the key's family) and claim checks.
    validation: Validation,
}

/// The configured authentication, ready to check requests.
pub struct Auth {
    /// Accept everything.
    no_auth: bool,
    /// Static tokens, as bytes for constant-time comparison.
    tokens: Vec<Vec<u8>>,
    /// JWT keys, tried in order.
    verifiers: Vec<JwtVerifier>,
    /// Keys fetched from a JWKS URL, tried after `verifiers`.
    remote: Option<Arc<RemoteJwks>>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Auth")
            .field("no_auth", &self.no_auth)
            .field("tokens", &self.tokens.len())
            .field(
                "jwt_keys",
                &self
                    .verifiers
                    .iter()
                    .map(|verifier| verifier.source.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("jwks_url", &self.remote.as_ref().map(|remote| remote.url()))
            .finish()
    }
}

/// The claims crus reads; `exp`, `nbf`, `aud` and `iss` are checked by jsonwebtoken.
#[derive(Deserialize)]
struct Claims {
    /// Who the token was issued to, for the log.
    #[serde(default)]
    sub: Option<String>,
}

impl Auth {
    /// Authentication as `config` describes it.
    ///
    /// Fails when nothing is configured and `no_auth` is not set, and on
    /// empty tokens or secrets and unparseable keys, so a server never starts
    /// with authentication weaker than its operator meant.
    pub fn new(config: AuthConfig) -> Result<Auth, AuthError> {
        let has_credentials = !config.tokens.is_empty()
            || config.jwt_hs256_secret.is_some()
            || config.jwt_public_key_pem.is_some()
            || config.jwks_json.is_some()
            || config.jwks_url.is_some();
        if config.no_auth {
            if has_credentials {
                return Err(AuthError::NoAuthWithCredentials);
            }
            tracing::warn!("authentication is off: every request is accepted");
            return Ok(Auth::disabled());
        }
        if !has_credentials {
            return Err(AuthError::NothingConfigured);
        }

        let mut tokens = Vec::with_capacity(config.tokens.len());
        for (index, token) in config.tokens.iter().enumerate() {
            let token = token.trim();
            if token.is_empty() {
                return Err(AuthError::EmptyToken {
                    position: index + 1,
                });
            }
            tokens.push(token.as_bytes().to_vec());
        }

        let claims = ClaimRules {
            audience: config.audience.as_deref(),
            issuer: config.issuer.as_deref(),
        };
        let mut verifiers = Vec::new();
        if let Some(secret) = &config.jwt_hs256_secret {
            if secret.is_empty() {
                return Err(AuthError::EmptySecret);
            }
            if secret.len() < 32 {
                tracing::warn!(
                    "the JWT secret is shorter than 32 bytes: HS256 tokens could be forged by brute force"
                );
            }
            verifiers.push(JwtVerifier {
                source: "HS256 secret".to_string(),
                key_id: None,
                key: DecodingKey::from_secret(secret),
                validation: claims.validation(&[Algorithm::HS256]),
            });
        }
        if let Some(pem) = &config.jwt_public_key_pem {
            let (key, algorithms) = key_from_pem(pem)?;
            verifiers.push(JwtVerifier {
                source: format!("public key ({:?})", algorithms[0]),
                key_id: None,
                key,
                validation: claims.validation(algorithms),
            });
        }
        if let Some(jwks) = &config.jwks_json {
            verifiers.extend(verifiers_from_jwks(jwks, &claims)?);
        }
        let remote = match config.jwks_url {
            Some(jwks_url) => {
                let remote = Arc::new(RemoteJwks::new(
                    jwks_url,
                    config.audience.clone(),
                    config.issuer.clone(),
                )?);
                // Fetched at start when there is a runtime to fetch on;
                // without one, the first JWT makes them fetched.
                if tokio::runtime::Handle::try_current().is_ok() {
                    remote.spawn_refresh();
                }
                Some(remote)
            }
            None => None,
        };
        Ok(Auth {
            no_auth: false,
            tokens,
            verifiers,
            remote,
        })
    }

    /// Whether the keys of the JWKS URL are known: `None` without a JWKS
    /// URL, `Some(false)` until a first fetch succeeded (every JWT is then
    /// refused).
    pub fn jwks_url_keys_available(&self) -> Option<bool> {
        self.remote.as_ref().map(|remote| remote.keys().is_some())
    }

    /// As [`Auth::authenticate`], fetching the keys of the JWKS URL again
    /// first when the token is a JWT naming a `kid` they lack (a rotation at
    /// the provider), at most once per its `min_refetch_interval`.
    pub async fn authenticate_fetching_keys(
        &self,
        headers: &HeaderMap,
    ) -> Result<Principal, AuthFailure> {
        let result = self.authenticate(headers);
        let (Err(AuthFailure::Rejected), Some(remote)) = (&result, &self.remote) else {
            return result;
        };
        let Some(header) =
            bearer_token(headers).and_then(|token| jsonwebtoken::decode_header(token).ok())
        else {
            return result;
        };
        if remote.knows(header.kid.as_deref()) || !remote.refetch_for_unknown_key().await {
            return result;
        }
        self.authenticate(headers)
    }

    /// Authentication that accepts every request (what `no_auth` gives).
    pub fn disabled() -> Auth {
        Auth {
            no_auth: true,
            tokens: Vec::new(),
            verifiers: Vec::new(),
            remote: None,
        }
    }

    /// Checks the `Authorization` header of a request.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        if self.no_auth {
            return Ok(Principal::Anyone);
        }
        let token = bearer_token(headers).ok_or(AuthFailure::Missing)?;
        self.verify_token(token)
    }

    /// Checks one bearer token: a static token, else a JWT.
    pub fn verify_token(&self, token: &str) -> Result<Principal, AuthFailure> {
        if self.no_auth {
            return Ok(Principal::Anyone);
        }
        // Compare against every token without stopping at a match, so the time
        // taken does not tell which token (or how much of one) matched. Tokens
        // of another length compare unequal at once: their length may leak, not
        // their content.
        let matched = self
            .tokens
            .iter()
            .fold(subtle::Choice::from(0), |matched, known| {
                matched | known.as_slice().ct_eq(token.as_bytes())
            });
        if bool::from(matched) {
            return Ok(Principal::StaticToken);
        }
        self.verify_jwt(token)
    }

    fn verify_jwt(&self, token: &str) -> Result<Principal, AuthFailure> {
        let fetched = self.remote.as_ref().and_then(|remote| remote.keys());
        if self.verifiers.is_empty() && fetched.as_ref().is_none_or(|keys| keys.is_empty()) {
            return Err(AuthFailure::Rejected);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|error| {
            tracing::debug!(%error, "bearer token is neither a known token nor a JWT");
            AuthFailure::Rejected
        })?;
        let mut tried = false;
        let fetched = fetched.as_deref().map(Vec::as_slice).unwrap_or_default();
        for verifier in self.verifiers.iter().chain(fetched) {
            if !verifier.validation.algorithms.contains(&header.alg) {
                continue;
            }
            if let (Some(key_id), Some(wanted)) = (&verifier.key_id, &header.kid)
                && key_id != wanted
            {
                continue;
            }
            tried = true;
            match jsonwebtoken::decode::<Claims>(token, &verifier.key, &verifier.validation) {
                Ok(data) => {
                    return Ok(Principal::Jwt {
                        subject: data.claims.sub,
                    });
                }
                Err(error) => {
                    tracing::debug!(%error, key = %verifier.source, "JWT rejected");
                }
            }
        }
        if !tried {
            tracing::debug!(alg = ?header.alg, kid = ?header.kid, "no configured key verifies this JWT");
        }
        Err(AuthFailure::Rejected)
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The claim checks every JWT key shares.
struct ClaimRules<'a> {
    audience: Option<&'a str>,
    issuer: Option<&'a str>,
}

impl ClaimRules<'_> {
    fn validation(&self, algorithms: &[Algorithm]) -> Validation {
        let mut validation = Validation::new(algorithms.first().copied().unwrap_or_default());
        validation.algorithms = algorithms.to_vec();
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        match self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Without a configured audience a token's `aud` names some other
            // service's audience model; it is not ours to judge.
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// A verifying key and its algorithms from a PEM public key (RSA, EC or Ed25519).
fn key_from_pem(pem: &[u8]) -> Result<(DecodingKey, &'static [Algorithm]), AuthError> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("PRIVATE KEY") {
        return Err(AuthError::PublicKey(
            "this is a private key; give the public key (openssl pkey -pubout)".to_string(),
        ));
    }
    if !text.contains("-----BEGIN") {
        return Err(AuthError::PublicKey("not a PEM document".to_string()));
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((key, &RSA_ALGORITHMS));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        // The curve is not visible here; a P-384 key simply never verifies ES256.
        return Ok((key, &[Algorithm::ES256, Algorithm::ES384]));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok((key, &[Algorithm::EdDSA]));
    }
    Err(AuthError::PublicKey(
        "not an RSA, EC (P-256, P-384) or Ed25519 public key in PEM".to_string(),
    ))
}

/// Verifiers for the signing keys of a JWKS document.
///
/// Keys are parsed one by one, so one key of a kind jsonwebtoken does not know
/// (or an encryption key) is skipped instead of making the whole set unusable.
fn verifiers_from_jwks(json: &str, claims: &ClaimRules<'_>) -> Result<Vec<JwtVerifier>, AuthError> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawSet = serde_json::from_str(json)
        .map_err(|error| AuthError::Jwks(format!("not a JWKS document: {error}")))?;
    let mut verifiers = Vec::new();
    for (index, raw) in set.keys.into_iter().enumerate() {
        let jwk: Jwk = match serde_json::from_value(raw) {
            Ok(jwk) => jwk,
            Err(error) => {
                tracing::warn!(%error, "JWKS key {index} is skipped: not understood");
                continue;
            }
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let Some(algorithms) = jwk_algorithms(&jwk) else {
            tracing::warn!("JWKS key {index} is skipped: not a signing key crus can use");
            continue;
        };
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|error| AuthError::Jwks(format!("key {index}: {error}")))?;
        let key_id = jwk.common.key_id.clone();
        verifiers.push(JwtVerifier {
            source: format!(
                "JWKS key {}",
                key_id.as_deref().unwrap_or(&index.to_string())
            ),
            key_id,
            key,
            validation: claims.validation(&algorithms),
        });
    }
    if verifiers.is_empty() {
        return Err(AuthError::Jwks(
            "it holds no usable signing key".to_string(),
        ));
    }
    Ok(verifiers)
}

/// The algorithms a JWK verifies: its `alg` if given, else all of its key type's.
fn jwk_algorithms(jwk: &Jwk) -> Option<Vec<Algorithm>> {
    if let Some(declared) = &jwk.common.key_algorithm {
        let algorithm = match declared {
            KeyAlgorithm::HS256 => Algorithm::HS256,
            KeyAlgorithm::HS384 => Algorithm::HS384,
            KeyAlgorithm::HS512 => Algorithm::HS512,
            KeyAlgorithm::ES256 => Algorithm::ES256,
            KeyAlgorithm::ES384 => Algorithm::ES384,
            KeyAlgorithm::RS256 => Algorithm::RS256,
            KeyAlgorithm::RS384 => Algorithm::RS384,
            KeyAlgorithm::RS512 => Algorithm::RS512,
            KeyAlgorithm::PS256 => Algorithm::PS256,
            KeyAlgorithm::PS384 => Algorithm::PS384,
            KeyAlgorithm::PS512 => Algorithm::PS512,
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
            // Encryption algorithms: not for signatures.
            _ => return None,
        };
        return Some(vec![algorithm]);
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(RSA_ALGORITHMS.to_vec()),
        AlgorithmParameters::EllipticCurve(parameters) => match parameters.curve {
            EllipticCurve::P256 => Some(vec![Algorithm::ES256]),
            EllipticCurve::P384 => Some(vec![Algorithm::ES384]),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(parameters) => {
            (parameters.curve == EllipticCurve::Ed25519).then(|| vec![Algorithm::EdDSA])
        }
        AlgorithmParameters::OctetKey(_) => {
            Some(vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512])
        }
    }
}

/// Middleware: lets the request through with its [`Principal`] in the
/// extensions, or answers 401 with a `WWW-Authenticate: Bearer` challenge.
pub async fn require_auth(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth.authenticate_fetching_keys(request.headers()).await {
        Ok(principal) => {
            if let Principal::Jwt {
                subject: Some(subject),
            } = &principal
            {
                tracing::debug!(%subject, "authenticated by JWT");
            }
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(failure) => AppError::from(failure).into_response(),
    }
}
