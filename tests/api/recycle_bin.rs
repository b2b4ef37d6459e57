//! The recycle bin: deleted events and tasks listed and read with `deleted=true`, restored one
//! by one or by the run that deleted them, synchronized again after a restore, and gone after
//! `deleted_retention_days`.
//!
//! Calls go through the SDK; raw HTTP reads whole bodies (to see `null` members) and sends
//! what the SDK cannot (a query it would refuse to build).

use chrono::{Duration, Utc};
use entity::{calendar_events, sync_links, tasks};
use m365_sync::{
    domain::{Role, recycle_bin::Retention},
    jobs::retention::{Purged, purge_deleted},
};
use m365_sync_sdk::{Client, types};
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Account, MailboxUser, TestApp, etag, problem, spawn_app, spawn_app_with};

/// An event starting tomorrow (inside the sync window), as the API takes it.
fn event(title: &str) -> types::CreateCalendarEvent {
    let day = (Utc::now() + Duration::days(1)).format("%Y-%m-%d");
    serde_json::from_value(json!({
        "title": title,
        "start": {"date_time": format!("{day}T09:00:00"), "time_zone": "Europe/Berlin"},
        "end": {"date_time": format!("{day}T10:00:00"), "time_zone": "Europe/Berlin"},
    }))
    .unwrap()
}

fn task(title: &str) -> types::CreateTask {
    serde_json::from_value(json!({"title": title})).unwrap()
}

/// An app with a user in an organization, who owns the items.
struct Fixture {
    app: TestApp,
    org: Uuid,
    user: Account,
    api: Client,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(spawn_app().await).await
    }

    async fn with(app: TestApp) -> Self {
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
}

/// Creates an event through the SDK; returns it.
async fn create_event(api: &Client, user: Uuid, title: &str) -> types::CalendarEventView {
    let created = api.create_calendar_event(&user, None, &event(title)).await;
    let created = created.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED, "{created:?}");
    created.into_inner()
}

async fn create_task(api: &Client, user: Uuid, title: &str) -> types::TaskView {
    let created = api.create_task(&user, None, &task(title)).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED, "{created:?}");
    created.into_inner()
}

/// The ids of a user's events: the recycle bin's with `deleted`, the live ones without.
async fn event_ids(api: &Client, user: Uuid, deleted: bool) -> Vec<Uuid> {
    let page = api
        .list_calendar_events(&user, None, Some(deleted), None, None, None, None, None)
        .await
        .unwrap();
    page.items.iter().map(|e| e.id).collect()
}

async fn task_ids(api: &Client, user: Uuid, deleted: bool) -> Vec<Uuid> {
    let page = api
        .list_tasks(&user, None, Some(deleted), None, None, None)
        .await
        .unwrap();
    page.items.iter().map(|t| t.id).collect()
}

/// Moves an item's deletion `days` back in time.
async fn deleted_days_ago(app: &TestApp, id: Uuid, days: i64) {
    let at = Some((Utc::now() - Duration::days(days)).fixed_offset());
    let events = calendar_events::Entity::update_many()
        .col_expr(calendar_events::Column::DeletedAt, at.into())
        .filter(calendar_events::Column::Id.eq(id))
        .exec(&app.db)
        .await
        .unwrap();
    let tasks = tasks::Entity::update_many()
        .col_expr(tasks::Column::DeletedAt, at.into())
        .filter(tasks::Column::Id.eq(id))
        .exec(&app.db)
        .await
        .unwrap();
    assert_eq!(events.rows_affected + tasks.rows_affected, 1, "{id}");
}

#[tokio::test]
async fn a_deleted_event_is_in_the_recycle_bin_until_restored_with_a_new_version() {
    let f = Fixture::new().await;
    let user = f.user.id;
    let kept = create_event(&f.api, user, "Kept").await;
    let gone = create_event(&f.api, user, "Planning").await;
    f.api
        .delete_calendar_event(&user, &gone.id, None)
        .await
        .unwrap();

    // Listed in the bin only, with who deleted it and when.
    assert_eq!(event_ids(&f.api, user, false).await, [kept.id]);
    assert_eq!(event_ids(&f.api, user, true).await, [gone.id]);
    let path = format!("/api/v1/users/{user}/calendar-events");
    let bin = f
        .app
        .get(&format!("{path}?deleted=true"), &f.user.token)
        .await;
    assert_eq!(bin.status, StatusCode::OK, "{bin:?}");
    let item = &bin.body["items"][0];
    assert_eq!(item["deleted_by"], "local", "{item}");
    let deleted_at = item["deleted_at"].as_str().unwrap();
    assert!(deleted_at.ends_with('Z'), "RFC 3339 in UTC: {deleted_at}");
    let deleted_at: chrono::DateTime<Utc> = deleted_at.parse().unwrap();
    assert!(
        Utc::now() - deleted_at < Duration::minutes(1),
        "{deleted_at}"
    );
    let live = f.app.get(&path, &f.user.token).await;
    assert_eq!(live.body["items"][0]["deleted_at"], Value::Null, "{live:?}");
    assert_eq!(live.body["items"][0]["deleted_by"], Value::Null, "{live:?}");

    // Read: 404 as before without the flag, the tombstone with it.
    problem(
        f.api.get_calendar_event(&user, &gone.id, None).await,
        StatusCode::NOT_FOUND,
    );
    let read = f
        .api
        .get_calendar_event(&user, &gone.id, Some(true))
        .await
        .unwrap();
    assert_eq!(read.version, gone.version + 1, "the deletion bumped it");
    assert_eq!(etag(&read), format!("\"{}\"", read.version));
    assert_eq!(read.deleted_by, Some(types::DeletedBy::Local));
    assert_eq!(read.title, "Planning");

    let restored = f
        .api
        .restore_calendar_event(&user, &gone.id, None)
        .await
        .unwrap();
    assert_eq!(restored.status(), StatusCode::OK);
    assert_eq!(restored.version, read.version + 1);
    assert_eq!(etag(&restored), format!("\"{}\"", restored.version));
    assert_eq!(restored.deleted_at, None);
    assert_eq!(restored.deleted_by, None);
    assert_eq!(restored.title, "Planning");
    let row = calendar_events::Entity::find_by_id(gone.id)
        .one(&f.app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.deleted_at, row.deleted_by, row.deleted_by_run),
        (None, None, None)
    );

    let mut live = vec![kept.id, gone.id];
    live.sort();
    assert_eq!(event_ids(&f.api, user, false).await, live);
    assert!(event_ids(&f.api, user, true).await.is_empty());
    let read = f.api.get_calendar_event(&user, &gone.id, None).await;
    assert_eq!(read.unwrap().version, restored.version);
}

#[tokio::test]
async fn a_deleted_task_is_in_the_recycle_bin_until_restored_with_a_new_version() {
    let f = Fixture::new().await;
    let user = f.user.id;
    let kept = create_task(&f.api, user, "Kept").await;
    let gone = create_task(&f.api, user, "Call the bank").await;
    f.api.delete_task(&user, &gone.id, None).await.unwrap();

    assert_eq!(task_ids(&f.api, user, false).await, [kept.id]);
    assert_eq!(task_ids(&f.api, user, true).await, [gone.id]);
    let bin = f
        .app
        .get(
            &format!("/api/v1/users/{user}/tasks?deleted=true"),
            &f.user.token,
        )
        .await;
    assert_eq!(bin.body["items"][0]["deleted_by"], "local", "{bin:?}");
    assert!(
        bin.body["items"][0]["deleted_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{bin:?}"
    );
    problem(
        f.api.get_task(&user, &gone.id, None).await,
        StatusCode::NOT_FOUND,
    );
    let read = f.api.get_task(&user, &gone.id, Some(true)).await.unwrap();
    assert_eq!(read.version, gone.version + 1);
    assert_eq!(etag(&read), format!("\"{}\"", read.version));
    assert_eq!(read.deleted_by, Some(types::DeletedBy::Local));

    let restored = f.api.restore_task(&user, &gone.id, None).await.unwrap();
    assert_eq!(restored.status(), StatusCode::OK);
    assert_eq!(restored.version, read.version + 1);
    assert_eq!(etag(&restored), format!("\"{}\"", restored.version));
    assert_eq!((restored.deleted_at, restored.deleted_by), (None, None));
    let mut live = vec![kept.id, gone.id];
    live.sort();
    assert_eq!(task_ids(&f.api, user, false).await, live);
    assert!(task_ids(&f.api, user, true).await.is_empty());
}

#[tokio::test]
async fn the_recycle_bin_comes_a_page_at_a_time_and_combines_with_other_filters() {
    let f = Fixture::new().await;
    let user = f.user.id;
    let mut deleted = Vec::new();
    for title in ["One", "Two", "Three"] {
        let t = create_task(&f.api, user, title).await;
        f.api.delete_task(&user, &t.id, None).await.unwrap();
        deleted.push(t.id);
    }
    create_task(&f.api, user, "Live").await;
    let limit = std::num::NonZeroU64::new(2);
    let first = f
        .api
        .list_tasks(&user, None, Some(true), limit, None, None)
        .await
        .unwrap()
        .into_inner();
    let cursor: types::ListTasksCursor = first.next_cursor.as_deref().unwrap().parse().unwrap();
    let second = f
        .api
        .list_tasks(&user, Some(&cursor), Some(true), limit, None, None)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.next_cursor, None);
    let listed: Vec<Uuid> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, deleted, "every deleted task once, in id order");

    // A filter narrows the bin as it narrows the live list.
    let since = Utc::now() + Duration::minutes(1);
    let later = f
        .api
        .list_tasks(&user, None, Some(true), None, None, Some(&since))
        .await
        .unwrap();
    assert!(later.items.is_empty(), "{later:?}");
    let bad = f
        .app
        .get(
            &format!("/api/v1/users/{user}/tasks?deleted=maybe"),
            &f.user.token,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{bad:?}");
    assert_eq!(bad.code(), "invalid_query");
}

#[tokio::test]
async fn a_restore_honours_if_match() {
    let f = Fixture::new().await;
    let user = f.user.id;
    let e = create_event(&f.api, user, "Review").await;
    f.api
        .delete_calendar_event(&user, &e.id, None)
        .await
        .unwrap();
    let t = create_task(&f.api, user, "File").await;
    f.api.delete_task(&user, &t.id, None).await.unwrap();
    let stale = format!("\"{}\"", e.version);

    let refused = problem(
        f.api
            .restore_calendar_event(&user, &e.id, Some(&stale))
            .await,
        StatusCode::PRECONDITION_FAILED,
    );
    assert_eq!(refused.code, "precondition_failed");
    let refused = problem(
        f.api.restore_task(&user, &t.id, Some("\"1\"")).await,
        StatusCode::PRECONDITION_FAILED,
    );
    assert_eq!(refused.code, "precondition_failed");
    let malformed = problem(
        f.api.restore_task(&user, &t.id, Some("2")).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(malformed.code, "invalid_if_match");
    assert_eq!(event_ids(&f.api, user, true).await, [e.id], "still deleted");

    let current = format!("\"{}\"", e.version + 1);
    let restored = f
        .api
        .restore_calendar_event(&user, &e.id, Some(&current))
        .await
        .unwrap();
    assert_eq!(restored.version, e.version + 2);
    let restored = f
        .api
        .restore_task(&user, &t.id, Some("\"2\""))
        .await
        .unwrap();
    assert_eq!(restored.version, 3);
}

#[tokio::test]
async fn restoring_an_item_that_is_not_deleted_is_a_409_not_deleted() {
    let f = Fixture::new().await;
    let user = f.user.id;
    let e = create_event(&f.api, user, "Live").await;
    let t = create_task(&f.api, user, "Live").await;

    let conflict = problem(
        f.api.restore_calendar_event(&user, &e.id, None).await,
        StatusCode::CONFLICT,
    );
    assert_eq!(conflict.code, "not_deleted");
    let conflict = problem(
        f.api.restore_task(&user, &t.id, None).await,
        StatusCode::CONFLICT,
    );
    assert_eq!(conflict.code, "not_deleted");
    // Nothing changed, and the bin does not hold live items.
    let read = f.api.get_task(&user, &t.id, None).await.unwrap();
    assert_eq!(read.version, t.version);
    problem(
        f.api.get_task(&user, &t.id, Some(true)).await,
        StatusCode::NOT_FOUND,
    );
    problem(
        f.api.get_calendar_event(&user, &e.id, Some(true)).await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn another_users_items_and_runs_are_404() {
    let f = Fixture::new().await;
    let owner = f.user.id;
    let e = create_event(&f.api, owner, "Mine").await;
    f.api
        .delete_calendar_event(&owner, &e.id, None)
        .await
        .unwrap();
    let t = create_task(&f.api, owner, "Mine").await;
    f.api.delete_task(&owner, &t.id, None).await.unwrap();
    let other = f.app.account(Role::User, Some(f.org)).await;
    let api = f.app.sdk(&other.token);

    // Through the other user's own path: not their items (nor their run).
    let codes = [
        problem(
            api.restore_calendar_event(&other.id, &e.id, None).await,
            StatusCode::NOT_FOUND,
        ),
        problem(
            api.restore_task(&other.id, &t.id, None).await,
            StatusCode::NOT_FOUND,
        ),
        problem(
            api.get_calendar_event(&other.id, &e.id, Some(true)).await,
            StatusCode::NOT_FOUND,
        ),
        problem(
            api.get_task(&other.id, &t.id, Some(true)).await,
            StatusCode::NOT_FOUND,
        ),
        problem(
            api.restore_calendar_event(&other.id, &Uuid::now_v7(), None)
                .await,
            StatusCode::NOT_FOUND,
        ),
        problem(
            api.restore_sync_run(&other.id, &Uuid::now_v7()).await,
            StatusCode::NOT_FOUND,
        ),
    ]
    .map(|p| p.into_inner().code);
    assert!(codes.iter().all(|c| c == "not_found"), "{codes:?}");
    assert!(event_ids(&api, other.id, true).await.is_empty());
    assert!(task_ids(&api, other.id, true).await.is_empty());
    // Through the owner's path: a user they may not see.
    problem(
        api.restore_calendar_event(&owner, &e.id, None).await,
        StatusCode::NOT_FOUND,
    );
    problem(
        api.list_tasks(&owner, None, Some(true), None, None, None)
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(event_ids(&f.api, owner, true).await, [e.id], "untouched");
}

/// A connected user with calendar and task sync enabled both ways.
async fn syncing() -> (TestApp, MailboxUser) {
    let app = spawn_app().await;
    let who = app.connected_user().await;
    let settings = json!({
        "calendar": {"enabled": true, "direction": "bidirectional", "conflict_resolution": "local_wins"},
        "tasks": {"enabled": true, "direction": "bidirectional", "conflict_resolution": "local_wins"},
    });
    let path = format!("/api/v1/users/{}/settings/microsoft", who.user.id);
    let response = app.patch(&path, &who.user.token, settings).await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    (app, who)
}

/// Outlook's events and To Do's tasks (default list) with this title.
fn in_microsoft(app: &TestApp, who: &MailboxUser, title: &str) -> (Vec<Value>, Vec<Value>) {
    let outlook = app.emulator.outlook();
    let events = outlook.list_events(&who.mailbox_id).unwrap();
    let tasks = outlook.list_tasks(&who.mailbox_id, None).unwrap();
    let titled = |items: Vec<Value>, key: &str| -> Vec<Value> {
        items.into_iter().filter(|i| i[key] == title).collect()
    };
    (titled(events, "subject"), titled(tasks, "title"))
}

/// Graph requests from number `from` of the emulator's log on, reads and `$batch` envelopes
/// left out (the requests a batch carries are logged one by one).
fn writes_since(app: &TestApp, from: usize) -> Vec<String> {
    app.emulator.request_log()[from..]
        .iter()
        .filter(|r| r.method != "GET" && !(r.method == "POST" && r.path.ends_with("$batch")))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn a_deletion_made_in_microsoft_is_restored_by_its_run_and_recreated_there_once() {
    let (app, who) = syncing().await;
    let user = who.user.id;
    let api = app.sdk(&who.user.token);
    let e = create_event(&api, user, "Board meeting").await;
    let t = create_task(&api, user, "Call the bank").await;
    let runs = app.sync_now(&who.user).await;
    assert_eq!(runs[0]["counts"]["created_remotely"], 1, "{}", runs[0]);
    assert_eq!(runs[1]["counts"]["created_remotely"], 1, "{}", runs[1]);
    let (events, tasks) = in_microsoft(&app, &who, "Board meeting");
    assert_eq!(events.len(), 1);
    let outlook = app.emulator.outlook();
    outlook
        .delete_event(&who.mailbox_id, events[0]["id"].as_str().unwrap())
        .unwrap();
    let (_, tasks_titled) = in_microsoft(&app, &who, "Call the bank");
    assert!(tasks.is_empty() && tasks_titled.len() == 1);
    outlook
        .delete_task(
            &who.mailbox_id,
            None,
            tasks_titled[0]["id"].as_str().unwrap(),
        )
        .unwrap();

    let runs = app.sync_now(&who.user).await;
    assert_eq!(runs[0]["counts"]["deleted_locally"], 1, "{}", runs[0]);
    assert_eq!(runs[1]["counts"]["deleted_locally"], 1, "{}", runs[1]);
    let (calendar_run, tasks_run) = (
        runs[0]["id"].as_str().unwrap().parse::<Uuid>().unwrap(),
        runs[1]["id"].as_str().unwrap().parse::<Uuid>().unwrap(),
    );
    let deleted_event = api.get_calendar_event(&user, &e.id, Some(true)).await;
    let deleted_event = deleted_event.unwrap().into_inner();
    assert_eq!(deleted_event.deleted_by, Some(types::DeletedBy::Microsoft));
    let deleted_task = api.get_task(&user, &t.id, Some(true)).await.unwrap();
    assert_eq!(deleted_task.deleted_by, Some(types::DeletedBy::Microsoft));
    let bin = app
        .get(
            &format!("/api/v1/users/{user}/calendar-events?deleted=true"),
            &who.user.token,
        )
        .await;
    assert_eq!(bin.body["items"][0]["deleted_by"], "microsoft", "{bin:?}");
    let row = calendar_events::Entity::find_by_id(e.id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.deleted_by_run, Some(calendar_run));

    // Each run restores what it deleted, once.
    let restored = api.restore_sync_run(&user, &calendar_run).await.unwrap();
    assert_eq!(restored.status(), StatusCode::OK);
    assert_eq!(
        serde_json::to_value(restored.into_inner()).unwrap(),
        json!({"restored": 1, "items": [{"resource": "calendar", "id": e.id}]})
    );
    let restored = api.restore_sync_run(&user, &tasks_run).await.unwrap();
    assert_eq!(
        serde_json::to_value(restored.into_inner()).unwrap(),
        json!({"restored": 1, "items": [{"resource": "tasks", "id": t.id}]})
    );
    let again = api.restore_sync_run(&user, &calendar_run).await.unwrap();
    assert_eq!(again.restored, 0, "nothing is left to restore: {again:?}");
    let event_now = api.get_calendar_event(&user, &e.id, None).await.unwrap();
    assert_eq!(event_now.version, deleted_event.version + 1);
    assert!(event_now.microsoft.pending, "{event_now:?}");
    let task_now = api.get_task(&user, &t.id, None).await.unwrap();
    assert_eq!(task_now.version, deleted_task.version + 1);

    // The next run creates them again in Microsoft, once.
    let runs = app.sync_now(&who.user).await;
    assert_eq!(runs[0]["counts"]["created_remotely"], 1, "{}", runs[0]);
    assert_eq!(runs[1]["counts"]["created_remotely"], 1, "{}", runs[1]);
    let (events, _) = in_microsoft(&app, &who, "Board meeting");
    let (_, tasks) = in_microsoft(&app, &who, "Call the bank");
    assert_eq!((events.len(), tasks.len()), (1, 1), "{events:?} {tasks:?}");
    let event_now = api.get_calendar_event(&user, &e.id, None).await.unwrap();
    assert_eq!(
        event_now.microsoft.remote_id.as_deref(),
        graph_emulator::immutable_event_id(events[0]["id"].as_str().unwrap()).as_deref()
    );
    assert!(!event_now.microsoft.pending);

    // And the one after that has nothing to write.
    let before = app.emulator.request_log().len();
    let runs = app.sync_now(&who.user).await;
    assert_eq!(writes_since(&app, before), Vec::<String>::new(), "{runs:?}");
    let (events, _) = in_microsoft(&app, &who, "Board meeting");
    let (_, tasks) = in_microsoft(&app, &who, "Call the bank");
    assert_eq!((events.len(), tasks.len()), (1, 1));
    assert_eq!(event_ids(&api, user, false).await, [e.id]);
    assert!(event_ids(&api, user, true).await.is_empty());
}

#[tokio::test]
async fn an_item_restored_before_its_deletion_was_sent_stays_single_in_microsoft() {
    let (app, who) = syncing().await;
    let user = who.user.id;
    let api = app.sdk(&who.user.token);
    let e = create_event(&api, user, "Standup").await;
    let t = create_task(&api, user, "Pay the rent").await;
    app.sync_now(&who.user).await;
    let (events, _) = in_microsoft(&app, &who, "Standup");
    let (_, tasks) = in_microsoft(&app, &who, "Pay the rent");
    assert_eq!((events.len(), tasks.len()), (1, 1));

    // Deleted and restored here between two runs: the link never went away.
    api.delete_calendar_event(&user, &e.id, None).await.unwrap();
    api.delete_task(&user, &t.id, None).await.unwrap();
    api.restore_calendar_event(&user, &e.id, None)
        .await
        .unwrap();
    api.restore_task(&user, &t.id, None).await.unwrap();

    let before = app.emulator.request_log().len();
    let runs = app.sync_now(&who.user).await;
    let writes = writes_since(&app, before);
    // At most an update of each (the restore is a new version), never a create or a delete.
    assert!(
        writes.len() <= 2 && writes.iter().all(|w| w.starts_with("PATCH ")),
        "no create and no delete: {writes:?}"
    );
    for run in &runs {
        assert_eq!(run["outcome"], "succeeded", "{run}");
        assert_eq!(run["counts"]["created_remotely"], 0, "{run}");
        assert_eq!(run["counts"]["deleted_remotely"], 0, "{run}");
    }
    let (after_events, _) = in_microsoft(&app, &who, "Standup");
    let (_, after_tasks) = in_microsoft(&app, &who, "Pay the rent");
    assert_eq!(after_events.len(), 1);
    assert_eq!(
        after_events[0]["id"], events[0]["id"],
        "the same Outlook copy"
    );
    assert_eq!(after_tasks.len(), 1);
    assert_eq!(after_tasks[0]["id"], tasks[0]["id"]);
    let read = api.get_calendar_event(&user, &e.id, None).await.unwrap();
    assert_eq!(
        read.microsoft.remote_id.as_deref(),
        graph_emulator::immutable_event_id(events[0]["id"].as_str().unwrap()).as_deref()
    );
}

#[tokio::test]
async fn tombstones_past_retention_are_gone_and_purged_unless_still_linked() {
    let f = Fixture::with(spawn_app_with(|s| s.jobs.deleted_retention_days = 1).await).await;
    let user = f.user.id;
    let mut old_events = Vec::new();
    for title in ["Old", "Older"] {
        let e = create_event(&f.api, user, title).await;
        f.api
            .delete_calendar_event(&user, &e.id, None)
            .await
            .unwrap();
        deleted_days_ago(&f.app, e.id, 2).await;
        old_events.push(e.id);
    }
    let old_task = create_task(&f.api, user, "Old").await;
    f.api.delete_task(&user, &old_task.id, None).await.unwrap();
    deleted_days_ago(&f.app, old_task.id, 2).await;
    let recent = create_task(&f.api, user, "Recent").await;
    f.api.delete_task(&user, &recent.id, None).await.unwrap();
    // An old tombstone whose deletion has not reached Microsoft yet: it still has its link.
    let linked = create_event(&f.api, user, "Linked").await;
    sync_links::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user),
        resource: Set("calendar".to_owned()),
        local_id: Set(linked.id),
        remote_id: Set("AAMk-linked".to_owned()),
        remote_etag: Set(None),
        synced_version: Set(linked.version),
        base_snapshot: Set("{}".to_owned()),
        last_synced_at: Set(Utc::now().fixed_offset()),
        pending_snapshot: Set(None),
    }
    .insert(&f.app.db)
    .await
    .unwrap();
    f.api
        .delete_calendar_event(&user, &linked.id, None)
        .await
        .unwrap();
    deleted_days_ago(&f.app, linked.id, 2).await;

    // Past retention: neither listed, nor read, nor restored, even before the purge.
    assert!(event_ids(&f.api, user, true).await.is_empty());
    assert_eq!(task_ids(&f.api, user, true).await, [recent.id]);
    problem(
        f.api
            .get_calendar_event(&user, &old_events[0], Some(true))
            .await,
        StatusCode::NOT_FOUND,
    );
    let gone = problem(
        f.api
            .restore_calendar_event(&user, &old_events[0], None)
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(gone.code, "not_found");
    problem(
        f.api.restore_task(&user, &old_task.id, None).await,
        StatusCode::NOT_FOUND,
    );

    // One row per delete, so that each table takes several.
    let cutoff = Retention::of_days(1).cutoff.unwrap();
    let purged = purge_deleted(&f.app.db, cutoff, 1).await.unwrap();
    assert_eq!(
        purged,
        Purged {
            events: 2,
            tasks: 1
        }
    );
    let events: Vec<Uuid> = calendar_events::Entity::find()
        .filter(calendar_events::Column::UserId.eq(user))
        .all(&f.app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(events, [linked.id], "the linked tombstone is kept");
    let tasks: Vec<Uuid> = tasks::Entity::find()
        .filter(tasks::Column::UserId.eq(user))
        .all(&f.app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(tasks, [recent.id], "the recent tombstone is kept");
    assert_eq!(
        purge_deleted(&f.app.db, cutoff, 1).await.unwrap(),
        Purged::default()
    );
    // The recent one is still restorable.
    let restored = f.api.restore_task(&user, &recent.id, None).await.unwrap();
    assert_eq!(restored.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_zero_retention_tombstones_stay_in_the_recycle_bin_whatever_their_age() {
    let f = Fixture::with(spawn_app_with(|s| s.jobs.deleted_retention_days = 0).await).await;
    let user = f.user.id;
    let t = create_task(&f.api, user, "Ancient").await;
    f.api.delete_task(&user, &t.id, None).await.unwrap();
    deleted_days_ago(&f.app, t.id, 3650).await;
    assert_eq!(task_ids(&f.api, user, true).await, [t.id]);
    let restored = f.api.restore_task(&user, &t.id, None).await.unwrap();
    assert_eq!(restored.status(), StatusCode::OK);
}
