//! Conflicts parked by the `manual` strategy: listing them with both versions, and resolving
//! them with the local version, Microsoft's, or merged fields. The next run sends the result.

use chrono::{DateTime, Utc};
use entity::{sync_conflicts, sync_links};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{fields::Fields, local};
use crate::domain::links::Resource;
use crate::{
    domain::pagination::PageRequest,
    error::{ApiError, ApiResult},
};

/// A parked conflict.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictView {
    /// Conflict id.
    pub id: Uuid,
    /// The resource.
    pub resource: Resource,
    /// The local item.
    pub local_id: Uuid,
    /// The Microsoft item.
    pub remote_id: String,
    /// The local version (`null`: deleted here).
    #[schema(value_type = Object)]
    pub local: Value,
    /// Microsoft's version (`null`: deleted in Microsoft).
    #[schema(value_type = Object)]
    pub microsoft: Value,
    /// Both as they were at the last sync.
    #[schema(value_type = Object)]
    pub base: Value,
    /// When it was parked.
    pub created_at: DateTime<Utc>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Which version wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// This service's version.
    Local,
    /// Microsoft's version.
    Microsoft,
    /// The fields given in `fields`.
    Merged,
}

/// Body of a resolution.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveConflict {
    /// Which version wins.
    pub resolution: Resolution,
    /// For `merged`: the item's fields (as in `local`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub fields: Option<Value>,
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn view(m: sync_conflicts::Model) -> ConflictView {
    ConflictView {
        id: m.id,
        resource: if m.resource == "tasks" {
            Resource::Tasks
        } else {
            Resource::Calendar
        },
        local_id: m.local_id,
        remote_id: m.remote_id,
        local: parse(&m.local_version),
        microsoft: parse(&m.remote_version),
        base: parse(&m.base),
        created_at: m.created_at.with_timezone(&Utc),
        resolved_at: m.resolved_at.map(|t| t.with_timezone(&Utc)),
    }
}

/// A user's unresolved conflicts, oldest first.
///
/// # Errors
/// On database failure.
pub async fn list(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    page: PageRequest,
) -> ApiResult<(Vec<ConflictView>, bool)> {
    let (rows, more) = crate::domain::pagination::fill_page(
        page,
        |after, n| async move {
            let mut query = sync_conflicts::Entity::find()
                .filter(sync_conflicts::Column::UserId.eq(user_id))
                .filter(sync_conflicts::Column::ResolvedAt.is_null())
                .order_by_asc(sync_conflicts::Column::Id);
            if let Some(after) = after {
                query = query.filter(sync_conflicts::Column::Id.gt(after));
            }
            Ok(query.limit(n).all(db).await?)
        },
        |c| c.id,
        |c| c.local_version.len() + c.remote_version.len() + c.base.len(),
    )
    .await?;
    Ok((rows.into_iter().map(view).collect(), more))
}

/// Resolves a conflict: the winning version becomes the local item, and the link is marked
/// so that the next run sends it to Microsoft without `If-Match`.
///
/// # Errors
/// 404 for an unknown conflict, 409 `conflict_resolved` when already resolved, 422 for
/// `merged` without valid fields.
pub async fn resolve(
    db: &(impl ConnectionTrait + sea_orm::TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    input: ResolveConflict,
) -> ApiResult<ConflictView> {
    let conflict = sync_conflicts::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|c| c.user_id == user_id)
        .ok_or_else(|| ApiError::NotFound("No such conflict.".to_owned()))?;
    if conflict.resolved_at.is_some() {
        return Err(ApiError::conflict(
            "conflict_resolved",
            "This conflict is already resolved.",
        ));
    }
    let resource = if conflict.resource == "tasks" {
        Resource::Tasks
    } else {
        Resource::Calendar
    };
    let microsoft = parse(&conflict.remote_version);
    let local_fields = parse(&conflict.local_version);
    let winner: Option<Fields> = match input.resolution {
        Resolution::Local => local_fields.as_object().cloned(),
        Resolution::Microsoft => microsoft.as_object().cloned(),
        Resolution::Merged => {
            let fields = input
                .fields
                .as_ref()
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(|| {
                    ApiError::invalid(
                        "/fields",
                        "an object with the item's fields is required for `merged`",
                    )
                })?;
            let template = local_fields
                .as_object()
                .or(microsoft.as_object())
                .cloned()
                .unwrap_or_default();
            if let Some(unknown) = fields.keys().find(|k| !template.contains_key(*k)) {
                return Err(ApiError::invalid(
                    format!("/fields/{unknown}"),
                    "is not a field of this item",
                ));
            }
            let mut merged = template;
            merged.extend(fields);
            Some(merged)
        }
    };
    let link = sync_links::Entity::find()
        .filter(sync_links::Column::UserId.eq(user_id))
        .filter(sync_links::Column::Resource.eq(resource.as_str()))
        .filter(sync_links::Column::LocalId.eq(conflict.local_id))
        .one(db)
        .await?;
    match (winner, link) {
        // The winner is a deletion: delete here; the link (if any) makes the next run delete
        // in Microsoft, or it is dropped when Microsoft already deleted it.
        (None, link) => {
            local::tombstone(db, resource, conflict.local_id).await?;
            if let Some(link) = link.filter(|_| microsoft.is_null()) {
                sync_links::Entity::delete_by_id(link.id).exec(db).await?;
            }
        }
        (Some(fields), link) => {
            let version = local::update(db, resource, conflict.local_id, &fields)
                .await?
                .unwrap_or(0);
            if let Some(link) = link {
                let mut model: sync_links::ActiveModel = link.into();
                // Pending, without an etag: the next run overwrites Microsoft's version.
                model.synced_version = Set(version - 1);
                model.remote_etag = Set(None);
                model.base_snapshot = Set(microsoft.to_string());
                model.update(db).await?;
            }
        }
    }
    let data = serde_json::json!({
        "id": conflict.id,
        "resource": resource.as_str(),
        "item_id": conflict.local_id,
        "resolution": input.resolution,
    });
    let mut model: sync_conflicts::ActiveModel = conflict.into();
    model.resolved_at = Set(Some(Utc::now().fixed_offset()));
    model.resolution = Set(Some(
        serde_json::to_string(&input.resolution).unwrap_or_default(),
    ));
    let resolved = view(model.update(db).await?);
    crate::domain::changes::record(db, "conflict.resolved", user_id, data).await?;
    Ok(resolved)
}
