//! What a client may write on an event: the properties `microsoft.graph.event` defines, the
//! ones the server computes (accepted and ignored), schema and enum checks, Exchange's
//! normalisation of bodies, and the time rules (end after start, all-day at midnight).

use crate::errors::{ApiError, ApiResult};
use crate::events::Moment;
use crate::mailbox::{check_enum, check_known_properties};
use serde_json::{Map, Value, json};

/// Properties of `microsoft.graph.event` (graph-subset.yaml) a write body may name.
const EVENT_PROPERTIES: &[&str] = &[
    "allowNewTimeProposals",
    "attendees",
    "body",
    "bodyPreview",
    "cancelledOccurrences",
    "end",
    "hasAttachments",
    "hideAttendees",
    "iCalUId",
    "importance",
    "isAllDay",
    "isCancelled",
    "isDraft",
    "isOnlineMeeting",
    "isOrganizer",
    "isReminderOn",
    "location",
    "locations",
    "onlineMeeting",
    "onlineMeetingProvider",
    "onlineMeetingUrl",
    "organizer",
    "originalEndTimeZone",
    "originalStart",
    "originalStartTimeZone",
    "recurrence",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "responseStatus",
    "sensitivity",
    "seriesMasterId",
    "showAs",
    "start",
    "subject",
    "transactionId",
    "type",
    "webLink",
    "extensions",
    "instances",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
    "categories",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "id",
];

/// Properties the server computes; a write that names them is accepted and they are ignored.
const READ_ONLY: &[&str] = &[
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "type",
    "seriesMasterId",
    "iCalUId",
    "webLink",
    "originalStart",
    "bodyPreview",
    "responseStatus",
    "isOrganizer",
    "hasAttachments",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "instances",
    "cancelledOccurrences",
    "onlineMeeting",
    "onlineMeetingUrl",
];

pub(crate) fn check_body(obj: &Map<String, Value>) -> ApiResult<()> {
    check_known_properties(obj, EVENT_PROPERTIES, "event")?;
    crate::mailbox::check_schema(&Value::Object(obj.clone()), "microsoft.graph.event")?;
    check_enum(obj, "importance", &["low", "normal", "high"])?;
    check_enum(
        obj,
        "sensitivity",
        &["normal", "personal", "private", "confidential"],
    )?;
    check_enum(
        obj,
        "showAs",
        &[
            "unknown",
            "free",
            "tentative",
            "busy",
            "oof",
            "workingElsewhere",
        ],
    )?;
    check_enum(
        obj,
        "onlineMeetingProvider",
        &[
            "unknown",
            "skypeForBusiness",
            "skypeForConsumer",
            "teamsForBusiness",
        ],
    )
}

/// Copies the writable properties of a body, normalising what Exchange normalises. Bodies keep
/// their content byte for byte (only the `contentType` member is lower-cased); attendees keep
/// the response they gave when their address is unchanged (see `merge_attendees`).
pub(crate) fn writable_props(obj: &Map<String, Value>, into: &mut Map<String, Value>) {
    for (k, v) in obj {
        if k.starts_with('@') || READ_ONLY.contains(&k.as_str()) {
            continue;
        }
        if matches!(
            k.as_str(),
            "start" | "end" | "recurrence" | "transactionId" | "extensions"
        ) {
            continue;
        }
        let mut v = v.clone();
        if k == "body"
            && let Some(ct) = v
                .get("contentType")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
        {
            v["contentType"] = json!(ct);
        }
        if k == "attendees" {
            v = merge_attendees(&v, into.get("attendees"));
        }
        into.insert(k.clone(), v);
    }
    online_meeting(into);
}

/// `isOnlineMeeting: true` makes an event an online meeting, which Exchange gives a join URL
/// (`onlineMeeting.joinUrl`, with the provider `teamsForBusiness` unless another is named:
/// user-post-events.md, "Create and enable an event as an online meeting"); `false` takes it
/// away.
fn online_meeting(props: &mut Map<String, Value>) {
    match props.get("isOnlineMeeting").and_then(Value::as_bool) {
        Some(true) if props.get("onlineMeeting").is_none_or(Value::is_null) => {
            if props
                .get("onlineMeetingProvider")
                .and_then(Value::as_str)
                .is_none_or(|p| p == "unknown")
            {
                props.insert("onlineMeetingProvider".into(), json!("teamsForBusiness"));
            }
            let join = format!(
                "https://teams.microsoft.com/l/meetup-join/19%3ameeting_{}%40thread.v2/0",
                uuid::Uuid::new_v4().simple()
            );
            props.insert("onlineMeeting".into(), json!({ "joinUrl": join }));
        }
        Some(false) => {
            props.remove("onlineMeeting");
        }
        _ => {}
    }
}

/// The stored form of an `attendees` write: each attendee as sent (`type` defaults to
/// `required`), with the `status` the organizer's copy recorded for the same address (ignoring
/// case) before the write, or `none` for an attendee the list did not have. A client cannot set
/// a status: it comes from the attendees' responses.
pub(crate) fn merge_attendees(new: &Value, old: Option<&Value>) -> Value {
    let Some(list) = new.as_array() else {
        return new.clone();
    };
    let previous = |address: &str| {
        old.and_then(Value::as_array)?
            .iter()
            .find(|a| attendee_address(a).is_some_and(|x| x.eq_ignore_ascii_case(address)))
            .and_then(|a| a.get("status"))
            .filter(|s| s.is_object())
            .cloned()
    };
    let merged = list
        .iter()
        .map(|a| {
            let Some(obj) = a.as_object() else {
                return a.clone();
            };
            let mut out = obj.clone();
            out.remove("proposedNewTime");
            if out.get("type").is_none_or(Value::is_null) {
                out.insert("type".into(), json!("required"));
            }
            let status = attendee_address(a)
                .and_then(previous)
                .unwrap_or_else(no_response);
            out.insert("status".into(), status);
            Value::Object(out)
        })
        .collect();
    Value::Array(merged)
}

/// The SMTP address of an attendee (or recipient) object.
pub(crate) fn attendee_address(a: &Value) -> Option<&str> {
    a.get("emailAddress")
        .and_then(|e| e.get("address"))
        .and_then(Value::as_str)
}

/// `{"response": "none", "time": "0001-01-01T00:00:00Z"}`: an attendee who has not answered.
pub(crate) fn no_response() -> Value {
    json!({"response": "none", "time": "0001-01-01T00:00:00Z"})
}

pub(crate) fn check_times(start: &Moment, end: &Moment, all_day: bool) -> ApiResult<()> {
    if end.utc() < start.utc() {
        return Err(ApiError::invalid_request(
            "The start time must be before the end time.",
        ));
    }
    if all_day
        && (start.local.time() != chrono::NaiveTime::MIN
            || end.local.time() != chrono::NaiveTime::MIN)
    {
        return Err(ApiError::new(
            400,
            "ErrorPropertyValidationFailure",
            "At least one property failed validation: an all-day event must start and end at midnight.",
        ));
    }
    Ok(())
}

pub(crate) fn is_all_day(props: &Map<String, Value>) -> bool {
    props
        .get("isAllDay")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}
