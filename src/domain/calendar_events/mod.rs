//! Calendar events of the business application's side, one set per user: versioned (every
//! change bumps `version`), deleted as tombstones (`deleted_at`) so that deletions can be sent
//! to Microsoft.
//!
//! Timed events keep their start and end as UTC instants plus the IANA zone they were set in;
//! all-day events keep plain dates, the end date inclusive.
//!
//! A series is one event with a recurrence rule: its start and end are those of its first
//! occurrence, and its exceptions (modified and cancelled occurrences) are part of it, so that
//! every change to a series or to one of its occurrences bumps the series' version.

pub mod listing;
pub mod recurrence;
mod response;
mod rules;
pub mod series;
mod store;
mod view;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use entity::calendar_events;
use sea_orm::Set;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use recurrence::{RecurrenceRule, Rule};
pub use response::{Answer, EventResponse, respond};
pub use rules::{MAX_ATTENDEES, MAX_REMINDER_MINUTES, parse_zone, resolve, wall_clock};
pub use series::OccurrenceException;
pub use store::{
    EventFilter, EventListParams, ListPage, cancel_occurrence, create, delete, delete_event,
    find_including_deleted, get, get_deleted, patch_event, patch_occurrence, restore_event,
    restore_run, update,
};
pub use view::{CalendarEventView, ExceptionView, OccurrenceRef, view, views};

use crate::{
    domain::{
        item_fields::{
            Category, Importance, date_to_stored, from_stored, from_stored_json, to_stored,
            to_stored_json,
        },
        patch::{self, Patch},
    },
    error::{ApiError, ApiResult},
};

/// A wall-clock time in an IANA time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZonedDateTime {
    /// Local date and time without an offset, `YYYY-MM-DDTHH:MM:SS` (a fraction of a second
    /// is allowed).
    #[schema(
        example = "2026-03-29T09:00:00",
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?$"
    )]
    pub date_time: String,
    /// IANA time zone.
    #[schema(example = "Europe/Berlin")]
    pub time_zone: String,
}

/// Whether an attendee must come, or is a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttendeeType {
    /// Required.
    Required,
    /// Optional.
    Optional,
    /// A room or equipment (Outlook's third kind, so that events from Microsoft keep it).
    Resource,
}

/// Someone invited to an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attendee {
    /// E-mail address (stored lower-cased; an address given twice counts once, with the
    /// first mention's name and type).
    #[schema(
        example = "ada@example.com",
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s\x00-\x1f\x7f-\x9f.]$",
        max_length = 254
    )]
    pub email: String,
    /// Display name, at most 255 characters.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub name: Option<String>,
    /// Required, optional or resource.
    #[serde(rename = "type")]
    pub attendee_type: AttendeeType,
}

/// How the event shows in the calendar owner's free/busy time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShowAs {
    /// Free.
    Free,
    /// Tentative.
    Tentative,
    /// Busy (the default).
    #[default]
    Busy,
    /// Out of office.
    Oof,
    /// Working elsewhere.
    WorkingElsewhere,
    /// Unknown.
    Unknown,
}

/// Who may see the event's details.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    /// Normal (the default).
    #[default]
    Normal,
    /// Personal.
    Personal,
    /// Private.
    Private,
    /// Confidential.
    Confidential,
}

/// A new event row (version 1) with nothing in it but its ids: an untitled timed event with
/// no times yet, the defaults of every other column. Callers fill in what they have.
pub fn blank(id: uuid::Uuid, user_id: uuid::Uuid) -> calendar_events::Model {
    let now = chrono::Utc::now().fixed_offset();
    calendar_events::Model {
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
        deleted_by: None,
        deleted_by_run: None,
        ical_uid: None,
        organizer: None,
        is_organizer: true,
        response: None,
        response_pending: None,
        description_html: None,
        attendee_responses: None,
        is_cancelled: false,
        online_meeting_url: None,
    }
}

/// Body of `POST /api/v1/users/{id}/calendar-events`. A timed event has `start` and `end`; an
/// all-day event (`is_all_day: true`) has `start_date` and `end_date` instead.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCalendarEvent {
    /// Title, 1 to 255 characters, not blank.
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "Quarterly review", min_length = 1, max_length = 255, pattern = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")]
    pub title: Option<String>,
    /// Description as plain text, at most 32,000 characters, kept as given (white space
    /// included); a blank one is none. Give it or `description_html`, not both.
    #[serde(default)]
    #[schema(max_length = 32000)]
    pub description: Option<String>,
    /// Description as HTML (the body Outlook shows), at most 131,072 characters, kept byte for
    /// byte; `description` becomes the text read in it.
    #[serde(default)]
    #[schema(max_length = 131072)]
    pub description_html: Option<String>,
    /// Location, at most 255 characters.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub location: Option<String>,
    /// Whether the event lasts whole days (default `false`).
    #[serde(default)]
    pub is_all_day: Option<bool>,
    /// Start of a timed event, in its time zone. A time the clocks skip is refused; a
    /// repeated one means its first occurrence.
    #[serde(default, deserialize_with = "patch::object")]
    #[schema(value_type = Option<ZonedDateTime>)]
    pub start: Patch<ZonedDateTime>,
    /// End of a timed event, not before `start`, in the same time zone.
    #[serde(default, deserialize_with = "patch::object")]
    #[schema(value_type = Option<ZonedDateTime>)]
    pub end: Patch<ZonedDateTime>,
    /// First day of an all-day event (`YYYY-MM-DD`).
    #[serde(default)]
    #[schema(format = Date, example = "2026-03-29")]
    pub start_date: Option<String>,
    /// Last day of an all-day event (`YYYY-MM-DD`, inclusive, not before `start_date`).
    #[serde(default)]
    #[schema(format = Date, example = "2026-03-29")]
    pub end_date: Option<String>,
    /// Minutes before the start to remind, 0 to 40320; `null` for no reminder.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 40320)]
    pub reminder_minutes: Option<i64>,
    /// Free/busy status (default `busy`).
    #[serde(default)]
    pub show_as: Option<ShowAs>,
    /// Importance (default `normal`).
    #[serde(default)]
    pub importance: Option<Importance>,
    /// Sensitivity (default `normal`).
    #[serde(default)]
    pub sensitivity: Option<Sensitivity>,
    /// Categories: at most 25, each 1 to 255 characters, not blank (repeats are merged).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Category>>, max_items = 25)]
    pub categories: Option<Vec<String>>,
    /// Attendees: at most 500 (an address given twice counts once).
    #[serde(default)]
    #[schema(max_items = 500)]
    pub attendees: Option<Vec<Attendee>>,
    /// Makes the event a series: its start and end are those of the first occurrence, which
    /// must be one of the rule's dates.
    #[serde(default)]
    pub recurrence: Option<RecurrenceRule>,
}

/// Body of `PATCH /api/v1/users/{id}/calendar-events/{event_id}` (JSON merge patch). `null`
/// clears an optional member and resets `show_as`, `importance` and `sensitivity` to their
/// defaults; `title` and `is_all_day` may not be `null`. Switching `is_all_day` needs the
/// other kind of times (`start`/`end` or `start_date`/`end_date`) unless the event had them.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCalendarEvent {
    /// Title, 1 to 255 characters, not blank.
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, max_length = 255, pattern = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")]
    pub title: Patch<String>,
    /// Description as plain text, kept as given. On an event whose description is HTML, the
    /// text becomes HTML (escaped, a paragraph per line); `null` clears both forms.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 32000)]
    pub description: Patch<String>,
    /// Description as HTML, kept byte for byte (`description` becomes the text read in it);
    /// `null` keeps the text of the description and drops its formatting. Not with
    /// `description`.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 131072)]
    pub description_html: Patch<String>,
    /// Location.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 255)]
    pub location: Patch<String>,
    /// Whether the event lasts whole days.
    #[serde(default)]
    #[schema(value_type = bool)]
    pub is_all_day: Patch<bool>,
    /// Start of a timed event.
    #[serde(default, deserialize_with = "patch::object")]
    #[schema(value_type = Option<ZonedDateTime>)]
    pub start: Patch<ZonedDateTime>,
    /// End of a timed event.
    #[serde(default, deserialize_with = "patch::object")]
    #[schema(value_type = Option<ZonedDateTime>)]
    pub end: Patch<ZonedDateTime>,
    /// First day of an all-day event.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub start_date: Patch<String>,
    /// Last day of an all-day event (inclusive).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub end_date: Patch<String>,
    /// Minutes before the start to remind, 0 to 40320.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 40320)]
    pub reminder_minutes: Patch<i64>,
    /// Free/busy status.
    #[serde(default)]
    #[schema(value_type = Option<ShowAs>)]
    pub show_as: Patch<ShowAs>,
    /// Importance.
    #[serde(default)]
    #[schema(value_type = Option<Importance>)]
    pub importance: Patch<Importance>,
    /// Sensitivity.
    #[serde(default)]
    #[schema(value_type = Option<Sensitivity>)]
    pub sensitivity: Patch<Sensitivity>,
    /// Categories (replace the whole list).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Category>>, max_items = 25)]
    pub categories: Patch<Vec<String>>,
    /// Attendees (replace the whole list).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Attendee>>, max_items = 500)]
    pub attendees: Patch<Vec<Attendee>>,
    /// Recurrence rule (replaces the whole rule); `null` turns a series into a single event.
    /// Exceptions whose date is still an occurrence follow the series when it moves; the
    /// others are dropped.
    #[serde(default, deserialize_with = "patch::object")]
    #[schema(value_type = Option<RecurrenceRule>)]
    pub recurrence: Patch<RecurrenceRule>,
}

/// When an event happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventTime {
    /// From `start` to `end` (instants), set in `time_zone`.
    Timed {
        /// Start.
        start: DateTime<Utc>,
        /// End, not before the start.
        end: DateTime<Utc>,
        /// The zone the times are shown in.
        time_zone: Tz,
    },
    /// Whole days from `start` to `end`, both included.
    AllDay {
        /// First day.
        start: NaiveDate,
        /// Last day, not before the first.
        end: NaiveDate,
    },
}

/// A valid event's fields (what creation and updates store, and what the sync engine
/// compares and writes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventData {
    /// Title, 1 to 255 characters.
    pub title: String,
    /// Description as plain text (for an HTML description, the text read in it).
    pub description: Option<String>,
    /// Description as HTML; `None` for a plain-text one.
    pub description_html: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// When.
    pub time: EventTime,
    /// Reminder lead time in minutes.
    pub reminder_minutes: Option<i32>,
    /// Free/busy status.
    pub show_as: ShowAs,
    /// Importance.
    pub importance: Importance,
    /// Sensitivity.
    pub sensitivity: Sensitivity,
    /// Categories.
    pub categories: Vec<String>,
    /// Attendees (e-mails lower-cased, unique).
    pub attendees: Vec<Attendee>,
    /// The recurrence rule of a series.
    pub recurrence: Option<Rule>,
    /// The exceptions of a series, by original start.
    pub exceptions: Vec<OccurrenceException>,
}

impl EventData {
    /// The fields of a stored event.
    ///
    /// # Errors
    /// 500 when the row holds what this service never writes.
    pub fn from_model(m: &calendar_events::Model) -> ApiResult<Self> {
        let corrupt =
            |what: &str| ApiError::Internal(anyhow::anyhow!("calendar event {}: bad {what}", m.id));
        let time = if m.is_all_day {
            let date = |d: &Option<String>| {
                d.as_deref()
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                    .ok_or_else(|| corrupt("all-day dates"))
            };
            EventTime::AllDay {
                start: date(&m.start_date)?,
                end: date(&m.end_date)?,
            }
        } else {
            let zone = m
                .time_zone
                .as_deref()
                .and_then(|z| z.parse::<Tz>().ok())
                .ok_or_else(|| corrupt("time zone"))?;
            EventTime::Timed {
                start: m
                    .start_at
                    .ok_or_else(|| corrupt("start"))?
                    .with_timezone(&Utc),
                end: m.end_at.ok_or_else(|| corrupt("end"))?.with_timezone(&Utc),
                time_zone: zone,
            }
        };
        Ok(Self {
            title: m.title.clone(),
            description: m.description.clone(),
            description_html: m.description_html.clone(),
            location: m.location.clone(),
            time,
            reminder_minutes: m.reminder_minutes,
            show_as: from_stored("show_as", &m.show_as)?,
            importance: from_stored("importance", &m.importance)?,
            sensitivity: from_stored("sensitivity", &m.sensitivity)?,
            categories: from_stored_json("categories", &m.categories)?,
            attendees: from_stored_json("attendees", &m.attendees)?,
            recurrence: match &m.recurrence {
                Some(text) => Some(
                    Rule::parse("/recurrence", from_stored_json("recurrence", text)?)
                        .map_err(|_| corrupt("recurrence"))?,
                ),
                None => None,
            },
            exceptions: match &m.exceptions {
                Some(text) => from_stored_json("exceptions", text)?,
                None => Vec::new(),
            },
        })
    }

    /// Whether `other` is the same meeting: it differs at most in the attendee's own fields
    /// (reminder, show-as, categories).
    pub fn same_meeting(&self, other: &Self) -> bool {
        let meeting = |d: &Self| Self {
            reminder_minutes: None,
            show_as: ShowAs::Busy,
            categories: Vec::new(),
            ..d.clone()
        };
        meeting(self) == meeting(other)
    }

    /// Sets the columns of `model` from these fields (all but ids, version and timestamps).
    fn write_to(&self, model: &mut calendar_events::ActiveModel) -> ApiResult<()> {
        let (start_at, end_at, zone, start_date, end_date) = match self.time {
            EventTime::Timed {
                start,
                end,
                time_zone,
            } => (
                Some(start.fixed_offset()),
                Some(end.fixed_offset()),
                Some(time_zone.name().to_owned()),
                None,
                None,
            ),
            EventTime::AllDay { start, end } => (
                None,
                None,
                None,
                Some(date_to_stored(start)),
                Some(date_to_stored(end)),
            ),
        };
        model.title = Set(self.title.clone());
        model.description = Set(self.description.clone());
        model.description_html = Set(self.description_html.clone());
        model.location = Set(self.location.clone());
        model.is_all_day = Set(matches!(self.time, EventTime::AllDay { .. }));
        model.start_at = Set(start_at);
        model.end_at = Set(end_at);
        model.time_zone = Set(zone);
        model.start_date = Set(start_date);
        model.end_date = Set(end_date);
        model.reminder_minutes = Set(self.reminder_minutes);
        model.show_as = Set(to_stored(&self.show_as));
        model.importance = Set(to_stored(&self.importance));
        model.sensitivity = Set(to_stored(&self.sensitivity));
        model.categories = Set(to_stored_json(&self.categories)?);
        model.attendees = Set(to_stored_json(&self.attendees)?);
        let (series_start, series_end, rule) = match &self.recurrence {
            Some(rule) => {
                let (start, end) = self.series_span();
                (
                    Some(start.fixed_offset()),
                    end.map(|e| e.fixed_offset()),
                    Some(to_stored_json(rule.rule())?),
                )
            }
            None => (None, None, None),
        };
        model.recurrence = Set(rule);
        model.series_start_at = Set(series_start);
        model.series_end_at = Set(series_end);
        model.exceptions = Set(match self.recurrence {
            Some(_) => Some(to_stored_json(&self.exceptions)?),
            None => None,
        });
        Ok(())
    }
}
