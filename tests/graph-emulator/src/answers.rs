//! An attendee's answer to a meeting: `accept`, `tentativelyAccept` and `decline` on the
//! attendee's copy, and the response the organizer gets (event-accept.md, event-decline.md,
//! event-tentativelyaccept.md).

use crate::attendant;
use crate::errors::{ApiError, ApiResult};
use crate::events;
use crate::meetings::{mailbox, subject};
use crate::state::State;
use crate::time::format_stamp;
use crate::types::{MailKind, MailLogEntry};
use chrono::Utc;
use serde_json::{Map, Value, json};

/// An attendee's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Accept,
    TentativelyAccept,
    Decline,
}

impl Answer {
    /// The action's name in a URL (`accept`, `tentativelyAccept`, `decline`).
    pub(crate) fn from_action(action: &str) -> Option<Self> {
        match action {
            "accept" => Some(Self::Accept),
            "tentativelyAccept" => Some(Self::TentativelyAccept),
            "decline" => Some(Self::Decline),
            _ => None,
        }
    }

    /// Graph's `responseType` for it.
    fn response(self) -> &'static str {
        match self {
            Self::Accept => "accepted",
            Self::TentativelyAccept => "tentativelyAccepted",
            Self::Decline => "declined",
        }
    }
}

/// The body of `accept`, `tentativelyAccept` and `decline`, read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reply {
    pub comment: Option<String>,
    /// Default true (event-accept.md).
    pub send_response: bool,
    pub proposes_new_time: bool,
}

/// `accept`, `tentativelyAccept` or `decline` on an attendee's copy (or one of its
/// occurrences). The copy records the answer; a decline removes it from the calendar (EWS: "To
/// remove a `MeetingRequest` and the associated `CalendarItem`, use the `DeclineItem`"). With
/// `sendResponse` the organizer gets a response and its copy records the attendee's status;
/// without one the organizer learns nothing, since the organizer's tracking comes from that
/// message.
pub(crate) fn respond(
    state: &mut State,
    user_id: &str,
    raw_id: &str,
    answer: Answer,
    reply: &Reply,
) -> ApiResult<()> {
    let mbox = mailbox(state, user_id)?;
    let (i, date) = events::resolve(mbox, raw_id)?;
    let Some(attendance) = mbox.events[i].meeting.clone() else {
        return Err(ApiError::invalid_request(
            "Your request can't be completed. You can't respond to a meeting you organized.",
        ));
    };
    if reply.proposes_new_time {
        let allowed = mbox.events[i]
            .props
            .get("allowNewTimeProposals")
            .and_then(Value::as_bool)
            != Some(false);
        if !allowed || !reply.send_response {
            return Err(ApiError::invalid_request(
                "A new time can only be proposed with sendResponse true, on a meeting that \
                 allows new time proposals.",
            ));
        }
    }
    let time = format_stamp(Utc::now());
    let ev = mbox.events[i].clone();
    let show_as = match answer {
        Answer::TentativelyAccept => json!("tentative"),
        _ => attendance.intended_show_as.clone(),
    };
    let seq = mbox.next_seq();
    match (date, answer) {
        (None, Answer::Decline) => {
            mbox.events.remove(i);
        }
        (Some(d), Answer::Decline) => {
            let ev = &mut mbox.events[i];
            ev.exceptions.remove(&d);
            ev.cancelled.insert(d);
            ev.seq = seq;
            ev.change_key = crate::ids::new_change_key();
            ev.modified = Utc::now();
        }
        (None, _) => {
            let ev = &mut mbox.events[i];
            if let Some(a) = ev.meeting.as_mut() {
                a.response = answer.response().into();
                a.response_time = time.clone();
            }
            ev.props.insert("showAs".into(), show_as);
            ev.seq = seq;
            ev.change_key = crate::ids::new_change_key();
            ev.modified = Utc::now();
        }
        (Some(d), _) => {
            let ev = &mut mbox.events[i];
            let (start, end) = crate::event_view::occurrence_moments(ev, d);
            let exc = ev.exceptions.entry(d).or_insert_with(|| events::Exception {
                props: Map::new(),
                start,
                end,
                change_key: String::new(),
                modified: Utc::now(),
                seq,
            });
            exc.props.insert(
                "responseStatus".into(),
                json!({"response": answer.response(), "time": time}),
            );
            exc.props.insert("showAs".into(), show_as);
            exc.seq = seq;
            exc.change_key = crate::ids::new_change_key();
            exc.modified = Utc::now();
        }
    }
    if reply.send_response {
        let to = attendance.organizer["address"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        state.mail_log.push(MailLogEntry {
            kind: MailKind::MeetingResponse,
            from: attendance.address.clone(),
            to,
            subject: subject(&ev, date),
            event_ical_uid: ev.ical_uid.clone(),
            at: Utc::now(),
            response: Some(answer.response().into()),
            update: false,
            comment: reply.comment.clone(),
            occurrence: date,
        });
        // Answers to one occurrence are tracked in the attendee's copy only.
        if date.is_none() {
            attendant::deliver_response(
                state,
                &attendance.organizer_user,
                &ev.ical_uid,
                &attendance.address,
                answer.response(),
                &time,
            );
        }
    }
    Ok(())
}
