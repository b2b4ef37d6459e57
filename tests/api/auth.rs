//! `POST /api/v1/auth/token` and bearer token checks, through the SDK (raw HTTP only to read
//! a whole body and to send a non-bearer `Authorization` header).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use m365_sync::domain::Role;
use m365_sync_sdk::types;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, problem, spawn_app};

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
