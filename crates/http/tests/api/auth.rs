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
