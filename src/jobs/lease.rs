//! Leases in the database, honoured by every process sharing it: one per user and resource (at
//! most one run at a time) and one per named role (one scheduler). A lease expires unless its
//! holder renews it, so a crashed process's work is taken over.
//!
//! Expiry times are written, and compared when a lease is taken, with the database's clock,
//! never a process's own: the processes sharing a database may run on machines whose clocks
//! drift apart, and a process whose clock ran ahead would otherwise see another's lease expired
//! early and take it over while its holder still runs. (The sync status's `in_progress`, a
//! display only, reads a lease's expiry with the serving process's clock.)

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use entity::{job_leaders, sync_schedules};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use uuid::Uuid;

use crate::{domain::links::Resource, error::ApiResult};

/// The key of a user's resource in `sync_schedules`.
pub fn schedule_key(user_id: Uuid, resource: Resource) -> String {
    format!("{user_id}:{}", resource.as_str())
}

/// Creates the schedule row of a user's resource if it does not exist.
///
/// # Errors
/// On database failure.
pub async fn ensure_schedule(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    resource: Resource,
) -> ApiResult<()> {
    let row = sync_schedules::ActiveModel {
        key: Set(schedule_key(user_id, resource)),
        user_id: Set(user_id),
        resource: Set(resource.as_str().to_owned()),
        lease_holder: Set(None),
        lease_until: Set(None),
        last_started_at: Set(None),
        last_finished_at: Set(None),
        last_run_id: Set(None),
        last_outcome: Set(None),
        failures: Set(0),
        backoff_until: Set(None),
        updated_at: Set(Utc::now().fixed_offset()),
    };
    sync_schedules::Entity::insert(row)
        .on_conflict_do_nothing_on([sync_schedules::Column::Key])
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Takes the lease of a user's resource for `holder` when it is free or expired. Returns
/// whether `holder` took it. A lease `holder` already has is not taken again: every run of a
/// process shares the process's name, so a second job of the same resource in the same process
/// waits for the first run's release like one in another process.
///
/// # Errors
/// On database failure.
pub async fn acquire(
    db: &impl ConnectionTrait,
    key: &str,
    holder: &str,
    ttl: Duration,
) -> ApiResult<bool> {
    let backend = db.get_database_backend();
    let result = sync_schedules::Entity::update_many()
        .col_expr(sync_schedules::Column::LeaseHolder, Expr::value(holder))
        .col_expr(
            sync_schedules::Column::LeaseUntil,
            crate::db::later_expr(backend, ttl),
        )
        .filter(sync_schedules::Column::Key.eq(key))
        .filter(
            Condition::any()
                .add(sync_schedules::Column::LeaseHolder.is_null())
                .add(
                    Expr::col(sync_schedules::Column::LeaseUntil).lt(crate::db::now_expr(backend)),
                ),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Extends `holder`'s lease; false when it was lost (expired and taken over, or released).
///
/// # Errors
/// On database failure.
pub async fn renew(
    db: &impl ConnectionTrait,
    key: &str,
    holder: &str,
    ttl: Duration,
) -> ApiResult<bool> {
    let result = sync_schedules::Entity::update_many()
        .col_expr(
            sync_schedules::Column::LeaseUntil,
            crate::db::later_expr(db.get_database_backend(), ttl),
        )
        .filter(sync_schedules::Column::Key.eq(key))
        .filter(sync_schedules::Column::LeaseHolder.eq(holder))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Gives up `holder`'s lease of a user's resource.
///
/// # Errors
/// On database failure.
pub async fn release(db: &impl ConnectionTrait, key: &str, holder: &str) -> ApiResult<()> {
    sync_schedules::Entity::update_many()
        .col_expr(
            sync_schedules::Column::LeaseHolder,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            sync_schedules::Column::LeaseUntil,
            Expr::value(Option::<DateTime<FixedOffset>>::None),
        )
        .filter(sync_schedules::Column::Key.eq(key))
        .filter(sync_schedules::Column::LeaseHolder.eq(holder))
        .exec(db)
        .await?;
    Ok(())
}

/// Gives up every lease of `holder` (on shutdown).
///
/// # Errors
/// On database failure.
pub async fn release_all(db: &impl ConnectionTrait, holder: &str) -> ApiResult<u64> {
    let result = sync_schedules::Entity::update_many()
        .col_expr(
            sync_schedules::Column::LeaseHolder,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            sync_schedules::Column::LeaseUntil,
            Expr::value(Option::<DateTime<FixedOffset>>::None),
        )
        .filter(sync_schedules::Column::LeaseHolder.eq(holder))
        .exec(db)
        .await?;
    job_leaders::Entity::delete_many()
        .filter(job_leaders::Column::Holder.eq(holder))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Takes or keeps the role `name` (e.g. the scheduler) for `holder`: true when `holder` has it
/// for the next `ttl`.
///
/// # Errors
/// On database failure.
pub async fn lead(
    db: &impl ConnectionTrait,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> ApiResult<bool> {
    let backend = db.get_database_backend();
    let insert = Query::insert()
        .into_table(job_leaders::Entity)
        .columns([
            job_leaders::Column::Name,
            job_leaders::Column::Holder,
            job_leaders::Column::LeaseUntil,
        ])
        .values([
            name.into(),
            holder.into(),
            crate::db::later_expr(backend, ttl),
        ])
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .on_conflict(
            OnConflict::column(job_leaders::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    if db.execute(&insert).await?.rows_affected() == 1 {
        return Ok(true);
    }
    let result = job_leaders::Entity::update_many()
        .col_expr(job_leaders::Column::Holder, Expr::value(holder))
        .col_expr(
            job_leaders::Column::LeaseUntil,
            crate::db::later_expr(backend, ttl),
        )
        .filter(job_leaders::Column::Name.eq(name))
        .filter(
            Condition::any()
                .add(job_leaders::Column::Holder.eq(holder))
                .add(Expr::col(job_leaders::Column::LeaseUntil).lt(crate::db::now_expr(backend))),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
