//! Storing and finding events: lists with range filters, optimistic updates, tombstones and
//! their restoration from the recycle bin.

use chrono::{DateTime, Days, NaiveDate, Timelike, Utc};
use entity::calendar_events;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait, prelude::DateTimeWithTimeZone,
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{EventData, OccurrenceException, UpdateCalendarEvent, listing::OccurrenceKey, series};
use crate::{
    domain::{
        access::not_found,
        changes::ItemKind,
        etag,
        item_fields::date_to_stored,
        pagination::{PageParams, PageRequest},
        recycle_bin::Retention,
        versioned::{self, Item},
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
    /// The `next_cursor` of the previous page (of the same listing: an expanded listing's
    /// cursors name occurrences).
    #[param(pattern = "^[A-Za-z0-9_-]{22,160}$")]
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
    /// List occurrences rather than events (requires `from` and `to`, at most three years
    /// apart): the occurrences of every series overlapping the range, modified ones with their
    /// own fields, cancelled ones left out, and single events, all in start order (then event
    /// id); `limit` and `cursor` count occurrences. An occurrence that shares its series'
    /// description or attendees leaves them out (named in `occurrence.from_series`): read
    /// them from the series.
    pub expand: Option<bool>,
    /// `true`: list the recycle bin instead, the deleted events (deleted within
    /// `deleted_retention_days`), each with `deleted_at` and `deleted_by`. It combines with
    /// every other filter (`updated_since` then also matches the deletion, which changes an
    /// event). Default `false`: events that are not deleted.
    pub deleted: Option<bool>,
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
    /// Whether series are expanded into their occurrences.
    pub expand: bool,
    /// `Some`: the recycle bin (deleted events this retention keeps) rather than live events.
    pub deleted: Option<Retention>,
}

/// Longest range an expanded listing covers (three years).
const MAX_EXPANDED_DAYS: i64 = 1096;

/// A validated page of a listing.
#[derive(Clone, Debug)]
pub enum ListPage {
    /// Events in id order.
    Events(PageRequest),
    /// The occurrences of an expanded listing, in start order.
    Occurrences {
        /// Page size.
        limit: u64,
        /// The last occurrence of the previous page.
        after: Option<OccurrenceKey>,
    },
}

impl EventListParams {
    /// Validates the query; `retention` is the recycle bin's, for `deleted=true`.
    ///
    /// # Errors
    /// 400 `invalid_query` or `invalid_cursor` for a bad page.
    pub fn parse(&self, retention: Retention) -> ApiResult<(EventFilter, ListPage)> {
        let expand = self.expand.unwrap_or(false);
        let page = if expand {
            let limit = PageParams {
                limit: self.limit,
                cursor: None,
            }
            .parse()?
            .limit;
            let after = self
                .cursor
                .as_deref()
                .map(OccurrenceKey::parse)
                .transpose()?;
            ListPage::Occurrences { limit, after }
        } else {
            ListPage::Events(
                PageParams {
                    limit: self.limit,
                    cursor: self.cursor.clone(),
                }
                .parse()?,
            )
        };
        if expand {
            match (self.from, self.to) {
                (Some(from), Some(to)) if to - from > chrono::Duration::days(MAX_EXPANDED_DAYS) => {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!(
                            "`expand=true` lists at most {MAX_EXPANDED_DAYS} days: narrow `from` and `to`"
                        ),
                    ));
                }
                (Some(_), Some(_)) => {}
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        "`expand=true` needs both `from` and `to`",
                    ));
                }
            }
        }
        let filter = EventFilter {
            from: self.from,
            to: self.to,
            updated_since: self.updated_since,
            expand,
            deleted: self.deleted.unwrap_or(false).then_some(retention),
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
/// first day to the midnight after its last, a series over the span of its occurrences.
fn overlaps(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Condition {
    use calendar_events::Column as C;
    let mut series = Condition::all().add(C::Recurrence.is_not_null());
    if let Some(to) = to {
        series = series.add(C::SeriesStartAt.lt(to.fixed_offset()));
    }
    if let Some(from) = from {
        series = series.add(
            Condition::any()
                .add(C::SeriesEndAt.is_null())
                .add(C::SeriesEndAt.gt(from.fixed_offset()))
                .add(C::SeriesStartAt.gte(from.fixed_offset())),
        );
    }
    let mut timed = Condition::all()
        .add(C::Recurrence.is_null())
        .add(C::IsAllDay.eq(false));
    let mut all_day = Condition::all()
        .add(C::Recurrence.is_null())
        .add(C::IsAllDay.eq(true));
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
    Condition::any().add(timed).add(all_day).add(series)
}

/// The query of a user's events in id order after `after`: those not deleted, or with
/// `filter.deleted` those in the recycle bin; `None` for a range whose `from` is after its
/// `to` (nothing overlaps it).
pub(super) fn events_query(
    user_id: Uuid,
    filter: EventFilter,
    after: Option<Uuid>,
) -> Option<sea_orm::Select<calendar_events::Entity>> {
    use calendar_events::Column as C;
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        return None;
    }
    let mut query = calendar_events::Entity::find()
        .filter(C::UserId.eq(user_id))
        .order_by_asc(C::Id);
    query = match filter.deleted {
        None => query.filter(C::DeletedAt.is_null()),
        Some(Retention { cutoff: None }) => query.filter(C::DeletedAt.is_not_null()),
        Some(Retention {
            cutoff: Some(cutoff),
        }) => query.filter(C::DeletedAt.gte(cutoff.fixed_offset())),
    };
    if filter.from.is_some() || filter.to.is_some() {
        query = query.filter(overlaps(filter.from, filter.to));
    }
    if let Some(since) = filter.updated_since {
        query = query.filter(C::UpdatedAt.gte(since.fixed_offset()));
    }
    if let Some(after) = after {
        query = query.filter(C::Id.gt(after));
    }
    Some(query)
}

impl Item for calendar_events::Entity {
    const KIND: ItemKind = ItemKind::CalendarEvent;
    const NOUN: &'static str = "calendar event";
    const ID: calendar_events::Column = calendar_events::Column::Id;
    const USER_ID: calendar_events::Column = calendar_events::Column::UserId;
    const VERSION: calendar_events::Column = calendar_events::Column::Version;
    const CREATED_AT: calendar_events::Column = calendar_events::Column::CreatedAt;
    const UPDATED_AT: calendar_events::Column = calendar_events::Column::UpdatedAt;
    const DELETED_AT: calendar_events::Column = calendar_events::Column::DeletedAt;
    const DELETED_BY: calendar_events::Column = calendar_events::Column::DeletedBy;
    const DELETED_BY_RUN: calendar_events::Column = calendar_events::Column::DeletedByRun;

    fn id(row: &calendar_events::Model) -> Uuid {
        row.id
    }
    fn user_id(row: &calendar_events::Model) -> Uuid {
        row.user_id
    }
    fn version(row: &calendar_events::Model) -> i64 {
        row.version
    }
    fn deleted_at(row: &calendar_events::Model) -> Option<DateTimeWithTimeZone> {
        row.deleted_at
    }
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
    versioned::find_including_deleted::<calendar_events::Entity>(db, user_id, id).await
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
    versioned::get::<calendar_events::Entity>(db, user_id, id).await
}

/// Finds one of a user's events in the recycle bin (deleted, and kept by `retention`), or
/// 404.
///
/// # Errors
/// 404 when there is no such event, it is not deleted or it is past retention.
pub async fn get_deleted(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    retention: Retention,
) -> ApiResult<calendar_events::Model> {
    versioned::get_deleted::<calendar_events::Entity>(db, user_id, id, retention).await
}

/// Stores a new event (version 1).
///
/// # Errors
/// On database failure.
pub async fn create(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    data: &EventData,
) -> ApiResult<calendar_events::Model> {
    let mut model = calendar_events::ActiveModel::default();
    data.write_to(&mut model)?;
    versioned::create::<calendar_events::Entity>(db, user_id, model).await
}

/// Stores new fields for an event, bumping its version, provided it is still at the version
/// read and not deleted. Unchanged fields change nothing (same version).
///
/// # Errors
/// 412 when the event changed meanwhile; 404 when it was deleted meanwhile.
pub async fn update(
    db: &(impl ConnectionTrait + TransactionTrait),
    current: calendar_events::Model,
    data: &EventData,
) -> ApiResult<calendar_events::Model> {
    if EventData::from_model(&current)? == *data {
        return Ok(current);
    }
    let mut model = calendar_events::ActiveModel::default();
    data.write_to(&mut model)?;
    versioned::update::<calendar_events::Entity>(db, &current, model).await
}

/// Deletes an event as a tombstone deleted here (`deleted_by` `local`): `deleted_at` set,
/// version bumped, the row kept.
///
/// # Errors
/// 412 when the event changed meanwhile; 404 when it was deleted meanwhile.
pub async fn delete(
    db: &(impl ConnectionTrait + TransactionTrait),
    current: &calendar_events::Model,
) -> ApiResult<()> {
    versioned::delete::<calendar_events::Entity>(db, current).await
}

/// Applies a merge patch to one of a user's events: validated against the event as read,
/// then `If-Match` checked (RFC 9110 13.2.1: after the request's own checks), then stored if
/// the event did not change meanwhile. Without `If-Match`, a concurrent change makes it start
/// over with the new version rather than fail: the caller did not ask for a precondition.
///
/// # Errors
/// 404 when there is no such event (or it is deleted); 422 for an invalid patch; 409
/// `not_organizer` for a change of a meeting someone else organizes; 400 for a malformed
/// `If-Match`; 412 when `If-Match` does not match.
pub async fn patch_event(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    patch: UpdateCalendarEvent,
    if_match: Option<&str>,
) -> ApiResult<calendar_events::Model> {
    change_event(db, user_id, id, if_match, |current| {
        current.patched(patch.clone())
    })
    .await
}

/// Deletes one of a user's events as a tombstone (see [`versioned::delete_checked`]).
///
/// # Errors
/// 404 when there is no such event (or it is already deleted); 400 for a malformed
/// `If-Match`; 412 when it does not match.
pub async fn delete_event(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    if_match: Option<&str>,
) -> ApiResult<()> {
    versioned::delete_checked::<calendar_events::Entity>(db, user_id, id, if_match).await
}

/// Restores one of a user's events from the recycle bin (see [`versioned::restore`]).
///
/// # Errors
/// 404 when there is no such event or it is past retention; 409 `not_deleted` when it is not
/// deleted; 400 for a malformed `If-Match`; 412 when it does not match.
pub async fn restore_event(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    if_match: Option<&str>,
    retention: Retention,
) -> ApiResult<calendar_events::Model> {
    versioned::restore::<calendar_events::Entity>(db, user_id, id, if_match, retention).await
}

/// Restores every event of a user still in the recycle bin whose deletion run `run_id`
/// applied (see [`versioned::restore_run`]). Returns the ids restored, in id order.
///
/// # Errors
/// On database failure.
pub async fn restore_run(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    run_id: Uuid,
    retention: Retention,
) -> ApiResult<Vec<Uuid>> {
    versioned::restore_run::<calendar_events::Entity>(db, user_id, run_id, retention).await
}

/// Applies `change` to one of a user's events and stores the result, honouring `If-Match`
/// (checked after `change` validated the request); without it, a concurrent change makes it
/// start over with the new version rather than fail.
async fn change_event(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    if_match: Option<&str>,
    change: impl Fn(&EventData) -> ApiResult<EventData>,
) -> ApiResult<calendar_events::Model> {
    versioned::with_retries(if_match, || async {
        let current = get(db, user_id, id).await?;
        let before = EventData::from_model(&current)?;
        let data = change(&before)?;
        if !current.is_organizer && !before.same_meeting(&data) {
            return Err(ApiError::conflict(
                "not_organizer",
                "this meeting is organized by someone else: only its reminder, categories and \
                 show-as are yours to change",
            ));
        }
        etag::check(if_match, current.version)?;
        update(db, current, &data).await
    })
    .await
}

/// The occurrence of a series that `original_start` names, or 404.
fn occurrence_of(series: &EventData, original_start: &str) -> ApiResult<(NaiveDate, EventData)> {
    series
        .occurrence(original_start)
        .ok_or_else(|| not_found("occurrence"))
}

/// The series with the exception of `original_start` replaced by `exception` (or removed).
fn with_exception(
    series: &EventData,
    original_start: &str,
    exception: Option<OccurrenceException>,
) -> EventData {
    let mut data = series.clone();
    data.exceptions
        .retain(|e| e.original_start != original_start);
    data.exceptions.extend(exception);
    data.exceptions
        .sort_by(|a, b| a.original_start.cmp(&b.original_start));
    data
}

/// Modifies one occurrence of a series (a merge patch of its fields; `recurrence` and
/// `is_all_day` belong to the series). The occurrence keeps only what differs from the series;
/// a patch that brings it back to the series' values makes it a plain occurrence again.
///
/// # Errors
/// 404 when there is no such series or occurrence (cancelled, or not a date of the rule);
/// 422 for an invalid patch; 400 for a malformed `If-Match`; 412 when it does not match.
pub async fn patch_occurrence(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    original_start: &str,
    patch: UpdateCalendarEvent,
    if_match: Option<&str>,
) -> ApiResult<calendar_events::Model> {
    change_event(db, user_id, id, if_match, |current| {
        let (date, occurrence) = occurrence_of(current, original_start)?;
        let mut errors = Vec::new();
        if patch.recurrence.is_present() {
            errors.push(crate::error::FieldError::new(
                "/recurrence",
                "belongs to the series: change it on the series",
            ));
        }
        if patch.is_all_day.is_present() {
            errors.push(crate::error::FieldError::new(
                "/is_all_day",
                "belongs to the series: change it on the series",
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        let changed = occurrence.patched(patch.clone())?;
        let changes = series::changes_between(&current.plain_occurrence(date), &changed);
        let exception = (!changes.is_empty()).then(|| OccurrenceException {
            original_start: original_start.to_owned(),
            cancelled: false,
            changes,
        });
        Ok(with_exception(current, original_start, exception))
    })
    .await
}

/// Cancels one occurrence of a series.
///
/// # Errors
/// 404 when there is no such series or occurrence (already cancelled, or not a date of the
/// rule); 400 for a malformed `If-Match`; 412 when it does not match.
pub async fn cancel_occurrence(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    original_start: &str,
    if_match: Option<&str>,
) -> ApiResult<calendar_events::Model> {
    change_event(db, user_id, id, if_match, |current| {
        occurrence_of(current, original_start)?;
        let cancelled = OccurrenceException {
            original_start: original_start.to_owned(),
            cancelled: true,
            changes: serde_json::Map::new(),
        };
        Ok(with_exception(current, original_start, Some(cancelled)))
    })
    .await
}
