//! Tests of the transport against wiremock: tokens, retries, problem bodies.

use std::time::Duration;

use crus_core::error::Error;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{ServiceClient, ServiceConfig, TokenSource};

fn config(server: &MockServer, token: TokenSource) -> ServiceConfig {
    let mut config = ServiceConfig::new(format!("{}/", server.uri())).with_token(token);
    config.retry_base_delay = Duration::from_millis(1);
    config
}

#[tokio::test]
async fn sends_a_static_token_and_a_file_token_read_at_each_call() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/a"))
        .and(header("authorization", "Bearer static-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    let client = ServiceClient::new(
        "hsm",
        &config(&server, TokenSource::Static("static-token".into())),
    )
    .unwrap();
    client.get_json::<Value>("/a", &[]).await.unwrap();

    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("token");
    std::fs::write(&file, "first\n").unwrap();
    for token in ["first", "second"] {
        Mock::given(method("GET"))
            .and(path("/b"))
            .and(header("authorization", format!("Bearer {token}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(1)
            .mount(&server)
            .await;
    }
    let client =
        ServiceClient::new("hsm", &config(&server, TokenSource::File(file.clone()))).unwrap();
    client.get_json::<Value>("/b", &[]).await.unwrap();
    std::fs::write(&file, "second").unwrap();
    client.get_json::<Value>("/b", &[]).await.unwrap();
}

#[tokio::test]
async fn oauth2_token_is_fetched_once_and_again_before_expiry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=crus"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "t1", "expires_in": 3600})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/a"))
        .and(header("authorization", "Bearer t1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(2)
        .mount(&server)
        .await;
    let source = TokenSource::OAuth2ClientCredentials {
        token_url: format!("{}/token", server.uri()),
        client_id: "crus".into(),
        client_secret: "secret".into(),
    };
    let client = ServiceClient::new("bos", &config(&server, source.clone())).unwrap();
    client.get_json::<Value>("/a", &[]).await.unwrap();
    client.get_json::<Value>("/a", &[]).await.unwrap();

    // A lifetime within the refresh margin is refreshed at every call.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "t2", "expires_in": 10})),
        )
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/a"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let source = TokenSource::OAuth2ClientCredentials {
        token_url: format!("{}/token", server.uri()),
        client_id: "crus".into(),
        client_secret: "secret".into(),
    };
    let client = ServiceClient::new("bos", &config(&server, source)).unwrap();
    client.get_json::<Value>("/a", &[]).await.unwrap();
    client.get_json::<Value>("/a", &[]).await.unwrap();
}

#[tokio::test]
async fn rejected_credentials_are_invalid_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    let source = TokenSource::OAuth2ClientCredentials {
        token_url: format!("{}/token", server.uri()),
        client_id: "crus".into(),
        client_secret: "wrong".into(),
    };
    let client = ServiceClient::new("bos", &config(&server, source)).unwrap();
    let error = Error::from(client.get_json::<Value>("/a", &[]).await.unwrap_err());
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    assert!(!format!("{error:?}").contains("wrong"), "{error:?}");
}

#[tokio::test]
async fn error_answers_keep_the_problem_and_the_status_decides_retries() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/gone"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"title": "Not Found", "detail": "No such group: x"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/bad"))
        .respond_with(ResponseTemplate::new(422).set_body_string("<html>nope</html>"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/busy"))
        .respond_with(ResponseTemplate::new(500))
        .expect(4)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/forbidden"))
        .respond_with(ResponseTemplate::new(403))
        .expect(1)
        .mount(&server)
        .await;
    let client = ServiceClient::new("hsm", &config(&server, TokenSource::None)).unwrap();
    let error = client.delete("/gone").await.unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert_eq!(error.detail(), "No such group: x");
    assert!(matches!(Error::from(error), Error::NotFound { .. }));

    let error = client
        .post_json::<_, Value>("/bad", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(error.detail(), "<html>nope</html>");
    assert!(matches!(Error::from(error), Error::Invalid { .. }));

    let error = Error::from(client.get_json::<Value>("/busy", &[]).await.unwrap_err());
    assert!(
        matches!(error, Error::Unavailable { backend: "hsm", .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("GET /busy answered 500"),
        "{error}"
    );

    let error = Error::from(
        client
            .get_json::<Value>("/forbidden", &[])
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(error, Error::Other { backend: "hsm", .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("check the token"), "{error}");
}

#[test]
fn an_unreadable_ca_file_is_invalid() {
    let mut config = ServiceConfig::new("https://api-gw/apis/smd");
    config.ca_file = Some("/nonexistent/ca.pem".into());
    let error = ServiceClient::new("hsm", &config).unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
}

#[test]
fn token_secrets_do_not_show_in_debug_output() {
    let source = TokenSource::OAuth2ClientCredentials {
        token_url: "https://x/token".into(),
        client_id: "crus".into(),
        client_secret: "hunter2".into(),
    };
    assert!(!format!("{source:?}").contains("hunter2"));
    assert!(!format!("{:?}", TokenSource::Static("hunter2".into())).contains("hunter2"));
}
