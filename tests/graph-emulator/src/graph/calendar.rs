//! `/me/calendarView`, `/me/calendarView/delta` and `/me/events/{id}/instances`: recurring
//! series expanded into occurrences and exceptions over a required time window.

use super::{Ctx, GraphRequest, GraphResponse, collection_page, link};
use crate::delta::{self, Current, Resume, Scope, TokenError};
use crate::errors::{ApiError, ApiResult};
use crate::events;
use crate::mailbox::Mailbox;
use crate::state::State;
use crate::time::parse_instant;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Whether a path segment names the delta function (`delta`, `delta()`,
/// `microsoft.graph.delta()`).
pub(super) fn is_delta(seg: &str) -> bool {
    matches!(
        seg,
        "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()"
    )
}

/// The required window of calendarView requests.
fn window(req: &GraphRequest) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let missing = || {
        ApiError::new(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters \
             StartDateTime and EndDateTime.",
        )
    };
    let from = req.param("startDateTime").ok_or_else(missing)?;
    let to = req.param("endDateTime").ok_or_else(missing)?;
    let parse = |s: &str| {
        parse_instant(s).ok_or_else(|| {
            ApiError::new(
                400,
                "ErrorInvalidParameter",
                format!("The value '{s}' of parameter 'StartDateTime' is invalid."),
            )
        })
    };
    Ok((parse(from)?, parse(to)?))
}

/// Every instance of the mailbox in the window, by start time: (id, version, event index, date).
pub(crate) fn all_instances(
    mbox: &Mailbox,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<events::Instance> {
    let mut all: Vec<events::Instance> = (0..mbox.events.len())
        .flat_map(|i| events::instances(mbox, i, from, to))
        .collect();
    all.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
    all
}

fn render_instance(mbox: &Mailbox, inst: &events::Instance, req: &GraphRequest) -> Value {
    let zone = req.prefer().zone();
    let ev = &mbox.events[inst.master_index];
    super::event_routes::select(
        req,
        events::render(ev, inst.date, &zone, &mbox.user, req.expands("extensions")),
    )
}

/// `GET /me/calendarView`.
pub(super) fn view(state: &mut State, ctx: &Ctx, req: &GraphRequest) -> ApiResult<GraphResponse> {
    let (from, to) = window(req)?;
    let mbox = state
        .mailboxes
        .get(&ctx.user_id)
        .ok_or_else(ApiError::not_found)?;
    let items: Vec<Value> = all_instances(mbox, from, to)
        .iter()
        .map(|i| render_instance(mbox, i, req))
        .collect();
    let context = format!("users('{}')/calendarView", ctx.user_id);
    Ok(with_preferences(
        collection_page(state, req, &context, items),
        req,
        false,
    ))
}

/// `GET /me/events/{id}/instances`.
pub(super) fn instances(
    state: &mut State,
    ctx: &Ctx,
    req: &GraphRequest,
    id: &str,
) -> ApiResult<GraphResponse> {
    let (from, to) = window(req)?;
    let mbox = state
        .mailboxes
        .get(&ctx.user_id)
        .ok_or_else(ApiError::not_found)?;
    let (i, date) = events::resolve(mbox, id)?;
    let items: Vec<Value> = if date.is_some() || mbox.events[i].recurrence.is_none() {
        Vec::new()
    } else {
        events::instances(mbox, i, from, to)
            .iter()
            .map(|inst| render_instance(mbox, inst, req))
            .collect()
    };
    let context = format!(
        "users('{}')/events('{}')/instances",
        ctx.user_id, mbox.events[i].id
    );
    Ok(collection_page(state, req, &context, items))
}

/// What a calendar scope holds now; with `since`, also the events changed since then that
/// have no instance in the window.
fn current(mbox: &Mailbox, scope: &Scope, since: Option<u64>) -> Current {
    let Scope::CalendarView { from, to } = scope else {
        return Current::default();
    };
    let instances = all_instances(mbox, *from, *to);
    let outside = since.map_or_else(Vec::new, |since| {
        mbox.events
            .iter()
            .enumerate()
            .filter(|(i, e)| e.seq > since && !instances.iter().any(|x| x.master_index == *i))
            .map(|(_, e)| e.id.clone())
            .collect()
    });
    let items = instances.into_iter().map(|i| (i.id, i.version)).collect();
    Current {
        items,
        outside,
        seq: mbox.seq,
    }
}

/// `GET /me/calendarView/delta`.
pub(super) fn delta(state: &mut State, ctx: &Ctx, req: &GraphRequest) -> ApiResult<GraphResponse> {
    let resume = resume(req, || {
        let (from, to) = window(req)?;
        Ok(Scope::CalendarView { from, to })
    })?;
    let initial = matches!(resume, Resume::Initial(_));
    let State {
        sync,
        mailboxes,
        config,
        base_url,
        ..
    } = state;
    let mbox = mailboxes
        .get(&ctx.user_id)
        .ok_or_else(ApiError::not_found)?;
    let cursor = sync.begin(
        &ctx.user_id,
        resume,
        |s, since| current(mbox, s, since),
        &mut config.delta_replays,
        config.delta_empty_first_page,
    );
    let cursor = match cursor {
        Ok(c) => c,
        Err(e) => return Ok(gone(base_url, ctx, req, e)),
    };
    let size = req
        .prefer()
        .max_page_size
        .unwrap_or(config.default_page_size)
        .min(config.delta_page_cap.unwrap_or(usize::MAX))
        .max(1);
    let (entries, next) = sync.page(cursor, size);
    let zone = req.prefer().zone();
    let value: Vec<Value> = entries
        .iter()
        .map(|(id, removed)| {
            let found = if *removed {
                None
            } else {
                events::resolve(mbox, id).ok()
            };
            match found {
                Some((i, date)) => {
                    let mut v = events::render(&mbox.events[i], date, &zone, &mbox.user, false);
                    v["@odata.type"] = json!("#microsoft.graph.event");
                    req.adjust_event(&mut v);
                    v
                }
                None => delta::removed("#microsoft.graph.event", id),
            }
        })
        .collect();
    let body = delta_body(state, req, "Collection(event)", value, next);
    Ok(with_preferences(
        GraphResponse::json(200, body),
        req,
        initial,
    ))
}

/// How a delta request resumes, from its query.
pub(super) fn resume(
    req: &GraphRequest,
    initial: impl FnOnce() -> ApiResult<Scope>,
) -> ApiResult<Resume> {
    // An empty token (the `Location` of a 410) means a fresh round.
    if let Some(t) = req.param("$skiptoken").filter(|t| !t.is_empty()) {
        return Ok(Resume::Skip(t.to_owned()));
    }
    if let Some(t) = req.param("$deltatoken").filter(|t| !t.is_empty()) {
        return Ok(Resume::Delta(t.to_owned()));
    }
    initial().map(Resume::Initial)
}

/// A delta page with its nextLink or deltaLink.
pub(super) fn delta_body(
    state: &State,
    req: &GraphRequest,
    context: &str,
    value: Vec<Value>,
    next: Result<String, String>,
) -> Value {
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#{context}", state.base_url),
        "value": value,
    });
    match next {
        Ok(skip) => {
            body["@odata.nextLink"] =
                json!(link(state, &req.raw_path, &[("$skiptoken".into(), skip)]))
        }
        Err(delta) => {
            body["@odata.deltaLink"] =
                json!(link(state, &req.raw_path, &[("$deltatoken".into(), delta)]))
        }
    }
    body
}

/// Adds `Preference-Applied` as the real service does on delta responses.
pub(super) fn with_preferences(
    mut resp: GraphResponse,
    req: &GraphRequest,
    initial: bool,
) -> GraphResponse {
    let prefer = req.prefer();
    let mut applied = Vec::new();
    if initial {
        applied.push("odata.track-changes".to_owned());
    }
    if let Some(n) = prefer.max_page_size {
        applied.push(format!("odata.maxpagesize={n}"));
    }
    if let Some(z) = &prefer.timezone {
        applied.push(format!("outlook.timezone=\"{}\"", z.name));
    }
    if let Some(t) = prefer.body_type {
        applied.push(format!("outlook.body-content-type=\"{}\"", t.name()));
    }
    if !applied.is_empty() {
        resp = resp.header("Preference-Applied", applied.join(", "));
    }
    resp
}

/// 410 `SyncStateNotFound`, with a `Location` that starts a full resync of the same scope.
pub(super) fn gone(base_url: &str, ctx: &Ctx, req: &GraphRequest, e: TokenError) -> GraphResponse {
    let TokenError::Gone {
        generation,
        scope,
        resync,
    } = e;
    let err = if resync {
        ApiError::new(
            410,
            "resyncRequired",
            "Resync required. Replace any local items with the server's version (including \
             deletes) if you're sure that the service was up to date with your local changes \
             when you last sync'd. Upload any local changes that the server doesn't know about.",
        )
    } else {
        ApiError::new(
            410,
            "SyncStateNotFound",
            format!(
                "The sync state generation is not found; generation={generation};[highest={generation}]."
            ),
        )
    };
    let query = match scope {
        Some(Scope::CalendarView { from, to }) => format!(
            "?startDateTime={}&endDateTime={}",
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ")
        ),
        _ => "?$deltatoken=".to_owned(),
    };
    ctx.error(&err).header(
        "Location",
        format!("{base_url}/v1.0{}{query}", req.raw_path),
    )
}
