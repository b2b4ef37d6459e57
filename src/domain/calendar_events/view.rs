//! What the API shows of an event: its fields in the request shapes, and its Microsoft link.

use chrono::{DateTime, Utc};
use entity::calendar_events;
use sea_orm::ConnectionTrait;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Attendee, EventData, EventTime, Sensitivity, ShowAs, ZonedDateTime, wall_clock};
use crate::{
    domain::item_fields::{Importance, date_to_stored},
    error::{ApiError, ApiResult},
    sync::links::{LinkState, Resource, link_states},
};

/// A calendar event as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarEventView {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// Whether the event lasts whole days.
    pub is_all_day: bool,
    /// Start of a timed event in its zone; `null` for all-day events.
    pub start: Option<ZonedDateTime>,
    /// End of a timed event in its zone; `null` for all-day events.
    pub end: Option<ZonedDateTime>,
    /// First day of an all-day event; `null` for timed events.
    #[schema(format = Date, example = "2026-03-29")]
    pub start_date: Option<String>,
    /// Last day (inclusive) of an all-day event; `null` for timed events.
    #[schema(format = Date, example = "2026-03-29")]
    pub end_date: Option<String>,
    /// Minutes before the start to remind; `null` for none.
    pub reminder_minutes: Option<i32>,
    /// Free/busy status.
    pub show_as: ShowAs,
    /// Importance.
    pub importance: Importance,
    /// Sensitivity.
    pub sensitivity: Sensitivity,
    /// Categories.
    pub categories: Vec<String>,
    /// Attendees.
    pub attendees: Vec<Attendee>,
    /// Version, also sent as the `ETag`.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its Microsoft link.
    pub microsoft: LinkState,
}

impl CalendarEventView {
    /// The view of a stored event with its link state.
    ///
    /// # Errors
    /// 500 when the row holds what this service never writes.
    pub fn new(m: calendar_events::Model, microsoft: LinkState) -> ApiResult<Self> {
        let data = EventData::from_model(&m)?;
        let (start, end, start_date, end_date) = match data.time {
            EventTime::Timed {
                start,
                end,
                time_zone,
            } => (
                Some(wall_clock(start, time_zone)),
                Some(wall_clock(end, time_zone)),
                None,
                None,
            ),
            EventTime::AllDay { start, end } => (
                None,
                None,
                Some(date_to_stored(start)),
                Some(date_to_stored(end)),
            ),
        };
        Ok(Self {
            id: m.id,
            title: data.title,
            description: data.description,
            location: data.location,
            is_all_day: m.is_all_day,
            start,
            end,
            start_date,
            end_date,
            reminder_minutes: data.reminder_minutes,
            show_as: data.show_as,
            importance: data.importance,
            sensitivity: data.sensitivity,
            categories: data.categories,
            attendees: data.attendees,
            version: m.version,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
            microsoft,
        })
    }
}

/// The views of stored events of one user, with their link states.
///
/// # Errors
/// On database failure.
pub async fn views(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    rows: Vec<calendar_events::Model>,
) -> ApiResult<Vec<CalendarEventView>> {
    let versions: Vec<(Uuid, i64)> = rows.iter().map(|r| (r.id, r.version)).collect();
    let mut links = link_states(db, user_id, Resource::Calendar, &versions).await?;
    rows.into_iter()
        .map(|row| {
            let link = links.remove(&row.id).unwrap_or(LinkState {
                remote_id: None,
                last_synced_at: None,
                pending: true,
            });
            CalendarEventView::new(row, link)
        })
        .collect()
}

/// The view of one stored event.
///
/// # Errors
/// On database failure.
pub async fn view(
    db: &impl ConnectionTrait,
    row: calendar_events::Model,
) -> ApiResult<CalendarEventView> {
    let user_id = row.user_id;
    views(db, user_id, vec![row])
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no view of an event")))
}
