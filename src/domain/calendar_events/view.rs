//! What the API shows of an event: its fields in the request shapes, and its Microsoft link.

use chrono::{DateTime, Utc};
use entity::calendar_events;
use sea_orm::ConnectionTrait;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use serde_json::{Map, Value, json};

use super::{
    Attendee, EventData, EventTime, RecurrenceRule, Sensitivity, ShowAs, ZonedDateTime, wall_clock,
};
use crate::{
    domain::links::{LinkState, Resource, link_states},
    domain::{
        item_fields::{Importance, date_to_stored},
        recycle_bin::DeletedBy,
    },
    error::{ApiError, ApiResult},
};

/// The organizer of a meeting.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Organizer {
    /// Display name, when Microsoft gives one.
    pub name: Option<String>,
    /// E-mail address (lower-cased).
    pub email: String,
}

/// An attendee of an event, with their response.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttendeeView {
    /// E-mail address (lower-cased).
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Required, optional or resource.
    #[serde(rename = "type")]
    pub attendee_type: super::AttendeeType,
    /// Their response as Microsoft has it (`none`, `organizer`, `tentatively_accepted`,
    /// `accepted`, `declined`, `not_responded`); `null` while Microsoft does not have the
    /// attendee (an event not synchronized yet, or attendees kept here by the `never`
    /// invitation policy).
    #[schema(example = "accepted")]
    pub response: Option<String>,
    /// When they responded; `null` when they have not (or it is not known).
    pub responded_at: Option<DateTime<Utc>>,
}

/// An attendee's response as stored: Microsoft's, by address.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct StoredResponse {
    /// The attendee's address, lower-cased.
    pub email: String,
    /// Snake-cased response.
    pub response: String,
    /// When they responded.
    pub time: Option<DateTime<Utc>>,
}

/// The attendees of an event with the responses Microsoft has of them.
fn attendee_views(attendees: Vec<Attendee>, stored: Option<&str>) -> Vec<AttendeeView> {
    let responses: Vec<StoredResponse> = stored
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    attendees
        .into_iter()
        .map(|a| {
            let known = responses.iter().find(|r| r.email == a.email);
            AttendeeView {
                response: known.map(|r| r.response.clone()),
                responded_at: known.and_then(|r| r.time),
                email: a.email,
                name: a.name,
                attendee_type: a.attendee_type,
            }
        })
        .collect()
}

/// A calendar event as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarEventView {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Description as plain text, kept as given; for an HTML description (what Outlook
    /// writes), the text a person reads in it.
    pub description: Option<String>,
    /// Description as HTML, byte for byte as Microsoft holds it or as given; `null` for a
    /// plain-text description.
    pub description_html: Option<String>,
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
    /// Attendees, each with their response as Microsoft has it.
    pub attendees: Vec<AttendeeView>,
    /// Whether the organizer cancelled the meeting (Outlook keeps a cancelled meeting in an
    /// attendee's calendar until they remove it).
    pub is_cancelled: bool,
    /// The join URL of the meeting's online meeting (Teams or another provider); `null` when
    /// it has none.
    pub online_meeting_url: Option<String>,
    /// Who organizes the event, as Microsoft names them; `null` for an event made here and not
    /// synchronized yet.
    pub organizer: Option<Organizer>,
    /// Whether the user organizes it. When not (a meeting someone else sent), its title,
    /// description, location, times, attendees and recurrence are read-only here: changing them
    /// answers 409 `not_organizer`; the reminder, show-as and categories stay the user's own.
    pub is_organizer: bool,
    /// The user's own response as Microsoft has it (`none`, `organizer`,
    /// `tentatively_accepted`, `accepted`, `declined`, `not_responded`); `null` for an event
    /// made here and not synchronized yet.
    #[schema(example = "not_responded")]
    pub response: Option<String>,
    /// An answer given here (`POST .../response`) that the next run sends; `null` when none
    /// waits.
    pub response_pending: Option<super::Answer>,
    /// Version, also sent as the `ETag`.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was deleted; `null` unless read from the recycle bin (`deleted=true`).
    pub deleted_at: Option<DateTime<Utc>>,
    /// Who deleted it; `null` unless read from the recycle bin (and for an item deleted before
    /// this was recorded).
    pub deleted_by: Option<DeletedBy>,
    /// Its Microsoft link.
    pub microsoft: LinkState,
    /// The recurrence rule of a series; `null` for a single event and for the occurrences
    /// of an expanded listing.
    pub recurrence: Option<RecurrenceRule>,
    /// The modified and cancelled occurrences of a series, by original start (empty for a
    /// single event and in an expanded listing).
    pub exceptions: Vec<ExceptionView>,
    /// In an expanded listing (`expand=true`), the occurrence of the series (`id`) this item
    /// is; `null` for single events and outside expanded listings.
    pub occurrence: Option<OccurrenceRef>,
}

/// A modified or cancelled occurrence of a series.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionView {
    /// When the occurrence would start: `YYYY-MM-DDTHH:MM:SSZ` (UTC) in a timed series,
    /// `YYYY-MM-DD` in an all-day series. The key of the occurrence in
    /// `/calendar-events/{event_id}/occurrences/{original_start}`.
    #[schema(example = "2026-03-02T08:00:00Z")]
    pub original_start: String,
    /// Whether the occurrence is cancelled.
    pub cancelled: bool,
    /// What the modified occurrence changes, with the members and shapes of an event
    /// (`start` and `end` in the series' zone, `start_date` and `end_date` for all-day series);
    /// empty for a cancelled occurrence.
    #[schema(value_type = Object)]
    pub changes: Map<String, Value>,
}

/// Which occurrence of a series an item of an expanded listing is.
#[derive(Debug, Serialize, ToSchema)]
pub struct OccurrenceRef {
    /// Its original start (see [`ExceptionView::original_start`]).
    #[schema(example = "2026-03-02T08:00:00Z")]
    pub original_start: String,
    /// Whether it is a modified occurrence.
    pub modified: bool,
    /// The fields this occurrence shares with its series that are left out of it here, to
    /// keep listings small (`description`, `description_html`, `attendees`): read them from
    /// the series (`GET .../calendar-events/{id}`).
    pub from_series: Vec<String>,
}

/// The API shape of normalized changes: instants as wall-clock times in the series' zone,
/// all-day days as `start_date` and `end_date`.
fn changes_view(time: &EventTime, changes: &Map<String, Value>) -> Map<String, Value> {
    changes
        .iter()
        .map(|(key, value)| match (time, key.as_str()) {
            (EventTime::Timed { time_zone, .. }, "start" | "end") => {
                let wall = value
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| wall_clock(t.with_timezone(&Utc), *time_zone));
                (key.clone(), json!(wall))
            }
            (EventTime::AllDay { .. }, "start" | "end") => (format!("{key}_date"), value.clone()),
            _ => (key.clone(), value.clone()),
        })
        .collect()
}

impl CalendarEventView {
    /// The view of a stored event with its link state.
    ///
    /// # Errors
    /// 500 when the row holds what this service never writes.
    pub fn new(m: calendar_events::Model, microsoft: LinkState) -> ApiResult<Self> {
        let data = EventData::from_model(&m)?;
        Ok(Self::of(&m, data, microsoft, None))
    }

    /// The view of an event's fields (a stored event's, or one of its occurrences').
    pub(super) fn of(
        m: &calendar_events::Model,
        data: EventData,
        microsoft: LinkState,
        occurrence: Option<OccurrenceRef>,
    ) -> Self {
        let exceptions = data
            .exceptions
            .iter()
            .map(|e| ExceptionView {
                original_start: e.original_start.clone(),
                cancelled: e.cancelled,
                changes: changes_view(&data.time, &e.changes),
            })
            .collect();
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
        Self {
            id: m.id,
            title: data.title,
            description: data.description,
            description_html: data.description_html,
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
            attendees: attendee_views(data.attendees, m.attendee_responses.as_deref()),
            is_cancelled: m.is_cancelled,
            online_meeting_url: m.online_meeting_url.clone(),
            organizer: m
                .organizer
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok()),
            is_organizer: m.is_organizer,
            response: m.response.clone(),
            response_pending: m
                .response_pending
                .as_deref()
                .and_then(|text| serde_json::from_str::<super::EventResponse>(text).ok())
                .map(|r| r.response),
            version: m.version,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
            deleted_at: m.deleted_at.map(|t| t.with_timezone(&Utc)),
            deleted_by: m
                .deleted_at
                .and(DeletedBy::from_stored(m.deleted_by.as_deref())),
            microsoft,
            recurrence: data.recurrence.map(|r| r.rule().clone()),
            exceptions,
            occurrence,
        }
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
