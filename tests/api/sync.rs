//! The sync engine against the emulator: directions, echo suppression, conflicts, deletions,
//! resync and throttling.

use entity::{calendar_events, sync_links, tasks};
use graph_emulator::{Fault, FaultSpec};
use m365_sync::{
    domain::links::Resource,
    sync::{fields::Fields, local},
};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{MailboxUser, TestApp, spawn_app};

struct Sync {
    app: TestApp,
    who: MailboxUser,
}

fn event(title: &str, day: u32) -> Value {
    json!({
        "subject": title,
        "start": {"dateTime": format!("2026-12-{day:02}T09:00:00"), "timeZone": "UTC"},
        "end": {"dateTime": format!("2026-12-{day:02}T10:00:00"), "timeZone": "UTC"},
    })
}

fn local_event(title: &str, day: u32) -> Fields {
    let value = json!({
        "title": title, "description": null, "location": null, "is_all_day": false,
        "start": format!("2026-12-{day:02}T09:00:00Z"), "end": format!("2026-12-{day:02}T10:00:00Z"),
        "reminder_minutes": null, "show_as": "busy", "importance": "normal", "sensitivity": "normal",
        "categories": [], "attendees": [],
    });
    value.as_object().unwrap().clone()
}

fn local_task(title: &str) -> Fields {
    let value = json!({
        "title": title, "description": null, "status": "not_started", "importance": "normal",
        "due_date": null, "start_date": null, "reminder_at": null, "completed_at": null, "categories": [],
    });
    value.as_object().unwrap().clone()
}

impl Sync {
    async fn new(direction: &str, conflict: &str) -> Self {
        let app = spawn_app().await;
        let who = app.connected_user().await;
        let settings = json!({
            "calendar": {"enabled": true, "direction": direction, "conflict_resolution": conflict},
            "tasks": {"enabled": true, "direction": direction, "conflict_resolution": conflict},
        });
        let path = format!("/api/v1/users/{}/settings/microsoft", who.user.id);
        assert_eq!(
            app.patch(&path, &who.user.token, settings).await.status,
            StatusCode::OK
        );
        Self { app, who }
    }

    /// Sync now; returns the runs (calendar first).
    async fn run(&self) -> Vec<Value> {
        self.app.sync_now(&self.who.user).await
    }

    fn outlook_events(&self) -> Vec<Value> {
        self.app
            .emulator
            .outlook()
            .list_events(&self.who.mailbox_id)
            .unwrap()
    }

    fn outlook_tasks(&self) -> Vec<Value> {
        self.app
            .emulator
            .outlook()
            .list_tasks(&self.who.mailbox_id, None)
            .unwrap()
    }

    async fn local_events(&self) -> Vec<calendar_events::Model> {
        calendar_events::Entity::find()
            .filter(calendar_events::Column::UserId.eq(self.who.user.id))
            .filter(calendar_events::Column::DeletedAt.is_null())
            .all(&self.app.db)
            .await
            .unwrap()
    }

    async fn local_tasks(&self) -> Vec<tasks::Model> {
        tasks::Entity::find()
            .filter(tasks::Column::UserId.eq(self.who.user.id))
            .filter(tasks::Column::DeletedAt.is_null())
            .all(&self.app.db)
            .await
            .unwrap()
    }

    async fn create_local(&self, resource: Resource, fields: &Fields) -> Uuid {
        local::create(&self.app.db, self.who.user.id, resource, fields)
            .await
            .unwrap()
            .0
    }

    async fn link(&self, local_id: Uuid) -> sync_links::Model {
        sync_links::Entity::find()
            .filter(sync_links::Column::LocalId.eq(local_id))
            .one(&self.app.db)
            .await
            .unwrap()
            .unwrap()
    }

    /// A local event titled "Original" on December `day`, synchronized: its id and Microsoft id.
    async fn synced_event(&self, day: u32) -> (Uuid, String) {
        let id = self
            .create_local(Resource::Calendar, &local_event("Original", day))
            .await;
        self.run().await;
        (id, self.link(id).await.remote_id)
    }

    /// Both sides change the title of a synchronized event: "Microsoft title" and "Local title".
    async fn retitle_on_both_sides(&self, id: Uuid, remote_id: &str, day: u32) {
        self.app
            .emulator
            .outlook()
            .update_event(
                &self.who.mailbox_id,
                remote_id,
                json!({"subject": "Microsoft title"}),
            )
            .unwrap();
        local::update(
            &self.app.db,
            Resource::Calendar,
            id,
            &local_event("Local title", day),
        )
        .await
        .unwrap();
    }

    /// Graph requests since the last call, excluding reads.
    fn writes_since(&self, from: usize) -> Vec<String> {
        self.app.emulator.request_log()[from..]
            .iter()
            .filter(|r| r.method != "GET" && !(r.method == "POST" && r.path.ends_with("$batch")))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

fn titles(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut titles: Vec<String> = values.into_iter().collect();
    titles.sort();
    titles
}

#[tokio::test]
async fn microsoft_items_are_pulled_and_a_quiet_second_run_only_asks_for_the_delta() {
    let s = Sync::new("bidirectional", "local_wins").await;
    let outlook = s.app.emulator.outlook();
    for (title, day) in [("Standup", 1), ("Review", 2), ("Retro", 3)] {
        outlook
            .create_event(&s.who.mailbox_id, event(title, day))
            .unwrap();
    }
    outlook
        .create_task(&s.who.mailbox_id, None, json!({"title": "File the report"}))
        .unwrap();

    let runs = s.run().await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["outcome"], "succeeded", "{}", runs[0]);
    assert_eq!(runs[0]["counts"]["created_locally"], 3);
    assert_eq!(runs[1]["counts"]["created_locally"], 1);
    assert_eq!(
        titles(s.local_events().await.into_iter().map(|e| e.title)),
        ["Retro", "Review", "Standup"]
    );
    assert_eq!(
        titles(s.local_tasks().await.into_iter().map(|t| t.title)),
        ["File the report"]
    );

    let before = s.app.emulator.request_log().len();
    let runs = s.run().await;
    let log = &s.app.emulator.request_log()[before..];
    let deltas = log.iter().filter(|r| r.path.ends_with("/delta")).count();
    assert_eq!(deltas, 2, "one delta request per resource: {log:?}");
    assert_eq!(log.len(), 2, "nothing but the delta requests: {log:?}");
    for run in &runs {
        assert_eq!(run["outcome"], "succeeded");
        let counts = run["counts"].as_object().unwrap();
        assert!(
            counts
                .iter()
                .filter(|(k, _)| *k != "skipped_echoes")
                .all(|(_, v)| v == 0),
            "{run}"
        );
    }
}

#[tokio::test]
async fn local_items_are_pushed_once_and_their_echo_is_not_applied_again() {
    let s = Sync::new("bidirectional", "local_wins").await;
    let event_id = s
        .create_local(Resource::Calendar, &local_event("Board meeting", 4))
        .await;
    s.create_local(Resource::Tasks, &local_task("Call the bank"))
        .await;

    let runs = s.run().await;
    assert_eq!(runs[0]["counts"]["created_remotely"], 1, "{}", runs[0]);
    assert_eq!(runs[1]["counts"]["created_remotely"], 1, "{}", runs[1]);
    let events = s.outlook_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["subject"], "Board meeting");
    assert_eq!(events[0]["transactionId"], event_id.to_string());
    assert_eq!(
        s.outlook_tasks()
            .iter()
            .filter(|t| t["title"] == "Call the bank")
            .count(),
        1
    );

    let before = s.app.emulator.request_log().len();
    let runs = s.run().await;
    assert!(
        s.writes_since(before).is_empty(),
        "no write when nothing changed: {:?}",
        s.writes_since(before)
    );
    for run in &runs {
        assert_eq!(
            run["counts"]["created_locally"], 0,
            "our own items are not imported back: {run}"
        );
        assert_eq!(run["counts"]["updated_locally"], 0, "{run}");
    }
    assert_eq!(s.local_events().await.len(), 1);
    assert_eq!(s.outlook_events().len(), 1);
}

#[tokio::test]
async fn changes_flow_both_ways_and_fields_changed_on_one_side_merge() {
    let s = Sync::new("bidirectional", "local_wins").await;
    let id = s
        .create_local(Resource::Calendar, &local_event("Planning", 5))
        .await;
    s.run().await;
    let remote_id = s.link(id).await.remote_id;

    // Microsoft changes the location, we change the title: both survive.
    s.app
        .emulator
        .outlook()
        .update_event(
            &s.who.mailbox_id,
            &remote_id,
            json!({"location": {"displayName": "Room 4"}}),
        )
        .unwrap();
    let mut fields = local_event("Planning (moved)", 5);
    fields.insert("location".into(), Value::Null);
    local::update(&s.app.db, Resource::Calendar, id, &fields)
        .await
        .unwrap();

    let runs = s.run().await;
    assert_eq!(runs[0]["outcome"], "succeeded", "{}", runs[0]);
    let local = calendar_events::Entity::find_by_id(id)
        .one(&s.app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local.title, "Planning (moved)");
    assert_eq!(local.location.as_deref(), Some("Room 4"));
    let remote = s
        .app
        .emulator
        .outlook()
        .get_event(&s.who.mailbox_id, &remote_id)
        .unwrap();
    assert_eq!(remote["subject"], "Planning (moved)");
    assert_eq!(remote["location"]["displayName"], "Room 4");
}

async fn conflict_on_the_title(strategy: &str, local_newer: bool) -> (String, String) {
    let s = Sync::new("bidirectional", strategy).await;
    let id = s
        .create_local(Resource::Calendar, &local_event("Original", 6))
        .await;
    s.run().await;
    let remote_id = s.link(id).await.remote_id;
    if local_newer {
        s.app
            .emulator
            .outlook()
            .update_event(
                &s.who.mailbox_id,
                &remote_id,
                json!({"subject": "Microsoft title"}),
            )
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        local::update(
            &s.app.db,
            Resource::Calendar,
            id,
            &local_event("Local title", 6),
        )
        .await
        .unwrap();
    } else {
        local::update(
            &s.app.db,
            Resource::Calendar,
            id,
            &local_event("Local title", 6),
        )
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        s.app
            .emulator
            .outlook()
            .update_event(
                &s.who.mailbox_id,
                &remote_id,
                json!({"subject": "Microsoft title"}),
            )
            .unwrap();
    }
    let runs = s.run().await;
    assert!(
        runs[0]["counts"]["conflicts"].as_u64().unwrap() >= 1,
        "{}",
        runs[0]
    );
    assert!(
        runs[0]["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("both sides changed")),
        "{}",
        runs[0]
    );
    let local = calendar_events::Entity::find_by_id(id)
        .one(&s.app.db)
        .await
        .unwrap()
        .unwrap();
    let remote = s
        .app
        .emulator
        .outlook()
        .get_event(&s.who.mailbox_id, &remote_id)
        .unwrap();
    (local.title, remote["subject"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn conflicts_follow_the_configured_strategy() {
    let cases = [
        ("local_wins", false, "Local title"),
        ("microsoft_wins", true, "Microsoft title"),
        ("most_recent_wins", true, "Local title"),
        ("most_recent_wins", false, "Microsoft title"),
    ];
    for (strategy, local_newer, winner) in cases {
        let (local, remote) = conflict_on_the_title(strategy, local_newer).await;
        assert_eq!(
            local, winner,
            "{strategy} (local newer: {local_newer}): local side"
        );
        assert_eq!(
            remote, winner,
            "{strategy} (local newer: {local_newer}): Microsoft side"
        );
    }
}

#[tokio::test]
async fn manual_conflicts_are_parked_and_leave_both_sides_alone() {
    let s = Sync::new("bidirectional", "manual").await;
    let (id, remote_id) = s.synced_event(7).await;
    s.retitle_on_both_sides(id, &remote_id, 7).await;
    let runs = s.run().await;
    assert_eq!(runs[0]["counts"]["conflicts"], 1, "{}", runs[0]);
    let local = calendar_events::Entity::find_by_id(id)
        .one(&s.app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local.title, "Local title");
    assert_eq!(
        s.app
            .emulator
            .outlook()
            .get_event(&s.who.mailbox_id, &remote_id)
            .unwrap()["subject"],
        "Microsoft title"
    );
    let parked = entity::sync_conflicts::Entity::find()
        .all(&s.app.db)
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].local_id, id);
}

#[tokio::test]
async fn one_way_directions_ignore_the_other_side_and_say_so() {
    // to_microsoft: Microsoft's change is not pulled; ours overwrites it.
    let s = Sync::new("to_microsoft", "local_wins").await;
    let id = s
        .create_local(Resource::Calendar, &local_event("Ours", 8))
        .await;
    s.run().await;
    let remote_id = s.link(id).await.remote_id;
    s.app
        .emulator
        .outlook()
        .update_event(&s.who.mailbox_id, &remote_id, json!({"subject": "Theirs"}))
        .unwrap();
    s.app
        .emulator
        .outlook()
        .create_event(&s.who.mailbox_id, event("Only in Outlook", 9))
        .unwrap();
    let runs = s.run().await;
    assert!(
        runs[0]["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("to_microsoft")),
        "{}",
        runs[0]
    );
    assert_eq!(s.local_events().await.len(), 1, "nothing pulled");
    local::update(
        &s.app.db,
        Resource::Calendar,
        id,
        &local_event("Ours again", 8),
    )
    .await
    .unwrap();
    s.run().await;
    assert_eq!(
        s.app
            .emulator
            .outlook()
            .get_event(&s.who.mailbox_id, &remote_id)
            .unwrap()["subject"],
        "Ours again"
    );

    // from_microsoft: local changes are not sent.
    let s = Sync::new("from_microsoft", "local_wins").await;
    s.create_local(Resource::Tasks, &local_task("Local only"))
        .await;
    s.app
        .emulator
        .outlook()
        .create_task(&s.who.mailbox_id, None, json!({"title": "From To Do"}))
        .unwrap();
    let runs = s.run().await;
    assert_eq!(runs[1]["counts"]["ignored"], 1, "{}", runs[1]);
    assert!(
        runs[1]["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("not sent")),
        "{}",
        runs[1]
    );
    assert!(s.outlook_tasks().iter().all(|t| t["title"] != "Local only"));
    assert_eq!(
        titles(s.local_tasks().await.into_iter().map(|t| t.title)),
        ["From To Do", "Local only"]
    );
}

#[tokio::test]
async fn deletions_propagate_both_ways() {
    let s = Sync::new("bidirectional", "local_wins").await;
    let ours = s
        .create_local(Resource::Calendar, &local_event("Delete me here", 10))
        .await;
    let theirs = s
        .create_local(Resource::Calendar, &local_event("Delete me in Outlook", 11))
        .await;
    s.run().await;
    let their_remote = s.link(theirs).await.remote_id;

    local::tombstone(&s.app.db, Resource::Calendar, ours)
        .await
        .unwrap();
    s.app
        .emulator
        .outlook()
        .delete_event(&s.who.mailbox_id, &their_remote)
        .unwrap();
    let runs = s.run().await;
    assert_eq!(runs[0]["counts"]["deleted_remotely"], 1, "{}", runs[0]);
    assert_eq!(runs[0]["counts"]["deleted_locally"], 1, "{}", runs[0]);
    assert!(s.outlook_events().is_empty());
    assert!(s.local_events().await.is_empty());
}

#[tokio::test]
async fn a_modification_wins_over_a_deletion_on_the_other_side() {
    let s = Sync::new("bidirectional", "local_wins").await;
    let id = s
        .create_local(Resource::Calendar, &local_event("Keep me", 12))
        .await;
    s.run().await;
    let remote_id = s.link(id).await.remote_id;
    s.app
        .emulator
        .outlook()
        .delete_event(&s.who.mailbox_id, &remote_id)
        .unwrap();
    local::update(
        &s.app.db,
        Resource::Calendar,
        id,
        &local_event("Keep me (edited)", 12),
    )
    .await
    .unwrap();
    s.run().await;
    let events = s.outlook_events();
    assert_eq!(events.len(), 1, "recreated in Outlook");
    assert_eq!(events[0]["subject"], "Keep me (edited)");
    assert_eq!(s.local_events().await.len(), 1);
}

#[tokio::test]
async fn an_expired_delta_token_resyncs_without_duplicates() {
    let s = Sync::new("bidirectional", "local_wins").await;
    s.app
        .emulator
        .outlook()
        .create_event(&s.who.mailbox_id, event("Existing", 13))
        .unwrap();
    s.create_local(Resource::Calendar, &local_event("Ours", 14))
        .await;
    s.run().await;
    s.app.emulator.expire_delta_tokens(Some(&s.who.mailbox_id));
    let runs = s.run().await;
    assert!(
        runs[0]["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("full resync")),
        "{}",
        runs[0]
    );
    assert_eq!(runs[0]["counts"]["created_locally"], 0, "{}", runs[0]);
    assert_eq!(s.local_events().await.len(), 2);
    assert_eq!(s.outlook_events().len(), 2);
}

#[tokio::test]
async fn throttled_batch_items_are_retried_after_retry_after() {
    let s = Sync::new("bidirectional", "local_wins").await;
    for n in 0..3 {
        s.create_local(
            Resource::Calendar,
            &local_event(&format!("Event {n}"), 15 + n),
        )
        .await;
    }
    s.app.emulator.inject_fault(FaultSpec {
        method: Some("POST".into()),
        path_contains: Some("/me/events".into()),
        count: 1,
        skip: 0,
        kind: Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
    });
    let runs = s.run().await;
    assert_eq!(runs[0]["outcome"], "succeeded", "{}", runs[0]);
    assert_eq!(runs[0]["counts"]["created_remotely"], 3);
    assert_eq!(s.outlook_events().len(), 3, "no duplicate after the retry");
}

#[tokio::test]
async fn a_revoked_connection_stops_the_run_cleanly() {
    let s = Sync::new("bidirectional", "local_wins").await;
    s.app.emulator.revoke_refresh_tokens(&s.who.mailbox_id);
    s.app.emulator.expire_access_tokens(Some(&s.who.mailbox_id));
    let runs = s.run().await;
    assert_eq!(runs[0]["outcome"], "reauth_required", "{}", runs[0]);
    let history = s
        .app
        .get(
            &format!("/api/v1/users/{}/microsoft/sync/runs", s.who.user.id),
            &s.who.user.token,
        )
        .await;
    assert_eq!(history.status, StatusCode::OK);
    assert_eq!(history.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(history.body["items"][0]["outcome"], "reauth_required");
}

#[tokio::test]
async fn the_mass_delete_guard_holds_deletions_until_confirmed() {
    let s = Sync::new("bidirectional", "local_wins").await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(
            s.create_local(Resource::Tasks, &local_task(&format!("Task {n}")))
                .await,
        );
    }
    s.run().await;
    for id in &ids[..11] {
        local::tombstone(&s.app.db, Resource::Tasks, *id)
            .await
            .unwrap();
    }
    let runs = s.run().await;
    assert_eq!(runs[1]["outcome"], "mass_delete_blocked", "{}", runs[1]);
    assert_eq!(
        s.outlook_tasks()
            .iter()
            .filter(|t| t["title"].as_str().unwrap().starts_with("Task "))
            .count(),
        12
    );

    let confirm = s
        .app
        .post(
            &format!(
                "/api/v1/users/{}/microsoft/sync/confirm-deletions",
                s.who.user.id
            ),
            &s.who.user.token,
            json!({}),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::NO_CONTENT);
    let runs = s.run().await;
    assert_eq!(runs[1]["outcome"], "succeeded", "{}", runs[1]);
    assert_eq!(runs[1]["counts"]["deleted_remotely"], 11);
    assert_eq!(
        s.outlook_tasks()
            .iter()
            .filter(|t| t["title"].as_str().unwrap().starts_with("Task "))
            .count(),
        1
    );
}

#[tokio::test]
async fn manual_conflicts_are_listed_and_resolved_through_the_api() {
    for (resolution, expected) in [("microsoft", "Microsoft title"), ("local", "Local title")] {
        let s = Sync::new("bidirectional", "manual").await;
        let (id, remote_id) = s.synced_event(20).await;
        s.retitle_on_both_sides(id, &remote_id, 20).await;
        s.run().await;

        let path = format!("/api/v1/users/{}/microsoft/conflicts", s.who.user.id);
        let listed = s.app.get(&path, &s.who.user.token).await;
        assert_eq!(listed.status, StatusCode::OK);
        let conflict = &listed.body["items"][0];
        assert_eq!(conflict["local"]["title"], "Local title");
        assert_eq!(conflict["microsoft"]["title"], "Microsoft title");
        assert_eq!(conflict["base"]["title"], "Original");

        let resolve = format!("{path}/{}/resolve", conflict["id"].as_str().unwrap());
        let resolved = s
            .app
            .post(
                &resolve,
                &s.who.user.token,
                json!({"resolution": resolution}),
            )
            .await;
        assert_eq!(resolved.status, StatusCode::OK, "{resolved:?}");
        let again = s
            .app
            .post(
                &resolve,
                &s.who.user.token,
                json!({"resolution": resolution}),
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(again.code(), "conflict_resolved");

        s.run().await;
        let local = calendar_events::Entity::find_by_id(id)
            .one(&s.app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(local.title, expected, "{resolution}");
        let remote = s
            .app
            .emulator
            .outlook()
            .get_event(&s.who.mailbox_id, &remote_id)
            .unwrap();
        assert_eq!(remote["subject"], expected, "{resolution}");
        assert_eq!(
            s.app.get(&path, &s.who.user.token).await.body["items"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        // Quiet afterwards: no ping-pong.
        let before = s.app.emulator.request_log().len();
        s.run().await;
        s.run().await;
        assert!(
            s.writes_since(before).is_empty(),
            "{resolution}: {:?}",
            s.writes_since(before)
        );
    }
}

impl Sync {
    /// Both sides hold the same items, each once, and every local item is linked.
    async fn assert_in_sync(&self, context: &str) {
        let local_events = titles(self.local_events().await.into_iter().map(|e| e.title));
        let remote_events = titles(
            self.outlook_events()
                .iter()
                .map(|e| e["subject"].as_str().unwrap().to_owned()),
        );
        assert_eq!(local_events, remote_events, "{context}: events differ");
        let local_tasks = titles(self.local_tasks().await.into_iter().map(|t| t.title));
        let remote_tasks = titles(
            self.outlook_tasks()
                .iter()
                .map(|t| t["title"].as_str().unwrap().to_owned()),
        );
        assert_eq!(local_tasks, remote_tasks, "{context}: tasks differ");
        for list in [&local_events, &local_tasks] {
            let mut unique = list.clone();
            unique.dedup();
            assert_eq!(&unique, list, "{context}: duplicates");
        }
        let links = sync_links::Entity::find()
            .filter(sync_links::Column::UserId.eq(self.who.user.id))
            .all(&self.app.db)
            .await
            .unwrap();
        assert_eq!(
            links.len(),
            local_events.len() + local_tasks.len(),
            "{context}: every item is linked once"
        );
    }

    fn drop_once(&self, method: &str, path: &str) {
        self.app.emulator.inject_fault(FaultSpec {
            method: Some(method.into()),
            path_contains: Some(path.into()),
            count: 1,
            skip: 0,
            kind: Fault::DropConnection,
        });
    }
}

#[tokio::test]
async fn a_run_cut_short_at_any_graph_call_is_finished_by_the_next_without_duplicates() {
    // Each Graph call of a run that creates, updates and pulls, dropped after Microsoft
    // carried it out (the answer is lost), then a normal run.
    let cuts = [
        ("GET", "/calendarView/delta"),
        ("GET", "/todo/lists"),
        ("GET", "/tasks/delta"),
        ("POST", "$batch"),
    ];
    for (method, path) in cuts {
        let s = Sync::new("bidirectional", "local_wins").await;
        s.create_local(Resource::Calendar, &local_event("Ours", 21))
            .await;
        s.create_local(Resource::Tasks, &local_task("Our task"))
            .await;
        s.app
            .emulator
            .outlook()
            .create_event(&s.who.mailbox_id, event("Theirs", 22))
            .unwrap();
        s.app
            .emulator
            .outlook()
            .create_task(&s.who.mailbox_id, None, json!({"title": "Their task"}))
            .unwrap();
        s.app.emulator.update_config(|c| c.default_page_size = 1);
        // A dropped answer to every attempt: the run gives up on that call.
        for _ in 0..4 {
            s.drop_once(method, path);
        }
        // The run meets the dropped answers; whatever it did, the next runs converge.
        let _ = s.app.sync_now(&s.who.user).await;
        s.app.emulator.clear_faults();
        s.run().await;
        s.run().await;
        s.assert_in_sync(&format!("cut at {method} {path}")).await;
    }
}

#[tokio::test]
async fn random_edits_on_both_sides_with_faults_converge() {
    use rand::{Rng, RngExt, SeedableRng, rngs::StdRng};
    let seed = std::env::var("SYNC_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261127u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let s = Sync::new("bidirectional", "local_wins").await;
    // As the real service sometimes does: rounds that send an unchanged item again.
    s.app.emulator.update_config(|c| c.delta_replays = 1_000);
    let outlook = s.app.emulator.outlook();
    let mailbox = s.who.mailbox_id.clone();
    let mut counter = 0;
    for step in 0..60 {
        counter += 1;
        let events = s.local_events().await;
        let tasks = s.local_tasks().await;
        match rng.random_range(0..12) {
            10 if !events.is_empty() && !tasks.is_empty() => {
                // A person edits an event and deletes a task through the API while a run waits
                // between two delta pages.
                let e = &events[rng.random_range(0..events.len())];
                let t = &tasks[rng.random_range(0..tasks.len())];
                let event_path =
                    format!("/api/v1/users/{}/calendar-events/{}", s.who.user.id, e.id);
                let task_path = format!("/api/v1/users/{}/tasks/{}", s.who.user.id, t.id);
                let title = format!("{} a{counter}", e.title);
                s.app.emulator.update_config(|c| c.delta_page_cap = Some(1));
                s.app.emulator.inject_fault(FaultSpec {
                    method: Some("GET".into()),
                    path_contains: Some("/delta".into()),
                    count: 1,
                    skip: rng.random_range(0..3),
                    kind: Fault::Latency(std::time::Duration::from_millis(400)),
                });
                let edits = async {
                    tokio::time::sleep(std::time::Duration::from_millis(rng.random_range(0..300)))
                        .await;
                    let token = &s.who.user.token;
                    let edited = s
                        .app
                        .patch(&event_path, token, json!({"title": title}))
                        .await;
                    assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
                    let deleted = s
                        .app
                        .request(reqwest::Method::DELETE, &task_path, Some(token), None)
                        .await;
                    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
                };
                let (runs, ()) = tokio::join!(s.app.sync_now(&s.who.user), edits);
                assert!(!runs.is_empty(), "step {step} (seed {seed}): no run");
                s.app.emulator.clear_faults();
                s.app.emulator.update_config(|c| c.delta_page_cap = None);
            }
            11 => {
                // A run stopped at a random moment, as a crash of its worker stops it; the
                // next runs take over.
                let state = s.app.state_with(|_| {}).await;
                // The run's own pool, closed once it is cut (PostgreSQL counts connections).
                let pool = state.db.clone();
                let user_id = s.who.user.id;
                let resource = if rng.random_bool(0.5) {
                    Resource::Calendar
                } else {
                    Resource::Tasks
                };
                let run = tokio::spawn(async move {
                    m365_sync::sync::engine::run(&state, Uuid::now_v7(), user_id, resource).await
                });
                tokio::time::sleep(std::time::Duration::from_millis(rng.random_range(0..150)))
                    .await;
                run.abort();
                let _ = run.await;
                let _ = pool.close().await;
            }
            0 => {
                s.create_local(
                    Resource::Calendar,
                    &local_event(&format!("L-event-{counter}"), 1 + counter % 27),
                )
                .await;
            }
            1 => {
                s.create_local(Resource::Tasks, &local_task(&format!("L-task-{counter}")))
                    .await;
            }
            2 if !events.is_empty() => {
                let e = &events[rng.random_range(0..events.len())];
                let mut fields = m365_sync::sync::fields::event_from_local(e);
                fields.insert("title".into(), json!(format!("{} l{counter}", e.title)));
                local::update(&s.app.db, Resource::Calendar, e.id, &fields)
                    .await
                    .unwrap();
            }
            3 if !tasks.is_empty() => {
                let t = &tasks[rng.random_range(0..tasks.len())];
                local::tombstone(&s.app.db, Resource::Tasks, t.id)
                    .await
                    .unwrap();
            }
            4 => {
                outlook
                    .create_event(
                        &mailbox,
                        event(&format!("R-event-{counter}"), 1 + counter % 27),
                    )
                    .unwrap();
            }
            5 => {
                outlook
                    .create_task(
                        &mailbox,
                        None,
                        json!({"title": format!("R-task-{counter}")}),
                    )
                    .unwrap();
            }
            6 => {
                let remote = s.outlook_events();
                if !remote.is_empty() {
                    let e = &remote[rng.random_range(0..remote.len())];
                    let title = format!("{} r{counter}", e["subject"].as_str().unwrap());
                    outlook
                        .update_event(
                            &mailbox,
                            e["id"].as_str().unwrap(),
                            json!({"subject": title}),
                        )
                        .unwrap();
                }
            }
            7 => {
                let remote = s.outlook_events();
                if !remote.is_empty() && rng.random_bool(0.5) {
                    outlook
                        .delete_event(
                            &mailbox,
                            remote[rng.random_range(0..remote.len())]["id"]
                                .as_str()
                                .unwrap(),
                        )
                        .unwrap();
                }
            }
            _ => {
                match rng.random_range(0..4) {
                    0 => s.drop_once("POST", "$batch"),
                    1 => s.app.emulator.inject_fault(FaultSpec {
                        method: Some("GET".into()),
                        path_contains: Some("/delta".into()),
                        count: 1,
                        skip: 0,
                        kind: Fault::Status {
                            status: 503,
                            retry_after: None,
                        },
                    }),
                    2 => s.app.emulator.inject_fault(FaultSpec {
                        method: Some("POST".into()),
                        path_contains: Some("/me/".into()),
                        count: 1,
                        skip: 0,
                        kind: Fault::Status {
                            status: 429,
                            retry_after: Some(1),
                        },
                    }),
                    _ => {}
                }
                let runs = s.app.sync_now(&s.who.user).await;
                assert!(!runs.is_empty(), "step {step} (seed {seed}): no run");
                s.app.emulator.clear_faults();
                // After a quiet run, both sides agree.
                s.run().await;
                s.run().await;
                s.assert_in_sync(&format!("step {step} (seed {seed})"))
                    .await;
            }
        }
        let _ = rng.next_u32();
    }
    s.run().await;
    s.run().await;
    s.assert_in_sync(&format!("end (seed {seed})")).await;
}

#[tokio::test]
async fn one_way_directions_resolve_both_sided_changes_the_same_whatever_the_strategy() {
    // (direction, conflict resolution): in one-way sync the source side always wins.
    let strategies = ["local_wins", "microsoft_wins", "most_recent_wins", "manual"];
    for direction in ["to_microsoft", "from_microsoft"] {
        for strategy in strategies {
            let s = Sync::new(direction, strategy).await;
            let id = if direction == "to_microsoft" {
                s.create_local(Resource::Calendar, &local_event("Original", 23))
                    .await
            } else {
                s.app
                    .emulator
                    .outlook()
                    .create_event(&s.who.mailbox_id, event("Original", 23))
                    .unwrap();
                s.run().await;
                s.local_events().await[0].id
            };
            s.run().await;
            let remote_id = s.link(id).await.remote_id;
            s.app
                .emulator
                .outlook()
                .update_event(
                    &s.who.mailbox_id,
                    &remote_id,
                    json!({"subject": "Microsoft title"}),
                )
                .unwrap();
            local::update(
                &s.app.db,
                Resource::Calendar,
                id,
                &local_event("Local title", 23),
            )
            .await
            .unwrap();
            let runs = s.run().await;
            assert_eq!(
                runs[0]["outcome"], "succeeded",
                "{direction}/{strategy}: {}",
                runs[0]
            );
            let local = calendar_events::Entity::find_by_id(id)
                .one(&s.app.db)
                .await
                .unwrap()
                .unwrap();
            let remote = s
                .app
                .emulator
                .outlook()
                .get_event(&s.who.mailbox_id, &remote_id)
                .unwrap();
            let (want_local, want_remote) = if direction == "to_microsoft" {
                ("Local title", "Local title")
            } else {
                ("Microsoft title", "Microsoft title")
            };
            assert_eq!(
                local.title, want_local,
                "{direction}/{strategy}: local side"
            );
            assert_eq!(
                remote["subject"], want_remote,
                "{direction}/{strategy}: Microsoft side"
            );
            assert!(
                entity::sync_conflicts::Entity::find()
                    .all(&s.app.db)
                    .await
                    .unwrap()
                    .is_empty(),
                "{direction}/{strategy}: nothing parked"
            );
        }
    }
}

#[tokio::test]
async fn a_resync_finds_items_deleted_while_the_delta_token_was_not_valid() {
    let s = Sync::new("bidirectional", "local_wins").await;
    let keep = s
        .create_local(Resource::Calendar, &local_event("Keep", 24))
        .await;
    let gone = s
        .create_local(Resource::Calendar, &local_event("Gone", 25))
        .await;
    let task = s
        .create_local(Resource::Tasks, &local_task("Gone task"))
        .await;
    // A listing that still holds an item: an empty one deletes nothing unconfirmed.
    let kept_task = s
        .create_local(Resource::Tasks, &local_task("Kept task"))
        .await;
    s.run().await;
    s.app
        .emulator
        .outlook()
        .delete_event(&s.who.mailbox_id, &s.link(gone).await.remote_id)
        .unwrap();
    s.app
        .emulator
        .outlook()
        .delete_task(&s.who.mailbox_id, None, &s.link(task).await.remote_id)
        .unwrap();
    // The deletions happen while the delta state is lost: only a full listing can tell.
    s.app.emulator.expire_delta_tokens(Some(&s.who.mailbox_id));
    let runs = s.run().await;
    assert_eq!(runs[0]["counts"]["deleted_locally"], 1, "{}", runs[0]);
    assert_eq!(runs[1]["counts"]["deleted_locally"], 1, "{}", runs[1]);
    let events: Vec<Uuid> = s.local_events().await.into_iter().map(|e| e.id).collect();
    assert_eq!(events, [keep]);
    let tasks: Vec<Uuid> = s.local_tasks().await.into_iter().map(|t| t.id).collect();
    assert_eq!(tasks, [kept_task]);
    s.assert_in_sync("after the resync").await;
}

/// A field of an event changed on both sides: the API patch and Graph patch that change it,
/// where each side shows it, and what each side shows when the local or Microsoft's change wins
/// (strings compare by prefix, for Graph's fractional seconds).
struct FieldCase {
    api: Value,
    graph: Value,
    api_at: &'static str,
    graph_at: &'static str,
    ours: (Value, Value),
    theirs: (Value, Value),
}

fn field_cases(day: impl Fn(usize) -> String) -> Vec<FieldCase> {
    let mut cases = vec![
        FieldCase {
            api: json!({"title": "Our title"}),
            graph: json!({"subject": "Their title"}),
            api_at: "/title",
            graph_at: "/subject",
            ours: (json!("Our title"), json!("Our title")),
            theirs: (json!("Their title"), json!("Their title")),
        },
        FieldCase {
            api: json!({"description": "Our notes"}),
            graph: json!({"body": {"contentType": "html", "content": "<p>Their <b>notes</b></p>"}}),
            api_at: "/description",
            graph_at: "/body/content",
            // The event had no description: text given stays text.
            ours: (json!("Our notes"), json!("Our notes")),
            theirs: (json!("Their notes"), json!("<p>Their <b>notes</b></p>")),
        },
        FieldCase {
            api: json!({"location": "Our room"}),
            graph: json!({"location": {"displayName": "Their room"}}),
            api_at: "/location",
            graph_at: "/location/displayName",
            ours: (json!("Our room"), json!("Our room")),
            theirs: (json!("Their room"), json!("Their room")),
        },
        FieldCase {
            api: json!({"reminder_minutes": 5}),
            graph: json!({"isReminderOn": true, "reminderMinutesBeforeStart": 45}),
            api_at: "/reminder_minutes",
            graph_at: "/reminderMinutesBeforeStart",
            ours: (json!(5), json!(5)),
            theirs: (json!(45), json!(45)),
        },
        FieldCase {
            api: json!({"show_as": "free"}),
            graph: json!({"showAs": "tentative"}),
            api_at: "/show_as",
            graph_at: "/showAs",
            ours: (json!("free"), json!("free")),
            theirs: (json!("tentative"), json!("tentative")),
        },
        FieldCase {
            api: json!({"importance": "high"}),
            graph: json!({"importance": "low"}),
            api_at: "/importance",
            graph_at: "/importance",
            ours: (json!("high"), json!("high")),
            theirs: (json!("low"), json!("low")),
        },
        FieldCase {
            api: json!({"sensitivity": "private"}),
            graph: json!({"sensitivity": "personal"}),
            api_at: "/sensitivity",
            graph_at: "/sensitivity",
            ours: (json!("private"), json!("private")),
            theirs: (json!("personal"), json!("personal")),
        },
        FieldCase {
            api: json!({"categories": ["Ours"]}),
            graph: json!({"categories": ["Theirs"]}),
            api_at: "/categories",
            graph_at: "/categories",
            ours: (json!(["Ours"]), json!(["Ours"])),
            theirs: (json!(["Theirs"]), json!(["Theirs"])),
        },
    ];
    let n = cases.len();
    let (ours_day, theirs_day) = (day(n), day(n));
    cases.push(FieldCase {
        api: json!({"start": {"date_time": format!("{ours_day}T11:00:00"), "time_zone": "UTC"},
                    "end": {"date_time": format!("{ours_day}T12:00:00"), "time_zone": "UTC"}}),
        graph: json!({"start": {"dateTime": format!("{theirs_day}T13:00:00"), "timeZone": "UTC"},
                      "end": {"dateTime": format!("{theirs_day}T14:00:00"), "timeZone": "UTC"}}),
        api_at: "/start/date_time",
        graph_at: "/start/dateTime",
        ours: (
            json!(format!("{ours_day}T11:00:00")),
            json!(format!("{ours_day}T11:00:00")),
        ),
        theirs: (
            json!(format!("{theirs_day}T13:00:00")),
            json!(format!("{theirs_day}T13:00:00")),
        ),
    });
    cases
}

fn shows(actual: &Value, expected: &Value) -> bool {
    match (actual.as_str(), expected.as_str()) {
        (Some(a), Some(e)) => a.starts_with(e),
        _ => actual == expected,
    }
}

#[tokio::test]
async fn every_event_field_changed_on_both_sides_follows_every_strategy() {
    let day = |n: usize| format!("2027-03-{:02}", n + 1);
    for strategy in ["local_wins", "microsoft_wins", "most_recent_wins", "manual"] {
        let s = Sync::new("bidirectional", strategy).await;
        let cases = field_cases(day);
        let outlook = s.app.emulator.outlook();
        let mut remote_ids = Vec::new();
        for n in 0..cases.len() {
            let created = outlook
                .create_event(
                    &s.who.mailbox_id,
                    json!({
                        "subject": format!("Case {n}"),
                        "start": {"dateTime": format!("{}T09:00:00", day(n)), "timeZone": "UTC"},
                        "end": {"dateTime": format!("{}T10:00:00", day(n)), "timeZone": "UTC"},
                    }),
                )
                .unwrap();
            remote_ids.push(created["id"].as_str().unwrap().to_owned());
        }
        s.run().await;
        let events = format!("/api/v1/users/{}/calendar-events", s.who.user.id);
        let listed = s
            .app
            .get(&format!("{events}?limit=100"), &s.who.user.token)
            .await
            .body;
        let local_id = |n: usize| {
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["title"] == format!("Case {n}"))
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let local_ids: Vec<String> = (0..cases.len()).map(local_id).collect();
        // Microsoft first, then here: the local change is the more recent one.
        for (case, remote_id) in cases.iter().zip(&remote_ids) {
            outlook
                .update_event(&s.who.mailbox_id, remote_id, case.graph.clone())
                .unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        for (case, id) in cases.iter().zip(&local_ids) {
            let response = s
                .app
                .patch(
                    &format!("{events}/{id}"),
                    &s.who.user.token,
                    case.api.clone(),
                )
                .await;
            assert_eq!(
                response.status,
                StatusCode::OK,
                "{}: {response:?}",
                case.api
            );
        }
        let runs = s.run().await;
        assert_eq!(
            runs[0]["counts"]["conflicts"],
            cases.len(),
            "{strategy}: {}",
            runs[0]
        );
        for ((case, id), remote_id) in cases.iter().zip(&local_ids).zip(&remote_ids) {
            let local = s
                .app
                .get(&format!("{events}/{id}"), &s.who.user.token)
                .await
                .body;
            let remote = outlook.get_event(&s.who.mailbox_id, remote_id).unwrap();
            let (local_side, remote_side) = match strategy {
                "microsoft_wins" => (&case.theirs.0, &case.theirs.1),
                // `manual` parks: each side keeps its own change.
                "manual" => (&case.ours.0, &case.theirs.1),
                _ => (&case.ours.0, &case.ours.1),
            };
            let shown = local.pointer(case.api_at).unwrap_or(&Value::Null);
            assert!(
                shows(shown, local_side),
                "{strategy} {}: here {shown}, expected {local_side}",
                case.api_at
            );
            let held = remote.pointer(case.graph_at).unwrap_or(&Value::Null);
            assert!(
                shows(held, remote_side),
                "{strategy} {}: Microsoft {held}, expected {remote_side}",
                case.graph_at
            );
        }
    }
}
