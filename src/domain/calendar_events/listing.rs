//! Pages of events and of occurrences, bounded in count and in size.
//!
//! A page holds at most `limit` items and at most [`PAGE_BYTES`] of their large fields
//! (descriptions, attendees, exceptions): a page of large items ends early, with a cursor.
//! An expanded listing pages over occurrences, in start order (then event id, then original
//! start), not over events: one series never makes a page larger than its `limit`. It reads
//! the events' times and rules first, keeps only the `limit` earliest occurrences after the
//! cursor, then reads the few events those belong to in full; an occurrence that shares its
//! series' description and attendees leaves them out (`occurrence.from_series`), so a page of
//! one series does not repeat them.

use std::collections::BinaryHeap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::calendar_events::{self, Column as C};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QuerySelect,
    prelude::DateTimeWithTimeZone,
};
use uuid::Uuid;

use super::{
    EventData,
    series::{self, Occurrence},
    store::{EventFilter, events_query},
    view::{CalendarEventView, OccurrenceRef},
};
use crate::{
    domain::links::{LinkState, Resource, link_states},
    domain::pagination::{PAGE_BYTES, PageRequest, fill_page},
    error::{ApiError, ApiResult},
};

/// The bytes of an event's large fields.
fn weight(m: &calendar_events::Model) -> usize {
    m.description.as_ref().map_or(0, String::len)
        + m.description_html.as_ref().map_or(0, String::len)
        + m.attendees.len()
        + m.exceptions.as_ref().map_or(0, String::len)
        + m.attendee_responses.as_ref().map_or(0, String::len)
}

/// A page of events in id order: at most `page.limit` of them and [`PAGE_BYTES`] of their
/// large fields (at least one event), and whether more follow.
///
/// # Errors
/// On database failure.
pub async fn events(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    filter: EventFilter,
    page: PageRequest,
) -> ApiResult<(Vec<calendar_events::Model>, bool)> {
    fill_page(
        page,
        |after, n| async move {
            match events_query(user_id, filter, after) {
                Some(query) => Ok(query.limit(n).all(db).await?),
                None => Ok(Vec::new()),
            }
        },
        |row| row.id,
        weight,
    )
    .await
}

/// Where an occurrence stands in an expanded listing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OccurrenceKey {
    /// When it starts.
    pub start: DateTime<Utc>,
    /// Its event.
    pub id: Uuid,
    /// Its original start; empty for a single event.
    pub original_start: String,
}

impl OccurrenceKey {
    /// The cursor of the page after this occurrence.
    pub fn cursor(&self) -> String {
        let text = format!(
            "{}|{}|{}",
            self.start.timestamp_micros(),
            self.id,
            self.original_start
        );
        URL_SAFE_NO_PAD.encode(text)
    }

    /// The occurrence a cursor names.
    ///
    /// # Errors
    /// 400 `invalid_cursor` for a cursor this server did not issue.
    pub fn parse(cursor: &str) -> ApiResult<Self> {
        let invalid = || {
            ApiError::bad_request(
                "invalid_cursor",
                "`cursor` is not a cursor this server issued.",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = text.splitn(3, '|');
        let start = parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(invalid)?;
        let id = parts
            .next()
            .and_then(|p| p.parse::<Uuid>().ok())
            .ok_or_else(invalid)?;
        let original_start = parts.next().ok_or_else(invalid)?.to_owned();
        Ok(Self {
            start,
            id,
            original_start,
        })
    }
}

/// What placing an event's occurrences needs: its times, rule and exceptions.
#[derive(FromQueryResult)]
struct Timing {
    id: Uuid,
    is_all_day: bool,
    start_at: Option<DateTimeWithTimeZone>,
    end_at: Option<DateTimeWithTimeZone>,
    time_zone: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    recurrence: Option<String>,
    exceptions: Option<String>,
}

impl Timing {
    /// The event's timing as event data (its other fields empty).
    fn data(self, user_id: Uuid) -> ApiResult<EventData> {
        EventData::from_model(&calendar_events::Model {
            is_all_day: self.is_all_day,
            start_at: self.start_at,
            end_at: self.end_at,
            time_zone: self.time_zone,
            start_date: self.start_date,
            end_date: self.end_date,
            recurrence: self.recurrence,
            exceptions: self.exceptions,
            ..super::blank(self.id, user_id)
        })
    }
}

fn key_of(id: Uuid, occurrence: &Occurrence) -> OccurrenceKey {
    OccurrenceKey {
        start: series::span(&occurrence.data.time).0,
        id,
        original_start: occurrence.original_start.clone().unwrap_or_default(),
    }
}

/// A page of the occurrences overlapping `[from, to)` of the events `filter` matches, after
/// `after`, in start order: at most `limit` of them and [`PAGE_BYTES`] of large fields, and
/// the cursor of the next page.
///
/// # Errors
/// On database failure.
pub async fn occurrences(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    filter: EventFilter,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    limit: u64,
    after: Option<&OccurrenceKey>,
) -> ApiResult<(Vec<CalendarEventView>, Option<String>)> {
    let Some(query) = events_query(user_id, filter, None) else {
        return Ok((Vec::new(), None));
    };
    let timings = query
        .select_only()
        .columns([
            C::Id,
            C::IsAllDay,
            C::StartAt,
            C::EndAt,
            C::TimeZone,
            C::StartDate,
            C::EndDate,
            C::Recurrence,
            C::Exceptions,
        ])
        .into_model::<Timing>()
        .all(db)
        .await?;
    // The `limit + 1` earliest occurrences after the cursor (a max-heap of them).
    let keep = usize::try_from(limit).unwrap_or(usize::MAX) + 1;
    let mut earliest: BinaryHeap<OccurrenceKey> = BinaryHeap::with_capacity(keep + 1);
    for timing in timings {
        let id = timing.id;
        let data = timing.data(user_id)?;
        for occurrence in data.occurrences(from, to) {
            let key = key_of(id, &occurrence);
            if after.is_some_and(|after| &key <= after) {
                continue;
            }
            if earliest.len() == keep && earliest.peek().is_some_and(|last| &key >= last) {
                continue;
            }
            earliest.push(key);
            if earliest.len() > keep {
                earliest.pop();
            }
        }
    }
    let mut keys = earliest.into_sorted_vec();
    let mut more = keys.len() > keep - 1;
    keys.truncate(keep - 1);

    let mut ids: Vec<Uuid> = keys.iter().map(|k| k.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = calendar_events::Entity::find()
        .filter(C::UserId.eq(user_id))
        .filter(C::Id.is_in(ids.clone()))
        .all(db)
        .await?;
    let versions: Vec<(Uuid, i64)> = rows.iter().map(|r| (r.id, r.version)).collect();
    let links = link_states(db, user_id, Resource::Calendar, &versions).await?;
    let events: std::collections::HashMap<Uuid, (calendar_events::Model, EventData)> = rows
        .into_iter()
        .map(|row| EventData::from_model(&row).map(|data| (row.id, (row, data))))
        .collect::<ApiResult<_>>()?;

    let mut items = Vec::with_capacity(keys.len());
    let mut bytes = 0;
    let mut last: Option<&OccurrenceKey> = None;
    for key in &keys {
        let Some((row, data)) = events.get(&key.id) else {
            continue;
        };
        let link = links.get(&key.id).cloned().unwrap_or(LinkState {
            remote_id: None,
            last_synced_at: None,
            pending: true,
        });
        let (item, weight) = occurrence_view(row, data, key, link);
        if !items.is_empty() && bytes + weight > PAGE_BYTES {
            more = true;
            break;
        }
        bytes += weight;
        items.push(item);
        last = Some(key);
    }
    let next = if more {
        last.map(OccurrenceKey::cursor)
    } else {
        None
    };
    Ok((items, next))
}

/// The view of one occurrence of a page (or of a single event), and the bytes of the large
/// fields it carries.
fn occurrence_view(
    row: &calendar_events::Model,
    data: &EventData,
    key: &OccurrenceKey,
    link: LinkState,
) -> (CalendarEventView, usize) {
    let plain = |data: EventData| EventData {
        recurrence: None,
        exceptions: Vec::new(),
        ..data
    };
    if key.original_start.is_empty() {
        let view = CalendarEventView::of(row, plain(data.clone()), link, None);
        return (view, weight(row));
    }
    let Some((_, mut occurrence)) = data.occurrence(&key.original_start) else {
        // Not an occurrence any more (the series changed between the two reads): shown as
        // the series' own start would be, which the next read corrects.
        return (
            CalendarEventView::of(row, plain(data.clone()), link, None),
            weight(row),
        );
    };
    let modified = data
        .exceptions
        .iter()
        .any(|e| e.original_start == key.original_start);
    // What the occurrence shares with its series is left out: the series has it.
    let mut from_series = Vec::new();
    if occurrence.description == data.description
        && occurrence.description_html == data.description_html
    {
        if occurrence.description.is_some() || occurrence.description_html.is_some() {
            from_series.extend(["description", "description_html"].map(str::to_owned));
        }
        occurrence.description = None;
        occurrence.description_html = None;
    }
    if occurrence.attendees == data.attendees {
        if !occurrence.attendees.is_empty() {
            from_series.push("attendees".to_owned());
        }
        occurrence.attendees = Vec::new();
    }
    let weight = occurrence.description.as_ref().map_or(0, String::len)
        + occurrence.description_html.as_ref().map_or(0, String::len)
        + occurrence.attendees.len() * 64;
    let view = CalendarEventView::of(
        row,
        plain(occurrence),
        link,
        Some(OccurrenceRef {
            original_start: key.original_start.clone(),
            modified,
            from_series,
        }),
    );
    (view, weight)
}
