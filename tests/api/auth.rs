//! `POST /api/v1/auth/token`, `POST /api/v1/auth/logout` and bearer token checks, through the
//! SDK (raw HTTP only to read a whole body, to send a non-bearer `Authorization` header and to
//! read `Retry-After`).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use m365_sync::domain::Role;
use m365_sync_sdk::types;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, problem, spawn_app, spawn_app_with};

fn credentials(email: &str, password: &str) -> types::TokenRequest {
    types::TokenRequest {
        email: email.to_owned(),
        password: password.to_owned(),
    }
}

#[tokio::test]
async fn token_is_issued_for_the_right_password() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let response = app
        .sdk_anonymous()
        .create_token(&credentials(&admin.email, PASSWORD))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    let token = response.into_inner();
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.expires_in, 3600);
    let me = app.sdk(&token.access_token).get_me().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.email, admin.email);
    assert_eq!(me.role, types::Role::Admin);
    // The whole body, beyond what the SDK's type reads.
    let raw = app.get("/api/v1/me", &token.access_token).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert!(raw.body.get("password_hash").is_none());
}

#[tokio::test]
async fn wrong_password_and_unknown_email_answer_the_same_401() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for (email, password) in [
        (admin.email.as_str(), "wrong password"),
        ("nobody@example.com", PASSWORD),
    ] {
        let response = app
            .sdk_anonymous()
            .create_token(&credentials(email, password))
            .await;
        let problem = problem(response, StatusCode::UNAUTHORIZED);
        assert_eq!(problem.code, "invalid_credentials", "{email}");
    }
}

#[tokio::test]
async fn missing_malformed_forged_and_expired_tokens_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| json!({"sub": admin.id, "iat": now, "exp": exp, "iss": "m365-sync", "aud": "m365-sync-api"});
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(now + 600),
        &EncodingKey::from_secret(b"not-the-server-secret-not-the-server-secret"),
    )
    .unwrap();
    let expired = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(now - 600),
        &EncodingKey::from_secret(b"test-jwt-secret-test-jwt-secret-123456"),
    )
    .unwrap();

    let response = problem(app.sdk_anonymous().get_me().await, StatusCode::UNAUTHORIZED);
    assert_eq!(response.code, "missing_token");
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        "Bearer"
    );

    for (token, case) in [
        ("garbage", "garbage"),
        (forged.as_str(), "forged"),
        (expired.as_str(), "expired"),
    ] {
        let response = app.sdk(token).get_me().await;
        let problem = problem(response, StatusCode::UNAUTHORIZED);
        assert_eq!(problem.code, "invalid_token", "{case}");
    }

    // Not a bearer token: a header the SDK does not send.
    let basic = app
        .client
        .get(format!("{}/api/v1/me", app.address))
        .header("authorization", "Basic YWRtaW46cGFzcw==")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_deleted_users_token_stops_working_at_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let api = app.sdk(&user.token);
    assert_eq!(api.get_me().await.unwrap().status(), StatusCode::OK);
    let deleted = app
        .sdk(&admin.token)
        .delete_user(&user.id, None)
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let response = problem(api.get_me().await, StatusCode::UNAUTHORIZED);
    assert_eq!(response.code, "invalid_token");
}

/// A token signed with the test app's key.
fn signed(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(b"test-jwt-secret-test-jwt-secret-123456"),
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_issued_in_the_future_not_yet_valid_or_living_too_long_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let now = chrono::Utc::now().timestamp();
    let base = json!({"sub": admin.id, "iat": now, "exp": now + 600, "iss": "m365-sync", "aud": "m365-sync-api"});
    let with = |member: &str, value: i64| {
        let mut claims = base.clone();
        claims[member] = json!(value);
        signed(&claims)
    };
    assert_eq!(
        app.sdk(&signed(&base)).get_me().await.unwrap().status(),
        StatusCode::OK,
        "a token of the configured lifetime is accepted"
    );
    for (token, case) in [
        (with("iat", now + 3600), "issued an hour from now"),
        (
            with("nbf", now + 600),
            "not valid before ten minutes from now",
        ),
        // The app issues tokens for an hour.
        (with("exp", now + 30 * 86_400), "living 30 days"),
    ] {
        let response = problem(app.sdk(&token).get_me().await, StatusCode::UNAUTHORIZED);
        assert_eq!(response.code, "invalid_token", "{case}");
    }
}

#[tokio::test]
async fn logout_revokes_every_token_of_the_caller_and_only_theirs() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let other_device = app.token(&user.email, PASSWORD).await;
    let api = app.sdk(&user.token);

    let response = api.logout().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    for token in [&user.token, &other_device] {
        let response = problem(app.sdk(token).get_me().await, StatusCode::UNAUTHORIZED);
        assert_eq!(response.code, "invalid_token");
    }
    let again = app.token(&user.email, PASSWORD).await;
    assert_eq!(
        app.sdk(&again).get_me().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        app.sdk(&admin.token).get_me().await.unwrap().status(),
        StatusCode::OK,
        "another user's tokens stay valid"
    );
}

/// A sign-in as raw HTTP, to read `Retry-After`.
async fn sign_in(
    app: &crate::helpers::TestApp,
    email: &str,
    password: &str,
) -> crate::helpers::Response {
    app.request(
        reqwest::Method::POST,
        "/api/v1/auth/token",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

#[track_caller]
fn assert_too_many(response: &crate::helpers::Response, window: u64, case: &str) {
    assert_eq!(
        response.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{case}: {response:?}"
    );
    assert_eq!(response.code(), "too_many_attempts", "{case}");
    let wait: u64 = response.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=window).contains(&wait), "{case}: Retry-After {wait}");
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_account_and_per_address() {
    let app = spawn_app_with(|s| {
        s.login.max_failures_per_account = 3;
        s.login.max_failures_per_address = 7;
        s.login.failure_window_seconds = 60;
    })
    .await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let ada = app.account(Role::User, Some(org)).await;
    let bob = app.account(Role::User, Some(org)).await;

    // Per account: three wrong passwords, then even the right one waits.
    for _ in 0..3 {
        let response = sign_in(&app, &ada.email, "not the password at all").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{response:?}");
    }
    let locked = sign_in(&app, &ada.email, PASSWORD).await;
    assert_too_many(&locked, 60, "the account's limit");
    let differently_typed = sign_in(&app, &ada.email.to_uppercase(), PASSWORD).await;
    assert_too_many(
        &differently_typed,
        60,
        "the same account, typed in capitals",
    );
    // An unknown address is counted the same way: a 429 says nothing about existence.
    for _ in 0..3 {
        sign_in(&app, "nobody@example.com", PASSWORD).await;
    }
    let unknown = sign_in(&app, "nobody@example.com", PASSWORD).await;
    assert_too_many(&unknown, 60, "an unknown account");
    // Other accounts are not locked by ada's failures...
    assert_eq!(
        sign_in(&app, &bob.email, PASSWORD).await.status,
        StatusCode::OK
    );
    // ...until this address has used up its own limit (6 failures so far, and one more).
    let response = sign_in(&app, &bob.email, "not bob's password either").await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let blocked = sign_in(&app, &bob.email, PASSWORD).await;
    assert_too_many(&blocked, 60, "the address's limit");
    // Tokens already issued keep working.
    assert_eq!(
        app.sdk(&bob.token).get_me().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_successful_sign_in_clears_the_accounts_failures() {
    let app = spawn_app_with(|s| {
        s.login.max_failures_per_account = 2;
        s.login.password_hashing_concurrency = 1;
    })
    .await;
    let admin = app.admin().await;
    for _ in 0..3 {
        assert_eq!(
            sign_in(&app, &admin.email, "a wrong password here")
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            sign_in(&app, &admin.email, PASSWORD).await.status,
            StatusCode::OK
        );
    }
    // Sign-ins wait for the one hashing permit, and all get their answer.
    let attempts = (0..6).map(|i| {
        let password = if i % 2 == 0 { PASSWORD } else { "wrong" };
        sign_in(&app, &admin.email, password)
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert!(
        statuses.iter().all(|s| [
            StatusCode::OK,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
        .contains(s)),
        "{statuses:?}"
    );
}

/// A failed sign-in sent through a proxy for `client`.
async fn sign_in_via(
    app: &crate::helpers::TestApp,
    forwarded_for: &str,
    email: &str,
    password: &str,
) -> StatusCode {
    app.client
        .post(format!("{}/api/v1/auth/token", app.address))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_address_has_its_own_limit() {
    let app = spawn_app_with(|s| {
        s.login.max_failures_per_address = 2;
        s.login.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let admin = app.admin().await;
    // The proxy appends the address it saw; what the client wrote before it is not believed.
    for spoofed in ["198.51.100.1", "198.51.100.2"] {
        let status = sign_in_via(
            &app,
            &format!("{spoofed}, 203.0.113.7"),
            "nobody@example.com",
            "wrong",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let blocked = sign_in_via(&app, "203.0.113.7", &admin.email, PASSWORD).await;
    assert_eq!(
        blocked,
        StatusCode::TOO_MANY_REQUESTS,
        "one client, two failures"
    );
    let other = sign_in_via(&app, "203.0.113.8", &admin.email, PASSWORD).await;
    assert_eq!(
        other,
        StatusCode::OK,
        "another client behind the same proxy"
    );
}

#[tokio::test]
async fn forwarded_addresses_are_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_app_with(|s| s.login.max_failures_per_address = 2).await;
    let admin = app.admin().await;
    for client in ["203.0.113.1", "203.0.113.2"] {
        let status = sign_in_via(&app, client, "nobody@example.com", "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = sign_in_via(&app, "203.0.113.3", &admin.email, PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a client cannot choose its address by writing a header"
    );
}
