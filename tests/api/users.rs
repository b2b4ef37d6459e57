//! Users: `/api/v1/organizations/{id}/users`, `/api/v1/users/{id}`, `/api/v1/me`.

use m365_sync::domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn org_admin_creates_lists_updates_and_deletes_users_of_their_organization() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let org_admin = app.account(Role::OrgAdmin, Some(org)).await;

    let created = app
        .post(
            &format!("/api/v1/organizations/{org}/users"),
            &org_admin.token,
            json!({"email": "Ada@Example.com", "password": PASSWORD, "display_name": "Ada"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(
        created.body["email"], "ada@example.com",
        "e-mails are normalised"
    );
    assert_eq!(created.body["role"], "user", "role defaults to user");
    assert_eq!(created.body["organization_id"], org.to_string());
    assert!(created.body.get("password").is_none() && created.body.get("password_hash").is_none());
    let id = created.body["id"].as_str().unwrap().to_owned();

    let list = app
        .get(
            &format!("/api/v1/organizations/{org}/users"),
            &org_admin.token,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);

    let updated = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &org_admin.token,
            json!({"role": "org_admin", "display_name": "Ada L."}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.body["role"], "org_admin");
    assert_eq!(updated.body["display_name"], "Ada L.");

    assert_eq!(
        app.delete(&format!("/api/v1/users/{id}"), &org_admin.token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/v1/users/{id}"), &org_admin.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn duplicate_emails_are_refused_with_409() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let body = json!({"email": "ada@example.com", "password": PASSWORD});
    let path = format!("/api/v1/organizations/{org}/users");
    assert_eq!(
        app.post(&path, &admin.token, body.clone()).await.status,
        StatusCode::CREATED
    );
    let duplicate = app
        .post(
            &path,
            &admin.token,
            json!({"email": "ADA@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.code(), "email_taken");
}

#[tokio::test]
async fn users_change_their_own_password_but_not_their_role() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let path = format!("/api/v1/users/{}", user.id);

    let changed = app
        .patch(
            &path,
            &user.token,
            json!({"password": "a brand new password"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    app.token(&user.email, "a brand new password").await;
    let old = app
        .request(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"email": user.email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);

    let promote = app
        .patch(&path, &user.token, json!({"role": "org_admin"}))
        .await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN);
    assert_eq!(promote.code(), "forbidden");
}

#[tokio::test]
async fn callers_cannot_delete_themselves_and_admins_cannot_demote_themselves() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let path = format!("/api/v1/users/{}", admin.id);
    let response = app.delete(&path, &admin.token).await;
    assert_eq!(response.status, StatusCode::CONFLICT);
    assert_eq!(response.code(), "cannot_delete_self");
    let org = app.organization(&admin, "Acme").await;
    let org_admin = app.account(Role::OrgAdmin, Some(org)).await;
    let response = app
        .patch(&path, &admin.token, json!({"role": "user"}))
        .await;
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an admin without organization cannot become a user"
    );
    let response = app
        .patch(
            &format!("/api/v1/users/{}", org_admin.id),
            &org_admin.token,
            json!({"display_name": "Me"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn invalid_users_are_refused_with_every_offending_field() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let response = app
        .post(
            &format!("/api/v1/organizations/{org}/users"),
            &admin.token,
            json!({"email": "nope", "password": "short"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.code(), "validation_failed");
    let pointers: Vec<&str> = response.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/email", "/password"]);
}
