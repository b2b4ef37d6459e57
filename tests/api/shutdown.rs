//! Worker processes that die in the middle of a run: a killed worker's run is taken over after
//! two missed heartbeats and the lease, without a duplicate on either side.

use std::{
    collections::HashSet,
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

use entity::{sync_jobs, sync_links, sync_runs, sync_schedules};
use graph_emulator::{Fault, FaultSpec};
use m365_sync::{jobs::lease, sync::links::Resource};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{MailboxUser, TestApp, spawn_app_with};

/// Local tasks of the test user: two `$batch`es to send (20 per batch).
const TASKS: usize = 30;

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

/// A connected user with task sync enabled (calendar off) and [`TASKS`] local tasks to send.
async fn user_with_tasks(app: &TestApp) -> MailboxUser {
    let who = app.connected_user().await;
    let path = format!("/api/v1/users/{}/settings/microsoft", who.user.id);
    let body = json!({
        "sync_interval_minutes": 30,
        "calendar": {"enabled": false},
        "tasks": {"enabled": true},
    });
    let response = app.patch(&path, &who.user.token, body).await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    for n in 0..TASKS {
        let task = json!({
            "title": format!("Task {n}"), "description": null, "status": "not_started",
            "importance": "normal", "due_date": null, "start_date": null, "reminder_at": null,
            "completed_at": null, "categories": [],
        });
        m365_sync::sync::local::create(
            &app.db,
            who.user.id,
            Resource::Tasks,
            task.as_object().unwrap(),
        )
        .await
        .unwrap();
    }
    who
}

async fn links(app: &TestApp, who: &MailboxUser) -> u64 {
    sync_links::Entity::find()
        .filter(sync_links::Column::UserId.eq(who.user.id))
        .count(&app.db)
        .await
        .unwrap()
}

/// "Sync now" for the user; returns the job's id (its tasks row's id).
async fn sync_now(app: &TestApp, who: &MailboxUser) -> Uuid {
    let path = format!("/api/v1/users/{}/microsoft/sync", who.user.id);
    let response = app.post(&path, &who.user.token, json!({})).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{response:?}");
    response.body["id"].as_str().unwrap().parse().unwrap()
}

async fn job(app: &TestApp, id: Uuid) -> sync_jobs::Model {
    sync_jobs::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
}

/// The user's task runs, oldest first.
async fn runs(app: &TestApp, who: &MailboxUser) -> Vec<sync_runs::Model> {
    sync_runs::Entity::find()
        .filter(sync_runs::Column::UserId.eq(who.user.id))
        .filter(sync_runs::Column::Resource.eq("tasks"))
        .order_by_asc(sync_runs::Column::StartedAt)
        .all(&app.db)
        .await
        .unwrap()
}

async fn schedule(app: &TestApp, who: &MailboxUser) -> sync_schedules::Model {
    sync_schedules::Entity::find_by_id(lease::schedule_key(who.user.id, Resource::Tasks))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
}

/// Every local task once in To Do, linked once, and nothing else on either side.
async fn assert_no_duplicates(app: &TestApp, who: &MailboxUser) {
    let remote = app
        .emulator
        .outlook()
        .list_tasks(&who.mailbox_id, None)
        .unwrap();
    let titles: HashSet<&str> = remote
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(remote.len(), TASKS, "To Do tasks: {titles:?}");
    assert_eq!(titles.len(), TASKS, "distinct To Do tasks");
    let local = entity::tasks::Entity::find()
        .filter(entity::tasks::Column::UserId.eq(who.user.id))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(local, TASKS as u64, "local tasks");
    assert_eq!(links(app, who).await, TASKS as u64, "links");
}

/// Where worker processes write their data and logs: a temporary directory, or
/// `WORKER_LOG_DIR` to read the logs after a test.
struct WorkerDir(tempfile::TempDir);

impl WorkerDir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> std::path::PathBuf {
        std::env::var("WORKER_LOG_DIR")
            .map_or_else(|_| self.0.path().to_owned(), std::path::PathBuf::from)
    }
}

/// An `m365-sync worker` process on the app's database and emulator, scheduler off (jobs come
/// from "sync now"), with `env` on top.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(app: &TestApp, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        let log =
            std::fs::File::create(dir.join(format!("worker-{}.log", Uuid::new_v4()))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_m365-sync"))
            .arg("worker")
            .args(args)
            .env_clear()
            .envs(app.worker_env(dir))
            .env("M365_SYNC_SCHEDULER_TICK_MS", "0")
            .env("M365_SYNC_POLL_MS", "100")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self(child)
    }

    /// Its name prefix in leases and in the queue.
    fn holder_prefix(&self) -> String {
        format!("m365-sync-{}-", self.0.id())
    }

    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_killed_worker_s_run_is_taken_over_after_two_missed_heartbeats_and_the_lease() {
    let fast = [
        ("M365_SYNC_LEASE_MS", "2000"),
        ("M365_SYNC_HEARTBEAT_SECONDS", "1"),
    ];
    let app = spawn_app_with(|s| s.jobs.embedded_worker = false).await;
    let who = user_with_tasks(&app).await;
    // The run waits for its delta: a read, so that nothing is left to apply after the kill.
    app.emulator.inject_fault(FaultSpec {
        method: Some("GET".into()),
        path_contains: Some("/tasks/delta".into()),
        count: 1,
        kind: Fault::Latency(Duration::from_secs(10)),
    });
    let dir = WorkerDir::new();
    let mut workers = [
        WorkerProcess::start(&app, &dir.path(), &fast, &[]),
        WorkerProcess::start(&app, &dir.path(), &fast, &[]),
    ];
    // Both up (and registered in the queue) before the job exists.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let job_id = sync_now(&app, &who).await;
    eventually(Duration::from_secs(30), "a run in progress", || async {
        runs(&app, &who).await.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let holder = schedule(&app, &who).await.lease_holder.unwrap();
    let victim = workers
        .iter()
        .position(|w| holder.starts_with(&w.holder_prefix()))
        .unwrap();

    workers[victim].kill();
    let killed = Instant::now();
    eventually(
        Duration::from_secs(60),
        "the other worker finishes the job",
        || async { job(&app, job_id).await.state == "done" },
    )
    .await;
    let took = killed.elapsed();

    // Two missed heartbeats (2 s) and the lease (2 s) overlap; apalis's PostgreSQL default of
    // ten missed heartbeats would make it 10 s.
    eprintln!("taken over {took:?} after the kill");
    assert!(
        took < Duration::from_secs(7),
        "taken over after two missed heartbeats and the lease: {took:?}"
    );
    let done = job(&app, job_id).await;
    assert_eq!(done.outcome.as_deref(), Some("succeeded"), "{done:?}");
    let all = runs(&app, &who).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0].outcome, "failed", "the cut run: {all:?}");
    assert!(all[0].finished_at.unwrap() <= all[1].started_at, "{all:?}");
    workers[1 - victim].terminate();
    assert_no_duplicates(&app, &who).await;
}
