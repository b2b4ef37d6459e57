//! The apalis job queue in the service's database: SQLite storage beside the service's tables,
//! PostgreSQL storage (schema `apalis`) when the service runs on PostgreSQL, so that any number
//! of worker processes share one queue.

use std::sync::Arc;

use anyhow::Context;
use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

/// The queue of sync jobs. Named explicitly, so moving the job type never strands jobs.
pub const SYNC_QUEUE: &str = "m365_sync.sync";

/// The queue of webhook deliveries.
pub const WEBHOOK_QUEUE: &str = "m365_sync.webhooks";

/// Priority of "sync now": ahead of scheduled work.
pub const PRIORITY_MANUAL: usize = 10;
/// Priority of scheduled runs and retries.
pub const PRIORITY_SCHEDULED: usize = 0;

/// Heartbeats a worker may miss before the jobs it holds are queued again for others, on both
/// storages (apalis's defaults differ: 2 on SQLite, 10 on PostgreSQL).
pub const MISSED_HEARTBEATS: usize = 2;

/// A kind of job: its queue, and the key that makes pushing the same job twice harmless.
pub trait QueuedJob:
    Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + Unpin + 'static
{
    /// The queue's name (apalis's job type).
    const QUEUE: &'static str;

    /// Jobs a worker fetches at once. The storages pick a batch by priority but hand it over
    /// in insertion order, so a queue with priorities fetches one at a time.
    const FETCH: usize;

    /// The idempotency key of this job.
    fn key(&self) -> String;
}

/// One queued sync of one resource of one user: the `sync_jobs` row to perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncTask {
    /// The `sync_jobs` row.
    pub task_id: Uuid,
}

impl QueuedJob for SyncTask {
    const QUEUE: &'static str = SYNC_QUEUE;
    // "Sync now" must overtake scheduled work.
    const FETCH: usize = 1;

    fn key(&self) -> String {
        self.task_id.to_string()
    }
}

/// One attempt at delivering a webhook: the `webhook_deliveries` row and its attempt number;
/// and the first attempts of more deliveries made by the same job (the dispatcher packs the
/// deliveries of a batch of events into few jobs, so that the queue's own work per delivery is
/// a fraction of a job).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTask {
    /// The `webhook_deliveries` row.
    pub delivery_id: Uuid,
    /// Which attempt this is (1 for the first).
    pub attempt: i32,
    /// How many times it has already waited for an earlier delivery of the same item.
    #[serde(default)]
    pub waited: u32,
    /// More deliveries whose first attempt this job makes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with: Vec<Uuid>,
}

impl WebhookTask {
    /// The attempt `attempt` of one delivery.
    pub fn attempt(delivery_id: Uuid, attempt: i32) -> Self {
        Self {
            delivery_id,
            attempt,
            waited: 0,
            with: Vec::new(),
        }
    }

    /// Every attempt this job makes, one task each.
    pub fn split(mut self) -> Vec<Self> {
        let rest = std::mem::take(&mut self.with);
        let mut all = Vec::with_capacity(rest.len() + 1);
        all.push(self);
        all.extend(rest.into_iter().map(|id| Self::attempt(id, 1)));
        all
    }
}

impl QueuedJob for WebhookTask {
    const QUEUE: &'static str = WEBHOOK_QUEUE;
    // Deliveries have no priorities: fetched several at a time, they go out side by side.
    const FETCH: usize = 2;

    fn key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.delivery_id,
            self.attempt,
            self.waited,
            self.with.len()
        )
    }
}

/// The storage of a queue, on the service's own connection pool.
#[derive(Clone)]
pub enum Storage<T = SyncTask> {
    /// SQLite (the default).
    Sqlite(SqliteStorage<T>),
    /// PostgreSQL.
    Postgres(PostgresStorage<T>),
}

impl<T> std::fmt::Debug for Storage<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "Storage::Sqlite",
            Self::Postgres(_) => "Storage::Postgres",
        })
    }
}

/// Pushes jobs of one kind and wakes this process's worker.
#[derive(Clone, Debug)]
pub struct Queue<T = SyncTask> {
    storage: Storage<T>,
    wake: Arc<Notify>,
}

/// Creates the queue's tables (apalis's own migrations) in the service's database. The SQLite
/// storage's `setup()` would also switch the pool to `synchronous=OFF`, which the service's
/// own data must not get: only the migrations run here.
///
/// # Errors
/// When a migration fails.
pub async fn setup(db: &DatabaseConnection) -> anyhow::Result<()> {
    match db.get_database_backend() {
        DatabaseBackend::Sqlite => SqliteStorage::<()>::migrations()
            .run(db.get_sqlite_connection_pool())
            .await
            .context("Failed to create the job queue tables"),
        _ => PostgresStorage::<()>::setup(db.get_postgres_connection_pool())
            .await
            .context("Failed to create the job queue tables"),
    }
}

impl<T: QueuedJob> Queue<T> {
    /// The queue on `db`'s pool; heartbeats of workers every `heartbeat`, the jobs of a worker
    /// that missed [`MISSED_HEARTBEATS`] queued again; a worker fetches [`QueuedJob::FETCH`]
    /// jobs at a time.
    pub fn new(db: &DatabaseConnection, heartbeat: std::time::Duration) -> Self {
        let storage = match db.get_database_backend() {
            DatabaseBackend::Sqlite => {
                let config = apalis_sqlite::Config::default()
                    .queue(T::QUEUE)
                    .batch_size(T::FETCH)
                    .heartbeat_interval(heartbeat)
                    .missed_heartbeats(MISSED_HEARTBEATS);
                Storage::Sqlite(
                    SqliteStorage::new(db.get_sqlite_connection_pool()).with_config(config),
                )
            }
            _ => {
                let config = apalis_postgres::Config::default()
                    .queue(T::QUEUE)
                    .batch_size(T::FETCH)
                    .heartbeat_interval(heartbeat)
                    .missed_heartbeats(MISSED_HEARTBEATS);
                Storage::Postgres(
                    PostgresStorage::new(db.get_postgres_connection_pool()).with_config(config),
                )
            }
        };
        Self {
            storage,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The same queue on another pool of its database (the embedded worker's), waking the same
    /// worker when this process pushes through either.
    pub fn on(&self, db: &DatabaseConnection, heartbeat: std::time::Duration) -> Self {
        Self {
            wake: self.wake.clone(),
            ..Self::new(db, heartbeat)
        }
    }

    /// The storage, for workers.
    pub fn storage(&self) -> &Storage<T> {
        &self.storage
    }

    /// What wakes this process's worker when this process pushes.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Pushes `jobs`, each to run at once or after its delay. A job's key is its idempotency
    /// key: pushing it again (to recover from a crash between a row's insert and the push) is
    /// harmless.
    ///
    /// # Errors
    /// When the queue cannot be written.
    pub async fn push_jobs(
        &self,
        jobs: &[(T, Option<std::time::Duration>)],
        priority: usize,
    ) -> anyhow::Result<()> {
        let build = |(job, delay): &(T, Option<std::time::Duration>)| {
            let mut task = TaskBuilder::new(job.clone())
                .priority(priority)
                .max_attempts(1000)
                .idempotency_key(job.key());
            if let Some(delay) = delay {
                task = task.run_after(*delay);
            }
            task.build()
        };
        match &self.storage {
            Storage::Sqlite(storage) => {
                // `ON CONFLICT DO NOTHING` on the idempotency key.
                let tasks: Vec<_> = jobs.iter().map(build).collect();
                let mut storage = storage.clone();
                storage
                    .push_all(&mut futures_util::stream::iter(tasks))
                    .await
                    .map_err(|e| anyhow::anyhow!("Failed to queue jobs: {e}"))?;
            }
            Storage::Postgres(storage) => {
                // A key already queued fails a whole batch: leave out those the queue holds (a
                // backlog re-pushed at every tick would otherwise cost one failed insert each).
                let keys: Vec<String> = jobs.iter().map(|(job, _)| job.key()).collect();
                let held = held_keys(storage.pool(), T::QUEUE, &keys).await?;
                let fresh: Vec<_> = jobs
                    .iter()
                    .filter(|(job, _)| !held.contains(&job.key()))
                    .collect();
                let tasks: Vec<_> = fresh.iter().map(|job| build(job)).collect();
                let mut storage = storage.clone();
                if !tasks.is_empty()
                    && storage
                        .push_all(&mut futures_util::stream::iter(tasks))
                        .await
                        .is_err()
                {
                    // Another process queued one meanwhile: push one by one.
                    for task in fresh.iter().map(|job| build(job)) {
                        if let Err(e) = storage.push_task(task).await {
                            let text = e.to_string();
                            if !text.contains("idempotency") {
                                anyhow::bail!("Failed to queue a job: {text}");
                            }
                        }
                    }
                }
            }
        }
        self.wake.notify_one();
        // A job due later is fetched when its time comes, not at the next poll: the worker of
        // this process is woken then (jobs due within the hour; later ones wait for a poll).
        let mut delays: Vec<std::time::Duration> = jobs
            .iter()
            .filter_map(|(_, delay)| *delay)
            .filter(|d| *d < std::time::Duration::from_secs(3600))
            .collect();
        delays.sort();
        delays.dedup();
        for delay in delays {
            let wake = self.wake.clone();
            tokio::spawn(async move {
                // apalis keeps due times in whole seconds: wake just past the second.
                tokio::time::sleep(delay + std::time::Duration::from_millis(1100)).await;
                wake.notify_one();
            });
        }
        Ok(())
    }
}

impl Queue<SyncTask> {
    /// Pushes the given `sync_jobs` rows, to run at once (see [`Queue::push_jobs`]).
    ///
    /// # Errors
    /// When the queue cannot be written.
    pub async fn push(&self, task_ids: &[Uuid], priority: usize) -> anyhow::Result<()> {
        let jobs: Vec<_> = task_ids
            .iter()
            .map(|id| (SyncTask { task_id: *id }, None))
            .collect();
        self.push_jobs(&jobs, priority).await
    }
}

/// Which of `keys` the PostgreSQL queue `queue` holds already (as idempotency keys).
async fn held_keys(
    pool: &sea_orm::sqlx::PgPool,
    queue: &str,
    keys: &[String],
) -> anyhow::Result<std::collections::HashSet<String>> {
    let db = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone());
    let mut held = std::collections::HashSet::new();
    for chunk in keys.chunks(1000) {
        let placeholders = (2..chunk.len() + 2)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut values: Vec<sea_orm::Value> = vec![queue.into()];
        values.extend(chunk.iter().map(|key| key.clone().into()));
        let rows = db
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                format!(
                    "SELECT idempotency_key FROM apalis.jobs \
                     WHERE job_type = $1 AND idempotency_key IN ({placeholders})"
                ),
                values,
            ))
            .await
            .context("Failed to read the job queue")?;
        for row in rows {
            let key: String = row.try_get("", "idempotency_key")?;
            held.insert(key);
        }
    }
    Ok(held)
}

/// The name of the webhook worker of the process whose sync worker is `worker`.
pub fn webhook_worker(worker: &str) -> String {
    format!("{worker}-webhooks")
}

/// Makes the jobs `worker` (and its webhook worker) still holds available to other workers at once: those it
/// fetched or started and never finished because it stopped. Run when the worker has
/// stopped, for the jobs its queue connection could not hand back itself. apalis gives
/// back on close only the jobs fetched and not started, and frees started ones only once
/// the worker missed its heartbeats; neither storage offers an API for the rest
/// (`ResumeAbandoned` is unsupported), so this is the same update as apalis's own
/// re-enqueueing of an orphaned job. Returns how many jobs were given back.
///
/// # Errors
/// When the queue cannot be written.
pub async fn release_abandoned(db: &DatabaseConnection, worker: &str) -> anyhow::Result<u64> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Sqlite => {
            "UPDATE Jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, \
             done_at = NULL, attempts = attempts + 1 \
             WHERE lock_by IN (?, ?) AND job_type IN (?, ?) AND status IN ('Queued', 'Running')"
        }
        _ => {
            "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, \
             done_at = NULL, attempts = attempts + 1 \
             WHERE lock_by IN ($1, $2) AND job_type IN ($3, $4) \
             AND status IN ('Queued', 'Running')"
        }
    };
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                worker.into(),
                webhook_worker(worker).into(),
                SYNC_QUEUE.into(),
                WEBHOOK_QUEUE.into(),
            ],
        ))
        .await
        .context("Failed to give back the jobs of a stopped worker")?;
    Ok(result.rows_affected())
}
