//! Probes (through the SDK), docs and the 404/405 fallback (raw HTTP: Swagger UI's page, the
//! document and requests outside the contract).

use reqwest::{Method, StatusCode};

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_and_readyz_answer_ok() {
    let app = spawn_app().await;
    let api = app.sdk_anonymous();
    for (path, response) in [
        ("/healthz", api.healthz().await.unwrap()),
        ("/readyz", api.readyz().await.unwrap()),
    ] {
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.status, "ok", "{path}");
    }
}

#[tokio::test]
async fn swagger_ui_and_the_document_are_served() {
    let app = spawn_app().await;
    let ui = app
        .client
        .get(format!("{}/swagger-ui/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), StatusCode::OK);
    assert!(ui.text().await.unwrap().contains("swagger-ui"));
    let doc = app
        .request(Method::GET, "/api-docs/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["paths"]["/api/v1/users/{id}/settings/microsoft"].is_object());
}

#[tokio::test]
async fn unknown_paths_answer_404_and_wrong_methods_405_as_problems() {
    let app = spawn_app().await;
    let response = app.request(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.code(), "not_found");

    let response = app
        .request(Method::PUT, "/api/v1/settings/microsoft", None, None)
        .await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.code(), "method_not_allowed");
    assert_eq!(response.headers.get("allow").unwrap(), "GET, PATCH");
}
