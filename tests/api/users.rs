//! Users: `/api/v1/organizations/{id}/users`, `/api/v1/users/{id}`, `/api/v1/me`.
//!
//! Calls go through the SDK, except a creation whose whole body is read (to prove no password
//! member is returned) and invalid bodies the SDK refuses to build.

use m365_sync::domain::Role;
use m365_sync_sdk::types;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, problem, spawn_app};

fn new_user(email: &str) -> types::CreateUser {
    types::CreateUser {
        email: email.parse().unwrap(),
        password: PASSWORD.parse().unwrap(),
        display_name: None,
        role: None,
    }
}

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
    let id: uuid::Uuid = created.body["id"].as_str().unwrap().parse().unwrap();
    let api = app.sdk(&org_admin.token);

    let list = api.list_users(&org, None, None).await.unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(list.items.len(), 2);

    let patch = types::UpdateUser {
        role: Some(types::Role::OrgAdmin),
        display_name: Some("Ada L.".parse().unwrap()),
        ..Default::default()
    };
    let updated = api.update_user(&id, None, &patch).await.unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    assert_eq!(updated.role, types::Role::OrgAdmin);
    assert_eq!(updated.display_name, "Ada L.");

    let deleted = api.delete_user(&id, None).await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    problem(api.get_user(&id).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicate_emails_are_refused_with_409() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let api = app.sdk(&admin.token);
    let created = api
        .create_user(&org, &new_user("ada@example.com"))
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let duplicate = api.create_user(&org, &new_user("ADA@example.com")).await;
    assert_eq!(problem(duplicate, StatusCode::CONFLICT).code, "email_taken");
}

#[tokio::test]
async fn users_change_their_own_password_but_not_their_role() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let api = app.sdk(&user.token);

    let password = types::UpdateUser {
        password: Some("a brand new password".parse().unwrap()),
        ..Default::default()
    };
    let changed = api.update_user(&user.id, None, &password).await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    app.token(&user.email, "a brand new password").await;
    let old = app
        .sdk_anonymous()
        .create_token(&types::TokenRequest {
            email: user.email.clone(),
            password: PASSWORD.to_owned(),
        })
        .await;
    problem(old, StatusCode::UNAUTHORIZED);

    let promote = types::UpdateUser {
        role: Some(types::Role::OrgAdmin),
        ..Default::default()
    };
    let promote = api.update_user(&user.id, None, &promote).await;
    assert_eq!(problem(promote, StatusCode::FORBIDDEN).code, "forbidden");
}

#[tokio::test]
async fn callers_cannot_delete_themselves_and_admins_cannot_demote_themselves() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let api = app.sdk(&admin.token);
    let response = api.delete_user(&admin.id, None).await;
    assert_eq!(
        problem(response, StatusCode::CONFLICT).code,
        "cannot_delete_self"
    );
    let org = app.organization(&admin, "Acme").await;
    let org_admin = app.account(Role::OrgAdmin, Some(org)).await;
    let demote = types::UpdateUser {
        role: Some(types::Role::User),
        ..Default::default()
    };
    let response = api.update_user(&admin.id, None, &demote).await;
    // An admin without organization cannot become a user.
    problem(response, StatusCode::UNPROCESSABLE_ENTITY);
    let rename = types::UpdateUser {
        display_name: Some("Me".parse().unwrap()),
        ..Default::default()
    };
    let response = app
        .sdk(&org_admin.token)
        .update_user(&org_admin.id, None, &rename)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn invalid_users_are_refused_with_every_offending_field() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    // A body the SDK refuses to build: the service must refuse it too.
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
