//! The scheduler: on every tick, the process holding the scheduler lease enqueues a sync job
//! for every (connected user, enabled resource) whose effective interval has passed since its
//! last run's start, or whose retry is due after a failure. A resource with a job queued or
//! running gets no second one, and a `(user, resource, due time)` is unique, so several
//! processes ticking never enqueue twice.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, Utc};
use entity::{microsoft_settings, sync_jobs, sync_schedules};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Statement};
use uuid::Uuid;

use super::{
    lease,
    queue::{PRIORITY_SCHEDULED, Queue},
    retention,
    status::JobState,
};
use crate::domain::links::Resource;
use crate::{
    domain::settings::{
        Scope,
        microsoft::{self, SettingsCache},
    },
    startup::AppState,
};

/// The role name of the scheduler lease.
const SCHEDULER: &str = "scheduler";
/// Rows inserted per statement.
const CHUNK: usize = 500;

/// What a tick did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Whether this process held the scheduler lease (otherwise it did nothing).
    pub leader: bool,
    /// (user, resource) pairs considered: connected users times resources.
    pub considered: usize,
    /// Jobs enqueued.
    pub enqueued: usize,
    /// Queued jobs pushed again (their first push may have been lost).
    pub requeued: usize,
}

/// Inserts the jobs in one transaction and returns their ids. When another process enqueued
/// one of them meanwhile (its due time is already taken), inserts the others one by one and
/// returns only those inserted.
async fn insert_jobs(
    db: &sea_orm::DatabaseConnection,
    jobs: Vec<sync_jobs::ActiveModel>,
) -> anyhow::Result<Vec<Uuid>> {
    let id_of = |job: &sync_jobs::ActiveModel| match &job.id {
        sea_orm::ActiveValue::Set(id) | sea_orm::ActiveValue::Unchanged(id) => Some(*id),
        sea_orm::ActiveValue::NotSet => None,
    };
    let txn = crate::db::begin_write(db).await?;
    let mut all_inserted = true;
    for chunk in jobs.chunks(CHUNK) {
        if let Err(e) = sync_jobs::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await
        {
            if !crate::error::is_unique_violation(&e) {
                return Err(e.into());
            }
            all_inserted = false;
            break;
        }
    }
    if all_inserted {
        txn.commit().await?;
        return Ok(jobs.iter().filter_map(id_of).collect());
    }
    txn.rollback().await?;
    tracing::info!("Another scheduler enqueued some of these jobs: enqueueing the others");
    let txn = crate::db::begin_write(db).await?;
    let mut ids = Vec::new();
    for job in jobs {
        let id = id_of(&job);
        let inserted = sync_jobs::Entity::insert(job)
            .on_conflict_do_nothing_on([
                sync_jobs::Column::UserId,
                sync_jobs::Column::Resource,
                sync_jobs::Column::Trigger,
                sync_jobs::Column::DueAt,
            ])
            .exec_without_returning(&txn)
            .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(1)) {
            ids.extend(id);
        }
    }
    txn.commit().await?;
    Ok(ids)
}

/// The states of a job that block another one for the same user and resource.
pub const PENDING_STATES: [&str; 2] = [JobState::Queued.as_str(), JobState::Running.as_str()];

/// Connected users and their organizations.
async fn connected_users(db: &impl ConnectionTrait) -> anyhow::Result<Vec<(Uuid, Option<Uuid>)>> {
    let sql = "SELECT c.user_id AS user_id, u.organization_id AS organization_id \
               FROM microsoft_connections c JOIN users u ON u.id = c.user_id \
               WHERE c.status = 'connected'";
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok((
                row.try_get::<Uuid>("", "user_id")?,
                row.try_get::<Option<Uuid>>("", "organization_id")?,
            ))
        })
        .collect::<Result<_, sea_orm::DbErr>>()
        .map_err(Into::into)
}

/// When a resource is next due, from its schedule row: its retry time after a failure, else
/// its last start plus the interval, else now. The second value tells a retry.
pub fn due_at(
    schedule: Option<&sync_schedules::Model>,
    interval: Duration,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, bool) {
    let Some(schedule) = schedule else {
        return (now, false);
    };
    if schedule.failures > 0
        && let Some(backoff) = schedule.backoff_until
    {
        return (backoff.with_timezone(&Utc), true);
    }
    match schedule.last_started_at {
        Some(started) => (
            started.with_timezone(&Utc)
                + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX),
            false,
        ),
        None => (now, false),
    }
}

/// The interval of `minutes` setting-minutes under the configured unit.
pub fn interval_of(state: &AppState, minutes: i32) -> Duration {
    Duration::from_millis(state.settings.jobs.interval_unit_ms) * minutes.max(1).unsigned_abs()
}

/// One scheduler tick (see the module documentation).
///
/// # Errors
/// On database or queue failure; nothing is half-enqueued (the rows are written in one
/// transaction, and a row whose push failed is pushed again by a later tick).
pub async fn tick(state: &AppState, queue: &Queue, holder: &str) -> anyhow::Result<TickReport> {
    let db = &state.db;
    let lease_ttl = Duration::from_millis(state.settings.jobs.lease_ms);
    // Long enough that a slow tick keeps the role to its end.
    let leader_ttl = Duration::from_millis(
        (state.settings.jobs.scheduler_tick_ms * 3).max(state.settings.jobs.lease_ms),
    );
    if !lease::lead(db, SCHEDULER, holder, leader_ttl).await? {
        return Ok(TickReport::default());
    }
    // Old history and old tombstones go beside the tick, which they must not delay.
    let history_days = state.settings.jobs.history_days;
    let deleted_retention_days = state.settings.jobs.deleted_retention_days;
    let pruning_db = db.clone();
    tokio::spawn(async move {
        if let Err(e) =
            retention::prune_if_due(&pruning_db, history_days, deleted_retention_days).await
        {
            tracing::warn!(
                error = format!("{e:#}"),
                "Failed to prune synchronization history"
            );
        }
    });
    let now = Utc::now();
    let users = connected_users(db).await?;

    // Settings of every scope at once, resolved in memory.
    let cache = SettingsCache::new(Duration::from_secs(3600));
    let ticket = cache.ticket();
    let rows = microsoft_settings::Entity::find().all(db).await?;
    let mut entries: HashMap<String, Option<microsoft_settings::Model>> = HashMap::new();
    entries.insert(Scope::Global.key(), None);
    for (user_id, organization_id) in &users {
        for scope in (Scope::User {
            user_id: *user_id,
            organization_id: *organization_id,
        })
        .chain()
        {
            entries.insert(scope.key(), None);
        }
    }
    for row in rows {
        entries.insert(row.scope_key.clone(), Some(row));
    }
    cache.insert(ticket, entries);

    // Pending jobs first, schedules second: a job that ends between the two reads has its
    // start in the schedule read, so its resource is not found due again at once.
    let pending: HashSet<(Uuid, String)> = sync_jobs::Entity::find()
        .select_only()
        .column(sync_jobs::Column::UserId)
        .column(sync_jobs::Column::Resource)
        .filter(sync_jobs::Column::State.is_in(PENDING_STATES))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let schedules: HashMap<String, sync_schedules::Model> = sync_schedules::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.key.clone(), s))
        .collect();

    let mut report = TickReport {
        leader: true,
        ..TickReport::default()
    };
    let mut new_jobs = Vec::new();
    for (user_id, organization_id) in &users {
        let view = microsoft::load_cached(
            db,
            &cache,
            Scope::User {
                user_id: *user_id,
                organization_id: *organization_id,
            },
        )
        .await?
        .view();
        let interval = interval_of(state, view.sync_interval_minutes.value);
        for (resource, integration, enabled) in [
            (
                Resource::Calendar,
                view.integrations.calendar.value,
                view.calendar.enabled.value,
            ),
            (
                Resource::Tasks,
                view.integrations.tasks.value,
                view.tasks.enabled.value,
            ),
        ] {
            report.considered += 1;
            if !(integration && enabled)
                || pending.contains(&(*user_id, resource.as_str().to_owned()))
            {
                continue;
            }
            let key = lease::schedule_key(*user_id, resource);
            let (due, retry) = due_at(schedules.get(&key), interval, now);
            if due > now {
                continue;
            }
            let id = Uuid::now_v7();
            new_jobs.push(sync_jobs::ActiveModel {
                id: sea_orm::Set(id),
                job_id: sea_orm::Set(id),
                user_id: sea_orm::Set(*user_id),
                resource: sea_orm::Set(resource.as_str().to_owned()),
                trigger: sea_orm::Set(if retry { "retry" } else { "schedule" }.to_owned()),
                due_at: sea_orm::Set(due.fixed_offset()),
                state: sea_orm::Set(JobState::Queued.as_str().to_owned()),
                run_id: sea_orm::Set(None),
                outcome: sea_orm::Set(None),
                created_at: sea_orm::Set(now.fixed_offset()),
                started_at: sea_orm::Set(None),
                finished_at: sea_orm::Set(None),
            });
        }
    }

    // Queued jobs whose push may have been lost (a crash between insert and push).
    let stale_before = now - chrono::Duration::from_std(lease_ttl).unwrap_or_default();
    let stale: Vec<Uuid> = sync_jobs::Entity::find()
        .select_only()
        .column(sync_jobs::Column::Id)
        .filter(sync_jobs::Column::State.eq(JobState::Queued.as_str()))
        .filter(sync_jobs::Column::CreatedAt.lt(stale_before.fixed_offset()))
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    if !stale.is_empty() {
        queue.push(&stale, PRIORITY_SCHEDULED).await?;
        report.requeued = stale.len();
    }

    if new_jobs.is_empty() {
        return Ok(report);
    }
    // A tick slower than the lease may have lost the role meanwhile: enqueue only as leader.
    if !lease::lead(db, SCHEDULER, holder, leader_ttl).await? {
        return Ok(report);
    }
    let ids = insert_jobs(db, new_jobs).await?;
    queue.push(&ids, PRIORITY_SCHEDULED).await?;
    report.enqueued = ids.len();
    Ok(report)
}
