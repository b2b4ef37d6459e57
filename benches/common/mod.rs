//! What the benchmarks share: their fixed keys, environment overrides, a migrated database,
//! and the organization and people they create through the domain, as the API would.
// Each benchmark uses part of this module: what one leaves unused is not dead.
#![allow(dead_code)]

use m365_sync::{
    config::{Keys, Settings},
    db,
    domain::{Role, organizations, users},
};
use sea_orm::DatabaseConnection;
use secrecy::SecretString;
use uuid::Uuid;

/// The encryption key of every benchmark (32 bytes, base64).
pub const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// The JWT secret of every benchmark.
pub const JWT: &str = "bench-jwt-secret-bench-jwt-secret-0123";

/// The number in the environment variable `name`, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The service's keys: [`JWT`] and [`KEY`].
pub fn keys() -> Keys {
    Keys {
        jwt_secret: SecretString::from(JWT.to_owned()),
        encryption_key: SecretString::from(KEY.to_owned()),
    }
}

/// The database of `settings`, connected and migrated.
pub async fn database(settings: &Settings) -> DatabaseConnection {
    let db = db::connect(settings).await.unwrap();
    db::migrate(&db).await.unwrap();
    db
}

/// A new organization named "Bench"; returns its id.
pub async fn organization(db: &DatabaseConnection) -> Uuid {
    organizations::create(
        db,
        organizations::CreateOrganization {
            name: "Bench".into(),
        },
    )
    .await
    .unwrap()
    .id
}

/// A new person with `role`, signing in with `email` and `password`, in `organization`.
pub async fn person(
    db: &DatabaseConnection,
    email: &str,
    password: &str,
    role: Role,
    organization: Option<Uuid>,
) -> entity::users::Model {
    let input = users::CreateUser {
        email: email.to_owned(),
        password: password.to_owned(),
        role: Some(role),
        display_name: None,
    };
    users::create(db, users::NewUser::parse(input, organization).unwrap())
        .await
        .unwrap()
}

/// Signs in with `email` and `password` through the API; returns the access token.
pub async fn sign_in(
    client: &reqwest::Client,
    address: &str,
    email: &str,
    password: &str,
) -> String {
    let body: serde_json::Value = client
        .post(format!("{address}/api/v1/auth/token"))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Connects `user_id`'s Microsoft account as the reference front end does: starts Connect with
/// `login_hint`, follows the sign-in (the emulator signs in at once), and hands the completion
/// the callback page carries back to the API. Panics unless the account ends up connected.
pub async fn connect(
    client: &reqwest::Client,
    address: &str,
    user_id: Uuid,
    token: &str,
    login_hint: &str,
) {
    let connection = format!("{address}/api/v1/users/{user_id}/microsoft/connection");
    let started: serde_json::Value = client
        .post(&connection)
        .bearer_auth(token)
        .json(&serde_json::json!({ "login_hint": login_hint }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let redirect = client
        .get(started["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let callback = redirect.headers()["location"].to_str().unwrap().to_owned();
    let page = client.get(callback).send().await.unwrap();
    assert!(page.status().is_success(), "{page:?}");
    let page = page.text().await.unwrap();
    let marker = "\"completion\":\"";
    assert!(
        page.contains(marker),
        "the callback page hands no completion: {page}"
    );
    let at = page.find(marker).unwrap() + marker.len();
    let completion = &page[at..at + page[at..].find('"').unwrap()];
    let completed = client
        .post(format!("{connection}/complete"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "completion": completion }))
        .send()
        .await
        .unwrap();
    assert!(completed.status().is_success(), "{completed:?}");
}
