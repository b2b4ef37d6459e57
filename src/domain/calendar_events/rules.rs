//! What a valid calendar event is: request bodies (create, merge patch) turned into
//! [`EventData`], every invalid member reported with its JSON Pointer.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::{
    Attendee, CreateCalendarEvent, EventData, EventTime, UpdateCalendarEvent, ZonedDateTime,
    recurrence::Rule, series,
};
use crate::{
    domain::{
        email::Email,
        item_fields::{
            MAX_DESCRIPTION, check_categories, check_text, check_title, or_default, parse_date,
            present, required,
        },
        patch::Patch,
        rich_text, time_zones,
    },
    error::{ApiError, ApiResult, FieldError},
};

/// Largest number of attendees on an event (Outlook's limit).
pub const MAX_ATTENDEES: usize = 500;

/// Longest reminder lead time, in minutes (four weeks).
pub const MAX_REMINDER_MINUTES: i64 = 40_320;

/// The wire format of wall-clock times (fractions of a second are optional).
const DATE_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// Parses an IANA time zone name; the zone must have a Windows equivalent, as Microsoft 365
/// names zones the Windows way.
///
/// # Errors
/// When the name is not an IANA zone, or no Windows zone keeps the same time.
pub fn parse_zone(pointer: &str, name: &str) -> Result<Tz, FieldError> {
    let tz = name.parse::<Tz>().map_err(|_| {
        FieldError::new(
            pointer,
            format!("`{name}` is not an IANA time zone (such as `Europe/Berlin`)"),
        )
    })?;
    if time_zones::iana_to_windows(tz.name()).is_none() {
        return Err(FieldError::new(
            pointer,
            format!("`{name}` has no Windows time zone that Microsoft 365 could keep it in"),
        ));
    }
    Ok(tz)
}

/// The instant of a wall-clock time: `pointer` names the `{date_time, time_zone}` object.
/// An ambiguous time (repeated when clocks go back) is its earlier instant.
///
/// # Errors
/// When the time is malformed, or does not exist (skipped when clocks go forward).
pub fn resolve(pointer: &str, wall: &ZonedDateTime, zone: Tz) -> Result<DateTime<Utc>, FieldError> {
    let at = format!("{pointer}/date_time");
    let plain = wall.date_time.len() >= 19
        && wall
            .date_time
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_digit);
    let local = NaiveDateTime::parse_from_str(&wall.date_time, DATE_TIME_FORMAT)
        .ok()
        .filter(|_| plain)
        .ok_or_else(|| {
            FieldError::new(
                &at,
                "must be a local date and time `YYYY-MM-DDTHH:MM:SS` without an offset",
            )
        })?;
    zone.from_local_datetime(&local)
        .earliest()
        .map(|instant| instant.with_timezone(&Utc))
        .ok_or_else(|| {
            FieldError::new(
                &at,
                format!(
                    "{} does not exist in {zone}: the clocks skip it (daylight saving time)",
                    wall.date_time
                ),
            )
        })
}

/// The wall-clock form of an instant in a zone.
pub fn wall_clock(instant: DateTime<Utc>, zone: Tz) -> ZonedDateTime {
    ZonedDateTime {
        date_time: instant
            .with_timezone(&zone)
            .naive_local()
            .format(DATE_TIME_FORMAT)
            .to_string(),
        time_zone: zone.name().to_owned(),
    }
}

fn check_attendees(attendees: Vec<Attendee>, errors: &mut Vec<FieldError>) -> Vec<Attendee> {
    if attendees.len() > MAX_ATTENDEES {
        errors.push(FieldError::new(
            "/attendees",
            format!("must hold at most {MAX_ATTENDEES} attendees"),
        ));
        return Vec::new();
    }
    let mut out: Vec<Attendee> = Vec::with_capacity(attendees.len());
    for (i, attendee) in attendees.into_iter().enumerate() {
        let email = match Email::parse(&attendee.email) {
            Ok(email) => email.as_str().to_owned(),
            Err(e) => {
                errors.push(FieldError::new(format!("/attendees/{i}/email"), e));
                continue;
            }
        };
        // Outlook keeps one attendee per address: the first mention counts.
        if out.iter().any(|a| a.email == email) {
            continue;
        }
        let name = check_text(&format!("/attendees/{i}/name"), attendee.name, 255)
            .map_err(|e| errors.push(e))
            .ok()
            .flatten()
            .map(|n| n.trim().to_owned());
        out.push(Attendee {
            email,
            name,
            attendee_type: attendee.attendee_type,
        });
    }
    out
}

/// The start or end of an all-day event: a patch member, or the current value.
fn date_member(
    name: &str,
    patch: Patch<String>,
    current: Option<chrono::NaiveDate>,
    errors: &mut Vec<FieldError>,
) -> Option<chrono::NaiveDate> {
    let pointer = format!("/{name}");
    match patch {
        Patch::Set(text) => parse_date(&pointer, &text).map_err(|e| errors.push(e)).ok(),
        Patch::Null => {
            errors.push(FieldError::new(pointer, "is required for all-day events"));
            None
        }
        Patch::Absent => current.or_else(|| {
            errors.push(FieldError::new(pointer, "is required for all-day events"));
            None
        }),
    }
}

fn refuse(name: &str, patch: &Patch<impl Sized>, detail: &str, errors: &mut Vec<FieldError>) {
    if matches!(patch, Patch::Set(_)) {
        errors.push(FieldError::new(format!("/{name}"), detail));
    }
}

/// The time of an event after a patch: all-day dates, or instants in a zone.
fn resolve_time(
    all_day: bool,
    patch: &mut UpdateCalendarEvent,
    current: Option<&EventTime>,
    errors: &mut Vec<FieldError>,
) -> Option<EventTime> {
    if all_day {
        let timed_member =
            "must be absent or null for all-day events (use `start_date` and `end_date`)";
        refuse("start", &patch.start, timed_member, errors);
        refuse("end", &patch.end, timed_member, errors);
        let (current_start, current_end) = match current {
            Some(EventTime::AllDay { start, end }) => (Some(*start), Some(*end)),
            _ => (None, None),
        };
        // A range made wrong by moving one end names that end.
        let end_moved = patch.end_date.is_present();
        let start = date_member(
            "start_date",
            std::mem::take(&mut patch.start_date),
            current_start,
            errors,
        );
        let end = date_member(
            "end_date",
            std::mem::take(&mut patch.end_date),
            current_end,
            errors,
        );
        let (start, end) = (start?, end?);
        if end < start {
            errors.push(if end_moved {
                FieldError::new(
                    "/end_date",
                    "must not be before `start_date` (the end date is inclusive)",
                )
            } else {
                FieldError::new("/start_date", "must not be after `end_date`")
            });
            return None;
        }
        return Some(EventTime::AllDay { start, end });
    }
    let date_member = "must be absent or null for timed events (use `start` and `end`)";
    refuse("start_date", &patch.start_date, date_member, errors);
    refuse("end_date", &patch.end_date, date_member, errors);
    let (current_start, current_end, current_zone) = match current {
        Some(EventTime::Timed {
            start,
            end,
            time_zone,
        }) => (Some(*start), Some(*end), Some(*time_zone)),
        _ => (None, None, None),
    };
    let zone_of =
        |name: &str, member: &Patch<ZonedDateTime>, errors: &mut Vec<FieldError>| match member {
            Patch::Set(wall) => parse_zone(&format!("/{name}/time_zone"), &wall.time_zone)
                .map_err(|e| errors.push(e))
                .ok(),
            _ => None,
        };
    let start_zone = zone_of("start", &patch.start, errors);
    let end_zone = zone_of("end", &patch.end, errors);
    if let (Some(s), Some(e)) = (start_zone, end_zone)
        && s != e
    {
        errors.push(FieldError::new(
            "/end/time_zone",
            "must be the time zone of `start` (an event has one time zone)",
        ));
        return None;
    }
    let zone = start_zone.or(end_zone).or(current_zone);
    let instant = |name: &str,
                   member: &Patch<ZonedDateTime>,
                   own: Option<Tz>,
                   current: Option<DateTime<Utc>>,
                   errors: &mut Vec<FieldError>| {
        let pointer = format!("/{name}");
        match member {
            Patch::Set(wall) => {
                own.and_then(|z| resolve(&pointer, wall, z).map_err(|e| errors.push(e)).ok())
            }
            Patch::Null => {
                errors.push(FieldError::new(pointer, "is required for timed events"));
                None
            }
            Patch::Absent => current.or_else(|| {
                errors.push(FieldError::new(pointer, "is required for timed events"));
                None
            }),
        }
    };
    let start = instant("start", &patch.start, start_zone, current_start, errors);
    let end = instant("end", &patch.end, end_zone, current_end, errors);
    let (start, end, time_zone) = (start?, end?, zone?);
    if end < start {
        errors.push(if patch.end.is_present() {
            FieldError::new("/end", "must not be before `start`")
        } else {
            FieldError::new("/start", "must not be after `end`")
        });
        return None;
    }
    Some(EventTime::Timed {
        start,
        end,
        time_zone,
    })
}

impl EventData {
    /// Validates a creation request.
    ///
    /// # Errors
    /// 422 listing every invalid member.
    pub fn from_create(input: CreateCalendarEvent) -> ApiResult<Self> {
        let patch = UpdateCalendarEvent {
            title: present(input.title),
            description: present(input.description),
            description_html: present(input.description_html),
            location: present(input.location),
            is_all_day: present(input.is_all_day),
            start: absent_if_null(input.start),
            end: absent_if_null(input.end),
            start_date: present(input.start_date),
            end_date: present(input.end_date),
            reminder_minutes: present(input.reminder_minutes),
            show_as: present(input.show_as),
            importance: present(input.importance),
            sensitivity: present(input.sensitivity),
            categories: present(input.categories),
            attendees: present(input.attendees),
            recurrence: present(input.recurrence),
        };
        apply(patch, None)
    }

    /// This event with a merge patch applied, validated as a whole (so that, for instance, a
    /// new `end` is checked against the current `start`).
    ///
    /// # Errors
    /// 422 listing every invalid member.
    pub fn patched(&self, patch: UpdateCalendarEvent) -> ApiResult<Self> {
        apply(patch, Some(self))
    }
}

fn absent_if_null<T>(patch: Patch<T>) -> Patch<T> {
    match patch {
        Patch::Null => Patch::Absent,
        other => other,
    }
}

/// Free text members: absent keeps, `null` clears.
fn text_member(
    name: &str,
    patch: Patch<String>,
    current: Option<&Option<String>>,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match patch {
        Patch::Absent => current.cloned().flatten(),
        Patch::Null => None,
        Patch::Set(text) => check_text(&format!("/{name}"), Some(text), max)
            .map_err(|e| errors.push(e))
            .ok()
            .flatten(),
    }
}

/// Longest HTML description accepted (Outlook's HTML carries styles besides the text).
const MAX_DESCRIPTION_HTML: usize = 131_072;

/// The description in both forms. HTML given is kept byte for byte, with the text read in it;
/// text given for an HTML description becomes HTML; `null` HTML keeps the text alone.
fn resolve_description(
    patch: &mut UpdateCalendarEvent,
    current: Option<&EventData>,
    errors: &mut Vec<FieldError>,
) -> (Option<String>, Option<String>) {
    let text = std::mem::take(&mut patch.description);
    let html = std::mem::take(&mut patch.description_html);
    let current_text = current.and_then(|c| c.description.clone());
    let current_html = current.and_then(|c| c.description_html.clone());
    match (text, html) {
        (Patch::Absent, Patch::Absent) => (current_text, current_html),
        (Patch::Set(_) | Patch::Null, Patch::Set(_) | Patch::Null) => {
            // The same description twice would have to agree: one form decides.
            errors.push(FieldError::new(
                "/description_html",
                "give `description` or `description_html`, not both",
            ));
            (None, None)
        }
        (Patch::Absent, Patch::Null) => (current_text, None),
        (Patch::Absent, Patch::Set(html)) => {
            match check_text("/description_html", Some(html), MAX_DESCRIPTION_HTML) {
                Ok(Some(html)) => {
                    let text = rich_text::html_to_text(&html);
                    if text.chars().count() > MAX_DESCRIPTION {
                        errors.push(FieldError::new(
                            "/description_html",
                            format!("its text must be at most {MAX_DESCRIPTION} characters"),
                        ));
                    }
                    (Some(text).filter(|t| !t.trim().is_empty()), Some(html))
                }
                Ok(None) => (None, None),
                Err(e) => {
                    errors.push(e);
                    (None, None)
                }
            }
        }
        (text, Patch::Absent) => {
            let text = text_member(
                "description",
                text,
                current.map(|c| &c.description),
                MAX_DESCRIPTION,
                errors,
            );
            // An HTML description stays HTML: the text is written as paragraphs.
            let html = match (&text, current_html) {
                (Some(text), Some(_)) => Some(rich_text::text_to_html(text)),
                _ => None,
            };
            (text, html)
        }
    }
}

fn apply(mut patch: UpdateCalendarEvent, current: Option<&EventData>) -> ApiResult<EventData> {
    let mut errors = Vec::new();
    let title = match required("/title", std::mem::take(&mut patch.title), &mut errors) {
        Some(title) => check_title("/title", &title)
            .map_err(|e| errors.push(e))
            .ok(),
        None => current.map(|c| c.title.clone()).or_else(|| {
            errors.push(FieldError::new("/title", "is required"));
            None
        }),
    };
    let (description, description_html) = resolve_description(&mut patch, current, &mut errors);
    let location = text_member(
        "location",
        std::mem::take(&mut patch.location),
        current.map(|c| &c.location),
        255,
        &mut errors,
    )
    .map(|l| l.trim().to_owned());
    let all_day = required(
        "/is_all_day",
        std::mem::take(&mut patch.is_all_day),
        &mut errors,
    )
    .or(current.map(|c| matches!(c.time, EventTime::AllDay { .. })))
    .unwrap_or(false);
    let time = resolve_time(all_day, &mut patch, current.map(|c| &c.time), &mut errors);
    let recurrence = match std::mem::take(&mut patch.recurrence) {
        Patch::Absent => current.and_then(|c| c.recurrence.clone()),
        Patch::Null => None,
        Patch::Set(rule) => Rule::parse("/recurrence", rule)
            .map_err(|e| errors.extend(e))
            .ok(),
    };
    if let (Some(rule), Some(time)) = (&recurrence, &time) {
        let first = series::first_day(time);
        if !rule.contains(first, first) {
            errors.push(FieldError::new(
                "/recurrence",
                format!(
                    "the series starts with its first occurrence, but {first} (the day of its \
                     start) is not one of the rule's dates"
                ),
            ));
        }
    }
    let reminder_minutes = match patch.reminder_minutes {
        Patch::Absent => current.and_then(|c| c.reminder_minutes),
        Patch::Null => None,
        Patch::Set(minutes) => match i32::try_from(minutes) {
            Ok(m) if (0..=MAX_REMINDER_MINUTES).contains(&minutes) => Some(m),
            _ => {
                errors.push(FieldError::new(
                    "/reminder_minutes",
                    format!("must be between 0 and {MAX_REMINDER_MINUTES}"),
                ));
                None
            }
        },
    };
    let categories = match patch.categories {
        Patch::Absent => current.map(|c| c.categories.clone()).unwrap_or_default(),
        Patch::Null => Vec::new(),
        Patch::Set(list) => check_categories("/categories", list, &mut errors),
    };
    let attendees = match patch.attendees {
        Patch::Absent => current.map(|c| c.attendees.clone()).unwrap_or_default(),
        Patch::Null => Vec::new(),
        Patch::Set(list) => check_attendees(list, &mut errors),
    };
    let show_as = or_default(patch.show_as)
        .or(current.map(|c| c.show_as))
        .unwrap_or_default();
    let importance = or_default(patch.importance)
        .or(current.map(|c| c.importance))
        .unwrap_or_default();
    let sensitivity = or_default(patch.sensitivity)
        .or(current.map(|c| c.sensitivity))
        .unwrap_or_default();
    match (title, time) {
        (Some(title), Some(time)) if errors.is_empty() => {
            let mut data = EventData {
                title,
                description,
                description_html,
                location,
                time,
                reminder_minutes,
                show_as,
                importance,
                sensitivity,
                categories,
                attendees,
                recurrence,
                exceptions: current.map(|c| c.exceptions.clone()).unwrap_or_default(),
            };
            if let Some(before) = current {
                data.carry_exceptions(before);
            }
            Ok(data)
        }
        _ => Err(ApiError::Validation(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(date_time: &str, zone: &str) -> ZonedDateTime {
        ZonedDateTime {
            date_time: date_time.to_owned(),
            time_zone: zone.to_owned(),
        }
    }

    #[test]
    fn wall_clock_times_resolve_to_instants_and_back() {
        let zone = parse_zone("/z", "Europe/Berlin").unwrap();
        let instant = resolve(
            "/start",
            &wall("2026-03-29T09:00:00", "Europe/Berlin"),
            zone,
        )
        .unwrap();
        assert_eq!(instant.to_rfc3339(), "2026-03-29T07:00:00+00:00");
        assert_eq!(
            wall_clock(instant, zone),
            wall("2026-03-29T09:00:00", "Europe/Berlin")
        );
    }

    #[test]
    fn skipped_times_are_refused_and_repeated_times_take_the_earlier_instant() {
        let zone = parse_zone("/z", "Europe/Berlin").unwrap();
        let gap = resolve(
            "/start",
            &wall("2026-03-29T02:30:00", "Europe/Berlin"),
            zone,
        )
        .unwrap_err();
        assert_eq!(gap.pointer, "/start/date_time");
        let repeated = resolve(
            "/start",
            &wall("2026-10-25T02:30:00", "Europe/Berlin"),
            zone,
        )
        .unwrap();
        assert_eq!(repeated.to_rfc3339(), "2026-10-25T00:30:00+00:00");
    }

    #[test]
    fn malformed_wall_clock_times_and_zones_are_refused() {
        let zone = parse_zone("/z", "UTC").unwrap();
        for bad in [
            "2026-03-29",
            "2026-03-29T09:00:00Z",
            "2026-03-29 09:00:00",
            "x",
        ] {
            assert!(
                resolve("/start", &wall(bad, "UTC"), zone).is_err(),
                "{bad:?}"
            );
        }
        assert!(parse_zone("/z", "Mars/Olympus").is_err());
    }
}
