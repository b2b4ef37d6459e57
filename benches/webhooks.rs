//! Benchmark of webhook fan-out: 10,000 item changes (recorded as one large pull records them)
//! delivered to one endpoint on this machine, through the queue, by the server's embedded
//! worker. Prints the time until every delivery arrived, deliveries per second, and the API's
//! latency (p50, p99 of a page of 50 calendar events, 16 clients) measured in the same run
//! before the endpoint exists, while the deliveries go out and once they are all delivered,
//! with the ratio of the loaded p99 to the idle ones.
//!
//! Run with `cargo bench --bench webhooks` (`BENCH_CHANGES=10000`,
//! `BENCH_WEBHOOK_CONCURRENCY` to override `webhook_concurrency`); SQLite in a temporary
//! directory.

#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::{App, HttpResponse, HttpServer, web};
use m365_sync::{
    config::{Keys, Settings},
    db,
    domain::changes::{self, ItemChange, ItemKind, Origin},
    startup::Application,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const JWT: &str = "bench-jwt-secret-bench-jwt-secret-0123";
const PASSWORD: &str = "bench passphrase that is long";
const CLIENTS: usize = 16;

/// Latencies of GET a page of events by `CLIENTS` clients for `duration`: (p50, p99, requests).
async fn api_latency(base: &str, token: &str, user: &str, duration: Duration) -> (f64, f64, usize) {
    let url = format!("{base}/api/v1/users/{user}/calendar-events?limit=50");
    let until = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (url, token) = (url.clone(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut times = Vec::new();
            while Instant::now() < until {
                let start = Instant::now();
                let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
                assert!(response.status().is_success());
                response.bytes().await.unwrap();
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            times
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all[((all.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99), all.len())
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let changes_count: usize = std::env::var("BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();

    // The receiver: counts deliveries.
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let hook_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_url = format!("http://{}/hooks", hook_listener.local_addr().unwrap());
    let receiver = HttpServer::new(move || {
        let counter = counter.clone();
        App::new().default_service(web::to(move |_: web::Bytes| {
            counter.fetch_add(1, Ordering::Relaxed);
            async { HttpResponse::NoContent().finish() }
        }))
    })
    .workers(1)
    .listen(hook_listener)
    .unwrap()
    .run();
    tokio::spawn(receiver);

    let env = |_: &str| None;
    let mut settings = Settings::from_sources(None, &env).unwrap();
    settings.database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    settings.data_dir = dir.path().to_path_buf();
    settings.http_workers = Some(1);
    settings.max_connections_per_ip = 0;
    settings.jobs.scheduler_tick_ms = 0;
    settings.webhooks.allow_private_targets = true;
    if let Some(n) = std::env::var("BENCH_WEBHOOK_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.webhooks.concurrency = n;
    }
    settings.admin_email = Some("admin@example.com".to_owned());
    settings.admin_password = Some(SecretString::from(PASSWORD.to_owned()));
    let keys = Keys {
        jwt_secret: SecretString::from(JWT.to_owned()),
        encryption_key: SecretString::from(KEY.to_owned()),
    };
    let database = db::connect(&settings).await.unwrap();
    db::migrate(&database).await.unwrap();
    m365_sync::startup::ensure_bootstrap_admin(&database, &settings)
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    settings.public_url = base.clone();
    let concurrency = settings.webhooks.concurrency;
    let app = Application::with_listener(settings, &keys, database.clone(), listener).unwrap();
    tokio::spawn(app.run_until_stopped());

    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({"email": "admin@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let me: Value = http
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = me["id"].as_str().unwrap().to_owned();
    for n in 0..50 {
        let created = http
            .post(format!("{base}/api/v1/users/{user}/calendar-events"))
            .bearer_auth(&token)
            .json(&json!({
                "title": format!("Event {n}"),
                "start": {"date_time": "2026-12-10T09:00:00", "time_zone": "UTC"},
                "end": {"date_time": "2026-12-10T10:00:00", "time_zone": "UTC"},
            }))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success());
    }

    let window = Duration::from_secs(6);
    let (base_p50, base_p99, base_n) = api_latency(&base, &token, &user, window).await;

    let endpoint = http
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(&token)
        .json(&json!({"url": hook_url, "events": ["calendar_event.*"]}))
        .send()
        .await
        .unwrap();
    assert!(endpoint.status().is_success());
    // The 50 creations above happened before the endpoint existed: not delivered.
    let user_id: Uuid = user.parse().unwrap();
    let items: Vec<(Uuid, i64)> = (0..changes_count).map(|_| (Uuid::now_v7(), 1)).collect();
    let start = Instant::now();
    changes::items(
        &database,
        ItemKind::CalendarEvent,
        ItemChange::Created,
        user_id,
        &items,
        Origin::Microsoft,
    )
    .await
    .unwrap();
    let recorded = start.elapsed();

    let (load_p50, load_p99, load_n) = api_latency(&base, &token, &user, window).await;
    let during = received.load(Ordering::Relaxed);
    while received.load(Ordering::Relaxed) < changes_count {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "deliveries stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = start.elapsed();
    // The same measurement once the deliveries are done: how much two idle windows differ
    // says how far the ratio can be trusted.
    let (after_p50, after_p99, after_n) = api_latency(&base, &token, &user, window).await;
    let idle_p99 = (base_p99 + after_p99) / 2.0;

    println!(
        "webhook fan-out: {changes_count} item changes to one endpoint (SQLite, embedded worker, \
         webhook_concurrency {concurrency})"
    );
    println!(
        "  recording the changes:       {:>9.1} ms",
        recorded.as_secs_f64() * 1000.0
    );
    println!(
        "  all delivered after:         {:>9.1} ms",
        all.as_secs_f64() * 1000.0
    );
    println!(
        "  deliveries per second:       {:>9.0}",
        changes_count as f64 / all.as_secs_f64()
    );
    println!(
        "  API page of 50 events, {CLIENTS} clients, {} s each:",
        window.as_secs()
    );
    println!(
        "    idle, before:              p50 {base_p50:>6.2} ms  p99 {base_p99:>6.2} ms  ({base_n} requests)"
    );
    println!(
        "    while delivering:          p50 {load_p50:>6.2} ms  p99 {load_p99:>6.2} ms  ({load_n} requests)"
    );
    println!(
        "    idle, after:               p50 {after_p50:>6.2} ms  p99 {after_p99:>6.2} ms  ({after_n} requests)"
    );
    println!(
        "    p99 ratio to idle (target <= 1.10): {:>6.2}   (idle after / before: {:.2})",
        load_p99 / idle_p99,
        after_p99 / base_p99
    );
    println!("    deliveries made by the end of the loaded window: {during}");
}
