//! Storing and finding events: lists with range filters, optimistic updates, tombstones.

use chrono::{DateTime, Days, NaiveDate, Timelike, Utc};
use entity::calendar_events;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{EventData, UpdateCalendarEvent};
use crate::{
    domain::{
        access::not_found,
        etag,
        item_fields::date_to_stored,
        pagination::{PageParams, PageRequest},
    },
    error::{ApiError, ApiResult},
};

/// Query of `GET /api/v1/users/{id}/calendar-events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventListParams {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
    /// Start of a time range (RFC 3339): only events overlapping `[from, to)`, that is ending
    /// after `from` (an event without duration: starting at or after it). All-day events span
    /// their dates from midnight UTC to the midnight after their last day.
    pub from: Option<DateTime<Utc>>,
    /// End of the time range (RFC 3339, excluded): only events starting before `to`. A range
    /// whose `from` is after its `to` is empty.
    pub to: Option<DateTime<Utc>>,
    /// Only events changed at or after this instant (RFC 3339).
    pub updated_since: Option<DateTime<Utc>>,
}

/// Validated list filters.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventFilter {
    /// Events overlapping `[from, to)`.
    pub from: Option<DateTime<Utc>>,
    /// See `from`.
    pub to: Option<DateTime<Utc>>,
    /// Events updated at or after this instant.
    pub updated_since: Option<DateTime<Utc>>,
}

impl EventListParams {
    /// Validates the query.
    ///
    /// # Errors
    /// 400 `invalid_query` or `invalid_cursor` for a bad page.
    pub fn parse(&self) -> ApiResult<(EventFilter, PageRequest)> {
        let page = PageParams {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .parse()?;
        let filter = EventFilter {
            from: self.from,
            to: self.to,
            updated_since: self.updated_since,
        };
        Ok((filter, page))
    }
}

/// The first date whose midnight (UTC) is at or after `instant`.
fn first_day_from(instant: DateTime<Utc>) -> Option<NaiveDate> {
    let date = instant.date_naive();
    if instant.num_seconds_from_midnight() == 0 && instant.nanosecond() == 0 {
        Some(date)
    } else {
        date.checked_add_days(Days::new(1))
    }
}

/// The condition "overlaps `[from, to)`": a timed event from its start to its end (an event
/// without duration counts at its start), an all-day event from the midnight (UTC) of its
/// first day to the midnight after its last.
fn overlaps(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Condition {
    use calendar_events::Column as C;
    let mut timed = Condition::all().add(C::IsAllDay.eq(false));
    let mut all_day = Condition::all().add(C::IsAllDay.eq(true));
    if let Some(to) = to {
        timed = timed.add(C::StartAt.lt(to.fixed_offset()));
        // start_date at midnight < to  <=>  start_date < the first day from `to`.
        all_day = match first_day_from(to) {
            Some(day) => all_day.add(C::StartDate.lt(date_to_stored(day))),
            None => all_day,
        };
    }
    if let Some(from) = from {
        timed = timed.add(
            Condition::any()
                .add(C::EndAt.gt(from.fixed_offset()))
                .add(C::StartAt.gte(from.fixed_offset())),
        );
        // The midnight after end_date > from  <=>  end_date >= the day of `from`.
        all_day = all_day.add(C::EndDate.gte(date_to_stored(from.date_naive())));
    }
    Condition::any().add(timed).add(all_day)
}

/// Lists a user's events (not deleted) in id order. A range whose `from` is after its `to`
/// is empty: nothing overlaps it.
///
/// # Errors
/// On database failure.
pub async fn list(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    filter: EventFilter,
    page: PageRequest,
) -> ApiResult<Vec<calendar_events::Model>> {
    use calendar_events::Column as C;
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        return Ok(Vec::new());
    }
    let mut query = calendar_events::Entity::find()
        .filter(C::UserId.eq(user_id))
        .filter(C::DeletedAt.is_null())
        .order_by_asc(C::Id);
    if filter.from.is_some() || filter.to.is_some() {
        query = query.filter(overlaps(filter.from, filter.to));
    }
    if let Some(since) = filter.updated_since {
        query = query.filter(C::UpdatedAt.gte(since.fixed_offset()));
    }
    if let Some(after) = page.after {
        query = query.filter(C::Id.gt(after));
    }
    Ok(query.limit(page.limit + 1).all(db).await?)
}

/// Finds one of a user's events, tombstones included (what the sync engine needs to send a
/// deletion).
///
/// # Errors
/// On database failure.
pub async fn find_including_deleted(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> ApiResult<Option<calendar_events::Model>> {
    Ok(calendar_events::Entity::find_by_id(id)
        .filter(calendar_events::Column::UserId.eq(user_id))
        .one(db)
        .await?)
}

/// Finds one of a user's events that is not deleted, or 404.
///
/// # Errors
/// 404 when there is no such event or it is deleted.
pub async fn get(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> ApiResult<calendar_events::Model> {
    find_including_deleted(db, user_id, id)
        .await?
        .filter(|e| e.deleted_at.is_none())
        .ok_or_else(|| not_found("calendar event"))
}

/// Stores a new event (version 1).
///
/// # Errors
/// On database failure.
pub async fn create(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    data: &EventData,
) -> ApiResult<calendar_events::Model> {
    let now = Utc::now().fixed_offset();
    let mut model = calendar_events::ActiveModel {
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

/// Stores new fields for an event, bumping its version, provided it is still at the version
/// read and not deleted. Unchanged fields change nothing (same version).
///
/// # Errors
/// 412 when the event changed meanwhile; 404 when it was deleted meanwhile.
pub async fn update(
    db: &impl ConnectionTrait,
    current: calendar_events::Model,
    data: &EventData,
) -> ApiResult<calendar_events::Model> {
    if EventData::from_model(&current)? == *data {
        return Ok(current);
    }
    let mut model = calendar_events::ActiveModel {
        version: Set(current.version + 1),
        updated_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    };
    data.write_to(&mut model)?;
    let result = calendar_events::Entity::update_many()
        .set(model)
        .filter(calendar_events::Column::Id.eq(current.id))
        .filter(calendar_events::Column::Version.eq(current.version))
        .filter(calendar_events::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        get(db, current.user_id, current.id).await?;
        return Err(ApiError::PreconditionFailed);
    }
    get(db, current.user_id, current.id).await
}

/// Deletes an event as a tombstone: `deleted_at` set, version bumped, the row kept.
///
/// # Errors
/// 412 when the event changed meanwhile; 404 when it was deleted meanwhile.
pub async fn delete(db: &impl ConnectionTrait, current: &calendar_events::Model) -> ApiResult<()> {
    let now = Utc::now().fixed_offset();
    let result = calendar_events::Entity::update_many()
        .col_expr(calendar_events::Column::DeletedAt, Some(now).into())
        .col_expr(calendar_events::Column::UpdatedAt, now.into())
        .col_expr(
            calendar_events::Column::Version,
            (current.version + 1).into(),
        )
        .filter(calendar_events::Column::Id.eq(current.id))
        .filter(calendar_events::Column::Version.eq(current.version))
        .filter(calendar_events::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        get(db, current.user_id, current.id).await?;
        return Err(ApiError::PreconditionFailed);
    }
    Ok(())
}

/// How many times a change without `If-Match` starts over when the event changes under it.
const ATTEMPTS: usize = 4;

/// Applies a merge patch to one of a user's events: validated against the event as read,
/// then `If-Match` checked (RFC 9110 13.2.1: after the request's own checks), then stored if
/// the event did not change meanwhile. Without `If-Match`, a concurrent change makes it start
/// over with the new version rather than fail: the caller did not ask for a precondition.
///
/// # Errors
/// 404 when there is no such event (or it is deleted); 422 for an invalid patch; 400 for a
/// malformed `If-Match`; 412 when `If-Match` does not match.
pub async fn patch_event(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    patch: UpdateCalendarEvent,
    if_match: Option<&str>,
) -> ApiResult<calendar_events::Model> {
    for attempt in 1..=ATTEMPTS {
        let current = get(db, user_id, id).await?;
        let data = EventData::from_model(&current)?.patched(patch.clone())?;
        etag::check(if_match, current.version)?;
        match update(db, current, &data).await {
            Err(ApiError::PreconditionFailed) if if_match.is_none() && attempt < ATTEMPTS => {}
            other => return other,
        }
    }
    Err(ApiError::PreconditionFailed)
}

/// Deletes one of a user's events as a tombstone, honouring `If-Match`; without it, a
/// concurrent change makes it start over rather than fail.
///
/// # Errors
/// 404 when there is no such event (or it is already deleted); 400 for a malformed
/// `If-Match`; 412 when it does not match.
pub async fn delete_event(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    if_match: Option<&str>,
) -> ApiResult<()> {
    for attempt in 1..=ATTEMPTS {
        let current = get(db, user_id, id).await?;
        etag::check(if_match, current.version)?;
        match delete(db, &current).await {
            Err(ApiError::PreconditionFailed) if if_match.is_none() && attempt < ATTEMPTS => {}
            other => return other,
        }
    }
    Err(ApiError::PreconditionFailed)
}
