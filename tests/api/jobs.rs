//! Background synchronization: "sync now" and the job a client follows, the status per
//! resource, the scheduler (on time, stopping when disabled or disconnected, retries with
//! backoff), the admin overview, metrics, and worker processes sharing one database.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::{sync_jobs, sync_runs};
use graph_emulator::{Fault, FaultSpec};
use m365_sync::jobs::{queue::PRIORITY_SCHEDULED, runtime::Jobs, scheduler};
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{MailboxUser, TestApp, spawn_app, spawn_app_with};

/// Enables calendar and task sync for the user with an interval of `minutes`.
async fn enable(app: &TestApp, who: &MailboxUser, calendar: bool, tasks: bool, minutes: i64) {
    let path = format!("/api/v1/users/{}/settings/microsoft", who.user.id);
    let body = json!({
        "sync_interval_minutes": minutes,
        "calendar": {"enabled": calendar},
        "tasks": {"enabled": tasks},
    });
    let response = app.patch(&path, &who.user.token, body).await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
}

/// The user's runs of `resource`, oldest first.
async fn runs(app: &TestApp, user: Uuid, resource: &str) -> Vec<sync_runs::Model> {
    sync_runs::Entity::find()
        .filter(sync_runs::Column::UserId.eq(user))
        .filter(sync_runs::Column::Resource.eq(resource))
        .order_by_asc(sync_runs::Column::StartedAt)
        .all(&app.db)
        .await
        .unwrap()
}

/// Waits until `check` holds, or panics after `limit` with `what`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn instant(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("an instant: {value}"))
        .parse()
        .unwrap()
}

async fn status(app: &TestApp, who: &MailboxUser) -> Value {
    let path = format!("/api/v1/users/{}/microsoft/sync", who.user.id);
    let response = app.get(&path, &who.user.token).await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    response.body
}

#[tokio::test]
async fn sync_now_answers_202_with_a_job_that_ends_with_its_runs_and_the_status_shows_them() {
    let app = spawn_app().await;
    let who = app.connected_user().await;
    enable(&app, &who, true, true, 30).await;

    let path = format!("/api/v1/users/{}/microsoft/sync", who.user.id);
    let response = app.post(&path, &who.user.token, json!({})).await;

    assert_eq!(response.status, StatusCode::ACCEPTED, "{response:?}");
    let id = response.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        response.headers["location"].to_str().unwrap(),
        format!("{path}/jobs/{id}")
    );
    assert_eq!(response.body["trigger"], "manual");
    let job = app.wait_for_job(&who.user, &response.body).await;
    assert_eq!(job["state"], "done", "{job}");
    let runs = job["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{job}");
    for (i, resource) in ["calendar", "tasks"].into_iter().enumerate() {
        assert_eq!(runs[i]["resource"], resource, "{job}");
        assert_eq!(runs[i]["outcome"], "succeeded", "{job}");
        assert_eq!(job["resources"][i]["run_id"], runs[i]["id"], "{job}");
        assert_eq!(job["resources"][i]["state"], "done", "{job}");
    }

    let status = status(&app, &who).await;
    assert_eq!(status["connected"], true);
    assert_eq!(status["interval_minutes"], 30);
    for (i, resource) in ["calendar", "tasks"].into_iter().enumerate() {
        let r = &status["resources"][i];
        assert_eq!(r["resource"], resource, "{status}");
        assert_eq!(r["enabled"], true, "{status}");
        assert_eq!(r["direction"], "bidirectional", "{status}");
        assert_eq!(r["in_progress"], false, "{status}");
        assert_eq!(r["last_outcome"], "succeeded", "{status}");
        assert_eq!(r["last_sync_at"], runs[i]["finished_at"], "{status}");
        assert_eq!(r["last_counts"], runs[i]["counts"], "{status}");
        assert_eq!(r["last_error"], Value::Null, "{status}");
        assert_eq!(r["failures"], 0, "{status}");
        assert_eq!(r["backoff_until"], Value::Null, "{status}");
        // Due one interval after the run started.
        let next = instant(&r["next_sync_at"]);
        let started = instant(&runs[i]["started_at"]);
        let after = (next - started).num_seconds();
        assert!((1795..=1800).contains(&after), "{status}");
    }

    // The job is the user's only: another user, an unknown or a malformed id find nothing.
    let other = crate::helpers::MailboxUser {
        user: app
            .account(m365_sync::domain::Role::User, Some(who.org))
            .await,
        ..who.clone()
    };
    let job_path = format!("{path}/jobs/{id}");
    let foreign = format!("/api/v1/users/{}/microsoft/sync/jobs/{id}", other.user.id);
    assert_eq!(
        app.get(&foreign, &other.user.token).await.status,
        StatusCode::NOT_FOUND
    );
    for missing in [
        format!("{path}/jobs/{}", Uuid::now_v7()),
        format!("{path}/jobs/nope"),
    ] {
        let response = app.get(&missing, &who.user.token).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(response.code(), "not_found");
    }
    assert_eq!(
        app.get(&job_path, &other.user.token).await.status,
        StatusCode::NOT_FOUND,
        "another user's path is not theirs"
    );
}

#[tokio::test]
async fn scheduled_runs_happen_every_interval_and_stop_when_disabled_or_disconnected() {
    // One setting minute lasts 1.5 s; the scheduler looks every 100 ms.
    let app = spawn_app_with(|s| {
        s.jobs.scheduler_tick_ms = 100;
        s.jobs.interval_unit_ms = 1500;
        s.jobs.poll_ms = 50;
    })
    .await;
    let who = app.connected_user().await;
    let user = who.user.id;
    enable(&app, &who, true, true, 1).await;

    let finished = |runs: Vec<sync_runs::Model>| {
        runs.into_iter()
            .filter(|r| r.finished_at.is_some())
            .collect::<Vec<_>>()
    };
    eventually(Duration::from_secs(20), "three calendar runs", || async {
        finished(runs(&app, user, "calendar").await).len() >= 3
    })
    .await;
    let calendar = finished(runs(&app, user, "calendar").await);
    for pair in calendar.windows(2) {
        assert!(
            pair[0].finished_at.unwrap() <= pair[1].started_at,
            "never two at once"
        );
    }
    // The interval runs from one job's start to the next: the clock the scheduler keeps (a
    // run's own record starts a little later, after the worker's preparations).
    let job_starts = || async {
        sync_jobs::Entity::find()
            .filter(sync_jobs::Column::UserId.eq(user))
            .filter(sync_jobs::Column::Resource.eq("calendar"))
            .filter(sync_jobs::Column::StartedAt.is_not_null())
            .order_by_asc(sync_jobs::Column::StartedAt)
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|job| job.started_at)
            .collect::<Vec<_>>()
    };
    let starts = job_starts().await;
    assert!(starts.len() >= 3, "{starts:?}");
    for pair in starts.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!(
            (1500..2500).contains(&gap),
            "a run every interval, not sooner, not much later: {gap} ms"
        );
    }
    let graph_deltas = app
        .emulator
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with("/calendarView/delta") && !r.in_batch)
        .count();
    assert!(
        graph_deltas >= calendar.len(),
        "every finished run reached Microsoft: {graph_deltas} delta requests for runs {:?}",
        calendar
            .iter()
            .map(|r| (&r.outcome, &r.errors))
            .collect::<Vec<_>>()
    );

    // A longer interval applies from the next tick: the next job is due two setting minutes
    // (3 s) after the last one started, and so is the one after it.
    enable(&app, &who, true, true, 2).await;
    // A job queued just before the change has started by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = job_starts().await.len();
    eventually(
        Duration::from_secs(20),
        "two calendar jobs at the new interval",
        || async { job_starts().await.len() >= before + 2 },
    )
    .await;
    let starts = job_starts().await;
    for pair in starts[before - 1..].windows(2).take(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!(
            (3000..4000).contains(&gap),
            "a run every new interval: {gap} ms"
        );
    }

    // Calendar sync disabled: calendar runs stop, task runs go on.
    enable(&app, &who, false, true, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calendar_before = runs(&app, user, "calendar").await.len();
    let tasks_before = runs(&app, user, "tasks").await.len();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(runs(&app, user, "calendar").await.len(), calendar_before);
    assert!(runs(&app, user, "tasks").await.len() > tasks_before);
    let body = status(&app, &who).await;
    assert_eq!(body["resources"][0]["enabled"], false, "{body}");
    assert_eq!(body["resources"][0]["next_sync_at"], Value::Null, "{body}");
    assert!(body["resources"][1]["next_sync_at"].is_string(), "{body}");

    // Disconnected: nothing runs any more.
    let path = format!("/api/v1/users/{user}/microsoft/connection");
    let response = app
        .request(Method::DELETE, &path, Some(&who.user.token), None)
        .await;
    assert!(response.status.is_success(), "{response:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tasks_before = runs(&app, user, "tasks").await.len();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(runs(&app, user, "tasks").await.len(), tasks_before);
    let body = status(&app, &who).await;
    assert_eq!(body["connected"], false, "{body}");
    assert_eq!(body["resources"][1]["next_sync_at"], Value::Null, "{body}");
}

#[tokio::test]
async fn sync_now_runs_ahead_of_scheduled_work() {
    // No worker in the app: jobs wait in the queue until one starts below.
    let app = spawn_app_with(|s| s.jobs.embedded_worker = false).await;
    let users = organization_of_users(&app, 4).await;
    let state = app.state_with(|s| s.jobs.worker_concurrency = 1).await;
    let report = scheduler::tick(&state, &state.queue, "test-scheduler")
        .await
        .unwrap();
    assert_eq!(
        report.enqueued, 8,
        "every user's calendar and tasks are due"
    );
    assert_eq!(PRIORITY_SCHEDULED, 0);
    // A second tick finds them queued and enqueues nothing.
    let again = scheduler::tick(&state, &state.queue, "test-scheduler")
        .await
        .unwrap();
    assert_eq!(again.enqueued, 0);
    let last = users.last().unwrap();
    let path = format!("/api/v1/users/{}/microsoft/sync", last.user.id);
    let response = app.post(&path, &last.user.token, json!({})).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{response:?}");

    let jobs = Jobs::start(state);
    let job = app.wait_for_job(&last.user, &response.body).await;
    eventually(Duration::from_secs(30), "every job finished", || async {
        sync_jobs::Entity::find()
            .filter(sync_jobs::Column::FinishedAt.is_null())
            .all(&app.db)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    jobs.shutdown().await;

    assert_eq!(job["state"], "done");
    let jobs = sync_jobs::Entity::find()
        .order_by_asc(sync_jobs::Column::StartedAt)
        .all(&app.db)
        .await
        .unwrap();
    // The user's scheduled jobs, queued before "sync now", had nothing left to do once it ran.
    let (skipped, ran): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|j| j.state == "skipped");
    let mut skipped: Vec<_> = skipped
        .into_iter()
        .map(|j| (j.user_id, j.trigger, j.resource))
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            (last.user.id, "schedule".to_owned(), "calendar".to_owned()),
            (last.user.id, "schedule".to_owned(), "tasks".to_owned())
        ]
    );
    assert!(ran.iter().all(|j| j.state == "done"), "{ran:?}");
    let order: Vec<(String, String)> = ran.into_iter().map(|j| (j.trigger, j.resource)).collect();
    eprintln!("{order:?}");
    assert_eq!(order.len(), 8);
    // The manual job's two resources come first, in either order.
    let mut first: Vec<(String, String)> = order[..2].to_vec();
    first.sort();
    assert_eq!(
        first,
        [
            ("manual".to_owned(), "calendar".to_owned()),
            ("manual".to_owned(), "tasks".to_owned())
        ],
        "the manual job ran first: {order:?}"
    );
}

#[tokio::test]
async fn a_failed_run_retries_after_backoff_honouring_retry_after_and_reauth_does_not_retry() {
    let app = spawn_app_with(|s| {
        s.jobs.scheduler_tick_ms = 100;
        s.jobs.poll_ms = 50;
        s.jobs.retry_base_ms = 200;
    })
    .await;
    let who = app.connected_user().await;
    let user = who.user.id;
    // Throttled on every attempt of the first run, asking for 2 s.
    app.emulator.inject_fault(FaultSpec {
        method: Some("GET".into()),
        path_contains: Some("/calendarView/delta".into()),
        count: 4,
        skip: 0,
        kind: Fault::Status {
            status: 429,
            retry_after: Some(2),
        },
    });
    enable(&app, &who, true, false, 30).await;

    eventually(
        Duration::from_secs(30),
        "a failed run then a retry",
        || async {
            let runs = runs(&app, user, "calendar").await;
            runs.len() >= 2 && runs[1].outcome != "running"
        },
    )
    .await;
    let calendar = runs(&app, user, "calendar").await;
    assert_eq!(calendar[0].outcome, "failed");
    assert_eq!(calendar[1].outcome, "succeeded");
    let wait = calendar[1].started_at - calendar[0].finished_at.unwrap();
    assert!(
        wait.num_milliseconds() >= 2000,
        "the retry waited at least Retry-After: {wait}"
    );
    let triggers: Vec<String> = sync_jobs::Entity::find()
        .filter(sync_jobs::Column::UserId.eq(user))
        .order_by_asc(sync_jobs::Column::CreatedAt)
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.trigger)
        .collect();
    assert_eq!(triggers, ["schedule", "retry"]);
    let body = status(&app, &who).await;
    assert_eq!(body["resources"][0]["failures"], 0, "{body}");
    assert_eq!(body["resources"][0]["backoff_until"], Value::Null, "{body}");

    // A wrong client secret: the run stops with app_misconfigured and is not retried.
    let set_secret = |secret: String| {
        let patch = m365_sync_sdk::types::ApplicationSettingsPatch {
            client_secret: Some(secret.parse().unwrap()),
            ..Default::default()
        };
        let sdk = app.sdk(&who.admin.token);
        async move {
            let response = sdk
                .update_global_application_settings(None, &patch)
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    set_secret("wrong-secret-value".to_owned()).await;
    app.emulator.expire_access_tokens(Some(&who.mailbox_id));
    stops_without_retry(&app, &who, "app_misconfigured").await;
    set_secret(who.client_secret.clone()).await;
    let runs_now = app.sync_now(&who.user).await;
    assert_eq!(runs_now[0]["outcome"], "succeeded", "fixed: {runs_now:?}");

    // A revoked grant: the run stops with reauth_required and is not retried.
    app.emulator.revoke_refresh_tokens(&who.mailbox_id);
    app.emulator.expire_access_tokens(Some(&who.mailbox_id));
    let body = stops_without_retry(&app, &who, "reauth_required").await;
    assert_eq!(body["connected"], false, "{body}");
}

/// Sync now ends the calendar run with `outcome`, which is not retried; returns the status.
async fn stops_without_retry(app: &TestApp, who: &MailboxUser, outcome: &str) -> Value {
    let runs_now = app.sync_now(&who.user).await;
    assert_eq!(runs_now[0]["outcome"], outcome, "{runs_now:?}");
    let count = runs(app, who.user.id, "calendar").await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        runs(app, who.user.id, "calendar").await.len(),
        count,
        "no retry"
    );
    let body = status(app, who).await;
    let calendar = &body["resources"][0];
    assert_eq!(calendar["last_outcome"], outcome, "{body}");
    assert_eq!(calendar["failures"], 0, "{body}");
    assert_eq!(calendar["backoff_until"], Value::Null, "{body}");
    assert!(calendar["last_error"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn admins_get_an_overview_and_metrics_count_runs_and_graph_requests() {
    let app = spawn_app().await;
    let who = app.connected_user().await;
    enable(&app, &who, true, true, 30).await;
    let runs = app.sync_now(&who.user).await;
    assert_eq!(runs.len(), 2);

    let overview = app.get("/api/v1/sync/overview", &who.admin.token).await;
    assert_eq!(overview.status, StatusCode::OK, "{overview:?}");
    assert_eq!(
        overview.body,
        json!({
            "by_last_outcome": [{"key": "succeeded", "count": 2}],
            "by_connection_status": [{"key": "connected", "count": 1}],
            "queue_depth": 0,
            "running": 0,
            "oldest_due_at": null,
            "in_backoff": 0,
            "reauth_required": 0,
            "disabled_webhooks": [],
            "failing": [],
        })
    );
    let refused = app.get("/api/v1/sync/overview", &who.user.token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "forbidden");

    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    for line in [
        "m365_sync_sync_runs_total{resource=\"calendar\",outcome=\"succeeded\"} 1",
        "m365_sync_sync_runs_total{resource=\"tasks\",outcome=\"succeeded\"} 1",
        "m365_sync_sync_run_duration_seconds_count{resource=\"calendar\"} 1",
        "m365_sync_sync_queue_depth 0",
        "m365_sync_users_in_backoff 0",
        "m365_sync_users_reauth_required 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    let graph_ok = app
        .emulator
        .request_log()
        .iter()
        .filter(|r| r.path.starts_with("/v1.0/") && !r.in_batch && r.status == 200)
        .count();
    let line = format!("m365_sync_graph_requests_total{{status=\"200\"}} {graph_ok}");
    assert!(text.lines().any(|l| l == line), "{line} in\n{text}");

    // A connection to renew: its resources are listed as not synchronizing, without retries.
    app.emulator.revoke_refresh_tokens(&who.mailbox_id);
    app.emulator.expire_access_tokens(Some(&who.mailbox_id));
    let runs = app.sync_now(&who.user).await;
    assert_eq!(runs[0]["outcome"], "reauth_required", "{runs:?}");
    let overview = app.get("/api/v1/sync/overview", &who.admin.token).await;
    let body = &overview.body;
    assert_eq!(
        body["by_connection_status"],
        json!([{"key": "reauth_required", "count": 1}]),
        "{body}"
    );
    assert_eq!(body["reauth_required"], 1, "{body}");
    assert_eq!(body["in_backoff"], 0, "{body}");
    let failing = body["failing"].as_array().unwrap();
    assert_eq!(failing.len(), 2, "{body}");
    for (entry, resource) in failing.iter().zip(["calendar", "tasks"]) {
        assert_eq!(entry["user_id"], who.user.id.to_string(), "{body}");
        assert_eq!(entry["resource"], resource, "{body}");
        assert_eq!(entry["last_outcome"], "reauth_required", "{body}");
        assert_eq!(entry["failures"], 0, "{body}");
    }
}

/// Connected users of one organization (sharing the first one's Azure application), calendar
/// and tasks enabled at organization scope with an interval of one setting minute, each with
/// one Outlook event and one local task to synchronize.
async fn organization_of_users(app: &TestApp, count: usize) -> Vec<MailboxUser> {
    let first = app.connected_user().await;
    let path = format!("/api/v1/organizations/{}/settings/microsoft", first.org);
    let body = json!({
        "sync_interval_minutes": 1,
        "calendar": {"enabled": true},
        "tasks": {"enabled": true},
    });
    let response = app.patch(&path, &first.admin.token, body).await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let mut users = vec![first.clone()];
    while users.len() < count {
        let user = app
            .account(m365_sync::domain::Role::User, Some(first.org))
            .await;
        let upn = format!("user-{}@contoso.com", Uuid::new_v4().simple());
        let mailbox = app
            .emulator
            .create_user(graph_emulator::UserSpec {
                user_principal_name: upn.clone(),
                display_name: "Worker Test".into(),
                ..Default::default()
            })
            .unwrap();
        let who = MailboxUser {
            user,
            mailbox_id: mailbox.id,
            upn: upn.clone(),
            ..first.clone()
        };
        let page = app.sign_in(&who, &upn).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        users.push(who);
    }
    for who in &users {
        app.emulator
            .outlook()
            .create_event(
                &who.mailbox_id,
                json!({
                    "subject": "From Outlook",
                    "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2026-12-01T10:00:00", "timeZone": "UTC"},
                }),
            )
            .unwrap();
        let task = json!({
            "title": "From here", "description": null, "status": "not_started",
            "importance": "normal", "due_date": null, "start_date": null, "reminder_at": null,
            "completed_at": null, "categories": [],
        });
        m365_sync::sync::local::create(
            &app.db,
            who.user.id,
            m365_sync::domain::links::Resource::Tasks,
            task.as_object().unwrap(),
        )
        .await
        .unwrap();
    }
    users
}

/// An `m365-sync worker` process.
struct WorkerProcess(std::process::Child);

impl WorkerProcess {
    fn start(app: &TestApp, dir: &std::path::Path, interval_ms: u64) -> Self {
        let log =
            std::fs::File::create(dir.join(format!("worker-{}.log", Uuid::new_v4()))).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_m365-sync"))
            .arg("worker")
            .env_clear()
            .envs(app.worker_env(dir))
            .env("M365_SYNC_SCHEDULER_TICK_MS", "250")
            .env("M365_SYNC_INTERVAL_UNIT_MS", interval_ms.to_string())
            .env("M365_SYNC_LEASE_MS", "3000")
            .env("M365_SYNC_POLL_MS", "100")
            .env("M365_SYNC_HEARTBEAT_SECONDS", "1")
            .env("M365_SYNC_WORKER_CONCURRENCY", "16")
            .env("M365_SYNC_SHUTDOWN_GRACE_MS", "5000")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self(child)
    }

    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// SIGTERM, then waits for a graceful exit.
    fn stop(mut self) {
        let pid = self.0.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.0.wait().unwrap();
        assert!(
            exit.success(),
            "the worker stops cleanly on SIGTERM: {exit}"
        );
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `processes` worker processes on the app's database: every due (user, resource) runs once
/// per interval, never two at once (in the run records and in what Microsoft received); one
/// process killed with SIGKILL in the middle of runs has its work taken over after the lease
/// expires, with no duplicate on either side.
async fn worker_processes_share_the_schedule(processes: usize, users: usize) {
    const INTERVAL_MS: i64 = 20_000;
    let app = spawn_app_with(|s| s.jobs.embedded_worker = false).await;
    app.emulator.update_config(|c| {
        c.throttle_requests = 1_000_000;
        c.throttle_concurrent = 64;
    });
    let users = organization_of_users(&app, users).await;
    // The first task pushes are slow, so that runs are in progress when a worker is killed.
    app.emulator.inject_fault(FaultSpec {
        method: Some("POST".into()),
        path_contains: Some("$batch".into()),
        count: 32,
        skip: 0,
        kind: Fault::Latency(Duration::from_millis(1000)),
    });
    let dir = tempfile::tempdir().unwrap();
    let dir = std::env::var("WORKER_LOG_DIR")
        .map_or_else(|_| dir.path().to_owned(), std::path::PathBuf::from);
    let dir = &dir;
    let mut workers: Vec<WorkerProcess> = (0..processes)
        .map(|_| WorkerProcess::start(&app, dir, INTERVAL_MS as u64))
        .collect();

    // Kill the first process while it runs something.
    let victim = format!("m365-sync-{}-", workers[0].0.id());
    eventually(
        Duration::from_secs(60),
        "runs of the first worker",
        || async {
            let leased: std::collections::HashSet<(Uuid, String)> =
                entity::sync_schedules::Entity::find()
                    .filter(entity::sync_schedules::Column::LeaseHolder.starts_with(&victim))
                    .all(&app.db)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| (s.user_id, s.resource))
                    .collect();
            sync_runs::Entity::find()
                .filter(sync_runs::Column::Outcome.eq("running"))
                .all(&app.db)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| leased.contains(&(r.user_id, r.resource.clone())))
                .count()
                >= 2
        },
    )
    .await;
    workers[0].kill();
    let killed_at = Utc::now();
    if processes == 1 {
        workers.push(WorkerProcess::start(&app, dir, INTERVAL_MS as u64));
    }

    // Two runs of every user's calendar and tasks: the first and the one an interval later.
    let expected = users.len() * 2;
    let started = Instant::now();
    eventually(
        Duration::from_secs(180),
        "two runs of everything",
        || async {
            let all = sync_runs::Entity::find().all(&app.db).await.unwrap();
            let mut per: std::collections::HashMap<(Uuid, String), usize> = Default::default();
            for run in all.iter().filter(|r| r.outcome == "succeeded") {
                *per.entry((run.user_id, run.resource.clone())).or_default() += 1;
            }
            per.len() == expected && per.values().all(|n| *n >= 2)
        },
    )
    .await;
    eprintln!(
        "{processes} worker process(es), {} users: two rounds in {:.1} s",
        users.len(),
        started.elapsed().as_secs_f64()
    );
    for worker in workers.drain(1..) {
        worker.stop();
    }

    let log = app.emulator.request_log();
    let mut killed = 0;
    for who in &users {
        for (resource, delta, paths) in [
            (
                "calendar",
                "/calendarView/delta",
                &["/me/events", "/me/calendar"][..],
            ),
            ("tasks", "/tasks/delta", &["/me/todo/"][..]),
        ] {
            let runs = runs(&app, who.user.id, resource).await;
            let what = format!("{} {resource}", who.user.id);
            assert!(
                runs.iter().all(|r| r.finished_at.is_some()),
                "{what}: all finished"
            );
            for pair in runs.windows(2) {
                assert!(
                    pair[0].finished_at.unwrap() <= pair[1].started_at,
                    "{what}: never two runs at once"
                );
            }
            let cut: Vec<_> = runs.iter().filter(|r| r.outcome == "failed").collect();
            for run in &cut {
                assert!(
                    run.started_at.with_timezone(&Utc) <= killed_at,
                    "{what}: only the killed worker's runs failed"
                );
            }
            killed += cut.len();
            let done: Vec<_> = runs.iter().filter(|r| r.outcome == "succeeded").collect();
            // Once per interval, on the scheduler's clock: from one job's start to the next
            // (a run's record starts after the worker's preparations, later under load).
            let starts: Vec<_> = sync_jobs::Entity::find()
                .filter(sync_jobs::Column::UserId.eq(who.user.id))
                .filter(sync_jobs::Column::Resource.eq(resource))
                .filter(sync_jobs::Column::Outcome.eq("succeeded"))
                .order_by_asc(sync_jobs::Column::StartedAt)
                .all(&app.db)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|job| job.started_at)
                .collect();
            assert_eq!(starts.len(), done.len(), "{what}: a job for every run");
            for pair in starts.windows(2) {
                let gap = (pair[1] - pair[0]).num_milliseconds();
                assert!(
                    (INTERVAL_MS..INTERVAL_MS + 5000).contains(&gap),
                    "{what}: once per interval, got {gap} ms between job starts"
                );
            }
            // Microsoft's side of "never two at once": the runs' times do not overlap (a run
            // cut by the kill ended when its process died), and every request for this
            // resource arrived within one of them. A request a cut run (killed, or interrupted
            // on a lost lease) had already sent may be read by Microsoft a moment after the
            // run's end: it counts within `IN_FLIGHT` of it.
            const IN_FLIGHT: chrono::TimeDelta = chrono::TimeDelta::seconds(1);
            let mut windows: Vec<(DateTime<Utc>, DateTime<Utc>, bool)> = runs
                .iter()
                .map(|r| {
                    let start = r.started_at.with_timezone(&Utc);
                    let end = r.finished_at.unwrap().with_timezone(&Utc);
                    match r.outcome.as_str() {
                        "failed" => (start, end.min(killed_at), true),
                        "interrupted" => (start, end, true),
                        _ => (start, end, false),
                    }
                })
                .collect();
            windows.sort();
            for pair in windows.windows(2) {
                assert!(pair[0].1 <= pair[1].0, "{what}: runs overlap: {pair:?}");
            }
            let outside: Vec<_> = log
                .iter()
                .filter(|r| {
                    r.mailbox.as_deref() == Some(who.mailbox_id.as_str())
                        && !r.path.ends_with("$batch")
                        && paths.iter().any(|p| r.path.contains(p))
                })
                .filter(|r| {
                    !windows.iter().any(|(start, end, cut)| {
                        let end = if *cut { *end + IN_FLIGHT } else { *end };
                        *start <= r.received_at && r.received_at <= end
                    })
                })
                .map(|r| (&r.method, &r.path, r.received_at))
                .collect();
            assert!(
                outside.is_empty(),
                "{what}: requests outside any run: {outside:?}, runs {windows:?}"
            );
            // Each run asks for the delta once (the first may ask twice): Microsoft saw as
            // many runs as recorded, less those cut before they reached it.
            let requests = log
                .iter()
                .filter(|r| {
                    r.mailbox.as_deref() == Some(who.mailbox_id.as_str())
                        && r.method == "GET"
                        && r.path.ends_with(delta)
                        && !r.in_batch
                })
                .count();
            assert!(
                requests >= done.len() && requests <= runs.len() + 1,
                "{what}: {requests} delta requests for {} runs ({} succeeded)",
                runs.len(),
                done.len()
            );
        }
        // No duplicate on either side.
        let outlook_events = app.emulator.outlook().list_events(&who.mailbox_id).unwrap();
        let outlook_tasks = app
            .emulator
            .outlook()
            .list_tasks(&who.mailbox_id, None)
            .unwrap();
        assert_eq!(outlook_events.len(), 1, "{}: Outlook events", who.user.id);
        assert_eq!(outlook_tasks.len(), 1, "{}: To Do tasks", who.user.id);
        let local_events = entity::calendar_events::Entity::find()
            .filter(entity::calendar_events::Column::UserId.eq(who.user.id))
            .all(&app.db)
            .await
            .unwrap();
        let local_tasks = entity::tasks::Entity::find()
            .filter(entity::tasks::Column::UserId.eq(who.user.id))
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(local_events.len(), 1, "{}: local events", who.user.id);
        assert_eq!(local_tasks.len(), 1, "{}: local tasks", who.user.id);
    }
    assert!(killed > 0, "the killed worker had runs in progress");
}

#[tokio::test]
async fn one_worker_process_on_sqlite_runs_everything_once_per_interval_and_recovers_from_a_kill() {
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        eprintln!("skipped on PostgreSQL: the three-process variant runs instead");
        return;
    }
    worker_processes_share_the_schedule(1, 200).await;
}

#[tokio::test]
async fn three_worker_processes_on_postgresql_share_the_schedule_and_take_over_after_a_kill() {
    if !std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        eprintln!("skipped: needs PostgreSQL (TEST_DATABASE_URL), as .ci/run gives it");
        return;
    }
    worker_processes_share_the_schedule(3, 200).await;
}

/// `SELECT {columns} FROM` the apalis queue's table `{rest}`.
async fn queue_rows(app: &TestApp, columns: &str, rest: &str) -> Vec<sea_orm::QueryResult> {
    use sea_orm::ConnectionTrait;
    let backend = app.db.get_database_backend();
    let table = match backend {
        sea_orm::DatabaseBackend::Postgres => "apalis.jobs",
        _ => "Jobs",
    };
    app.db
        .query_all_raw(sea_orm::Statement::from_string(
            backend,
            format!("SELECT {columns} FROM {table} {rest}"),
        ))
        .await
        .unwrap()
}

#[tokio::test]
async fn pushing_jobs_again_queues_each_once() {
    let app = spawn_app_with(|s| s.jobs.embedded_worker = false).await;
    let state = app.state_with(|_| {}).await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    state
        .queue
        .push(&[first], PRIORITY_SCHEDULED)
        .await
        .unwrap();
    // A backlog pushed again with a new job, as the scheduler's recovery of lost pushes does.
    state
        .queue
        .push(&[first, second, first], PRIORITY_SCHEDULED)
        .await
        .unwrap();
    let keys: Vec<String> = queue_rows(&app, "idempotency_key", "ORDER BY idempotency_key")
        .await
        .iter()
        .map(|r| r.try_get("", "idempotency_key").unwrap())
        .collect();
    let mut expected = vec![first.to_string(), second.to_string()];
    expected.sort();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn old_history_is_pruned_but_each_resources_last_run_is_kept() {
    use m365_sync::jobs::retention::{Pruned, prune};
    let app = spawn_app().await;
    let who = app.connected_user().await;
    let user = who.user.id;
    enable(&app, &who, true, true, 30).await;
    app.sync_now(&who.user).await;
    let last = app.sync_now(&who.user).await;
    let done_in_queue = || async {
        queue_rows(&app, "COUNT(*) AS n", "WHERE status = 'Done'").await[0]
            .try_get::<i64>("", "n")
            .unwrap()
    };
    eventually(
        Duration::from_secs(10),
        "the queue's entries done",
        || async { done_in_queue().await == 4 },
    )
    .await;

    // Nothing is older than a day.
    let day_ago = Utc::now() - chrono::Duration::days(1);
    assert_eq!(
        prune(&app.db, day_ago, 1000).await.unwrap(),
        Pruned::default()
    );

    // One row per delete: every table takes several.
    let pruned = prune(&app.db, Utc::now() + chrono::Duration::minutes(1), 1)
        .await
        .unwrap();
    assert_eq!(
        pruned,
        Pruned {
            jobs: 4,
            queue: 4,
            runs: 2,
            // The change log's own pruning is tested with the feed (`webhooks.rs`).
            changes: pruned.changes,
            deliveries: 0,
        }
    );
    assert_eq!(done_in_queue().await, 0);
    assert!(
        sync_jobs::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .is_empty()
    );
    for (i, resource) in ["calendar", "tasks"].into_iter().enumerate() {
        let kept = runs(&app, user, resource).await;
        assert_eq!(kept.len(), 1, "{resource}: {kept:?}");
        assert_eq!(kept[0].id.to_string(), last[i]["id"].as_str().unwrap());
    }
    // The status still shows the last runs.
    let body = status(&app, &who).await;
    for (i, r) in body["resources"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r["last_outcome"], "succeeded", "{body}");
        assert_eq!(r["last_counts"], last[i]["counts"], "{body}");
    }
}

#[tokio::test]
async fn two_sync_nows_in_one_process_run_one_after_the_other() {
    let app = spawn_app().await;
    let who = app.connected_user().await;
    enable(&app, &who, true, false, 30).await;
    // The first run's delta read is slow, so that the second job is fetched while it runs.
    app.emulator.inject_fault(FaultSpec {
        method: Some("GET".into()),
        path_contains: Some("/calendarView/delta".into()),
        count: 1,
        skip: 0,
        kind: Fault::Latency(Duration::from_millis(1500)),
    });
    let path = format!("/api/v1/users/{}/microsoft/sync", who.user.id);
    let first = app.post(&path, &who.user.token, json!({})).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{first:?}");
    eventually(Duration::from_secs(10), "the first run started", || async {
        !runs(&app, who.user.id, "calendar").await.is_empty()
    })
    .await;
    let second = app.post(&path, &who.user.token, json!({})).await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{second:?}");
    let first = app.wait_for_job(&who.user, &first.body).await;
    let second = app.wait_for_job(&who.user, &second.body).await;
    assert_eq!(first["runs"][0]["outcome"], "succeeded", "{first}");
    assert_eq!(second["runs"][0]["outcome"], "succeeded", "{second}");
    let calendar = runs(&app, who.user.id, "calendar").await;
    assert_eq!(calendar.len(), 2, "{calendar:?}");
    assert!(
        calendar[0].finished_at.unwrap() <= calendar[1].started_at,
        "the second run waited for the first: {calendar:?}"
    );
}
