//! Benchmark: requests/s and p99 latency of `GET /api/v1/users/{id}/settings/microsoft` with a
//! valid token, against a bare actix-web JSON handler measured in the same run on the same
//! machine, and the ratio of the two.
//!
//! Run with `cargo bench --bench settings_api` (optionally `BENCH_SECONDS=5`,
//! `BENCH_ROUNDS=3`, `BENCH_CONNECTIONS=32`). Each server gets one worker thread; the load generator runs on one
//! other thread, so both targets are measured under the same conditions.

#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

mod common;

use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{App, HttpResponse, HttpServer, web};
use m365_sync::{
    config::{Keys, Settings},
    domain::Role,
    startup::Application,
};
use secrecy::SecretString;
use serde_json::json;

struct Figures {
    requests_per_second: f64,
    p99_ms: f64,
    errors: u64,
}

fn run_load(url: &str, token: Option<&str>, seconds: u64, connections: usize) -> Figures {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .unwrap();
        // Warm-up: connections, caches, prepared statements.
        for _ in 0..200 {
            let mut request = client.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            assert!(request.send().await.unwrap().status().is_success());
        }
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let latencies = Arc::new(Mutex::new(Vec::with_capacity(1 << 20)));
        let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let client = client.clone();
                let url = url.to_owned();
                let token = token.map(str::to_owned);
                let latencies = latencies.clone();
                let errors = errors.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        let mut request = client.get(&url);
                        if let Some(token) = &token {
                            request = request.bearer_auth(token);
                        }
                        match request.send().await {
                            Ok(response) if response.status().is_success() => {
                                let _ = response.bytes().await;
                                mine.push(sent.elapsed());
                            }
                            _ => {
                                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                    latencies.lock().unwrap().extend(mine);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let mut latencies = latencies.lock().unwrap().clone();
        latencies.sort();
        let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
        Figures {
            requests_per_second: latencies.len() as f64 / elapsed,
            p99_ms: p99.as_secs_f64() * 1000.0,
            errors: errors.load(std::sync::atomic::Ordering::Relaxed),
        }
    })
}

fn median(mut rounds: Vec<Figures>) -> Figures {
    rounds.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
    rounds.swap_remove(rounds.len() / 2)
}

fn start_bare_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(|| {
                App::new().route(
                    "/bare",
                    web::get().to(|| async {
                        HttpResponse::Ok().json(json!({"status": "ok", "value": 30}))
                    }),
                )
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    format!("http://127.0.0.1:{port}/bare")
}

fn start_service(dir: &std::path::Path) -> (String, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut settings = Settings::from_sources(None, &|_: &str| None).unwrap();
    settings.database_url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    settings.http_workers = Some(1);
    let keys = Keys {
        jwt_secret: SecretString::from(common::JWT.to_owned()),
        encryption_key: SecretString::from(m365_sync::crypto::random_key_base64()),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let db = common::database(&settings).await;
            let org = common::organization(&db).await;
            let user = common::person(
                &db,
                "bench@example.com",
                "bench password",
                Role::User,
                Some(org),
            )
            .await;
            let app = Application::with_listener(settings, &keys, db, listener).unwrap();
            tx.send(user.id).unwrap();
            app.run_until_stopped().await.unwrap();
        });
    });
    let user_id = rx.recv().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let token = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(common::sign_in(
            &reqwest::Client::new(),
            &base,
            "bench@example.com",
            "bench password",
        ));
    // Some overrides so that resolution walks every scope.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let response = reqwest::Client::new()
                .patch(format!("{base}/api/v1/users/{user_id}/settings/microsoft"))
                .bearer_auth(&token)
                .json(&json!({"calendar": {"enabled": true}, "sync_interval_minutes": 15}))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        });
    (
        format!("{base}/api/v1/users/{user_id}/settings/microsoft"),
        token,
    )
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let connections = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let dir = tempfile::tempdir().unwrap();
    let bare_url = start_bare_server();
    let (settings_url, token) = start_service(dir.path());

    // Alternate the two targets over several rounds and keep each one's median round, so that
    // a burst of other load on the machine does not decide the ratio.
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut bare_rounds = Vec::new();
    let mut settings_rounds = Vec::new();
    for _ in 0..rounds {
        bare_rounds.push(run_load(&bare_url, None, seconds, connections));
        settings_rounds.push(run_load(&settings_url, Some(&token), seconds, connections));
    }
    let bare = median(bare_rounds);
    let settings = median(settings_rounds);

    println!(
        "GET settings benchmark: median of {rounds} rounds of {seconds} s per target, \
         {connections} connections, 1 server worker"
    );
    println!(
        "bare actix-web JSON handler : {:>9.0} req/s  p99 {:>6.2} ms  errors {}",
        bare.requests_per_second, bare.p99_ms, bare.errors
    );
    println!(
        "GET user settings (SQLite)  : {:>9.0} req/s  p99 {:>6.2} ms  errors {}",
        settings.requests_per_second, settings.p99_ms, settings.errors
    );
    println!(
        "ratio (settings / bare)     : {:>9.2} throughput, {:.2}x p99 latency",
        settings.requests_per_second / bare.requests_per_second,
        settings.p99_ms / bare.p99_ms
    );
}
