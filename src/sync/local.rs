//! The engine's access to the local side: every item of a user (tombstones included) as
//! normalized fields, and writes that bump the version as every local change does.

use chrono::{DateTime, Datelike, Utc};
use entity::{calendar_events, sync_links, tasks};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    JoinType, QueryFilter, QuerySelect, TransactionSession, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::{
    fields::{self, Fields},
    recurrence,
};
use crate::domain::links::Resource;
use crate::{
    domain::changes::{self, ItemChange, ItemKind, Origin},
    error::ApiResult,
};

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
    /// What identifies the Microsoft item it was linked to, kept on the item itself so that it
    /// is matched again when its link is forgotten (a purge, a list switched away and back).
    pub keys: RemoteKeys,
}

/// What identifies, on a local item, the Microsoft items it was linked to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteKeys {
    /// An event's Graph `iCalUId`.
    pub ical_uid: Option<String>,
    /// A task's id in each To Do list it was synchronized with, by list id.
    pub todo_ids: std::collections::BTreeMap<String, String>,
    /// An event's organizer as Microsoft names it (JSON `{"name", "email"}`).
    pub organizer: Option<String>,
    /// Whether the user organizes the event (true for one made here).
    pub is_organizer: bool,
    /// The user's own response as Microsoft has it (`accepted`, `not_responded`...).
    pub response: Option<String>,
    /// An answer given here that waits to be sent (JSON of the API's `EventResponse`).
    pub response_pending: Option<String>,
    /// What Microsoft says of a meeting beyond its fields.
    pub meeting: MeetingDetails,
}

/// What Microsoft says of a meeting that is not one of its fields: it changes there alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeetingDetails {
    /// The attendees' responses (JSON `[{"email", "response", "time"}]`).
    pub attendee_responses: Option<String>,
    /// Whether the organizer cancelled it.
    pub is_cancelled: bool,
    /// Its online meeting's join URL.
    pub online_meeting_url: Option<String>,
}

impl MeetingDetails {
    /// The details of a Graph event.
    fn of(remote: &serde_json::Value) -> Self {
        let responses: Vec<serde_json::Value> = remote
            .get("attendees")
            .and_then(serde_json::Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|a| {
                        let email = a.pointer("/emailAddress/address")?.as_str()?.to_lowercase();
                        let response = snake_case(a.pointer("/status/response")?.as_str()?);
                        // Graph's time of an attendee who has not answered is year 1.
                        let time = a
                            .pointer("/status/time")
                            .and_then(serde_json::Value::as_str)
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                            .filter(|t| t.year() > 1)
                            .map(|t| t.with_timezone(&Utc));
                        Some(
                            serde_json::json!({"email": email, "response": response, "time": time}),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            attendee_responses: (!responses.is_empty())
                .then(|| serde_json::Value::Array(responses).to_string()),
            is_cancelled: remote
                .get("isCancelled")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            online_meeting_url: remote
                .pointer("/onlineMeeting/joinUrl")
                .or_else(|| remote.get("onlineMeetingUrl"))
                .and_then(serde_json::Value::as_str)
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
        }
    }
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
        keys: RemoteKeys {
            ical_uid: m.ical_uid.clone(),
            todo_ids: Default::default(),
            organizer: m.organizer.clone(),
            is_organizer: m.is_organizer,
            response: m.response.clone(),
            response_pending: m.response_pending.clone(),
            meeting: MeetingDetails {
                attendee_responses: m.attendee_responses.clone(),
                is_cancelled: m.is_cancelled,
                online_meeting_url: m.online_meeting_url.clone(),
            },
        },
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
        keys: RemoteKeys {
            ical_uid: None,
            todo_ids: m
                .todo_ids
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default(),
            organizer: None,
            is_organizer: true,
            response: None,
            response_pending: None,
            meeting: MeetingDetails::default(),
        },
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
            let mut ids = unsynced_of::<calendar_events::Entity>(
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
            .await?;
            // An answer to a meeting waits until Microsoft took it.
            let answering: Vec<Uuid> = calendar_events::Entity::find()
                .select_only()
                .column(calendar_events::Column::Id)
                .filter(calendar_events::Column::UserId.eq(user_id))
                .filter(calendar_events::Column::ResponsePending.is_not_null())
                .filter(calendar_events::Column::DeletedAt.is_null())
                .into_tuple()
                .all(db)
                .await?;
            for id in answering {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Ok(ids)
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
#[expect(
    clippy::large_enum_variant,
    reason = "built and inserted by the hundred in one pull: boxing each row buys nothing"
)]
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
            let mut m = crate::domain::calendar_events::blank(id, user_id);
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
                deleted_by: None,
                deleted_by_run: None,
                todo_ids: None,
            };
            fields::task_into_local(f, &mut m);
            NewItem::Task(m)
        }
    }
}

impl NewItem {
    /// Records on the new item what identifies the Microsoft item it comes from.
    pub fn remember(&mut self, list: Option<&str>, remote: &serde_json::Value) {
        match self {
            Self::Event(m) => {
                m.ical_uid = ical_uid_of(remote);
                m.organizer = organizer_of(remote);
                m.is_organizer = is_organizer_of(remote);
                m.response = response_of(remote);
                let meeting = MeetingDetails::of(remote);
                m.attendee_responses = meeting.attendee_responses;
                m.is_cancelled = meeting.is_cancelled;
                m.online_meeting_url = meeting.online_meeting_url;
            }
            Self::Task(m) => {
                if let (Some(list), Some(id)) =
                    (list, remote.get("id").and_then(serde_json::Value::as_str))
                {
                    let ids = std::collections::BTreeMap::from([(list, id)]);
                    m.todo_ids = serde_json::to_string(&ids).ok();
                }
            }
        }
    }

    /// The new item's id.
    pub fn id(&self) -> Uuid {
        match self {
            Self::Event(m) => m.id,
            Self::Task(m) => m.id,
        }
    }
}

fn ical_uid_of(remote: &serde_json::Value) -> Option<String> {
    remote
        .get("iCalUId")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

/// The organizer of a Graph event as kept here: `{"name", "email"}` (the address lower-cased).
fn organizer_of(remote: &serde_json::Value) -> Option<String> {
    let address = remote.pointer("/organizer/emailAddress")?;
    let email = address.get("address")?.as_str()?.to_lowercase();
    let name = address.get("name").and_then(serde_json::Value::as_str);
    Some(serde_json::json!({"name": name, "email": email}).to_string())
}

/// The user's own response to a Graph event, snake-cased (`tentativelyAccepted` →
/// `tentatively_accepted`).
fn response_of(remote: &serde_json::Value) -> Option<String> {
    Some(snake_case(
        remote.pointer("/responseStatus/response")?.as_str()?,
    ))
}

/// Graph's camel-cased enumeration value snake-cased.
fn snake_case(response: &str) -> String {
    let mut out = String::with_capacity(response.len() + 4);
    for c in response.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether the user organizes a Graph event (an event that does not say is the user's own).
fn is_organizer_of(remote: &serde_json::Value) -> bool {
    remote
        .get("isOrganizer")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(true)
}

/// Records on a local item what identifies the Microsoft item it is now linked to, and who
/// organizes it (its version unchanged: this is no change of the item).
///
/// # Errors
/// On database failure.
pub async fn remember(
    db: &impl ConnectionTrait,
    item: &LocalItem,
    resource: Resource,
    list: Option<&str>,
    remote: &serde_json::Value,
) -> ApiResult<()> {
    match resource {
        Resource::Calendar => {
            let uid = ical_uid_of(remote).or_else(|| item.keys.ical_uid.clone());
            let organizer = organizer_of(remote).or_else(|| item.keys.organizer.clone());
            let is_organizer = is_organizer_of(remote);
            let response = response_of(remote).or_else(|| item.keys.response.clone());
            let meeting = MeetingDetails::of(remote);
            if uid == item.keys.ical_uid
                && organizer == item.keys.organizer
                && is_organizer == item.keys.is_organizer
                && response == item.keys.response
                && meeting == item.keys.meeting
            {
                return Ok(());
            }
            calendar_events::Entity::update_many()
                .col_expr(calendar_events::Column::IcalUid, uid.into())
                .col_expr(calendar_events::Column::Organizer, organizer.into())
                .col_expr(calendar_events::Column::IsOrganizer, is_organizer.into())
                .col_expr(calendar_events::Column::Response, response.into())
                .col_expr(
                    calendar_events::Column::AttendeeResponses,
                    meeting.attendee_responses.into(),
                )
                .col_expr(
                    calendar_events::Column::IsCancelled,
                    meeting.is_cancelled.into(),
                )
                .col_expr(
                    calendar_events::Column::OnlineMeetingUrl,
                    meeting.online_meeting_url.into(),
                )
                .filter(calendar_events::Column::Id.eq(item.id))
                .exec(db)
                .await?;
        }
        Resource::Tasks => {
            let (Some(list), Some(id)) =
                (list, remote.get("id").and_then(serde_json::Value::as_str))
            else {
                return Ok(());
            };
            if item.keys.todo_ids.get(list).map(String::as_str) == Some(id) {
                return Ok(());
            }
            let mut ids = item.keys.todo_ids.clone();
            ids.insert(list.to_owned(), id.to_owned());
            tasks::Entity::update_many()
                .col_expr(
                    tasks::Column::TodoIds,
                    serde_json::to_string(&ids).ok().into(),
                )
                .filter(tasks::Column::Id.eq(item.id))
                .exec(db)
                .await?;
        }
    }
    Ok(())
}

/// Records that Microsoft took the answer pending on an event: it becomes the user's response
/// (the version unchanged), unless another answer was given meanwhile.
///
/// # Errors
/// On database failure.
pub async fn answered(
    db: &impl ConnectionTrait,
    item: &LocalItem,
    response: &str,
) -> ApiResult<()> {
    calendar_events::Entity::update_many()
        .col_expr(
            calendar_events::Column::ResponsePending,
            Option::<String>::None.into(),
        )
        .col_expr(calendar_events::Column::Response, Some(response).into())
        .filter(calendar_events::Column::Id.eq(item.id))
        .filter(calendar_events::Column::ResponsePending.eq(item.keys.response_pending.clone()))
        .exec(db)
        .await?;
    Ok(())
}

/// Takes the HTML Microsoft answered a write of an event's description with (Graph answers a
/// text body as HTML), unless the event changed meanwhile. The version stays: the description
/// reads the same, and now both sides hold it alike, so that the next edit of another field
/// does not write the body again.
///
/// # Errors
/// On database failure.
pub async fn adopt_description_html(
    db: &impl ConnectionTrait,
    item: &LocalItem,
    html: &str,
) -> ApiResult<()> {
    calendar_events::Entity::update_many()
        .col_expr(calendar_events::Column::DescriptionHtml, Some(html).into())
        .filter(calendar_events::Column::Id.eq(item.id))
        .filter(calendar_events::Column::Version.eq(item.version))
        .exec(db)
        .await?;
    Ok(())
}

/// Inserts new items, many rows per statement.
///
/// # Errors
/// On database failure.
pub async fn insert_all(db: &impl ConnectionTrait, items: Vec<NewItem>) -> ApiResult<()> {
    let mut events = Vec::new();
    let mut tasks_rows = Vec::new();
    let mut created: std::collections::BTreeMap<(Uuid, bool), Vec<(Uuid, i64)>> =
        std::collections::BTreeMap::new();
    for item in items {
        match item {
            NewItem::Event(m) => {
                created
                    .entry((m.user_id, true))
                    .or_default()
                    .push((m.id, m.version));
                events.push(calendar_events::ActiveModel::from(m));
            }
            NewItem::Task(m) => {
                created
                    .entry((m.user_id, false))
                    .or_default()
                    .push((m.id, m.version));
                tasks_rows.push(tasks::ActiveModel::from(m));
            }
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
    for ((user_id, is_event), items) in created {
        let kind = if is_event {
            ItemKind::CalendarEvent
        } else {
            ItemKind::Task
        };
        let (change, origin) = (ItemChange::Created, Origin::Microsoft);
        changes::items(db, kind, change, user_id, &items, origin).await?;
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

/// Who deleted an item: a person here, or Microsoft (a run applied the deletion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletedBy {
    /// Deleted through the API.
    Local,
    /// Deleted in Microsoft, applied by a run.
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
}

/// What became of a guarded write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Written: the item's new version.
    At(i64),
    /// Not written: the item changed (or went) since the version the write was decided on.
    Changed,
}

/// Writes fields over a local item (restoring it if it was a tombstone) provided it is still
/// at version `expected`: a compare-and-set, so that a change made here meanwhile (through
/// the API, while a run was deciding) is never overwritten. Bumps the version.
///
/// # Errors
/// On database failure.
pub async fn update_if(
    db: &(impl ConnectionTrait + TransactionTrait),
    resource: Resource,
    id: Uuid,
    expected: i64,
    f: &Fields,
    origin: Origin,
) -> ApiResult<Written> {
    let now = Utc::now().fixed_offset();
    // It reads before it writes: on SQLite, an immediate transaction, so that the write
    // waits for its turn instead of failing on a snapshot another connection overtook.
    let tx = crate::db::begin_write(db).await?;
    let db = &tx;
    let (was_deleted, owner);
    let result = match resource {
        Resource::Calendar => {
            let Some(mut m) = calendar_events::Entity::find_by_id(id).one(db).await? else {
                return Ok(Written::Changed);
            };
            if m.version != expected {
                return Ok(Written::Changed);
            }
            was_deleted = m.deleted_at.is_some();
            owner = m.user_id;
            event_into_local(f, &mut m);
            m.version = expected + 1;
            m.updated_at = now;
            m.deleted_at = None;
            m.deleted_by = None;
            m.deleted_by_run = None;
            let mut model = m.into_active_model().reset_all();
            model.id = sea_orm::ActiveValue::NotSet;
            calendar_events::Entity::update_many()
                .set(model)
                .filter(calendar_events::Column::Id.eq(id))
                .filter(calendar_events::Column::Version.eq(expected))
                .exec(db)
                .await?
        }
        Resource::Tasks => {
            let Some(mut m) = tasks::Entity::find_by_id(id).one(db).await? else {
                return Ok(Written::Changed);
            };
            if m.version != expected {
                return Ok(Written::Changed);
            }
            was_deleted = m.deleted_at.is_some();
            owner = m.user_id;
            fields::task_into_local(f, &mut m);
            m.version = expected + 1;
            m.updated_at = now;
            m.deleted_at = None;
            m.deleted_by = None;
            m.deleted_by_run = None;
            let mut model = m.into_active_model().reset_all();
            model.id = sea_orm::ActiveValue::NotSet;
            tasks::Entity::update_many()
                .set(model)
                .filter(tasks::Column::Id.eq(id))
                .filter(tasks::Column::Version.eq(expected))
                .exec(db)
                .await?
        }
    };
    if result.rows_affected != 1 {
        return Ok(Written::Changed);
    }
    let change = if was_deleted {
        ItemChange::Restored
    } else {
        ItemChange::Updated
    };
    changes::item(
        db,
        kind_of(resource),
        change,
        owner,
        id,
        expected + 1,
        origin,
    )
    .await?;
    tx.commit().await?;
    Ok(Written::At(expected + 1))
}

/// The change log's name for the items of `resource`.
fn kind_of(resource: Resource) -> ItemKind {
    match resource {
        Resource::Calendar => ItemKind::CalendarEvent,
        Resource::Tasks => ItemKind::Task,
    }
}

/// Writes fields over a local item whatever its version, as a person editing it here would
/// (a conflict resolved through the API); returns the new version, or `None` when the item is
/// gone.
///
/// # Errors
/// On database failure.
pub async fn update(
    db: &(impl ConnectionTrait + TransactionTrait),
    resource: Resource,
    id: Uuid,
    f: &Fields,
) -> ApiResult<Option<i64>> {
    loop {
        let Some(current) = find(db, resource, id).await? else {
            return Ok(None);
        };
        let written = update_if(db, resource, id, current.version, f, Origin::Api).await?;
        if let Written::At(version) = written {
            return Ok(Some(version));
        }
    }
}

/// Turns a local item into a tombstone provided it is still at version `expected` and not
/// deleted (a compare-and-set, see [`update_if`]); `run` is the run that applied a deletion
/// made in Microsoft, so that its deletions can be restored together.
///
/// # Errors
/// On database failure.
pub async fn tombstone_if(
    db: &(impl ConnectionTrait + TransactionTrait),
    resource: Resource,
    id: Uuid,
    expected: i64,
    by: DeletedBy,
    run: Option<Uuid>,
) -> ApiResult<Written> {
    let now = Utc::now().fixed_offset();
    let tx = db.begin().await?;
    let db = &tx;
    let rows = match resource {
        Resource::Calendar => {
            use calendar_events::Column as C;
            calendar_events::Entity::update_many()
                .col_expr(C::DeletedAt, Some(now).into())
                .col_expr(C::DeletedBy, Some(by.as_str()).into())
                .col_expr(C::DeletedByRun, run.into())
                .col_expr(C::UpdatedAt, now.into())
                .col_expr(C::Version, (expected + 1).into())
                .filter(C::Id.eq(id))
                .filter(C::Version.eq(expected))
                .filter(C::DeletedAt.is_null())
                .exec(db)
                .await?
                .rows_affected
        }
        Resource::Tasks => {
            use tasks::Column as C;
            tasks::Entity::update_many()
                .col_expr(C::DeletedAt, Some(now).into())
                .col_expr(C::DeletedBy, Some(by.as_str()).into())
                .col_expr(C::DeletedByRun, run.into())
                .col_expr(C::UpdatedAt, now.into())
                .col_expr(C::Version, (expected + 1).into())
                .filter(C::Id.eq(id))
                .filter(C::Version.eq(expected))
                .filter(C::DeletedAt.is_null())
                .exec(db)
                .await?
                .rows_affected
        }
    };
    if rows != 1 {
        return Ok(Written::Changed);
    }
    let owner: Option<Uuid> = match resource {
        Resource::Calendar => {
            calendar_events::Entity::find_by_id(id)
                .select_only()
                .column(calendar_events::Column::UserId)
                .into_tuple()
                .one(db)
                .await?
        }
        Resource::Tasks => {
            tasks::Entity::find_by_id(id)
                .select_only()
                .column(tasks::Column::UserId)
                .into_tuple()
                .one(db)
                .await?
        }
    };
    let Some(owner) = owner else {
        return Ok(Written::Changed);
    };
    let origin = match by {
        DeletedBy::Local => Origin::Api,
        DeletedBy::Microsoft => Origin::Microsoft,
    };
    let change = ItemChange::Deleted;
    changes::item(
        db,
        kind_of(resource),
        change,
        owner,
        id,
        expected + 1,
        origin,
    )
    .await?;
    tx.commit().await?;
    Ok(Written::At(expected + 1))
}

/// Turns a local item into a tombstone whatever its version, as a person deleting it here
/// would (a conflict resolved as a deletion). Nothing happens to one already deleted.
///
/// # Errors
/// On database failure.
pub async fn tombstone(
    db: &(impl ConnectionTrait + TransactionTrait),
    resource: Resource,
    id: Uuid,
) -> ApiResult<()> {
    while let Some(current) = find(db, resource, id).await? {
        if current.deleted {
            break;
        }
        let written =
            tombstone_if(db, resource, id, current.version, DeletedBy::Local, None).await?;
        if written != Written::Changed {
            break;
        }
    }
    Ok(())
}
