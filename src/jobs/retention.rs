//! Retention: jobs that finished, their entries in the queue and the records of runs older than
//! `history_days` are deleted by the process holding the scheduler role, at most once an hour,
//! so that a deployment's tables hold recent history rather than every run since it started.
//! The last run of each user's resource is kept whatever its age: the status shows it.
//!
//! The same pass empties the recycle bin: tombstones of events and tasks deleted more than
//! `deleted_retention_days` ago are deleted for good, except those that still have a sync
//! link (their deletion has not reached Microsoft yet: the tombstone is what sends it) or an
//! unresolved conflict.
//!
//! It also deletes the idempotency keys whose 24 hours are over (whatever the retentions
//! above: a key is kept 24 hours, no longer).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use entity::{
    calendar_events, sync_conflicts, sync_jobs, sync_links, sync_runs, sync_schedules, tasks,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, Statement,
    sea_query::{Expr, IntoIden, Query, SelectStatement},
};

use super::{
    queue::{SYNC_QUEUE, WEBHOOK_QUEUE},
    status::JobState,
};
use crate::domain::{
    links::Resource, recycle_bin::Retention, webhooks::deliveries::DeliveryStatus,
};
use crate::sync::runs::Outcome;

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
    /// Events of the change log (the feed and webhooks).
    pub changes: u64,
    /// Finished webhook deliveries, with their attempts.
    pub deliveries: u64,
}

/// Tombstones the recycle bin's purge deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Calendar events.
    pub events: u64,
    /// Tasks.
    pub tasks: u64,
}

/// Prunes when this process has not pruned within the hour: history when `history_days` is
/// set, the recycle bin when `deleted_retention_days` is (0 keeps forever), expired
/// idempotency keys always.
///
/// # Errors
/// On database failure.
pub async fn prune_if_due(
    db: &DatabaseConnection,
    history_days: u64,
    deleted_retention_days: u64,
) -> anyhow::Result<()> {
    {
        let mut last = LAST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < EVERY) {
            return Ok(());
        }
        *last = Some(Instant::now());
    }
    let result = prune_all(db, history_days, deleted_retention_days).await;
    if result.is_err() {
        // The next tick tries again.
        *LAST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
    result
}

/// The pruning of [`prune_if_due`]: history and recycle bin, each when its retention is set,
/// and expired idempotency keys.
async fn prune_all(
    db: &DatabaseConnection,
    history_days: u64,
    deleted_retention_days: u64,
) -> anyhow::Result<()> {
    let keys = crate::domain::idempotency::purge_expired(db, Utc::now(), BATCH)
        .await
        .map_err(|e| anyhow::anyhow!("Failed to delete expired idempotency keys: {e}"))?;
    if keys > 0 {
        tracing::info!(keys, "Deleted expired idempotency keys");
    }
    if history_days > 0 {
        // A century is "forever" enough, and keeps the date arithmetic in range.
        let days = i64::try_from(history_days.min(36_500)).unwrap_or(36_500);
        let cutoff = Utc::now() - chrono::Duration::days(days);
        let pruned = prune(db, cutoff, BATCH).await?;
        if pruned != Pruned::default() {
            tracing::info!(
                jobs = pruned.jobs,
                queue = pruned.queue,
                runs = pruned.runs,
                changes = pruned.changes,
                deliveries = pruned.deliveries,
                "Pruned synchronization history older than {history_days} days"
            );
        }
    }
    if let Some(cutoff) = Retention::of_days(deleted_retention_days).cutoff {
        let purged = purge_deleted(db, cutoff, BATCH).await?;
        if purged != Purged::default() {
            tracing::info!(
                events = purged.events,
                tasks = purged.tasks,
                "Purged items deleted more than {deleted_retention_days} days ago"
            );
        }
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
            .and_where(
                sync_jobs::Column::State
                    .is_in([JobState::Done.as_str(), JobState::Skipped.as_str()]),
            )
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
            .and_where(sync_runs::Column::Outcome.ne(Outcome::Running.as_str()))
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
    let statement = |table: &str, placeholders: (&str, &str, &str), cutoff: sea_orm::Value| {
        let (sync, webhooks, before) = placeholders;
        Statement::from_sql_and_values(
            backend,
            format!(
                "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} \
                 WHERE job_type IN ({sync}, {webhooks}) AND {finished} AND done_at < {before} \
                 LIMIT {batch})"
            ),
            [SYNC_QUEUE.into(), WEBHOOK_QUEUE.into(), cutoff],
        )
    };
    loop {
        let delete = match backend {
            DatabaseBackend::Postgres => {
                statement("apalis.jobs", ("$1", "$2", "$3"), before.into())
            }
            _ => statement("Jobs", ("?", "?", "?"), cutoff.timestamp().into()),
        };
        let deleted = db.execute_raw(delete).await?.rows_affected();
        pruned.queue += deleted;
        if deleted < batch {
            break;
        }
    }
    pruned.deliveries = prune_deliveries(db, before, batch).await?;
    pruned.changes = prune_change_log(db, before).await?;
    Ok(pruned)
}

/// Deletes webhook deliveries that ended (delivered or given up) before `before`, with their
/// attempts, `batch` at a time.
async fn prune_deliveries(
    db: &DatabaseConnection,
    before: chrono::DateTime<chrono::FixedOffset>,
    batch: u64,
) -> anyhow::Result<u64> {
    use entity::{webhook_attempts, webhook_deliveries};
    let mut pruned = 0;
    loop {
        let ids = Query::select()
            .column(webhook_deliveries::Column::Id)
            .from(webhook_deliveries::Entity)
            .and_where(webhook_deliveries::Column::Status.ne(DeliveryStatus::Pending.as_str()))
            .and_where(webhook_deliveries::Column::CreatedAt.lt(before))
            .limit(batch)
            .to_owned();
        let rows: Vec<uuid::Uuid> = webhook_deliveries::Entity::find()
            .select_only()
            .column(webhook_deliveries::Column::Id)
            .filter(webhook_deliveries::Column::Id.in_subquery(ids))
            .into_tuple()
            .all(db)
            .await?;
        if rows.is_empty() {
            return Ok(pruned);
        }
        webhook_attempts::Entity::delete_many()
            .filter(webhook_attempts::Column::DeliveryId.is_in(rows.clone()))
            .exec(db)
            .await?;
        let deleted = webhook_deliveries::Entity::delete_many()
            .filter(webhook_deliveries::Column::Id.is_in(rows))
            .exec(db)
            .await?
            .rows_affected;
        pruned += deleted;
        if deleted < batch {
            return Ok(pruned);
        }
    }
}

/// Deletes the change log's events older than `before` that the dispatcher has fanned out,
/// and records how far the log now starts: a feed cursor behind it answers 410.
async fn prune_change_log(
    db: &DatabaseConnection,
    before: chrono::DateTime<chrono::FixedOffset>,
) -> anyhow::Result<u64> {
    use entity::{change_events, change_log_state};
    let state = crate::domain::changes::log_state(db).await?;
    let through: Option<i64> = change_events::Entity::find()
        .select_only()
        .column_as(change_events::Column::Position.max(), "position")
        .filter(change_events::Column::CreatedAt.lt(before))
        .filter(change_events::Column::Position.lte(state.dispatched_through))
        .into_tuple()
        .one(db)
        .await?
        .flatten();
    let Some(through) = through else {
        return Ok(0);
    };
    change_log_state::Entity::update_many()
        .col_expr(
            change_log_state::Column::PrunedThrough,
            Expr::value(through.max(state.pruned_through)),
        )
        .filter(change_log_state::Column::Id.eq(1))
        .exec(db)
        .await?;
    Ok(change_events::Entity::delete_many()
        .filter(change_events::Column::Position.lte(through))
        .exec(db)
        .await?
        .rows_affected)
}

/// The ids of at most `batch` tombstones of `table` deleted before `before` that nothing
/// needs any more: no sync link (whose deletion Microsoft has yet to receive) and no
/// unresolved conflict points at them.
fn purgeable(
    table: impl IntoIden + Copy + 'static,
    resource: Resource,
    before: chrono::DateTime<chrono::FixedOffset>,
    batch: u64,
) -> SelectStatement {
    use sea_orm::sea_query::ExprTrait;
    let item = |column: &'static str| Expr::col((table, sea_orm::sea_query::Alias::new(column)));
    let linked = Query::select()
        .expr(Expr::val(1))
        .from(sync_links::Entity)
        .and_where(Expr::col((sync_links::Entity, sync_links::Column::UserId)).eq(item("user_id")))
        .and_where(
            Expr::col((sync_links::Entity, sync_links::Column::Resource)).eq(resource.as_str()),
        )
        .and_where(Expr::col((sync_links::Entity, sync_links::Column::LocalId)).eq(item("id")))
        .to_owned();
    let in_conflict = Query::select()
        .expr(Expr::val(1))
        .from(sync_conflicts::Entity)
        .and_where(
            Expr::col((sync_conflicts::Entity, sync_conflicts::Column::UserId)).eq(item("user_id")),
        )
        .and_where(
            Expr::col((sync_conflicts::Entity, sync_conflicts::Column::Resource))
                .eq(resource.as_str()),
        )
        .and_where(
            Expr::col((sync_conflicts::Entity, sync_conflicts::Column::LocalId)).eq(item("id")),
        )
        .and_where(
            Expr::col((sync_conflicts::Entity, sync_conflicts::Column::ResolvedAt)).is_null(),
        )
        .to_owned();
    Query::select()
        .expr(item("id"))
        .from(table)
        .and_where(item("deleted_at").lt(before))
        .and_where(Expr::exists(linked).not())
        .and_where(Expr::exists(in_conflict).not())
        .limit(batch)
        .to_owned()
}

/// Empties the recycle bin of what was deleted before `cutoff`, `batch` rows per delete (see
/// [`prune`]): tombstones of events and tasks, except those that still have a sync link
/// (their deletion has not been sent to Microsoft: the push needs them) or an unresolved
/// conflict.
///
/// # Errors
/// On database failure.
pub async fn purge_deleted(
    db: &DatabaseConnection,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> anyhow::Result<Purged> {
    let before = cutoff.fixed_offset();
    // Each delete checks `deleted_at` again on the rows it deletes: an item restored between
    // the choice of the batch and the delete is kept (PostgreSQL re-evaluates only the outer
    // condition on a row changed meanwhile).
    let mut purged = Purged::default();
    loop {
        let ids = purgeable(calendar_events::Entity, Resource::Calendar, before, batch);
        let deleted = calendar_events::Entity::delete_many()
            .filter(calendar_events::Column::Id.in_subquery(ids))
            .filter(calendar_events::Column::DeletedAt.lt(before))
            .exec(db)
            .await?
            .rows_affected;
        purged.events += deleted;
        if deleted < batch {
            break;
        }
    }
    loop {
        let ids = purgeable(tasks::Entity, Resource::Tasks, before, batch);
        let deleted = tasks::Entity::delete_many()
            .filter(tasks::Column::Id.in_subquery(ids))
            .filter(tasks::Column::DeletedAt.lt(before))
            .exec(db)
            .await?
            .rows_affected;
        purged.tasks += deleted;
        if deleted < batch {
            break;
        }
    }
    Ok(purged)
}
