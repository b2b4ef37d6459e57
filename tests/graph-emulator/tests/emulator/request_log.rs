//! The request log: JSON bodies on Graph entries (each `$batch` item its own), never a secret.

use crate::helpers::TestCtx;
use serde_json::json;

#[tokio::test]
async fn entries_carry_their_json_bodies_and_batch_items_their_own() {
    let ctx = TestCtx::new().await;
    ctx.emu.clear_request_log();
    let event = json!({
        "subject": "Logged",
        "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"},
    });
    ctx.post("/me/events", event.clone()).await;
    ctx.get("/me").await;
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/me/events", "body": event,
         "headers": {"Content-Type": "application/json"}},
        {"id": "2", "method": "GET", "url": "/me"},
    ]});
    ctx.post("/$batch", batch.clone()).await;
    let log = ctx.emu.request_log();
    let bodies: Vec<(&str, bool, Option<&serde_json::Value>)> = log
        .iter()
        .map(|r| (r.path.as_str(), r.in_batch, r.body.as_ref()))
        .collect();
    assert_eq!(
        bodies,
        vec![
            ("/v1.0/me/events", false, Some(&event)),
            ("/v1.0/me", false, None),
            ("/v1.0/me/events", true, Some(&event)),
            ("/v1.0/me", true, None),
            ("/v1.0/$batch", false, Some(&batch)),
        ]
    );
}

#[tokio::test]
async fn no_secret_of_the_identity_endpoints_reaches_the_log() {
    let ctx = TestCtx::new().await;
    let refreshed = ctx
        .token_request(&[
            ("client_id", &ctx.app.client_id),
            ("client_secret", &ctx.app.client_secret),
            ("grant_type", "refresh_token"),
            ("refresh_token", &ctx.refresh_token),
        ])
        .await;
    assert_eq!(refreshed.status, 200);
    ctx.get("/me").await;
    let log = serde_json::to_string(&ctx.emu.request_log()).expect("serializes");
    for secret in [
        ctx.app.client_secret.as_str(),
        ctx.refresh_token.as_str(),
        crate::helpers::VERIFIER,
    ] {
        assert!(!log.contains(secret), "a secret in the log: {log}");
    }
    assert!(
        !log.contains("oauth2"),
        "identity requests are not logged: {log}"
    );
}
