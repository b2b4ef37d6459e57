//! Tasks of the business application's side, one set per user: versioned (every change bumps
//! `version`), deleted as tombstones (`deleted_at`) so that deletions can be sent to Microsoft
//! To Do.

mod store;
mod view;

use chrono::{DateTime, NaiveDate, Utc};
use entity::tasks;
use sea_orm::Set;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub use store::{
    TaskFilter, TaskListParams, create, delete, delete_task, find_including_deleted, get,
    get_deleted, list, patch_task, restore_run, restore_task, update,
};
pub use view::{TaskView, view, views};

use crate::{
    domain::{
        item_fields::{
            Category, Importance, MAX_DESCRIPTION, check_categories, check_text, check_title,
            date_to_stored, from_stored, from_stored_json, or_default, parse_date, present,
            required, to_stored, to_stored_json,
        },
        patch::Patch,
    },
    error::{ApiError, ApiResult, FieldError},
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
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
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
