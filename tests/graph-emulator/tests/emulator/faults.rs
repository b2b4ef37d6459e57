//! Throttling, injected faults and the request log.

use crate::helpers::TestCtx;
use graph_emulator::{Fault, FaultSpec};
use std::time::{Duration, Instant};

fn fault(path: &str, count: u32, kind: Fault) -> FaultSpec {
    FaultSpec {
        method: None,
        path_contains: Some(path.into()),
        count,
        skip: 0,
        kind,
    }
}

#[tokio::test]
async fn the_mailbox_budget_answers_429_with_retry_after() {
    let ctx = TestCtx::new().await;
    ctx.emu.update_config(|c| {
        c.throttle_requests = 2;
        c.throttle_window_secs = 60;
    });
    assert_eq!(ctx.get("/me").await.status, 200);
    assert_eq!(ctx.get("/me").await.status, 200);
    let resp = ctx.get("/me").await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.body["error"]["code"], "TooManyRequests");
    let retry: u64 = resp
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
}

#[tokio::test]
async fn more_than_four_concurrent_requests_are_throttled() {
    let ctx = TestCtx::new().await;
    ctx.emu
        .inject_fault(fault("/me", 4, Fault::Latency(Duration::from_millis(1200))));
    let calls = (0..5).map(|i| {
        let http = ctx.http.clone();
        let url = format!("{}/v1.0/me", ctx.emu.url());
        let token = ctx.token.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(if i == 4 { 300 } else { 0 })).await;
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("answers")
                .status()
                .as_u16()
        }
    });
    let mut statuses = futures_join(calls).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 200, 429]);
}

async fn futures_join<F: std::future::Future<Output = u16> + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<u16> {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn status_faults_hit_the_next_n_matching_requests() {
    let ctx = TestCtx::new().await;
    ctx.emu.inject_fault(fault(
        "/me/events",
        2,
        Fault::Status {
            status: 503,
            retry_after: Some(3),
        },
    ));
    ctx.emu.inject_fault(fault(
        "/me",
        1,
        Fault::Status {
            status: 504,
            retry_after: None,
        },
    ));
    let first = ctx.get("/me/events").await;
    assert_eq!(first.status, 503);
    assert_eq!(first.header("retry-after").as_deref(), Some("3"));
    assert_eq!(ctx.get("/me/events").await.status, 503);
    assert_eq!(
        ctx.get("/me/events").await.status,
        504,
        "the /me fault matches /me/events too"
    );
    assert_eq!(ctx.get("/me/events").await.status, 200);
    ctx.emu.inject_fault(fault(
        "/me",
        1,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
    ));
    let resp = ctx.get("/me").await;
    assert_eq!(resp.status, 500);
    assert!(resp.header("retry-after").is_none());
}

#[tokio::test]
async fn latency_faults_delay_the_response() {
    let ctx = TestCtx::new().await;
    ctx.emu
        .inject_fault(fault("/me", 1, Fault::Latency(Duration::from_millis(300))));
    let started = Instant::now();
    assert_eq!(ctx.get("/me").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn dropped_connections_truncated_and_malformed_bodies() {
    let ctx = TestCtx::new().await;
    let url = format!("{}/v1.0/me", ctx.emu.url());
    ctx.emu.inject_fault(fault("/me", 1, Fault::DropConnection));
    assert!(
        ctx.http
            .get(&url)
            .bearer_auth(&ctx.token)
            .send()
            .await
            .is_err(),
        "the connection closes without a response"
    );
    for kind in [Fault::TruncatedJson, Fault::MalformedJson] {
        ctx.emu.inject_fault(fault("/me", 1, kind));
        let resp = ctx
            .http
            .get(&url)
            .bearer_auth(&ctx.token)
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.expect("body");
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_err(),
            "{text}"
        );
    }
    assert_eq!(ctx.get("/me").await.status, 200);
}

#[tokio::test]
async fn faults_can_target_the_token_endpoint() {
    let ctx = TestCtx::new().await;
    ctx.emu.inject_fault(fault(
        "/oauth2/v2.0/token",
        1,
        Fault::Status {
            status: 503,
            retry_after: Some(2),
        },
    ));
    let resp = ctx.token_request(&[("grant_type", "refresh_token")]).await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.body["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn the_request_log_counts_graph_calls_per_mailbox() {
    let ctx = TestCtx::new().await;
    ctx.get("/me").await;
    ctx.get("/me/events").await;
    ctx.call_with("bad", reqwest::Method::GET, "/me", None, &[])
        .await;
    let log = ctx.emu.request_log();
    assert_eq!(log.len(), 3);
    assert_eq!(log[1].path, "/v1.0/me/events");
    assert_eq!(log[1].status, 200);
    assert_eq!(log[1].mailbox.as_deref(), Some(ctx.user.id.as_str()));
    assert_eq!(log[2].status, 401);
    ctx.emu.clear_request_log();
    assert!(ctx.emu.request_log().is_empty());
    ctx.emu.reset();
    assert_eq!(ctx.get("/me").await.status, 401, "reset forgets tokens");
}

#[tokio::test]
async fn a_fault_can_let_the_first_matching_requests_through() {
    let ctx = TestCtx::new().await;
    ctx.emu.inject_fault(FaultSpec {
        skip: 2,
        ..fault(
            "/me/events",
            1,
            Fault::Status {
                status: 503,
                retry_after: None,
            },
        )
    });
    assert_eq!(ctx.get("/me/events").await.status, 200);
    assert_eq!(
        ctx.get("/me").await.status,
        200,
        "does not match: not counted"
    );
    assert_eq!(ctx.get("/me/events").await.status, 200);
    assert_eq!(ctx.get("/me/events").await.status, 503, "the third match");
    assert_eq!(ctx.get("/me/events").await.status, 200, "used up");
}

#[tokio::test]
async fn a_slow_answer_is_carried_out_and_logged_before_it_is_answered() {
    let ctx = TestCtx::new().await;
    ctx.emu.inject_fault(fault(
        "/me/events",
        1,
        Fault::SlowAnswer(Duration::from_millis(1500)),
    ));
    let before = ctx.emu.request_log().len();
    let started = Instant::now();
    let create = {
        let ctx_post = ctx.post(
            "/me/events",
            serde_json::json!({
                "subject": "Slow",
                "start": {"dateTime": "2026-05-01T09:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-05-01T10:00:00", "timeZone": "UTC"},
            }),
        );
        tokio::time::timeout(Duration::from_millis(700), ctx_post).await
    };
    assert!(create.is_err(), "no answer within 700 ms");
    let log = ctx.emu.request_log();
    assert_eq!(
        log.len(),
        before + 1,
        "logged while its answer waits: {log:?}"
    );
    assert_eq!(log[before].status, 201);
    let subjects: Vec<String> = ctx
        .emu
        .outlook()
        .list_events(&ctx.user.id)
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        subjects,
        ["Slow"],
        "the event exists although the client never heard"
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
}
