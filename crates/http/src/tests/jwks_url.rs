//! `Auth` with a JWKS URL (a wiremock identity provider): keys fetched at
//! start, fetched again for a new `kid` at most once per interval, and no
//! JWT accepted before a first fetch succeeds. Tokens are signed with P-256
//! keys generated here.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::auth::{Auth, AuthConfig, AuthError, AuthFailure, JwksUrlConfig, Principal};

/// Where the wiremock provider publishes its keys (Keycloak's path).
const CERTS: &str = "/realms/shasta/protocol/openid-connect/certs";

/// A signing key of the provider: its private half and its public JWK.
struct ProviderKey {
    kid: &'static str,
    private: EncodingKey,
    jwk: Value,
}

impl ProviderKey {
    /// A new P-256 key pair named `kid`.
    fn generate(kid: &'static str) -> Self {
        let random = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
                .unwrap();
        // The uncompressed point: 0x04, then x and y (32 bytes each).
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kid": kid, "kty": "EC", "alg": "ES256", "use": "sig", "crv": "P-256",
            "x": base64url(&point[1..33]), "y": base64url(&point[33..65]),
        });
        ProviderKey {
            kid,
            private: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        }
    }

    /// A token signed with this key, naming it, valid for 10 minutes.
    fn token(&self) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.to_string());
        let claims = json!({"sub": "admin", "exp": jsonwebtoken::get_current_timestamp() + 600});
        jsonwebtoken::encode(&header, &claims, &self.private).unwrap()
    }
}

/// Base64url without padding (RFC 7515), as JWKs write key material.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        for index in 0..=chunk.len() {
            let sextet = (bits >> (18 - 6 * index)) & 0x3f;
            text.push(char::from(ALPHABET[sextet as usize]));
        }
    }
    text
}

fn key_set(keys: &[&ProviderKey]) -> Value {
    json!({"keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>()})
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

/// Authentication with the JWKS URL of `server`, `min_refetch_interval`
/// between refetches for unknown keys, and a static token.
fn auth_for(server: &MockServer, min_refetch_interval: Duration) -> Auth {
    let mut jwks_url = JwksUrlConfig::new(format!("{}{CERTS}", server.uri()));
    jwks_url.min_refetch_interval = min_refetch_interval;
    jwks_url.retry_interval = Duration::from_millis(100);
    jwks_url.timeout = Duration::from_secs(5);
    Auth::new(AuthConfig {
        tokens: vec!["static-token-0123456789".into()],
        jwks_url: Some(jwks_url),
        ..AuthConfig::default()
    })
    .unwrap()
}

async fn fetches(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

/// Waits (at most 10 s) until the keys of the JWKS URL are known.
async fn until_keys_known(auth: &Auth) {
    for _ in 0..1000 {
        if auth.jwks_url_keys_available() == Some(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the keys of the JWKS URL were never fetched");
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch_and_refetches_are_rate_limited() {
    let server = MockServer::start().await;
    let (first, second, unknown) = (
        ProviderKey::generate("key-1"),
        ProviderKey::generate("key-2"),
        ProviderKey::generate("key-3"),
    );
    // The first fetch sees key-1 only; every later one key-1 and key-2 (a rotation).
    Mock::given(method("GET"))
        .and(path(CERTS))
        .respond_with(ResponseTemplate::new(200).set_body_json(key_set(&[&first])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(CERTS))
        .respond_with(ResponseTemplate::new(200).set_body_json(key_set(&[&first, &second])))
        .mount(&server)
        .await;
    let interval = Duration::from_secs(2);
    let auth = auth_for(&server, interval);
    assert_eq!(auth.jwks_url_keys_available(), Some(false));
    until_keys_known(&auth).await;
    assert_eq!(fetches(&server).await, 1, "fetched once, at start");
    assert_eq!(
        auth.authenticate_fetching_keys(&bearer(&first.token()))
            .await,
        Ok(Principal::Jwt {
            subject: Some("admin".into())
        })
    );

    // key-2 is new, but the keys were fetched less than the interval ago.
    assert_eq!(
        auth.authenticate_fetching_keys(&bearer(&second.token()))
            .await,
        Err(AuthFailure::Rejected)
    );
    assert_eq!(fetches(&server).await, 1, "no refetch within the interval");

    tokio::time::sleep(interval).await;
    assert!(
        auth.authenticate_fetching_keys(&bearer(&second.token()))
            .await
            .is_ok(),
        "key-2 accepted after a refetch"
    );
    assert_eq!(fetches(&server).await, 2);
    // A key the provider does not publish: refused, and no fetch so soon after the last.
    assert_eq!(
        auth.authenticate_fetching_keys(&bearer(&unknown.token()))
            .await,
        Err(AuthFailure::Rejected)
    );
    assert!(
        auth.authenticate_fetching_keys(&bearer(&first.token()))
            .await
            .is_ok()
    );
    assert_eq!(fetches(&server).await, 2);
    // A token of a known key asks for no fetch, good or bad.
    let mut forged = second.token();
    forged.push('A');
    assert_eq!(
        auth.authenticate_fetching_keys(&bearer(&forged)).await,
        Err(AuthFailure::Rejected)
    );
    assert_eq!(fetches(&server).await, 2);
}

#[tokio::test]
async fn no_jwt_is_accepted_before_the_keys_could_be_fetched() {
    let server = MockServer::start().await;
    let key = ProviderKey::generate("key-1");
    // The provider is down for the first three fetches.
    Mock::given(method("GET"))
        .and(path(CERTS))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(CERTS))
        .respond_with(ResponseTemplate::new(200).set_body_json(key_set(&[&key])))
        .mount(&server)
        .await;
    // Refetches for tokens are rate-limited far beyond the test: only the
    // retries at start can bring the keys.
    let auth = auth_for(&server, Duration::from_secs(3600));
    assert_eq!(
        auth.authenticate_fetching_keys(&bearer(&key.token())).await,
        Err(AuthFailure::Rejected)
    );
    assert_eq!(auth.jwks_url_keys_available(), Some(false));
    // Static tokens work meanwhile.
    assert_eq!(
        auth.authenticate_fetching_keys(&bearer("static-token-0123456789"))
            .await,
        Ok(Principal::StaticToken)
    );
    until_keys_known(&auth).await;
    assert!(fetches(&server).await >= 4);
    assert!(
        auth.authenticate_fetching_keys(&bearer(&key.token()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_provider_answering_something_else_than_keys_gives_none() {
    let server = MockServer::start().await;
    let key = ProviderKey::generate("key-1");
    Mock::given(method("GET"))
        .and(path(CERTS))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>login</html>"))
        .mount(&server)
        .await;
    let auth = auth_for(&server, Duration::from_secs(3600));
    // Several retries happen in this time; none gives keys.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(fetches(&server).await >= 2, "retried");
    assert_eq!(auth.jwks_url_keys_available(), Some(false));
    assert_eq!(
        auth.authenticate_fetching_keys(&bearer(&key.token())).await,
        Err(AuthFailure::Rejected)
    );
}

#[test]
fn unusable_jwks_url_settings_stop_the_start() {
    for url in ["not a url", "ftp://keycloak.local/certs"] {
        let result = Auth::new(AuthConfig {
            jwks_url: Some(JwksUrlConfig::new(url)),
            ..AuthConfig::default()
        });
        assert!(matches!(result, Err(AuthError::JwksUrl(_))), "{url}");
    }
    let mut missing_ca = JwksUrlConfig::new("https://keycloak.local/certs");
    missing_ca.ca_file = Some("/nonexistent/ca.pem".into());
    let error = Auth::new(AuthConfig {
        jwks_url: Some(missing_ca),
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
}
