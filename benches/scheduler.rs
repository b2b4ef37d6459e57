//! Benchmark of background synchronization:
//!
//! 1. A scheduler tick over 10,000 connected users (calendar and tasks enabled): with nothing
//!    due, and with everything due (20,000 jobs enqueued).
//! 2. A no-change round for 1,000 users against the emulator, performed by one `m365-sync
//!    worker` process: wall time, the worker's CPU time, and Graph requests (exactly one per
//!    enabled resource per user).
//!
//! Run with `cargo bench --bench scheduler` (`BENCH_TICK_USERS=10000`, `BENCH_ROUND_USERS=1000`).
//! Both parts run on SQLite files, or on new databases of the PostgreSQL server that
//! `BENCH_DATABASE_URL` names (for example `postgres://postgres@127.0.0.1:5432/test`), dropped
//! at the end.

#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

mod common;

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use chrono::Utc;
use entity::{microsoft_connections, microsoft_settings, sync_jobs, sync_schedules, users};
use graph_emulator::{AppSpec, Emulator, UserSpec};
use m365_sync::{
    config::Settings,
    db,
    domain::Role,
    jobs::scheduler,
    startup::{AppState, Application},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set, sea_query::Expr,
};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

/// The database of one part: a SQLite file in `dir`, or a new PostgreSQL database.
struct BenchDb {
    url: String,
    label: &'static str,
    /// The server's URL and the database's name, to drop it at the end.
    postgres: Option<(String, String)>,
}

impl BenchDb {
    async fn new(dir: &std::path::Path, name: &str) -> Self {
        let Some(server) = std::env::var("BENCH_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            return Self {
                url: format!(
                    "sqlite://{}?mode=rwc",
                    dir.join(format!("{name}.db")).display()
                ),
                label: "SQLite",
                postgres: None,
            };
        };
        let database = format!("m365_bench_{name}_{}", Uuid::new_v4().simple());
        let admin = db::connect_url(&server).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {database}"))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{database}"),
            label: "PostgreSQL",
            postgres: Some((server.clone(), database)),
        }
    }

    async fn drop_database(self) {
        if let Some((server, database)) = self.postgres {
            let admin = db::connect_url(&server).await.unwrap();
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                .await
                .unwrap();
        }
    }
}

async fn enable_everything(db: &sea_orm::DatabaseConnection, minutes: i32) {
    microsoft_settings::Entity::insert(microsoft_settings::ActiveModel {
        scope_key: Set("global".into()),
        organization_id: Set(None),
        user_id: Set(None),
        emails_integration: Set(None),
        calendar_integration: Set(Some(true)),
        tasks_integration: Set(Some(true)),
        sync_interval_minutes: Set(Some(minutes)),
        calendar_enabled: Set(Some(true)),
        calendar_direction: Set(None),
        calendar_conflict_resolution: Set(None),
        tasks_enabled: Set(Some(true)),
        tasks_direction: Set(None),
        tasks_conflict_resolution: Set(None),
        calendar_invitations: Set(None),
        todo_list_id: Set(None),
        version: Set(1),
        updated_at: Set(Utc::now().fixed_offset()),
    })
    .exec(db)
    .await
    .unwrap();
}

/// Part 1: ticks over `count` users inserted directly (connections with placeholder tokens:
/// a tick reads no token).
async fn tick_benchmark(count: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::from_sources(None, &|_: &str| None).unwrap();
    let bench_db = BenchDb::new(dir.path(), "tick").await;
    settings.database_url.clone_from(&bench_db.url);
    let db = common::database(&settings).await;
    enable_everything(&db, 30).await;
    let now = Utc::now().fixed_offset();
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    for chunk in ids.chunks(500) {
        users::Entity::insert_many(chunk.iter().map(|id| users::ActiveModel {
            id: Set(*id),
            email: Set(format!("{id}@example.com")),
            display_name: Set("Bench".into()),
            password_hash: Set("-".into()),
            role: Set("user".into()),
            organization_id: Set(None),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            token_generation: Set(0),
            email_skeleton: Set(Some(format!("{id}@example.com"))),
        }))
        .exec_without_returning(&db)
        .await
        .unwrap();
        microsoft_connections::Entity::insert_many(chunk.iter().map(|id| {
            microsoft_connections::ActiveModel {
                user_id: Set(*id),
                status: Set("connected".into()),
                microsoft_user_id: Set(id.to_string()),
                account_name: Set(format!("{id}@contoso.com")),
                display_name: Set("Bench".into()),
                scopes: Set("offline_access".into()),
                client_id: Set("bench".into()),
                tenant: Set("common".into()),
                access_token_encrypted: Set(None),
                refresh_token_encrypted: Set(None),
                access_token_expires_at: Set(None),
                token_version: Set(1),
                refresh_lease_until: Set(None),
                connected_at: Set(now),
                last_checked_at: Set(None),
                last_error_code: Set(None),
                last_error_message: Set(None),
                last_error_aadsts: Set(None),
                updated_at: Set(now),
            }
        }))
        .exec_without_returning(&db)
        .await
        .unwrap();
        // Every resource ran a moment ago: nothing is due for 30 minutes.
        sync_schedules::Entity::insert_many(chunk.iter().flat_map(|id| {
            ["calendar", "tasks"].map(|resource| sync_schedules::ActiveModel {
                key: Set(format!("{id}:{resource}")),
                user_id: Set(*id),
                resource: Set(resource.into()),
                lease_holder: Set(None),
                lease_until: Set(None),
                last_started_at: Set(Some(now)),
                last_finished_at: Set(Some(now)),
                last_run_id: Set(None),
                last_outcome: Set(Some("succeeded".into())),
                failures: Set(0),
                backoff_until: Set(None),
                updated_at: Set(now),
            })
        }))
        .exec_without_returning(&db)
        .await
        .unwrap();
    }
    let state = AppState::new(settings, &common::keys(), db.clone()).unwrap();

    let mut quiet = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let report = scheduler::tick(&state, &state.queue, "bench")
            .await
            .unwrap();
        quiet.push(started.elapsed());
        assert_eq!(report.enqueued, 0);
        assert_eq!(report.considered, count * 2);
    }
    quiet.sort();

    let past = (Utc::now() - chrono::Duration::hours(1)).fixed_offset();
    sync_schedules::Entity::update_many()
        .col_expr(sync_schedules::Column::LastStartedAt, Expr::value(past))
        .exec(&db)
        .await
        .unwrap();
    let started = Instant::now();
    let report = scheduler::tick(&state, &state.queue, "bench")
        .await
        .unwrap();
    let due = started.elapsed();
    assert_eq!(report.enqueued, count * 2);
    let queued = sync_jobs::Entity::find()
        .filter(sync_jobs::Column::State.eq("queued"))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(queued as usize, count * 2);

    println!(
        "scheduler tick over {count} connected users ({})",
        bench_db.label
    );
    println!(
        "  nothing due:     {:>8.1} ms (median of 5)",
        quiet[2].as_secs_f64() * 1000.0
    );
    println!(
        "  everything due:  {:>8.1} ms ({} jobs enqueued: rows and queue)",
        due.as_secs_f64() * 1000.0,
        report.enqueued
    );
    db.close().await.unwrap();
    bench_db.drop_database().await;
}

/// The unit of `/proc/{pid}/stat`'s CPU times (`getconf CLK_TCK`; 100 on Linux builds).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU time (user + system) of a process, from `/proc/{pid}/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
}

/// Part 2: a no-change round for `count` connected users, performed by a worker process.
async fn round_benchmark(count: usize) {
    let emulator = Emulator::start().await;
    emulator.update_config(|c| {
        c.throttle_requests = 1_000_000;
        c.throttle_concurrent = 64;
    });
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let address = format!("http://127.0.0.1:{port}");
    let mut settings = Settings::from_sources(None, &|_: &str| None).unwrap();
    let bench_db = BenchDb::new(dir.path(), "round").await;
    settings.database_url.clone_from(&bench_db.url);
    settings.identity_url = emulator.url();
    settings.graph_url = emulator.url();
    settings.public_url = address.clone();
    settings.jobs.embedded_worker = false;
    let db = common::database(&settings).await;
    enable_everything(&db, 30).await;
    let org = common::organization(&db).await;
    common::person(
        &db,
        "admin@example.com",
        "admin password",
        Role::Admin,
        None,
    )
    .await;
    let app = Application::with_listener(settings.clone(), &common::keys(), db.clone(), listener)
        .unwrap();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let admin_token =
        common::sign_in(&client, &address, "admin@example.com", "admin password").await;
    let registration = emulator.create_app(AppSpec {
        redirect_uris: vec![format!("{address}/api/v1/microsoft/oauth/callback")],
        multi_tenant: true,
        ..Default::default()
    });
    client
        .patch(format!("{address}/api/v1/settings/microsoft/application"))
        .bearer_auth(&admin_token)
        .json(&json!({"client_id": registration.client_id, "client_secret": registration.client_secret, "tenant": "common"}))
        .send()
        .await
        .unwrap();
    // Connected users (the popup flow, as a browser runs it).
    for i in 0..count {
        let email = format!("user{i}@example.com");
        let user = common::person(&db, &email, "user password", Role::User, Some(org)).await;
        let upn = format!("user{i}@contoso.com");
        emulator
            .create_user(UserSpec {
                user_principal_name: upn.clone(),
                display_name: "Bench".into(),
                ..Default::default()
            })
            .unwrap();
        let user_token = common::sign_in(&client, &address, &email, "user password").await;
        common::connect(&client, &address, user.id, &user_token, &upn).await;
    }

    // A worker process: the first round (initial syncs), then the measured quiet round.
    let worker_dir = tempfile::tempdir().unwrap();
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_m365-sync"))
        .arg("worker")
        .env_clear()
        .env("M365_SYNC_DATABASE_URL", &settings.database_url)
        .env("M365_SYNC_DATA_DIR", worker_dir.path())
        .env("M365_SYNC_IDENTITY_URL", &settings.identity_url)
        .env("M365_SYNC_GRAPH_URL", &settings.graph_url)
        .env(
            "M365_SYNC_JWT_SECRET",
            common::keys().jwt_secret.expose_secret(),
        )
        .env("M365_SYNC_ENCRYPTION_KEY", common::KEY)
        // The benchmark enqueues the rounds itself.
        .env("M365_SYNC_SCHEDULER_TICK_MS", "0")
        .env("M365_SYNC_POLL_MS", "50")
        .env("M365_SYNC_WORKER_CONCURRENCY", "16")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = AppState::new(settings.clone(), &common::keys(), db.clone()).unwrap();
    let round = |state: AppState| async move {
        let started = Instant::now();
        let report = scheduler::tick(&state, &state.queue, "bench")
            .await
            .unwrap();
        loop {
            let open = sync_jobs::Entity::find()
                .filter(sync_jobs::Column::State.is_in(["queued", "running"]))
                .count(&state.db)
                .await
                .unwrap();
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (report.enqueued, started.elapsed())
    };
    let (first, first_time) = round(state.clone()).await;
    assert_eq!(first, count * 2);
    // Everything is due again.
    let past = (Utc::now() - chrono::Duration::hours(1)).fixed_offset();
    sync_schedules::Entity::update_many()
        .col_expr(sync_schedules::Column::LastStartedAt, Expr::value(past))
        .exec(&db)
        .await
        .unwrap();
    emulator.clear_request_log();
    let cpu_before = cpu_time(worker.id());
    let (enqueued, wall) = round(state.clone()).await;
    let cpu = cpu_time(worker.id()) - cpu_before;
    let graph = emulator
        .request_log()
        .iter()
        .filter(|r| r.path.starts_with("/v1.0/") && !r.in_batch)
        .count();
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(enqueued, count * 2);
    assert_eq!(
        graph,
        count * 2,
        "exactly one Graph request per enabled resource per user"
    );

    println!(
        "no-change round for {count} users (2 resources each, one worker process, {})",
        bench_db.label
    );
    println!("  initial round:   {:>8.2} s", first_time.as_secs_f64());
    println!("  quiet round:     {:>8.2} s wall", wall.as_secs_f64());
    println!("  worker CPU:      {:>8.2} s", cpu.as_secs_f64());
    println!("  Graph requests:  {graph:>8} ({} per user)", graph / count);
    state.db.close().await.unwrap();
    db.close().await.unwrap();
    bench_db.drop_database().await;
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tick_benchmark(common::env_or("BENCH_TICK_USERS", 10_000)).await;
    round_benchmark(common::env_or("BENCH_ROUND_USERS", 1_000)).await;
}
