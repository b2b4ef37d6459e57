//! Bad input of every kind gets a clear 4xx problem body, never a 500.

use reqwest::{StatusCode, header::CONTENT_TYPE};

use crate::helpers::{read, spawn_app};

#[tokio::test]
async fn malformed_mistyped_and_out_of_range_bodies_are_4xx_problems() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let path = format!(
        "{}/api/v1/users/{}/settings/microsoft",
        app.address, admin.id
    );

    // (body, content type, expected status, expected code, expected pointer)
    let cases: &[(&str, &str, StatusCode, &str, Option<&str>)] = &[
        (
            "{\"sync_interval_minutes\": ",
            "application/json",
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (
            "",
            "application/json",
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (
            "{\"sync_interval_minutes\": \"ten\"}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("/sync_interval_minutes"),
        ),
        (
            "{\"sync_interval_minutes\": 2.5}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("/sync_interval_minutes"),
        ),
        (
            "{\"sync_interval_minutes\": 1441}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("/sync_interval_minutes"),
        ),
        (
            "{\"sync_interval_minutes\": -1}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("/sync_interval_minutes"),
        ),
        (
            "{\"sync_interval_minutes\": 99999999999999999999999}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("/sync_interval_minutes"),
        ),
        (
            "{\"calendar\": {\"direction\": \"sideways\"}}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("/calendar/direction"),
        ),
        (
            "{\"tasks\": {\"enabled\": \"yes\"}}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("/tasks/enabled"),
        ),
        (
            "{\"tasks\": {\"colour\": \"red\"}}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("/tasks/colour"),
        ),
        (
            "{\"tasks\": 5}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("/tasks"),
        ),
        (
            "[]",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("/"),
        ),
        (
            "{\"sync_interval_minutes\": 10} trailing",
            "application/json",
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (
            "{\"sync_interval_minutes\": 10}",
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            "{\"sync_interval_minutes\": 10}",
            "",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
    ];
    for (body, content_type, status, code, pointer) in cases {
        let mut request = app
            .client
            .patch(&path)
            .bearer_auth(&admin.token)
            .body(*body);
        if !content_type.is_empty() {
            request = request.header(CONTENT_TYPE, *content_type);
        }
        let response = read(request.send().await.unwrap()).await;
        assert_eq!(
            response.status, *status,
            "{body:?} as {content_type:?}: {}",
            response.body
        );
        assert_eq!(response.code(), *code, "{body:?}");
        assert!(
            response.body["detail"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{body:?} has a detail"
        );
        if let Some(pointer) = pointer {
            assert_eq!(response.body["errors"][0]["pointer"], *pointer, "{body:?}");
        }
    }

    let merge_patch = app
        .client
        .patch(&path)
        .bearer_auth(&admin.token)
        .header(CONTENT_TYPE, "application/merge-patch+json")
        .body("{\"sync_interval_minutes\": 10}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        merge_patch.status(),
        StatusCode::OK,
        "merge-patch+json is accepted"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let path = format!("{}/api/v1/organizations", app.address);
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(600 * 1024));
    let response = read(
        app.client
            .post(&path)
            .bearer_auth(&admin.token)
            .header(CONTENT_TYPE, "application/json")
            .body(huge)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.code(), "payload_too_large");
}

#[tokio::test]
async fn malformed_ids_unknown_ids_and_bad_queries_are_4xx() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for path in [
        "/api/v1/users/not-a-uuid",
        "/api/v1/users/00000000-0000-0000-0000-000000000000",
        "/api/v1/organizations/42/settings/microsoft",
    ] {
        let response = app.get(path, &admin.token).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.code(), "not_found", "{path}");
    }
    for (query, code) in [
        ("limit=0", "invalid_query"),
        ("limit=501", "invalid_query"),
        ("limit=abc", "invalid_query"),
        ("cursor=nope", "invalid_cursor"),
        ("colour=red", "invalid_query"),
    ] {
        let response = app
            .get(&format!("/api/v1/organizations?{query}"), &admin.token)
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.code(), code, "{query}");
    }
}
