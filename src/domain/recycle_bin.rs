//! The recycle bin: a deleted calendar event or task stays a tombstone that records who
//! deleted it (a person here, or Microsoft through a run), can be read and restored for
//! `deleted_retention_days`, and is treated as gone after that (the retention job then purges
//! it). The deletions one run applied can be restored together.

use chrono::{DateTime, Utc};
use entity::sync_runs;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, prelude::DateTimeWithTimeZone,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    domain::links::Resource,
    domain::{access::not_found, calendar_events as events, tasks as todo},
    error::{ApiError, ApiResult},
};

/// Who deleted an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeletedBy {
    /// A person, through this API.
    Local,
    /// Microsoft: the item was deleted in Outlook or To Do, and a run applied the deletion.
    Microsoft,
}

impl DeletedBy {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Microsoft => "microsoft",
        }
    }

    /// The stored form read back; `None` for a live item, or one deleted before who deleted
    /// it was recorded.
    pub fn from_stored(stored: Option<&str>) -> Option<Self> {
        match stored? {
            "local" => Some(Self::Local),
            "microsoft" => Some(Self::Microsoft),
            _ => None,
        }
    }
}

/// How long tombstones stay in the recycle bin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Tombstones deleted before this instant are gone; `None`: kept forever.
    pub cutoff: Option<DateTime<Utc>>,
}

impl Retention {
    /// The retention of `days` days from now; 0 keeps tombstones forever.
    pub fn of_days(days: u64) -> Self {
        if days == 0 {
            return Self { cutoff: None };
        }
        // A century is "forever" enough, and keeps the date arithmetic in range.
        let days = i64::try_from(days.min(36_500)).unwrap_or(36_500);
        Self {
            cutoff: Some(Utc::now() - chrono::Duration::days(days)),
        }
    }

    /// Whether a tombstone deleted at `deleted_at` is still in the recycle bin.
    pub fn keeps(&self, deleted_at: DateTimeWithTimeZone) -> bool {
        self.cutoff
            .is_none_or(|cutoff| deleted_at.with_timezone(&Utc) >= cutoff)
    }
}

/// Query of `GET .../calendar-events/{event_id}` and `GET .../tasks/{task_id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// `true`: read the item from the recycle bin (deleted, and deleted within
    /// `deleted_retention_days`); a live item then answers 404. Default `false`: a live
    /// item; a deleted one answers 404.
    pub deleted: Option<bool>,
}

/// An item brought back from the recycle bin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RestoredItem {
    /// `calendar` for an event, `tasks` for a task.
    pub resource: Resource,
    /// The item's id.
    pub id: Uuid,
}

/// What restoring a run's deletions brought back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct RunRestore {
    /// How many items were restored.
    pub restored: u64,
    /// The items restored: events, then tasks, each in id order.
    pub items: Vec<RestoredItem>,
}

/// Items a bulk restore reads per query.
pub(crate) const PAGE: u64 = 500;

/// The 409 of a restore of an item that is not deleted.
pub fn not_deleted(what: &str) -> ApiError {
    ApiError::conflict(
        "not_deleted",
        format!("The {what} is not deleted: there is nothing to restore."),
    )
}

/// Restores every item still in the recycle bin whose deletion run `run_id` (one of the
/// user's runs) applied, each as a single restore does (version bumped, so that the next run
/// sends it to Microsoft again). Items restored or changed meanwhile are left as they are.
///
/// # Errors
/// 404 when the user has no such run; on database failure.
pub async fn restore_run(
    db: &(impl ConnectionTrait + sea_orm::TransactionTrait),
    user_id: Uuid,
    run_id: Uuid,
    retention: Retention,
) -> ApiResult<RunRestore> {
    sync_runs::Entity::find_by_id(run_id)
        .filter(sync_runs::Column::UserId.eq(user_id))
        .one(db)
        .await?
        .ok_or_else(|| not_found("sync run"))?;
    // A run synchronizes one resource; both are looked at, which costs one indexed query.
    let events = events::restore_run(db, user_id, run_id, retention).await?;
    let tasks = todo::restore_run(db, user_id, run_id, retention).await?;
    let items: Vec<RestoredItem> = events
        .into_iter()
        .map(|id| RestoredItem {
            resource: Resource::Calendar,
            id,
        })
        .chain(tasks.into_iter().map(|id| RestoredItem {
            resource: Resource::Tasks,
            id,
        }))
        .collect();
    if !items.is_empty() {
        tracing::info!(
            user.id = %user_id,
            run.id = %run_id,
            restored = items.len(),
            "Restored the deletions of a run"
        );
    }
    Ok(RunRestore {
        restored: items.len() as u64,
        items,
    })
}
