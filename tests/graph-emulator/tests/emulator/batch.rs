//! `$batch`: limits, unique ids, dependsOn, per-item status and 429.

use crate::helpers::{TestCtx, check_batch};
use graph_emulator::{Fault, FaultSpec};
use serde_json::{Value, json};

async fn batch(ctx: &TestCtx, body: &Value) -> crate::helpers::Resp {
    let resp = ctx.post("/$batch", body.clone()).await;
    if resp.status == 200 {
        check_batch(body, &resp.body);
    }
    resp
}

fn item<'a>(resp: &'a Value, id: &str) -> &'a Value {
    resp["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .find(|r| r["id"] == id)
        .expect("item")
}

#[tokio::test]
async fn items_run_with_their_own_status_headers_and_body() {
    let ctx = TestCtx::new().await;
    let body = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/me"},
        {"id": "2", "method": "POST", "url": "/me/events", "headers": {"Content-Type": "application/json"},
         "body": {"subject": "b", "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}}},
        {"id": "3", "method": "GET", "url": "/me/events/AAAA"},
    ]});
    let resp = batch(&ctx, &body).await;
    assert_eq!(resp.status, 200);
    assert_eq!(item(&resp.body, "1")["status"], 200);
    assert_eq!(item(&resp.body, "2")["status"], 201);
    assert_eq!(item(&resp.body, "3")["status"], 400);
    assert!(item(&resp.body, "1")["headers"]["Content-Type"].is_string());
}

#[tokio::test]
async fn more_than_20_requests_or_duplicate_ids_are_400() {
    let ctx = TestCtx::new().await;
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/me"}))
        .collect();
    assert_eq!(batch(&ctx, &json!({"requests": many})).await.status, 400);
    let dup = json!({"requests": [{"id": "a", "method": "GET", "url": "/me"}, {"id": "A", "method": "GET", "url": "/me"}]});
    assert_eq!(batch(&ctx, &dup).await.status, 400);
    let no_ct =
        json!({"requests": [{"id": "a", "method": "POST", "url": "/me/events", "body": {}}]});
    assert_eq!(batch(&ctx, &no_ct).await.status, 400);
}

#[tokio::test]
async fn failed_dependencies_give_424() {
    let ctx = TestCtx::new().await;
    let body = json!({"requests": [
        {"id": "2", "method": "GET", "url": "/me", "dependsOn": ["1"]},
        {"id": "1", "method": "GET", "url": "/me/events/AAAA"},
        {"id": "3", "method": "GET", "url": "/me", "dependsOn": ["2"]},
    ]});
    let resp = batch(&ctx, &body).await;
    assert_eq!(item(&resp.body, "1")["status"], 400);
    assert_eq!(item(&resp.body, "2")["status"], 424);
    assert_eq!(item(&resp.body, "3")["status"], 424);
}

#[tokio::test]
async fn items_are_throttled_one_by_one_with_their_own_retry_after() {
    let ctx = TestCtx::new().await;
    ctx.emu.inject_fault(FaultSpec {
        method: Some("GET".into()),
        path_contains: Some("/me/events".into()),
        count: 1,
        skip: 0,
        kind: Fault::Status {
            status: 429,
            retry_after: Some(7),
        },
    });
    let body = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/me/events"},
        {"id": "2", "method": "GET", "url": "/me"},
    ]});
    let resp = batch(&ctx, &body).await;
    assert_eq!(item(&resp.body, "1")["status"], 429);
    assert_eq!(item(&resp.body, "1")["headers"]["Retry-After"], "7");
    assert_eq!(item(&resp.body, "2")["status"], 200);
    ctx.emu.update_config(|c| c.throttle_requests = 5);
    let body = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/me"},
        {"id": "2", "method": "GET", "url": "/me"},
        {"id": "3", "method": "GET", "url": "/me"},
    ]});
    let resp = batch(&ctx, &body).await;
    let statuses: Vec<u64> = ["1", "2", "3"]
        .iter()
        .map(|i| item(&resp.body, i)["status"].as_u64().expect("status"))
        .collect();
    assert!(
        statuses.contains(&429),
        "the budget runs out inside the batch: {statuses:?}"
    );
}
