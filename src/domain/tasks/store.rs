//! Storing and finding tasks: filtered lists, optimistic updates, tombstones and their
//! restoration from the recycle bin.

use chrono::{DateTime, Utc};
use entity::tasks;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, prelude::DateTimeWithTimeZone,
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{TaskData, TaskStatus, UpdateTask};
use crate::{
    domain::{
        changes::ItemKind,
        etag,
        item_fields::to_stored,
        pagination::{PageParams, PageRequest},
        recycle_bin::Retention,
        versioned::{self, Item},
    },
    error::ApiResult,
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

impl Item for tasks::Entity {
    const KIND: ItemKind = ItemKind::Task;
    const NOUN: &'static str = "task";
    const ID: tasks::Column = tasks::Column::Id;
    const USER_ID: tasks::Column = tasks::Column::UserId;
    const VERSION: tasks::Column = tasks::Column::Version;
    const CREATED_AT: tasks::Column = tasks::Column::CreatedAt;
    const UPDATED_AT: tasks::Column = tasks::Column::UpdatedAt;
    const DELETED_AT: tasks::Column = tasks::Column::DeletedAt;
    const DELETED_BY: tasks::Column = tasks::Column::DeletedBy;
    const DELETED_BY_RUN: tasks::Column = tasks::Column::DeletedByRun;

    fn id(row: &tasks::Model) -> Uuid {
        row.id
    }
    fn user_id(row: &tasks::Model) -> Uuid {
        row.user_id
    }
    fn version(row: &tasks::Model) -> i64 {
        row.version
    }
    fn deleted_at(row: &tasks::Model) -> Option<DateTimeWithTimeZone> {
        row.deleted_at
    }
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
    versioned::find_including_deleted::<tasks::Entity>(db, user_id, id).await
}

/// Finds one of a user's tasks that is not deleted, or 404.
///
/// # Errors
/// 404 when there is no such task or it is deleted.
pub async fn get(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> ApiResult<tasks::Model> {
    versioned::get::<tasks::Entity>(db, user_id, id).await
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
    versioned::get_deleted::<tasks::Entity>(db, user_id, id, retention).await
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
    let mut model = tasks::ActiveModel::default();
    data.write_to(&mut model)?;
    versioned::create::<tasks::Entity>(db, user_id, model).await
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
    let mut model = tasks::ActiveModel::default();
    data.write_to(&mut model)?;
    versioned::update::<tasks::Entity>(db, &current, model).await
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
    versioned::delete::<tasks::Entity>(db, current).await
}

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
    versioned::with_retries(if_match, || async {
        let current = get(db, user_id, id).await?;
        let data = TaskData::from_model(&current)?.patched(patch.clone())?;
        etag::check(if_match, current.version)?;
        update(db, current, &data).await
    })
    .await
}

/// Deletes one of a user's tasks as a tombstone (see [`versioned::delete_checked`]).
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
    versioned::delete_checked::<tasks::Entity>(db, user_id, id, if_match).await
}

/// Restores one of a user's tasks from the recycle bin (see [`versioned::restore`]).
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
    versioned::restore::<tasks::Entity>(db, user_id, id, if_match, retention).await
}

/// Restores every task of a user still in the recycle bin whose deletion run `run_id` applied
/// (see [`versioned::restore_run`]). Returns the ids restored, in id order.
///
/// # Errors
/// On database failure.
pub async fn restore_run(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    run_id: Uuid,
    retention: Retention,
) -> ApiResult<Vec<Uuid>> {
    versioned::restore_run::<tasks::Entity>(db, user_id, run_id, retention).await
}
