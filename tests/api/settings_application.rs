//! Azure application settings: fallback from organization to global, write-only secret.

use entity::azure_app_settings;
use m365_sync::crypto::Cipher;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{ENCRYPTION_KEY, spawn_app};

const CLIENT_ID: &str = "8a9f3c52-1b1e-4a38-9d6e-3f0b3a4c2d11";
const SECRET: &str = "s3cr3t~value.that-must-never-leak";

#[tokio::test]
async fn the_secret_is_write_only_and_encrypted_at_rest() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let path = "/api/v1/settings/microsoft/application";
    let response = app
        .patch(path, &admin.token, json!({"client_id": CLIENT_ID.to_uppercase(), "client_secret": SECRET, "tenant": "Contoso.onmicrosoft.com"}))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    assert_eq!(
        response.body["client_id"],
        json!({"value": CLIENT_ID, "source": "global", "overridden": true})
    );
    assert_eq!(
        response.body["client_secret_set"],
        json!({"value": true, "source": "global", "overridden": true})
    );
    assert_eq!(response.body["tenant"]["value"], "contoso.onmicrosoft.com");
    assert_eq!(
        response.body["redirect_uri"],
        format!("{}/api/v1/microsoft/oauth/callback", app.address)
    );
    let read = app.get(path, &admin.token).await;
    for body in [&response.body, &read.body] {
        assert!(
            !body.to_string().contains(SECRET),
            "the secret is never returned"
        );
    }

    let row = azure_app_settings::Entity::find_by_id("global".to_owned())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let stored = row.client_secret_encrypted.unwrap();
    assert!(
        !stored.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "no clear secret in the row"
    );
    let cipher = Cipher::from_base64_key(&SecretString::from(ENCRYPTION_KEY.to_owned())).unwrap();
    let clear = cipher
        .decrypt(&stored, "azure_app_settings:global:client_secret")
        .unwrap();
    assert_eq!(clear, SECRET.as_bytes());

    let cleared = app
        .patch(path, &admin.token, json!({"client_secret": null}))
        .await;
    assert_eq!(
        cleared.body["client_secret_set"],
        json!({"value": false, "source": "default", "overridden": false})
    );
}

#[tokio::test]
async fn the_organization_falls_back_to_global_field_by_field() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    app.patch(
        "/api/v1/settings/microsoft/application",
        &admin.token,
        json!({"client_id": CLIENT_ID, "client_secret": SECRET, "tenant": "common"}),
    )
    .await;
    let path = format!("/api/v1/organizations/{org}/settings/microsoft/application");

    let view = app.get(&path, &admin.token).await.body;
    assert_eq!(view["scope"], "organization");
    assert_eq!(
        view["tenant"],
        json!({"value": "common", "source": "global", "overridden": false})
    );
    assert_eq!(
        view["client_secret_set"],
        json!({"value": true, "source": "global", "overridden": false})
    );

    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let view = app
        .patch(
            &path,
            &admin.token,
            json!({"tenant": tenant, "client_secret": "org secret"}),
        )
        .await
        .body;
    assert_eq!(
        view["tenant"],
        json!({"value": tenant, "source": "organization", "overridden": true})
    );
    assert_eq!(
        view["client_id"],
        json!({"value": CLIENT_ID, "source": "global", "overridden": false})
    );
    assert_eq!(
        view["client_secret_set"],
        json!({"value": true, "source": "organization", "overridden": true})
    );

    let view = app
        .patch(&path, &admin.token, json!({"tenant": null}))
        .await
        .body;
    assert_eq!(
        view["tenant"],
        json!({"value": "common", "source": "global", "overridden": false})
    );
}

#[tokio::test]
async fn invalid_client_ids_and_tenants_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let response = app
        .patch(
            "/api/v1/settings/microsoft/application",
            &admin.token,
            json!({"client_id": "not-a-guid", "tenant": "bad tenant!", "client_secret": ""}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = response.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/client_id", "/client_secret", "/tenant"]);
    let view = app
        .get("/api/v1/settings/microsoft/application", &admin.token)
        .await;
    assert_eq!(view.etag(), "\"0\"", "nothing was written");
}
