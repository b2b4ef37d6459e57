//! Tasks: `/api/v1/users/{id}/tasks` and `.../tasks/{task_id}`.
//!
//! Calls go through the SDK; raw HTTP sends what it cannot (`null` members, an instant with an
//! offset, which its types rewrite in UTC, and invalid bodies it refuses to build) and reads
//! whole bodies where a test compares them with JSON literals holding `null`s.

use std::num::NonZeroU64;

use entity::tasks;
use m365_sync::domain::Role;
use m365_sync_sdk::{Client, types};
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Account, Response, SdkResult, TestApp, etag, problem, spawn_app, to_json, typed, without_nulls,
};

/// An app with a user in an organization, who owns the tasks.
struct Fixture {
    app: TestApp,
    org: Uuid,
    user: Account,
    api: Client,
}

impl Fixture {
    async fn new() -> Self {
        let app = spawn_app().await;
        let admin = app.admin().await;
        let org = app.organization(&admin, "Acme").await;
        let user = app.account(Role::User, Some(org)).await;
        let api = app.sdk(&user.token);
        Self {
            app,
            org,
            user,
            api,
        }
    }

    fn tasks(&self) -> String {
        format!("/api/v1/users/{}/tasks", self.user.id)
    }

    fn task(&self, id: &Uuid) -> String {
        format!("{}/{id}", self.tasks())
    }

    /// Creates over raw HTTP (for bodies the SDK cannot send as they are).
    async fn create_raw(&self, body: Value) -> Response {
        self.app.post(&self.tasks(), &self.user.token, body).await
    }

    /// Creates through the SDK.
    async fn create(&self, body: Value) -> SdkResult<types::TaskView> {
        self.api
            .create_task(&self.user.id, None, &typed(&body))
            .await
    }

    async fn created(&self, body: Value) -> Uuid {
        let response = self.create(body).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{response:?}");
        response.id
    }

    /// Patches through the SDK.
    async fn patch(&self, id: &Uuid, body: Value) -> SdkResult<types::TaskView> {
        self.update(id, None, body).await
    }

    async fn update(
        &self,
        id: &Uuid,
        if_match: Option<&str>,
        body: Value,
    ) -> SdkResult<types::TaskView> {
        self.api
            .update_task(&self.user.id, id, if_match, &typed(&body))
            .await
    }

    async fn get(&self, id: &Uuid) -> SdkResult<types::TaskView> {
        self.api.get_task(&self.user.id, id, None).await
    }

    async fn delete(&self, id: &Uuid, if_match: Option<&str>) -> SdkResult<()> {
        self.api.delete_task(&self.user.id, id, if_match).await
    }

    async fn listed(
        &self,
        status: Option<types::TaskStatus>,
        updated_since: Option<&chrono::DateTime<chrono::Utc>>,
    ) -> Vec<Uuid> {
        let response = self
            .api
            .list_tasks(&self.user.id, None, None, None, status, updated_since)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{response:?}");
        response.items.iter().map(|t| t.id).collect()
    }
}

#[tokio::test]
async fn tasks_are_created_read_updated_listed_and_deleted_as_tombstones() {
    let f = Fixture::new().await;
    // An instant with an offset, which the SDK's type would send in UTC.
    let created = f
        .create_raw(json!({
            "title": "Call Ada back",
            "description": "About the offer",
            "importance": "high",
            "due_date": "2026-03-31",
            "start_date": "2026-03-29",
            "reminder_at": "2026-03-30T09:00:00+02:00",
            "categories": ["Sales", " Sales "]
        }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.etag(), "\"1\"");
    let body = &created.body;
    assert_eq!(
        body["status"], "not_started",
        "status defaults to not_started"
    );
    assert_eq!(body["importance"], "high");
    assert_eq!(body["due_date"], "2026-03-31");
    assert_eq!(body["start_date"], "2026-03-29");
    assert_eq!(
        body["reminder_at"], "2026-03-30T07:00:00Z",
        "instants are shown in UTC"
    );
    assert_eq!(body["completed_at"], Value::Null);
    assert_eq!(
        body["categories"],
        json!(["Sales"]),
        "categories are trimmed and kept once"
    );
    assert_eq!(body["version"], 1);
    assert_eq!(
        body["microsoft"],
        json!({"remote_id": null, "last_synced_at": null, "pending": true})
    );
    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();

    let read = f.get(&id).await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(
        to_json(&read.into_inner()),
        without_nulls(created.body.clone())
    );

    // `null` clears the due date: a member the SDK cannot send.
    let updated = f
        .app
        .patch(
            &f.task(&id),
            &f.user.token,
            json!({"title": "Call Ada", "due_date": null, "status": "in_progress"}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{updated:?}");
    assert_eq!(updated.etag(), "\"2\"");
    assert_eq!(updated.body["title"], "Call Ada");
    assert_eq!(updated.body["due_date"], Value::Null);
    assert_eq!(updated.body["status"], "in_progress");
    assert_eq!(updated.body["description"], "About the offer");
    assert_eq!(f.listed(None, None).await, [id]);

    let deleted = f.delete(&id, None).await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    problem(f.get(&id).await, StatusCode::NOT_FOUND);
    assert!(f.listed(None, None).await.is_empty());
    problem(f.delete(&id, None).await, StatusCode::NOT_FOUND);
    let tombstone = tasks::Entity::find_by_id(id)
        .one(&f.app.db)
        .await
        .unwrap()
        .expect("the row stays as a tombstone");
    assert!(tombstone.deleted_at.is_some());
    assert_eq!(tombstone.version, 3);
    let found =
        m365_sync::domain::tasks::find_including_deleted(&f.app.db, f.user.id, tombstone.id)
            .await
            .unwrap();
    assert!(found.is_some_and(|t| t.deleted_at.is_some()));
}

#[tokio::test]
async fn completed_at_follows_the_status_unless_given() {
    let f = Fixture::new().await;
    let id = f.created(json!({"title": "T"})).await;
    let before = chrono::Utc::now();
    let completed = f.patch(&id, json!({"status": "completed"})).await.unwrap();
    assert_eq!(completed.status(), StatusCode::OK);
    let at = completed.completed_at.unwrap();
    assert!(at >= before - chrono::Duration::seconds(1), "set to now");
    let again = f.patch(&id, json!({"status": "completed"})).await.unwrap();
    assert_eq!(again.completed_at, completed.completed_at);
    assert_eq!(again.version, 2, "nothing changed");
    let reopened = f
        .patch(&id, json!({"status": "in_progress"}))
        .await
        .unwrap();
    assert_eq!(reopened.completed_at, None, "cleared");

    let given = f
        .patch(
            &id,
            json!({"status": "completed", "completed_at": "2026-01-02T03:04:05Z"}),
        )
        .await
        .unwrap();
    assert_eq!(given.completed_at, Some(instant("2026-01-02T03:04:05Z")));
    let done = f
        .created(json!({"title": "Done", "status": "completed"}))
        .await;
    let done = f.get(&done).await.unwrap();
    assert!(done.completed_at.is_some(), "set on creation too");
    let backdated = f
        .create(
            json!({"title": "B", "status": "completed", "completed_at": "2025-12-31T23:00:00Z"}),
        )
        .await
        .unwrap();
    assert_eq!(
        backdated.completed_at,
        Some(instant("2025-12-31T23:00:00Z"))
    );
}

#[tokio::test]
async fn invalid_tasks_are_refused_with_a_pointer_to_each_bad_member() {
    let f = Fixture::new().await;
    let categories: Vec<String> = (0..26).map(|i| format!("c{i}")).collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"title": ""}), "/title", "empty title"),
        (
            json!({"title": "T", "status": "done"}),
            "/status",
            "bad status",
        ),
        (
            json!({"title": "T", "importance": "urgent"}),
            "/importance",
            "bad importance",
        ),
        (
            json!({"title": "T", "due_date": "2026-13-01"}),
            "/due_date",
            "no such month",
        ),
        (
            json!({"title": "T", "start_date": "tomorrow"}),
            "/start_date",
            "not a date",
        ),
        (
            json!({"title": "T", "reminder_at": "2026-03-30T09:00:00"}),
            "/reminder_at",
            "no offset",
        ),
        (
            json!({"title": "T", "completed_at": "yesterday"}),
            "/completed_at",
            "not an instant",
        ),
        (
            json!({"title": "T", "categories": categories}),
            "/categories",
            "too many categories",
        ),
        (
            json!({"title": "T", "categories": ["a", " "]}),
            "/categories/1",
            "blank category",
        ),
        (
            json!({"title": "T", "priority": 1}),
            "/priority",
            "unknown member",
        ),
    ];
    // Bodies the SDK refuses to build: the service must refuse them too.
    for (body, pointer, why) in cases {
        let response = f.create_raw(body.clone()).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {body} gave {response:?}"
        );
        assert_eq!(response.code(), "validation_failed");
        let pointers: Vec<&str> = response.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert!(
            pointers.contains(&pointer),
            "{why}: expected {pointer} in {pointers:?}"
        );
    }
    assert!(f.listed(None, None).await.is_empty(), "nothing was stored");

    let id = f.created(json!({"title": "T"})).await;
    let bad = f
        .app
        .patch(
            &f.task(&id),
            &f.user.token,
            json!({"title": "New", "due_date": "31.03.2026"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let read = f.get(&id).await.unwrap();
    assert_eq!(read.title, "T", "a failed patch changes nothing");
    assert_eq!(read.version, 1);
}

#[tokio::test]
async fn a_stale_if_match_is_412() {
    let f = Fixture::new().await;
    let id = f.created(json!({"title": "T"})).await;
    let ok = f
        .update(&id, Some("\"1\""), json!({"title": "A"}))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(etag(&ok), "\"2\"");
    let stale = f.update(&id, Some("\"1\""), json!({"title": "B"})).await;
    assert_eq!(
        problem(stale, StatusCode::PRECONDITION_FAILED).code,
        "precondition_failed"
    );
    let stale_delete = f.delete(&id, Some("\"1\"")).await;
    problem(stale_delete, StatusCode::PRECONDITION_FAILED);
    let delete = f.delete(&id, Some("\"2\"")).await.unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn status_and_updated_since_filter_the_list_and_pages_cover_it_once() {
    let f = Fixture::new().await;
    let open = f.created(json!({"title": "Open"})).await;
    let done = f
        .created(json!({"title": "Done", "status": "completed"}))
        .await;
    let waiting = f
        .created(json!({"title": "Waiting", "status": "waiting_on_others"}))
        .await;
    assert_eq!(
        f.listed(Some(types::TaskStatus::Completed), None).await,
        [done]
    );
    assert_eq!(
        f.listed(Some(types::TaskStatus::NotStarted), None).await,
        [open]
    );
    // A status the SDK's enum cannot name.
    let bad = f
        .app
        .get(&format!("{}?status=finished", f.tasks()), &f.user.token)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let since = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    f.patch(&open, json!({"status": "deferred"})).await.unwrap();
    assert_eq!(f.listed(None, Some(&since)).await, [open]);

    let limit = NonZeroU64::new(2);
    let first = f
        .api
        .list_tasks(&f.user.id, None, None, limit, None, None)
        .await
        .unwrap()
        .into_inner();
    let cursor: types::ListTasksCursor = first.next_cursor.as_deref().unwrap().parse().unwrap();
    let second = f
        .api
        .list_tasks(&f.user.id, Some(&cursor), None, limit, None, None)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.next_cursor, None);
    let all: Vec<Uuid> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|t| t.id)
        .collect();
    assert_eq!(all, [open, done, waiting]);
}

#[tokio::test]
async fn tasks_are_visible_to_their_user_and_admins_only() {
    let f = Fixture::new().await;
    let id = f.created(json!({"title": "Mine"})).await;
    let admin = f.app.admin().await;
    let org_admin = f.app.account(Role::OrgAdmin, Some(f.org)).await;
    let other_org = f.app.organization(&admin, "Other").await;
    let other_admin = f.app.account(Role::OrgAdmin, Some(other_org)).await;
    let colleague = f.app.account(Role::User, Some(f.org)).await;
    let user = f.user.id;
    let title: types::UpdateTask = typed(&json!({"title": "X"}));
    for (who, token, visible) in [
        ("the user", &f.user.token, true),
        ("their org admin", &org_admin.token, true),
        ("an admin", &admin.token, true),
        ("a colleague", &colleague.token, false),
        ("another org's admin", &other_admin.token, false),
    ] {
        let api = f.app.sdk(token);
        let read = api.get_task(&user, &id, None).await;
        let list = api.list_tasks(&user, None, None, None, None, None).await;
        let patch = api.update_task(&user, &id, None, &title).await;
        if visible {
            assert_eq!(read.unwrap().status(), StatusCode::OK, "{who} reads");
            assert_eq!(list.unwrap().status(), StatusCode::OK, "{who} lists");
            assert_eq!(patch.unwrap().status(), StatusCode::OK, "{who} updates");
        } else {
            problem(read, StatusCode::NOT_FOUND);
            problem(list, StatusCode::NOT_FOUND);
            problem(patch, StatusCode::NOT_FOUND);
        }
    }
    let other = f.app.sdk(&other_admin.token);
    problem(
        other.delete_task(&user, &id, None).await,
        StatusCode::NOT_FOUND,
    );
    let create: types::CreateTask = typed(&json!({"title": "X"}));
    problem(
        other.create_task(&user, None, &create).await,
        StatusCode::NOT_FOUND,
    );
    let deleted = f.delete(&id, None).await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn concurrent_patches_without_if_match_all_apply() {
    let f = Fixture::new().await;
    let id = f.created(json!({"title": "T"})).await;
    // Four writers racing: each may lose to the others at most three times, and starts over.
    let patches = (0..4).map(|i| f.patch(&id, json!({"title": format!("T{i}")})));
    let responses = futures_util::future::join_all(patches).await;
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{response:?}");
    }
    let read = f.get(&id).await.unwrap();
    assert_eq!(read.version, 5, "every change counted once");
}

/// An RFC 3339 instant.
fn instant(text: &str) -> chrono::DateTime<chrono::Utc> {
    text.parse().unwrap()
}
