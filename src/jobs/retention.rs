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
    let days = i64::try_from(history_days).unwrap_or(i64::MAX / 86_400_000);
    let cutoff = Utc::now() - chrono::Duration::days(days.min(100 * 365));
    let pruned = prune(db, cutoff).await?;
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
/// and run records other than each resource's last.
///
/// # Errors
/// On database failure.
pub async fn prune(db: &DatabaseConnection, cutoff: DateTime<Utc>) -> anyhow::Result<Pruned> {
    let before = cutoff.fixed_offset();
    let jobs = sync_jobs::Entity::delete_many()
        .filter(sync_jobs::Column::State.is_in(["done", "skipped"]))
        .filter(sync_jobs::Column::FinishedAt.lt(before))
        .exec(db)
        .await?
        .rows_affected;
    let last_runs = Query::select()
        .column(sync_schedules::Column::LastRunId)
        .from(sync_schedules::Entity)
        .and_where(sync_schedules::Column::LastRunId.is_not_null())
        .to_owned();
    let runs = sync_runs::Entity::delete_many()
        .filter(sync_runs::Column::Outcome.ne("running"))
        .filter(sync_runs::Column::FinishedAt.lt(before))
        .filter(sync_runs::Column::Id.not_in_subquery(last_runs))
        .exec(db)
        .await?
        .rows_affected;
    // The queue's own tables: apalis marks an entry `Done`, `Killed`, or `Failed` with its
    // attempts used up, and stamps `done_at` (epoch seconds on SQLite).
    let finished =
        "(status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))";
    let statement = match db.get_database_backend() {
        DatabaseBackend::Postgres => Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            format!("DELETE FROM apalis.jobs WHERE job_type = $1 AND {finished} AND done_at < $2"),
            [SYNC_QUEUE.into(), before.into()],
        ),
        backend => Statement::from_sql_and_values(
            backend,
            format!("DELETE FROM Jobs WHERE job_type = ? AND {finished} AND done_at < ?"),
            [SYNC_QUEUE.into(), cutoff.timestamp().into()],
        ),
    };
    let queue = db.execute_raw(statement).await?.rows_affected();
    Ok(Pruned { jobs, queue, runs })
}
