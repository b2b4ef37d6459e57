//! Worker processes that stop, die or lose a lease in the middle of a run: a graceful stop
//! interrupts the runs still in progress once the grace period is over and hands their jobs to
//! the next worker at once; a killed worker's run is taken over after two missed heartbeats and
//! the lease; a run whose lease another worker took gives way to it. Each ends without a
//! duplicate on either side, the batch a cut run was waiting for included: Microsoft applies
//! it, and the next run finds its tasks. And a worker process serves its own metrics.

use std::{
    collections::HashSet,
    path::Path,
    process::{Child, Command, ExitStatus},
    time::{Duration, Instant},
};

use entity::{sync_jobs, sync_links, sync_runs, sync_schedules};
use graph_emulator::{Fault, FaultSpec};
use m365_sync::{
    domain::links::Resource,
    jobs::{lease, runtime::Jobs},
};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, sea_query::Expr};
use serde_json::{Value, json};
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

/// The first `$batch` is answered at once, the second only after `delay`: a run is in progress,
/// half its tasks sent, while the second waits.
fn slow_second_batch(app: &TestApp, delay: Duration) {
    for latency in [Duration::from_millis(1), delay] {
        app.emulator.inject_fault(FaultSpec {
            method: Some("POST".into()),
            path_contains: Some("$batch".into()),
            count: 1,
            skip: 0,
            kind: Fault::Latency(latency),
        });
    }
}

/// Waits until Microsoft has answered `count` `$batch` requests (whether or not the worker
/// that sent them was still there to read the answer).
async fn batches_served(app: &TestApp, count: usize) {
    eventually(Duration::from_secs(30), "batches served", || async {
        app.emulator
            .request_log()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("$batch") && !r.in_batch)
            .count()
            >= count
    })
    .await;
}

/// Waits until the first batch's tasks are linked (the second batch is sent right after).
async fn second_batch_sent(app: &TestApp, who: &MailboxUser) {
    eventually(Duration::from_secs(60), "the first batch sent", || async {
        links(app, who).await >= 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
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

    /// Waits for the process to exit, at most `limit`.
    async fn exited(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the worker did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_worker_stopped_mid_run_hands_the_job_back_and_the_next_worker_finishes_it_at_once() {
    // Leases and heartbeats long enough that only a job handed back can run again soon.
    const GRACE_MS: u64 = 1000;
    let slow = [
        ("M365_SYNC_LEASE_MS", "60000"),
        ("M365_SYNC_HEARTBEAT_SECONDS", "30"),
        ("M365_SYNC_SHUTDOWN_GRACE_MS", "1000"),
    ];
    let app = spawn_app_with(|s| s.jobs.embedded_worker = false).await;
    let who = user_with_tasks(&app).await;
    slow_second_batch(&app, Duration::from_secs(3));
    let dir = WorkerDir::new();
    let mut first = WorkerProcess::start(&app, &dir.path(), &slow, &[]);
    let job_id = sync_now(&app, &who).await;
    second_batch_sent(&app, &who).await;

    first.terminate();
    let stopping = Instant::now();
    let exit = first.exited(Duration::from_secs(30)).await;
    let took = stopping.elapsed();

    assert!(exit.success(), "a clean exit: {exit}");
    assert!(
        took >= Duration::from_millis(GRACE_MS) && took < Duration::from_millis(GRACE_MS + 3000),
        "the run got the grace period, then was interrupted: exited after {took:?}"
    );
    let cut = runs(&app, &who).await;
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert_eq!(cut[0].outcome, "interrupted", "{cut:?}");
    assert!(cut[0].finished_at.is_some(), "{cut:?}");
    assert!(
        cut[0].log.contains("stopped: the worker shut down"),
        "{cut:?}"
    );
    let queued = job(&app, job_id).await;
    assert_eq!(
        queued.state, "queued",
        "the job is back in the queue: {queued:?}"
    );
    assert_eq!(queued.started_at, None, "{queued:?}");
    let leased = schedule(&app, &who).await;
    assert_eq!(
        leased.lease_holder, None,
        "the lease is released: {leased:?}"
    );
    assert_eq!(
        leased.failures, 0,
        "an interruption is no failure: {leased:?}"
    );

    // The next worker gets the job at once: not after the lease or two heartbeats (60 s).
    batches_served(&app, 2).await;
    let next = WorkerProcess::start(&app, &dir.path(), &slow, &[]);
    let started = Instant::now();
    eventually(
        Duration::from_secs(20),
        "the next worker finishes the job",
        || async { job(&app, job_id).await.state == "done" },
    )
    .await;
    eprintln!(
        "the next worker finished the job in {:?}",
        started.elapsed()
    );
    let done = job(&app, job_id).await;
    assert_eq!(done.outcome.as_deref(), Some("succeeded"), "{done:?}");
    let all = runs(&app, &who).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(Some(all[1].id), done.run_id);
    assert!(all[0].finished_at.unwrap() <= all[1].started_at, "{all:?}");
    next.terminate();
    assert_no_duplicates(&app, &who).await;
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
        skip: 0,
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

#[tokio::test]
async fn a_run_that_loses_its_lease_stops_and_gives_way_to_the_new_holder() {
    let app = spawn_app_with(|s| s.jobs.embedded_worker = false).await;
    let who = user_with_tasks(&app).await;
    slow_second_batch(&app, Duration::from_secs(3));
    let state = app
        .state_with(|s| {
            s.jobs.lease_ms = 1500;
            s.jobs.poll_ms = 50;
        })
        .await;
    let metrics = state.metrics.clone();
    let jobs = Jobs::start(state);
    let job_id = sync_now(&app, &who).await;
    second_batch_sent(&app, &who).await;

    // Another worker takes the lease over (as if this one had stalled past its expiry).
    let key = lease::schedule_key(who.user.id, Resource::Tasks);
    let taken = sync_schedules::Entity::update_many()
        .col_expr(
            sync_schedules::Column::LeaseHolder,
            Expr::value("another-worker"),
        )
        .col_expr(
            sync_schedules::Column::LeaseUntil,
            Expr::value((chrono::Utc::now() + chrono::Duration::hours(1)).fixed_offset()),
        )
        .filter(sync_schedules::Column::Key.eq(&key))
        .exec(&app.db)
        .await
        .unwrap();
    assert_eq!(taken.rows_affected, 1);
    let lost = Instant::now();
    eventually(Duration::from_secs(10), "the run stops", || async {
        runs(&app, &who).await[0].outcome != "running"
    })
    .await;
    let took = lost.elapsed();

    // The renewal every third of the lease (500 ms) finds it lost.
    assert!(
        took < Duration::from_millis(1500),
        "stopped at the next renewal: {took:?}"
    );
    let cut = runs(&app, &who).await;
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert_eq!(cut[0].outcome, "interrupted", "{cut:?}");
    assert!(cut[0].log.contains("lost the run's lease"), "{cut:?}");
    assert_eq!(job(&app, job_id).await.state, "queued");
    let held = schedule(&app, &who).await;
    assert_eq!(held.lease_holder.as_deref(), Some("another-worker"));
    assert_eq!(held.failures, 0, "no failure counted: {held:?}");
    assert_eq!(held.backoff_until, None, "no backoff: {held:?}");
    let text = metrics.encode().unwrap();
    let line = "m365_sync_sync_runs_total{resource=\"tasks\",outcome=\"interrupted\"} 1";
    assert!(text.lines().any(|l| l == line), "{line} in\n{text}");

    // Nothing runs while the other worker holds the lease; once it is released, the job runs.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(runs(&app, &who).await.len(), 1);
    batches_served(&app, 2).await;
    sync_schedules::Entity::update_many()
        .col_expr(
            sync_schedules::Column::LeaseHolder,
            Expr::value(Option::<String>::None),
        )
        .filter(sync_schedules::Column::Key.eq(&key))
        .exec(&app.db)
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the job runs again", || async {
        job(&app, job_id).await.state == "done"
    })
    .await;
    jobs.shutdown().await;

    let done = job(&app, job_id).await;
    assert_eq!(done.outcome.as_deref(), Some("succeeded"), "{done:?}");
    let all = runs(&app, &who).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].finished_at.unwrap() <= all[1].started_at, "{all:?}");
    assert_no_duplicates(&app, &who).await;
}

#[tokio::test]
async fn a_worker_process_serves_probes_and_the_metrics_it_counts_on_its_own_listener() {
    let app = spawn_app_with(|s| s.jobs.embedded_worker = false).await;
    let who = user_with_tasks(&app).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let dir = WorkerDir::new();
    let worker = WorkerProcess::start(&app, &dir.path(), &[], &["--listen", &address]);
    let get = |path: &str| {
        let url = format!("http://{address}{path}");
        let client = app.client.clone();
        async move { client.get(url).send().await }
    };
    eventually(Duration::from_secs(30), "the worker listens", || async {
        get("/healthz")
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    let line = "m365_sync_sync_runs_total{resource=\"tasks\",outcome=\"succeeded\"} 1";
    let metrics = || async {
        let response = get("/metrics").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    };
    let before = metrics().await;
    assert!(!before.lines().any(|l| l == line), "no run yet:\n{before}");

    let job_id = sync_now(&app, &who).await;
    eventually(
        Duration::from_secs(30),
        "the worker runs the job",
        || async { job(&app, job_id).await.state == "done" },
    )
    .await;

    let after = metrics().await;
    assert!(after.lines().any(|l| l == line), "{line} in\n{after}");
    let graph_ok = after
        .lines()
        .find_map(|l| l.strip_prefix("m365_sync_graph_requests_total{status=\"200\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(graph_ok.is_some_and(|n| n > 0), "Graph requests:\n{after}");
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let api = get("/api/v1/users").await.unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND, "no API on a worker");
    worker.terminate();
}
