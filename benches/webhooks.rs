//! Benchmark of webhook fan-out: 10,000 item changes (recorded as one large pull records them)
//! delivered to one endpoint on this machine, through the queue, by the server's embedded
//! worker. Prints the time until every delivery arrived, deliveries per second, and what the
//! deliveries cost the API, measured in the same run on a page of 50 calendar events:
//!
//! - its capacity: requests/s of 16 clients sending back to back, idle before and after, and
//!   while delivering;
//! - its latency at a steady load of half the idle capacity (requests sent on a fixed schedule,
//!   each timed from when it was due, so that a stalled server is not hidden by clients that
//!   wait for it): p50 and p99 idle before the endpoint exists, while the deliveries go out,
//!   and idle once they are all delivered, with the ratio of the loaded p99 to the idle ones
//!   (target at most 1.10) and of the two idle ones (how much the measurement varies).
//!
//! Run with `cargo bench --bench webhooks` (`BENCH_CHANGES=10000`,
//! `BENCH_WEBHOOK_CONCURRENCY` to override `webhook_concurrency`); SQLite in a temporary
//! directory.

#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

mod common;

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
    config::Settings,
    domain::changes::{self, ItemChange, ItemKind, Origin},
    startup::Application,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

const PASSWORD: &str = "bench passphrase that is long";
const CLIENTS: usize = 16;

/// Latencies in milliseconds, sorted.
struct Latencies(Vec<f64>);

impl Latencies {
    fn new(mut all: Vec<f64>) -> Self {
        all.sort_by(f64::total_cmp);
        Self(all)
    }

    fn at(&self, q: f64) -> f64 {
        self.0[((self.0.len() as f64 - 1.0) * q) as usize]
    }
}

/// Runs a load generator on a thread of its own, as a client on another machine would be: the
/// server's background work shares this process's runtime, and must not stall the client's
/// clock.
async fn apart<T: Send + 'static, F: Future<Output = T> + 'static>(
    load: impl FnOnce() -> F + Send + 'static,
) -> T {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = done.send(runtime.block_on(load()));
    });
    result.await.unwrap()
}

/// Requests per second of `CLIENTS` clients sending GET a page of events back to back for
/// `duration`.
async fn capacity(url: &str, token: &str, duration: Duration) -> f64 {
    let (url, token) = (url.to_owned(), token.to_owned());
    apart(move || async move {
        let until = Instant::now() + duration;
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (url, token) = (url.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut n = 0_usize;
                while Instant::now() < until {
                    let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
                    assert!(response.status().is_success());
                    response.bytes().await.unwrap();
                    n += 1;
                }
                n
            }));
        }
        let mut n = 0;
        for task in tasks {
            n += task.await.unwrap();
        }
        n as f64 / duration.as_secs_f64()
    })
    .await
}

/// Latencies of GET a page of events sent at `rate` per second for `duration`, each timed from
/// when it was due.
async fn steady(url: &str, token: &str, rate: f64, duration: Duration) -> Latencies {
    let (url, token) = (url.to_owned(), token.to_owned());
    apart(move || async move {
        let client = reqwest::Client::new();
        let every = Duration::from_secs_f64(1.0 / rate);
        let start = tokio::time::Instant::now();
        let count = (duration.as_secs_f64() * rate) as u32;
        let mut tasks = Vec::with_capacity(count as usize);
        for n in 0..count {
            let due = start + every * n;
            tokio::time::sleep_until(due).await;
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
                assert!(response.status().is_success());
                response.bytes().await.unwrap();
                due.elapsed().as_secs_f64() * 1000.0
            }));
        }
        let mut all = Vec::with_capacity(tasks.len());
        for task in tasks {
            all.push(task.await.unwrap());
        }
        Latencies::new(all)
    })
    .await
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let changes_count: usize = std::env::var("BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();

    // The receiver: counts deliveries. It stands for the integrator's server, on another
    // machine: here it runs on a thread of its own at a lower priority, so that what it costs
    // the two cores is not counted as the deliveries' cost to the API.
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let hook_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_url = format!("http://{}/hooks", hook_listener.local_addr().unwrap());
    std::thread::spawn(move || {
        #[cfg(target_os = "linux")]
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10).unwrap();
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let counter = counter.clone();
                App::new().default_service(web::to(move |_: web::Bytes| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async { HttpResponse::NoContent().finish() }
                }))
            })
            .workers(1)
            .listen(hook_listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });

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
    let keys = common::keys();
    let database = common::database(&settings).await;
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
    let token = common::sign_in(&http, &base, "admin@example.com", PASSWORD).await;
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

    let url = format!("{base}/api/v1/users/{user}/calendar-events?limit=50");
    let window = Duration::from_secs(10);
    // Warm up (connections, caches, the database file's pages), then measure.
    let warm = capacity(&url, &token, Duration::from_secs(3)).await;
    steady(&url, &token, warm / 2.0, Duration::from_secs(3)).await;
    let idle_capacity = capacity(&url, &token, Duration::from_secs(5)).await;
    let rate = (idle_capacity / 2.0).round();
    let before = steady(&url, &token, rate, window).await;

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

    let loaded = steady(&url, &token, rate, window).await;
    let during = received.load(Ordering::Relaxed);
    let loaded_capacity = capacity(&url, &token, Duration::from_secs(5)).await;
    let during_capacity = received.load(Ordering::Relaxed);
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
    let after = steady(&url, &token, rate, window).await;
    let after_capacity = capacity(&url, &token, Duration::from_secs(5)).await;
    let idle_p99 = (before.at(0.99) + after.at(0.99)) / 2.0;

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
    println!("  API, GET a page of 50 events:");
    println!(
        "    capacity, {CLIENTS} clients back to back: idle {idle_capacity:.0}/s before and \
         {after_capacity:.0}/s after, {loaded_capacity:.0}/s while delivering (ratio {:.2}; \
         {during_capacity} deliveries by its end)",
        2.0 * loaded_capacity / (idle_capacity + after_capacity),
    );
    println!(
        "    at a steady {rate:.0} requests/s (half the idle capacity), {} s windows:",
        window.as_secs()
    );
    for (name, l) in [
        ("idle, before:", &before),
        ("while delivering:", &loaded),
        ("idle, after:", &after),
    ] {
        println!(
            "      {name:<19} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({} requests)",
            l.at(0.5),
            l.at(0.99),
            l.at(1.0),
            l.0.len()
        );
    }
    let idle_p50 = (before.at(0.5) + after.at(0.5)) / 2.0;
    println!(
        "    p99 ratio to idle (target <= 1.10): {:>6.2}   (idle after / before: {:.2})",
        loaded.at(0.99) / idle_p99,
        after.at(0.99) / before.at(0.99)
    );
    println!(
        "    p50 ratio to idle:                  {:>6.2}   (idle after / before: {:.2})",
        loaded.at(0.5) / idle_p50,
        after.at(0.5) / before.at(0.5)
    );
    println!("    deliveries made by the end of the steady loaded window: {during}");
    if during >= changes_count {
        println!("    (they were all made before that window ended: raise BENCH_CHANGES)");
    }
}
