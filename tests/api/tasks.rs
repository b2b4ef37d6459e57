//! Tasks: `/api/v1/users/{id}/tasks` and `.../tasks/{task_id}`.

use entity::tasks;
use m365_sync::domain::Role;
use reqwest::{Method, StatusCode};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Account, Response, TestApp, read, spawn_app};

/// An app with a user in an organization, who owns the tasks.
struct Fixture {
    app: TestApp,
    org: Uuid,
    user: Account,
}

impl Fixture {
    async fn new() -> Self {
        let app = spawn_app().await;
        let admin = app.admin().await;
        let org = app.organization(&admin, "Acme").await;
        let user = app.account(Role::User, Some(org)).await;
        Self { app, org, user }
    }

    fn tasks(&self) -> String {
        format!("/api/v1/users/{}/tasks", self.user.id)
    }

    fn task(&self, id: &str) -> String {
        format!("{}/{id}", self.tasks())
    }

    async fn create(&self, body: Value) -> Response {
        self.app.post(&self.tasks(), &self.user.token, body).await
    }

    async fn created(&self, body: Value) -> String {
        let response = self.create(body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
        response.body["id"].as_str().unwrap().to_owned()
    }

    async fn patch(&self, id: &str, body: Value) -> Response {
        self.app.patch(&self.task(id), &self.user.token, body).await
    }

    async fn listed(&self, query: &str) -> Vec<String> {
        let response = self
            .app
            .get(&format!("{}?{query}", self.tasks()), &self.user.token)
            .await;
        assert_eq!(response.status, StatusCode::OK, "{query}: {response:?}");
        response.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn with_if_match(
        &self,
        method: Method,
        id: &str,
        if_match: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .app
            .client
            .request(method, format!("{}{}", self.app.address, self.task(id)))
            .bearer_auth(&self.user.token)
            .header("if-match", if_match);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }
}

#[tokio::test]
async fn tasks_are_created_read_updated_listed_and_deleted_as_tombstones() {
    let f = Fixture::new().await;
    let created = f
        .create(json!({
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
    let id = body["id"].as_str().unwrap().to_owned();

    let read = f.app.get(&f.task(&id), &f.user.token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, created.body);

    let updated = f
        .patch(
            &id,
            json!({"title": "Call Ada", "due_date": null, "status": "in_progress"}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{updated:?}");
    assert_eq!(updated.etag(), "\"2\"");
    assert_eq!(updated.body["title"], "Call Ada");
    assert_eq!(updated.body["due_date"], Value::Null);
    assert_eq!(updated.body["status"], "in_progress");
    assert_eq!(updated.body["description"], "About the offer");
    assert_eq!(f.listed("").await, std::slice::from_ref(&id));

    assert_eq!(
        f.app.delete(&f.task(&id), &f.user.token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        f.app.get(&f.task(&id), &f.user.token).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(f.listed("").await.is_empty());
    assert_eq!(
        f.app.delete(&f.task(&id), &f.user.token).await.status,
        StatusCode::NOT_FOUND
    );
    let tombstone = tasks::Entity::find_by_id(id.parse::<Uuid>().unwrap())
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
    let completed = f.patch(&id, json!({"status": "completed"})).await;
    assert_eq!(completed.status, StatusCode::OK);
    let at: chrono::DateTime<chrono::Utc> = completed.body["completed_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(at >= before - chrono::Duration::seconds(1), "set to now");
    let again = f.patch(&id, json!({"status": "completed"})).await;
    assert_eq!(again.body["completed_at"], completed.body["completed_at"]);
    assert_eq!(again.body["version"], 2, "nothing changed");
    let reopened = f.patch(&id, json!({"status": "in_progress"})).await;
    assert_eq!(reopened.body["completed_at"], Value::Null, "cleared");

    let given = f
        .patch(
            &id,
            json!({"status": "completed", "completed_at": "2026-01-02T03:04:05Z"}),
        )
        .await;
    assert_eq!(given.body["completed_at"], "2026-01-02T03:04:05Z");
    let done = f
        .created(json!({"title": "Done", "status": "completed"}))
        .await;
    let done = f.app.get(&f.task(&done), &f.user.token).await;
    assert!(done.body["completed_at"].is_string(), "set on creation too");
    let backdated = f
        .create(
            json!({"title": "B", "status": "completed", "completed_at": "2025-12-31T23:00:00Z"}),
        )
        .await;
    assert_eq!(backdated.body["completed_at"], "2025-12-31T23:00:00Z");
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
    for (body, pointer, why) in cases {
        let response = f.create(body.clone()).await;
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
    assert!(f.listed("").await.is_empty(), "nothing was stored");

    let id = f.created(json!({"title": "T"})).await;
    let bad = f
        .patch(&id, json!({"title": "New", "due_date": "31.03.2026"}))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let read = f.app.get(&f.task(&id), &f.user.token).await;
    assert_eq!(read.body["title"], "T", "a failed patch changes nothing");
    assert_eq!(read.body["version"], 1);
}

#[tokio::test]
async fn a_stale_if_match_is_412() {
    let f = Fixture::new().await;
    let id = f.created(json!({"title": "T"})).await;
    let ok = f
        .with_if_match(Method::PATCH, &id, "\"1\"", Some(json!({"title": "A"})))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let stale = f
        .with_if_match(Method::PATCH, &id, "\"1\"", Some(json!({"title": "B"})))
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.code(), "precondition_failed");
    let stale_delete = f.with_if_match(Method::DELETE, &id, "\"1\"", None).await;
    assert_eq!(stale_delete.status, StatusCode::PRECONDITION_FAILED);
    let delete = f.with_if_match(Method::DELETE, &id, "\"2\"", None).await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
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
        f.listed("status=completed").await,
        std::slice::from_ref(&done)
    );
    assert_eq!(
        f.listed("status=not_started").await,
        std::slice::from_ref(&open)
    );
    let bad = f
        .app
        .get(&format!("{}?status=finished", f.tasks()), &f.user.token)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    f.patch(&open, json!({"status": "deferred"})).await;
    assert_eq!(
        f.listed(&format!("updated_since={since}")).await,
        std::slice::from_ref(&open)
    );

    let first = f
        .app
        .get(&format!("{}?limit=2", f.tasks()), &f.user.token)
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = f.listed(&format!("limit=2&cursor={cursor}")).await;
    let mut all: Vec<String> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    all.extend(second);
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
    for (who, token, expected) in [
        ("the user", &f.user.token, StatusCode::OK),
        ("their org admin", &org_admin.token, StatusCode::OK),
        ("an admin", &admin.token, StatusCode::OK),
        ("a colleague", &colleague.token, StatusCode::NOT_FOUND),
        (
            "another org's admin",
            &other_admin.token,
            StatusCode::NOT_FOUND,
        ),
    ] {
        assert_eq!(
            f.app.get(&f.task(&id), token).await.status,
            expected,
            "{who} reads"
        );
        assert_eq!(
            f.app.get(&f.tasks(), token).await.status,
            expected,
            "{who} lists"
        );
        let patch = f
            .app
            .patch(&f.task(&id), token, json!({"title": "X"}))
            .await;
        assert_eq!(patch.status, expected, "{who} updates");
    }
    assert_eq!(
        f.app.delete(&f.task(&id), &other_admin.token).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.app
            .post(&f.tasks(), &other_admin.token, json!({"title": "X"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.app.delete(&f.task(&id), &f.user.token).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn concurrent_patches_without_if_match_all_apply() {
    let f = Fixture::new().await;
    let id = f.created(json!({"title": "T"})).await;
    // Four writers racing: each may lose to the others at most three times, and starts over.
    let patches = (0..4).map(|i| f.patch(&id, json!({"title": format!("T{i}")})));
    let responses = futures_util::future::join_all(patches).await;
    for response in &responses {
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
    }
    let read = f.app.get(&f.task(&id), &f.user.token).await;
    assert_eq!(read.body["version"], 5, "every change counted once");
}
