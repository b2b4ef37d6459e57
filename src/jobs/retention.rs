//! Retention: jobs that finished, their entries in the queue and the records of runs older than
//! `history_days` are deleted by the process holding the scheduler role, at most once an hour,
//! so that a deployment's tables hold recent history rather than every run since it started.
//! The last run of each user's resource is kept whatever its age: the status shows it.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use entity::{sync_jobs, sync_runs, sync_schedules};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter,
    Statement, sea_query::Query,
};

use super::queue::SYNC_QUEUE;

/// How often a process prunes.
const EVERY: Duration = Duration::from_secs(3600);
/// Rows one delete removes.
const BATCH: u64 = 2000;

/// When this process last pruned.
static LAST: Mutex<Option<Instant>> = Mutex::new(None);

/// What a pruning deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Finished `sync_jobs` rows.
    pub jobs: u64,
    /// Finished entries of the apalis queue.
    pub queue: u64,
    /// `sync_runs` records.
    pub runs: u64,
}

/// Prunes when `history_days` is set and this process has not pruned within the hour.
///
/// # Errors
/// On database failure.
pub async fn prune_if_due(db: &DatabaseConnection, history_days: u64) -> anyhow::Result<()> {
    if history_days == 0 {
        return Ok(());
    }
    {
        let mut last = LAST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < EVERY) {
            return Ok(());
        }
        *last = Some(Instant::now());
    }
    // A century is "forever" enough, and keeps the date arithmetic in range.
    let days = i64::try_from(history_days.min(36_500)).unwrap_or(36_500);
    let cutoff = Utc::now() - chrono::Duration::days(days);
    let pruned = match prune(db, cutoff, BATCH).await {
        Ok(pruned) => pruned,
        Err(e) => {
            // The next tick tries again.
            *LAST
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            return Err(e);
        }
    };
    if pruned != Pruned::default() {
        tracing::info!(
            jobs = pruned.jobs,
            queue = pruned.queue,
            runs = pruned.runs,
            "Pruned synchronization history older than {history_days} days"
        );
    }
    Ok(())
}

/// Deletes what finished before `cutoff`: jobs done or skipped, the queue's finished entries,
/// and run records other than each resource's last. Rows go `batch` at a time, each delete a
/// short write of its own, so that leases and runs writing meanwhile never wait long (SQLite
/// has one writer) even when months of history go at once (`history_days` just set).
///
/// # Errors
/// On database failure.
pub async fn prune(
    db: &DatabaseConnection,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> anyhow::Result<Pruned> {
    let before = cutoff.fixed_offset();
    let mut pruned = Pruned::default();
    loop {
        let ids = Query::select()
            .column(sync_jobs::Column::Id)
            .from(sync_jobs::Entity)
            .and_where(sync_jobs::Column::State.is_in(["done", "skipped"]))
            .and_where(sync_jobs::Column::FinishedAt.lt(before))
            .limit(batch)
            .to_owned();
        let deleted = sync_jobs::Entity::delete_many()
            .filter(sync_jobs::Column::Id.in_subquery(ids))
            .exec(db)
            .await?
            .rows_affected;
        pruned.jobs += deleted;
        if deleted < batch {
            break;
        }
    }
    loop {
        let last_runs = Query::select()
            .column(sync_schedules::Column::LastRunId)
            .from(sync_schedules::Entity)
            .and_where(sync_schedules::Column::LastRunId.is_not_null())
            .to_owned();
        let ids = Query::select()
            .column(sync_runs::Column::Id)
            .from(sync_runs::Entity)
            .and_where(sync_runs::Column::Outcome.ne("running"))
            .and_where(sync_runs::Column::FinishedAt.lt(before))
            .and_where(sync_runs::Column::Id.not_in_subquery(last_runs))
            .limit(batch)
            .to_owned();
        let deleted = sync_runs::Entity::delete_many()
            .filter(sync_runs::Column::Id.in_subquery(ids))
            .exec(db)
            .await?
            .rows_affected;
        pruned.runs += deleted;
        if deleted < batch {
            break;
        }
    }
    // The queue's own tables: apalis marks an entry `Done`, `Killed`, or `Failed` with its
    // attempts used up, and stamps `done_at` (epoch seconds on SQLite).
    let finished =
        "(status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))";
    let backend = db.get_database_backend();
    let statement = |table: &str, placeholders: (&str, &str), cutoff: sea_orm::Value| {
        let (queue, before) = placeholders;
        Statement::from_sql_and_values(
            backend,
            format!(
                "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} \
                 WHERE job_type = {queue} AND {finished} AND done_at < {before} LIMIT {batch})"
            ),
            [SYNC_QUEUE.into(), cutoff],
        )
    };
    loop {
        let delete = match backend {
            DatabaseBackend::Postgres => statement("apalis.jobs", ("$1", "$2"), before.into()),
            _ => statement("Jobs", ("?", "?"), cutoff.timestamp().into()),
        };
        let deleted = db.execute_raw(delete).await?.rows_affected();
        pruned.queue += deleted;
        if deleted < batch {
            break;
        }
    }
    Ok(pruned)
}
