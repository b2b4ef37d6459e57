//! A scripted walk of the documented flows: authorize, token, /me, create an event, a delta
//! round with a change and a deletion, a 410 resync, and a batch with a 429 inside.

use crate::calendar::delta_round;
use crate::helpers::{TestCtx, VERIFIER, check_batch, enc};
use graph_emulator::{Fault, FaultSpec};
use serde_json::json;

#[tokio::test]
async fn documented_flows_work_end_to_end() {
    // TestCtx::new signs in once; the walk repeats authorize and token to show each step.
    let mut ctx = TestCtx::new().await;
    let code = ctx.authorize_code(&[]).await;
    let tokens = ctx.redeem(&code, VERIFIER).await;
    assert_eq!(tokens.status, 200);
    assert_eq!(tokens.body["token_type"], "Bearer");
    ctx.token = tokens.body["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let me = ctx.get("/me").await;
    assert_eq!(me.body["userPrincipalName"], "adele@contoso.com");

    let window = "startDateTime=2026-04-01T00:00:00Z&endDateTime=2026-05-01T00:00:00Z";
    let (initial, delta) = delta_round(&ctx, &format!("/me/calendarView/delta?{window}"), 5).await;
    assert!(initial.is_empty());

    let kept = ctx
        .create_event("Kickoff", "2026-04-02T09:00:00", "2026-04-02T10:00:00")
        .await;
    let doomed = ctx
        .create_event("Retro", "2026-04-03T09:00:00", "2026-04-03T10:00:00")
        .await;
    let (round, delta) = delta_round(&ctx, &delta, 5).await;
    assert_eq!(round.len(), 2);

    let kept_id = kept["id"].as_str().expect("id");
    ctx.emu
        .outlook()
        .update_event(
            &ctx.user.id,
            kept_id,
            json!({"subject": "Kickoff (moved room)"}),
        )
        .expect("edited in Outlook");
    assert_eq!(
        ctx.delete(&format!(
            "/me/events/{}",
            enc(doomed["id"].as_str().expect("id"))
        ))
        .await
        .status,
        204
    );
    let (round, delta) = delta_round(&ctx, &delta, 5).await;
    assert_eq!(round.len(), 2);
    assert!(
        round
            .iter()
            .any(|i| i["id"] == kept_id && i["subject"] == "Kickoff (moved room)")
    );
    assert!(
        round
            .iter()
            .any(|i| i["id"] == doomed["id"] && i["@removed"]["reason"] == "deleted")
    );

    ctx.emu.expire_delta_tokens(None);
    let gone = ctx.get(&delta).await;
    assert_eq!(gone.status, 410);
    let (resync, _) = delta_round(&ctx, &gone.header("location").expect("Location"), 5).await;
    assert_eq!(resync.len(), 1);

    ctx.emu.inject_fault(FaultSpec {
        method: Some("GET".into()),
        path_contains: Some("/me/events".into()),
        count: 1,
        skip: 0,
        kind: Fault::Status {
            status: 429,
            retry_after: Some(10),
        },
    });
    let body = json!({"requests": [
        {"id": "me", "method": "GET", "url": "/me"},
        {"id": "events", "method": "GET", "url": "/me/events"},
    ]});
    let resp = ctx.post("/$batch", body.clone()).await;
    check_batch(&body, &resp.body);
    let items = resp.body["responses"].as_array().expect("responses");
    let throttled = items
        .iter()
        .find(|i| i["id"] == "events")
        .expect("events item");
    assert_eq!(throttled["status"], 429);
    assert_eq!(throttled["headers"]["Retry-After"], "10");
    assert!(items.iter().any(|i| i["id"] == "me" && i["status"] == 200));
}
