//! Authentication as clients see it: 401 problems with a Bearer challenge.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use crus_http::AuthConfig;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::common::{PREFIXES, Setup, TestServer, session_body};

const PROTECTED: [(&str, &str); 6] = [
    ("GET", "/session"),
    ("POST", "/session"),
    ("GET", "/session/c926acf6-b5c6-411e-ba6c-ea0448cab2ee"),
    ("DELETE", "/session/c926acf6-b5c6-411e-ba6c-ea0448cab2ee"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
];

fn request(method: &str, path: &str, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(authorization) = authorization {
        builder = builder.header(header::AUTHORIZATION, authorization);
    }
    builder
        .body(Body::from(session_body("compute", 2).to_string()))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn protected_routes_need_a_bearer_token() {
    let server = TestServer::new();
    for prefix in PREFIXES {
        for (method, path) in PROTECTED {
            let path = format!("{prefix}{path}");
            for (authorization, challenge) in [
                (None, "Bearer"),
                (Some("Basic dXNlcjpwYXNz"), "Bearer"),
                (Some("Bearer"), "Bearer"),
                (
                    Some("Bearer wrong-token"),
                    r#"Bearer error="invalid_token""#,
                ),
                (Some("Bearer a.b.c"), r#"Bearer error="invalid_token""#),
            ] {
                let response = server.send(request(method, &path, authorization)).await;
                response.problem(StatusCode::UNAUTHORIZED);
                assert_eq!(
                    response.headers[header::WWW_AUTHENTICATE],
                    challenge,
                    "{method} {path} with {authorization:?}"
                );
            }
        }
        // Nothing was created by the refused POSTs.
        assert_eq!(
            server.get(&format!("{prefix}/session")).await.json(),
            json!([])
        );
    }
}

#[tokio::test(start_paused = true)]
async fn probes_need_no_token() {
    let server = TestServer::new();
    for prefix in PREFIXES {
        for path in ["/healthz", "/readyz"] {
            let response = server
                .send(request("GET", &format!("{prefix}{path}"), None))
                .await;
            assert_eq!(response.status, StatusCode::OK, "{path}");
            assert_eq!(response.content_type(), "application/json");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_valid_jwt_is_accepted() {
    let secret = b"a-shared-secret-of-at-least-32-bytes!";
    let server = TestServer::build(Setup {
        auth: AuthConfig {
            jwt_hs256_secret: Some(secret.to_vec()),
            audience: Some("crus".to_string()),
            ..AuthConfig::default()
        },
        ..Setup::default()
    });
    let now = jsonwebtoken::get_current_timestamp();
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let good = sign(json!({"sub": "admin", "aud": "crus", "exp": now + 600}));
    let expired = sign(json!({"sub": "admin", "aud": "crus", "exp": now - 3600}));
    let other_audience = sign(json!({"sub": "admin", "aud": "bos", "exp": now + 600}));
    let response = server
        .send(request("GET", "/session", Some(&format!("Bearer {good}"))))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    for token in [expired, other_audience] {
        let response = server
            .send(request("GET", "/session", Some(&format!("Bearer {token}"))))
            .await;
        response.problem(StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
    }
}

#[tokio::test(start_paused = true)]
async fn no_auth_accepts_every_request() {
    let server = TestServer::build(Setup {
        auth: AuthConfig {
            no_auth: true,
            ..AuthConfig::default()
        },
        ..Setup::default()
    });
    for prefix in PREFIXES {
        for authorization in [None, Some("Bearer whatever")] {
            let response = server
                .send(request("GET", &format!("{prefix}/session"), authorization))
                .await;
            assert_eq!(response.status, StatusCode::OK);
        }
    }
    let created = server.send(request("POST", "/session", None)).await;
    assert_eq!(created.status, StatusCode::CREATED);
}

#[tokio::test]
async fn jwts_wait_for_the_keys_of_a_jwks_url_and_readyz_tells() {
    use std::time::Duration;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    // The provider publishes one HS256 key; it is down at the first fetch.
    let secret = b"secret-secret-secret-secret-secret";
    let provider = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/certs"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .and(path("/certs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [
            {"kty": "oct", "kid": "key-1", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}
        ]})))
        .mount(&provider)
        .await;
    let mut jwks_url = crus_http::JwksUrlConfig::new(format!("{}/certs", provider.uri()));
    jwks_url.retry_interval = Duration::from_secs(2);
    let server = TestServer::build(Setup {
        auth: AuthConfig {
            jwks_url: Some(jwks_url),
            ..AuthConfig::default()
        },
        ..Setup::default()
    });
    let header = Header {
        kid: Some("key-1".into()),
        ..Header::default()
    };
    let token = jsonwebtoken::encode(
        &header,
        &json!({"sub": "admin", "exp": jsonwebtoken::get_current_timestamp() + 600}),
        &EncodingKey::from_secret(secret),
    )
    .unwrap();
    let authorization = format!("Bearer {token}");

    let ready = server.send(request("GET", "/readyz", None)).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["auth_keys"], "unavailable");
    server
        .send(request("GET", "/session", Some(&authorization)))
        .await
        .problem(StatusCode::UNAUTHORIZED);

    // Retried 2 s later, and then the keys are known.
    let mut keys = String::new();
    for _ in 0..100 {
        let ready = server.send(request("GET", "/readyz", None)).await;
        keys = ready.json()["auth_keys"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if keys == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(keys, "ok");
    let response = server
        .send(request("GET", "/session", Some(&authorization)))
        .await;
    assert_eq!(response.status, StatusCode::OK);
}
