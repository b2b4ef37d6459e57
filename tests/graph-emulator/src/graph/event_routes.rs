//! `/me/events` routes: list, create, get, update, delete, `/instances` and open extensions.
//! calendarView routes are forwarded to `calendar`.

use super::{
    Ctx, GraphRequest, GraphResponse, calendar, collection_page, method_not_allowed,
    unknown_segment,
};
use crate::errors::{ApiError, ApiResult};
use crate::events::{self, Created};
use crate::mailbox::{Mailbox, add_extension, find_extension, patch_extension};
use crate::state::State;
use serde_json::{Value, json};

const READ: &[&str] = &[
    "calendars.read",
    "calendars.readwrite",
    "calendars.read.shared",
    "calendars.readwrite.shared",
];
const WRITE: &[&str] = &["calendars.readwrite", "calendars.readwrite.shared"];

pub(super) fn route(
    state: &mut State,
    ctx: &Ctx,
    req: &GraphRequest,
    rest: &[&str],
) -> ApiResult<GraphResponse> {
    let m = req.method.as_str();
    ctx.require(if m == "GET" { READ } else { WRITE })?;
    match (rest, m) {
        (["events"], "GET") => list(state, ctx, req),
        (["events"], "POST") => create(state, ctx, req),
        (["events", id], "GET") => get(state, ctx, req, id),
        (["events", id], "PATCH") => {
            let body = req.json_body()?;
            events::update(mailbox(state, ctx)?, id, body, req.header("if-match"))?;
            get(state, ctx, req, id)
        }
        (["events", id], "DELETE") => {
            events::delete(mailbox(state, ctx)?, id, req.header("if-match"))?;
            Ok(GraphResponse::no_content())
        }
        (["events", id, "instances"], "GET") => calendar::instances(state, ctx, req, id),
        (["events", id, "extensions"], "GET") => {
            let mbox = mailbox(state, ctx)?;
            let (i, _) = events::resolve(mbox, id)?;
            let exts: Vec<Value> = mbox.events[i]
                .extensions
                .iter()
                .cloned()
                .map(Value::Object)
                .collect();
            Ok(GraphResponse::json(200, json!({"value": exts})))
        }
        (["events", id, "extensions"], "POST") => {
            let body = req.json_body()?;
            let mbox = mailbox(state, ctx)?;
            let (i, _) = events::resolve(mbox, id)?;
            let ext = add_extension(&mut mbox.events[i].extensions, body)?;
            events::touch(mbox, i);
            Ok(GraphResponse::json(201, ext))
        }
        (["events", id, "extensions", name], _) => extension(state, ctx, req, id, name),
        (["calendarView"], "GET") => calendar::view(state, ctx, req),
        (["calendarView", d], "GET") if calendar::is_delta(d) => calendar::delta(state, ctx, req),
        (["events", _, other, ..], _) | (["calendarView", other, ..], _)
            if !calendar::is_delta(other) =>
        {
            Err(unknown_segment(other))
        }
        _ => Err(method_not_allowed()),
    }
}

/// The signed-in user's mailbox.
pub(super) fn mailbox<'a>(state: &'a mut State, ctx: &Ctx) -> ApiResult<&'a mut Mailbox> {
    state
        .mailboxes
        .get_mut(&ctx.user_id)
        .ok_or_else(ApiError::not_found)
}

/// Keeps only `$select`ed properties (plus `id` and `@odata.etag`, as Graph does).
pub(super) fn select(req: &GraphRequest, mut v: Value) -> Value {
    req.adjust_event(&mut v);
    let Some(sel) = req.param("$select") else {
        return v;
    };
    let keep: Vec<&str> = sel.split(',').map(str::trim).collect();
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|k, _| {
            k == "id" || k.starts_with('@') || keep.iter().any(|s| s.eq_ignore_ascii_case(k))
        });
    }
    v
}

fn list(state: &mut State, ctx: &Ctx, req: &GraphRequest) -> ApiResult<GraphResponse> {
    let zone = req.prefer().zone();
    let expand = req.expands("extensions");
    let mbox = mailbox(state, ctx)?;
    let items: Vec<Value> = mbox
        .events
        .iter()
        .map(|e| select(req, events::render(e, None, &zone, &mbox.user, expand)))
        .collect();
    let context = format!("users('{}')/events", ctx.user_id);
    Ok(calendar::with_preferences(
        collection_page(state, req, &context, items),
        req,
        false,
    ))
}

fn create(state: &mut State, ctx: &Ctx, req: &GraphRequest) -> ApiResult<GraphResponse> {
    let body = req.json_body()?;
    let mbox = mailbox(state, ctx)?;
    let id = match events::create(mbox, body)? {
        Created::New(id) | Created::Existing(id) => id,
    };
    let mut resp = get(state, ctx, req, &id)?;
    resp.status = 201;
    Ok(resp)
}

fn get(state: &mut State, ctx: &Ctx, req: &GraphRequest, id: &str) -> ApiResult<GraphResponse> {
    let zone = req.prefer().zone();
    let base = state.base_url.clone();
    let mbox = mailbox(state, ctx)?;
    let (i, date) = events::resolve(mbox, id)?;
    let mut rendered = events::render(
        &mbox.events[i],
        date,
        &zone,
        &mbox.user,
        req.expands("extensions"),
    );
    // `cancelledOccurrences` is returned only when selected, on a GET of a series master by id
    // (event.md): one `OID.{seriesMasterId}.{yyyy-MM-dd}` per cancelled occurrence.
    let selected = req.param("$select").is_some_and(|sel| {
        sel.split(',')
            .any(|s| s.trim().eq_ignore_ascii_case("cancelledOccurrences"))
    });
    let ev = &mbox.events[i];
    if selected && date.is_none() && ev.recurrence.is_some() {
        let cancelled: Vec<String> = ev
            .cancelled
            .iter()
            .map(|d| format!("OID.{}.{}", ev.id, d.format("%Y-%m-%d")))
            .collect();
        rendered["cancelledOccurrences"] = json!(cancelled);
    }
    let mut body = select(req, rendered);
    body["@odata.context"] = json!(format!(
        "{base}/v1.0/$metadata#users('{}')/events/$entity",
        ctx.user_id
    ));
    Ok(calendar::with_preferences(
        GraphResponse::json(200, body),
        req,
        false,
    ))
}

fn extension(
    state: &mut State,
    ctx: &Ctx,
    req: &GraphRequest,
    id: &str,
    name: &str,
) -> ApiResult<GraphResponse> {
    let mbox = mailbox(state, ctx)?;
    let (i, _) = events::resolve(mbox, id)?;
    let exts = &mut mbox.events[i].extensions;
    let pos = find_extension(exts, name).ok_or_else(ApiError::not_found)?;
    match req.method.as_str() {
        "GET" => Ok(GraphResponse::json(200, Value::Object(exts[pos].clone()))),
        "PATCH" => {
            patch_extension(&mut exts[pos], req.json_body()?);
            let out = Value::Object(exts[pos].clone());
            events::touch(mbox, i);
            Ok(GraphResponse::json(200, out))
        }
        "DELETE" => {
            exts.remove(pos);
            events::touch(mbox, i);
            Ok(GraphResponse::no_content())
        }
        _ => Err(method_not_allowed()),
    }
}
