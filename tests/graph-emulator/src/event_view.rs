//! How stored events look from outside: series expanded into occurrences and exceptions over a
//! window, and the JSON Graph returns for an event, with defaults, computed properties and
//! times in the zone the client prefers.

use crate::event_input::is_all_day;
use crate::events::{EventRecord, Instance, Moment};
use crate::ids;
use crate::mailbox::{Mailbox, UserRecord, etag};
use crate::time::{Zone, dttz, format_local, format_stamp, windows_name};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

/// Start and end of the occurrence that originally starts on `date`.
pub(crate) fn occurrence_moments(ev: &EventRecord, date: NaiveDate) -> (Moment, Moment) {
    let length = ev.end.local - ev.start.local;
    let local = date.and_time(ev.start.local.time());
    let start = Moment {
        local,
        ..ev.start.clone()
    };
    let end = Moment {
        local: local + length,
        ..ev.end.clone()
    };
    (start, end)
}

fn overlaps(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> bool {
    start < to && (end > from || (start == end && start >= from))
}

/// The instances of the event at `index` that overlap `[from, to)`: the event itself when it is
/// a single instance, otherwise its occurrences and exceptions.
pub(crate) fn instances(
    mbox: &Mailbox,
    index: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Instance> {
    let ev = &mbox.events[index];
    let Some((rec, _)) = &ev.recurrence else {
        let (s, e) = (ev.start.utc(), ev.end.utc());
        return if overlaps(s, e, from, to) {
            vec![Instance {
                id: ev.id.clone(),
                master_index: index,
                date: None,
                start: s,
                version: ev.seq,
            }]
        } else {
            Vec::new()
        };
    };
    // Occurrences keep their length, so one that overlaps the window starts at most that long
    // before it.
    let length = (ev.end.utc() - ev.start.utc()).max(chrono::Duration::zero());
    let tz = ev.start.tz;
    let first = (from - length - chrono::Duration::days(1))
        .with_timezone(&tz)
        .date_naive();
    let until = (to + chrono::Duration::days(1))
        .with_timezone(&tz)
        .date_naive();
    let mut out = Vec::new();
    let mut push = |d: NaiveDate, start: DateTime<Utc>, end: DateTime<Utc>, version: u64| {
        if overlaps(start, end, from, to) {
            let id = ids::occurrence_id(&ev.id, d);
            out.push(Instance {
                id,
                master_index: index,
                date: Some(d),
                start,
                version,
            });
        }
    };
    for d in rec.dates_between(first, until) {
        if !ev.cancelled.contains(&d) && !ev.exceptions.contains_key(&d) {
            let (s, e) = occurrence_moments(ev, d);
            push(d, s.utc(), e.utc(), ev.seq);
        }
    }
    // Exceptions may have moved anywhere, so they are checked on their own times.
    for (d, exc) in &ev.exceptions {
        if !ev.cancelled.contains(d) {
            push(*d, exc.start.utc(), exc.end.utc(), exc.seq.max(ev.seq));
        }
    }
    out.sort_by_key(|i| i.start);
    out
}

/// Renders an event, occurrence or exception as Graph returns it, times in `zone`.
pub(crate) fn render(
    ev: &EventRecord,
    date: Option<NaiveDate>,
    zone: &Zone,
    user: &UserRecord,
    expand_extensions: bool,
) -> Value {
    let mut m = defaults(user);
    for (k, v) in &ev.props {
        m.insert(k.clone(), v.clone());
    }
    if let Some(a) = &ev.meeting {
        m.insert("isOrganizer".into(), json!(false));
        m.insert("organizer".into(), json!({"emailAddress": a.organizer}));
        m.insert(
            "responseStatus".into(),
            json!({"response": a.response, "time": a.response_time}),
        );
    }
    let exc = date.and_then(|d| ev.exceptions.get(&d));
    if let Some(exc) = exc {
        for (k, v) in &exc.props {
            m.insert(k.clone(), v.clone());
        }
    }
    let (start, end) = match (date, exc) {
        (_, Some(exc)) => (exc.start.clone(), exc.end.clone()),
        (Some(d), None) => occurrence_moments(ev, d),
        (None, None) => (ev.start.clone(), ev.end.clone()),
    };
    let all_day = is_all_day(&m);
    let show = |t: &Moment| {
        if all_day {
            json!({"dateTime": format_local(t.local), "timeZone": zone.name})
        } else {
            dttz(t.utc(), zone)
        }
    };
    m.insert("start".into(), show(&start));
    m.insert("end".into(), show(&end));
    let change_key = exc.map_or(&ev.change_key, |e| &e.change_key);
    let modified = exc.map_or(ev.modified, |e| e.modified);
    m.insert("@odata.etag".into(), json!(etag(change_key)));
    m.insert("changeKey".into(), json!(change_key));
    m.insert("createdDateTime".into(), json!(format_stamp(ev.created)));
    m.insert("lastModifiedDateTime".into(), json!(format_stamp(modified)));
    m.insert(
        "originalStartTimeZone".into(),
        json!(windows_name(&ev.start.zone_name)),
    );
    m.insert(
        "originalEndTimeZone".into(),
        json!(windows_name(&ev.end.zone_name)),
    );
    m.insert("iCalUId".into(), json!(ev.ical_uid));
    let preview = m.get("body").map(crate::body::preview).unwrap_or_default();
    m.insert("bodyPreview".into(), json!(preview));
    match date {
        Some(d) => {
            let id = ids::occurrence_id(&ev.id, d);
            m.insert("webLink".into(), json!(web_link(&id)));
            m.insert("id".into(), json!(id));
            m.insert(
                "type".into(),
                json!(if exc.is_some() {
                    "exception"
                } else {
                    "occurrence"
                }),
            );
            m.insert("seriesMasterId".into(), json!(ev.id));
            let original = occurrence_moments(ev, d).0.utc();
            m.insert(
                "originalStart".into(),
                json!(format!("{}Z", original.format("%Y-%m-%dT%H:%M:%S"))),
            );
        }
        None => {
            m.insert("id".into(), json!(ev.id));
            m.insert("webLink".into(), json!(web_link(&ev.id)));
            if let Some((_, rec)) = &ev.recurrence {
                m.insert("type".into(), json!("seriesMaster"));
                m.insert("recurrence".into(), rec.clone());
            }
            if let Some(tid) = &ev.transaction_id {
                m.insert("transactionId".into(), json!(tid));
            }
        }
    }
    if expand_extensions {
        let exts: Vec<Value> = ev.extensions.iter().cloned().map(Value::Object).collect();
        m.insert("extensions".into(), Value::Array(exts));
    }
    Value::Object(m)
}

fn web_link(id: &str) -> String {
    let encoded: String =
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).collect();
    format!("https://outlook.office365.com/owa/?itemid={encoded}&exvsurl=1&path=/calendar/item")
}

fn defaults(user: &UserRecord) -> Map<String, Value> {
    let v = json!({
        "categories": [],
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": true,
        "hasAttachments": false,
        "subject": "",
        "importance": "normal",
        "sensitivity": "normal",
        "isAllDay": false,
        "isCancelled": false,
        "isOrganizer": true,
        "responseRequested": true,
        "seriesMasterId": null,
        "showAs": "busy",
        "type": "singleInstance",
        "onlineMeetingUrl": null,
        "isOnlineMeeting": false,
        "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": true,
        "isDraft": false,
        "hideAttendees": false,
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "body": {"contentType": "html", "content": ""},
        "location": {
            "displayName": "",
            "locationType": "default",
            "uniqueIdType": "unknown",
            "address": {},
            "coordinates": {}
        },
        "locations": [],
        "recurrence": null,
        "attendees": [],
        "organizer": {"emailAddress": user.email_address()},
        "onlineMeeting": null
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
