//! What the API shows of a task: its fields, and its Microsoft link.

use chrono::{DateTime, Utc};
use entity::tasks;
use sea_orm::ConnectionTrait;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{TaskData, TaskStatus};
use crate::{
    domain::links::{LinkState, Resource, link_states},
    domain::{
        item_fields::{Importance, date_to_stored},
        recycle_bin::DeletedBy,
    },
    error::{ApiError, ApiResult},
};

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
    /// When it was deleted; `null` unless read from the recycle bin (`deleted=true`).
    pub deleted_at: Option<DateTime<Utc>>,
    /// Who deleted it; `null` unless read from the recycle bin (and for an item deleted before
    /// this was recorded).
    pub deleted_by: Option<DeletedBy>,
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
            deleted_at: m.deleted_at.map(|t| t.with_timezone(&Utc)),
            deleted_by: m
                .deleted_at
                .and(DeletedBy::from_stored(m.deleted_by.as_deref())),
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
