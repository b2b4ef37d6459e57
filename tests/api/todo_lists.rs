//! The To Do list tasks synchronize with: listing the mailbox's lists, choosing one in the
//! user's settings, and synchronization following the choice without duplicates.

use m365_sync::domain::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{MailboxUser, TestApp, spawn_app};

fn lists_path(who: &MailboxUser) -> String {
    format!("/api/v1/users/{}/microsoft/todo-lists", who.user.id)
}

fn settings_path(who: &MailboxUser) -> String {
    format!("/api/v1/users/{}/settings/microsoft", who.user.id)
}

/// A connected user whose tasks synchronize both ways, and a second list named "CRM".
async fn tasks_user(app: &TestApp) -> (MailboxUser, String) {
    let who = app.connected_user().await;
    let settings = json!({"tasks": {"enabled": true, "direction": "bidirectional"}});
    let response = app
        .patch(&settings_path(&who), &who.user.token, settings)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let crm = app
        .emulator
        .outlook()
        .create_list(&who.mailbox_id, json!({"displayName": "CRM"}))
        .unwrap();
    (who, crm["id"].as_str().unwrap().to_owned())
}

async fn choose(app: &TestApp, who: &MailboxUser, list: Value) -> Value {
    let response = app
        .patch(
            &settings_path(who),
            &who.user.token,
            json!({"todo_list_id": list}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    response.body
}

fn titles(tasks: &[Value]) -> Vec<String> {
    let mut titles: Vec<String> = tasks
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    titles
}

async fn local_titles(app: &TestApp, who: &MailboxUser) -> Vec<String> {
    let path = format!("/api/v1/users/{}/tasks?limit=500", who.user.id);
    let response = app.get(&path, &who.user.token).await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    titles(response.body["items"].as_array().unwrap())
}

fn default_list_id(app: &TestApp, who: &MailboxUser) -> String {
    app.emulator
        .outlook()
        .list_lists(&who.mailbox_id)
        .unwrap()
        .into_iter()
        .find(|l| l["wellknownListName"] == "defaultList")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_mailbox_lists_come_default_first_with_the_selected_one_marked() {
    let app = spawn_app().await;
    let (who, crm) = tasks_user(&app).await;
    let default = default_list_id(&app, &who);

    let response = app.get(&lists_path(&who), &who.user.token).await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let items = response.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0]["id"], default.as_str());
    assert_eq!(items[0]["is_default"], true);
    assert_eq!(items[0]["selected"], true);
    assert_eq!(items[1]["id"], crm.as_str());
    assert_eq!(items[1]["display_name"], "CRM");
    assert_eq!(items[1]["is_default"], false);
    assert_eq!(items[1]["selected"], false);
    assert!(response.body["next_cursor"].is_null());

    choose(&app, &who, json!(crm)).await;
    let response = app.get(&lists_path(&who), &who.user.token).await;
    let items = response.body["items"].as_array().unwrap();
    assert_eq!(items[0]["selected"], false);
    assert_eq!(items[1]["selected"], true);
}

#[tokio::test]
async fn listing_needs_a_connection_and_access_to_the_user() {
    let app = spawn_app().await;
    let who = app.mailbox_user().await;
    let response = app.get(&lists_path(&who), &who.user.token).await;
    assert_eq!(response.status, StatusCode::CONFLICT, "{response:?}");
    assert_eq!(response.code(), "not_connected");

    // A colleague may not read someone else's lists.
    let colleague = app.account(Role::User, Some(who.org)).await;
    let page = app.sign_in(&who, &who.upn.clone()).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    let response = app.get(&lists_path(&who), &colleague.token).await;
    assert!(
        matches!(
            response.status,
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
        ),
        "{response:?}"
    );
}

#[tokio::test]
async fn microsoft_failing_to_list_is_a_503_not_a_500() {
    let app = spawn_app().await;
    let (who, _) = tasks_user(&app).await;
    for _ in 0..3 {
        app.emulator.inject_fault(graph_emulator::FaultSpec {
            method: Some("GET".into()),
            path_contains: Some("/me/todo/lists".into()),
            count: 1,
            skip: 0,
            kind: graph_emulator::Fault::Status {
                status: 503,
                retry_after: None,
            },
        });
    }
    let response = app.get(&lists_path(&who), &who.user.token).await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{response:?}"
    );
    assert_eq!(response.code(), "microsoft_unavailable");
}

#[tokio::test]
async fn the_chosen_list_is_a_user_setting_with_validation() {
    let app = spawn_app().await;
    let (who, crm) = tasks_user(&app).await;
    let view = choose(&app, &who, json!(crm)).await;
    assert_eq!(view["todo_list_id"], crm.as_str());
    let response = app.get(&settings_path(&who), &who.user.token).await;
    assert_eq!(response.body["todo_list_id"], crm.as_str());

    for bad in [
        json!(""),
        json!("   "),
        json!("a\nb"),
        json!("x".repeat(1025)),
        json!(7),
    ] {
        let response = app
            .patch(
                &settings_path(&who),
                &who.user.token,
                json!({"todo_list_id": bad}),
            )
            .await;
        assert!(response.status.is_client_error(), "{bad}: {response:?}");
        assert_eq!(
            response.body["todo_list_id"],
            Value::Null,
            "a rejected patch reports nothing: {response:?}"
        );
    }
    let response = app.get(&settings_path(&who), &who.user.token).await;
    assert_eq!(response.body["todo_list_id"], crm.as_str(), "unchanged");

    // Only users choose a list: the organization's settings do not know the member.
    let path = format!("/api/v1/organizations/{}/settings/microsoft", who.org);
    let response = app
        .patch(&path, &who.admin.token, json!({"todo_list_id": crm}))
        .await;
    assert!(response.status.is_client_error(), "{response:?}");
    let response = app.get(&path, &who.admin.token).await;
    assert!(response.body["todo_list_id"].is_null(), "{response:?}");

    let view = choose(&app, &who, Value::Null).await;
    assert!(view["todo_list_id"].is_null());
}

#[tokio::test]
async fn tasks_synchronize_with_the_chosen_list_and_start_over_when_it_changes() {
    let app = spawn_app().await;
    let (who, crm) = tasks_user(&app).await;
    let default = default_list_id(&app, &who);
    let outlook = app.emulator.outlook();
    outlook
        .create_task(&who.mailbox_id, Some(&crm), json!({"title": "In CRM"}))
        .unwrap();
    outlook
        .create_task(&who.mailbox_id, None, json!({"title": "In Tasks"}))
        .unwrap();
    let path = format!("/api/v1/users/{}/tasks", who.user.id);
    let response = app
        .post(&path, &who.user.token, json!({"title": "Ours"}))
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{response:?}");

    choose(&app, &who, json!(crm)).await;
    let runs = app.sync_now(&who.user).await;
    let tasks_run = runs.iter().find(|r| r["resource"] == "tasks").unwrap();
    assert_eq!(tasks_run["outcome"], "succeeded", "{tasks_run:?}");
    assert_eq!(
        titles(&outlook.list_tasks(&who.mailbox_id, Some(&crm)).unwrap()),
        ["In CRM", "Ours"]
    );
    assert_eq!(
        titles(&outlook.list_tasks(&who.mailbox_id, Some(&default)).unwrap()),
        ["In Tasks"],
        "the default list is not touched"
    );
    assert_eq!(local_titles(&app, &who).await, ["In CRM", "Ours"]);

    // A quiet run: nothing written anywhere, no duplicate.
    let runs = app.sync_now(&who.user).await;
    let counts = &runs.iter().find(|r| r["resource"] == "tasks").unwrap()["counts"];
    assert_eq!(counts["created_remotely"], 0, "{counts}");
    assert_eq!(counts["created_locally"], 0, "{counts}");

    // Back to the default list: everything local goes there once, its task comes here.
    choose(&app, &who, Value::Null).await;
    let runs = app.sync_now(&who.user).await;
    let tasks_run = runs.iter().find(|r| r["resource"] == "tasks").unwrap();
    assert_eq!(tasks_run["outcome"], "succeeded", "{tasks_run:?}");
    assert!(
        tasks_run["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("To Do list changed")),
        "{tasks_run:?}"
    );
    assert_eq!(
        titles(&outlook.list_tasks(&who.mailbox_id, Some(&default)).unwrap()),
        ["In CRM", "In Tasks", "Ours"]
    );
    assert_eq!(
        titles(&outlook.list_tasks(&who.mailbox_id, Some(&crm)).unwrap()),
        ["In CRM", "Ours"],
        "the previous list is left as it is"
    );
    assert_eq!(
        local_titles(&app, &who).await,
        ["In CRM", "In Tasks", "Ours"]
    );
    for _ in 0..2 {
        app.sync_now(&who.user).await;
    }
    assert_eq!(
        titles(&outlook.list_tasks(&who.mailbox_id, Some(&default)).unwrap()),
        ["In CRM", "In Tasks", "Ours"],
        "no duplicate after more runs"
    );
    assert_eq!(
        local_titles(&app, &who).await,
        ["In CRM", "In Tasks", "Ours"]
    );

    // Choosing the default list by its id changes nothing.
    choose(&app, &who, json!(default)).await;
    let runs = app.sync_now(&who.user).await;
    let counts = &runs.iter().find(|r| r["resource"] == "tasks").unwrap()["counts"];
    assert_eq!(counts["created_remotely"], 0, "{counts}");
    assert_eq!(counts["created_locally"], 0, "{counts}");
}

#[tokio::test]
async fn a_chosen_list_that_does_not_exist_fails_the_run_and_writes_nothing() {
    let app = spawn_app().await;
    let (who, _) = tasks_user(&app).await;
    let path = format!("/api/v1/users/{}/tasks", who.user.id);
    app.post(&path, &who.user.token, json!({"title": "Ours"}))
        .await;
    choose(&app, &who, json!("AAMkAGNoSuchList")).await;
    let runs = app.sync_now(&who.user).await;
    let tasks_run = runs.iter().find(|r| r["resource"] == "tasks").unwrap();
    assert_eq!(tasks_run["outcome"], "failed", "{tasks_run:?}");
    assert_eq!(
        tasks_run["errors"][0]["code"], "todo_list_not_found",
        "{tasks_run:?}"
    );
    assert_eq!(tasks_run["counts"]["created_remotely"], 0);
    for list in app.emulator.outlook().list_lists(&who.mailbox_id).unwrap() {
        let tasks = app
            .emulator
            .outlook()
            .list_tasks(&who.mailbox_id, list["id"].as_str())
            .unwrap();
        assert!(tasks.is_empty(), "{list}: {tasks:?}");
    }
}
