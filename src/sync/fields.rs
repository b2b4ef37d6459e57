//! The synchronized fields of events and tasks in one normalized form, and the conversions
//! between it, the local rows and Graph's JSON.
//!
//! Fields are a JSON object with the local API's names. The base snapshot of a link is such an
//! object, so a three-way merge compares like with like, field by field. Times travel to and
//! from Graph in UTC (`Prefer: outlook.timezone="UTC"` on reads); the local IANA zone of a
//! timed event is kept on the local side.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use entity::{calendar_events, tasks};
use serde_json::{Map, Value, json};

/// A normalized item.
pub type Fields = Map<String, Value>;

/// The extension name under which the local id is stored on Microsoft's items.
pub const EXTENSION_NAME: &str = "com.m365sync.link";

fn text_or_null(value: Option<&str>) -> Value {
    match value.map(str::trim_end) {
        Some(text) if !text.is_empty() => Value::String(text.to_owned()),
        _ => Value::Null,
    }
}

fn instant(value: &DateTime<Utc>) -> Value {
    Value::String(value.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn parse_instant(value: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn parse_date(value: &Value) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value.as_str()?, "%Y-%m-%d").ok()
}

/// `{"dateTime": "...", "timeZone": "UTC"}` (Graph's `dateTimeTimeZone`) as a UTC instant.
fn graph_time(value: &Value) -> Option<NaiveDateTime> {
    let text = value.get("dateTime")?.as_str()?;
    let text = text.trim_end_matches('Z');
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

fn graph_utc(value: NaiveDateTime) -> Value {
    json!({"dateTime": value.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"})
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
    f.insert("description".into(), text_or_null(m.description.as_deref()));
    f.insert("location".into(), text_or_null(m.location.as_deref()));
    f.insert("is_all_day".into(), json!(m.is_all_day));
    if m.is_all_day {
        f.insert("start".into(), json!(m.start_date));
        f.insert("end".into(), json!(m.end_date));
    } else {
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

/// The fields of a Graph event read with `Prefer: outlook.timezone="UTC"`.
pub fn event_from_graph(g: &Value) -> Fields {
    let mut f = Fields::new();
    let all_day = g.get("isAllDay").and_then(Value::as_bool).unwrap_or(false);
    f.insert("title".into(), json!(str_field(g, "subject", "")));
    f.insert(
        "description".into(),
        text_or_null(g.pointer("/body/content").and_then(Value::as_str)),
    );
    f.insert(
        "location".into(),
        text_or_null(g.pointer("/location/displayName").and_then(Value::as_str)),
    );
    f.insert("is_all_day".into(), json!(all_day));
    let start = g.get("start").and_then(graph_time);
    let end = g.get("end").and_then(graph_time);
    if all_day {
        f.insert(
            "start".into(),
            start.map_or(Value::Null, |t| json!(t.date().to_string())),
        );
        // Graph's end is the exclusive midnight after the last day.
        f.insert(
            "end".into(),
            end.map_or(Value::Null, |t| {
                json!(t.date().pred_opt().unwrap_or(t.date()).to_string())
            }),
        );
    } else {
        f.insert(
            "start".into(),
            start.map_or(Value::Null, |t| instant(&t.and_utc())),
        );
        f.insert(
            "end".into(),
            end.map_or(Value::Null, |t| instant(&t.and_utc())),
        );
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
                        "email": a.pointer("/emailAddress/address").and_then(Value::as_str).unwrap_or("").to_lowercase(),
                        "name": a.pointer("/emailAddress/name").cloned().unwrap_or(Value::Null),
                        "type": a.get("type").and_then(Value::as_str).unwrap_or("required"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    f.insert("attendees".into(), Value::Array(attendees));
    f
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
            start.and_then(|d| d.and_hms_opt(0, 0, 0)),
            end.and_then(|d| d.and_hms_opt(0, 0, 0)),
        )
    } else {
        (
            f.get("start")
                .and_then(parse_instant)
                .map(|t| t.naive_utc()),
            f.get("end").and_then(parse_instant).map(|t| t.naive_utc()),
        )
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
        "body": {"contentType": "text", "content": f.get("description").and_then(Value::as_str).unwrap_or("")},
        "location": {"displayName": f.get("location").and_then(Value::as_str).unwrap_or("")},
        "isAllDay": all_day,
        "start": start.map_or(Value::Null, graph_utc),
        "end": end.map_or(Value::Null, graph_utc),
        "isReminderOn": !reminder.is_null(),
        "reminderMinutesBeforeStart": if reminder.is_null() { json!(15) } else { reminder },
        "showAs": snake_to_camel(f.get("show_as").and_then(Value::as_str).unwrap_or("busy")),
        "importance": f.get("importance").cloned().unwrap_or(json!("normal")),
        "sensitivity": f.get("sensitivity").cloned().unwrap_or(json!("normal")),
        "categories": f.get("categories").cloned().unwrap_or(json!([])),
        "attendees": attendees,
    })
}

/// Writes fields into a local event row (keeping its time zone for timed events).
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
        if m.time_zone.is_none() {
            m.time_zone = Some("UTC".to_owned());
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
    f.insert("description".into(), text_or_null(m.description.as_deref()));
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

/// The fields of a Graph task read with `Prefer: outlook.timezone="UTC"`.
pub fn task_from_graph(g: &Value) -> Fields {
    let mut f = Fields::new();
    let date = |key: &str| {
        g.get(key)
            .and_then(graph_time)
            .map_or(Value::Null, |t| json!(t.date().to_string()))
    };
    let at = |key: &str| {
        g.get(key)
            .and_then(graph_time)
            .map_or(Value::Null, |t| instant(&t.and_utc()))
    };
    f.insert("title".into(), json!(str_field(g, "title", "")));
    f.insert(
        "description".into(),
        text_or_null(g.pointer("/body/content").and_then(Value::as_str)),
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
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(Value::Null, graph_utc)
    };
    let at = |key: &str| {
        f.get(key)
            .and_then(parse_instant)
            .map_or(Value::Null, |t| graph_utc(t.naive_utc()))
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
        assert_eq!(graph["end"]["dateTime"], "2026-07-04T00:00:00");
        let back = event_from_graph(&graph);
        assert_eq!(back["start"], "2026-07-01");
        assert_eq!(back["end"], "2026-07-03");
    }

    #[test]
    fn enum_spellings_convert_both_ways() {
        assert_eq!(snake_to_camel("working_elsewhere"), "workingElsewhere");
        assert_eq!(camel_to_snake("waitingOnOthers"), "waiting_on_others");
    }
}
