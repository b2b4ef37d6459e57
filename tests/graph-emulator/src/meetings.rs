//! Meetings across mailboxes. Every event write (Graph, `$batch` items and the control API's
//! Outlook-side edits) goes through here: the mailbox operation itself (`events`), then what
//! Exchange does because the event is a meeting. The organizer's changes send invitations,
//! updates and cancellations to the attendees; an attendee's answer (`answers`) sends a
//! response to the organizer. Each message is recorded in the mail log, and messages to
//! mailboxes of the emulator are processed there by the Calendar Attendant (`attendant`), which
//! keeps each attendee's own copy of the meeting.
//!
//! When the organizer's change sends mail (event-update.md, EWS "Update appointments and
//! meetings"): a change of anything attendees see (subject, body, times, location, recurrence,
//! and so on) sends an update to every attendee; a change of the attendee list alone sends an
//! invitation to the added and a cancellation to the removed attendees and nothing to the
//! others ("An event update that includes only the attendees property in the request body sends
//! a meeting update to only the attendees that have changed"); a change of the organizer's own
//! properties (categories, reminder, `showAs`) sends nothing. Changes are told by comparing the
//! meeting before and after the write, so a PATCH that re-sends unchanged values sends nothing.

use crate::attendant::{self, Organizer, Scope};
use crate::errors::{ApiError, ApiResult};
use crate::event_input::attendee_address;
use crate::events::{self, Created, EventRecord};
use crate::mailbox::Mailbox;
use crate::state::State;
use crate::types::{MailKind, MailLogEntry};
use chrono::{NaiveDate, Utc};
use serde_json::{Map, Value, json};

pub(crate) fn mailbox<'a>(state: &'a mut State, user_id: &str) -> ApiResult<&'a mut Mailbox> {
    state
        .mailboxes
        .get_mut(user_id)
        .ok_or_else(ApiError::not_found)
}

fn organizer(state: &State, user_id: &str) -> Option<Organizer> {
    let user = &state.mailboxes.get(user_id)?.user;
    let email = user.email_address();
    let address = email["address"].as_str().unwrap_or_default().to_owned();
    Some(Organizer {
        user_id: user_id.to_owned(),
        email,
        address,
    })
}

/// The attendees' addresses of a meeting, each once, without the organizer's own mailbox.
fn attendees(state: &State, org: &Organizer, props: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in props
        .get("attendees")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(address) = attendee_address(a) else {
            continue;
        };
        let own = address.eq_ignore_ascii_case(&org.address)
            || state.find_mailbox_by_address(address).as_deref() == Some(org.user_id.as_str());
        if !own && !out.iter().any(|x| x.eq_ignore_ascii_case(address)) {
            out.push(address.to_owned());
        }
    }
    out
}

fn contains(list: &[String], address: &str) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(address))
}

/// What attendees see of a meeting: compared before and after a write to tell whether it sends
/// an update.
fn seen(ev: &EventRecord) -> Value {
    let props: Map<String, Value> = attendant::shared(&ev.props);
    json!({
        "props": props,
        "start": [ev.start.local.to_string(), ev.start.zone_name],
        "end": [ev.end.local.to_string(), ev.end.zone_name],
        "recurrence": ev.recurrence.as_ref().map(|r| &r.1),
    })
}

/// What attendees see of one occurrence (`null` while it is not an exception).
fn seen_occurrence(ev: &EventRecord, date: NaiveDate) -> Value {
    ev.exceptions.get(&date).map_or(Value::Null, |e| {
        json!({
            "props": attendant::shared(&e.props),
            "start": [e.start.local.to_string(), e.start.zone_name],
            "end": [e.end.local.to_string(), e.end.zone_name],
        })
    })
}

pub(crate) fn subject(ev: &EventRecord, date: Option<NaiveDate>) -> String {
    date.and_then(|d| ev.exceptions.get(&d))
        .and_then(|e| e.props.get("subject"))
        .or_else(|| ev.props.get("subject"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A message from the organizer about `ev` (or one of its occurrences).
fn from_organizer(org: &Organizer, ev: &EventRecord, to: &str, kind: MailKind) -> MailLogEntry {
    MailLogEntry {
        kind,
        from: org.address.clone(),
        to: to.to_owned(),
        subject: subject(ev, None),
        event_ical_uid: ev.ical_uid.clone(),
        at: Utc::now(),
        response: None,
        update: false,
        comment: None,
        occurrence: None,
    }
}

/// Sends an invitation or update to `to` and lets its mailbox process it.
fn request(
    state: &mut State,
    org: &Organizer,
    ev: &EventRecord,
    to: &str,
    scope: Scope,
    update: bool,
) {
    let mut mail = from_organizer(org, ev, to, MailKind::MeetingRequest);
    mail.update = update;
    if let Scope::Occurrence(d) = scope {
        mail.subject = subject(ev, Some(d));
        mail.occurrence = Some(d);
    }
    state.mail_log.push(mail);
    attendant::deliver_request(state, org, ev, to, scope, !update);
}

/// Sends a cancellation to `to` and lets its mailbox process it.
fn cancellation(
    state: &mut State,
    org: &Organizer,
    ev: &EventRecord,
    to: &str,
    date: Option<NaiveDate>,
    comment: Option<&str>,
) {
    let mut mail = from_organizer(org, ev, to, MailKind::MeetingCancellation);
    mail.subject = subject(ev, date);
    mail.occurrence = date;
    mail.comment = comment.map(str::to_owned);
    state.mail_log.push(mail);
    attendant::deliver_cancellation(state, org, &ev.ical_uid, to, date);
}

/// Creates an event; a meeting invites its attendees. Returns the event's ID.
pub(crate) fn create(state: &mut State, user_id: &str, body: &Value) -> ApiResult<String> {
    let id = match events::create(mailbox(state, user_id)?, body)? {
        Created::Existing(id) => return Ok(id),
        Created::New(id) => id,
    };
    let Some(org) = organizer(state, user_id) else {
        return Ok(id);
    };
    let Some(ev) = state.mailboxes[user_id]
        .events
        .iter()
        .find(|e| e.id == id)
        .cloned()
    else {
        return Ok(id);
    };
    for to in attendees(state, &org, &ev.props) {
        request(state, &org, &ev, &to, Scope::Meeting, false);
    }
    Ok(id)
}

/// Updates an event, occurrence or exception. On the organizer's meeting, attendees are told
/// (see the module header); on an attendee's copy the change stays in that copy.
pub(crate) fn update(
    state: &mut State,
    user_id: &str,
    raw_id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> ApiResult<()> {
    let mbox = mailbox(state, user_id)?;
    let (i, date) = events::resolve(mbox, raw_id)?;
    let before = mbox.events[i].clone();
    events::update(mbox, raw_id, body, if_match)?;
    let after = mbox.events[i].clone();
    let Some(org) = organizer(state, user_id).filter(|_| after.meeting.is_none()) else {
        return Ok(());
    };
    let old = attendees(state, &org, &before.props);
    let new = attendees(state, &org, &after.props);
    if let Some(d) = date {
        if seen_occurrence(&before, d) != seen_occurrence(&after, d) {
            for to in &new {
                request(state, &org, &after, to, Scope::Occurrence(d), true);
            }
        }
        return Ok(());
    }
    let changed = seen(&before) != seen(&after);
    for to in &new {
        if !contains(&old, to) {
            request(state, &org, &after, to, Scope::Meeting, false);
        } else if changed {
            request(state, &org, &after, to, Scope::Meeting, true);
            // "If the event you're updating is the master event of a recurring series, contains
            // multiple attendees, and has instances that have been updated separately, multiple
            // notification emails will be sent out: one for the master series and one per
            // instance that has been updated" (event-update.md).
            for d in after.exceptions.keys() {
                let mut mail = from_organizer(&org, &after, to, MailKind::MeetingRequest);
                mail.update = true;
                mail.subject = subject(&after, Some(*d));
                mail.occurrence = Some(*d);
                state.mail_log.push(mail);
            }
        }
    }
    for to in old.iter().filter(|to| !contains(&new, to)) {
        cancellation(state, &org, &after, to, None, None);
    }
    Ok(())
}

/// Deletes an event (or cancels an occurrence). Deleting the organizer's meeting sends a
/// cancellation to its attendees ("If the event is a meeting, deleting the event on the
/// organizer's calendar sends a cancellation message to the meeting attendees",
/// event-delete.md); deleting an attendee's copy tells nobody.
pub(crate) fn delete(
    state: &mut State,
    user_id: &str,
    raw_id: &str,
    if_match: Option<&str>,
    comment: Option<&str>,
) -> ApiResult<()> {
    let mbox = mailbox(state, user_id)?;
    let (i, date) = events::resolve(mbox, raw_id)?;
    let before = mbox.events[i].clone();
    events::delete(mbox, raw_id, if_match)?;
    let Some(org) = organizer(state, user_id).filter(|_| before.meeting.is_none()) else {
        return Ok(());
    };
    for to in attendees(state, &org, &before.props) {
        cancellation(state, &org, &before, &to, date, comment);
    }
    Ok(())
}

/// `POST /me/events/{id}/cancel`: the organizer cancels a meeting (or one occurrence) with a
/// comment to the attendees; the event goes as on a delete. An attendee gets 400 (event-cancel.md).
pub(crate) fn cancel(
    state: &mut State,
    user_id: &str,
    raw_id: &str,
    comment: Option<&str>,
) -> ApiResult<()> {
    let mbox = mailbox(state, user_id)?;
    let (i, _) = events::resolve(mbox, raw_id)?;
    if mbox.events[i].meeting.is_some() {
        return Err(ApiError::invalid_request(
            "Your request can't be completed. You need to be an organizer to cancel a meeting.",
        ));
    }
    delete(state, user_id, raw_id, None, comment)
}
