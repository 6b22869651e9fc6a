//! `Auth`: static tokens, HS256, RS256, ES256, JWKS and `no_auth`, each with
//! no token, a wrong one, an expired one and a good one.

use axum::http::{HeaderMap, HeaderValue, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::auth::{Auth, AuthConfig, AuthError, AuthFailure, Principal};

// Test-only key pairs, generated for these tests with
// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` and
// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`
// (public halves with `openssl pkey -pubout`). They protect nothing.
const EC_PRIVATE: &str = r"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmKyjNOcQeUC3bbeE
TXykmWh/roOzJfYaMHRJxE9svAqhRANCAARg0lAfyC7PRO9AyAyOL18mTCM5gidH
Brfq+TtMiMCAi+XY3v9T1bsTI37KrZCfzTZFL/oxgDqH5G8s58Cmyxo6
-----END PRIVATE KEY-----
";
const EC_PUBLIC: &str = r"-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYNJQH8guz0TvQMgMji9fJkwjOYIn
Rwa36vk7TIjAgIvl2N7/U9W7EyN+yq2Qn802RS/6MYA6h+RvLOfApssaOg==
-----END PUBLIC KEY-----
";
/// The x and y coordinates of `EC_PUBLIC`, base64url, for its JWK.
const EC_X: &str = "YNJQH8guz0TvQMgMji9fJkwjOYInRwa36vk7TIjAgIs";
const EC_Y: &str = "5dje_1PVuxMjfsqtkJ_NNkUv-jGAOofkbyznwKbLGjo";
const RSA_PRIVATE: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDlKtXKqB4CHVOC
MDybG7gn+r90NLWtrHX6Y0CYOLF/nEmAebHPKObUGSqrIQEdtfe17avjOoBvgvrF
XXekMmdsND8MXakWTsvU0Vk3N+keQU9bZJDKIRwQ5D8r1+0QUNKM4QMPftea701G
WP12M+AqjAbdSIaaoZfLcPblZJSI67xPdarMs0/NBTn/2YaZMuSvXhr2EQ/d01Q6
WRiQWLaLKZtWR3d4AFQaGBaH3HqxkqbHkiYKDElSXdjoWdccWVXG9ZooZ1fNQ7lb
irBKNGxty8Spmzfc3pgDhuohMskX/SEZMSX8V6C65kp/tzMzM7ZDJDS+fp5vxwRK
0hOthjYxAgMBAAECggEAGdyvq+M1H7/3gKW48Tg7nCdsG80nA6aG2e8Bhyw+u8wD
b4BMVLik9CKy8gUTfyrd/aYI0+fyPqNlcYiOy/T0Pv3Wb6rSPjY+QpIto1Gn+UYd
ko7S2DzMUguwJV6E3maAnG14TvNdmZqP+fRpBkHsdmC/FZHtvt2lp8vj0Rd8u8bI
CXFTPrS0E0dJWNCCZD//ryeR/LhNHZGFEPqiLblRDTLAySQ3fQ/cfX/qvCfdDhXR
8RHCUUZ8cm3izSrwP9P/VZrRiaEm/6ViXQXbZmOv8us7nD6/jDxtUhNVTr7IinYc
b46fTtKHtJqV00OWiaSVWA+8zd7p6GlOufdmNV+7UQKBgQD+ZFk+tszFiLoYq6h9
+RxX30IbWVhPG8S7oaHmNOSz4eTa/As/Q7EJOrvBvOB4nFhFxyuOfDzyi5kL9Pxr
J2x/BnvlG+SLn0RfLf9UIe5lzXpwHEvRHwm5PB+5F6BvhfV00Mk9N0bC5VlaV33u
mXsAUNFpt5rIshk+iXTxWAiBuwKBgQDmnaskx/QDIxY4K498fAHsPItGfX2R5Wjq
Mowqut1qagCQUBfsSadu9jD8u/EHRtVOoC+ltagY2y3YD0WyeNzOqoZ5f5xjwiEQ
tuHg7Oigomw9uawIoOVK0wKyJG2vOtniFVlpNFGTPOVTXTPOUZ4pq9AzpFIwlvBl
+Ih2w36DAwKBgQDiDFNNKew9nugWYfp/reskngtE+BhDe15OiCqvv9J1kUXl3M81
sTXQCLOsTOR96Bd8MaYfn4Ac2jTt7gyaPtbm7OEMzcNA2g5MMThQDzKinXqtwkcQ
lO7z/VwHAdqbHsLkwV4AmmyzZE8IuvP5H8KvniDnOrI8oh1Sd5xFlL9CXwKBgBRn
6SflBYNtjF7GA/lI48aqiMxg+EZ7nS/z7xEs3cC3xnr+i09eKRGZeTYzzx0MuH0v
kWfBTjF8226d01X6eddToXiIwSbWm6Rl+lCzxdXI6XkAv+c3jXJ0f22R6Z6yv2rQ
5st3VKyJm+UnfxkHgc5AJLkdFiS0hmsPdcvEeqJPAoGBAMavRyvdSbWlORGAw3r9
kORQ3kNLlzabvLzoY1ktEwhX6y9gyKv0z9BGBfTBAoq+wieN9vlwfuakL9QcpHpn
0sVEgtzWWZmItFSoKhZK96W2+grrjR8QsVg4b6+ST09qI1sDlJaMJsrucYr/6Ex7
nI5TFdlcnCvIBXEWB2LJPxli
-----END PRIVATE KEY-----
";
const RSA_PUBLIC: &str = r"-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA5SrVyqgeAh1TgjA8mxu4
J/q/dDS1rax1+mNAmDixf5xJgHmxzyjm1BkqqyEBHbX3te2r4zqAb4L6xV13pDJn
bDQ/DF2pFk7L1NFZNzfpHkFPW2SQyiEcEOQ/K9ftEFDSjOEDD37Xmu9NRlj9djPg
KowG3UiGmqGXy3D25WSUiOu8T3WqzLNPzQU5/9mGmTLkr14a9hEP3dNUOlkYkFi2
iymbVkd3eABUGhgWh9x6sZKmx5ImCgxJUl3Y6FnXHFlVxvWaKGdXzUO5W4qwSjRs
bcvEqZs33N6YA4bqITLJF/0hGTEl/FeguuZKf7czMzO2QyQ0vn6eb8cEStITrYY2
MQIDAQAB
-----END PUBLIC KEY-----
";

const SECRET: &[u8] = b"an-hs256-secret-for-tests-only-0123456789";

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// Checks no token, a wrong token, an expired token and a good token against `auth`.
fn check_token_kinds(auth: &Auth, good: &str, expired: Option<&str>) {
    assert_eq!(
        auth.authenticate(&HeaderMap::new()),
        Err(AuthFailure::Missing)
    );
    assert_eq!(
        auth.authenticate(&bearer("wrong")),
        Err(AuthFailure::Rejected)
    );
    if let Some(expired) = expired {
        assert_eq!(
            auth.authenticate(&bearer(expired)),
            Err(AuthFailure::Rejected)
        );
    }
    assert!(auth.authenticate(&bearer(good)).is_ok());
}

#[test]
fn nothing_configured_is_an_error_naming_every_option() {
    let error = Auth::new(AuthConfig::default()).unwrap_err();
    assert!(matches!(error, AuthError::NothingConfigured));
    assert_eq!(
        error.to_string(),
        "no authentication configured: give --token, --tokens-file, CRUS_TOKENS, --jwt-secret, --jwt-public-key, --jwks-file or --jwks-url, or --no-auth to accept every request"
    );
}

#[test]
fn unusable_settings_are_errors() {
    let empty_token = Auth::new(AuthConfig {
        tokens: vec!["good".into(), "  ".into()],
        ..AuthConfig::default()
    });
    assert!(matches!(
        empty_token,
        Err(AuthError::EmptyToken { position: 2 })
    ));
    let empty_secret = Auth::new(AuthConfig {
        jwt_hs256_secret: Some(Vec::new()),
        ..AuthConfig::default()
    });
    assert!(matches!(empty_secret, Err(AuthError::EmptySecret)));
    for pem in [
        "not a key",
        EC_PRIVATE,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    ] {
        let result = Auth::new(AuthConfig {
            jwt_public_key_pem: Some(pem.as_bytes().to_vec()),
            ..AuthConfig::default()
        });
        assert!(matches!(result, Err(AuthError::PublicKey(_))), "{pem}");
    }
    for jwks in [
        "{",
        r#"{"keys": []}"#,
        r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "!", "y": "!"}]}"#,
    ] {
        let result = Auth::new(AuthConfig {
            jwks_json: Some(jwks.to_string()),
            ..AuthConfig::default()
        });
        assert!(matches!(result, Err(AuthError::Jwks(_))), "{jwks}");
    }
    let contradictory = Auth::new(AuthConfig {
        tokens: vec!["t".into()],
        no_auth: true,
        ..AuthConfig::default()
    });
    assert!(matches!(
        contradictory,
        Err(AuthError::NoAuthWithCredentials)
    ));
}

#[test]
fn static_tokens() {
    let auth = Auth::new(AuthConfig {
        tokens: vec!["first-token".into(), " second-token\n".into()],
        ..AuthConfig::default()
    })
    .unwrap();
    check_token_kinds(&auth, "first-token", None);
    assert_eq!(
        auth.authenticate(&bearer("second-token")),
        Ok(Principal::StaticToken)
    );
    assert_eq!(auth.verify_token("first-toke"), Err(AuthFailure::Rejected));
    assert_eq!(
        auth.verify_token("first-tokenX"),
        Err(AuthFailure::Rejected)
    );

    // Other schemes and empty bearer values are no credentials at all.
    for value in [
        "Basic Zmlyc3QtdG9rZW4=",
        "Bearer",
        "Bearer   ",
        "first-token",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        assert_eq!(
            auth.authenticate(&headers),
            Err(AuthFailure::Missing),
            "{value}"
        );
    }
    // The scheme is case-insensitive (RFC 7235).
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("bearer first-token"),
    );
    assert!(auth.authenticate(&headers).is_ok());
}

#[test]
fn hs256_jwts() {
    let auth = Auth::new(AuthConfig {
        jwt_hs256_secret: Some(SECRET.to_vec()),
        ..AuthConfig::default()
    })
    .unwrap();
    let key = EncodingKey::from_secret(SECRET);
    let good = sign(
        Header::default(),
        &json!({"sub": "alice", "exp": now() + 600}),
        &key,
    );
    let expired = sign(
        Header::default(),
        &json!({"sub": "alice", "exp": now() - 600}),
        &key,
    );
    check_token_kinds(&auth, &good, Some(&expired));
    assert_eq!(
        auth.verify_token(&good),
        Ok(Principal::Jwt {
            subject: Some("alice".into())
        })
    );

    // `exp` is required; a token signed with another secret is refused;
    // a small clock skew is tolerated; `nbf` in the future is refused.
    let no_exp = sign(Header::default(), &json!({"sub": "alice"}), &key);
    let other_key = EncodingKey::from_secret(b"another-secret-another-secret-another");
    let forged = sign(Header::default(), &json!({"exp": now() + 600}), &other_key);
    let skewed = sign(Header::default(), &json!({"exp": now() - 5}), &key);
    let not_yet = sign(
        Header::default(),
        &json!({"exp": now() + 7200, "nbf": now() + 3600}),
        &key,
    );
    assert_eq!(auth.verify_token(&no_exp), Err(AuthFailure::Rejected));
    assert_eq!(auth.verify_token(&forged), Err(AuthFailure::Rejected));
    assert!(auth.verify_token(&skewed).is_ok());
    assert_eq!(auth.verify_token(&not_yet), Err(AuthFailure::Rejected));

    // alg=none and an algorithm of another family are refused.
    let unsigned = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
        good.split('.').nth(1).unwrap()
    );
    assert_eq!(auth.verify_token(&unsigned), Err(AuthFailure::Rejected));
    let hs384 = sign(
        Header::new(Algorithm::HS384),
        &json!({"exp": now() + 600}),
        &key,
    );
    assert_eq!(auth.verify_token(&hs384), Err(AuthFailure::Rejected));
}

#[test]
fn audience_and_issuer_are_checked_when_configured() {
    let auth = Auth::new(AuthConfig {
        jwt_hs256_secret: Some(SECRET.to_vec()),
        audience: Some("crus".into()),
        issuer: Some("https://keycloak.local/realms/shasta".into()),
        ..AuthConfig::default()
    })
    .unwrap();
    let key = EncodingKey::from_secret(SECRET);
    let exp = now() + 600;
    let iss = "https://keycloak.local/realms/shasta";
    let good = sign(
        Header::default(),
        &json!({"aud": "crus", "iss": iss, "exp": exp}),
        &key,
    );
    assert!(auth.verify_token(&good).is_ok());
    for claims in [
        json!({"aud": "bos", "iss": iss, "exp": exp}),
        json!({"iss": iss, "exp": exp}),
        json!({"aud": "crus", "iss": "https://elsewhere", "exp": exp}),
        json!({"aud": "crus", "exp": exp}),
    ] {
        let token = sign(Header::default(), &claims, &key);
        assert_eq!(
            auth.verify_token(&token),
            Err(AuthFailure::Rejected),
            "{claims}"
        );
    }
}

#[test]
fn es256_jwts_with_a_pem_public_key() {
    let auth = Auth::new(AuthConfig {
        jwt_public_key_pem: Some(EC_PUBLIC.as_bytes().to_vec()),
        ..AuthConfig::default()
    })
    .unwrap();
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let header = Header::new(Algorithm::ES256);
    let good = sign(header.clone(), &json!({"exp": now() + 600}), &key);
    let expired = sign(header, &json!({"exp": now() - 600}), &key);
    check_token_kinds(&auth, &good, Some(&expired));

    // An HS256 token "signed" with the public key (the classic key-confusion attack).
    let confused = sign(
        Header::default(),
        &json!({"exp": now() + 600}),
        &EncodingKey::from_secret(EC_PUBLIC.as_bytes()),
    );
    assert_eq!(auth.verify_token(&confused), Err(AuthFailure::Rejected));
}

#[test]
fn rs256_jwts_with_a_pem_public_key() {
    let auth = Auth::new(AuthConfig {
        jwt_public_key_pem: Some(RSA_PUBLIC.as_bytes().to_vec()),
        ..AuthConfig::default()
    })
    .unwrap();
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let header = Header::new(Algorithm::RS256);
    let good = sign(header.clone(), &json!({"exp": now() + 600}), &key);
    let expired = sign(header, &json!({"exp": now() - 600}), &key);
    check_token_kinds(&auth, &good, Some(&expired));
    // The EC key's tokens do not pass for the RSA key's.
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let other = sign(
        Header::new(Algorithm::ES256),
        &json!({"exp": now() + 600}),
        &ec,
    );
    assert_eq!(auth.verify_token(&other), Err(AuthFailure::Rejected));
}

#[test]
fn jwks_picks_the_key_by_kid() {
    let jwks = json!({"keys": [
        {"kty": "RSA", "use": "enc", "kid": "encryption", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "kid": "hmac", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
        {"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": EC_X, "y": EC_Y},
        {"kty": "weird", "kid": "unknown"}
    ]});
    let auth = Auth::new(AuthConfig {
        jwks_json: Some(jwks.to_string()),
        ..AuthConfig::default()
    })
    .unwrap();
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let with_kid = |kid: Option<&str>| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_string);
        header
    };
    let good = sign(with_kid(Some("ec-1")), &json!({"exp": now() + 600}), &ec);
    let expired = sign(with_kid(Some("ec-1")), &json!({"exp": now() - 600}), &ec);
    check_token_kinds(&auth, &good, Some(&expired));
    let without_kid = sign(with_kid(None), &json!({"exp": now() + 600}), &ec);
    assert!(auth.verify_token(&without_kid).is_ok());
    let wrong_kid = sign(with_kid(Some("hmac")), &json!({"exp": now() + 600}), &ec);
    assert_eq!(auth.verify_token(&wrong_kid), Err(AuthFailure::Rejected));

    let hmac = EncodingKey::from_secret(b"secret-secret-secret-secret-secret");
    let header = Header {
        kid: Some("hmac".into()),
        ..Header::default()
    };
    let token = sign(header, &json!({"exp": now() + 600}), &hmac);
    assert!(auth.verify_token(&token).is_ok());
}

#[test]
fn no_auth_accepts_everything() {
    let auth = Auth::new(AuthConfig {
        no_auth: true,
        ..AuthConfig::default()
    })
    .unwrap();
    assert_eq!(auth.authenticate(&HeaderMap::new()), Ok(Principal::Anyone));
    assert_eq!(
        auth.authenticate(&bearer("anything")),
        Ok(Principal::Anyone)
    );
    assert_eq!(Auth::disabled().verify_token("x"), Ok(Principal::Anyone));
}

#[test]
fn debug_output_hides_secrets() {
    let config = AuthConfig {
        tokens: vec!["super-secret-token".into()],
        jwt_hs256_secret: Some(b"super-secret-key".to_vec()),
        ..AuthConfig::default()
    };
    let auth = Auth::new(config.clone()).unwrap();
    for text in [format!("{config:?}"), format!("{auth:?}")] {
        assert!(!text.contains("super-secret"), "{text}");
    }
}
