//! API keys: who creates them, what each acts on, revocation, expiry, storage, their creator's
//! changes, and use through the Rust SDK.

use chrono::Utc;
use m365_sync::domain::Role;
use reqwest::{Method, StatusCode};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Account, TestApp, problem, spawn_app};

/// Sends `method path` with `key` as the bearer credential; returns the status.
async fn status_with(app: &TestApp, key: &str, method: Method, path: &str) -> StatusCode {
    let body = (method == Method::POST || method == Method::PATCH).then(|| {
        if path == "/api/v1/organizations" {
            json!({"name": format!("Org {}", Uuid::new_v4())})
        } else {
            json!({"sync_interval_minutes": 12})
        }
    });
    app.request(method, path, Some(key), body).await.status
}

fn secret(created: &Value) -> String {
    created["secret"].as_str().expect("a secret").to_owned()
}

#[tokio::test]
async fn an_admin_key_acts_as_an_admin_everywhere() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;

    let response = app
        .post(
            "/api/v1/api-keys",
            &admin.token,
            json!({"name": "CRM back end"}),
        )
        .await;

    assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
    let created = response.body;
    let key = secret(&created);
    assert!(key.starts_with("m365s_") && key.len() == 49, "{key}");
    assert!(key[6..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(created["role"], "admin");
    assert_eq!(created["organization_id"], Value::Null);
    assert_eq!(created["created_by"], json!(admin.id));
    assert_eq!(created["name"], "CRM back end");
    assert_eq!(created["prefix"], json!(&key[..14]));
    assert_eq!(created["last_used_at"], Value::Null);
    assert_eq!(
        response.headers["location"],
        format!("/api/v1/api-keys/{}", created["id"].as_str().unwrap()).as_str()
    );
    for (method, path, expected) in [
        (
            Method::GET,
            "/api/v1/settings/microsoft".to_owned(),
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            "/api/v1/settings/microsoft".to_owned(),
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/organizations".to_owned(),
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/organizations".to_owned(),
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            format!("/api/v1/users/{}", user.id),
            StatusCode::OK,
        ),
        (
            Method::GET,
            format!("/api/v1/users/{}/tasks", user.id),
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/sync/overview".to_owned(),
            StatusCode::OK,
        ),
        (Method::GET, "/api/v1/api-keys".to_owned(), StatusCode::OK),
    ] {
        assert_eq!(
            status_with(&app, &key, method.clone(), &path).await,
            expected,
            "{method} {path} with an admin key"
        );
    }
}

#[tokio::test]
async fn an_org_admin_key_acts_only_within_its_organization() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org_a = app.organization(&admin, "A").await;
    let org_b = app.organization(&admin, "B").await;
    let org_admin = app.account(Role::OrgAdmin, Some(org_a)).await;
    let user_a = app.account(Role::User, Some(org_a)).await;
    let user_b = app.account(Role::User, Some(org_b)).await;
    let admin_in_a = app.account(Role::Admin, Some(org_a)).await;

    let created = app.api_key(&org_admin, json!({"name": "Shop"})).await;
    let key = secret(&created);

    assert_eq!(created["role"], "org_admin");
    assert_eq!(created["organization_id"], json!(org_a));
    for (method, path, expected) in [
        (
            Method::GET,
            format!("/api/v1/users/{}", user_a.id),
            StatusCode::OK,
        ),
        (
            Method::GET,
            format!("/api/v1/users/{}/tasks", user_a.id),
            StatusCode::OK,
        ),
        (
            Method::GET,
            format!("/api/v1/users/{}", org_admin.id),
            StatusCode::OK,
        ),
        (
            Method::GET,
            format!("/api/v1/organizations/{org_a}/users"),
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            format!("/api/v1/organizations/{org_a}/settings/microsoft"),
            StatusCode::OK,
        ),
        (
            Method::GET,
            format!("/api/v1/users/{}", user_b.id),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/api/v1/users/{}/tasks", user_b.id),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/api/v1/organizations/{org_b}/users"),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/api/v1/users/{}/tasks", admin_in_a.id),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/api/v1/settings/microsoft".to_owned(),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::POST,
            "/api/v1/organizations".to_owned(),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/api/v1/sync/overview".to_owned(),
            StatusCode::FORBIDDEN,
        ),
    ] {
        assert_eq!(
            status_with(&app, &key, method.clone(), &path).await,
            expected,
            "{method} {path} with an org admin key"
        );
    }
}

#[tokio::test]
async fn an_admin_may_create_a_key_acting_within_one_organization() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org_a = app.organization(&admin, "A").await;
    let org_b = app.organization(&admin, "B").await;
    let user_a = app.account(Role::User, Some(org_a)).await;
    let user_b = app.account(Role::User, Some(org_b)).await;

    let created = app
        .api_key(&admin, json!({"name": "B only", "organization_id": org_b}))
        .await;
    let key = secret(&created);

    assert_eq!(created["role"], "org_admin");
    assert_eq!(created["organization_id"], json!(org_b));
    let get = |id: Uuid| format!("/api/v1/users/{id}");
    assert_eq!(
        status_with(&app, &key, Method::GET, &get(user_b.id)).await,
        StatusCode::OK
    );
    assert_eq!(
        status_with(&app, &key, Method::GET, &get(user_a.id)).await,
        StatusCode::NOT_FOUND
    );
    // The key is not its creator: the admin's own account is outside organization B.
    assert_eq!(
        status_with(&app, &key, Method::GET, &get(admin.id)).await,
        StatusCode::NOT_FOUND
    );
    let unknown = app
        .post(
            "/api/v1/api-keys",
            &admin.token,
            json!({"name": "x", "organization_id": Uuid::now_v7()}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown:?}");
}

#[tokio::test]
async fn who_may_create_list_read_and_revoke_keys() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org_a = app.organization(&admin, "A").await;
    let org_b = app.organization(&admin, "B").await;
    let org_admin_a = app.account(Role::OrgAdmin, Some(org_a)).await;
    let org_admin_b = app.account(Role::OrgAdmin, Some(org_b)).await;
    let user = app.account(Role::User, Some(org_a)).await;
    let global = app.api_key(&admin, json!({"name": "global"})).await;
    let of_a = app.api_key(&org_admin_a, json!({"name": "a"})).await;
    let of_b = app.api_key(&org_admin_b, json!({"name": "b"})).await;
    let for_a_by_admin = app
        .api_key(
            &admin,
            json!({"name": "a by admin", "organization_id": org_a}),
        )
        .await;
    let ids = |page: &Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].clone())
            .collect()
    };

    let all = app.get("/api/v1/api-keys", &admin.token).await;
    let mine = app.get("/api/v1/api-keys", &org_admin_a.token).await;

    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(
        ids(&all.body),
        vec![
            global["id"].clone(),
            of_a["id"].clone(),
            of_b["id"].clone(),
            for_a_by_admin["id"].clone()
        ]
    );
    assert_eq!(
        ids(&mine.body),
        vec![of_a["id"].clone(), for_a_by_admin["id"].clone()]
    );
    let paged = app.get("/api/v1/api-keys?limit=2", &admin.token).await;
    assert_eq!(ids(&paged.body).len(), 2);
    let cursor = paged.body["next_cursor"].as_str().unwrap();
    let next = app
        .get(
            &format!("/api/v1/api-keys?limit=2&cursor={cursor}"),
            &admin.token,
        )
        .await;
    assert_eq!(
        ids(&next.body),
        vec![of_b["id"].clone(), for_a_by_admin["id"].clone()]
    );

    let path = |key: &Value| format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap());
    let refused = app
        .post("/api/v1/api-keys", &user.token, json!({"name": "mine"}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "forbidden");
    assert_eq!(
        app.get("/api/v1/api-keys", &user.token).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&path(&of_a), &user.token).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&path(&of_b), &org_admin_a.token).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&path(&global), &org_admin_a.token).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&path(&of_a), &org_admin_a.token).await.status,
        StatusCode::OK
    );
    let elsewhere = app
        .post(
            "/api/v1/api-keys",
            &org_admin_a.token,
            json!({"name": "b", "organization_id": org_b}),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND, "{elsewhere:?}");
    let own = app
        .post(
            "/api/v1/api-keys",
            &org_admin_a.token,
            json!({"name": "a again", "organization_id": org_a}),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{own:?}");

    let delete = |token: &str, key: &Value| {
        let (token, path) = (token.to_owned(), path(key));
        let app = &app;
        async move { app.request(Method::DELETE, &path, Some(&token), None).await }
    };
    assert_eq!(
        delete(&org_admin_a.token, &of_b).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(&user.token, &of_a).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        delete(&org_admin_a.token, &for_a_by_admin).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&admin.token, &of_b).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&admin.token, &of_b).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/api-keys/not-a-uuid", &admin.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_in_every_process() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let created = app.api_key(&admin, json!({"name": "to revoke"})).await;
    let key = secret(&created);
    let other = app.second_instance().await;
    let on_other = |key: String| {
        let client = app.client.clone();
        let url = format!("{other}/api/v1/organizations");
        async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(on_other(key.clone()).await, StatusCode::OK);

    let revoked = app
        .request(
            Method::DELETE,
            &format!("/api/v1/api-keys/{}", created["id"].as_str().unwrap()),
            Some(&admin.token),
            None,
        )
        .await;

    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let refused = app.get("/api/v1/organizations", &key).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.code(), "invalid_token");
    assert!(
        refused.body["detail"].as_str().unwrap().contains("revoked"),
        "{refused:?}"
    );
    assert_eq!(on_other(key).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_keys_and_keys_that_do_not_exist_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let in_an_hour = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let created = app
        .api_key(
            &admin,
            json!({"name": "short lived", "expires_at": in_an_hour}),
        )
        .await;
    let key = secret(&created);
    assert_eq!(
        app.get("/api/v1/organizations", &key).await.status,
        StatusCode::OK
    );
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();

    let expired_at = (Utc::now() - chrono::Duration::seconds(1)).fixed_offset();
    entity::api_keys::ActiveModel {
        id: Set(id),
        expires_at: Set(Some(expired_at)),
        ..Default::default()
    }
    .update(&app.db)
    .await
    .unwrap();

    let refused = app.get("/api/v1/organizations", &key).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.code(), "invalid_token");
    assert!(
        refused.body["detail"].as_str().unwrap().contains("expired"),
        "{refused:?}"
    );
    for bad in [
        "m365s_short".to_owned(),
        format!("m365s_{}", "A".repeat(43)),
        format!("{}!", &key[..48]),
    ] {
        let response = app.get("/api/v1/organizations", &bad).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(response.code(), "invalid_token", "{bad}");
    }
}

#[tokio::test]
async fn invalid_key_requests_are_422_with_pointers() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let cases = [
        (json!({"name": ""}), "/name"),
        (json!({"name": "   "}), "/name"),
        (json!({"name": "x".repeat(101)}), "/name"),
        (json!({"name": "a\u{0007}b"}), "/name"),
        (json!({"name": "a\u{202e}b"}), "/name"),
        (json!({"name": 5}), "/name"),
        (json!({}), "/"),
        (
            json!({"name": "ok", "expires_at": "2001-01-01T00:00:00Z"}),
            "/expires_at",
        ),
        (
            json!({"name": "ok", "expires_at": "tomorrow"}),
            "/expires_at",
        ),
        (
            json!({"name": "ok", "organization_id": "nope"}),
            "/organization_id",
        ),
        (json!({"name": "ok", "secret": "m365s_mine"}), "/secret"),
    ];
    for (body, pointer) in cases {
        let response = app
            .post("/api/v1/api-keys", &admin.token, body.clone())
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {response:?}"
        );
        assert_eq!(response.code(), "validation_failed", "{body}");
        let pointers: Vec<&str> = response.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["pointer"].as_str())
            .collect();
        assert!(
            pointers.iter().any(|p| p.starts_with(pointer)),
            "{body}: {pointers:?}"
        );
    }
    let (malformed, _) = app
        .send(
            Method::POST,
            "/api/v1/api-keys",
            Some(&admin.token),
            &[],
            Some("{"),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.code(), "malformed_json");
}

#[tokio::test]
async fn secrets_are_stored_hashed_and_shown_only_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let created = app.api_key(&admin, json!({"name": "hashed"})).await;
    let key = secret(&created);
    let path = format!("/api/v1/api-keys/{}", created["id"].as_str().unwrap());
    // Used once, so that every column is written.
    assert_eq!(
        app.get("/api/v1/organizations", &key).await.status,
        StatusCode::OK
    );

    let listed = app.get("/api/v1/api-keys", &admin.token).await;
    let read = app.get(&path, &admin.token).await;
    let read_with_key = app.get(&path, &key).await;

    for response in [&listed, &read, &read_with_key] {
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
        let text = response.body.to_string();
        assert!(
            !text.contains(&key),
            "the secret is never shown again: {text}"
        );
        assert!(!text.contains("\"secret\""), "{text}");
    }
    assert_eq!(read.body["prefix"], created["prefix"]);
    assert!(key.starts_with(read.body["prefix"].as_str().unwrap()));
    assert!(
        !app.raw_database_contains(&key).await,
        "the secret is not stored"
    );
    assert!(
        !app.raw_database_contains(&key[14..]).await,
        "nor its hidden part"
    );
    let hash = m365_sync::domain::api_keys::hash_secret(&key);
    let rows = entity::api_keys::Entity::find().all(&app.db).await.unwrap();
    assert!(
        rows.iter().any(|row| row.secret_hash == hash),
        "its hash is"
    );
}

#[tokio::test]
async fn last_use_is_recorded_at_most_once_a_minute() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let created = app.api_key(&admin, json!({"name": "used"})).await;
    let key = secret(&created);
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let stored = || async {
        entity::api_keys::Entity::find_by_id(id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
    };
    let db = &app.db;
    let set = |at: chrono::DateTime<Utc>| async move {
        entity::api_keys::ActiveModel {
            id: Set(id),
            last_used_at: Set(Some(at.fixed_offset())),
            ..Default::default()
        }
        .update(db)
        .await
        .unwrap();
    };

    app.get("/api/v1/organizations", &key).await;
    let first = stored().await.expect("recorded on first use");
    assert!((Utc::now() - first.with_timezone(&Utc)).num_seconds() < 30);
    let shown = app
        .get(&format!("/api/v1/api-keys/{id}"), &admin.token)
        .await;
    assert!(shown.body["last_used_at"].is_string(), "{shown:?}");

    let recent = Utc::now() - chrono::Duration::seconds(30);
    set(recent).await;
    app.get("/api/v1/organizations", &key).await;
    app.get("/api/v1/organizations", &key).await;
    assert_eq!(
        stored().await.unwrap().timestamp(),
        recent.timestamp(),
        "not written again within a minute"
    );

    let old = Utc::now() - chrono::Duration::seconds(120);
    set(old).await;
    app.get("/api/v1/organizations", &key).await;
    assert!(
        stored().await.unwrap().timestamp() > old.timestamp() + 60,
        "written again after a minute"
    );
}

async fn set_role(app: &TestApp, admin: &Account, user: &Account, role: &str) {
    let response = app
        .patch(
            &format!("/api/v1/users/{}", user.id),
            &admin.token,
            json!({"role": role}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
}

#[tokio::test]
async fn a_key_never_has_more_power_than_its_creator_has_now() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let creator = app.account(Role::Admin, Some(org)).await;
    let global = secret(&app.api_key(&creator, json!({"name": "global"})).await);
    let of_org = secret(
        &app.api_key(&creator, json!({"name": "org", "organization_id": org}))
            .await,
    );
    let users = format!("/api/v1/organizations/{org}/users");
    assert_eq!(
        app.get("/api/v1/organizations", &global).await.status,
        StatusCode::OK
    );

    // Demoted to org admin of the organization: the admin key stops, the org key goes on.
    set_role(&app, &admin, &creator, "org_admin").await;
    let refused = app.get("/api/v1/organizations", &global).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.code(), "invalid_token");
    assert!(
        refused.body["detail"].as_str().unwrap().contains("creator"),
        "{refused:?}"
    );
    assert_eq!(app.get(&users, &of_org).await.status, StatusCode::OK);

    // Made an admin again: the key works again.
    set_role(&app, &admin, &creator, "admin").await;
    assert_eq!(
        app.get("/api/v1/organizations", &global).await.status,
        StatusCode::OK
    );

    // A plain user: neither key works.
    set_role(&app, &admin, &creator, "user").await;
    assert_eq!(
        app.get(&users, &of_org).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/organizations", &global).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Deleted: the keys go with them.
    set_role(&app, &admin, &creator, "admin").await;
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/v1/users/{}", creator.id),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    assert_eq!(
        app.get("/api/v1/organizations", &global).await.status,
        StatusCode::UNAUTHORIZED
    );
    let left = app.get("/api/v1/api-keys", &admin.token).await;
    assert_eq!(left.body["items"], json!([]), "{left:?}");
}

#[tokio::test]
async fn an_org_admin_key_stops_when_its_creator_is_demoted() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let creator = app.account(Role::OrgAdmin, Some(org)).await;
    let key = secret(&app.api_key(&creator, json!({"name": "shop"})).await);
    let users = format!("/api/v1/organizations/{org}/users");
    assert_eq!(app.get(&users, &key).await.status, StatusCode::OK);

    set_role(&app, &admin, &creator, "user").await;

    assert_eq!(app.get(&users, &key).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn what_only_a_person_does_is_refused_to_a_key() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let key = secret(&app.api_key(&admin, json!({"name": "back end"})).await);

    let me = app.get("/api/v1/me", &key).await;
    let logout = app
        .request(Method::POST, "/api/v1/auth/logout", Some(&key), None)
        .await;
    let another = app
        .post("/api/v1/api-keys", &key, json!({"name": "child"}))
        .await;

    for response in [&me, &logout, &another] {
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{response:?}");
        assert_eq!(response.code(), "not_for_api_keys");
    }
    // The key still works, and the admin's own sessions were not touched.
    assert_eq!(
        app.get("/api/v1/organizations", &key).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/me", &admin.token).await.status,
        StatusCode::OK
    );
    // Its creator signing out everywhere does not revoke it either.
    let signed_out = app
        .request(
            Method::POST,
            "/api/v1/auth/logout",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(signed_out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/organizations", &key).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_key_works_through_the_rust_sdk() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let created = app
        .sdk(&admin.token)
        .create_api_key(
            None,
            &m365_sync_sdk::types::CreateApiKey {
                name: "SDK".parse().unwrap(),
                expires_at: Some(Utc::now() + chrono::Duration::days(30)),
                organization_id: Some(org),
            },
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.role, m365_sync_sdk::types::Role::OrgAdmin);
    assert!(m365_sync_sdk::Client::with_api_key(&app.address, "not-a-key").is_err());
    let api = m365_sync_sdk::Client::with_api_key(&app.address, &created.secret).unwrap();

    let users = api.list_users(&org, None, None).await.unwrap().into_inner();
    let task = api
        .create_task(
            &user.id,
            Some(&"sdk-retry-1".parse().unwrap()),
            &serde_json::from_value(json!({"title": "Call back"})).unwrap(),
        )
        .await
        .unwrap();
    let me = api.get_me().await;
    let keys = api.list_api_keys(None, None).await.unwrap().into_inner();

    assert!(users.items.iter().any(|u| u.id == user.id));
    assert_eq!(task.status(), StatusCode::CREATED);
    assert_eq!(problem(me, StatusCode::FORBIDDEN).code, "not_for_api_keys");
    assert_eq!(keys.items.len(), 1);
    assert_eq!(keys.items[0].id, created.id);
}
