//! `POST /api/v1/auth/token` and bearer token checks.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use m365_sync::domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn token_is_issued_for_the_right_password() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let response = app
        .request(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"email": admin.email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["token_type"], "Bearer");
    assert_eq!(response.body["expires_in"], 3600);
    assert_eq!(response.headers.get("cache-control").unwrap(), "no-store");
    let me = app
        .get(
            "/api/v1/me",
            response.body["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], admin.email.as_str());
    assert_eq!(me.body["role"], "admin");
    assert!(me.body.get("password_hash").is_none());
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
            .request(
                Method::POST,
                "/api/v1/auth/token",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{email}");
        assert_eq!(response.code(), "invalid_credentials", "{email}");
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

    let response = app.request(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.code(), "missing_token");
    assert_eq!(response.headers.get("www-authenticate").unwrap(), "Bearer");

    for (token, case) in [
        ("garbage", "garbage"),
        (forged.as_str(), "forged"),
        (expired.as_str(), "expired"),
    ] {
        let response = app.get("/api/v1/me", token).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(response.code(), "invalid_token", "{case}");
    }

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
    assert_eq!(
        app.get("/api/v1/me", &user.token).await.status,
        StatusCode::OK
    );
    let deleted = app
        .delete(&format!("/api/v1/users/{}", user.id), &admin.token)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let response = app.get("/api/v1/me", &user.token).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.code(), "invalid_token");
}
