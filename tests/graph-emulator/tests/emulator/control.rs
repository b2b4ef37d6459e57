//! The control API over HTTP: everything the library handle does is reachable as JSON.

use crate::helpers::{REDIRECT, client};
use graph_emulator::Emulator;
use serde_json::{Value, json};

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json")
        },
    )
}

#[tokio::test]
async fn every_control_operation_is_available_over_http() {
    use reqwest::Method as M;
    let emu = Emulator::start().await;
    let http = client();
    let c = |p: &str| format!("{}/_emulator{p}", emu.url());
    let (s, app) = call(
        &http,
        M::POST,
        c("/apps"),
        Some(json!({"redirect_uris": [REDIRECT], "multi_tenant": true})),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        app["client_id"].is_string()
            && app["client_secret"].is_string()
            && app["tenant_id"].is_string()
    );
    let (s, user) = call(
        &http,
        M::POST,
        c("/users"),
        Some(json!({"user_principal_name": "megan@contoso.com", "display_name": "Megan"})),
    )
    .await;
    assert_eq!(s, 200);
    let uid = user["id"].as_str().expect("id").to_owned();
    let (s, _) = call(
        &http,
        M::POST,
        c("/users"),
        Some(json!({"user_principal_name": "MEGAN@contoso.com", "display_name": "Dup"})),
    )
    .await;
    assert_eq!(s, 409);
    let (s, ev) = call(&http, M::POST, c(&format!("/users/{uid}/events")), Some(json!({"subject": "From Outlook", "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}}))).await;
    assert_eq!(s, 201, "{ev}");
    let enc_id = crate::helpers::enc(ev["id"].as_str().expect("id"));
    let (s, ev2) = call(
        &http,
        M::PATCH,
        c(&format!("/users/{uid}/events/{enc_id}")),
        Some(json!({"subject": "Edited"})),
    )
    .await;
    assert_eq!((s, ev2["subject"].as_str()), (200, Some("Edited")));
    let (s, list) = call(&http, M::GET, c(&format!("/users/{uid}/events")), None).await;
    assert_eq!((s, list["value"].as_array().map(Vec::len)), (200, Some(1)));
    let (s, _) = call(
        &http,
        M::DELETE,
        c(&format!("/users/{uid}/events/{enc_id}")),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let list_id = user["default_task_list_id"]
        .as_str()
        .expect("list")
        .to_owned();
    let (s, task) = call(
        &http,
        M::POST,
        c(&format!("/users/{uid}/todo/lists/{list_id}/tasks")),
        Some(json!({"title": "t"})),
    )
    .await;
    assert_eq!(s, 201);
    let tid = crate::helpers::enc(task["id"].as_str().expect("id"));
    let (s, _) = call(
        &http,
        M::PATCH,
        c(&format!("/users/{uid}/todo/lists/{list_id}/tasks/{tid}")),
        Some(json!({"title": "t2"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, tasks) = call(
        &http,
        M::GET,
        c(&format!("/users/{uid}/todo/lists/{list_id}/tasks")),
        None,
    )
    .await;
    assert_eq!((s, tasks["value"][0]["title"].as_str()), (200, Some("t2")));
    let (s, _) = call(
        &http,
        M::DELETE,
        c(&format!("/users/{uid}/todo/lists/{list_id}/tasks/{tid}")),
        None,
    )
    .await;
    assert_eq!(s, 204);
    for (path, body) in [
        ("/consent/decline-next", None),
        ("/tokens/access/expire", Some(json!({"user_id": uid}))),
        ("/tokens/refresh/revoke", Some(json!({"user_id": uid}))),
        ("/tokens/refresh/expire", None),
        ("/delta/expire", None),
        (
            "/faults",
            Some(
                json!({"path_contains": "/me", "count": 2, "kind": {"type": "status", "status": 503, "retry_after": 5}}),
            ),
        ),
        (
            "/faults",
            Some(json!({"count": 1, "kind": {"type": "latency", "ms": 10}})),
        ),
    ] {
        let (s, v) = call(&http, M::POST, c(path), body).await;
        assert_eq!(s, 204, "{path}: {v}");
    }
    let (s, faults) = call(&http, M::GET, c("/faults"), None).await;
    assert_eq!((s, faults.as_array().map(Vec::len)), (200, Some(2)));
    let (s, cfg) = call(
        &http,
        M::PATCH,
        c("/config"),
        Some(json!({"access_token_lifetime_secs": 60})),
    )
    .await;
    assert_eq!(
        (s, cfg["access_token_lifetime_secs"].as_i64()),
        (200, Some(60))
    );
    assert_eq!(cfg["throttle_requests"], 10_000);
    let (s, _) = call(
        &http,
        M::PATCH,
        c("/config"),
        Some(json!({"no_such_field": 1})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, log) = call(&http, M::GET, c("/requests"), None).await;
    assert_eq!((s, log.as_array().map(Vec::len)), (200, Some(0)));
    let (s, _) = call(&http, M::POST, c("/reset"), None).await;
    assert_eq!(s, 204);
    let (_, users) = call(&http, M::GET, c("/users"), None).await;
    assert_eq!(users, json!([]));
}

#[tokio::test]
async fn meeting_answers_cancellations_and_the_mail_log_are_available_over_http() {
    use reqwest::Method as M;
    let emu = Emulator::start().await;
    let http = client();
    let c = |p: &str| format!("{}/_emulator{p}", emu.url());
    for upn in ["olga@contoso.com", "pat@contoso.com"] {
        let (s, _) = call(
            &http,
            M::POST,
            c("/users"),
            Some(json!({"user_principal_name": upn, "display_name": upn})),
        )
        .await;
        assert_eq!(s, 200);
    }
    let meeting = json!({"subject": "Sync", "attendees": [{"emailAddress": {"address": "pat@contoso.com"}}],
        "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}});
    let (s, ev) = call(
        &http,
        M::POST,
        c("/users/olga@contoso.com/events"),
        Some(meeting),
    )
    .await;
    assert_eq!(s, 201, "{ev}");
    let (_, pats) = call(&http, M::GET, c("/users/pat@contoso.com/events"), None).await;
    let copy = crate::helpers::enc(pats["value"][0]["id"].as_str().expect("Pat's copy"));
    let copy_path = format!("/users/pat@contoso.com/events/{copy}");
    let (s, v) = call(
        &http,
        M::POST,
        c(&format!("{copy_path}/accept")),
        Some(json!({"comment": "yes", "sendResponse": true})),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let (s, _) = call(&http, M::POST, c(&format!("{copy_path}/cancel")), None).await;
    assert_eq!(s, 400, "an attendee cannot cancel");
    let (s, _) = call(&http, M::POST, c(&format!("{copy_path}/shrug")), None).await;
    assert_eq!(s, 400);
    let organizer = crate::helpers::enc(ev["id"].as_str().expect("id"));
    let (s, _) = call(
        &http,
        M::POST,
        c(&format!(
            "/users/olga@contoso.com/events/{organizer}/cancel"
        )),
        Some(json!({"comment": "off"})),
    )
    .await;
    assert_eq!(s, 202);
    let (s, mail) = call(&http, M::GET, c("/mail-log"), None).await;
    assert_eq!(s, 200);
    let kinds: Vec<&str> = mail
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        vec!["meetingRequest", "meetingResponse", "meetingCancellation"]
    );
    assert_eq!(mail[1]["response"], "accepted");
    assert_eq!(mail[2]["comment"], "off");
    let (s, _) = call(&http, M::DELETE, c("/mail-log"), None).await;
    assert_eq!(s, 204);
    let (_, mail) = call(&http, M::GET, c("/mail-log"), None).await;
    assert_eq!(mail, json!([]));
}
