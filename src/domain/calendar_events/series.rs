//! Series: the occurrences a recurrence rule gives an event, and its exceptions (occurrences
//! modified or cancelled, keyed by their original start).
//!
//! An occurrence of a timed series starts at the series' wall-clock start time on each of the
//! rule's dates, in the series' zone (so it keeps its local time across daylight saving
//! changes; a time the clocks skip moves an hour later), and lasts the series' wall-clock
//! length. An occurrence of an all-day series covers as many days as the series' first one.
//!
//! An original start is written `YYYY-MM-DDTHH:MM:SSZ` (the UTC instant the occurrence
//! would start at) for timed series and `YYYY-MM-DD` for all-day series. A modified
//! occurrence keeps only what differs from the series, in the normalized form the sync
//! engine compares (the local API's names; instants in UTC, dates for all-day events).

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{EventData, EventTime};
use crate::domain::rich_text;

/// Format of original starts and instants in normalized fields.
pub const INSTANT_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// A modified or cancelled occurrence of a series, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccurrenceException {
    /// When the occurrence would start had it not been changed.
    pub original_start: String,
    /// Whether it is cancelled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
    /// What differs from the series (normalized fields), when modified.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub changes: Map<String, Value>,
}

/// One occurrence of a series (or a single event) as an expanded listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// Its original start (`None` for a single event).
    pub original_start: Option<String>,
    /// Whether it is a modified occurrence.
    pub modified: bool,
    /// Its fields.
    pub data: EventData,
}

/// The local instant of a wall-clock time; a time the clocks skip moves an hour later, a
/// repeated one is its first instance.
pub fn local_instant(local: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    match zone.from_local_datetime(&local).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => zone
            .from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
            .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc)),
    }
}

/// The first day of a series: the date of its start in its zone.
pub fn first_day(time: &EventTime) -> NaiveDate {
    match *time {
        EventTime::Timed {
            start, time_zone, ..
        } => start.with_timezone(&time_zone).date_naive(),
        EventTime::AllDay { start, .. } => start,
    }
}

/// The time of the occurrence of a series on `date`.
pub fn time_on(time: &EventTime, date: NaiveDate) -> EventTime {
    match *time {
        EventTime::Timed {
            start,
            end,
            time_zone,
        } => {
            let wall_start = start.with_timezone(&time_zone).naive_local();
            let length = end.with_timezone(&time_zone).naive_local() - wall_start;
            let local = date.and_time(wall_start.time());
            EventTime::Timed {
                start: local_instant(local, time_zone),
                end: local_instant(local + length, time_zone),
                time_zone,
            }
        }
        EventTime::AllDay { start, end } => {
            let days = (end - start).num_days().max(0).unsigned_abs();
            EventTime::AllDay {
                start: date,
                end: date.checked_add_days(Days::new(days)).unwrap_or(date),
            }
        }
    }
}

/// The original start key of the occurrence of a series on `date`.
pub fn original_start(time: &EventTime, date: NaiveDate) -> String {
    match time_on(time, date) {
        EventTime::Timed { start, .. } => start.format(INSTANT_FORMAT).to_string(),
        EventTime::AllDay { start, .. } => start.to_string(),
    }
}

/// The date an original start key names in a series, if it is well-formed.
pub fn date_of(time: &EventTime, key: &str) -> Option<NaiveDate> {
    match *time {
        EventTime::Timed { time_zone, .. } => DateTime::parse_from_rfc3339(key)
            .ok()
            .map(|t| t.with_timezone(&time_zone).date_naive()),
        EventTime::AllDay { .. } => NaiveDate::parse_from_str(key, "%Y-%m-%d").ok(),
    }
}

/// The span of an event's time: from its start to its end (all-day: midnight UTC of the
/// first day to the midnight after the last).
pub fn span(time: &EventTime) -> (DateTime<Utc>, DateTime<Utc>) {
    match *time {
        EventTime::Timed { start, end, .. } => (start, end),
        EventTime::AllDay { start, end } => (
            start.and_time(chrono::NaiveTime::MIN).and_utc(),
            end.checked_add_days(Days::new(1))
                .unwrap_or(end)
                .and_time(chrono::NaiveTime::MIN)
                .and_utc(),
        ),
    }
}

/// Normalized fields of an event's own data (without `is_all_day`, recurrence and
/// exceptions): what a modified occurrence may override.
pub fn occurrence_fields(data: &EventData) -> Map<String, Value> {
    let (start, end) = match data.time {
        EventTime::Timed { start, end, .. } => (
            json!(start.format(INSTANT_FORMAT).to_string()),
            json!(end.format(INSTANT_FORMAT).to_string()),
        ),
        EventTime::AllDay { start, end } => (json!(start.to_string()), json!(end.to_string())),
    };
    let text = |t: &Option<String>| match t.as_deref().map(str::trim_end) {
        Some(t) if !t.is_empty() => json!(t),
        _ => Value::Null,
    };
    let mut f = Map::new();
    f.insert("title".into(), json!(data.title));
    f.insert(
        "description".into(),
        json!(rich_text::given(data.description.as_deref())),
    );
    f.insert(
        "description_html".into(),
        json!(rich_text::given(data.description_html.as_deref())),
    );
    f.insert("location".into(), text(&data.location));
    f.insert("start".into(), start);
    f.insert("end".into(), end);
    f.insert("reminder_minutes".into(), json!(data.reminder_minutes));
    f.insert("show_as".into(), json!(data.show_as));
    f.insert("importance".into(), json!(data.importance));
    f.insert("sensitivity".into(), json!(data.sensitivity));
    f.insert("categories".into(), json!(data.categories));
    f.insert("attendees".into(), json!(data.attendees));
    f
}

/// `data` with normalized `changes` applied (members that do not fit are ignored).
pub fn with_changes(mut data: EventData, changes: &Map<String, Value>) -> EventData {
    for (key, value) in changes {
        match key.as_str() {
            "title" => {
                if let Some(t) = value.as_str() {
                    data.title = t.to_owned();
                }
            }
            "description" => data.description = value.as_str().map(str::to_owned),
            "description_html" => data.description_html = value.as_str().map(str::to_owned),
            "location" => data.location = value.as_str().map(str::to_owned),
            "start" | "end" => {
                let is_start = key == "start";
                match &mut data.time {
                    EventTime::Timed { start, end, .. } => {
                        if let Some(t) = value
                            .as_str()
                            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        {
                            *(if is_start { start } else { end }) = t.with_timezone(&Utc);
                        }
                    }
                    EventTime::AllDay { start, end } => {
                        if let Some(d) = value
                            .as_str()
                            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                        {
                            *(if is_start { start } else { end }) = d;
                        }
                    }
                }
            }
            "reminder_minutes" => {
                data.reminder_minutes = value.as_i64().and_then(|m| i32::try_from(m).ok());
            }
            "show_as" => {
                if let Ok(v) = serde_json::from_value(value.clone()) {
                    data.show_as = v;
                }
            }
            "importance" => {
                if let Ok(v) = serde_json::from_value(value.clone()) {
                    data.importance = v;
                }
            }
            "sensitivity" => {
                if let Ok(v) = serde_json::from_value(value.clone()) {
                    data.sensitivity = v;
                }
            }
            "categories" => {
                if let Ok(v) = serde_json::from_value(value.clone()) {
                    data.categories = v;
                }
            }
            "attendees" => {
                if let Ok(v) = serde_json::from_value(value.clone()) {
                    data.attendees = v;
                }
            }
            _ => {}
        }
    }
    data
}

/// What differs between an occurrence and the series' plain occurrence on the same date.
pub fn changes_between(plain: &EventData, occurrence: &EventData) -> Map<String, Value> {
    let base = occurrence_fields(plain);
    occurrence_fields(occurrence)
        .into_iter()
        .filter(|(k, v)| base.get(k) != Some(v))
        .collect()
}

impl EventData {
    /// The plain occurrence of this series on `date` (its fields, the time moved there), as a
    /// single event.
    pub fn plain_occurrence(&self, date: NaiveDate) -> EventData {
        EventData {
            time: time_on(&self.time, date),
            recurrence: None,
            exceptions: Vec::new(),
            ..self.clone()
        }
    }

    /// The occurrence of this series whose original start is `key`, with its changes, unless
    /// there is none (not a date of the rule, or cancelled).
    pub fn occurrence(&self, key: &str) -> Option<(NaiveDate, EventData)> {
        let rule = self.recurrence.as_ref()?;
        let date = date_of(&self.time, key)?;
        if original_start(&self.time, date) != key || !rule.contains(first_day(&self.time), date) {
            return None;
        }
        let plain = self.plain_occurrence(date);
        match self.exceptions.iter().find(|e| e.original_start == key) {
            Some(e) if e.cancelled => None,
            Some(e) => Some((date, with_changes(plain, &e.changes))),
            None => Some((date, plain)),
        }
    }

    /// The occurrences overlapping `[from, to)` (an occurrence without duration counts at its
    /// start): the event itself for a single event; in start order.
    pub fn occurrences(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Occurrence> {
        let overlaps = |time: &EventTime| {
            let (start, end) = span(time);
            start < to && (end > from || (start == end && start >= from))
        };
        let Some(rule) = &self.recurrence else {
            return if overlaps(&self.time) {
                vec![Occurrence {
                    original_start: None,
                    modified: false,
                    data: self.clone(),
                }]
            } else {
                Vec::new()
            };
        };
        let (first_start, first_end) = span(&self.time);
        let length = (first_end - first_start).max(chrono::Duration::zero());
        let first = first_day(&self.time);
        // A day either side covers every offset of the zone.
        let window_start = (from - length - chrono::Duration::days(2)).date_naive();
        let window_end = (to + chrono::Duration::days(2)).date_naive();
        let mut out: Vec<Occurrence> = Vec::new();
        for date in rule.dates(first, window_start, window_end) {
            let key = original_start(&self.time, date);
            if self.exceptions.iter().any(|e| e.original_start == key) {
                continue;
            }
            let data = self.plain_occurrence(date);
            if overlaps(&data.time) {
                out.push(Occurrence {
                    original_start: Some(key),
                    modified: false,
                    data,
                });
            }
        }
        // Modified occurrences may have moved anywhere: each is checked on its own time.
        for exception in self.exceptions.iter().filter(|e| !e.cancelled) {
            if let Some((_, data)) = self.occurrence(&exception.original_start)
                && overlaps(&data.time)
            {
                out.push(Occurrence {
                    original_start: Some(exception.original_start.clone()),
                    modified: true,
                    data,
                });
            }
        }
        out.sort_by_key(|o| span(&o.data.time).0);
        out
    }

    /// The span the occurrences cover: from the earliest start to the latest end (`None`
    /// for a series that never ends).
    pub fn series_span(&self) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
        let (mut first, own_end) = span(&self.time);
        let Some(rule) = &self.recurrence else {
            return (first, Some(own_end));
        };
        let mut last = if rule.ends() {
            let day = first_day(&self.time);
            rule.dates(day, day, NaiveDate::MAX)
                .last()
                .map(|d| span(&time_on(&self.time, *d)).1)
        } else {
            None
        };
        for exception in self.exceptions.iter().filter(|e| !e.cancelled) {
            if let Some((_, data)) = self.occurrence(&exception.original_start) {
                let (start, end) = span(&data.time);
                first = first.min(start);
                last = last.map(|l| l.max(end));
            }
        }
        (first, last)
    }

    /// Keeps the exceptions of `before` (the series as it was) that still name an occurrence
    /// of this series, moved to the occurrence's new original start when the series moved:
    /// an exception follows its date. A switch between timed and all-day drops them all.
    pub fn carry_exceptions(&mut self, before: &EventData) {
        let Some(rule) = &self.recurrence else {
            self.exceptions.clear();
            return;
        };
        let same_kind = matches!(
            (&before.time, &self.time),
            (EventTime::Timed { .. }, EventTime::Timed { .. })
                | (EventTime::AllDay { .. }, EventTime::AllDay { .. })
        );
        if !same_kind {
            self.exceptions.clear();
            return;
        }
        let first = first_day(&self.time);
        let mut kept: Vec<OccurrenceException> = before
            .exceptions
            .iter()
            .filter_map(|e| {
                let date = date_of(&before.time, &e.original_start)?;
                rule.contains(first, date).then(|| OccurrenceException {
                    original_start: original_start(&self.time, date),
                    ..e.clone()
                })
            })
            .collect();
        kept.sort_by(|a, b| a.original_start.cmp(&b.original_start));
        kept.dedup_by(|a, b| a.original_start == b.original_start);
        self.exceptions = kept;
    }
}
