//! Series in the sync: a local series is one item linked to Graph's series master, compared
//! and merged through two more normalized fields beside the event's own (whose `time_zone` is
//! the zone the series repeats in):
//!
//! - `recurrence`: the local recurrence rule (`null` for a single event);
//! - `exceptions`: the series' modified and cancelled occurrences, by original start, as the
//!   local side stores them (`null` for a single event).
//!
//! On Graph's side a series is its master (`type: seriesMaster`, with a `patternedRecurrence`)
//! and its instances (`/events/{id}/instances` over the sync window): an instance of
//! `type: exception` is a modified occurrence (its `originalStart` is the key), a date of the
//! pattern without an instance is a cancelled occurrence. Exceptions and cancellations outside
//! the window cannot be seen through instances: the local ones there are kept as they are.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use entity::calendar_events;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    fields::{self, Fields},
    local,
};
use crate::domain::links::Resource;
use crate::domain::{
    calendar_events::{
        EventData, EventTime, OccurrenceException, RecurrenceRule, Rule,
        recurrence::{DayOfWeek, PatternType, RangeType, RecurrencePattern, RecurrenceRange},
        series::{self, INSTANT_FORMAT},
    },
    time_zones,
};

/// The span of the calendar the sync covers: what `/instances` is asked for.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Start.
    pub from: DateTime<Utc>,
    /// End (excluded).
    pub to: DateTime<Utc>,
}

impl Window {
    /// The part of the window where a missing instance surely means a cancelled occurrence:
    /// two days in from each edge, so that an occurrence straddling an edge never counts.
    fn inner(self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.from + Duration::days(2), self.to - Duration::days(2))
    }

    /// The query that asks Graph for the instances of a series over the window.
    pub fn query(self) -> String {
        format!(
            "startDateTime={}&endDateTime={}",
            self.from.format(INSTANT_FORMAT),
            self.to.format(INSTANT_FORMAT)
        )
    }
}

/// Whether normalized fields are those of a series.
pub fn is_series(f: &Fields) -> bool {
    f.get("recurrence").is_some_and(|r| !r.is_null())
}

/// Adds the series fields of a local event to its normalized fields.
pub fn extend_local(m: &calendar_events::Model, f: &mut Fields) {
    let parsed = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .unwrap_or(Value::Null)
    };
    let recurrence = parsed(&m.recurrence);
    let series = !recurrence.is_null();
    f.insert("recurrence".into(), recurrence);
    f.insert(
        "exceptions".into(),
        if series {
            match parsed(&m.exceptions) {
                Value::Null => json!([]),
                other => other,
            }
        } else {
            Value::Null
        },
    );
}

/// Writes the series fields into a local event row (after its own fields), with the span its
/// occurrences cover.
pub fn into_local(f: &Fields, m: &mut calendar_events::Model) {
    let rule = f
        .get("recurrence")
        .filter(|r| !r.is_null())
        .and_then(|r| serde_json::from_value::<RecurrenceRule>(r.clone()).ok());
    m.series_start_at = None;
    m.series_end_at = None;
    let Some(rule) = rule else {
        m.recurrence = None;
        m.exceptions = None;
        return;
    };
    m.recurrence = serde_json::to_string(&rule).ok();
    m.exceptions = Some(
        f.get("exceptions")
            .filter(|e| e.is_array())
            .cloned()
            .unwrap_or_else(|| json!([]))
            .to_string(),
    );
    if let Ok(data) = EventData::from_model(m) {
        let (start, end) = data.series_span();
        m.series_start_at = Some(start.fixed_offset());
        m.series_end_at = end.map(|e| e.fixed_offset());
    }
}

/// The fields of a Graph event that is not a series master (series fields `null`).
pub fn single_from_graph(g: &Value) -> Fields {
    let mut f = fields::event_from_graph(g);
    for key in ["recurrence", "exceptions"] {
        f.insert(key.into(), Value::Null);
    }
    f
}

/// A series (or single event) as the local side would hold it, from normalized fields.
fn series_data(f: &Fields) -> Option<EventData> {
    match local::prepare(Uuid::nil(), Resource::Calendar, f) {
        local::NewItem::Event(m) => EventData::from_model(&m).ok(),
        local::NewItem::Task(_) => None,
    }
}

fn camel(value: &str) -> String {
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

fn snake(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if c.is_uppercase() && !out.is_empty() {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

fn wire<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(camel))
        .unwrap_or_default()
}

fn from_wire<T: serde::de::DeserializeOwned>(value: &Value) -> Option<T> {
    serde_json::from_value(json!(snake(value.as_str()?))).ok()
}

/// Graph's `patternedRecurrence` for a local rule whose series starts on `first` in `zone`
/// (a Windows zone name).
pub fn rule_to_graph(rule: &RecurrenceRule, first: NaiveDate, zone: &str) -> Value {
    let p = &rule.pattern;
    let mut pattern = json!({
        "type": wire(&p.pattern_type),
        "interval": p.interval,
        "firstDayOfWeek": wire(&p.first_day_of_week),
    });
    if !p.days_of_week.is_empty() {
        pattern["daysOfWeek"] = json!(p.days_of_week.iter().map(wire).collect::<Vec<_>>());
    }
    if let Some(day) = p.day_of_month {
        pattern["dayOfMonth"] = json!(day);
    }
    if let Some(month) = p.month {
        pattern["month"] = json!(month);
    }
    if let Some(index) = p.index {
        pattern["index"] = json!(wire(&index));
    }
    let mut range = json!({
        "type": wire(&rule.range.range_type),
        "startDate": first.to_string(),
        "recurrenceTimeZone": zone,
    });
    if let Some(end) = &rule.range.end_date {
        range["endDate"] = json!(end);
    }
    if let Some(count) = rule.range.number_of_occurrences {
        range["numberOfOccurrences"] = json!(count);
    }
    json!({"pattern": pattern, "range": range})
}

/// The local rule of Graph's `patternedRecurrence` (members that do not apply to the pattern
/// or range type, which Graph fills with defaults, are dropped); `None` when it has no local
/// equivalent.
pub fn rule_from_graph(v: &Value) -> Option<RecurrenceRule> {
    let p = v.get("pattern")?;
    let r = v.get("range")?;
    let pattern_type: PatternType = from_wire(p.get("type")?)?;
    let range_type: RangeType = from_wire(r.get("type")?)?;
    let (days, day_of_month, month, index) = match pattern_type {
        PatternType::Daily => (false, false, false, false),
        PatternType::Weekly => (true, false, false, false),
        PatternType::AbsoluteMonthly => (false, true, false, false),
        PatternType::RelativeMonthly => (true, false, false, true),
        PatternType::AbsoluteYearly => (false, true, true, false),
        PatternType::RelativeYearly => (true, false, true, true),
    };
    let number = |key: &str| {
        p.get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    let rule = RecurrenceRule {
        pattern: RecurrencePattern {
            pattern_type,
            interval: number("interval").unwrap_or(1),
            days_of_week: if days {
                p.get("daysOfWeek")
                    .and_then(Value::as_array)
                    .map(|list| list.iter().filter_map(from_wire::<DayOfWeek>).collect())
                    .unwrap_or_default()
            } else {
                Vec::new()
            },
            day_of_month: number("dayOfMonth").filter(|_| day_of_month),
            month: number("month").filter(|_| month),
            index: p.get("index").and_then(from_wire).filter(|_| index),
            first_day_of_week: p
                .get("firstDayOfWeek")
                .and_then(from_wire)
                .unwrap_or(DayOfWeek::Sunday),
        },
        range: RecurrenceRange {
            range_type,
            end_date: r
                .get("endDate")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .filter(|_| range_type == RangeType::EndDate),
            number_of_occurrences: r
                .get("numberOfOccurrences")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|_| range_type == RangeType::Numbered),
        },
    };
    Rule::parse("/recurrence", rule)
        .ok()
        .map(|r| r.rule().clone())
}

/// The Windows zone name of a series' zone, as Graph writes zones.
fn graph_zone(zone: Tz) -> String {
    time_zones::iana_to_windows(zone.name()).map_or_else(|| zone.name().to_owned(), str::to_owned)
}

/// Completes a Graph body built from normalized fields for a series with its recurrence, in the
/// series' zone (so that Graph repeats it at the same local time across daylight saving
/// changes). `base` is the series as last synchronized:
/// the recurrence is sent only when it (or the series' first day or zone) changed, because
/// Graph drops every exception of a series whose recurrence is written.
pub fn complete_body(f: &Fields, base: Option<&Fields>, body: &mut Value) {
    if !is_series(f) {
        if base.is_some_and(is_series) {
            body["recurrence"] = Value::Null;
        }
        return;
    }
    let Some(data) = series_data(f) else { return };
    let Some(rule) = &data.recurrence else { return };
    // `event_to_graph` sends the start and end as wall times in the series' zone.
    let zone = match data.time {
        EventTime::Timed { time_zone, .. } => graph_zone(time_zone),
        EventTime::AllDay { .. } => "UTC".to_owned(),
    };
    let first = series::first_day(&data.time);
    let unchanged = base.filter(|b| is_series(b)).is_some_and(|b| {
        b.get("recurrence") == f.get("recurrence")
            && b.get("time_zone") == f.get("time_zone")
            && series_data(b).is_some_and(|old| series::first_day(&old.time) == first)
    });
    if !unchanged {
        body["recurrence"] = rule_to_graph(rule.rule(), first, &zone);
    }
}

/// The recurrence body that resets a series in Graph (every exception dropped).
pub fn reset_body(f: &Fields) -> Option<Value> {
    let data = series_data(f)?;
    let rule = data.recurrence.as_ref()?;
    let zone = match data.time {
        EventTime::Timed { time_zone, .. } => graph_zone(time_zone),
        EventTime::AllDay { .. } => "UTC".to_owned(),
    };
    Some(json!({"recurrence": rule_to_graph(rule.rule(), series::first_day(&data.time), &zone)}))
}

/// The original start key of a Graph instance in a series.
fn instance_key(instance: &Value, time: &EventTime) -> Option<String> {
    let original = instance
        .get("originalStart")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
        .with_timezone(&Utc);
    Some(match time {
        EventTime::Timed { .. } => original.format(INSTANT_FORMAT).to_string(),
        EventTime::AllDay { .. } => original.date_naive().to_string(),
    })
}

fn is_exception(instance: &Value) -> bool {
    instance.get("type").and_then(Value::as_str) == Some("exception")
}

/// What an instance changes against the plain occurrence on its date.
fn instance_changes(plain: &EventData, instance: &Value) -> Map<String, Value> {
    let base = series::occurrence_fields(plain);
    let remote = fields::event_from_graph(instance);
    base.iter()
        .filter_map(|(key, value)| {
            let theirs = remote.get(key).cloned().unwrap_or(Value::Null);
            (theirs != *value).then(|| (key.clone(), theirs))
        })
        .collect()
}

/// Whether an original start lies in the inner window.
fn inside(data: &EventData, key: &str, window: Window) -> bool {
    let (from, to) = window.inner();
    series::date_of(&data.time, key).is_some_and(|date| {
        let start = series::span(&series::time_on(&data.time, date)).0;
        start >= from && start < to
    })
}

/// The normalized fields of a Graph series master and its instances over `window`. `local`
/// (the linked local item's fields) lends its exceptions outside the window.
pub fn remote_fields(
    master: &Value,
    instances: &[Value],
    window: Window,
    local: Option<&Fields>,
) -> Fields {
    let mut f = single_from_graph(master);
    let Some(rule) = master.get("recurrence").and_then(rule_from_graph) else {
        return f;
    };
    f.insert("recurrence".into(), json!(rule));
    f.insert("exceptions".into(), json!([]));
    let Some(data) = series_data(&f) else {
        return f;
    };
    let mut exceptions: Vec<OccurrenceException> = Vec::new();
    let mut present: HashMap<String, &Value> = HashMap::new();
    for instance in instances {
        let Some(key) = instance_key(instance, &data.time) else {
            continue;
        };
        present.insert(key.clone(), instance);
        let Some(date) = series::date_of(&data.time, &key) else {
            continue;
        };
        if is_exception(instance) {
            let changes = instance_changes(&data.plain_occurrence(date), instance);
            if !changes.is_empty() {
                exceptions.push(OccurrenceException {
                    original_start: key,
                    cancelled: false,
                    changes,
                });
            }
        }
    }
    let (from, to) = window.inner();
    for occurrence in data.occurrences(from, to) {
        if let Some(key) = occurrence.original_start
            && !present.contains_key(&key)
            && inside(&data, &key, window)
        {
            exceptions.push(OccurrenceException {
                original_start: key,
                cancelled: true,
                changes: Map::new(),
            });
        }
    }
    if let Some(local) = local.and_then(series_data) {
        for exception in local.exceptions {
            if !inside(&data, &exception.original_start, window)
                && !exceptions
                    .iter()
                    .any(|e| e.original_start == exception.original_start)
                && data.occurrence(&exception.original_start).is_some()
            {
                exceptions.push(exception);
            }
        }
    }
    exceptions.sort_by(|a, b| a.original_start.cmp(&b.original_start));
    f.insert("exceptions".into(), json!(exceptions));
    f
}

/// What Graph needs so that a series' instances match the local exceptions.
#[derive(Debug, Default)]
pub struct Plan {
    /// Instances to `PATCH` (id, body).
    pub updates: Vec<(String, Value)>,
    /// Instances to `DELETE` (cancelled occurrences).
    pub cancellations: Vec<String>,
    /// Whether an occurrence cancelled in Graph must come back: only writing the recurrence
    /// again (which drops every exception) restores it.
    pub reset: bool,
}

/// Compares the local series with its Graph instances over `window`.
pub fn plan(local: &Fields, instances: &[Value], window: Window) -> Plan {
    let mut plan = Plan::default();
    let Some(data) = series_data(local) else {
        return plan;
    };
    let mut present: HashMap<String, &Value> = HashMap::new();
    for instance in instances {
        if let Some(key) = instance_key(instance, &data.time) {
            present.insert(key, instance);
        }
    }
    let plain = EventData {
        exceptions: Vec::new(),
        ..data.clone()
    };
    let (from, to) = window.inner();
    for occurrence in plain.occurrences(from, to) {
        let Some(key) = occurrence.original_start else {
            continue;
        };
        if !inside(&data, &key, window) {
            continue;
        }
        let Some(date) = series::date_of(&data.time, &key) else {
            continue;
        };
        let exception = data.exceptions.iter().find(|e| e.original_start == key);
        let instance = present.get(&key);
        match (exception, instance) {
            (Some(e), Some(instance)) if e.cancelled => {
                if let Some(id) = instance.get("id").and_then(Value::as_str) {
                    plan.cancellations.push(id.to_owned());
                }
            }
            (Some(e), None) if e.cancelled => {}
            (_, None) => plan.reset = true,
            (exception, Some(instance)) => {
                let plain_occurrence = data.plain_occurrence(date);
                let wanted = exception.map(|e| e.changes.clone()).unwrap_or_default();
                if instance_changes(&plain_occurrence, instance) != wanted
                    && let Some(id) = instance.get("id").and_then(Value::as_str)
                {
                    let occurrence = series::with_changes(plain_occurrence, &wanted);
                    let mut f = series::occurrence_fields(&occurrence);
                    f.insert(
                        "is_all_day".into(),
                        json!(matches!(occurrence.time, EventTime::AllDay { .. })),
                    );
                    plan.updates
                        .push((id.to_owned(), fields::event_to_graph(&f)));
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_rules_convert_both_ways_and_drop_members_that_do_not_apply() {
        let graph = json!({
            "pattern": {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["Friday", "monday"], "index": "last", "dayOfMonth": 0, "month": 0, "firstDayOfWeek": "monday"},
            "range": {"type": "numbered", "startDate": "2026-01-30", "endDate": "0001-01-01", "numberOfOccurrences": 5, "recurrenceTimeZone": "UTC"}
        });
        let rule = rule_from_graph(&graph).unwrap();
        assert_eq!(
            json!(rule),
            json!({
                "pattern": {"type": "relative_monthly", "interval": 2, "days_of_week": ["monday", "friday"], "index": "last", "first_day_of_week": "monday"},
                "range": {"type": "numbered", "number_of_occurrences": 5}
            })
        );
        let back = rule_to_graph(&rule, NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(), "UTC");
        assert_eq!(back["pattern"]["type"], "relativeMonthly");
        assert_eq!(back["pattern"]["daysOfWeek"], json!(["monday", "friday"]));
        assert_eq!(back["range"]["numberOfOccurrences"], 5);
        assert_eq!(rule_from_graph(&back), Some(rule));
    }
}
