//! Benchmark of the sync engine against the emulator:
//!
//! 1. Initial pull of 10,000 events, against a bare HTTP client that only downloads the same
//!    delta pages (same page size and preferences), measured in the same run: both times and
//!    the ratio (target: at most 1.3).
//! 2. A push of 1,000 local changes: Graph requests per change (target: at most 0.06) and time.
//!
//! Run with `cargo bench --bench sync_engine` (`BENCH_EVENTS=10000`, `BENCH_CHANGES=1000`).

#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::{net::TcpListener, time::Instant};

use graph_emulator::{AppSpec, Emulator, UserSpec};
use m365_sync::{
    config::{Keys, Settings},
    crypto::Cipher,
    db,
    domain::{Role, organizations, users},
    startup::Application,
    sync::{fields::Fields, links::Resource, local},
};
use secrecy::SecretString;
use serde_json::{Value, json};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let events = env_or("BENCH_EVENTS", 10_000);
    let changes = env_or("BENCH_CHANGES", 1_000);
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
    settings.database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    settings.identity_url = emulator.url();
    settings.graph_url = emulator.url();
    settings.public_url = address.clone();
    settings.http_workers = Some(1);
    // Runs happen on "sync now" only: no scheduled run disturbs the measurements.
    settings.jobs.scheduler_tick_ms = 0;
    let keys = Keys {
        jwt_secret: SecretString::from("bench-jwt-secret-bench-jwt-secret-0123".to_owned()),
        encryption_key: SecretString::from(KEY.to_owned()),
    };
    let db = db::connect(&settings).await.unwrap();
    db::migrate(&db).await.unwrap();
    let org = organizations::create(
        &db,
        organizations::CreateOrganization {
            name: "Bench".into(),
        },
    )
    .await
    .unwrap();
    let input = users::CreateUser {
        email: "bench@example.com".into(),
        password: "bench password".into(),
        role: Some(Role::User),
        display_name: None,
    };
    let user = users::create(&db, users::NewUser::parse(input, Some(org.id)).unwrap())
        .await
        .unwrap();
    let admin = users::CreateUser {
        email: "admin@example.com".into(),
        password: "admin password".into(),
        role: Some(Role::Admin),
        display_name: None,
    };
    users::create(&db, users::NewUser::parse(admin, None).unwrap())
        .await
        .unwrap();
    let app = Application::with_listener(settings, &keys, db.clone(), listener).unwrap();
    tokio::spawn(app.run_until_stopped());

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = |email: &'static str, password: &'static str| {
        let client = client.clone();
        let address = address.clone();
        async move {
            let body: Value = client
                .post(format!("{address}/api/v1/auth/token"))
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let admin_token = token("admin@example.com", "admin password").await;
    let user_token = token("bench@example.com", "bench password").await;
    let registration = emulator.create_app(AppSpec {
        redirect_uris: vec![format!("{address}/api/v1/microsoft/oauth/callback")],
        multi_tenant: true,
        ..Default::default()
    });
    let mailbox = emulator
        .create_user(UserSpec {
            user_principal_name: "bench@contoso.com".into(),
            display_name: "Bench".into(),
            ..Default::default()
        })
        .unwrap();
    client
        .patch(format!("{address}/api/v1/settings/microsoft/application"))
        .bearer_auth(&admin_token)
        .json(&json!({"client_id": registration.client_id, "client_secret": registration.client_secret, "tenant": "common"}))
        .send()
        .await
        .unwrap();
    client
        .patch(format!(
            "{address}/api/v1/users/{}/settings/microsoft",
            user.id
        ))
        .bearer_auth(&user_token)
        .json(&json!({"calendar": {"enabled": true}}))
        .send()
        .await
        .unwrap();
    let started: Value = client
        .post(format!(
            "{address}/api/v1/users/{}/microsoft/connection",
            user.id
        ))
        .bearer_auth(&user_token)
        .json(&json!({"login_hint": "bench@contoso.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let redirect = client
        .get(started["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let callback = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        client
            .get(callback)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    // Seed the mailbox, as a user would have it.
    let outlook = emulator.outlook();
    for n in 0..events {
        let day = chrono::Utc::now().date_naive() + chrono::Duration::days((n % 600) as i64 - 300);
        outlook
            .create_event(
                &mailbox.id,
                json!({
                    "subject": format!("Event {n}"),
                    "body": {"contentType": "text", "content": "Agenda: numbers, plans and people."},
                    "location": {"displayName": "Room 1"},
                    "start": {"dateTime": format!("{day}T09:00:00"), "timeZone": "UTC"},
                    "end": {"dateTime": format!("{day}T10:00:00"), "timeZone": "UTC"},
                    "categories": ["Bench"],
                }),
            )
            .unwrap();
    }

    // Baseline: download the same delta pages with a bare client and the user's token.
    let connection =
        <entity::microsoft_connections::Entity as sea_orm::EntityTrait>::find_by_id(user.id)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
    let cipher = Cipher::from_base64_key(&SecretString::from(KEY.to_owned())).unwrap();
    let access = String::from_utf8(
        cipher
            .decrypt(
                connection.access_token_encrypted.as_ref().unwrap(),
                &format!("microsoft_connections:{}:access_token", user.id),
            )
            .unwrap(),
    )
    .unwrap();
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::days(365)).format("%Y-%m-%dT00:00:00Z");
    let end = (now + chrono::Duration::days(730)).format("%Y-%m-%dT00:00:00Z");
    let mut url = format!(
        "{}/v1.0/me/calendarView/delta?startDateTime={start}&endDateTime={end}",
        emulator.url()
    );
    let bare_started = Instant::now();
    let mut downloaded = 0;
    loop {
        let page: Value = client
            .get(&url)
            .bearer_auth(&access)
            .header("Prefer", "outlook.timezone=\"UTC\"")
            .header("Prefer", "outlook.body-content-type=\"text\"")
            .header("Prefer", "odata.maxpagesize=200")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        downloaded += page["value"].as_array().map_or(0, Vec::len);
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    let bare = bare_started.elapsed();

    // The service: the initial pull, everything stored and linked.
    // Sync now, then follow the job until its runs are over.
    let sync = |client: reqwest::Client, address: String, token: String, user: uuid::Uuid| async move {
        let job: Value = client
            .post(format!("{address}/api/v1/users/{user}/microsoft/sync"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = format!(
            "{address}/api/v1/users/{user}/microsoft/sync/jobs/{}",
            job["id"].as_str().unwrap()
        );
        loop {
            let job: Value = client
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if job["state"] == "done" {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let pull_started = Instant::now();
    let run = sync(client.clone(), address.clone(), user_token.clone(), user.id).await;
    let pull = pull_started.elapsed();
    assert_eq!(run["runs"][0]["counts"]["created_locally"], events, "{run}");

    println!("sync engine benchmark ({events} events, {changes} local changes, SQLite)");
    println!(
        "initial pull: bare delta download {:>8.2} s ({downloaded} items)",
        bare.as_secs_f64()
    );
    println!(
        "initial pull: m365-sync run      {:>8.2} s (stored and linked)",
        pull.as_secs_f64()
    );
    println!(
        "ratio (run / bare download)       {:>8.2}",
        pull.as_secs_f64() / bare.as_secs_f64()
    );

    // Push: local changes to the first `changes` events.
    let items = local::all(&db, user.id, Resource::Calendar).await.unwrap();
    for item in items.iter().take(changes) {
        let mut fields: Fields = item.fields.clone();
        fields.insert(
            "title".into(),
            json!(format!("{} (changed)", fields["title"].as_str().unwrap())),
        );
        local::update(&db, Resource::Calendar, item.id, &fields)
            .await
            .unwrap();
    }
    let before = emulator
        .request_log()
        .iter()
        .filter(|r| !r.in_batch)
        .count();
    let push_started = Instant::now();
    let run = sync(client.clone(), address.clone(), user_token.clone(), user.id).await;
    let push = push_started.elapsed();
    let requests = emulator
        .request_log()
        .iter()
        .filter(|r| !r.in_batch)
        .count()
        - before;
    assert_eq!(
        run["runs"][0]["counts"]["updated_remotely"], changes,
        "{run}"
    );
    println!(
        "push: {changes} changes in {:.2} s, {requests} Graph requests ({:.3} per change)",
        push.as_secs_f64(),
        requests as f64 / changes as f64
    );
}
