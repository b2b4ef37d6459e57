//! Tasks of the business application's side, one set per user: versioned (every change bumps
//! `version`), deleted as tombstones (`deleted_at`) so that deletions can be sent to Microsoft
//! To Do.

use chrono::{DateTime, NaiveDate, Utc};
use entity::tasks;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    domain::{
        access::not_found,
        item_fields::{
            Category, Importance, MAX_DESCRIPTION, check_categories, check_text, check_title,
            date_to_stored, from_stored, from_stored_json, or_default, parse_date, present,
            required, to_stored, to_stored_json,
        },
        pagination::{PageParams, PageRequest},
        patch::Patch,
    },
    error::{ApiError, ApiResult, FieldError},
    sync::links::{LinkState, Resource, link_states},
};

/// Where a task stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started (the default).
    #[default]
    NotStarted,
    /// In progress.
    InProgress,
    /// Completed.
    Completed,
    /// Waiting on others.
    WaitingOnOthers,
    /// Deferred.
    Deferred,
}

/// Body of `POST /api/v1/users/{id}/tasks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// Title, 1 to 255 characters, not blank.
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "Call Ada back", min_length = 1, max_length = 255, pattern = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")]
    pub title: Option<String>,
    /// Description (plain text), at most 32,000 characters.
    #[serde(default)]
    #[schema(max_length = 32000)]
    pub description: Option<String>,
    /// Status (default `not_started`).
    #[serde(default)]
    pub status: Option<TaskStatus>,
    /// Importance (default `normal`).
    #[serde(default)]
    pub importance: Option<Importance>,
    /// Due date (`YYYY-MM-DD`).
    #[serde(default)]
    #[schema(format = Date, example = "2026-03-31")]
    pub due_date: Option<String>,
    /// Start date (`YYYY-MM-DD`).
    #[serde(default)]
    #[schema(format = Date, example = "2026-03-29")]
    pub start_date: Option<String>,
    /// When to remind (RFC 3339 instant).
    #[serde(default)]
    #[schema(format = DateTime, example = "2026-03-30T07:00:00Z")]
    pub reminder_at: Option<String>,
    /// When the task was completed (RFC 3339 instant). Default: now when the status is
    /// `completed`, otherwise none.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
    /// Categories: at most 25, each 1 to 255 characters, not blank (repeats are merged).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Category>>, max_items = 25)]
    pub categories: Option<Vec<String>>,
}

/// Body of `PATCH /api/v1/users/{id}/tasks/{task_id}` (JSON merge patch). `null` clears an
/// optional member and resets `status` and `importance` to their defaults; `title` may not be
/// `null`. A status that becomes `completed` sets `completed_at` to now, one that leaves
/// `completed` clears it, unless the patch gives `completed_at`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    /// Title, 1 to 255 characters, not blank.
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, max_length = 255, pattern = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")]
    pub title: Patch<String>,
    /// Description.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 32000)]
    pub description: Patch<String>,
    /// Status.
    #[serde(default)]
    #[schema(value_type = Option<TaskStatus>)]
    pub status: Patch<TaskStatus>,
    /// Importance.
    #[serde(default)]
    #[schema(value_type = Option<Importance>)]
    pub importance: Patch<Importance>,
    /// Due date (`YYYY-MM-DD`).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Patch<String>,
    /// Start date (`YYYY-MM-DD`).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub start_date: Patch<String>,
    /// When to remind (RFC 3339 instant).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub reminder_at: Patch<String>,
    /// When the task was completed (RFC 3339 instant).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Patch<String>,
    /// Categories (replace the whole list).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Category>>, max_items = 25)]
    pub categories: Patch<Vec<String>>,
}

/// A valid task's fields (what creation and updates store, and what the sync engine compares
/// and writes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskData {
    /// Title, 1 to 255 characters.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Status.
    pub status: TaskStatus,
    /// Importance.
    pub importance: Importance,
    /// Due date.
    pub due_date: Option<NaiveDate>,
    /// Start date.
    pub start_date: Option<NaiveDate>,
    /// Reminder.
    pub reminder_at: Option<DateTime<Utc>>,
    /// Completion.
    pub completed_at: Option<DateTime<Utc>>,
    /// Categories.
    pub categories: Vec<String>,
}

fn parse_instant(pointer: &str, text: &str) -> Result<DateTime<Utc>, FieldError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            FieldError::new(
                pointer,
                "must be an RFC 3339 instant such as `2026-03-30T07:00:00Z`",
            )
        })
}

fn stored_date(id: Uuid, d: Option<&String>) -> ApiResult<Option<NaiveDate>> {
    d.map(|d| {
        NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("task {id}: bad date `{d}`: {e}")))
    })
    .transpose()
}

impl TaskData {
    /// The fields of a stored task.
    ///
    /// # Errors
    /// 500 when the row holds what this service never writes.
    pub fn from_model(m: &tasks::Model) -> ApiResult<Self> {
        Ok(Self {
            title: m.title.clone(),
            description: m.description.clone(),
            status: from_stored("status", &m.status)?,
            importance: from_stored("importance", &m.importance)?,
            due_date: stored_date(m.id, m.due_date.as_ref())?,
            start_date: stored_date(m.id, m.start_date.as_ref())?,
            reminder_at: m.reminder_at.map(|t| t.with_timezone(&Utc)),
            completed_at: m.completed_at.map(|t| t.with_timezone(&Utc)),
            categories: from_stored_json("categories", &m.categories)?,
        })
    }

    /// Validates a creation request.
    ///
    /// # Errors
    /// 422 listing every invalid member.
    pub fn from_create(input: CreateTask) -> ApiResult<Self> {
        let patch = UpdateTask {
            title: present(input.title),
            description: present(input.description),
            status: present(input.status),
            importance: present(input.importance),
            due_date: present(input.due_date),
            start_date: present(input.start_date),
            reminder_at: present(input.reminder_at),
            completed_at: present(input.completed_at),
            categories: present(input.categories),
        };
        apply(patch, None)
    }

    /// This task with a merge patch applied, validated as a whole.
    ///
    /// # Errors
    /// 422 listing every invalid member.
    pub fn patched(&self, patch: UpdateTask) -> ApiResult<Self> {
        apply(patch, Some(self))
    }

    fn write_to(&self, model: &mut tasks::ActiveModel) -> ApiResult<()> {
        model.title = Set(self.title.clone());
        model.description = Set(self.description.clone());
        model.status = Set(to_stored(&self.status));
        model.importance = Set(to_stored(&self.importance));
        model.due_date = Set(self.due_date.map(date_to_stored));
        model.start_date = Set(self.start_date.map(date_to_stored));
        model.reminder_at = Set(self.reminder_at.map(|t| t.fixed_offset()));
        model.completed_at = Set(self.completed_at.map(|t| t.fixed_offset()));
        model.categories = Set(to_stored_json(&self.categories)?);
        Ok(())
    }
}

/// A date member: absent keeps, `null` clears.
fn date_member(
    pointer: &str,
    patch: Patch<String>,
    current: Option<NaiveDate>,
    errors: &mut Vec<FieldError>,
) -> Option<NaiveDate> {
    match patch {
        Patch::Absent => current,
        Patch::Null => None,
        Patch::Set(text) => parse_date(pointer, &text).map_err(|e| errors.push(e)).ok(),
    }
}

/// An instant member: absent keeps, `null` clears.
fn instant_member(
    pointer: &str,
    patch: Patch<String>,
    current: Option<DateTime<Utc>>,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    match patch {
        Patch::Absent => current,
        Patch::Null => None,
        Patch::Set(text) => parse_instant(pointer, &text)
            .map_err(|e| errors.push(e))
            .ok(),
    }
}

fn apply(patch: UpdateTask, current: Option<&TaskData>) -> ApiResult<TaskData> {
    let mut errors = Vec::new();
    let title = match required("/title", patch.title, &mut errors) {
        Some(title) => check_title("/title", &title)
            .map_err(|e| errors.push(e))
            .ok(),
        None => current.map(|c| c.title.clone()).or_else(|| {
            errors.push(FieldError::new("/title", "is required"));
            None
        }),
    };
    let description = match patch.description {
        Patch::Absent => current.and_then(|c| c.description.clone()),
        Patch::Null => None,
        Patch::Set(text) => check_text("/description", Some(text), MAX_DESCRIPTION)
            .map_err(|e| errors.push(e))
            .ok()
            .flatten(),
    };
    let was = current.map(|c| c.status);
    let status = or_default(patch.status).or(was).unwrap_or_default();
    let importance = or_default(patch.importance)
        .or(current.map(|c| c.importance))
        .unwrap_or_default();
    let due_date = date_member(
        "/due_date",
        patch.due_date,
        current.and_then(|c| c.due_date),
        &mut errors,
    );
    let start_date = date_member(
        "/start_date",
        patch.start_date,
        current.and_then(|c| c.start_date),
        &mut errors,
    );
    let reminder_at = instant_member(
        "/reminder_at",
        patch.reminder_at,
        current.and_then(|c| c.reminder_at),
        &mut errors,
    );
    let completed_at = match patch.completed_at {
        Patch::Absent => {
            let completed = status == TaskStatus::Completed;
            let was_completed = was == Some(TaskStatus::Completed);
            match (was_completed, completed) {
                (false, true) => Some(Utc::now()),
                (true, false) => None,
                _ => current.and_then(|c| c.completed_at),
            }
        }
        given => instant_member("/completed_at", given, None, &mut errors),
    };
    let categories = match patch.categories {
        Patch::Absent => current.map(|c| c.categories.clone()).unwrap_or_default(),
        Patch::Null => Vec::new(),
        Patch::Set(list) => check_categories("/categories", list, &mut errors),
    };
    match title {
        Some(title) if errors.is_empty() => Ok(TaskData {
            title,
            description,
            status,
            importance,
            due_date,
            start_date,
            reminder_at,
            completed_at,
            categories,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// A task as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Status.
    pub status: TaskStatus,
    /// Importance.
    pub importance: Importance,
    /// Due date.
    #[schema(format = Date, example = "2026-03-31")]
    pub due_date: Option<String>,
    /// Start date.
    #[schema(format = Date, example = "2026-03-29")]
    pub start_date: Option<String>,
    /// When to remind.
    pub reminder_at: Option<DateTime<Utc>>,
    /// When it was completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// Categories.
    pub categories: Vec<String>,
    /// Version, also sent as the `ETag`.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its Microsoft link.
    pub microsoft: LinkState,
}

impl TaskView {
    /// The view of a stored task with its link state.
    ///
    /// # Errors
    /// 500 when the row holds what this service never writes.
    pub fn new(m: tasks::Model, microsoft: LinkState) -> ApiResult<Self> {
        let data = TaskData::from_model(&m)?;
        Ok(Self {
            id: m.id,
            title: data.title,
            description: data.description,
            status: data.status,
            importance: data.importance,
            due_date: data.due_date.map(date_to_stored),
            start_date: data.start_date.map(date_to_stored),
            reminder_at: data.reminder_at,
            completed_at: data.completed_at,
            categories: data.categories,
            version: m.version,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
            microsoft,
        })
    }
}

/// The views of stored tasks of one user, with their link states.
///
/// # Errors
/// On database failure.
pub async fn views(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    rows: Vec<tasks::Model>,
) -> ApiResult<Vec<TaskView>> {
    let versions: Vec<(Uuid, i64)> = rows.iter().map(|r| (r.id, r.version)).collect();
    let mut links = link_states(db, user_id, Resource::Tasks, &versions).await?;
    rows.into_iter()
        .map(|row| {
            let link = links.remove(&row.id).unwrap_or(LinkState {
                remote_id: None,
                last_synced_at: None,
                pending: true,
            });
            TaskView::new(row, link)
        })
        .collect()
}

/// The view of one stored task.
///
/// # Errors
/// On database failure.
pub async fn view(db: &impl ConnectionTrait, row: tasks::Model) -> ApiResult<TaskView> {
    let user_id = row.user_id;
    views(db, user_id, vec![row])
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no view of a task")))
}

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
