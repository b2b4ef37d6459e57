//! The synchronized fields of events and tasks in one normalized form, and the conversions
//! between it, the local rows and Graph's JSON.
//!
//! Fields are a JSON object with the local API's names. The base snapshot of a link is such an
//! object, so a three-way merge compares like with like, field by field.
//!
//! Times: a timed event is sent as its wall-clock time in its own zone, named as Windows names it
//! (`W. Europe Standard Time`), so that Outlook keeps the zone and daylight-saving time moves the
//! event as it should. Reads ask for UTC (`Prefer: outlook.timezone="UTC"`) and take the event's
//! own zone from `originalStartTimeZone`. In fields, timed events hold UTC instants and the
//! CLDR default IANA zone of their Windows zone (`time_zone`), so that `Europe/Vienna` here and
//! `W. Europe Standard Time` there compare equal; the local row keeps its own IANA name.
//! All-day events are dates: sent as midnights labelled UTC, read from the date part, never
//! moved by an offset; Graph's end is the exclusive midnight after the last day, the local end
//! date is inclusive. Task due and start dates are dates too; reminders and completion are
//! instants.

use chrono::{
    DateTime, Duration, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use entity::{calendar_events, tasks};
use serde_json::{Map, Value, json};

use crate::domain::{rich_text, time_zones};

/// A normalized item.
pub type Fields = Map<String, Value>;

/// An event's description in its two forms: one value, merged as one.
pub const DESCRIPTION_FIELDS: &[&str] = &["description", "description_html"];

/// The extension name under which the local id is stored on Microsoft's items.
pub const EXTENSION_NAME: &str = "com.m365sync.link";

fn text_or_null(value: Option<&str>) -> Value {
    match value.map(str::trim_end) {
        Some(text) if !text.is_empty() => Value::String(text.to_owned()),
        _ => Value::Null,
    }
}

/// A description as kept: as given, white space included; `null` when blank.
fn description(value: Option<&str>) -> Value {
    rich_text::given(value).map_or(Value::Null, |t| Value::String(t.to_owned()))
}

fn instant(value: &DateTime<Utc>) -> Value {
    Value::String(value.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn parse_instant(value: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn parse_date(value: &Value) -> Option<NaiveDate> {
    value.as_str()?.parse::<NaiveDate>().ok()
}

/// A zone name as Graph writes it: Windows or IANA, or Exchange's `tzone://Microsoft/Utc`.
/// `None` for what names no known zone (such as `tzone://Microsoft/Custom`).
fn graph_zone(name: &str) -> Option<Tz> {
    let name = name.trim();
    match name.strip_prefix("tzone://Microsoft/") {
        Some(special) if special.eq_ignore_ascii_case("Utc") => Some(Tz::UTC),
        Some(_) => None,
        None => time_zones::resolve(name),
    }
}

/// The IANA zone that stands for a zone in fields: the CLDR default zone of its Windows zone.
fn canonical_zone(tz: Tz) -> String {
    time_zones::iana_to_windows(tz.name())
        .and_then(time_zones::windows_to_iana)
        .unwrap_or(tz.name())
        .to_owned()
}

/// The wall-clock part of a `dateTimeTimeZone` (`{"dateTime": "...", "timeZone": "..."}`).
fn graph_wall(value: &Value) -> Option<NaiveDateTime> {
    let text = value.get("dateTime")?.as_str()?;
    let text = text.trim_end_matches('Z');
    // `FromStr` reads `%Y-%m-%dT%H:%M:%S%.f` without interpreting a format string.
    text.parse::<NaiveDateTime>()
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok())
}

/// The instant a `dateTimeTimeZone` stands for, in the zone it names (UTC when it names none,
/// as Graph assumes). A wall time repeated when clocks go back is its earlier instant, one
/// skipped when they go forward is an hour later, as Exchange reads them.
fn graph_instant(value: &Value) -> Option<DateTime<Utc>> {
    let wall = graph_wall(value)?;
    let tz = value
        .get("timeZone")
        .and_then(Value::as_str)
        .and_then(graph_zone)
        .unwrap_or(Tz::UTC);
    tz.from_local_datetime(&wall)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(wall + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// A `dateTimeTimeZone` with Graph's seven fractional digits.
fn graph_value(wall: NaiveDateTime, zone: &str) -> Value {
    json!({
        "dateTime": format!("{}.{:07}", wall.format("%Y-%m-%dT%H:%M:%S"), wall.nanosecond() / 100),
        "timeZone": zone,
    })
}

/// A date sent as its midnight labelled UTC, so that no offset can move it.
fn graph_date(date: NaiveDate) -> Value {
    graph_value(date.and_time(chrono::NaiveTime::MIN), "UTC")
}

/// The date of a task's due or start `dateTimeTimeZone`. To Do keeps such a date as the
/// midnight of the zone a client set it in and may return it converted to another zone; that
/// midnight lies within twelve hours of the date's own midnight for every zone from UTC-11 to
/// UTC+12, so the nearest midnight is the date.
fn graph_task_date(value: &Value) -> Option<NaiveDate> {
    let wall = graph_wall(value)?;
    let date = wall.date();
    if wall.hour() >= 12 {
        date.succ_opt()
    } else {
        Some(date)
    }
}

fn json_array(text: &str) -> Value {
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_array)
        .unwrap_or_else(|| json!([]))
}

fn snake_to_camel(value: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in value.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn camel_to_snake(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if c.is_uppercase() {
            out.push('_');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn str_field(graph: &Value, key: &str, default: &str) -> String {
    graph
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_owned()
}

// ---- events ---------------------------------------------------------------------------------

/// The fields of a local event.
pub fn event_from_local(m: &calendar_events::Model) -> Fields {
    let mut f = Fields::new();
    f.insert("title".into(), json!(m.title));
    f.insert("description".into(), description(m.description.as_deref()));
    f.insert(
        "description_html".into(),
        description(m.description_html.as_deref()),
    );
    f.insert("location".into(), text_or_null(m.location.as_deref()));
    f.insert("is_all_day".into(), json!(m.is_all_day));
    if m.is_all_day {
        f.insert("start".into(), json!(m.start_date));
        f.insert("end".into(), json!(m.end_date));
        f.insert("time_zone".into(), Value::Null);
    } else {
        f.insert(
            "time_zone".into(),
            json!(canonical_zone(
                m.time_zone
                    .as_deref()
                    .and_then(time_zones::parse_iana)
                    .unwrap_or(Tz::UTC)
            )),
        );
        f.insert(
            "start".into(),
            m.start_at
                .map_or(Value::Null, |t| instant(&t.with_timezone(&Utc))),
        );
        f.insert(
            "end".into(),
            m.end_at
                .map_or(Value::Null, |t| instant(&t.with_timezone(&Utc))),
        );
    }
    f.insert("reminder_minutes".into(), json!(m.reminder_minutes));
    f.insert("show_as".into(), json!(m.show_as));
    f.insert("importance".into(), json!(m.importance));
    f.insert("sensitivity".into(), json!(m.sensitivity));
    f.insert("categories".into(), json_array(&m.categories));
    f.insert("attendees".into(), json_array(&m.attendees));
    f
}

/// The zone an event was set in: `originalStartTimeZone`, else the zone of `start`, else UTC.
fn event_zone(g: &Value) -> Tz {
    g.get("originalStartTimeZone")
        .and_then(Value::as_str)
        .and_then(graph_zone)
        .or_else(|| {
            g.get("start")
                .and_then(|s| s.get("timeZone"))
                .and_then(Value::as_str)
                .and_then(graph_zone)
        })
        .unwrap_or(Tz::UTC)
}

/// The date of an all-day event's start or end: the date part as Graph writes it (a midnight,
/// whatever zone labels it). A time that is not midnight is a midnight of the event's own zone
/// shown in another zone, and is read back in the event's zone.
fn all_day_date(value: &Value, g: &Value) -> Option<NaiveDate> {
    let wall = graph_wall(value)?;
    if wall.time() == chrono::NaiveTime::MIN {
        return Some(wall.date());
    }
    graph_instant(value).map(|t| t.with_timezone(&event_zone(g)).date_naive())
}

/// The description of a Graph body, as text and as HTML (`null` for a text body). An HTML body
/// is kept byte for byte, with the text read in it; one with neither text nor an image is no
/// description (Exchange writes an empty document around an empty body).
fn event_body(body: Option<&Value>) -> (Value, Value) {
    let content = body
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let is_html = body
        .and_then(|b| b.get("contentType"))
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    if !is_html {
        return (description(Some(content)), Value::Null);
    }
    let text = rich_text::html_to_text(content);
    if text.trim().is_empty() && !content.to_ascii_lowercase().contains("<img") {
        return (Value::Null, Value::Null);
    }
    (description(Some(&text)), json!(content))
}

/// The fields of a Graph event (its times in whichever zone Graph labels them with).
pub fn event_from_graph(g: &Value) -> Fields {
    let mut f = Fields::new();
    let all_day = g.get("isAllDay").and_then(Value::as_bool).unwrap_or(false);
    f.insert("title".into(), json!(str_field(g, "subject", "")));
    let (text, html) = event_body(g.get("body"));
    f.insert("description".into(), text);
    f.insert("description_html".into(), html);
    f.insert(
        "location".into(),
        text_or_null(
            g.get("location")
                .and_then(|l| l.get("displayName"))
                .and_then(Value::as_str),
        ),
    );
    f.insert("is_all_day".into(), json!(all_day));
    if all_day {
        let start = g.get("start").and_then(|v| all_day_date(v, g));
        // Graph's end is the exclusive midnight after the last day.
        let end = g
            .get("end")
            .and_then(|v| all_day_date(v, g))
            .map(|end| end.pred_opt().unwrap_or(end))
            .map(|end| start.map_or(end, |start| end.max(start)));
        f.insert(
            "start".into(),
            start.map_or(Value::Null, |d| json!(d.to_string())),
        );
        f.insert(
            "end".into(),
            end.map_or(Value::Null, |d| json!(d.to_string())),
        );
        f.insert("time_zone".into(), Value::Null);
    } else {
        let start = g.get("start").and_then(graph_instant);
        let end = g.get("end").and_then(graph_instant);
        f.insert("start".into(), start.map_or(Value::Null, |t| instant(&t)));
        f.insert("end".into(), end.map_or(Value::Null, |t| instant(&t)));
        f.insert("time_zone".into(), json!(canonical_zone(event_zone(g))));
    }
    let reminder_on = g
        .get("isReminderOn")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    f.insert(
        "reminder_minutes".into(),
        if reminder_on {
            g.get("reminderMinutesBeforeStart")
                .cloned()
                .unwrap_or(Value::Null)
        } else {
            Value::Null
        },
    );
    f.insert(
        "show_as".into(),
        json!(camel_to_snake(&str_field(g, "showAs", "busy"))),
    );
    f.insert(
        "importance".into(),
        json!(str_field(g, "importance", "normal")),
    );
    f.insert(
        "sensitivity".into(),
        json!(str_field(g, "sensitivity", "normal")),
    );
    f.insert(
        "categories".into(),
        g.get("categories")
            .cloned()
            .filter(Value::is_array)
            .unwrap_or_else(|| json!([])),
    );
    let attendees: Vec<Value> = g
        .get("attendees")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|a| {
                    json!({
                        "email": a.get("emailAddress").and_then(|e| e.get("address")).and_then(Value::as_str).unwrap_or("").to_lowercase(),
                        "name": a.get("emailAddress").and_then(|e| e.get("name")).cloned().unwrap_or(Value::Null),
                        "type": a.get("type").and_then(Value::as_str).unwrap_or("required"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    f.insert("attendees".into(), Value::Array(attendees));
    f
}

/// Graph properties that are written together: a change to one sends them all (an event's
/// times with its all-day flag, a reminder with its switch, a task's status with its completion).
const WRITTEN_TOGETHER: &[&[&str]] = &[
    &["isAllDay", "start", "end"],
    &["isReminderOn", "reminderMinutesBeforeStart"],
    &["isReminderOn", "reminderDateTime"],
    &["status", "completedDateTime"],
];

/// The properties of a Graph body (`body`, built from the local fields) that differ from the
/// body of the fields Microsoft holds (`base`): what a minimal `PATCH` sends, so that Microsoft
/// keeps every property that was not changed here. Properties written together go together.
pub fn changed_properties(body: &Value, base: &Value) -> serde_json::Map<String, Value> {
    let (Some(body), Some(base)) = (body.as_object(), base.as_object()) else {
        return serde_json::Map::new();
    };
    let differs = |key: &str| body.get(key) != base.get(key);
    let mut out = serde_json::Map::new();
    for (key, value) in body {
        if !differs(key) {
            continue;
        }
        out.insert(key.clone(), value.clone());
        for group in WRITTEN_TOGETHER
            .iter()
            .filter(|g| g.contains(&key.as_str()))
        {
            for member in group.iter() {
                if let Some(v) = body.get(*member) {
                    out.insert((*member).to_owned(), v.clone());
                }
            }
        }
    }
    out
}

/// A Graph event body (for `POST` and `PATCH`) with the given fields.
pub fn event_to_graph(f: &Fields) -> Value {
    let all_day = f
        .get("is_all_day")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (start, end) = if all_day {
        let start = f.get("start").and_then(parse_date);
        let end = f.get("end").and_then(parse_date).and_then(|d| d.succ_opt());
        (
            start.map_or(Value::Null, graph_date),
            end.map_or(Value::Null, graph_date),
        )
    } else {
        // The wall time in the event's own zone, named as Windows names it.
        let (tz, zone) = f
            .get("time_zone")
            .and_then(Value::as_str)
            .and_then(time_zones::parse_iana)
            .and_then(|tz| time_zones::iana_to_windows(tz.name()).map(|w| (tz, w)))
            .unwrap_or((Tz::UTC, "UTC"));
        let wall = |key: &str| {
            f.get(key).and_then(parse_instant).map_or(Value::Null, |t| {
                graph_value(t.with_timezone(&tz).naive_local(), zone)
            })
        };
        (wall("start"), wall("end"))
    };
    let reminder = f.get("reminder_minutes").cloned().unwrap_or(Value::Null);
    let attendees: Vec<Value> = f
        .get("attendees")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|a| {
                    let mut address = json!({"address": a.get("email").cloned().unwrap_or(Value::Null)});
                    if let Some(name) = a.get("name").filter(|n| !n.is_null()) {
                        address["name"] = name.clone();
                    }
                    json!({"emailAddress": address, "type": a.get("type").cloned().unwrap_or(json!("required"))})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "subject": f.get("title").cloned().unwrap_or(json!("")),
        "body": event_body_to_graph(f),
        "location": {"displayName": f.get("location").and_then(Value::as_str).unwrap_or("")},
        "isAllDay": all_day,
        "start": start,
        "end": end,
        "isReminderOn": !reminder.is_null(),
        "reminderMinutesBeforeStart": if reminder.is_null() { json!(15) } else { reminder },
        "showAs": snake_to_camel(f.get("show_as").and_then(Value::as_str).unwrap_or("busy")),
        "importance": f.get("importance").cloned().unwrap_or(json!("normal")),
        "sensitivity": f.get("sensitivity").cloned().unwrap_or(json!("normal")),
        "categories": f.get("categories").cloned().unwrap_or(json!([])),
        "attendees": attendees,
    })
}

/// The Graph body of an event's description: its HTML when it has one, else its text.
fn event_body_to_graph(f: &Fields) -> Value {
    match f.get("description_html").and_then(Value::as_str) {
        Some(html) => json!({"contentType": "html", "content": html}),
        None => json!({
            "contentType": "text",
            "content": f.get("description").and_then(Value::as_str).unwrap_or(""),
        }),
    }
}

/// Writes fields into a local event row. A timed event keeps its own IANA zone when it stands
/// for the same Windows zone as the fields' zone.
pub fn event_into_local(f: &Fields, m: &mut calendar_events::Model) {
    m.title = f
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    m.description = f
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    m.description_html = f
        .get("description_html")
        .and_then(Value::as_str)
        .map(str::to_owned);
    m.location = f.get("location").and_then(Value::as_str).map(str::to_owned);
    m.is_all_day = f
        .get("is_all_day")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if m.is_all_day {
        m.start_date = f.get("start").and_then(Value::as_str).map(str::to_owned);
        m.end_date = f.get("end").and_then(Value::as_str).map(str::to_owned);
        m.start_at = None;
        m.end_at = None;
    } else {
        m.start_at = f
            .get("start")
            .and_then(parse_instant)
            .map(|t| t.fixed_offset());
        m.end_at = f
            .get("end")
            .and_then(parse_instant)
            .map(|t| t.fixed_offset());
        m.start_date = None;
        m.end_date = None;
        let current = m.time_zone.as_deref().and_then(time_zones::parse_iana);
        match f
            .get("time_zone")
            .and_then(Value::as_str)
            .and_then(time_zones::parse_iana)
        {
            Some(zone) => {
                if current.is_none_or(|c| canonical_zone(c) != canonical_zone(zone)) {
                    m.time_zone = Some(zone.name().to_owned());
                }
            }
            // Fields without a zone (a snapshot from before zones were synchronized) keep
            // the row's zone.
            None => {
                if current.is_none() {
                    m.time_zone = Some(Tz::UTC.name().to_owned());
                }
            }
        }
    }
    m.reminder_minutes = f
        .get("reminder_minutes")
        .and_then(Value::as_i64)
        .and_then(|v| i32::try_from(v).ok());
    m.show_as = f
        .get("show_as")
        .and_then(Value::as_str)
        .unwrap_or("busy")
        .to_owned();
    m.importance = f
        .get("importance")
        .and_then(Value::as_str)
        .unwrap_or("normal")
        .to_owned();
    m.sensitivity = f
        .get("sensitivity")
        .and_then(Value::as_str)
        .unwrap_or("normal")
        .to_owned();
    m.categories = f
        .get("categories")
        .cloned()
        .unwrap_or(json!([]))
        .to_string();
    m.attendees = f.get("attendees").cloned().unwrap_or(json!([])).to_string();
}

// ---- tasks ----------------------------------------------------------------------------------

/// The fields of a local task.
pub fn task_from_local(m: &tasks::Model) -> Fields {
    let mut f = Fields::new();
    f.insert("title".into(), json!(m.title));
    f.insert("description".into(), description(m.description.as_deref()));
    f.insert("status".into(), json!(m.status));
    f.insert("importance".into(), json!(m.importance));
    f.insert("due_date".into(), json!(m.due_date));
    f.insert("start_date".into(), json!(m.start_date));
    f.insert(
        "reminder_at".into(),
        m.reminder_at
            .map_or(Value::Null, |t| instant(&t.with_timezone(&Utc))),
    );
    f.insert(
        "completed_at".into(),
        m.completed_at
            .map_or(Value::Null, |t| instant(&t.with_timezone(&Utc))),
    );
    f.insert("categories".into(), json_array(&m.categories));
    f
}

/// The fields of a Graph task (its times in whichever zone Graph labels them with).
pub fn task_from_graph(g: &Value) -> Fields {
    let mut f = Fields::new();
    let date = |key: &str| {
        g.get(key)
            .and_then(graph_task_date)
            .map_or(Value::Null, |d| json!(d.to_string()))
    };
    let at = |key: &str| {
        g.get(key)
            .and_then(graph_instant)
            .map_or(Value::Null, |t| instant(&t))
    };
    f.insert("title".into(), json!(str_field(g, "title", "")));
    f.insert(
        "description".into(),
        description(
            g.get("body")
                .and_then(|b| b.get("content"))
                .and_then(Value::as_str),
        ),
    );
    f.insert(
        "status".into(),
        json!(camel_to_snake(&str_field(g, "status", "notStarted"))),
    );
    f.insert(
        "importance".into(),
        json!(str_field(g, "importance", "normal")),
    );
    f.insert("due_date".into(), date("dueDateTime"));
    f.insert("start_date".into(), date("startDateTime"));
    let reminder_on = g
        .get("isReminderOn")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    f.insert(
        "reminder_at".into(),
        if reminder_on {
            at("reminderDateTime")
        } else {
            Value::Null
        },
    );
    f.insert("completed_at".into(), at("completedDateTime"));
    f.insert(
        "categories".into(),
        g.get("categories")
            .cloned()
            .filter(Value::is_array)
            .unwrap_or_else(|| json!([])),
    );
    f
}

/// A Graph task body (for `POST` and `PATCH`) with the given fields.
pub fn task_to_graph(f: &Fields) -> Value {
    let date = |key: &str| {
        f.get(key)
            .and_then(parse_date)
            .map_or(Value::Null, graph_date)
    };
    let at = |key: &str| {
        f.get(key)
            .and_then(parse_instant)
            .map_or(Value::Null, |t| graph_value(t.naive_utc(), "UTC"))
    };
    let reminder = at("reminder_at");
    let mut body = json!({
        "title": f.get("title").cloned().unwrap_or(json!("")),
        "body": {"contentType": "text", "content": f.get("description").and_then(Value::as_str).unwrap_or("")},
        "status": snake_to_camel(f.get("status").and_then(Value::as_str).unwrap_or("not_started")),
        "importance": f.get("importance").cloned().unwrap_or(json!("normal")),
        "dueDateTime": date("due_date"),
        "startDateTime": date("start_date"),
        "isReminderOn": !reminder.is_null(),
        "categories": f.get("categories").cloned().unwrap_or(json!([])),
    });
    if !reminder.is_null() {
        body["reminderDateTime"] = reminder;
    }
    let completed = at("completed_at");
    if !completed.is_null() {
        body["completedDateTime"] = completed;
    }
    body
}

/// Writes fields into a local task row.
pub fn task_into_local(f: &Fields, m: &mut tasks::Model) {
    m.title = f
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    m.description = f
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    m.status = f
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("not_started")
        .to_owned();
    m.importance = f
        .get("importance")
        .and_then(Value::as_str)
        .unwrap_or("normal")
        .to_owned();
    m.due_date = f.get("due_date").and_then(Value::as_str).map(str::to_owned);
    m.start_date = f
        .get("start_date")
        .and_then(Value::as_str)
        .map(str::to_owned);
    m.reminder_at = f
        .get("reminder_at")
        .and_then(parse_instant)
        .map(|t| t.fixed_offset());
    m.completed_at = f
        .get("completed_at")
        .and_then(parse_instant)
        .map(|t| t.fixed_offset());
    m.categories = f
        .get("categories")
        .cloned()
        .unwrap_or(json!([]))
        .to_string();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_day_end_dates_are_inclusive_locally_and_exclusive_at_graph() {
        let mut f = Fields::new();
        f.insert("is_all_day".into(), json!(true));
        f.insert("start".into(), json!("2026-07-01"));
        f.insert("end".into(), json!("2026-07-03"));
        let graph = event_to_graph(&f);
        assert_eq!(graph["end"]["dateTime"], "2026-07-04T00:00:00.0000000");
        let back = event_from_graph(&graph);
        assert_eq!(back["start"], "2026-07-01");
        assert_eq!(back["end"], "2026-07-03");
    }

    fn timed(start: &str, end: &str, zone: &str) -> Fields {
        let mut f = Fields::new();
        f.insert("is_all_day".into(), json!(false));
        f.insert("start".into(), json!(start));
        f.insert("end".into(), json!(end));
        f.insert("time_zone".into(), json!(zone));
        f
    }

    #[test]
    fn timed_events_travel_as_wall_time_in_their_windows_zone() {
        let cases = [
            // Berlin in winter (+01:00) and in summer (+02:00), around both transitions.
            (
                "2026-03-28T09:00:00Z",
                "Europe/Berlin",
                "2026-03-28T10:00:00.0000000",
                "W. Europe Standard Time",
            ),
            (
                "2026-03-30T08:00:00Z",
                "Europe/Berlin",
                "2026-03-30T10:00:00.0000000",
                "W. Europe Standard Time",
            ),
            (
                "2026-10-26T09:00:00Z",
                "Europe/Berlin",
                "2026-10-26T10:00:00.0000000",
                "W. Europe Standard Time",
            ),
            (
                "2026-03-09T14:00:00Z",
                "America/New_York",
                "2026-03-09T10:00:00.0000000",
                "Eastern Standard Time",
            ),
            (
                "2026-04-06T00:00:00Z",
                "Australia/Sydney",
                "2026-04-06T10:00:00.0000000",
                "AUS Eastern Standard Time",
            ),
        ];
        for (utc, zone, wall, windows) in cases {
            let graph = event_to_graph(&timed(utc, utc, zone));
            assert_eq!(graph["start"]["dateTime"], wall, "{utc} in {zone}");
            assert_eq!(graph["start"]["timeZone"], windows, "{utc} in {zone}");
            let mut read = graph.clone();
            read["originalStartTimeZone"] = json!(windows);
            let back = event_from_graph(&read);
            assert_eq!(back["start"], utc, "{utc} in {zone}");
            assert_eq!(back["time_zone"], zone, "{utc} in {zone}");
        }
    }

    #[test]
    fn a_zone_graph_names_by_its_windows_name_keeps_the_local_iana_name() {
        let mut m = calendar_events::Model {
            time_zone: Some("Europe/Vienna".to_owned()),
            ..sample_event()
        };
        let f = event_from_local(&m);
        assert_eq!(f["time_zone"], "Europe/Berlin");
        event_into_local(&f, &mut m);
        assert_eq!(m.time_zone.as_deref(), Some("Europe/Vienna"));
        let london = timed(
            "2026-07-01T08:00:00Z",
            "2026-07-01T09:00:00Z",
            "Europe/London",
        );
        event_into_local(&london, &mut m);
        assert_eq!(m.time_zone.as_deref(), Some("Europe/London"));
    }

    #[test]
    fn graph_times_are_read_in_the_zone_they_are_labelled_with() {
        let g = json!({
            "isAllDay": false,
            "start": {"dateTime": "2026-07-01T09:00:00.0000000", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2026-07-01T10:00:00.0000000", "timeZone": "America/Los_Angeles"},
        });
        let f = event_from_graph(&g);
        assert_eq!(f["start"], "2026-07-01T16:00:00Z");
        assert_eq!(f["end"], "2026-07-01T17:00:00Z");
        assert_eq!(f["time_zone"], "America/Los_Angeles");
    }

    #[test]
    fn all_day_dates_shown_in_another_zone_are_read_in_the_events_zone() {
        // An all-day event of 1 to 3 July in Auckland (+12:00), shown in UTC.
        let g = json!({
            "isAllDay": true,
            "originalStartTimeZone": "New Zealand Standard Time",
            "start": {"dateTime": "2026-06-30T12:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-07-03T12:00:00.0000000", "timeZone": "UTC"},
        });
        let f = event_from_graph(&g);
        assert_eq!(f["start"], "2026-07-01");
        assert_eq!(f["end"], "2026-07-03");
    }

    #[test]
    fn task_dates_are_the_nearest_midnight_of_what_graph_returns() {
        let cases = [
            ("2026-07-01T00:00:00.0000000", "2026-07-01"),
            ("2026-07-01T04:00:00.0000000", "2026-07-01"),
            ("2026-06-30T22:00:00.0000000", "2026-07-01"),
            ("2026-06-30T12:00:00.0000000", "2026-07-01"),
        ];
        for (wall, date) in cases {
            let g = json!({"dueDateTime": {"dateTime": wall, "timeZone": "UTC"}});
            assert_eq!(task_from_graph(&g)["due_date"], date, "{wall}");
        }
    }

    fn sample_event() -> calendar_events::Model {
        let now = Utc::now().fixed_offset();
        calendar_events::Model {
            title: "t".into(),
            start_at: Some(now),
            end_at: Some(now),
            time_zone: Some("UTC".into()),
            ..crate::domain::calendar_events::blank(uuid::Uuid::now_v7(), uuid::Uuid::now_v7())
        }
    }

    #[test]
    fn enum_spellings_convert_both_ways() {
        assert_eq!(snake_to_camel("working_elsewhere"), "workingElsewhere");
        assert_eq!(camel_to_snake("waitingOnOthers"), "waiting_on_others");
    }
}
