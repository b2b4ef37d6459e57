//! The Calendar Attendant: what Exchange does in a mailbox when a meeting message arrives
//! (eventmessagerequest.md: "the Calendar Attendant is set to automatically update the calendar
//! with an event when meeting request event messages arrive"). An invitation or update puts
//! the organizer's meeting in the attendee's calendar as the attendee's own copy; a
//! cancellation marks that copy cancelled (it stays until the attendee removes it); a response
//! updates the attendee's status in the organizer's copy.

use crate::event_input::attendee_address;
use crate::event_view::occurrence_moments;
use crate::events::{Attendance, EventRecord, Exception};
use crate::ids;
use crate::mailbox::Mailbox;
use crate::state::State;
use chrono::{NaiveDate, Utc};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Properties each mailbox keeps for itself: the organizer's change to them reaches nobody, and
/// a meeting update leaves the attendee's own values alone.
pub(crate) const PERSONAL: &[&str] = &[
    "categories",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "showAs",
];

/// Properties that describe one mailbox's copy and are never copied from the organizer's.
const OWN: &[&str] = &[
    "attendees",
    "isCancelled",
    "isOrganizer",
    "organizer",
    "responseStatus",
];

/// `responseStatus.time` of a meeting nobody answered yet.
pub(crate) const NEVER: &str = "0001-01-01T00:00:00Z";

/// Who organizes a meeting.
#[derive(Debug, Clone)]
pub(crate) struct Organizer {
    pub user_id: String,
    /// `emailAddress` (name and address).
    pub email: Value,
    /// SMTP address.
    pub address: String,
}

/// What an arriving request covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The whole meeting (a single event or a series).
    Meeting,
    /// One occurrence of a series, by original start date.
    Occurrence(NaiveDate),
}

/// The properties of the organizer's meeting an attendee's copy shows.
pub(crate) fn shared(props: &Map<String, Value>) -> Map<String, Value> {
    props
        .iter()
        .filter(|(k, _)| !PERSONAL.contains(&k.as_str()) && !OWN.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The attendee list an attendee's copy shows: the organizer's, without responses (those are
/// tracked in the organizer's copy only), or only the attendee when `hideAttendees` is set
/// ("each attendee only sees themselves", event-update.md).
fn attendees_for(meeting: &EventRecord, address: &str) -> Value {
    let hide = meeting.props.get("hideAttendees").and_then(Value::as_bool) == Some(true);
    let list = meeting
        .props
        .get("attendees")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter(|a| {
                    !hide || attendee_address(a).is_some_and(|x| x.eq_ignore_ascii_case(address))
                })
                .map(|a| {
                    let mut a = a.clone();
                    a["status"] = crate::event_input::no_response();
                    a
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    Value::Array(list)
}

/// Gives an item a new change number, change key and modification time.
fn bump(mbox: &mut Mailbox, i: usize) {
    let seq = mbox.next_seq();
    let ev = &mut mbox.events[i];
    ev.seq = seq;
    ev.change_key = ids::new_change_key();
    ev.modified = Utc::now();
}

/// Gives an exception of the item a new change number, change key and modification time.
fn bump_exception(mbox: &mut Mailbox, i: usize, date: NaiveDate) {
    let seq = mbox.next_seq();
    if let Some(exc) = mbox.events[i].exceptions.get_mut(&date) {
        exc.seq = seq;
        exc.change_key = ids::new_change_key();
        exc.modified = Utc::now();
    }
}

/// The exception of `date` in `ev`, created from the occurrence's own times when missing.
fn exception_mut(ev: &mut EventRecord, date: NaiveDate, seq: u64) -> &mut Exception {
    let (start, end) = occurrence_moments(ev, date);
    ev.exceptions.entry(date).or_insert_with(|| Exception {
        props: Map::new(),
        start,
        end,
        change_key: ids::new_change_key(),
        modified: Utc::now(),
        seq,
    })
}

/// The attendee's copy of the meeting `ical_uid` in a mailbox.
fn copy_index(mbox: &Mailbox, ical_uid: &str) -> Option<usize> {
    mbox.events
        .iter()
        .position(|e| e.ical_uid == ical_uid && e.meeting.is_some())
}

/// An invitation or update arrives at `address`: the attendee's copy is created or brought up
/// to date with the organizer's meeting. `fresh` (a new invitation) resets the attendee's
/// answer. Addresses outside the emulator, and the organizer's own, have no copy.
pub(crate) fn deliver_request(
    state: &mut State,
    org: &Organizer,
    meeting: &EventRecord,
    address: &str,
    scope: Scope,
    fresh: bool,
) {
    let Some(target) = state.find_mailbox_by_address(address) else {
        return;
    };
    if target == org.user_id {
        return;
    }
    let Some(mbox) = state.mailboxes.get_mut(&target) else {
        return;
    };
    match (copy_index(mbox, &meeting.ical_uid), scope) {
        (Some(i), Scope::Occurrence(date)) => {
            let seq = mbox.seq + 1;
            let ev = &mut mbox.events[i];
            // An update of an occurrence the attendee declined puts it back.
            let readded = ev.cancelled.remove(&date);
            match meeting.exceptions.get(&date) {
                Some(theirs) => {
                    let exc = exception_mut(ev, date, seq);
                    let mut props = shared(&theirs.props);
                    for (k, v) in &exc.props {
                        if PERSONAL.contains(&k.as_str()) || k == "responseStatus" {
                            props.insert(k.clone(), v.clone());
                        }
                    }
                    exc.props = props;
                    exc.start = theirs.start.clone();
                    exc.end = theirs.end.clone();
                    bump_exception(mbox, i, date);
                }
                None => {
                    ev.exceptions.remove(&date);
                }
            }
            if readded {
                bump(mbox, i);
            }
        }
        (Some(i), Scope::Meeting) => {
            refresh(&mut mbox.events[i], meeting, address, fresh);
            bump(mbox, i);
        }
        (None, _) => {
            let copy = new_copy(mbox, org, meeting, address);
            mbox.events.push(copy);
        }
    }
}

/// A new attendee's copy: the organizer's meeting with its own ID and change key, shown as
/// tentative until answered (the Calendar Attendant's `AddNewRequestsTentatively` default).
fn new_copy(
    mbox: &mut Mailbox,
    org: &Organizer,
    meeting: &EventRecord,
    address: &str,
) -> EventRecord {
    let now = Utc::now();
    let seq = mbox.next_seq();
    let mut props = shared(&meeting.props);
    props.insert("attendees".into(), attendees_for(meeting, address));
    props.insert("showAs".into(), json!("tentative"));
    let exceptions: BTreeMap<NaiveDate, Exception> = meeting
        .exceptions
        .iter()
        .map(|(d, e)| {
            let exc = Exception {
                props: shared(&e.props),
                start: e.start.clone(),
                end: e.end.clone(),
                change_key: ids::new_change_key(),
                modified: now,
                seq,
            };
            (*d, exc)
        })
        .collect();
    EventRecord {
        id: ids::new_item_id(ids::EVENT_KIND, mbox.next_id_has_slash()),
        ical_uid: meeting.ical_uid.clone(),
        props,
        start: meeting.start.clone(),
        end: meeting.end.clone(),
        recurrence: meeting.recurrence.clone(),
        transaction_id: None,
        fingerprint: String::new(),
        change_key: ids::new_change_key(),
        created: now,
        modified: now,
        seq,
        extensions: Vec::new(),
        exceptions,
        cancelled: meeting.cancelled.clone(),
        meeting: Some(Attendance {
            organizer: org.email.clone(),
            organizer_user: org.user_id.clone(),
            address: address.to_owned(),
            response: "notResponded".into(),
            response_time: NEVER.into(),
            intended_show_as: meeting
                .props
                .get("showAs")
                .cloned()
                .unwrap_or(json!("busy")),
        }),
    }
}

/// Brings an existing copy up to date: the organizer's properties, times and recurrence
/// replace the copy's, its personal properties and answers stay.
fn refresh(copy: &mut EventRecord, meeting: &EventRecord, address: &str, fresh: bool) {
    let mut props = shared(&meeting.props);
    for (k, v) in &copy.props {
        if PERSONAL.contains(&k.as_str()) {
            props.insert(k.clone(), v.clone());
        }
    }
    props.insert("attendees".into(), attendees_for(meeting, address));
    copy.props = props;
    copy.start = meeting.start.clone();
    copy.end = meeting.end.clone();
    if copy.recurrence.as_ref().map(|r| &r.1) != meeting.recurrence.as_ref().map(|r| &r.1) {
        copy.recurrence = meeting.recurrence.clone();
        copy.exceptions.clear();
        copy.cancelled.clear();
    }
    let mut exceptions = BTreeMap::new();
    for (d, theirs) in &meeting.exceptions {
        let mut exc = copy.exceptions.remove(d).unwrap_or_else(|| Exception {
            props: Map::new(),
            start: theirs.start.clone(),
            end: theirs.end.clone(),
            change_key: ids::new_change_key(),
            modified: Utc::now(),
            seq: copy.seq,
        });
        let mut props = shared(&theirs.props);
        for (k, v) in &exc.props {
            if PERSONAL.contains(&k.as_str()) || k == "responseStatus" {
                props.insert(k.clone(), v.clone());
            }
        }
        exc.props = props;
        exc.start = theirs.start.clone();
        exc.end = theirs.end.clone();
        exceptions.insert(*d, exc);
    }
    // Occurrences the attendee answered on their own keep their answer.
    for (d, exc) in std::mem::take(&mut copy.exceptions) {
        if exc.props.contains_key("responseStatus") && !meeting.cancelled.contains(&d) {
            exceptions.insert(d, exc);
        }
    }
    copy.exceptions = exceptions;
    copy.cancelled.extend(meeting.cancelled.iter().copied());
    if let Some(a) = copy.meeting.as_mut() {
        a.intended_show_as = meeting
            .props
            .get("showAs")
            .cloned()
            .unwrap_or(json!("busy"));
        if fresh {
            a.response = "notResponded".into();
            a.response_time = NEVER.into();
        }
    }
}

/// A cancellation arrives at `address`: the attendee's copy (or its occurrence) shows
/// `isCancelled: true` and stays in the calendar until the attendee removes it, as Exchange
/// keeps cancelled meetings unless told otherwise (`RemoveCanceledMeetings` defaults to false;
/// EWS `RemoveItem` is how a client removes one).
pub(crate) fn deliver_cancellation(
    state: &mut State,
    org: &Organizer,
    ical_uid: &str,
    address: &str,
    date: Option<NaiveDate>,
) {
    let Some(target) = state.find_mailbox_by_address(address) else {
        return;
    };
    if target == org.user_id {
        return;
    }
    let Some(mbox) = state.mailboxes.get_mut(&target) else {
        return;
    };
    let Some(i) = copy_index(mbox, ical_uid) else {
        return;
    };
    match date {
        None => {
            mbox.events[i]
                .props
                .insert("isCancelled".into(), json!(true));
            bump(mbox, i);
        }
        Some(d) => {
            if mbox.events[i].cancelled.contains(&d) {
                return;
            }
            let seq = mbox.seq + 1;
            exception_mut(&mut mbox.events[i], d, seq)
                .props
                .insert("isCancelled".into(), json!(true));
            bump_exception(mbox, i, d);
        }
    }
}

/// A response arrives at the organizer: the attendee's `status` in the organizer's copy.
pub(crate) fn deliver_response(
    state: &mut State,
    organizer_user: &str,
    ical_uid: &str,
    address: &str,
    response: &str,
    time: &str,
) {
    let Some(mbox) = state.mailboxes.get_mut(organizer_user) else {
        return;
    };
    let Some(i) = mbox
        .events
        .iter()
        .position(|e| e.ical_uid == ical_uid && e.meeting.is_none())
    else {
        return;
    };
    let Some(entry) = mbox.events[i]
        .props
        .get_mut("attendees")
        .and_then(Value::as_array_mut)
        .and_then(|l| {
            l.iter_mut()
                .find(|a| attendee_address(a).is_some_and(|x| x.eq_ignore_ascii_case(address)))
        })
    else {
        return;
    };
    entry["status"] = json!({"response": response, "time": time});
    bump(mbox, i);
}
