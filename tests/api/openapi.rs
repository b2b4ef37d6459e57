//! The committed OpenAPI document is the one the code generates.

use reqwest::{Method, StatusCode};

use crate::helpers::spawn_app;

const COMMITTED: &str = include_str!("../../openapi/openapi.json");

#[test]
fn committed_document_matches_the_code() {
    let generated = m365_sync::openapi::to_pretty_json().unwrap();
    if generated != COMMITTED {
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"),
                &generated,
            )
            .unwrap();
        }
        panic!(
            "openapi/openapi.json is out of date: run `cargo run -- openapi > openapi/openapi.json` \
             (or this test with UPDATE_OPENAPI=1) and commit it"
        );
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_every_error_is_a_problem() {
    let app = spawn_app().await;
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    let served = app
        .request(Method::GET, "/api-docs/openapi.json", None, None)
        .await;
    assert_eq!(served.body, doc, "Swagger UI is fed the committed document");
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "00000000-0000-7000-8000-000000000000");
        for (method, operation) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app.request(method.clone(), &concrete, None, None).await;
            assert_ne!(
                response.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is routed"
            );
            let secured = operation.get("security").is_some();
            if secured {
                assert_eq!(
                    response.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} needs a token"
                );
            }
            for (status, documented) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    // The OAuth callback answers a browser, with a page; everything else with a
                    // problem body.
                    let content = &documented["content"];
                    assert!(
                        content["application/problem+json"].is_object()
                            || (path.ends_with("/oauth/callback")
                                && content["text/html"].is_object()),
                        "{method} {path} {status} is documented as a problem"
                    );
                }
            }
        }
    }
}
