//! The change log: one ordered record of everything an integrator is told about (items created,
//! changed, deleted or restored here or in Microsoft, connections made, lost or misconfigured,
//! failed runs, blocked mass deletions, conflicts). The change feed reads it
//! (`GET /api/v1/changes`), and the webhook dispatcher fans it out to endpoints; both see the
//! same events in the same order, with the same ids.
//!
//! Events are thin: an item event names the item, its user and organization and the version it
//! reached, and the receiver reads the item through the API. Events are recorded with the
//! database handle of the write that causes them, inside its transaction where there is one.

use chrono::{DateTime, Utc};
use entity::{change_events, change_log_state, users};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, Query},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// Every event type, in the order the README lists them.
pub const EVENT_TYPES: &[&str] = &[
    "calendar_event.created",
    "calendar_event.updated",
    "calendar_event.deleted",
    "calendar_event.restored",
    "task.created",
    "task.updated",
    "task.deleted",
    "task.restored",
    "connection.connected",
    "connection.disconnected",
    "connection.reauth_required",
    "connection.app_misconfigured",
    "sync.run.failed",
    "sync.mass_delete_blocked",
    "conflict.created",
    "conflict.resolved",
];

/// Where a change of an item was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Through this API (including a conflict resolved through it).
    Api,
    /// In Microsoft 365, applied here by a run.
    Microsoft,
}

impl Origin {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Microsoft => "microsoft",
        }
    }
}

/// The kind of a local item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// A calendar event.
    CalendarEvent,
    /// A task.
    Task,
}

impl ItemKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::CalendarEvent => "calendar_event",
            Self::Task => "task",
        }
    }
}

/// What happened to an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemChange {
    /// It was created.
    Created,
    /// Its fields changed.
    Updated,
    /// It was deleted (it is in the recycle bin).
    Deleted,
    /// It came back from the recycle bin.
    Restored,
}

impl ItemChange {
    fn suffix(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Restored => "restored",
        }
    }
}

/// Records that an item of `user_id` reached `version` through `change`.
///
/// # Errors
/// On database failure.
pub async fn item(
    db: &impl ConnectionTrait,
    kind: ItemKind,
    change: ItemChange,
    user_id: Uuid,
    item_id: Uuid,
    version: i64,
    origin: Origin,
) -> ApiResult<()> {
    items(db, kind, change, user_id, &[(item_id, version)], origin).await
}

/// Records that items of `user_id` (ids and versions) went through `change`, many rows per
/// statement (a first pull creates thousands at once).
///
/// # Errors
/// On database failure.
pub async fn items(
    db: &impl ConnectionTrait,
    kind: ItemKind,
    change: ItemChange,
    user_id: Uuid,
    items: &[(Uuid, i64)],
    origin: Origin,
) -> ApiResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let Some(organization_id) = users::Entity::find_by_id(user_id)
        .select_only()
        .column(users::Column::OrganizationId)
        .into_tuple::<Option<Uuid>>()
        .one(db)
        .await?
    else {
        return Ok(());
    };
    let event_type = format!("{}.{}", kind.prefix(), change.suffix());
    let now = Utc::now().fixed_offset();
    let rows: Vec<change_events::ActiveModel> = items
        .iter()
        .map(|(id, version)| change_events::ActiveModel {
            seq: sea_orm::ActiveValue::NotSet,
            id: Set(Uuid::now_v7()),
            event_type: Set(event_type.clone()),
            user_id: Set(Some(user_id)),
            organization_id: Set(organization_id),
            data: Set(
                json!({ "id": id, "version": version, "origin": origin.as_str() }).to_string(),
            ),
            created_at: Set(now),
            position: sea_orm::ActiveValue::NotSet,
        })
        .collect();
    for chunk in rows.chunks(200) {
        change_events::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Records an event of `event_type` about `user_id` with `data` (an object; `user_id` and
/// `organization_id`, the user's organization when the event is recorded, are added to it when
/// it is read). Nothing is recorded for a user who no longer exists.
///
/// # Errors
/// On database failure.
pub async fn record(
    db: &impl ConnectionTrait,
    event_type: &str,
    user_id: Uuid,
    data: Value,
) -> ApiResult<()> {
    debug_assert!(EVENT_TYPES.contains(&event_type), "{event_type}");
    use change_events::Column as C;
    let select = Query::select()
        .expr(Expr::val(Uuid::now_v7()))
        .expr(Expr::val(event_type.to_owned()))
        .expr(Expr::val(user_id))
        .column((users::Entity, users::Column::OrganizationId))
        .expr(Expr::val(data.to_string()))
        .expr(Expr::val(Utc::now().fixed_offset()))
        .from(users::Entity)
        .and_where(users::Column::Id.eq(user_id))
        .to_owned();
    let insert = Query::insert()
        .into_table(change_events::Entity)
        .columns([
            C::Id,
            C::EventType,
            C::UserId,
            C::OrganizationId,
            C::Data,
            C::CreatedAt,
        ])
        .select_from(select)
        .map_err(|e| anyhow::anyhow!("Failed to build a change event: {e}"))?
        .to_owned();
    db.execute(&insert).await?;
    Ok(())
}

/// Whose events a caller may read: everything, an organization's, or one user's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every event (admins).
    All,
    /// Events about the organization's users (org admins, and endpoints of an organization).
    Organization(Uuid),
    /// Events about one user.
    User(Uuid),
}

impl Scope {
    /// Whether an event about a user of `organization_id` (`user_id`) is in this scope.
    pub fn covers(self, user_id: Option<Uuid>, organization_id: Option<Uuid>) -> bool {
        match self {
            Self::All => true,
            Self::Organization(org) => organization_id == Some(org),
            Self::User(user) => user_id == Some(user),
        }
    }
}

/// One event as the feed and webhooks show it (Standard Webhooks' `type`, `timestamp`, `data`,
/// with the event's id, which is also its webhook message id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangeEvent {
    /// Unique id of the event (the `webhook-id` of its deliveries).
    pub id: Uuid,
    /// The event type, such as `calendar_event.updated`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// What happened: ids, `user_id`, `organization_id`, and per type `version`, `origin`,
    /// `resource`, `run_id`...
    pub data: Value,
    /// Read the feed `after` this cursor to continue behind this event.
    pub cursor: String,
}

impl ChangeEvent {
    /// The event of a stored row.
    pub fn of(row: &change_events::Model) -> Self {
        let mut data = match serde_json::from_str::<Value>(&row.data) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        data.insert("user_id".into(), json!(row.user_id));
        data.insert("organization_id".into(), json!(row.organization_id));
        Self {
            id: row.id,
            event_type: row.event_type.clone(),
            timestamp: row.created_at.with_timezone(&Utc),
            data: Value::Object(data),
            cursor: position(row).to_string(),
        }
    }

    /// The body of a webhook delivering this event: `{"type", "timestamp", "data"}`.
    pub fn payload(&self) -> String {
        json!({ "type": self.event_type, "timestamp": self.timestamp, "data": self.data })
            .to_string()
    }
}

/// Query of the change feed.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedParams {
    /// Continue behind this cursor (an event's `cursor` or a page's `next_cursor`); from the
    /// oldest event kept when absent.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub after: Option<String>,
    /// Events per page, 1 to 1000. Default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// A page of the change feed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeedPage {
    /// The events, oldest first.
    pub items: Vec<ChangeEvent>,
    /// Where to continue: read `after` it for what comes next (also when this page is empty,
    /// so a poller keeps it).
    pub next_cursor: String,
    /// Whether more events follow at once.
    pub has_more: bool,
}

/// Largest page of the feed.
pub const MAX_FEED_PAGE: u64 = 1000;

/// The events behind `after` (a position), in log order, at most `limit`.
///
/// An event has a position once its transaction has committed, and positions are given in
/// commit order (see the migration that numbers them): a reader that has seen a position has
/// seen every lower one, so a cursor never skips an event that commits later, and an open
/// transaction holds back nothing but its own events.
///
/// # Errors
/// On database failure.
pub async fn committed_after(
    db: &impl ConnectionTrait,
    after: i64,
    limit: u64,
    scope: Scope,
) -> ApiResult<Vec<change_events::Model>> {
    use change_events::Column as C;
    let query = change_events::Entity::find().filter(C::Position.gt(after));
    let query = match scope {
        Scope::All => query,
        Scope::Organization(org) => query.filter(C::OrganizationId.eq(org)),
        Scope::User(user) => query.filter(C::UserId.eq(user)),
    };
    Ok(query.order_by_asc(C::Position).limit(limit).all(db).await?)
}

/// The position of a committed event (read through [`committed_after`]).
pub fn position(row: &change_events::Model) -> i64 {
    debug_assert!(row.position.is_some(), "event {} is not committed", row.id);
    row.position.unwrap_or_default()
}

/// The log's bookkeeping row.
///
/// # Errors
/// On database failure.
pub async fn log_state(db: &impl ConnectionTrait) -> ApiResult<change_log_state::Model> {
    change_log_state::Entity::find_by_id(1)
        .one(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the change log's state row is missing").into())
}

/// A page of the feed for `scope`.
///
/// # Errors
/// 400 `invalid_query` for a cursor that is not one, or a limit out of range; 410
/// `cursor_expired` when events behind the cursor were already removed (older than
/// `history_days`).
pub async fn feed(
    db: &impl ConnectionTrait,
    scope: Scope,
    params: &FeedParams,
) -> ApiResult<FeedPage> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_FEED_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("`limit` must be between 1 and {MAX_FEED_PAGE}"),
        ));
    }
    let after = match params.after.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_cursor", "`after` is not a cursor of this feed")
                })?,
        ),
    };
    let pruned = log_state(db).await?.pruned_through;
    let after = match after {
        Some(after) if after < pruned => {
            return Err(ApiError::Gone {
                code: "cursor_expired",
                detail: "Events behind this cursor are older than the feed keeps \
                         (`history_days`); read the items again and start from a new cursor."
                    .to_owned(),
            });
        }
        Some(after) => after,
        None => pruned,
    };
    let mut rows = committed_after(db, after, limit + 1, scope).await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = rows.last().map_or(after, position).to_string();
    Ok(FeedPage {
        items: rows.iter().map(ChangeEvent::of).collect(),
        next_cursor,
        has_more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_cover_their_events_only() {
        let (user, org) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(Scope::All.covers(None, None));
        assert!(Scope::Organization(org).covers(Some(user), Some(org)));
        assert!(!Scope::Organization(org).covers(Some(user), None));
        assert!(Scope::User(user).covers(Some(user), Some(org)));
        assert!(!Scope::User(user).covers(Some(Uuid::now_v7()), Some(org)));
    }

    #[test]
    fn item_event_types_are_listed() {
        for kind in [ItemKind::CalendarEvent, ItemKind::Task] {
            for change in [
                ItemChange::Created,
                ItemChange::Updated,
                ItemChange::Deleted,
                ItemChange::Restored,
            ] {
                let name = format!("{}.{}", kind.prefix(), change.suffix());
                assert!(EVENT_TYPES.contains(&name.as_str()), "{name}");
            }
        }
    }
}
