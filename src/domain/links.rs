//! Links between local items and Microsoft items, and what the API shows of them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::sync_links;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiResult;

/// The synchronized resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Calendar events (Outlook Calendar).
    Calendar,
    /// Tasks (Microsoft To Do).
    Tasks,
}

impl Resource {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Calendar => "calendar",
            Self::Tasks => "tasks",
        }
    }
}

/// An item's Microsoft link, as the API shows it on events and tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LinkState {
    /// The Microsoft id of the linked item; `null` when never synchronized.
    pub remote_id: Option<String>,
    /// When the item was last synchronized.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Whether a local change waits to be sent to Microsoft.
    pub pending: bool,
}

/// The link state of local items, given their current versions.
///
/// # Errors
/// On database failure.
pub async fn link_states(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    resource: Resource,
    items: &[(Uuid, i64)],
) -> ApiResult<HashMap<Uuid, LinkState>> {
    let ids: Vec<Uuid> = items.iter().map(|(id, _)| *id).collect();
    let links = sync_links::Entity::find()
        .filter(sync_links::Column::UserId.eq(user_id))
        .filter(sync_links::Column::Resource.eq(resource.as_str()))
        .filter(sync_links::Column::LocalId.is_in(ids))
        .all(db)
        .await?;
    Ok(items
        .iter()
        .map(|(id, version)| {
            let link = links.iter().find(|l| l.local_id == *id);
            let state = LinkState {
                remote_id: link.map(|l| l.remote_id.clone()),
                last_synced_at: link.map(|l| l.last_synced_at.with_timezone(&Utc)),
                pending: link.is_none_or(|l| l.synced_version < *version),
            };
            (*id, state)
        })
        .collect())
}
