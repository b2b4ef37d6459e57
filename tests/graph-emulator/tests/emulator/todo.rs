//! To Do lists and tasks: default list, CRUD with etags, extensions, linked resources, delta.

use crate::calendar::delta_round;
use crate::helpers::{TestCtx, enc};
use reqwest::Method;
use serde_json::json;

async fn default_list(ctx: &TestCtx) -> String {
    let lists = ctx.get("/me/todo/lists").await;
    let list = &lists.body["value"][0];
    assert_eq!(list["displayName"], "Tasks");
    assert_eq!(list["wellknownListName"], "defaultList");
    list["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn each_user_has_the_builtin_tasks_list_which_cannot_be_deleted() {
    let ctx = TestCtx::new().await;
    let id = default_list(&ctx).await;
    assert_eq!(id, ctx.user.default_task_list_id);
    assert_eq!(
        ctx.delete(&format!("/me/todo/lists/{}", enc(&id)))
            .await
            .status,
        400
    );
    let created = ctx
        .post("/me/todo/lists", json!({"displayName": "Work"}))
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["wellknownListName"], "none");
    let path = format!(
        "/me/todo/lists/{}",
        enc(created.body["id"].as_str().expect("id"))
    );
    assert_eq!(
        ctx.patch(&path, json!({"displayName": "Job"})).await.body["displayName"],
        "Job"
    );
    assert_eq!(ctx.delete(&path).await.status, 204);
}

#[tokio::test]
async fn tasks_crud_with_etags_extensions_and_linked_resources() {
    let ctx = TestCtx::new().await;
    let list = default_list(&ctx).await;
    let base = format!("/me/todo/lists/{}/tasks", enc(&list));
    let created = ctx
        .post(&base, json!({
            "title": "A new task",
            "dueDateTime": {"dateTime": "2026-07-25T16:00:00", "timeZone": "Eastern Standard Time"},
            "linkedResources": [{"webUrl": "http://microsoft.com", "applicationName": "Microsoft", "displayName": "Microsoft"}],
            "extensions": [{"extensionName": "com.m365sync", "localId": "7"}],
        }))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["status"], "notStarted");
    assert_eq!(
        created.body["dueDateTime"],
        json!({"dateTime": "2026-07-25T20:00:00.0000000", "timeZone": "UTC"})
    );
    assert_eq!(
        created.body["linkedResources"][0]["applicationName"],
        "Microsoft"
    );
    let path = format!("{base}/{}", enc(created.body["id"].as_str().expect("id")));
    let etag = created.body["@odata.etag"]
        .as_str()
        .expect("etag")
        .to_owned();
    let done = ctx
        .call(
            Method::PATCH,
            &path,
            Some(json!({"status": "completed"})),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(done.status, 200);
    assert!(done.body["completedDateTime"].is_object());
    assert_ne!(done.body["@odata.etag"], etag.as_str());
    let stale = ctx
        .call(
            Method::PATCH,
            &path,
            Some(json!({"title": "x"})),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(stale.status, 412);
    let expanded = ctx.get(&format!("{path}?$expand=extensions")).await;
    assert_eq!(expanded.body["extensions"][0]["localId"], "7");
    let lr = ctx
        .post(
            &format!("{path}/linkedResources"),
            json!({"webUrl": "https://app.example/1", "applicationName": "m365-sync"}),
        )
        .await;
    assert_eq!(lr.status, 201);
    assert_eq!(
        ctx.get(&format!("{path}/linkedResources")).await.body["value"]
            .as_array()
            .expect("list")
            .len(),
        2
    );
    assert_eq!(
        ctx.post(
            &format!("{path}/extensions"),
            json!({"extensionName": "com.two"})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        ctx.get(&format!("{path}/extensions")).await.body["value"]
            .as_array()
            .expect("list")
            .len(),
        2
    );
    let bad = ctx
        .post(&base, json!({"title": "x", "status": "sleeping"}))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(ctx.delete(&path).await.status, 204);
    assert_eq!(ctx.get(&path).await.status, 404);
}

#[tokio::test]
async fn task_delta_reports_changes_and_removals() {
    let ctx = TestCtx::new().await;
    let list = default_list(&ctx).await;
    let base = format!("/me/todo/lists/{}/tasks", enc(&list));
    let a = ctx.post(&base, json!({"title": "a"})).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let b = ctx.post(&base, json!({"title": "b"})).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    ctx.post(&base, json!({"title": "c"})).await;
    let (items, delta) = delta_round(&ctx, &format!("{base}/delta"), 2).await;
    assert_eq!(items.len(), 3);
    ctx.emu
        .outlook()
        .update_task(&ctx.user.id, None, &a, json!({"title": "a2"}))
        .expect("updated");
    ctx.emu
        .outlook()
        .delete_task(&ctx.user.id, None, &b)
        .expect("deleted");
    let (items, delta) = delta_round(&ctx, &delta, 2).await;
    assert_eq!(items.len(), 2, "{items:#?}");
    assert!(
        items
            .iter()
            .any(|i| i["id"] == a.as_str() && i["title"] == "a2")
    );
    assert!(
        items
            .iter()
            .any(|i| i["id"] == b.as_str() && i["@removed"]["reason"] == "deleted")
    );
    ctx.emu.expire_delta_tokens(None);
    assert_eq!(ctx.get(&delta).await.status, 410);
}

#[tokio::test]
async fn list_delta_reports_new_renamed_and_deleted_lists() {
    let ctx = TestCtx::new().await;
    let (items, delta) = delta_round(&ctx, "/me/todo/lists/delta", 10).await;
    assert_eq!(items.len(), 1, "the built-in list");
    let work = ctx
        .post("/me/todo/lists", json!({"displayName": "Work"}))
        .await
        .body;
    let (items, delta) = delta_round(&ctx, &delta, 10).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["displayName"], "Work");
    assert_eq!(
        ctx.delete(&format!(
            "/me/todo/lists/{}",
            enc(work["id"].as_str().expect("id"))
        ))
        .await
        .status,
        204
    );
    let (items, _) = delta_round(&ctx, &delta, 10).await;
    assert_eq!(items[0]["@removed"]["reason"], "deleted");
}

#[tokio::test]
async fn an_expired_task_delta_resyncs_from_the_location() {
    let ctx = TestCtx::new().await;
    let base = format!(
        "/me/todo/lists/{}/tasks",
        enc(&ctx.user.default_task_list_id)
    );
    ctx.post(&base, json!({"title": "a"})).await;
    let (_, delta) = delta_round(&ctx, &format!("{base}/delta"), 10).await;
    ctx.emu.expire_delta_tokens(Some(&ctx.user.id));
    let gone = ctx.get(&delta).await;
    assert_eq!(gone.status, 410);
    let (items, _) = delta_round(&ctx, &gone.header("location").expect("Location"), 10).await;
    assert_eq!(items.len(), 1);
}
