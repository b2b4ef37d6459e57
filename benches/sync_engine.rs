//! Benchmark of the sync engine against the emulator:
//!
//! 1. Initial pull of 10,000 events, against a bare HTTP client that only downloads the same
//!    delta pages (same page size and preferences), measured in the same run: both times and
//!    the ratio (target: at most 1.3). Each round has its own user and mailbox and measures the
//!    bare download, the pull, and the bare download again, back to back: the round's ratio
//!    is the pull against the mean of the two downloads, and the figure is the median of the
//!    rounds' ratios, so that the machine's drift between rounds cancels out.
//! 2. A push of 1,000 local changes: Graph requests per change (target: at most 0.06) and time.
//! 3. The run after the push (its writes come back through delta and are skipped), then a
//!    quiet run (nothing changed on either side): time and Graph requests of each.
//!
//! Run with `cargo bench --bench sync_engine` (`BENCH_EVENTS=10000`, `BENCH_CHANGES=1000`,
//! `BENCH_ROUNDS=5`).

#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

mod common;

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use graph_emulator::{AppSpec, Emulator, UserSpec};
use m365_sync::{
    config::Settings,
    crypto::Cipher,
    domain::Role,
    domain::links::Resource,
    startup::Application,
    sync::{fields::Fields, local},
};
use sea_orm::DatabaseConnection;
use secrecy::SecretString;
use serde_json::{Value, json};

/// The allocator of the `m365-sync` binary, so that the service is measured as it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The service under measurement, the emulator it talks to, and an admin.
struct Bench {
    emulator: Emulator,
    db: DatabaseConnection,
    client: reqwest::Client,
    address: String,
    organization: uuid::Uuid,
    admin_token: String,
    events: usize,
}

/// A connected user whose mailbox holds the seeded events.
struct BenchUser {
    id: uuid::Uuid,
    token: String,
}

impl Bench {
    async fn token(&self, email: &str, password: &str) -> String {
        common::sign_in(&self.client, &self.address, email, password).await
    }

    /// A new user, connected to a new mailbox seeded with `events` events, as a user would
    /// have it.
    async fn user(&self, n: usize) -> BenchUser {
        let email = format!("bench{n}@example.com");
        let user = common::person(
            &self.db,
            &email,
            "bench password",
            Role::User,
            Some(self.organization),
        )
        .await;
        let token = self.token(&email, "bench password").await;
        let upn = format!("bench{n}@contoso.com");
        let mailbox = self
            .emulator
            .create_user(UserSpec {
                user_principal_name: upn.clone(),
                display_name: format!("Bench {n}"),
                ..Default::default()
            })
            .unwrap();
        self.client
            .patch(format!(
                "{}/api/v1/users/{}/settings/microsoft",
                self.address, user.id
            ))
            .bearer_auth(&token)
            .json(&json!({"calendar": {"enabled": true}}))
            .send()
            .await
            .unwrap();
        common::connect(&self.client, &self.address, user.id, &token, &upn).await;
        let outlook = self.emulator.outlook();
        for n in 0..self.events {
            let day =
                chrono::Utc::now().date_naive() + chrono::Duration::days((n % 600) as i64 - 300);
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
        BenchUser { id: user.id, token }
    }

    /// The baseline: downloads the delta pages of `user`'s initial pull with a bare client
    /// and the user's access token; returns the time and the items downloaded.
    async fn bare_download(&self, user: &BenchUser) -> (Duration, usize) {
        let connection =
            <entity::microsoft_connections::Entity as sea_orm::EntityTrait>::find_by_id(user.id)
                .one(&self.db)
                .await
                .unwrap()
                .unwrap();
        let cipher = Cipher::from_base64_key(&SecretString::from(common::KEY.to_owned())).unwrap();
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
            self.emulator.url()
        );
        let started = Instant::now();
        let mut downloaded = 0;
        loop {
            let page: Value = self
                .client
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
        (started.elapsed(), downloaded)
    }

    /// "Sync now", then follows the job until its runs are over; returns the job.
    async fn sync(&self, user: &BenchUser) -> Value {
        let job: Value = self
            .client
            .post(format!(
                "{}/api/v1/users/{}/microsoft/sync",
                self.address, user.id
            ))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = format!(
            "{}/api/v1/users/{}/microsoft/sync/jobs/{}",
            self.address,
            user.id,
            job["id"].as_str().unwrap()
        );
        loop {
            let job: Value = self
                .client
                .get(&url)
                .bearer_auth(&user.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if job["state"] == "done" {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let events = common::env_or("BENCH_EVENTS", 10_000);
    let changes = common::env_or("BENCH_CHANGES", 1_000);
    let rounds = common::env_or("BENCH_ROUNDS", 5).max(1);
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
    let db = common::database(&settings).await;
    let org = common::organization(&db).await;
    common::person(
        &db,
        "admin@example.com",
        "admin password",
        Role::Admin,
        None,
    )
    .await;
    let app = Application::with_listener(settings, &common::keys(), db.clone(), listener).unwrap();
    tokio::spawn(app.run_until_stopped());

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut bench = Bench {
        emulator,
        db: db.clone(),
        client,
        address,
        organization: org,
        admin_token: String::new(),
        events,
    };
    bench.admin_token = bench.token("admin@example.com", "admin password").await;
    let registration = bench.emulator.create_app(AppSpec {
        redirect_uris: vec![format!("{}/api/v1/microsoft/oauth/callback", bench.address)],
        multi_tenant: true,
        ..Default::default()
    });
    bench
        .client
        .patch(format!("{}/api/v1/settings/microsoft/application", bench.address))
        .bearer_auth(&bench.admin_token)
        .json(&json!({"client_id": registration.client_id, "client_secret": registration.client_secret, "tenant": "common"}))
        .send()
        .await
        .unwrap();

    println!(
        "sync engine benchmark ({events} events, {changes} local changes, {rounds} rounds, SQLite)"
    );
    let mut bare_times = Vec::new();
    let mut pull_times = Vec::new();
    let mut ratios = Vec::new();
    let mut last = None;
    for round in 1..=rounds {
        let user = bench.user(round).await;
        let (before, downloaded) = bench.bare_download(&user).await;
        // The service: the initial pull, everything stored and linked.
        let pull_started = Instant::now();
        let run = bench.sync(&user).await;
        let pull = pull_started.elapsed().as_secs_f64();
        let (after, _) = bench.bare_download(&user).await;
        assert_eq!(downloaded, events);
        assert_eq!(run["runs"][0]["counts"]["created_locally"], events, "{run}");
        let bare = f64::midpoint(before.as_secs_f64(), after.as_secs_f64());
        println!(
            "round {round}: bare delta download {:.2} s and {:.2} s, m365-sync initial pull \
             {pull:.2} s (stored and linked), ratio {:.2}",
            before.as_secs_f64(),
            after.as_secs_f64(),
            pull / bare
        );
        bare_times.push(bare);
        pull_times.push(pull);
        ratios.push(pull / bare);
        last = Some(user);
    }
    println!(
        "initial pull: bare delta download {:>8.2} s (median)",
        median(bare_times)
    );
    println!(
        "initial pull: m365-sync run      {:>8.2} s (median)",
        median(pull_times)
    );
    println!(
        "ratio (run / bare download)       {:>8.2} (median of the rounds)",
        median(ratios)
    );

    // Push: local changes to the first `changes` events of the last round's user.
    let user = last.unwrap();
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
    let before = bench
        .emulator
        .request_log()
        .iter()
        .filter(|r| !r.in_batch)
        .count();
    let push_started = Instant::now();
    let run = bench.sync(&user).await;
    let push = push_started.elapsed();
    let requests = bench
        .emulator
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

    // The push's writes come back through delta once (echoes, skipped); then a quiet run,
    // nothing changed on either side.
    for what in [
        "echo run (the push's writes come back and are skipped)",
        "quiet run (nothing changed)",
    ] {
        let before = bench.emulator.request_log().len();
        let started = Instant::now();
        let run = bench.sync(&user).await;
        let took = started.elapsed();
        let requests = bench.emulator.request_log().len() - before;
        assert_eq!(run["runs"][0]["counts"]["updated_remotely"], 0, "{run}");
        assert_eq!(run["runs"][0]["counts"]["updated_locally"], 0, "{run}");
        println!(
            "{what}, {events} events: {:.3} s, {requests} Graph request(s)",
            took.as_secs_f64()
        );
    }
}
