//! `/api/v1/organizations`, through the SDK.

use std::num::NonZeroU64;

use m365_sync::domain::Role;
use m365_sync_sdk::types;
use reqwest::StatusCode;

use crate::helpers::{etag, problem, spawn_app, to_json};

fn rename(name: &str) -> types::UpdateOrganization {
    types::UpdateOrganization {
        name: Some(name.parse().unwrap()),
    }
}

#[tokio::test]
async fn create_read_rename_and_delete_an_organization() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let api = app.sdk(&admin.token);

    let created = api
        .create_organization(
            None,
            &types::CreateOrganization {
                name: "Acme".parse().unwrap(),
            },
        )
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.name, "Acme");
    assert_eq!(etag(&created), "\"1\"");
    let id = created.id;
    assert_eq!(id.get_version_num(), 7, "ids are UUID v7");

    let read = api.get_organization(&id).await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(to_json(&read.into_inner()), to_json(&created.into_inner()));

    let renamed = api
        .update_organization(&id, None, &rename("Acme Corp"))
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    assert_eq!(renamed.name, "Acme Corp");
    assert_eq!(etag(&renamed), "\"2\"");

    let deleted = api.delete_organization(&id, None).await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    problem(api.get_organization(&id).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn names_are_unique() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let api = app.sdk(&admin.token);
    app.organization(&admin, "Acme").await;
    let other = app.organization(&admin, "Globex").await;
    let duplicate = api
        .create_organization(
            None,
            &types::CreateOrganization {
                name: "Acme".parse().unwrap(),
            },
        )
        .await;
    assert_eq!(
        problem(duplicate, StatusCode::CONFLICT).code,
        "organization_name_taken"
    );
    let renamed = api.update_organization(&other, None, &rename("Acme")).await;
    assert_eq!(
        problem(renamed, StatusCode::CONFLICT).code,
        "organization_name_taken"
    );
}

#[tokio::test]
async fn an_organization_with_users_cannot_be_deleted() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    app.account(Role::User, Some(org)).await;
    let response = app.sdk(&admin.token).delete_organization(&org, None).await;
    assert_eq!(
        problem(response, StatusCode::CONFLICT).code,
        "organization_not_empty"
    );
}

#[tokio::test]
async fn stale_if_match_is_refused_with_412() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let api = app.sdk(&admin.token);
    let org = app.organization(&admin, "Acme").await;
    let first = api
        .update_organization(&org, Some("\"1\""), &rename("B"))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let stale = api
        .update_organization(&org, Some("\"1\""), &rename("C"))
        .await;
    assert_eq!(
        problem(stale, StatusCode::PRECONDITION_FAILED).code,
        "precondition_failed"
    );
    let delete = api.delete_organization(&org, Some("\"1\"")).await;
    problem(delete, StatusCode::PRECONDITION_FAILED);
    assert_eq!(api.get_organization(&org).await.unwrap().name, "B");
}

#[tokio::test]
async fn lists_page_through_every_organization_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let api = app.sdk(&admin.token);
    let mut expected = Vec::new();
    for name in ["A", "B", "C", "D", "E"] {
        expected.push(app.organization(&admin, name).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<types::ListOrganizationsCursor> = None;
    loop {
        let page = api
            .list_organizations(cursor.as_ref(), NonZeroU64::new(2))
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.into_inner();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|i| i.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next.parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}
