//! CORS: a browser front end on an allowed origin may call the API; other origins may not.

use reqwest::{Method, StatusCode};

use crate::helpers::{TestApp, read, spawn_app, spawn_app_with};

const FRONT_END: &str = "https://crm.example.com";

async fn preflight(
    app: &TestApp,
    origin: &str,
    method: &str,
    headers: &str,
) -> crate::helpers::Response {
    read(
        app.client
            .request(Method::OPTIONS, format!("{}/api/v1/me", app.address))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn an_allowed_origin_gets_its_preflight_and_may_read_the_answers() {
    let app = spawn_app_with(|s| s.cors_allowed_origins = vec![FRONT_END.to_owned()]).await;
    let answer = preflight(
        &app,
        FRONT_END,
        "PATCH",
        "authorization, content-type, if-match, idempotency-key",
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{answer:?}");
    let header = |name: &str| answer.headers[name].to_str().unwrap().to_owned();
    assert_eq!(header("access-control-allow-origin"), FRONT_END);
    assert!(header("access-control-allow-methods").contains("PATCH"));
    for name in [
        "Authorization",
        "Content-Type",
        "If-Match",
        "Idempotency-Key",
    ] {
        assert!(
            header("access-control-allow-headers").contains(name),
            "{name}"
        );
    }
    assert!(
        answer
            .headers
            .get("access-control-allow-credentials")
            .is_none()
    );

    // The request itself: readable, with its ETag.
    let admin = app.admin().await;
    let response = app
        .client
        .get(format!("{}/api/v1/users/{}", app.address, admin.id))
        .header("origin", FRONT_END)
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], FRONT_END);
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    assert!(
        exposed.contains("ETag") && exposed.contains("Location"),
        "{exposed}"
    );
    assert!(
        headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("Origin"))
    );
    assert!(headers.contains_key("etag"));
}

#[tokio::test]
async fn other_origins_methods_and_headers_are_refused() {
    let app = spawn_app_with(|s| s.cors_allowed_origins = vec![FRONT_END.to_owned()]).await;
    let refused = preflight(&app, "https://evil.example", "GET", "authorization").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "cors_origin_refused");
    assert!(refused.headers.get("access-control-allow-origin").is_none());

    let header = preflight(&app, FRONT_END, "GET", "authorization, x-custom").await;
    assert_eq!(header.status, StatusCode::FORBIDDEN);
    assert_eq!(header.code(), "cors_header_refused");
    let method = preflight(&app, FRONT_END, "TRACE", "").await;
    assert_eq!(method.code(), "cors_method_refused");

    // A request from a refused origin is answered (the browser, not the server, hides it),
    // without the header that would let the page read it.
    let admin = app.admin().await;
    let response = app
        .client
        .get(format!("{}/api/v1/users/{}", app.address, admin.id))
        .header("origin", "https://evil.example")
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn without_configured_origins_no_browser_origin_may_call() {
    let app = spawn_app().await;
    let answer = preflight(&app, FRONT_END, "GET", "authorization").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    assert_eq!(answer.code(), "cors_origin_refused");
}
