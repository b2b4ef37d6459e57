//! The engine's access to the local side: every item of a user (tombstones included) as
//! normalized fields, and writes that bump the version as every local change does.

use chrono::{DateTime, Utc};
use entity::{calendar_events, sync_links, tasks};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    JoinType, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::{
    fields::{self, Fields},
    links::Resource,
    recurrence,
};
use crate::error::ApiResult;

/// A local item as the engine sees it.
#[derive(Debug, Clone)]
pub struct LocalItem {
    /// Local id.
    pub id: Uuid,
    /// Current version.
    pub version: i64,
    /// Whether it is a tombstone.
    pub deleted: bool,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its synchronized fields.
    pub fields: Fields,
}

fn event_item(m: &calendar_events::Model) -> LocalItem {
    let mut fields = fields::event_from_local(m);
    recurrence::extend_local(m, &mut fields);
    LocalItem {
        id: m.id,
        version: m.version,
        deleted: m.deleted_at.is_some(),
        updated_at: m.updated_at.with_timezone(&Utc),
        fields,
    }
}

/// Writes normalized fields into a local event row: its own fields, then its series fields.
fn event_into_local(f: &Fields, m: &mut calendar_events::Model) {
    fields::event_into_local(f, m);
    recurrence::into_local(f, m);
}

fn task_item(m: &tasks::Model) -> LocalItem {
    LocalItem {
        id: m.id,
        version: m.version,
        deleted: m.deleted_at.is_some(),
        updated_at: m.updated_at.with_timezone(&Utc),
        fields: fields::task_from_local(m),
    }
}

/// Every item of a user for a resource, tombstones included.
///
/// # Errors
/// On database failure.
pub async fn all(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    resource: Resource,
) -> ApiResult<Vec<LocalItem>> {
    Ok(match resource {
        Resource::Calendar => calendar_events::Entity::find()
            .filter(calendar_events::Column::UserId.eq(user_id))
            .all(db)
            .await?
            .iter()
            .map(event_item)
            .collect(),
        Resource::Tasks => tasks::Entity::find()
            .filter(tasks::Column::UserId.eq(user_id))
            .all(db)
            .await?
            .iter()
            .map(task_item)
            .collect(),
    })
}

/// The ids of a user's items that a push has to look at: never synchronized and not deleted,
/// or synchronized and changed (or deleted) since. One query joining the items with their
/// links, so that a run with nothing to push reads nothing per item.
///
/// # Errors
/// On database failure.
pub async fn unsynced(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    resource: Resource,
) -> ApiResult<Vec<Uuid>> {
    match resource {
        Resource::Calendar => {
            unsynced_of::<calendar_events::Entity>(
                db,
                user_id,
                resource,
                [
                    calendar_events::Column::Id,
                    calendar_events::Column::UserId,
                    calendar_events::Column::Version,
                    calendar_events::Column::DeletedAt,
                ],
            )
            .await
        }
        Resource::Tasks => {
            unsynced_of::<tasks::Entity>(
                db,
                user_id,
                resource,
                [
                    tasks::Column::Id,
                    tasks::Column::UserId,
                    tasks::Column::Version,
                    tasks::Column::DeletedAt,
                ],
            )
            .await
        }
    }
}

/// [`unsynced`] for one entity, given its id, user id, version and deletion columns.
async fn unsynced_of<E: EntityTrait>(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    resource: Resource,
    [id, user, version, deleted]: [E::Column; 4],
) -> ApiResult<Vec<Uuid>> {
    let link = E::belongs_to(sync_links::Entity)
        .from(id)
        .to(sync_links::Column::LocalId)
        .on_condition(move |_, links| {
            Condition::all()
                .add(Expr::col((links.clone(), sync_links::Column::UserId)).eq(user_id))
                .add(Expr::col((links, sync_links::Column::Resource)).eq(resource.as_str()))
        })
        .into();
    let linked = Expr::col((sync_links::Entity, sync_links::Column::Id));
    let deleted = Expr::col((E::default(), deleted));
    Ok(E::find()
        .select_only()
        .column(id)
        .join(JoinType::LeftJoin, link)
        .filter(Expr::col((E::default(), user)).eq(user_id))
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(linked.clone().is_null())
                        .add(deleted.clone().is_null()),
                )
                .add(Condition::all().add(linked.is_not_null()).add(
                    Condition::any().add(deleted.is_not_null()).add(
                        Expr::col((E::default(), version)).gt(Expr::col((
                            sync_links::Entity,
                            sync_links::Column::SyncedVersion,
                        ))),
                    ),
                )),
        )
        .into_tuple()
        .all(db)
        .await?)
}

/// The items with the given ids (tombstones included), in id order.
///
/// # Errors
/// On database failure.
pub async fn many(
    db: &impl ConnectionTrait,
    resource: Resource,
    ids: &[Uuid],
) -> ApiResult<Vec<LocalItem>> {
    let mut items = Vec::with_capacity(ids.len());
    // Well under both databases' limits on bound parameters per statement.
    for chunk in ids.chunks(500) {
        match resource {
            Resource::Calendar => items.extend(
                calendar_events::Entity::find()
                    .filter(calendar_events::Column::Id.is_in(chunk.iter().copied()))
                    .all(db)
                    .await?
                    .iter()
                    .map(event_item),
            ),
            Resource::Tasks => items.extend(
                tasks::Entity::find()
                    .filter(tasks::Column::Id.is_in(chunk.iter().copied()))
                    .all(db)
                    .await?
                    .iter()
                    .map(task_item),
            ),
        }
    }
    items.sort_by_key(|i| i.id);
    Ok(items)
}

/// One local item (tombstones included).
///
/// # Errors
/// On database failure.
pub async fn find(
    db: &impl ConnectionTrait,
    resource: Resource,
    id: Uuid,
) -> ApiResult<Option<LocalItem>> {
    Ok(match resource {
        Resource::Calendar => calendar_events::Entity::find_by_id(id)
            .one(db)
            .await?
            .as_ref()
            .map(event_item),
        Resource::Tasks => tasks::Entity::find_by_id(id)
            .one(db)
            .await?
            .as_ref()
            .map(task_item),
    })
}

/// A new local item, ready to insert (see [`insert_all`]).
#[derive(Debug)]
pub enum NewItem {
    /// A calendar event.
    Event(calendar_events::Model),
    /// A task.
    Task(tasks::Model),
}

/// A new local item (version 1) with Microsoft's fields.
pub fn prepare(user_id: Uuid, resource: Resource, f: &Fields) -> NewItem {
    let now = Utc::now().fixed_offset();
    let id = Uuid::now_v7();
    match resource {
        Resource::Calendar => {
            let mut m = calendar_events::Model {
                id,
                user_id,
                title: String::new(),
                description: None,
                location: None,
                is_all_day: false,
                start_at: None,
                end_at: None,
                time_zone: None,
                start_date: None,
                end_date: None,
                reminder_minutes: None,
                show_as: "busy".into(),
                importance: "normal".into(),
                sensitivity: "normal".into(),
                categories: "[]".into(),
                attendees: "[]".into(),
                version: 1,
                created_at: now,
                updated_at: now,
                deleted_at: None,
                recurrence: None,
                exceptions: None,
                series_start_at: None,
                series_end_at: None,
            };
            event_into_local(f, &mut m);
            NewItem::Event(m)
        }
        Resource::Tasks => {
            let mut m = tasks::Model {
                id,
                user_id,
                title: String::new(),
                description: None,
                status: "not_started".into(),
                importance: "normal".into(),
                due_date: None,
                start_date: None,
                reminder_at: None,
                completed_at: None,
                categories: "[]".into(),
                version: 1,
                created_at: now,
                updated_at: now,
                deleted_at: None,
            };
            fields::task_into_local(f, &mut m);
            NewItem::Task(m)
        }
    }
}

impl NewItem {
    /// The new item's id.
    pub fn id(&self) -> Uuid {
        match self {
            Self::Event(m) => m.id,
            Self::Task(m) => m.id,
        }
    }
}

/// Inserts new items, many rows per statement.
///
/// # Errors
/// On database failure.
pub async fn insert_all(db: &impl ConnectionTrait, items: Vec<NewItem>) -> ApiResult<()> {
    let mut events = Vec::new();
    let mut tasks_rows = Vec::new();
    for item in items {
        match item {
            NewItem::Event(m) => events.push(calendar_events::ActiveModel::from(m)),
            NewItem::Task(m) => tasks_rows.push(tasks::ActiveModel::from(m)),
        }
    }
    // Well under both databases' limits on bound parameters per statement.
    for chunk in events.chunks(400) {
        calendar_events::Entity::insert_many(chunk.to_vec())
            .exec(db)
            .await?;
    }
    for chunk in tasks_rows.chunks(400) {
        tasks::Entity::insert_many(chunk.to_vec()).exec(db).await?;
    }
    Ok(())
}

/// Creates a local item from Microsoft's fields; returns its id and version.
///
/// # Errors
/// On database failure.
pub async fn create(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    resource: Resource,
    f: &Fields,
) -> ApiResult<(Uuid, i64)> {
    let item = prepare(user_id, resource, f);
    let id = item.id();
    insert_all(db, vec![item]).await?;
    Ok((id, 1))
}

/// Writes Microsoft's fields over a local item (restoring it if it was a tombstone); returns
/// the new version, or `None` when the item is gone.
///
/// # Errors
/// On database failure.
pub async fn update(
    db: &impl ConnectionTrait,
    resource: Resource,
    id: Uuid,
    f: &Fields,
) -> ApiResult<Option<i64>> {
    let now = Utc::now().fixed_offset();
    match resource {
        Resource::Calendar => {
            let Some(mut m) = calendar_events::Entity::find_by_id(id).one(db).await? else {
                return Ok(None);
            };
            event_into_local(f, &mut m);
            m.version += 1;
            m.updated_at = now;
            m.deleted_at = None;
            let version = m.version;
            m.into_active_model().reset_all().update(db).await?;
            Ok(Some(version))
        }
        Resource::Tasks => {
            let Some(mut m) = tasks::Entity::find_by_id(id).one(db).await? else {
                return Ok(None);
            };
            fields::task_into_local(f, &mut m);
            m.version += 1;
            m.updated_at = now;
            m.deleted_at = None;
            let version = m.version;
            m.into_active_model().reset_all().update(db).await?;
            Ok(Some(version))
        }
    }
}

/// Turns a local item into a tombstone (Microsoft deleted it).
///
/// # Errors
/// On database failure.
pub async fn tombstone(db: &impl ConnectionTrait, resource: Resource, id: Uuid) -> ApiResult<()> {
    let now = Utc::now().fixed_offset();
    match resource {
        Resource::Calendar => {
            calendar_events::Entity::update_many()
                .col_expr(calendar_events::Column::DeletedAt, Some(now).into())
                .col_expr(calendar_events::Column::UpdatedAt, now.into())
                .col_expr(
                    calendar_events::Column::Version,
                    sea_orm::sea_query::Expr::col(calendar_events::Column::Version).add(1),
                )
                .filter(calendar_events::Column::Id.eq(id))
                .filter(calendar_events::Column::DeletedAt.is_null())
                .exec(db)
                .await?;
        }
        Resource::Tasks => {
            tasks::Entity::update_many()
                .col_expr(tasks::Column::DeletedAt, Some(now).into())
                .col_expr(tasks::Column::UpdatedAt, now.into())
                .col_expr(
                    tasks::Column::Version,
                    sea_orm::sea_query::Expr::col(tasks::Column::Version).add(1),
                )
                .filter(tasks::Column::Id.eq(id))
                .filter(tasks::Column::DeletedAt.is_null())
                .exec(db)
                .await?;
        }
    }
    Ok(())
}
