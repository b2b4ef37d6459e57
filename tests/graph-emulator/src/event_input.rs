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

/// Copies the writable properties of a body, normalising what Exchange normalises.
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
            if ct == "html" {
                let content = v.get("content").and_then(Value::as_str).unwrap_or("");
                if !content.is_empty() && !content.trim_start().starts_with("<html") {
                    v["content"] = json!(format!(
                        "<html>\r\n<head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n{content}\r\n</body>\r\n</html>\r\n"
                    ));
                }
            }
        }
        into.insert(k.clone(), v);
    }
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
