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

/// Priority of "sync now": ahead of scheduled work.
pub const PRIORITY_MANUAL: usize = 10;
/// Priority of scheduled runs and retries.
pub const PRIORITY_SCHEDULED: usize = 0;

/// Heartbeats a worker may miss before the jobs it holds are queued again for others, on both
/// storages (apalis's defaults differ: 2 on SQLite, 10 on PostgreSQL).
pub const MISSED_HEARTBEATS: usize = 2;

/// One queued sync of one resource of one user: the `sync_jobs` row to perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncTask {
    /// The `sync_jobs` row.
    pub task_id: Uuid,
}

/// The storage of the queue, on the service's own connection pool.
#[derive(Clone)]
pub enum Storage {
    /// SQLite (the default).
    Sqlite(SqliteStorage<SyncTask>),
    /// PostgreSQL.
    Postgres(PostgresStorage<SyncTask>),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "Storage::Sqlite",
            Self::Postgres(_) => "Storage::Postgres",
        })
    }
}

/// Pushes jobs and wakes this process's worker.
#[derive(Clone, Debug)]
pub struct Queue {
    storage: Storage,
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
        DatabaseBackend::Sqlite => SqliteStorage::migrations()
            .run(db.get_sqlite_connection_pool())
            .await
            .context("Failed to create the job queue tables"),
        _ => PostgresStorage::setup(db.get_postgres_connection_pool())
            .await
            .context("Failed to create the job queue tables"),
    }
}

impl Queue {
    /// The queue on `db`'s pool; heartbeats of workers every `heartbeat`, the jobs of a worker
    /// that missed [`MISSED_HEARTBEATS`] queued again. A worker fetches one job at a time: the
    /// storages pick a batch by priority but hand it over in insertion order, so only single
    /// fetches keep "sync now" ahead of scheduled work.
    pub fn new(db: &DatabaseConnection, heartbeat: std::time::Duration) -> Self {
        let storage = match db.get_database_backend() {
            DatabaseBackend::Sqlite => {
                let config = apalis_sqlite::Config::default()
                    .queue(SYNC_QUEUE)
                    .batch_size(1)
                    .heartbeat_interval(heartbeat)
                    .missed_heartbeats(MISSED_HEARTBEATS);
                Storage::Sqlite(
                    SqliteStorage::new(db.get_sqlite_connection_pool()).with_config(config),
                )
            }
            _ => {
                let config = apalis_postgres::Config::default()
                    .queue(SYNC_QUEUE)
                    .batch_size(1)
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

    /// The storage, for workers.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// What wakes this process's worker when this process pushes.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Pushes the given `sync_jobs` rows. The row id is the job's idempotency key: pushing a
    /// row again (to recover from a crash between the row's insert and the push) is harmless.
    ///
    /// # Errors
    /// When the queue cannot be written.
    pub async fn push(&self, task_ids: &[Uuid], priority: usize) -> anyhow::Result<()> {
        let build = |id: &Uuid| {
            TaskBuilder::new(SyncTask { task_id: *id })
                .priority(priority)
                .max_attempts(1000)
                .idempotency_key(id.to_string())
                .build()
        };
        let tasks: Vec<_> = task_ids.iter().map(build).collect();
        match &self.storage {
            Storage::Sqlite(storage) => {
                // `ON CONFLICT DO NOTHING` on the idempotency key.
                let mut storage = storage.clone();
                storage
                    .push_all(&mut futures_util::stream::iter(tasks))
                    .await
                    .map_err(|e| anyhow::anyhow!("Failed to queue sync jobs: {e}"))?;
            }
            Storage::Postgres(storage) => {
                // A key already queued fails a whole batch: leave out those the queue holds (a
                // backlog re-pushed at every tick would otherwise cost one failed insert each).
                let held = held_keys(storage.pool(), task_ids).await?;
                let tasks: Vec<_> = task_ids
                    .iter()
                    .filter(|id| !held.contains(*id))
                    .map(build)
                    .collect();
                let mut storage = storage.clone();
                if !tasks.is_empty()
                    && storage
                        .push_all(&mut futures_util::stream::iter(tasks))
                        .await
                        .is_err()
                {
                    // Another process queued one meanwhile: push one by one.
                    for task in task_ids.iter().filter(|id| !held.contains(*id)).map(build) {
                        if let Err(e) = storage.push_task(task).await {
                            let text = e.to_string();
                            if !text.contains("idempotency") {
                                anyhow::bail!("Failed to queue a sync job: {text}");
                            }
                        }
                    }
                }
            }
        }
        self.wake.notify_one();
        Ok(())
    }
}

/// Which of `task_ids` the PostgreSQL queue holds already (as idempotency keys).
async fn held_keys(
    pool: &sea_orm::sqlx::PgPool,
    task_ids: &[Uuid],
) -> anyhow::Result<std::collections::HashSet<Uuid>> {
    let db = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone());
    let mut held = std::collections::HashSet::new();
    for chunk in task_ids.chunks(1000) {
        let placeholders = (2..chunk.len() + 2)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut values: Vec<sea_orm::Value> = vec![SYNC_QUEUE.into()];
        values.extend(chunk.iter().map(|id| id.to_string().into()));
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
            held.extend(key.parse::<Uuid>().ok());
        }
    }
    Ok(held)
}

/// Makes the jobs `worker` still holds available to other workers at once: those it
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
             WHERE lock_by = ? AND job_type = ? AND status IN ('Queued', 'Running')"
        }
        _ => {
            "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, \
             done_at = NULL, attempts = attempts + 1 \
             WHERE lock_by = $1 AND job_type = $2 AND status IN ('Queued', 'Running')"
        }
    };
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [worker.into(), SYNC_QUEUE.into()],
        ))
        .await
        .context("Failed to give back the jobs of a stopped worker")?;
    Ok(result.rows_affected())
}
