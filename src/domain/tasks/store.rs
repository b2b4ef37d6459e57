//! Storing and finding tasks: filtered lists, optimistic updates, tombstones and their
//! restoration from the recycle bin.

use chrono::{DateTime, Utc};
use entity::tasks;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionSession, TransactionTrait,
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{TaskData, TaskStatus, UpdateTask};
use crate::{
    domain::{
        access::not_found,
        changes::{self, ItemChange, ItemKind, Origin},
        etag,
        item_fields::to_stored,
        pagination::{PageParams, PageRequest},
        recycle_bin::{self, DeletedBy, Retention},
    },
    error::{ApiError, ApiResult},
};

/// Query of `GET /api/v1/users/{id}/tasks`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskListParams {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Only tasks changed at or after this instant (RFC 3339).
    pub updated_since: Option<DateTime<Utc>>,
    /// `true`: list the recycle bin instead, the deleted tasks (deleted within
    /// `deleted_retention_days`), each with `deleted_at` and `deleted_by`. It combines with the
    /// other filters (`updated_since` then also matches the deletion, which changes a task).
    /// Default `false`: tasks that are not deleted.
    pub deleted: Option<bool>,
}

/// Validated list filters.
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskFilter {
    /// Tasks with this status.
    pub status: Option<TaskStatus>,
    /// Tasks updated at or after this instant.
    pub updated_since: Option<DateTime<Utc>>,
    /// `Some`: the recycle bin (deleted tasks this retention keeps) rather than live tasks.
    pub deleted: Option<Retention>,
}

impl TaskListParams {
    /// Validates the query; `retention` is the recycle bin's, for `deleted=true`.
    ///
    /// # Errors
    /// 400 `invalid_query` or `invalid_cursor` for a bad page.
    pub fn parse(&self, retention: Retention) -> ApiResult<(TaskFilter, PageRequest)> {
        let page = PageParams {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .parse()?;
        let filter = TaskFilter {
            status: self.status,
            updated_since: self.updated_since,
            deleted: self.deleted.unwrap_or(false).then_some(retention),
        };
        Ok((filter, page))
    }
}

/// Lists a user's tasks in id order: those not deleted, or with `filter.deleted` those in the
/// recycle bin; a page of at most `page.limit` tasks and `PAGE_BYTES` of their descriptions,
/// and whether more follow.
///
/// # Errors
/// On database failure.
pub async fn list(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    filter: TaskFilter,
    page: PageRequest,
) -> ApiResult<(Vec<tasks::Model>, bool)> {
    let weight = |t: &tasks::Model| {
        t.description.as_ref().map_or(0, String::len) + t.categories.len() + t.title.len()
    };
    crate::domain::pagination::fill_page(
        page,
        |after, n| async move { Ok(query(user_id, filter, after).limit(n).all(db).await?) },
        |t| t.id,
        weight,
    )
    .await
}

/// The query of a user's tasks in id order after `after`.
fn query(user_id: Uuid, filter: TaskFilter, after: Option<Uuid>) -> sea_orm::Select<tasks::Entity> {
    use tasks::Column as C;
    let mut query = tasks::Entity::find()
        .filter(C::UserId.eq(user_id))
        .order_by_asc(C::Id);
    query = match filter.deleted {
        None => query.filter(C::DeletedAt.is_null()),
        Some(Retention { cutoff: None }) => query.filter(C::DeletedAt.is_not_null()),
        Some(Retention {
            cutoff: Some(cutoff),
        }) => query.filter(C::DeletedAt.gte(cutoff.fixed_offset())),
    };
    if let Some(status) = filter.status {
        query = query.filter(C::Status.eq(to_stored(&status)));
    }
    if let Some(since) = filter.updated_since {
        query = query.filter(C::UpdatedAt.gte(since.fixed_offset()));
    }
    if let Some(after) = after {
        query = query.filter(C::Id.gt(after));
    }
    query
}

/// Finds one of a user's tasks, tombstones included (what the sync engine needs to send a
/// deletion).
///
/// # Errors
/// On database failure.
pub async fn find_including_deleted(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> ApiResult<Option<tasks::Model>> {
    Ok(tasks::Entity::find_by_id(id)
        .filter(tasks::Column::UserId.eq(user_id))
        .one(db)
        .await?)
}

/// Finds one of a user's tasks that is not deleted, or 404.
///
/// # Errors
/// 404 when there is no such task or it is deleted.
pub async fn get(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> ApiResult<tasks::Model> {
    find_including_deleted(db, user_id, id)
        .await?
        .filter(|t| t.deleted_at.is_none())
        .ok_or_else(|| not_found("task"))
}

/// Finds one of a user's tasks in the recycle bin (deleted, and kept by `retention`), or 404.
///
/// # Errors
/// 404 when there is no such task, it is not deleted or it is past retention.
pub async fn get_deleted(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    retention: Retention,
) -> ApiResult<tasks::Model> {
    find_including_deleted(db, user_id, id)
        .await?
        .filter(|t| t.deleted_at.is_some_and(|at| retention.keeps(at)))
        .ok_or_else(|| not_found("task"))
}

/// Stores a new task (version 1).
///
/// # Errors
/// On database failure.
pub async fn create(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    data: &TaskData,
) -> ApiResult<tasks::Model> {
    let now = Utc::now().fixed_offset();
    let mut model = tasks::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        ..Default::default()
    };
    data.write_to(&mut model)?;
    let tx = db.begin().await?;
    let row = model.insert(&tx).await?;
    changes::item(
        &tx,
        ItemKind::Task,
        ItemChange::Created,
        user_id,
        row.id,
        row.version,
        Origin::Api,
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Stores new fields for a task, bumping its version, provided it is still at the version
/// read and not deleted. Unchanged fields change nothing (same version).
///
/// # Errors
/// 412 when the task changed meanwhile; 404 when it was deleted meanwhile.
pub async fn update(
    db: &(impl ConnectionTrait + TransactionTrait),
    current: tasks::Model,
    data: &TaskData,
) -> ApiResult<tasks::Model> {
    if TaskData::from_model(&current)? == *data {
        return Ok(current);
    }
    let mut model = tasks::ActiveModel {
        version: Set(current.version + 1),
        updated_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    };
    data.write_to(&mut model)?;
    let tx = db.begin().await?;
    let result = tasks::Entity::update_many()
        .set(model)
        .filter(tasks::Column::Id.eq(current.id))
        .filter(tasks::Column::Version.eq(current.version))
        .filter(tasks::Column::DeletedAt.is_null())
        .exec(&tx)
        .await?;
    if result.rows_affected == 0 {
        drop(tx);
        get(db, current.user_id, current.id).await?;
        return Err(ApiError::PreconditionFailed);
    }
    changes::item(
        &tx,
        ItemKind::Task,
        ItemChange::Updated,
        current.user_id,
        current.id,
        current.version + 1,
        Origin::Api,
    )
    .await?;
    tx.commit().await?;
    get(db, current.user_id, current.id).await
}

/// Deletes a task as a tombstone deleted here (`deleted_by` `local`): `deleted_at` set,
/// version bumped, the row kept.
///
/// # Errors
/// 412 when the task changed meanwhile; 404 when it was deleted meanwhile.
pub async fn delete(
    db: &(impl ConnectionTrait + TransactionTrait),
    current: &tasks::Model,
) -> ApiResult<()> {
    let now = Utc::now().fixed_offset();
    let tx = db.begin().await?;
    let result = tasks::Entity::update_many()
        .col_expr(tasks::Column::DeletedAt, Some(now).into())
        .col_expr(
            tasks::Column::DeletedBy,
            Some(DeletedBy::Local.as_str()).into(),
        )
        .col_expr(tasks::Column::DeletedByRun, None::<Uuid>.into())
        .col_expr(tasks::Column::UpdatedAt, now.into())
        .col_expr(tasks::Column::Version, (current.version + 1).into())
        .filter(tasks::Column::Id.eq(current.id))
        .filter(tasks::Column::Version.eq(current.version))
        .filter(tasks::Column::DeletedAt.is_null())
        .exec(&tx)
        .await?;
    if result.rows_affected == 0 {
        drop(tx);
        get(db, current.user_id, current.id).await?;
        return Err(ApiError::PreconditionFailed);
    }
    changes::item(
        &tx,
        ItemKind::Task,
        ItemChange::Deleted,
        current.user_id,
        current.id,
        current.version + 1,
        Origin::Api,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// How many times a change without `If-Match` starts over when the task changes under it.
const ATTEMPTS: usize = 4;

/// Applies a merge patch to one of a user's tasks: validated against the task as read,
/// then `If-Match` checked (RFC 9110 13.2.1: after the request's own checks), then stored if
/// the task did not change meanwhile. Without `If-Match`, a concurrent change makes it start
/// over with the new version rather than fail: the caller did not ask for a precondition.
///
/// # Errors
/// 404 when there is no such task (or it is deleted); 422 for an invalid patch; 400 for a
/// malformed `If-Match`; 412 when `If-Match` does not match.
pub async fn patch_task(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    patch: UpdateTask,
    if_match: Option<&str>,
) -> ApiResult<tasks::Model> {
    for attempt in 1..=ATTEMPTS {
        let current = get(db, user_id, id).await?;
        let data = TaskData::from_model(&current)?.patched(patch.clone())?;
        etag::check(if_match, current.version)?;
        match update(db, current, &data).await {
            Err(ApiError::PreconditionFailed) if if_match.is_none() && attempt < ATTEMPTS => {}
            other => return other,
        }
    }
    Err(ApiError::PreconditionFailed)
}

/// Deletes one of a user's tasks as a tombstone, honouring `If-Match`; without it, a
/// concurrent change makes it start over rather than fail.
///
/// # Errors
/// 404 when there is no such task (or it is already deleted); 400 for a malformed
/// `If-Match`; 412 when it does not match.
pub async fn delete_task(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    if_match: Option<&str>,
) -> ApiResult<()> {
    for attempt in 1..=ATTEMPTS {
        let current = get(db, user_id, id).await?;
        etag::check(if_match, current.version)?;
        match delete(db, &current).await {
            Err(ApiError::PreconditionFailed) if if_match.is_none() && attempt < ATTEMPTS => {}
            other => return other,
        }
    }
    Err(ApiError::PreconditionFailed)
}

/// Brings a tombstone back, provided it is still at the version read, still deleted and, with
/// `run`, still deleted by that run: `deleted_at`, `deleted_by` and `deleted_by_run` cleared,
/// version bumped. Returns whether it was restored.
async fn restore_if(
    db: &(impl ConnectionTrait + TransactionTrait),
    current: &tasks::Model,
    run: Option<Uuid>,
) -> ApiResult<bool> {
    use tasks::Column as C;
    let mut update = tasks::Entity::update_many()
        .col_expr(
            C::DeletedAt,
            None::<sea_orm::prelude::DateTimeWithTimeZone>.into(),
        )
        .col_expr(C::DeletedBy, None::<String>.into())
        .col_expr(C::DeletedByRun, None::<Uuid>.into())
        .col_expr(C::UpdatedAt, Utc::now().fixed_offset().into())
        .col_expr(C::Version, (current.version + 1).into())
        .filter(C::Id.eq(current.id))
        .filter(C::Version.eq(current.version))
        .filter(C::DeletedAt.is_not_null());
    if let Some(run) = run {
        update = update.filter(C::DeletedByRun.eq(run));
    }
    let tx = db.begin().await?;
    if update.exec(&tx).await?.rows_affected != 1 {
        return Ok(false);
    }
    changes::item(
        &tx,
        ItemKind::Task,
        ItemChange::Restored,
        current.user_id,
        current.id,
        current.version + 1,
        Origin::Api,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// One of a user's tasks that a restore may bring back: in the recycle bin.
///
/// # Errors
/// 404 when there is no such task or it is past retention; 409 `not_deleted` when it is not
/// deleted.
async fn restorable(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    retention: Retention,
) -> ApiResult<tasks::Model> {
    let current = find_including_deleted(db, user_id, id)
        .await?
        .ok_or_else(|| not_found("task"))?;
    match current.deleted_at {
        None => Err(recycle_bin::not_deleted("task")),
        Some(at) if !retention.keeps(at) => Err(not_found("task")),
        Some(_) => Ok(current),
    }
}

/// Restores one of a user's tasks from the recycle bin, honouring `If-Match`; without it, a
/// concurrent change makes it start over rather than fail. The task gets a new version, so
/// that the next run sends it to Microsoft again: created there anew when Microsoft deleted
/// it, or left there when its deletion had not been sent yet.
///
/// # Errors
/// 404 when there is no such task or it is past retention; 409 `not_deleted` when it is not
/// deleted; 400 for a malformed `If-Match`; 412 when it does not match.
pub async fn restore_task(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    if_match: Option<&str>,
    retention: Retention,
) -> ApiResult<tasks::Model> {
    for _ in 0..ATTEMPTS {
        let current = restorable(db, user_id, id, retention).await?;
        etag::check(if_match, current.version)?;
        if restore_if(db, &current, None).await? {
            return get(db, user_id, id).await;
        }
        if if_match.is_some() {
            // Gone or restored meanwhile (404, 409) says more than "changed" (412).
            restorable(db, user_id, id, retention).await?;
            return Err(ApiError::PreconditionFailed);
        }
    }
    Err(ApiError::PreconditionFailed)
}

/// Restores every task of a user still in the recycle bin whose deletion run `run_id` applied
/// (see [`restore_task`]); a task changed meanwhile is read again, one restored or deleted
/// again by something else is left as it is. Returns the ids restored, in id order.
///
/// # Errors
/// On database failure.
pub async fn restore_run(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    run_id: Uuid,
    retention: Retention,
) -> ApiResult<Vec<Uuid>> {
    use tasks::Column as C;
    let of_run = || {
        let mut query = tasks::Entity::find()
            .filter(C::UserId.eq(user_id))
            .filter(C::DeletedByRun.eq(run_id))
            .filter(C::DeletedAt.is_not_null());
        if let Some(cutoff) = retention.cutoff {
            query = query.filter(C::DeletedAt.gte(cutoff.fixed_offset()));
        }
        query
    };
    let mut restored = Vec::new();
    let mut after = None;
    loop {
        let mut page = of_run().order_by_asc(C::Id).limit(recycle_bin::PAGE);
        if let Some(after) = after {
            page = page.filter(C::Id.gt(after));
        }
        let rows = page.all(db).await?;
        let last_page = (rows.len() as u64) < recycle_bin::PAGE;
        after = rows.last().map(|r| r.id);
        for mut row in rows {
            for _ in 0..ATTEMPTS {
                if restore_if(db, &row, Some(run_id)).await? {
                    restored.push(row.id);
                    break;
                }
                match of_run().filter(C::Id.eq(row.id)).one(db).await? {
                    Some(again) => row = again,
                    None => break,
                }
            }
        }
        if last_page {
            return Ok(restored);
        }
    }
}
