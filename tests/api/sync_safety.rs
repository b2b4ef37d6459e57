//! The sync safety contract, tried as people use the service: edits and deletions made through
//! the API while a run is applying Microsoft's pages, mass deletions coming from Microsoft,
//! re-matching after a purge or a list switched away and back, and series pushes cut after
//! every Graph call. The races are made deterministic by holding one Graph request in the
//! emulator (a latency fault) and acting once the request log shows the run got that far.

use std::time::Duration;

use chrono::{Days, Utc};
use graph_emulator::{Fault, FaultSpec, LoggedRequest};
use m365_sync::domain::links::Resource;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{MailboxUser, Response, TestApp, spawn_app};

const STRATEGIES: [&str; 4] = ["local_wins", "microsoft_wins", "most_recent_wins", "manual"];

/// How long a held Graph request waits: time for the test to act while the run waits.
const HOLD: Duration = Duration::from_millis(4000);

/// A connected user synchronizing the given resources bidirectionally with one strategy.
struct Safety {
    app: TestApp,
    who: MailboxUser,
}

/// One local item and its Microsoft copy.
#[derive(Clone, Debug)]
struct Item {
    id: String,
    remote_id: String,
}

impl Safety {
    async fn new(resources: &[Resource], strategy: &str) -> Self {
        let app = spawn_app().await;
        let who = app.connected_user().await;
        let s = Self { app, who };
        s.configure(resources, strategy).await;
        s
    }

    async fn configure(&self, resources: &[Resource], strategy: &str) {
        let sync = |r: Resource| {
            json!({"enabled": resources.contains(&r), "direction": "bidirectional",
                   "conflict_resolution": strategy})
        };
        let settings =
            json!({"calendar": sync(Resource::Calendar), "tasks": sync(Resource::Tasks)});
        let path = format!("/api/v1/users/{}/settings/microsoft", self.who.user.id);
        let response = self.app.patch(&path, &self.who.user.token, settings).await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
    }

    fn user_path(&self, rest: &str) -> String {
        format!("/api/v1/users/{}{rest}", self.who.user.id)
    }

    fn collection(resource: Resource) -> &'static str {
        match resource {
            Resource::Calendar => "calendar-events",
            Resource::Tasks => "tasks",
        }
    }

    fn item_path(&self, resource: Resource, id: &str) -> String {
        self.user_path(&format!("/{}/{id}", Self::collection(resource)))
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.app
            .request(method, path, Some(&self.who.user.token), body)
            .await
    }

    /// Creates a local item through the API: an event on day `day` of next January, or a task.
    async fn create(&self, resource: Resource, title: &str, day: u32) -> String {
        let body = match resource {
            Resource::Calendar => json!({
                "title": title,
                "start": {"date_time": format!("2027-01-{day:02}T09:00:00"), "time_zone": "UTC"},
                "end": {"date_time": format!("2027-01-{day:02}T10:00:00"), "time_zone": "UTC"},
            }),
            Resource::Tasks => json!({"title": title}),
        };
        let path = self.user_path(&format!("/{}", Self::collection(resource)));
        let response = self.call(Method::POST, &path, Some(body)).await;
        assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
        response.body["id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, resource: Resource, id: &str) -> Response {
        self.call(Method::GET, &self.item_path(resource, id), None)
            .await
    }

    async fn run(&self) -> Vec<Value> {
        self.app.sync_now(&self.who.user).await
    }

    /// The Microsoft id of a synchronized local item.
    async fn remote_id(&self, resource: Resource, id: &str) -> String {
        let item = self.get(resource, id).await;
        item.body["microsoft"]["remote_id"]
            .as_str()
            .unwrap_or_else(|| panic!("not synchronized: {item:?}"))
            .to_owned()
    }

    async fn synced(&self, resource: Resource, titles: &[(&str, u32)]) -> Vec<Item> {
        let mut ids = Vec::new();
        for (title, day) in titles {
            ids.push(self.create(resource, title, *day).await);
        }
        self.run().await;
        let mut items = Vec::new();
        for id in ids {
            let remote_id = self.remote_id(resource, &id).await;
            items.push(Item { id, remote_id });
        }
        items
    }

    /// Changes an item "in Outlook" or "in To Do".
    fn remote_edit(&self, resource: Resource, remote_id: &str, title: &str) {
        let outlook = self.app.emulator.outlook();
        match resource {
            Resource::Calendar => {
                outlook
                    .update_event(&self.who.mailbox_id, remote_id, json!({"subject": title}))
                    .unwrap();
            }
            Resource::Tasks => {
                outlook
                    .update_task(
                        &self.who.mailbox_id,
                        None,
                        remote_id,
                        json!({"title": title}),
                    )
                    .unwrap();
            }
        }
    }

    fn remote_delete(&self, resource: Resource, remote_id: &str) {
        let outlook = self.app.emulator.outlook();
        match resource {
            Resource::Calendar => outlook
                .delete_event(&self.who.mailbox_id, remote_id)
                .unwrap(),
            Resource::Tasks => outlook
                .delete_task(&self.who.mailbox_id, None, remote_id)
                .unwrap(),
        }
    }

    /// Microsoft's items of a resource (the default To Do list for tasks).
    fn remote_items(&self, resource: Resource) -> Vec<Value> {
        let outlook = self.app.emulator.outlook();
        match resource {
            Resource::Calendar => outlook.list_events(&self.who.mailbox_id).unwrap(),
            Resource::Tasks => outlook.list_tasks(&self.who.mailbox_id, None).unwrap(),
        }
    }

    /// One of Microsoft's items by the id the service keeps (events: the immutable one).
    fn remote_item(&self, resource: Resource, remote_id: &str) -> Option<Value> {
        match resource {
            Resource::Calendar => self
                .app
                .emulator
                .outlook()
                .get_event(&self.who.mailbox_id, remote_id)
                .ok()
                .filter(|e| e["isCancelled"] != true),
            Resource::Tasks => self
                .remote_items(resource)
                .into_iter()
                .find(|i| i["id"] == remote_id),
        }
    }

    /// The titles of the items on each side, sorted: (local, Microsoft).
    async fn titles(&self, resource: Resource) -> (Vec<String>, Vec<String>) {
        let path = self.user_path(&format!("/{}?limit=500", Self::collection(resource)));
        let local = self.call(Method::GET, &path, None).await;
        let mut local: Vec<String> = local.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_owned())
            .collect();
        let key = match resource {
            Resource::Calendar => "subject",
            Resource::Tasks => "title",
        };
        let mut remote: Vec<String> = self
            .remote_items(resource)
            .iter()
            .map(|i| i[key].as_str().unwrap().to_owned())
            .collect();
        local.sort();
        remote.sort();
        (local, remote)
    }

    async fn conflicts(&self) -> Vec<Value> {
        let response = self
            .call(Method::GET, &self.user_path("/microsoft/conflicts"), None)
            .await;
        response.body["items"].as_array().unwrap().clone()
    }

    /// Holds the `skip + 1`-th Graph `GET` whose path contains `path` for [`HOLD`], runs a sync
    /// now, and performs `act` once the `skip` requests before it are answered (and the run
    /// had time to apply them): the action lands while the run is between two pages.
    async fn act_during_run<F: std::future::Future<Output = ()>>(
        &self,
        path: &str,
        skip: u32,
        act: F,
    ) -> Vec<Value> {
        let before = self.app.emulator.request_log().len();
        self.app.emulator.inject_fault(FaultSpec {
            method: Some("GET".into()),
            path_contains: Some(path.into()),
            count: 1,
            skip,
            kind: Fault::Latency(HOLD),
        });
        let acting = async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let answered = self.app.emulator.request_log()[before..]
                    .iter()
                    .filter(|r| r.method == "GET" && r.path.contains(path))
                    .count();
                if answered >= skip as usize {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the run never got there"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Past the second: `most_recent_wins` compares Microsoft's time with ours.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let held = self.app.emulator.request_log()[before..]
                .iter()
                .filter(|r| r.method == "GET" && r.path.contains(path))
                .count();
            assert_eq!(held, skip as usize, "the held request is still held");
            act.await;
        };
        let (runs, ()) = tokio::join!(self.run(), acting);
        runs
    }

    /// Graph writes (not reads) since request number `from`, `$batch` items included.
    fn writes_since(&self, from: usize) -> Vec<LoggedRequest> {
        self.app.emulator.request_log()[from..]
            .iter()
            .filter(|r| r.method != "GET" && !r.path.ends_with("$batch"))
            .cloned()
            .collect()
    }

    async fn choose_list(&self, list: Value) {
        let settings = self.user_path("/settings/microsoft");
        let response = self
            .call(
                Method::PATCH,
                &settings,
                Some(json!({"todo_list_id": list})),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
    }

    /// Both sides hold the same titles, each once, and two more runs change nothing.
    async fn assert_settled(&self, resource: Resource, context: &str) {
        let (local, remote) = self.titles(resource).await;
        assert_eq!(local, remote, "{context}: both sides hold the same items");
        let mut unique = local.clone();
        unique.dedup();
        assert_eq!(unique, local, "{context}: no duplicates");
        self.run().await;
        let before = self.app.emulator.request_log().len();
        self.run().await;
        let writes = self.writes_since(before);
        assert!(
            writes.is_empty(),
            "{context}: a quiet run writes nothing: {writes:?}"
        );
    }
}

/// The delta path of a resource.
fn delta(resource: Resource) -> &'static str {
    match resource {
        Resource::Calendar => "/calendarView/delta",
        Resource::Tasks => "/tasks/delta",
    }
}

/// The field an edit through the API changes, and its value as each side shows it.
fn local_edit(resource: Resource) -> Value {
    match resource {
        Resource::Calendar => json!({"location": "Room 7"}),
        Resource::Tasks => json!({"importance": "high"}),
    }
}

fn assert_local_edit_kept(resource: Resource, local: &Value, remote: &Value, context: &str) {
    match resource {
        Resource::Calendar => {
            assert_eq!(local["location"], "Room 7", "{context}: local");
            assert_eq!(
                remote["location"]["displayName"], "Room 7",
                "{context}: Outlook"
            );
        }
        Resource::Tasks => {
            assert_eq!(local["importance"], "high", "{context}: local");
            assert_eq!(remote["importance"], "high", "{context}: To Do");
        }
    }
}

fn remote_title(resource: Resource, remote: &Value) -> &str {
    match resource {
        Resource::Calendar => remote["subject"].as_str().unwrap(),
        Resource::Tasks => remote["title"].as_str().unwrap(),
    }
}

/// Microsoft changes the title of `e`, and of an item listed before it (so that the run has a
/// page to apply before it reaches `e`); the person edits another field of `e` through the API
/// while the run waits for `e`'s page. Both changes survive on both sides, whatever the
/// strategy (no field is contested), and the run says it merged again.
async fn an_edit_during_a_pull_survives(resource: Resource, resync: bool) {
    for strategy in STRATEGIES {
        let context = format!("{resource:?} {strategy} (resync: {resync})");
        let s = Safety::new(&[resource], strategy).await;
        let items = s.synced(resource, &[("First", 3), ("Edited", 4)]).await;
        let e = &items[1];
        s.remote_edit(resource, &items[0].remote_id, "First (Microsoft)");
        s.remote_edit(resource, &e.remote_id, "Edited (Microsoft)");
        s.app.emulator.update_config(|c| c.delta_page_cap = Some(1));
        if resync {
            s.app.emulator.expire_delta_tokens(Some(&s.who.mailbox_id));
        }
        // A resync loads what it merges before its first page (the refused token is the first
        // request); an incremental pull when its first item comes, with the first page.
        let path = s.item_path(resource, &e.id);
        let runs = s
            .act_during_run(delta(resource), 1, async {
                let response = s
                    .call(Method::PATCH, &path, Some(local_edit(resource)))
                    .await;
                assert_eq!(response.status, StatusCode::OK, "{context}: {response:?}");
            })
            .await;
        assert_eq!(runs[0]["counts"]["remerged"], 1, "{context}: {}", runs[0]);
        s.run().await;
        let local = s.get(resource, &e.id).await.body;
        let remote = s.remote_item(resource, &e.remote_id).unwrap();
        assert_eq!(local["title"], "Edited (Microsoft)", "{context}: {local}");
        assert_eq!(
            remote_title(resource, &remote),
            "Edited (Microsoft)",
            "{context}"
        );
        assert_local_edit_kept(resource, &local, &remote, &context);
        assert!(
            s.conflicts().await.is_empty(),
            "{context}: nothing contested"
        );
        s.assert_settled(resource, &context).await;
    }
}

#[tokio::test]
async fn an_event_edited_while_a_pull_applies_pages_keeps_the_edit_on_both_sides() {
    an_edit_during_a_pull_survives(Resource::Calendar, false).await;
}

#[tokio::test]
async fn a_task_edited_while_a_pull_applies_pages_keeps_the_edit_on_both_sides() {
    an_edit_during_a_pull_survives(Resource::Tasks, false).await;
}

#[tokio::test]
async fn an_event_edited_during_a_resync_keeps_the_edit_on_both_sides() {
    an_edit_during_a_pull_survives(Resource::Calendar, true).await;
}

#[tokio::test]
async fn a_task_edited_during_a_resync_keeps_the_edit_on_both_sides() {
    an_edit_during_a_pull_survives(Resource::Tasks, true).await;
}

#[tokio::test]
async fn a_title_edited_on_both_sides_during_a_pull_follows_the_strategy() {
    // (strategy, title on both sides afterwards; manual: each side keeps its own)
    let cases = [
        ("local_wins", Some("Local title")),
        ("microsoft_wins", Some("Microsoft title")),
        ("most_recent_wins", Some("Local title")),
        ("manual", None),
    ];
    for (strategy, winner) in cases {
        let s = Safety::new(&[Resource::Calendar], strategy).await;
        let items = s
            .synced(Resource::Calendar, &[("First", 3), ("Edited", 4)])
            .await;
        let e = &items[1];
        s.remote_edit(Resource::Calendar, &items[0].remote_id, "First (Microsoft)");
        s.remote_edit(Resource::Calendar, &e.remote_id, "Microsoft title");
        s.app.emulator.update_config(|c| c.delta_page_cap = Some(1));
        let path = s.item_path(Resource::Calendar, &e.id);
        let runs = s
            .act_during_run(delta(Resource::Calendar), 1, async {
                let response = s
                    .call(Method::PATCH, &path, Some(json!({"title": "Local title"})))
                    .await;
                assert_eq!(response.status, StatusCode::OK, "{response:?}");
            })
            .await;
        assert_eq!(runs[0]["counts"]["remerged"], 1, "{strategy}: {}", runs[0]);
        assert_eq!(runs[0]["counts"]["conflicts"], 1, "{strategy}: {}", runs[0]);
        s.run().await;
        let local = s.get(Resource::Calendar, &e.id).await.body;
        let remote = s.remote_item(Resource::Calendar, &e.remote_id).unwrap();
        match winner {
            Some(title) => {
                assert_eq!(local["title"], title, "{strategy}: local");
                assert_eq!(remote["subject"], title, "{strategy}: Outlook");
                s.assert_settled(Resource::Calendar, strategy).await;
            }
            None => {
                assert_eq!(
                    local["title"], "Local title",
                    "{strategy}: parked, left alone"
                );
                assert_eq!(remote["subject"], "Microsoft title", "{strategy}: parked");
                let conflicts = s.conflicts().await;
                assert_eq!(conflicts.len(), 1, "{strategy}: {conflicts:?}");
            }
        }
    }
}

/// The person deletes `e` through the API while the run waits for the page that brings
/// Microsoft's change of `e`: the deletion is never silently undone.
async fn a_delete_during_a_pull_is_a_delete(resource: Resource) {
    // (strategy, whether the item survives: restored with Microsoft's change)
    let cases = [
        ("local_wins", false),
        ("microsoft_wins", true),
        ("most_recent_wins", false),
        ("manual", false),
    ];
    for (strategy, restored) in cases {
        let context = format!("{resource:?} {strategy}");
        let s = Safety::new(&[resource], strategy).await;
        let items = s.synced(resource, &[("First", 3), ("Deleted", 4)]).await;
        let e = &items[1];
        s.remote_edit(resource, &items[0].remote_id, "First (Microsoft)");
        s.remote_edit(resource, &e.remote_id, "Deleted (Microsoft)");
        s.app.emulator.update_config(|c| c.delta_page_cap = Some(1));
        let path = s.item_path(resource, &e.id);
        let runs = s
            .act_during_run(delta(resource), 1, async {
                let response = s.call(Method::DELETE, &path, None).await;
                assert_eq!(response.status, StatusCode::NO_CONTENT, "{response:?}");
            })
            .await;
        assert_eq!(runs[0]["counts"]["remerged"], 1, "{context}: {}", runs[0]);
        assert_eq!(runs[0]["counts"]["conflicts"], 1, "{context}: {}", runs[0]);
        s.run().await;
        let local = s.get(resource, &e.id).await;
        let remote = s.remote_item(resource, &e.remote_id);
        if strategy == "manual" {
            assert_eq!(
                local.status,
                StatusCode::NOT_FOUND,
                "{context}: still deleted here"
            );
            assert!(
                remote.is_some(),
                "{context}: parked, Microsoft's copy left alone"
            );
            assert_eq!(s.conflicts().await.len(), 1, "{context}: parked");
            continue;
        }
        if restored {
            assert_eq!(local.status, StatusCode::OK, "{context}: restored");
            assert_eq!(local.body["title"], "Deleted (Microsoft)", "{context}");
            assert!(remote.is_some(), "{context}");
        } else {
            assert_eq!(
                local.status,
                StatusCode::NOT_FOUND,
                "{context}: the delete stands"
            );
            assert!(remote.is_none(), "{context}: and reaches Microsoft");
        }
        s.assert_settled(resource, &context).await;
    }
}

#[tokio::test]
async fn an_event_deleted_while_a_pull_applies_pages_stays_deleted_or_becomes_a_conflict() {
    a_delete_during_a_pull_is_a_delete(Resource::Calendar).await;
}

#[tokio::test]
async fn a_task_deleted_while_a_pull_applies_pages_stays_deleted_or_becomes_a_conflict() {
    a_delete_during_a_pull_is_a_delete(Resource::Tasks).await;
}

#[tokio::test]
async fn deleting_most_items_in_microsoft_deletes_nothing_here_until_confirmed() {
    for resource in [Resource::Calendar, Resource::Tasks] {
        let context = format!("{resource:?}");
        let s = Safety::new(&[resource], "local_wins").await;
        let titles: Vec<(String, u32)> = (1..=31).map(|n| (format!("Item {n:02}"), n)).collect();
        let titles: Vec<(&str, u32)> = titles.iter().map(|(t, d)| (t.as_str(), *d)).collect();
        let items = s.synced(resource, &titles).await;
        for item in &items[..30] {
            s.remote_delete(resource, &item.remote_id);
        }
        s.remote_edit(resource, &items[30].remote_id, "Item 31 (Microsoft)");

        for attempt in ["first run", "next run"] {
            let runs = s.run().await;
            let run = &runs[0];
            assert_eq!(
                run["outcome"], "mass_delete_blocked",
                "{context} {attempt}: {run}"
            );
            assert_eq!(
                run["blocked_directions"],
                json!(["from_microsoft"]),
                "{context}"
            );
            assert_eq!(run["counts"]["held_deletions_here"], 30, "{context}: {run}");
            assert_eq!(run["counts"]["deleted_locally"], 0, "{context}: {run}");
            let (local, _) = s.titles(resource).await;
            assert_eq!(local.len(), 31, "{context} {attempt}: nothing deleted here");
            assert!(
                local.contains(&"Item 31 (Microsoft)".to_owned()),
                "{context} {attempt}: the rest of the run is applied: {local:?}"
            );
        }
        // Confirming the other direction does not let these through.
        let confirm = s.user_path("/microsoft/sync/confirm-deletions");
        let response = s
            .call(
                Method::POST,
                &format!("{confirm}?direction=to_microsoft"),
                None,
            )
            .await;
        assert_eq!(response.status, StatusCode::NO_CONTENT, "{response:?}");
        assert_eq!(
            s.run().await[0]["outcome"],
            "mass_delete_blocked",
            "{context}"
        );

        let response = s
            .call(
                Method::POST,
                &format!("{confirm}?direction=from_microsoft"),
                None,
            )
            .await;
        assert_eq!(response.status, StatusCode::NO_CONTENT, "{response:?}");
        let runs = s.run().await;
        assert_eq!(runs[0]["outcome"], "succeeded", "{context}: {}", runs[0]);
        assert_eq!(
            runs[0]["counts"]["deleted_locally"], 30,
            "{context}: {}",
            runs[0]
        );
        assert_eq!(
            s.titles(resource).await.0,
            ["Item 31 (Microsoft)"],
            "{context}: deleted once confirmed"
        );
        s.assert_settled(resource, &context).await;
    }
}

#[tokio::test]
async fn a_few_deletions_in_microsoft_apply_without_confirmation() {
    let s = Safety::new(&[Resource::Calendar], "local_wins").await;
    let titles: Vec<(String, u32)> = (1..=20).map(|n| (format!("Item {n:02}"), n)).collect();
    let titles: Vec<(&str, u32)> = titles.iter().map(|(t, d)| (t.as_str(), *d)).collect();
    let items = s.synced(Resource::Calendar, &titles).await;
    for item in &items[..10] {
        s.remote_delete(Resource::Calendar, &item.remote_id);
    }
    let runs = s.run().await;
    assert_eq!(
        runs[0]["outcome"], "succeeded",
        "half is not more than half: {}",
        runs[0]
    );
    assert_eq!(runs[0]["counts"]["deleted_locally"], 10);
    s.assert_settled(Resource::Calendar, "ten of twenty").await;
}

#[tokio::test]
async fn an_empty_full_listing_deletes_nothing_until_confirmed() {
    for resource in [Resource::Calendar, Resource::Tasks] {
        let context = format!("{resource:?}");
        let s = Safety::new(&[resource], "local_wins").await;
        let items = s.synced(resource, &[("One", 1), ("Two", 2)]).await;
        for item in &items {
            s.remote_delete(resource, &item.remote_id);
        }
        // Only a full listing can tell: it comes back empty.
        s.app.emulator.expire_delta_tokens(Some(&s.who.mailbox_id));
        let runs = s.run().await;
        assert_eq!(
            runs[0]["outcome"], "mass_delete_blocked",
            "{context}: {}",
            runs[0]
        );
        assert_eq!(runs[0]["counts"]["held_deletions_here"], 2, "{context}");
        assert_eq!(
            s.titles(resource).await.0.len(),
            2,
            "{context}: nothing deleted"
        );
        let confirm = s.user_path(&format!(
            "/microsoft/sync/confirm-deletions?direction=from_microsoft&resource={}",
            resource.as_str()
        ));
        assert_eq!(
            s.call(Method::POST, &confirm, None).await.status,
            StatusCode::NO_CONTENT
        );
        let runs = s.run().await;
        assert_eq!(
            runs[0]["counts"]["deleted_locally"], 2,
            "{context}: {}",
            runs[0]
        );
        assert!(s.titles(resource).await.0.is_empty(), "{context}");
        s.assert_settled(resource, &context).await;
    }
}

#[tokio::test]
async fn a_confirmation_names_a_known_direction_and_resource() {
    let s = Safety::new(&[Resource::Calendar], "local_wins").await;
    for query in ["direction=bidirectional", "resource=mail", "nonsense=1"] {
        let path = s.user_path(&format!("/microsoft/sync/confirm-deletions?{query}"));
        let response = s.call(Method::POST, &path, None).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{query}: {response:?}"
        );
        assert_eq!(response.code(), "invalid_query", "{query}");
    }
}

#[tokio::test]
async fn purging_and_reconnecting_the_same_account_duplicates_nothing() {
    let s = Safety::new(&[Resource::Calendar, Resource::Tasks], "local_wins").await;
    s.create(Resource::Calendar, "Born here", 5).await;
    s.create(Resource::Tasks, "Task born here", 0).await;
    let outlook = s.app.emulator.outlook();
    outlook
        .create_event(
            &s.who.mailbox_id,
            json!({"subject": "Born in Outlook",
                   "start": {"dateTime": "2027-01-06T09:00:00", "timeZone": "UTC"},
                   "end": {"dateTime": "2027-01-06T10:00:00", "timeZone": "UTC"}}),
        )
        .unwrap();
    outlook
        .create_task(
            &s.who.mailbox_id,
            None,
            json!({"title": "Task born in To Do"}),
        )
        .unwrap();
    s.run().await;
    s.run().await;

    let connection = s.user_path("/microsoft/connection?purge=true");
    let response = s.call(Method::DELETE, &connection, None).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT, "{response:?}");
    let page = s.app.sign_in(&s.who, &s.who.upn.clone()).await;
    assert_eq!(page.status, StatusCode::OK);

    let before = s.app.emulator.request_log().len();
    let runs = s.run().await;
    for run in &runs {
        assert_eq!(run["counts"]["created_locally"], 0, "{run}");
        assert_eq!(run["counts"]["created_remotely"], 0, "{run}");
        assert_eq!(run["counts"]["rematched"], 2, "{run}");
    }
    let creates: Vec<LoggedRequest> = s
        .writes_since(before)
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert!(creates.is_empty(), "nothing created again: {creates:?}");
    for resource in [Resource::Calendar, Resource::Tasks] {
        let (local, remote) = s.titles(resource).await;
        assert_eq!(local.len(), 2, "{resource:?}: {local:?}");
        assert_eq!(local, remote, "{resource:?}");
        s.assert_settled(resource, "after the purge").await;
    }
}

#[tokio::test]
async fn switching_the_todo_list_away_and_back_duplicates_nothing() {
    let s = Safety::new(&[Resource::Tasks], "local_wins").await;
    s.create(Resource::Tasks, "Born here", 0).await;
    let outlook = s.app.emulator.outlook();
    outlook
        .create_task(&s.who.mailbox_id, None, json!({"title": "Born in Tasks"}))
        .unwrap();
    s.run().await;
    let work = outlook
        .create_list(&s.who.mailbox_id, json!({"displayName": "Work"}))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.choose_list(json!(work)).await;
    s.run().await;
    outlook
        .create_task(
            &s.who.mailbox_id,
            Some(&work),
            json!({"title": "Born in Work"}),
        )
        .unwrap();
    s.run().await;
    s.choose_list(Value::Null).await;

    let runs = s.run().await;
    assert_eq!(runs[0]["counts"]["rematched"], 2, "{}", runs[0]);
    assert_eq!(runs[0]["counts"]["created_locally"], 0, "{}", runs[0]);
    assert_eq!(
        runs[0]["counts"]["created_remotely"], 1,
        "only Work's own: {}",
        runs[0]
    );
    let all = ["Born here", "Born in Tasks", "Born in Work"];
    let (local, remote) = s.titles(Resource::Tasks).await;
    assert_eq!(local, all);
    assert_eq!(remote, all, "the default list, each once");
    let mut in_work: Vec<String> = outlook
        .list_tasks(&s.who.mailbox_id, Some(&work))
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    in_work.sort();
    assert_eq!(in_work, all, "the other list, left as it was");
    s.assert_settled(Resource::Tasks, "back on the default list")
        .await;
}

#[tokio::test]
async fn every_calendar_request_asks_for_immutable_ids() {
    let s = Safety::new(&[Resource::Calendar], "local_wins").await;
    let before = s.app.emulator.request_log().len();
    let items = s
        .synced(Resource::Calendar, &[("One", 1), ("Two", 2)])
        .await;
    s.remote_edit(Resource::Calendar, &items[0].remote_id, "One (Outlook)");
    let path = s.item_path(Resource::Calendar, &items[1].id);
    s.call(Method::PATCH, &path, Some(json!({"title": "Two (here)"})))
        .await;
    s.run().await;
    s.call(Method::DELETE, &path, None).await;
    s.run().await;
    let calendar: Vec<LoggedRequest> = s.app.emulator.request_log()[before..]
        .iter()
        .filter(|r| {
            r.path.starts_with("/v1.0/me/events") || r.path.starts_with("/v1.0/me/calendar")
        })
        .cloned()
        .collect();
    for method in ["GET", "POST", "PATCH", "DELETE"] {
        assert!(
            calendar.iter().any(|r| r.method == method),
            "the test covers {method}: {calendar:?}"
        );
    }
    let without: Vec<&LoggedRequest> = calendar
        .iter()
        .filter(|r| !r.prefer.contains("IdType=\"ImmutableId\""))
        .collect();
    assert!(
        without.is_empty(),
        "asked without immutable ids: {without:#?}"
    );
}

// ---- series pushes cut after every Graph call -------------------------------------------------

/// A local series synchronized with Outlook, then changed here: its title, one occurrence
/// modified and one cancelled. Returns the series' id and the two occurrences' keys.
async fn changed_series(s: &Safety) -> (String, String, String) {
    let mut first = Utc::now().date_naive() + Days::new(30);
    while first.format("%a").to_string() != "Mon" {
        first = first + Days::new(1);
    }
    let path = s.user_path("/calendar-events");
    let created = s
        .call(
            Method::POST,
            &path,
            Some(json!({
                "title": "Weekly",
                "start": {"date_time": format!("{first}T09:00:00"), "time_zone": "UTC"},
                "end": {"date_time": format!("{first}T10:00:00"), "time_zone": "UTC"},
                "recurrence": {"pattern": {"type": "weekly", "days_of_week": ["monday"]},
                               "range": {"type": "numbered", "number_of_occurrences": 8}},
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    s.run().await;
    let key = |weeks: u64| format!("{}T09:00:00Z", first + Days::new(7 * weeks));
    let (moved, cancelled) = (key(2), key(4));
    let series = s.item_path(Resource::Calendar, &id);
    let response = s
        .call(
            Method::PATCH,
            &series,
            Some(json!({"title": "Weekly (renamed)"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let response = s
        .call(
            Method::PATCH,
            &format!("{series}/occurrences/{moved}"),
            Some(json!({"title": "Moved one", "location": "Room 2"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let response = s
        .call(
            Method::DELETE,
            &format!("{series}/occurrences/{cancelled}"),
            None,
        )
        .await;
    assert!(response.status.is_success(), "{response:?}");
    (id, moved, cancelled)
}

/// Both sides show the changed series: the title on the master, the modified occurrence with
/// its fields, the cancelled one gone; one series on each side.
async fn assert_series_converged(
    s: &Safety,
    id: &str,
    moved: &str,
    cancelled: &str,
    context: &str,
) {
    let local = s.get(Resource::Calendar, id).await.body;
    assert_eq!(local["title"], "Weekly (renamed)", "{context}: {local}");
    let exceptions = local["exceptions"].as_array().cloned().unwrap_or_default();
    let exception = |key: &str| {
        exceptions
            .iter()
            .find(|e| e["original_start"] == key)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        exception(moved)["changes"]["title"],
        "Moved one",
        "{context}: {local}"
    );
    assert_eq!(
        exception(moved)["changes"]["location"],
        "Room 2",
        "{context}: {local}"
    );
    assert_eq!(
        exception(cancelled)["cancelled"],
        true,
        "{context}: local: {local}"
    );
    let masters: Vec<Value> = s.remote_items(Resource::Calendar);
    assert_eq!(
        masters.len(),
        1,
        "{context}: one series in Outlook: {masters:?}"
    );
    assert_eq!(masters[0]["subject"], "Weekly (renamed)", "{context}");
    let from = Utc::now() - chrono::Duration::days(1);
    let to = Utc::now() + chrono::Duration::days(120);
    let instances = s
        .app
        .emulator
        .outlook()
        .calendar_view(&s.who.mailbox_id, from, to)
        .unwrap();
    let at = |key: &str| {
        instances
            .iter()
            .find(|i| {
                i["originalStart"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(&key[..19]))
            })
            .cloned()
    };
    let moved_there = at(moved).unwrap_or_else(|| panic!("{context}: {instances:#?}"));
    assert_eq!(moved_there["subject"], "Moved one", "{context}: Outlook");
    assert_eq!(
        moved_there["location"]["displayName"], "Room 2",
        "{context}: Outlook"
    );
    assert!(at(cancelled).is_none(), "{context}: cancelled in Outlook");
    assert_eq!(instances.len(), 7, "{context}: eight less one cancelled");
    assert_eq!(
        s.call(Method::GET, &s.user_path("/calendar-events"), None)
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{context}: one series here"
    );
}

/// How a run is cut at a Graph request.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Before the request is sent (the run waits for it when it stops).
    Before,
    /// After Microsoft carried it out, before its answer arrives.
    Unanswered,
}

/// Runs the engine once for the calendar in a task of its own, as a worker would, and stops
/// it as a crash would once `reached` says so (polled on the emulator's request log).
async fn cut_run(s: &Safety, context: &str, reached: impl Fn(&[LoggedRequest]) -> bool) {
    let before = s.app.emulator.request_log().len();
    let state = s.app.state_with(|_| {}).await;
    // The run's own pool, closed once it is cut (PostgreSQL counts connections).
    let pool = state.db.clone();
    let user_id: Uuid = s.who.user.id;
    let run = tokio::spawn(async move {
        m365_sync::sync::engine::run(&state, Uuid::now_v7(), user_id, Resource::Calendar).await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !reached(&s.app.emulator.request_log()[before..]) {
        assert!(
            !run.is_finished(),
            "{context}: the run ended before the cut"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "{context}: never reached"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.abort();
    let _ = run.await;
    let _ = pool.close().await;
    s.app.emulator.clear_faults();
}

#[tokio::test]
async fn a_series_push_cut_between_two_occurrence_writes_converges_with_them() {
    for strategy in STRATEGIES {
        let context = format!("{strategy}: cut with the occurrence modified, not yet cancelled");
        let s = Safety::new(&[Resource::Calendar], strategy).await;
        let (id, moved, cancelled) = changed_series(&s).await;
        // The cancellation is refused for now (503, retry in 30 s): the run is cut while it
        // waits, with the modified occurrence written and the cancelled one not.
        s.app.emulator.inject_fault(FaultSpec {
            method: Some("DELETE".into()),
            path_contains: Some("/me/events/".into()),
            count: 1,
            skip: 0,
            kind: Fault::Status {
                status: 503,
                retry_after: Some(30),
            },
        });
        cut_run(&s, &context, |log| {
            log.iter().any(|r| r.method == "DELETE" && r.status == 503)
        })
        .await;
        s.run().await;
        s.run().await;
        assert_series_converged(&s, &id, &moved, &cancelled, &context).await;
        assert!(s.conflicts().await.is_empty(), "{context}: nothing parked");
        s.assert_settled(Resource::Calendar, &context).await;
    }
}

#[tokio::test]
async fn a_series_push_cut_after_any_graph_call_converges_with_the_occurrence_edits() {
    for strategy in ["microsoft_wins", "manual"] {
        // The requests of an uncut run, to cut the same run at each of them.
        let twin = Safety::new(&[Resource::Calendar], strategy).await;
        let (id, moved, cancelled) = changed_series(&twin).await;
        let before = twin.app.emulator.request_log().len();
        twin.run().await;
        let calls: Vec<LoggedRequest> = twin.app.emulator.request_log()[before..]
            .iter()
            .filter(|r| !r.in_batch)
            .cloned()
            .collect();
        assert!(
            twin.writes_since(before).len() >= 3,
            "the push writes the master and its occurrences: {calls:#?}"
        );
        assert_series_converged(&twin, &id, &moved, &cancelled, "uncut").await;

        for (n, call) in calls.iter().enumerate() {
            for cut in [Cut::Before, Cut::Unanswered] {
                let context = format!(
                    "{strategy}: cut {cut:?} {} {} (call {n})",
                    call.method, call.path
                );
                let s = Safety::new(&[Resource::Calendar], strategy).await;
                let (id, moved, cancelled) = changed_series(&s).await;
                // The same call of this run: the earlier ones with its method and path pass.
                let skip = calls[..n]
                    .iter()
                    .filter(|c| c.method == call.method && c.path == call.path)
                    .count();
                s.app.emulator.inject_fault(FaultSpec {
                    method: Some(call.method.clone()),
                    path_contains: Some(call.path.trim_start_matches("/v1.0").to_owned()),
                    count: 1,
                    skip: u32::try_from(skip).unwrap(),
                    kind: match cut {
                        Cut::Before => Fault::Latency(Duration::from_secs(30)),
                        Cut::Unanswered => Fault::SlowAnswer(Duration::from_secs(30)),
                    },
                });
                // Cut once the run reached the call: the answered ones before it, or this one
                // carried out.
                let reached = match cut {
                    Cut::Before => n,
                    Cut::Unanswered => n + 1,
                };
                cut_run(&s, &context, |log| {
                    log.iter().filter(|r| !r.in_batch).count() >= reached
                })
                .await;
                // Restarted: the next runs finish the push.
                s.run().await;
                s.run().await;
                assert_series_converged(&s, &id, &moved, &cancelled, &context).await;
                assert!(s.conflicts().await.is_empty(), "{context}: nothing parked");
                s.assert_settled(Resource::Calendar, &context).await;
            }
        }
    }
}
