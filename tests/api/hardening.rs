//! Hardening at the edge: control characters refused alike on every database, slow bodies
//! timed out, connections bounded per client address, log lines that cannot be forged through
//! the OAuth callback, security headers, and problem bodies on every error.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{MailboxUser, TestApp, logs, read, spawn_app, spawn_app_with};

/// Sends `request` on a new connection and reads until the server closes it or `limit`
/// passes; returns what came back.
async fn raw_exchange(app: &TestApp, request: &[u8], limit: Duration) -> String {
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    read_until_closed(&mut stream, limit).await
}

async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> String {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn control_characters_in_any_text_are_422_on_every_database_and_line_breaks_only_where_text_spans_lines()
 {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let tasks = format!("/api/v1/users/{}/tasks", admin.id);
    let events = format!("/api/v1/users/{}/calendar-events", admin.id);
    let event = json!({
        "title": "Review",
        "start": {"date_time": "2026-03-30T09:00:00", "time_zone": "Europe/Berlin"},
        "end": {"date_time": "2026-03-30T10:00:00", "time_zone": "Europe/Berlin"},
    });
    let with = |base: &Value, member: &str, value: &str| {
        let mut body = base.clone();
        body[member] = json!(value);
        body
    };

    // (path, body, pointer of the refused text)
    let refused: Vec<(String, Value, &str)> = vec![
        (
            "/api/v1/organizations".into(),
            json!({"name": "Acme\u{0}"}),
            "/name",
        ),
        (
            format!("/api/v1/organizations/{org}/users"),
            json!({"email": "ada@example.com", "password": "ada password \u{0} 1"}),
            "/password",
        ),
        (
            format!("/api/v1/organizations/{org}/users"),
            json!({"email": "ada@example.com", "password": "ada password 1", "display_name": "Ada\u{1b}[31m"}),
            "/display_name",
        ),
        (tasks.clone(), json!({"title": "Call\u{0} Ada"}), "/title"),
        (tasks.clone(), json!({"title": "Call\tAda"}), "/title"),
        (
            tasks.clone(),
            json!({"title": "Call Ada", "description": "first\u{0}"}),
            "/description",
        ),
        (
            tasks.clone(),
            json!({"title": "Call Ada", "categories": ["Red", "Blue\u{85}"]}),
            "/categories/1",
        ),
        (
            events.clone(),
            with(&event, "location", "Room\n1"),
            "/location",
        ),
        (
            events.clone(),
            with(&event, "description_html", "<p>a\u{7f}</p>"),
            "/description_html",
        ),
        (
            events.clone(),
            {
                let mut body = event.clone();
                body["start"]["time_zone"] = json!("Europe/Berlin\u{0}");
                body
            },
            "/start/time_zone",
        ),
    ];
    for (path, body, pointer) in &refused {
        let response = app.post(path, &admin.token, body.clone()).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}: {response:?}\nerrors logged: {}",
            logs::errors()
        );
        assert_eq!(response.code(), "validation_failed", "{body}");
        let pointers: Vec<&str> = response.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert!(pointers.contains(pointer), "{body}: {pointers:?}");
    }
    let patched = app
        .patch(
            &format!("/api/v1/users/{}", admin.id),
            &admin.token,
            json!({"display_name": "Admin\u{0}"}),
        )
        .await;
    assert_eq!(
        patched.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{patched:?}"
    );

    // Multi-line text keeps its tabs and line breaks.
    let task = app
        .post(
            &tasks,
            &admin.token,
            json!({"title": "Call Ada", "description": "first\r\nsecond\tcell"}),
        )
        .await;
    assert_eq!(task.status, StatusCode::CREATED, "{task:?}");
    assert_eq!(task.body["description"], "first\r\nsecond\tcell");
    let created = app
        .post(
            &events,
            &admin.token,
            with(&event, "description", "one\ntwo"),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");

    // Query strings too.
    for query in ["cursor=%00", "limit=5&cursor=a%0Ab", "colour%00=red"] {
        let response = app
            .get(&format!("/api/v1/organizations?{query}"), &admin.token)
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {response:?}"
        );
        assert_eq!(response.code(), "validation_failed", "{query}");
    }

    // A sign-in with one is a wrong sign-in, like any other.
    for (email, password) in [
        (
            format!("{}\u{0}", admin.email),
            crate::helpers::PASSWORD.to_owned(),
        ),
        (
            admin.email.clone(),
            format!("{}\u{0}", crate::helpers::PASSWORD),
        ),
    ] {
        let response = app
            .request(
                reqwest::Method::POST,
                "/api/v1/auth/token",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{response:?}");
        assert_eq!(response.code(), "invalid_credentials");
    }
    // PostgreSQL's refusal of U+0000 ("invalid byte sequence for encoding \"UTF8\": 0x00")
    // never happens: nothing holding one reaches the database.
    assert!(
        !logs::errors().contains("0x00"),
        "no database error: {}",
        logs::errors()
    );
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_answers_408_and_the_connection_is_closed() {
    let app = spawn_app_with(|s| s.body_timeout_ms = 300).await;
    let admin = app.admin().await;
    let head = format!(
        "POST /api/v1/organizations HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\": ",
        admin.token
    );
    let started = Instant::now();
    let answer = raw_exchange(&app, head.as_bytes(), Duration::from_secs(10)).await;
    let took = started.elapsed();

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    assert!(
        took < Duration::from_secs(5),
        "answered and closed within the body timeout, not the keep-alive: {took:?}"
    );
}

#[tokio::test]
async fn connections_over_the_bound_of_one_address_answer_429_and_a_freed_slot_serves_again() {
    let app = spawn_app_with(|s| s.max_connections_per_ip = 2).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let request = b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    let first = TcpStream::connect(&address).await.unwrap();
    let second = TcpStream::connect(&address).await.unwrap();
    // Let the server register both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let third = raw_exchange(&app, request, Duration::from_secs(5)).await;
    assert!(third.starts_with("HTTP/1.1 429"), "{third}");
    assert!(
        third.contains("\"code\":\"too_many_connections\""),
        "{third}"
    );

    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = raw_exchange(&app, request, Duration::from_secs(5)).await;
    assert!(after.starts_with("HTTP/1.1 200"), "{after}");
    drop(second);
}

/// Starts Connect for `who` and returns the `state` Microsoft would send back.
async fn issued_state(app: &TestApp, who: &MailboxUser) -> String {
    let started = app
        .sdk(&who.user.token)
        .start_connection(&who.user.id, None)
        .await
        .unwrap();
    let url = Url::parse(&started.authorization_url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test]
async fn the_callback_takes_only_oauth_error_codes_so_no_log_line_can_be_forged() {
    let app = spawn_app().await;
    let marker = format!("forged-{}", uuid::Uuid::new_v4().simple());
    let callback = format!("{}/api/v1/microsoft/oauth/callback", app.address);
    let who = app.mailbox_user().await;

    // A line break or an ANSI escape in `error`: refused before anything is looked up.
    for error in [
        format!("access_denied%0A2026-12-02T00:00:00Z%20ERROR%20{marker}"),
        format!("access_denied%1B%5B2K{marker}"),
    ] {
        let state = issued_state(&app, &who).await;
        let response = read(
            app.client
                .get(format!("{callback}?state={state}&error={error}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{response:?}"
        );
    }
    // Not an OAuth error code: the page says `invalid_request`, never the text sent.
    let state = issued_state(&app, &who).await;
    let page = read(
        app.client
            .get(format!(
                "{callback}?state={state}&error=access_denied%20{marker}%3Cb%3E"
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let html = page.body.as_str().unwrap();
    assert!(
        html.contains("invalid_request") && !html.contains(&marker),
        "{html}"
    );
    // Microsoft's own shape is taken, its multi-line description too.
    let state = issued_state(&app, &who).await;
    let page = read(
        app.client
            .get(format!(
                "{callback}?state={state}&error=access_denied&error_description=Cancelled.%0D%0ATrace%20ID:%201"
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.as_str().unwrap().contains("access_denied"));

    let text = logs::text();
    assert!(
        !text.contains(&marker),
        "no untrusted value is logged: {}",
        text.lines()
            .filter(|l| l.contains(&marker))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_the_callback_allows_only_its_own_script() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let me = app.get("/api/v1/me", &admin.token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.headers["cache-control"], "no-store", "personal data");
    let not_found = app.get("/api/v1/nope", &admin.token).await;
    for (what, headers) in [
        ("an API response", &me.headers),
        ("an API error", &not_found.headers),
        (
            "a probe",
            &app.request(reqwest::Method::GET, "/healthz", None, None)
                .await
                .headers,
        ),
    ] {
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(headers["x-frame-options"], "DENY", "{what}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    }

    let ui = app
        .client
        .get(format!("{}/swagger-ui/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), StatusCode::OK);
    let csp = ui.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    assert_eq!(ui.headers()["x-content-type-options"], "nosniff");

    // The callback page: its inline script runs by its hash, nothing else does.
    let page = read(
        app.client
            .get(format!(
                "{}/api/v1/microsoft/oauth/callback?state=unknown&code=x",
                app.address
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let html = page.body.as_str().unwrap();
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let scripts: Vec<&str> = html
        .split("<script>")
        .skip(1)
        .map(|rest| rest.split("</script>").next().unwrap())
        .collect();
    assert_eq!(scripts.len(), 1, "one inline script: {html}");
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(scripts[0]));
    assert!(
        csp.contains(&format!("script-src 'sha256-{hash}'")),
        "{csp} allows the page's script"
    );
    assert!(html.contains("window.opener.postMessage"), "{html}");
}

#[tokio::test]
async fn errors_without_a_body_of_their_own_answer_a_problem() {
    let app = spawn_app().await;
    let response = app
        .request(
            reqwest::Method::GET,
            "/swagger-ui/no-such-file.js",
            None,
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::NOT_FOUND, "{response:?}");
    assert_eq!(response.code(), "not_found");
    assert_eq!(response.body["status"], 404);
}
