//! Azure application settings: fallback from organization to global, write-only secret.
//!
//! The SDK makes the calls it can express; raw HTTP sends what it cannot (an upper-case client
//! id, which its UUID type writes in lower case; `null` members; invalid values it refuses to
//! build) and reads whole bodies to prove that no secret member is ever returned.

use entity::azure_app_settings;
use m365_sync::crypto::Cipher;
use m365_sync_sdk::types;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{ENCRYPTION_KEY, etag, spawn_app, to_json};

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
    let api = app.sdk(&admin.token);
    let global = types::ApplicationSettingsPatch {
        client_id: Some(CLIENT_ID.parse().unwrap()),
        client_secret: Some(SECRET.parse().unwrap()),
        tenant: Some("common".parse().unwrap()),
    };
    api.update_global_application_settings(None, &global)
        .await
        .unwrap();
    let path = format!("/api/v1/organizations/{org}/settings/microsoft/application");

    let view = to_json(
        &api.get_organization_application_settings(&org)
            .await
            .unwrap()
            .into_inner(),
    );
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
    let patch = types::ApplicationSettingsPatch {
        tenant: Some(tenant.parse().unwrap()),
        client_secret: Some("org secret".parse().unwrap()),
        ..Default::default()
    };
    let view = api
        .update_organization_application_settings(&org, None, &patch)
        .await
        .unwrap();
    assert_eq!(view.status(), StatusCode::OK);
    let view = to_json(&view.into_inner());
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

    // `null` falls back to global: a member the SDK cannot send.
    let view = app
        .patch(&path, &admin.token, json!({"tenant": null}))
        .await;
    assert_eq!(view.status, StatusCode::OK, "{view:?}");
    let view = view.body;
    assert_eq!(
        view["tenant"],
        json!({"value": "common", "source": "global", "overridden": false})
    );
}

#[tokio::test]
async fn invalid_client_ids_and_tenants_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    // Values the SDK refuses to send: the service must refuse them too.
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
        .sdk(&admin.token)
        .get_global_application_settings()
        .await
        .unwrap();
    assert_eq!(etag(&view), "\"0\"", "nothing was written");
}
