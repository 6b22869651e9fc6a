//! The dashboard's static files: public (no token), typed, revalidated, and
//! `/` redirects to them.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use crate::common::TestServer;

async fn get_without_token(server: &TestServer, path: &str) -> crate::common::TestResponse {
    server
        .send(Request::get(path).body(Body::empty()).unwrap())
        .await
}

#[tokio::test(start_paused = true)]
async fn the_dashboard_is_served_without_a_token_and_the_root_redirects_to_it() {
    let server = TestServer::new();

    let page = get_without_token(&server, "/ui/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    let html = std::str::from_utf8(&page.body).unwrap();
    assert!(html.contains("<title>crus dashboard</title>"), "{html}");
    assert!(html.contains(r#"src="app.js""#));
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-cache");
    assert!(
        page.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );

    for path in ["/", "/ui"] {
        let redirect = get_without_token(&server, path).await;
        assert_eq!(redirect.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(redirect.headers[header::LOCATION], "/ui/", "{path}");
    }

    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("grid.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ] {
        let asset = get_without_token(&server, &format!("/ui/{file}")).await;
        assert_eq!(asset.status, StatusCode::OK, "{file}");
        assert_eq!(asset.content_type(), content_type, "{file}");
        assert!(!asset.body.is_empty());
    }

    // A browser holding this version is told so, without the body.
    let etag = page.headers[header::ETAG].clone();
    let again = server
        .send(
            Request::get("/ui/")
                .header(header::IF_NONE_MATCH, etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());

    // Unknown files are 404s, and the API itself still wants a token.
    get_without_token(&server, "/ui/secrets.txt")
        .await
        .problem(StatusCode::NOT_FOUND);
    get_without_token(&server, "/session")
        .await
        .problem(StatusCode::UNAUTHORIZED);
}
