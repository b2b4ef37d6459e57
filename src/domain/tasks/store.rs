//! Storing and finding tasks: filtered lists, optimistic updates, tombstones.

use chrono::{DateTime, Utc};
use entity::tasks;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{TaskData, TaskStatus, UpdateTask};
use crate::{
    domain::{
        access::not_found,
        etag,
        item_fields::to_stored,
        pagination::{PageParams, PageRequest},
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
}

/// Validated list filters.
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskFilter {
    /// Tasks with this status.
    pub status: Option<TaskStatus>,
    /// Tasks updated at or after this instant.
    pub updated_since: Option<DateTime<Utc>>,
}

impl TaskListParams {
    /// Validates the query.
    ///
    /// # Errors
    /// 400 `invalid_query` or `invalid_cursor` for a bad page.
    pub fn parse(&self) -> ApiResult<(TaskFilter, PageRequest)> {
        let page = PageParams {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .parse()?;
        let filter = TaskFilter {
            status: self.status,
            updated_since: self.updated_since,
        };
        Ok((filter, page))
    }
}

/// Lists a user's tasks (not deleted) in id order.
///
/// # Errors
/// On database failure.
pub async fn list(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    filter: TaskFilter,
    page: PageRequest,
) -> ApiResult<Vec<tasks::Model>> {
    use tasks::Column as C;
    let mut query = tasks::Entity::find()
        .filter(C::UserId.eq(user_id))
        .filter(C::DeletedAt.is_null())
        .order_by_asc(C::Id);
    if let Some(status) = filter.status {
        query = query.filter(C::Status.eq(to_stored(&status)));
    }
    if let Some(since) = filter.updated_since {
        query = query.filter(C::UpdatedAt.gte(since.fixed_offset()));
    }
    if let Some(after) = page.after {
        query = query.filter(C::Id.gt(after));
    }
    Ok(query.limit(page.limit + 1).all(db).await?)
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

/// Stores a new task (version 1).
///
/// # Errors
/// On database failure.
pub async fn create(
    db: &impl ConnectionTrait,
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
    Ok(model.insert(db).await?)
}

/// Stores new fields for a task, bumping its version, provided it is still at the version
/// read and not deleted. Unchanged fields change nothing (same version).
///
/// # Errors
/// 412 when the task changed meanwhile; 404 when it was deleted meanwhile.
pub async fn update(
    db: &impl ConnectionTrait,
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
    let result = tasks::Entity::update_many()
        .set(model)
        .filter(tasks::Column::Id.eq(current.id))
        .filter(tasks::Column::Version.eq(current.version))
        .filter(tasks::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        get(db, current.user_id, current.id).await?;
        return Err(ApiError::PreconditionFailed);
    }
    get(db, current.user_id, current.id).await
}

/// Deletes a task as a tombstone: `deleted_at` set, version bumped, the row kept.
///
/// # Errors
/// 412 when the task changed meanwhile; 404 when it was deleted meanwhile.
pub async fn delete(db: &impl ConnectionTrait, current: &tasks::Model) -> ApiResult<()> {
    let now = Utc::now().fixed_offset();
    let result = tasks::Entity::update_many()
        .col_expr(tasks::Column::DeletedAt, Some(now).into())
        .col_expr(tasks::Column::UpdatedAt, now.into())
        .col_expr(tasks::Column::Version, (current.version + 1).into())
        .filter(tasks::Column::Id.eq(current.id))
        .filter(tasks::Column::Version.eq(current.version))
        .filter(tasks::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        get(db, current.user_id, current.id).await?;
        return Err(ApiError::PreconditionFailed);
    }
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
    db: &impl ConnectionTrait,
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
    db: &impl ConnectionTrait,
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
