//! `Idempotency-Key` on the POSTs that create something: replay, reuse, requests in flight,
//! failures that free the key, validation, encryption at rest and retention.

use chrono::Utc;
use m365_sync::domain::{Role, idempotency};
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Account, Response, TestApp, spawn_app, spawn_app_with};

const KEY: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";

/// POSTs `body` to `path` as `who` with `Idempotency-Key: key`.
async fn post_with_key(
    app: &TestApp,
    who: &Account,
    path: &str,
    key: &str,
    body: &str,
) -> (Response, Vec<u8>) {
    app.send(
        Method::POST,
        path,
        Some(&who.token),
        &[(KEY, key.as_bytes())],
        Some(body),
    )
    .await
}

/// How many items the listing at `path` holds (first page of 500).
async fn count(app: &TestApp, who: &Account, path: &str) -> usize {
    let listed = app.get(&format!("{path}?limit=500"), &who.token).await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
    listed.body["items"].as_array().unwrap().len()
}

async fn records(app: &TestApp) -> u64 {
    entity::idempotency_keys::Entity::find()
        .count(&app.db)
        .await
        .unwrap()
}

struct Fixture {
    app: TestApp,
    admin: Account,
    org: Uuid,
    user: Account,
}

async fn fixture() -> Fixture {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    Fixture {
        app,
        admin,
        org,
        user,
    }
}

const EVENT: &str = r#"{"title": "Review", "start": {"date_time": "2026-03-30T09:00:00", "time_zone": "Europe/Berlin"}, "end": {"date_time": "2026-03-30T10:00:00", "time_zone": "Europe/Berlin"}}"#;

#[tokio::test]
async fn the_same_request_again_replays_the_first_response_byte_for_byte() {
    let Fixture {
        app,
        admin,
        org,
        user,
    } = fixture().await;
    let events = format!("/api/v1/users/{}/calendar-events", user.id);
    let tasks = format!("/api/v1/users/{}/tasks", user.id);
    let users = format!("/api/v1/organizations/{org}/users");
    let new_user =
        json!({"email": "ada@example.com", "password": crate::helpers::PASSWORD}).to_string();
    // (who, path, body, the listing that must hold one more item)
    let cases = [
        (&user, events.clone(), EVENT.to_owned(), events.clone()),
        (
            &user,
            tasks.clone(),
            r#"{"title": "Call back"}"#.to_owned(),
            tasks.clone(),
        ),
        (&admin, users.clone(), new_user, users.clone()),
        (
            &admin,
            "/api/v1/organizations".to_owned(),
            r#"{"name": "Globex"}"#.to_owned(),
            "/api/v1/organizations".to_owned(),
        ),
        (
            &admin,
            "/api/v1/api-keys".to_owned(),
            r#"{"name": "CRM"}"#.to_owned(),
            "/api/v1/api-keys".to_owned(),
        ),
    ];
    for (who, path, body, listing) in cases {
        let before = count(&app, who, &listing).await;
        let key = Uuid::new_v4().to_string();

        let (first, first_bytes) = post_with_key(&app, who, &path, &key, &body).await;
        let (second, second_bytes) = post_with_key(&app, who, &path, &key, &body).await;

        assert_eq!(first.status, StatusCode::CREATED, "{path}: {first:?}");
        assert!(!first.headers.contains_key(REPLAYED), "{path}");
        assert_eq!(second.status, first.status, "{path}");
        assert_eq!(second_bytes, first_bytes, "{path}: the body byte for byte");
        for header in ["content-type", "etag", "location"] {
            assert_eq!(
                second.headers.get(header),
                first.headers.get(header),
                "{path}: {header}"
            );
        }
        assert_eq!(second.headers[REPLAYED], "true", "{path}");
        assert_eq!(
            second.headers.get("cache-control"),
            first.headers.get("cache-control"),
            "{path}: the outer headers are there too"
        );
        assert_eq!(
            count(&app, who, &listing).await,
            before + 1,
            "{path}: one item"
        );
    }
}

#[tokio::test]
async fn without_a_key_every_request_creates() {
    let Fixture { app, user, .. } = fixture().await;
    let tasks = format!("/api/v1/users/{}/tasks", user.id);

    for _ in 0..2 {
        let (response, _) = app
            .send(
                Method::POST,
                &tasks,
                Some(&user.token),
                &[],
                Some(r#"{"title": "x"}"#),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED);
        assert!(!response.headers.contains_key(REPLAYED));
    }

    assert_eq!(count(&app, &user, &tasks).await, 2);
    assert_eq!(records(&app).await, 0);
}

#[tokio::test]
async fn a_key_used_for_another_request_answers_422() {
    let Fixture {
        app,
        admin,
        org,
        user,
    } = fixture().await;
    let other = app.account(Role::User, Some(org)).await;
    let tasks = format!("/api/v1/users/{}/tasks", user.id);
    let (first, _) = post_with_key(&app, &user, &tasks, "k-1", r#"{"title": "a"}"#).await;
    assert_eq!(first.status, StatusCode::CREATED);

    let (other_body, _) = post_with_key(&app, &user, &tasks, "k-1", r#"{"title": "b"}"#).await;
    let (spaced, _) = post_with_key(&app, &user, &tasks, "k-1", r#"{"title":  "a"}"#).await;
    let events = format!("/api/v1/users/{}/calendar-events", user.id);
    let (other_path, _) = post_with_key(&app, &user, &events, "k-1", EVENT).await;

    for response in [&other_body, &spaced, &other_path] {
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{response:?}"
        );
        assert_eq!(response.code(), "idempotency_key_reused");
    }
    assert_eq!(count(&app, &user, &tasks).await, 1);
    assert_eq!(count(&app, &user, &events).await, 0);

    // Keys are per caller: the same key from someone else is theirs.
    let theirs = format!("/api/v1/users/{}/tasks", other.id);
    let (their_first, _) = post_with_key(&app, &other, &theirs, "k-1", r#"{"title": "a"}"#).await;
    assert_eq!(their_first.status, StatusCode::CREATED);
    assert!(!their_first.headers.contains_key(REPLAYED));
    let (admins, _) = post_with_key(&app, &admin, &tasks, "k-1", r#"{"title": "a"}"#).await;
    assert_eq!(admins.status, StatusCode::CREATED);
    assert!(!admins.headers.contains_key(REPLAYED));
    assert_eq!(count(&app, &user, &tasks).await, 2);
}

#[tokio::test]
async fn client_errors_are_kept_and_replayed_too() {
    let Fixture { app, user, .. } = fixture().await;
    let tasks = format!("/api/v1/users/{}/tasks", user.id);
    let invalid = r#"{"title": ""}"#;

    let (first, first_bytes) = post_with_key(&app, &user, &tasks, "bad-1", invalid).await;
    let (second, second_bytes) = post_with_key(&app, &user, &tasks, "bad-1", invalid).await;
    let (fixed, _) = post_with_key(&app, &user, &tasks, "bad-1", r#"{"title": "ok"}"#).await;

    assert_eq!(first.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(first.code(), "validation_failed");
    assert_eq!(second.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(second.headers[REPLAYED], "true");
    assert_eq!(second.code(), "validation_failed");
    assert_eq!(second_bytes, first_bytes);
    assert_eq!(
        fixed.code(),
        "idempotency_key_reused",
        "a new request needs a new key"
    );
    assert_eq!(count(&app, &user, &tasks).await, 0);
}

/// Makes every insert into `tasks` fail (a 500) until [`allow_task_inserts`].
async fn refuse_task_inserts(app: &TestApp) {
    let statements: &[&str] = match app.db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => &[
            "CREATE FUNCTION refuse_insert() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_tasks BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION refuse_insert()",
        ],
        _ => &[
            "CREATE TRIGGER refuse_tasks BEFORE INSERT ON tasks BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ],
    };
    for statement in statements {
        app.db.execute_unprepared(statement).await.unwrap();
    }
}

async fn allow_task_inserts(app: &TestApp) {
    let statement = match app.db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "DROP TRIGGER refuse_tasks ON tasks",
        _ => "DROP TRIGGER refuse_tasks",
    };
    app.db.execute_unprepared(statement).await.unwrap();
}

#[tokio::test]
async fn a_server_error_frees_the_key_for_a_retry() {
    let Fixture { app, user, .. } = fixture().await;
    let tasks = format!("/api/v1/users/{}/tasks", user.id);
    let body = r#"{"title": "Retry me"}"#;
    refuse_task_inserts(&app).await;

    let (failed, _) = post_with_key(&app, &user, &tasks, "retry-1", body).await;
    assert_eq!(
        failed.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{failed:?}"
    );
    assert_eq!(records(&app).await, 0, "a 5xx keeps nothing");

    allow_task_inserts(&app).await;
    let (retried, _) = post_with_key(&app, &user, &tasks, "retry-1", body).await;
    let (again, _) = post_with_key(&app, &user, &tasks, "retry-1", body).await;

    assert_eq!(retried.status, StatusCode::CREATED, "{retried:?}");
    assert!(
        !retried.headers.contains_key(REPLAYED),
        "performed, not replayed"
    );
    assert_eq!(again.headers[REPLAYED], "true");
    assert_eq!(again.body["id"], retried.body["id"]);
    assert_eq!(count(&app, &user, &tasks).await, 1);
}

#[tokio::test]
async fn a_request_in_flight_answers_409_until_its_lease_expires() {
    let Fixture { app, user, .. } = fixture().await;
    let tasks = format!("/api/v1/users/{}/tasks", user.id);
    let body = r#"{"title": "In flight"}"#;
    // A request with this key that some process is performing (or was, before it died).
    let now = Utc::now();
    entity::idempotency_keys::Entity::insert(entity::idempotency_keys::ActiveModel {
        principal_id: Set(user.id),
        key: Set("flight-1".to_owned()),
        fingerprint: Set(idempotency::fingerprint("POST", &tasks, body.as_bytes())),
        token: Set(Uuid::now_v7()),
        locked_until: Set(Some((now + chrono::Duration::minutes(5)).fixed_offset())),
        status: Set(None),
        response: Set(None),
        created_at: Set(now.fixed_offset()),
        expires_at: Set((now + chrono::Duration::hours(24)).fixed_offset()),
    })
    .exec(&app.db)
    .await
    .unwrap();

    let (busy, _) = post_with_key(&app, &user, &tasks, "flight-1", body).await;
    let (other, _) = post_with_key(&app, &user, &tasks, "flight-1", r#"{"title": "x"}"#).await;

    assert_eq!(busy.status, StatusCode::CONFLICT, "{busy:?}");
    assert_eq!(busy.code(), "idempotency_key_in_flight");
    assert_eq!(busy.headers["retry-after"], "1");
    assert_eq!(other.code(), "idempotency_key_reused");
    assert_eq!(count(&app, &user, &tasks).await, 0);

    // Its process died: once the lease is over, the key is free again.
    entity::idempotency_keys::Entity::update_many()
        .col_expr(
            entity::idempotency_keys::Column::LockedUntil,
            sea_orm::sea_query::Expr::value((now - chrono::Duration::seconds(1)).fixed_offset()),
        )
        .exec(&app.db)
        .await
        .unwrap();
    let (taken_over, _) = post_with_key(&app, &user, &tasks, "flight-1", body).await;
    assert_eq!(taken_over.status, StatusCode::CREATED, "{taken_over:?}");
    assert!(!taken_over.headers.contains_key(REPLAYED));
    assert_eq!(count(&app, &user, &tasks).await, 1);
}

/// Sends `n` identical requests at once; checks that exactly one was performed, that the others
/// were replayed (the same bytes) or answered 409, and returns the created item's body.
async fn race(app: &TestApp, who: &Account, path: &str, body: &str, n: usize) -> Value {
    let key = Uuid::new_v4().to_string();
    let responses =
        futures_util::future::join_all((0..n).map(|_| post_with_key(app, who, path, &key, body)))
            .await;
    let mut performed = Vec::new();
    let mut replayed = Vec::new();
    for (response, bytes) in &responses {
        match response.status {
            StatusCode::CREATED if response.headers.contains_key(REPLAYED) => replayed.push(bytes),
            StatusCode::CREATED => performed.push(bytes),
            StatusCode::CONFLICT => assert_eq!(response.code(), "idempotency_key_in_flight"),
            other => panic!("{path}: unexpected {other}: {response:?}"),
        }
    }
    assert_eq!(
        performed.len(),
        1,
        "{path}: exactly one request is performed"
    );
    for bytes in replayed {
        assert_eq!(
            bytes, performed[0],
            "{path}: replays carry the first response"
        );
    }
    serde_json::from_slice(performed[0]).unwrap()
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_item() {
    let Fixture {
        app, admin, user, ..
    } = fixture().await;
    let events = format!("/api/v1/users/{}/calendar-events", user.id);
    let tasks = format!("/api/v1/users/{}/tasks", user.id);

    race(&app, &user, &events, EVENT, 12).await;
    race(&app, &user, &tasks, r#"{"title": "Once"}"#, 12).await;
    let key = race(&app, &admin, "/api/v1/api-keys", r#"{"name": "Once"}"#, 12).await;

    assert_eq!(count(&app, &user, &events).await, 1);
    assert_eq!(count(&app, &user, &tasks).await, 1);
    assert_eq!(count(&app, &admin, "/api/v1/api-keys").await, 1);
    assert!(key["secret"].as_str().unwrap().starts_with("m365s_"));
}

#[tokio::test]
async fn a_replayed_api_key_carries_its_secret_which_is_stored_encrypted() {
    let Fixture { app, admin, .. } = fixture().await;
    let body = r#"{"name": "Retried"}"#;

    let (first, first_bytes) = post_with_key(&app, &admin, "/api/v1/api-keys", "ak-1", body).await;
    let (second, second_bytes) =
        post_with_key(&app, &admin, "/api/v1/api-keys", "ak-1", body).await;

    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.headers[REPLAYED], "true");
    assert_eq!(
        second_bytes, first_bytes,
        "the same secret, as the draft wants"
    );
    let secret = first.body["secret"].as_str().unwrap();
    assert_eq!(records(&app).await, 1);
    assert!(
        !app.raw_database_contains(secret).await,
        "the kept response is encrypted"
    );
    assert_eq!(
        app.get("/api/v1/organizations", secret).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_keys_answer_400_and_create_nothing() {
    let Fixture { app, user, .. } = fixture().await;
    let tasks = format!("/api/v1/users/{}/tasks", user.id);
    let long = "k".repeat(256);
    let cases: [&[u8]; 5] = [b"", b"   ", long.as_bytes(), b"caf\xe9", b"a\tb"];
    for value in cases {
        let (response, _) = app
            .send(
                Method::POST,
                &tasks,
                Some(&user.token),
                &[(KEY, value)],
                Some(r#"{"title": "x"}"#),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{value:?}: {response:?}"
        );
        assert_eq!(response.code(), "invalid_idempotency_key", "{value:?}");
    }
    let (twice, _) = app
        .send(
            Method::POST,
            &tasks,
            Some(&user.token),
            &[(KEY, b"one"), (KEY, b"two")],
            Some(r#"{"title": "x"}"#),
        )
        .await;
    assert_eq!(twice.code(), "invalid_idempotency_key");
    let (longest, _) =
        post_with_key(&app, &user, &tasks, &"k".repeat(255), r#"{"title": "x"}"#).await;
    assert_eq!(longest.status, StatusCode::CREATED);
    assert_eq!(count(&app, &user, &tasks).await, 1);
}

#[tokio::test]
async fn requests_refused_before_the_handler_keep_nothing() {
    let app = spawn_app_with(|s| s.max_body_bytes = 1024).await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let tasks = format!("/api/v1/users/{}/tasks", user.id);

    let (anonymous, _) = app
        .send(
            Method::POST,
            &tasks,
            None,
            &[(KEY, b"k")],
            Some(r#"{"title": "x"}"#),
        )
        .await;
    let (wrong_token, _) = app
        .send(
            Method::POST,
            &tasks,
            Some("nope"),
            &[(KEY, b"k")],
            Some(r#"{"title": "x"}"#),
        )
        .await;
    let large = json!({"title": "x", "description": "d".repeat(2000)}).to_string();
    let (too_large, _) = post_with_key(&app, &user, &tasks, "k", &large).await;

    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.code(), "missing_token");
    assert_eq!(wrong_token.code(), "invalid_token");
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(records(&app).await, 0);
    let (created, _) = post_with_key(&app, &user, &tasks, "k", r#"{"title": "x"}"#).await;
    assert_eq!(created.status, StatusCode::CREATED);
}

#[tokio::test]
async fn keys_expire_after_a_day_and_the_retention_pass_deletes_them() {
    let Fixture { app, user, .. } = fixture().await;
    let tasks = format!("/api/v1/users/{}/tasks", user.id);
    post_with_key(&app, &user, &tasks, "old", r#"{"title": "a"}"#).await;
    post_with_key(&app, &user, &tasks, "new", r#"{"title": "b"}"#).await;
    let yesterday = (Utc::now() - chrono::Duration::hours(25)).fixed_offset();
    let expired = (Utc::now() - chrono::Duration::hours(1)).fixed_offset();
    entity::idempotency_keys::Entity::update_many()
        .col_expr(
            entity::idempotency_keys::Column::CreatedAt,
            sea_orm::sea_query::Expr::value(yesterday),
        )
        .col_expr(
            entity::idempotency_keys::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(expired),
        )
        .filter(entity::idempotency_keys::Column::Key.eq("old"))
        .exec(&app.db)
        .await
        .unwrap();

    // Expired, not yet deleted: the key is free for a new request.
    let (anew, _) = post_with_key(&app, &user, &tasks, "old", r#"{"title": "c"}"#).await;
    assert_eq!(anew.status, StatusCode::CREATED, "{anew:?}");
    assert!(!anew.headers.contains_key(REPLAYED));

    entity::idempotency_keys::Entity::update_many()
        .col_expr(
            entity::idempotency_keys::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(expired),
        )
        .filter(entity::idempotency_keys::Column::Key.eq("old"))
        .exec(&app.db)
        .await
        .unwrap();
    let purged = idempotency::purge_expired(&app.db, Utc::now(), 1)
        .await
        .unwrap();

    assert_eq!(purged, 1);
    let left: Vec<String> = entity::idempotency_keys::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(left, vec!["new".to_owned()]);
}

#[tokio::test]
async fn sync_now_replays_its_first_answer() {
    let Fixture { app, user, .. } = fixture().await;
    let path = format!("/api/v1/users/{}/microsoft/sync", user.id);

    let (first, first_bytes) = app
        .send(
            Method::POST,
            &path,
            Some(&user.token),
            &[(KEY, b"sync-1")],
            None,
        )
        .await;
    let (second, second_bytes) = app
        .send(
            Method::POST,
            &path,
            Some(&user.token),
            &[(KEY, b"sync-1")],
            None,
        )
        .await;

    assert!(
        first.status.is_client_error() || first.status.is_success(),
        "{first:?}"
    );
    assert_eq!(second.status, first.status);
    assert_eq!(second.headers[REPLAYED], "true");
    assert_eq!(second_bytes, first_bytes);
}

#[test]
fn the_posts_that_create_something_declare_the_header_and_no_other_does() {
    let doc = m365_sync::openapi::document();
    let declared: Vec<&str> = doc
        .paths
        .paths
        .iter()
        .filter(|(_, item)| {
            item.post.as_ref().is_some_and(|op| {
                op.parameters.iter().flatten().any(|p| match p {
                    utoipa::openapi::RefOr::T(p) => p.name == "Idempotency-Key",
                    utoipa::openapi::RefOr::Ref(_) => false,
                })
            })
        })
        .map(|(path, _)| path.as_str())
        .collect();
    assert_eq!(
        declared,
        vec![
            "/api/v1/api-keys",
            "/api/v1/organizations",
            "/api/v1/organizations/{id}/users",
            "/api/v1/users/{id}/calendar-events",
            "/api/v1/users/{id}/microsoft/sync",
            "/api/v1/users/{id}/tasks",
            "/api/v1/webhooks",
        ]
    );
}
