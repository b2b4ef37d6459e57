//! `/me/todo/lists` routes: lists, tasks, tasks/delta, open extensions and linked resources.

use super::calendar::{delta_body, gone, is_delta, resume, with_preferences};
use super::event_routes::mailbox;
use super::{
    Ctx, GraphRequest, GraphResponse, collection_page, method_not_allowed, unknown_segment,
};
use crate::delta::{self, Current, Scope};
use crate::errors::{ApiError, ApiResult};
use crate::mailbox::{add_extension, find_extension, patch_extension};
use crate::state::State;
use crate::tasks::{self, render_task};
use serde_json::{Value, json};

const READ: &[&str] = &["tasks.read", "tasks.readwrite"];
const WRITE: &[&str] = &["tasks.readwrite"];

pub(super) fn route(
    state: &mut State,
    ctx: &Ctx,
    req: &GraphRequest,
    rest: &[&str],
) -> ApiResult<GraphResponse> {
    let m = req.method.as_str();
    ctx.require(if m == "GET" { READ } else { WRITE })?;
    let user = ctx.user_id.clone();
    match (rest, m) {
        ([], "GET") => {
            let lists: Vec<Value> = mailbox(state, ctx)?
                .lists
                .iter()
                .map(tasks::TaskList::render)
                .collect();
            Ok(collection_page(
                state,
                req,
                &format!("users('{user}')/todo/lists"),
                lists,
            ))
        }
        ([], "POST") => {
            let mbox = mailbox(state, ctx)?;
            let i = tasks::create_list(mbox, req.json_body()?)?;
            Ok(GraphResponse::json(201, mbox.lists[i].render()))
        }
        ([d], "GET") if is_delta(d) => list_delta(state, ctx, req),
        ([lid], _) => {
            let mbox = mailbox(state, ctx)?;
            let l = tasks::find_list(mbox, lid)?;
            match m {
                "GET" => Ok(GraphResponse::json(200, mbox.lists[l].render())),
                "PATCH" => {
                    tasks::update_list(mbox, l, req.json_body()?)?;
                    Ok(GraphResponse::json(200, mbox.lists[l].render()))
                }
                "DELETE" => tasks::delete_list(mbox, l).map(|()| GraphResponse::no_content()),
                _ => Err(method_not_allowed()),
            }
        }
        ([lid, "tasks"], "GET") => {
            let mbox = mailbox(state, ctx)?;
            let l = tasks::find_list(mbox, lid)?;
            let (ext, linked) = (req.expands("extensions"), req.expands("linkedResources"));
            let items: Vec<Value> = mbox.lists[l]
                .tasks
                .iter()
                .map(|t| {
                    let mut v = render_task(t, ext, linked);
                    req.filter_expanded_extensions(&mut v);
                    v
                })
                .collect();
            let context = format!("users('{user}')/todo/lists('{lid}')/tasks");
            Ok(collection_page(state, req, &context, items))
        }
        ([lid, "tasks"], "POST") => {
            let mbox = mailbox(state, ctx)?;
            let l = tasks::find_list(mbox, lid)?;
            let t = tasks::create_task(mbox, l, req.json_body()?)?;
            let task = &mbox.lists[l].tasks[t];
            // The create response shows the linked resources that came with the body.
            Ok(GraphResponse::json(
                201,
                render_task(task, false, !task.linked.is_empty()),
            ))
        }
        ([lid, "tasks", d], "GET") if is_delta(d) => task_delta(state, ctx, req, lid),
        ([lid, "tasks", tid], _) => task(state, ctx, req, lid, tid),
        ([lid, "tasks", tid, "extensions", more @ ..], _) => {
            extensions(state, ctx, req, lid, tid, more)
        }
        ([lid, "tasks", tid, "linkedResources", more @ ..], _) => {
            linked(state, ctx, req, lid, tid, more)
        }
        ([_, "tasks", _, other, ..], _) | ([_, other, ..], _) => Err(unknown_segment(other)),
        _ => Err(method_not_allowed()),
    }
}

fn task(
    state: &mut State,
    ctx: &Ctx,
    req: &GraphRequest,
    lid: &str,
    tid: &str,
) -> ApiResult<GraphResponse> {
    let mbox = mailbox(state, ctx)?;
    let l = tasks::find_list(mbox, lid)?;
    let t = tasks::find_task(mbox, l, tid)?;
    let render = |mbox: &crate::mailbox::Mailbox| {
        let mut v = render_task(
            &mbox.lists[l].tasks[t],
            req.expands("extensions"),
            req.expands("linkedResources"),
        );
        req.filter_expanded_extensions(&mut v);
        v
    };
    match req.method.as_str() {
        "GET" => Ok(GraphResponse::json(200, render(mbox))),
        "PATCH" => {
            tasks::update_task(mbox, l, t, req.json_body()?, req.header("if-match"))?;
            Ok(GraphResponse::json(200, render(mbox)))
        }
        "DELETE" => {
            tasks::delete_task(mbox, l, t, req.header("if-match"))?;
            Ok(GraphResponse::no_content())
        }
        _ => Err(method_not_allowed()),
    }
}

/// `.../tasks/{id}/extensions[/{name}]`.
fn extensions(
    state: &mut State,
    ctx: &Ctx,
    req: &GraphRequest,
    lid: &str,
    tid: &str,
    more: &[&str],
) -> ApiResult<GraphResponse> {
    let mbox = mailbox(state, ctx)?;
    let l = tasks::find_list(mbox, lid)?;
    let t = tasks::find_task(mbox, l, tid)?;
    let seq = mbox.seq + 1;
    let task = &mut mbox.lists[l].tasks[t];
    let resp = match (more, req.method.as_str()) {
        ([], "GET") => {
            let v: Vec<Value> = task.extensions.iter().cloned().map(Value::Object).collect();
            return Ok(GraphResponse::json(200, json!({"value": v})));
        }
        ([], "POST") => {
            GraphResponse::json(201, add_extension(&mut task.extensions, req.json_body()?)?)
        }
        ([name], m) => {
            let pos = find_extension(&task.extensions, name).ok_or_else(ApiError::not_found)?;
            match m {
                "GET" => {
                    return Ok(GraphResponse::json(
                        200,
                        Value::Object(task.extensions[pos].clone()),
                    ));
                }
                "PATCH" => {
                    patch_extension(&mut task.extensions[pos], req.json_body()?);
                    GraphResponse::json(200, Value::Object(task.extensions[pos].clone()))
                }
                "DELETE" => {
                    task.extensions.remove(pos);
                    GraphResponse::no_content()
                }
                _ => return Err(method_not_allowed()),
            }
        }
        _ => return Err(method_not_allowed()),
    };
    tasks::bump(task, seq);
    mbox.seq = seq;
    Ok(resp)
}

/// `.../tasks/{id}/linkedResources[/{id}]`.
fn linked(
    state: &mut State,
    ctx: &Ctx,
    req: &GraphRequest,
    lid: &str,
    tid: &str,
    more: &[&str],
) -> ApiResult<GraphResponse> {
    let mbox = mailbox(state, ctx)?;
    let l = tasks::find_list(mbox, lid)?;
    let t = tasks::find_task(mbox, l, tid)?;
    let seq = mbox.seq + 1;
    let task = &mut mbox.lists[l].tasks[t];
    let resp = match (more, req.method.as_str()) {
        ([], "GET") => {
            let v: Vec<Value> = task.linked.iter().cloned().map(Value::Object).collect();
            return Ok(GraphResponse::json(200, json!({"value": v})));
        }
        ([], "POST") => {
            let lr = tasks::new_linked_resource(req.json_body()?)?;
            task.linked.push(lr.clone());
            GraphResponse::json(201, Value::Object(lr))
        }
        ([id], m) => {
            let pos = task
                .linked
                .iter()
                .position(|x| x.get("id").and_then(Value::as_str) == Some(id))
                .ok_or_else(ApiError::not_found)?;
            match m {
                "GET" => {
                    return Ok(GraphResponse::json(
                        200,
                        Value::Object(task.linked[pos].clone()),
                    ));
                }
                "PATCH" => {
                    patch_extension(&mut task.linked[pos], req.json_body()?);
                    GraphResponse::json(200, Value::Object(task.linked[pos].clone()))
                }
                "DELETE" => {
                    task.linked.remove(pos);
                    GraphResponse::no_content()
                }
                _ => return Err(method_not_allowed()),
            }
        }
        _ => return Err(method_not_allowed()),
    };
    tasks::bump(task, seq);
    mbox.seq = seq;
    Ok(resp)
}

/// `GET /me/todo/lists/{id}/tasks/delta`.
fn task_delta(
    state: &mut State,
    ctx: &Ctx,
    req: &GraphRequest,
    lid: &str,
) -> ApiResult<GraphResponse> {
    let resume = resume(req, || {
        Ok(Scope::Tasks {
            list_id: lid.to_owned(),
        })
    })?;
    let initial = matches!(resume, delta::Resume::Initial(_));
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
    let l = tasks::find_list(mbox, lid)?;
    let list = &mbox.lists[l];
    let current = |_: &Scope, _: Option<u64>| Current {
        items: list.tasks.iter().map(|t| (t.id.clone(), t.seq)).collect(),
        outside: Vec::new(),
        seq: mbox.seq,
    };
    let cursor = match sync.begin(
        &ctx.user_id,
        resume,
        current,
        &mut config.delta_replays,
        config.delta_empty_first_page,
    ) {
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
    let value: Vec<Value> = entries
        .iter()
        .map(
            |(id, removed)| match list.tasks.iter().find(|t| !removed && &t.id == id) {
                Some(t) => {
                    let mut v = render_task(t, false, false);
                    v["@odata.type"] = json!("#microsoft.graph.todoTask");
                    v
                }
                None => delta::removed("#microsoft.graph.todoTask", id),
            },
        )
        .collect();
    let body = delta_body(state, req, "Collection(todoTask)", value, next);
    Ok(with_preferences(
        GraphResponse::json(200, body),
        req,
        initial,
    ))
}

/// `GET /me/todo/lists/delta`.
fn list_delta(state: &mut State, ctx: &Ctx, req: &GraphRequest) -> ApiResult<GraphResponse> {
    let resume = resume(req, || Ok(Scope::Lists))?;
    let initial = matches!(resume, delta::Resume::Initial(_));
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
    let current = |_: &Scope, _: Option<u64>| Current {
        items: mbox.lists.iter().map(|l| (l.id.clone(), l.seq)).collect(),
        outside: Vec::new(),
        seq: mbox.seq,
    };
    let cursor = match sync.begin(
        &ctx.user_id,
        resume,
        current,
        &mut config.delta_replays,
        config.delta_empty_first_page,
    ) {
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
    let value: Vec<Value> = entries
        .iter()
        .map(
            |(id, removed)| match mbox.lists.iter().find(|l| !removed && &l.id == id) {
                Some(l) => {
                    let mut v = l.render();
                    v["@odata.type"] = json!("#microsoft.graph.todoTaskList");
                    v
                }
                None => delta::removed("#microsoft.graph.todoTaskList", id),
            },
        )
        .collect();
    let body = delta_body(state, req, "Collection(todoTaskList)", value, next);
    Ok(with_preferences(
        GraphResponse::json(200, body),
        req,
        initial,
    ))
}
