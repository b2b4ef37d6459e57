//! Calendar events: storage, the create/update/delete rules of Graph's event resource
//! (transactionId idempotency, change keys, If-Match, recurrence exceptions, open extensions)
//! and rendering into the JSON Graph returns.

use crate::errors::{ApiError, ApiResult};
use crate::ids::{self, ItemId};
use crate::mailbox::{Mailbox, add_extension, check_if_match};
use crate::recurrence::Recurrence;
use crate::time::{parse_local, resolve_zone, to_utc};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

use crate::event_input::{check_body, check_times, is_all_day, writable_props};
use crate::event_view::occurrence_moments;
pub(crate) use crate::event_view::{instances, render};

/// A wall-clock time and the zone the client wrote it in.
#[derive(Debug, Clone)]
pub(crate) struct Moment {
    pub local: NaiveDateTime,
    pub zone_name: String,
    pub tz: Tz,
}

impl Moment {
    pub(crate) fn utc(&self) -> DateTime<Utc> {
        to_utc(self.local, self.tz)
    }

    fn parse(v: Option<&Value>, which: &str) -> ApiResult<Self> {
        let v = v.filter(|v| !v.is_null()).ok_or_else(|| {
            ApiError::invalid_request(format!(
                "Your request can't be completed. The {which} property is required."
            ))
        })?;
        let local = v
            .get("dateTime")
            .and_then(Value::as_str)
            .and_then(parse_local)
            .ok_or_else(|| {
                ApiError::body_read(format!("Cannot convert the literal to {which}.dateTime."))
            })?;
        let zone_name = v
            .get("timeZone")
            .and_then(Value::as_str)
            .unwrap_or("UTC")
            .to_owned();
        let tz = resolve_zone(&zone_name).ok_or_else(|| {
            ApiError::new(
                400,
                "TimeZoneNotSupportedException",
                format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone_name}'."),
            )
        })?;
        Ok(Self {
            local,
            zone_name,
            tz,
        })
    }
}

/// A recurrence exception: an occurrence the user changed.
#[derive(Debug, Clone)]
pub(crate) struct Exception {
    pub props: Map<String, Value>,
    pub start: Moment,
    pub end: Moment,
    pub change_key: String,
    pub modified: DateTime<Utc>,
    pub seq: u64,
}

/// What makes an event an attendee's copy of a meeting organized in another mailbox: Exchange's
/// Calendar Attendant puts it in the attendee's calendar when the invitation arrives
/// (eventmessagerequest.md, relationship `event`).
#[derive(Debug, Clone)]
pub(crate) struct Attendance {
    /// The organizer's `emailAddress`.
    pub organizer: Value,
    /// The organizer's mailbox (user ID).
    pub organizer_user: String,
    /// The address the organizer invited this mailbox under.
    pub address: String,
    /// `responseStatus.response`: `notResponded` until the attendee answers.
    pub response: String,
    /// `responseStatus.time`.
    pub response_time: String,
    /// The organizer's `showAs`, which an accepted meeting takes.
    pub intended_show_as: Value,
}

/// A single-instance event or a series master.
#[derive(Debug, Clone)]
pub(crate) struct EventRecord {
    pub id: String,
    pub ical_uid: String,
    pub props: Map<String, Value>,
    pub start: Moment,
    pub end: Moment,
    pub recurrence: Option<(Recurrence, Value)>,
    pub transaction_id: Option<String>,
    /// The create body without `transactionId`, to tell a retry from a different event.
    pub fingerprint: String,
    pub change_key: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub seq: u64,
    pub extensions: Vec<Map<String, Value>>,
    pub exceptions: BTreeMap<NaiveDate, Exception>,
    pub cancelled: BTreeSet<NaiveDate>,
    /// Set on an attendee's copy of a meeting; `None` on the organizer's own items.
    pub meeting: Option<Attendance>,
}

/// One occurrence or exception of a series, as calendarView and /instances list them.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub id: String,
    pub master_index: usize,
    pub date: Option<NaiveDate>,
    pub start: DateTime<Utc>,
    /// Change number; differs whenever the rendered instance may differ.
    pub version: u64,
}

/// Outcome of a create.
pub(crate) enum Created {
    /// A new event.
    New(String),
    /// A retry of an earlier create with the same transactionId.
    Existing(String),
}

/// Creates an event (`POST /me/events`).
pub(crate) fn create(mbox: &mut Mailbox, body: &Value) -> ApiResult<Created> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::body_read("The request body must be a JSON object."))?;
    check_body(obj)?;
    let transaction_id = obj
        .get("transactionId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut fp = obj.clone();
    fp.remove("transactionId");
    let fingerprint = Value::Object(fp).to_string();
    if let Some(tid) = &transaction_id
        && let Some(existing) = mbox
            .events
            .iter()
            .find(|e| e.transaction_id.as_ref() == Some(tid))
    {
        if existing.fingerprint == fingerprint {
            return Ok(Created::Existing(existing.id.clone()));
        }
        return Err(ApiError::new(
            400,
            "ErrorDuplicateTransactionId",
            "Your request can't be completed. The TransactionId specified in the request has \
             already been used to create a different event.",
        ));
    }
    let start = Moment::parse(obj.get("start"), "start")?;
    let end = Moment::parse(obj.get("end"), "end")?;
    let mut props = Map::new();
    writable_props(obj, &mut props);
    check_times(&start, &end, is_all_day(&props))?;
    let recurrence = parse_recurrence(obj.get("recurrence"))?;
    let mut extensions = Vec::new();
    if let Some(list) = obj.get("extensions").and_then(Value::as_array) {
        for ext in list {
            add_extension(&mut extensions, ext)?;
        }
    }
    let now = Utc::now();
    let id = ids::new_item_id(ids::EVENT_KIND, mbox.next_id_has_slash());
    let seq = mbox.next_seq();
    mbox.events.push(EventRecord {
        id: id.clone(),
        ical_uid: format!(
            "040000008200E00074C5B7101A82E008{}",
            ids::new_token(24).to_ascii_uppercase()
        ),
        props,
        start,
        end,
        recurrence,
        transaction_id,
        fingerprint,
        change_key: ids::new_change_key(),
        created: now,
        modified: now,
        seq,
        extensions,
        exceptions: BTreeMap::new(),
        cancelled: BTreeSet::new(),
        meeting: None,
    });
    Ok(Created::New(id))
}

fn parse_recurrence(v: Option<&Value>) -> ApiResult<Option<(Recurrence, Value)>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Recurrence::parse(v)
            .map(|r| Some((r, v.clone())))
            .map_err(|m| ApiError::new(400, "ErrorInvalidRecurrence", m)),
    }
}

/// Finds a stored event (single or master) by ID.
pub(crate) fn find(mbox: &Mailbox, id: &str) -> Option<usize> {
    mbox.events.iter().position(|e| e.id == id)
}

/// Resolves an ID from a URL to what it names; regular and immutable IDs both resolve.
pub(crate) fn resolve(mbox: &Mailbox, raw_id: &str) -> ApiResult<(usize, Option<NaiveDate>)> {
    let regular = ids::to_regular(raw_id);
    let raw_id = regular.as_deref().unwrap_or(raw_id);
    match ids::parse_item_id(raw_id).ok_or_else(ApiError::malformed_id)? {
        ItemId::Item(id) => find(mbox, &id)
            .map(|i| (i, None))
            .ok_or_else(ApiError::not_found),
        ItemId::Occurrence(master, date) => {
            let i = find(mbox, &master).ok_or_else(ApiError::not_found)?;
            let ev = &mbox.events[i];
            let in_series = ev
                .recurrence
                .as_ref()
                .is_some_and(|(r, _)| r.contains(date));
            if !in_series || ev.cancelled.contains(&date) {
                return Err(ApiError::not_found());
            }
            Ok((i, Some(date)))
        }
    }
}

/// The change key an `If-Match` must carry for this item.
fn current_change_key(ev: &EventRecord, date: Option<NaiveDate>) -> &str {
    match date.and_then(|d| ev.exceptions.get(&d)) {
        Some(exc) => &exc.change_key,
        None => &ev.change_key,
    }
}

/// Updates an event, occurrence or exception (`PATCH /me/events/{id}`).
pub(crate) fn update(
    mbox: &mut Mailbox,
    raw_id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> ApiResult<()> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::body_read("The request body must be a JSON object."))?;
    check_body(obj)?;
    let (i, date) = resolve(mbox, raw_id)?;
    check_if_match(if_match, current_change_key(&mbox.events[i], date))?;
    if let Some(tid) = obj.get("transactionId")
        && mbox.events[i].transaction_id.as_ref().map(|t| json!(t)) != Some(tid.clone())
    {
        return Err(ApiError::invalid_request(
            "The transactionId of an event can't be changed.",
        ));
    }
    let seq = mbox.next_seq();
    let now = Utc::now();
    let ev = &mut mbox.events[i];
    match date {
        Some(d) => {
            if obj.contains_key("recurrence") {
                return Err(ApiError::invalid_request(
                    "The recurrence of an occurrence can't be set.",
                ));
            }
            let (start, end) = occurrence_moments(ev, d);
            let exc = ev.exceptions.entry(d).or_insert_with(|| Exception {
                props: Map::new(),
                start,
                end,
                change_key: String::new(),
                modified: now,
                seq,
            });
            if obj.contains_key("start") {
                exc.start = Moment::parse(obj.get("start"), "start")?;
            }
            if obj.contains_key("end") {
                exc.end = Moment::parse(obj.get("end"), "end")?;
            }
            writable_props(obj, &mut exc.props);
            check_times(&exc.start, &exc.end, false)?;
            exc.change_key = ids::new_change_key();
            exc.modified = now;
            exc.seq = seq;
        }
        None => {
            let mut start = ev.start.clone();
            let mut end = ev.end.clone();
            if obj.contains_key("start") {
                start = Moment::parse(obj.get("start"), "start")?;
            }
            if obj.contains_key("end") {
                end = Moment::parse(obj.get("end"), "end")?;
            }
            let mut props = ev.props.clone();
            writable_props(obj, &mut props);
            check_times(&start, &end, is_all_day(&props))?;
            if obj.contains_key("recurrence") {
                ev.recurrence = parse_recurrence(obj.get("recurrence"))?;
                // Exchange drops exceptions when the pattern changes.
                ev.exceptions.clear();
                ev.cancelled.clear();
            }
            ev.start = start;
            ev.end = end;
            ev.props = props;
            ev.change_key = ids::new_change_key();
            ev.modified = now;
            ev.seq = seq;
        }
    }
    Ok(())
}

/// Deletes an event; deleting an occurrence cancels it (`DELETE /me/events/{id}`).
pub(crate) fn delete(mbox: &mut Mailbox, raw_id: &str, if_match: Option<&str>) -> ApiResult<()> {
    let (i, date) = resolve(mbox, raw_id)?;
    check_if_match(if_match, current_change_key(&mbox.events[i], date))?;
    let seq = mbox.next_seq();
    match date {
        Some(d) => {
            // Exchange records a cancelled occurrence on its master (EWS `DeletedOccurrences`
            // of the recurring master): the master is saved, so its change key and its last
            // modification time move. A modified occurrence is an exception item of its own:
            // its `lastModifiedDateTime` moves and the master's stays (the documentation does
            // not say the master's moves too; a client must not count on it).
            let ev = &mut mbox.events[i];
            ev.exceptions.remove(&d);
            ev.cancelled.insert(d);
            ev.seq = seq;
            ev.change_key = ids::new_change_key();
            ev.modified = Utc::now();
        }
        None => {
            mbox.events.remove(i);
        }
    }
    Ok(())
}

/// Marks an event as changed after an extension write (Exchange gives it a new change key).
pub(crate) fn touch(mbox: &mut Mailbox, i: usize) {
    let seq = mbox.next_seq();
    let ev = &mut mbox.events[i];
    ev.change_key = ids::new_change_key();
    ev.modified = Utc::now();
    ev.seq = seq;
}
