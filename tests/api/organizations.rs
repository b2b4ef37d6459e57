//! `/api/v1/organizations`.

use m365_sync::domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn create_read_rename_and_delete_an_organization() {
    let app = spawn_app().await;
    let admin = app.admin().await;

    let created = app
        .post(
            "/api/v1/organizations",
            &admin.token,
            json!({"name": "Acme"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["name"], "Acme");
    assert_eq!(created.etag(), "\"1\"");
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(id).unwrap().get_version_num(),
        7,
        "ids are UUID v7"
    );

    let path = format!("/api/v1/organizations/{id}");
    let read = app.get(&path, &admin.token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, created.body);

    let renamed = app
        .patch(&path, &admin.token, json!({"name": "Acme Corp"}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.body["name"], "Acme Corp");
    assert_eq!(renamed.etag(), "\"2\"");

    assert_eq!(
        app.delete(&path, &admin.token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&path, &admin.token).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn names_are_unique() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.organization(&admin, "Acme").await;
    let other = app.organization(&admin, "Globex").await;
    let duplicate = app
        .post(
            "/api/v1/organizations",
            &admin.token,
            json!({"name": "Acme"}),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.code(), "organization_name_taken");
    let rename = app
        .patch(
            &format!("/api/v1/organizations/{other}"),
            &admin.token,
            json!({"name": "Acme"}),
        )
        .await;
    assert_eq!(rename.status, StatusCode::CONFLICT);
    assert_eq!(rename.code(), "organization_name_taken");
}

#[tokio::test]
async fn an_organization_with_users_cannot_be_deleted() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    app.account(Role::User, Some(org)).await;
    let response = app
        .delete(&format!("/api/v1/organizations/{org}"), &admin.token)
        .await;
    assert_eq!(response.status, StatusCode::CONFLICT);
    assert_eq!(response.code(), "organization_not_empty");
}

#[tokio::test]
async fn stale_if_match_is_refused_with_412() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let path = format!("/api/v1/organizations/{org}");
    let url = format!("{}{path}", app.address);
    let first = app
        .client
        .patch(&url)
        .bearer_auth(&admin.token)
        .header("if-match", "\"1\"")
        .json(&json!({"name": "B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let stale = app
        .client
        .patch(&url)
        .bearer_auth(&admin.token)
        .header("if-match", "\"1\"")
        .json(&json!({"name": "C"}))
        .send()
        .await
        .unwrap();
    let stale = crate::helpers::read(stale).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.code(), "precondition_failed");
    let delete = app
        .client
        .delete(&url)
        .bearer_auth(&admin.token)
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.get(&path, &admin.token).await.body["name"], "B");
}

#[tokio::test]
async fn lists_page_through_every_organization_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut expected = Vec::new();
    for name in ["A", "B", "C", "D", "E"] {
        expected.push(app.organization(&admin, name).await.to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/organizations?limit=2&cursor={c}"),
            None => "/api/v1/organizations?limit=2".to_owned(),
        };
        let page = app
            .request(Method::GET, &path, Some(&admin.token), None)
            .await;
        assert_eq!(page.status, StatusCode::OK);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}
