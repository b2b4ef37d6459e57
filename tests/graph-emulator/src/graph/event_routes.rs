//! `/me/events` routes: list, create, get, update, delete, the meeting actions (`accept`,
//! `tentativelyAccept`, `decline`, `cancel`), `/instances` and open extensions. calendarView
//! routes are forwarded to `calendar`. Every response shows event IDs in the form the request
//! asked for (`Prefer: IdType="ImmutableId"`).

use super::{
    Ctx, GraphRequest, GraphResponse, calendar, collection_page, method_not_allowed,
    unknown_segment,
};
use crate::answers::{self, Answer, Reply};
use crate::errors::{ApiError, ApiResult};
use crate::events;
use crate::ids;
use crate::mailbox::{Mailbox, add_extension, find_extension, patch_extension};
use crate::meetings;
use crate::state::State;
use serde_json::{Map, Value, json};

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
    let resp = route_in(state, ctx, req, rest)?;
    Ok(if req.prefer().immutable_ids {
        with_immutable_ids(resp)
    } else {
        resp
    })
}

fn route_in(
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
            meetings::update(state, &ctx.user_id, id, body, req.header("if-match"))?;
            get(state, ctx, req, id)
        }
        (["events", id], "DELETE") => {
            meetings::delete(state, &ctx.user_id, id, req.header("if-match"), None)?;
            Ok(GraphResponse::no_content())
        }
        (["events", id, "cancel"], "POST") => {
            let params = action_params(req, "cancel", &["comment"])?;
            meetings::cancel(state, &ctx.user_id, id, comment(&params))?;
            Ok(GraphResponse::accepted())
        }
        (["events", id, action], "POST") if Answer::from_action(action).is_some() => {
            respond(state, ctx, req, id, action)
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
    let id = meetings::create(state, &ctx.user_id, body)?;
    let mut resp = get(state, ctx, req, &id)?;
    resp.status = 201;
    // OData answers a create with the new entity's URL (OData 4.01 Protocol, 11.4.2).
    let shown = if req.prefer().immutable_ids {
        ids::to_immutable(&id).unwrap_or(id)
    } else {
        id
    };
    let location = format!(
        "{}/v1.0/users('{}')/events('{shown}')",
        state.base_url, ctx.user_id
    );
    Ok(resp.header("Location", location))
}

/// The parameters of an action body (names matched ignoring case, as the CSDL spells them in
/// `PascalCase` and clients in `camelCase`); unknown parameters and wrong types are 400.
fn action_params(
    req: &GraphRequest,
    action: &str,
    allowed: &[&str],
) -> ApiResult<Map<String, Value>> {
    let mut out = Map::new();
    let Some(body) = req.body.as_ref() else {
        return Ok(out);
    };
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::body_read("The request body must be a JSON object."))?;
    for (k, v) in obj {
        let Some(name) = allowed.iter().find(|a| a.eq_ignore_ascii_case(k)) else {
            return Err(ApiError::body_read(format!(
                "The parameter '{k}' in the request payload is not a valid parameter for the \
                 operation '{action}'."
            )));
        };
        let ok = match *name {
            "comment" => v.is_string() || v.is_null(),
            "sendResponse" => v.is_boolean() || v.is_null(),
            _ => {
                v.is_null()
                    || crate::mailbox::check_schema(v, "microsoft.graph.timeSlot").is_ok()
                        && v.is_object()
            }
        };
        if !ok {
            return Err(ApiError::body_read(format!(
                "Cannot convert the literal '{v}' to the expected type of parameter '{name}'."
            )));
        }
        if !v.is_null() {
            out.insert((*name).to_owned(), v.clone());
        }
    }
    Ok(out)
}

fn comment(params: &Map<String, Value>) -> Option<&str> {
    params.get("comment").and_then(Value::as_str)
}

/// `POST /me/events/{id}/accept`, `/tentativelyAccept` or `/decline`: 202 without a body.
fn respond(
    state: &mut State,
    ctx: &Ctx,
    req: &GraphRequest,
    id: &str,
    action: &str,
) -> ApiResult<GraphResponse> {
    let Some(answer) = Answer::from_action(action) else {
        return Err(method_not_allowed());
    };
    let allowed: &[&str] = if answer == Answer::Accept {
        &["comment", "sendResponse"]
    } else {
        &["comment", "sendResponse", "proposedNewTime"]
    };
    let params = action_params(req, action, allowed)?;
    let reply = Reply {
        comment: comment(&params).map(str::to_owned),
        send_response: params
            .get("sendResponse")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        proposes_new_time: params.contains_key("proposedNewTime"),
    };
    answers::respond(state, &ctx.user_id, id, answer, &reply)?;
    Ok(GraphResponse::accepted())
}

/// Shows every event ID of a response in its immutable form and says so in
/// `Preference-Applied` (outlook-immutable-id.md; the real service echoes the preference).
fn with_immutable_ids(mut resp: GraphResponse) -> GraphResponse {
    if let Some(body) = resp.body.as_mut() {
        immutable_ids_in(body);
    }
    const APPLIED: &str = "IdType=\"ImmutableId\"";
    match resp
        .headers
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case("Preference-Applied"))
    {
        Some((_, v)) => {
            v.push_str(", ");
            v.push_str(APPLIED);
        }
        None => resp
            .headers
            .push(("Preference-Applied".into(), APPLIED.into())),
    }
    resp
}

/// Replaces regular event IDs (`id`, `seriesMasterId`, `cancelledOccurrences`) with immutable
/// ones anywhere in a body, `@removed` entries of a delta page included.
fn immutable_ids_in(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match (k.as_str(), &*val) {
                    ("id" | "seriesMasterId", Value::String(s)) => {
                        if let Some(imm) = ids::to_immutable(s) {
                            *val = Value::String(imm);
                        }
                    }
                    ("cancelledOccurrences", Value::Array(list)) => {
                        let shown: Vec<Value> = list
                            .iter()
                            .map(|o| {
                                let s = o.as_str().unwrap_or_default();
                                let parts: Vec<&str> = s.splitn(3, '.').collect();
                                match parts.as_slice() {
                                    ["OID", master, date] => ids::to_immutable(master).map_or_else(
                                        || o.clone(),
                                        |m| json!(format!("OID.{m}.{date}")),
                                    ),
                                    _ => o.clone(),
                                }
                            })
                            .collect();
                        *val = Value::Array(shown);
                    }
                    _ => immutable_ids_in(val),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(immutable_ids_in),
        _ => {}
    }
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
