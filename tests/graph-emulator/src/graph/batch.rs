//! `POST /v1.0/$batch` (json-batching.md): up to 20 requests with unique (case-insensitive)
//! IDs, `dependsOn` ordering with 424 for failed dependencies, and each request evaluated on
//! its own against throttling and injected faults, so one item may get 429 with its own
//! `Retry-After` while the others succeed, and a latency fault holds one item (and so the
//! batch's answer) after the items before it were applied.

use super::{Ctx, GraphRequest, GraphResponse, dispatch};
use crate::errors::ApiError;
use crate::faults::{self, FaultAction};
use crate::http::graph_request;
use crate::state::{AccessToken, Shared};
use crate::throttle;
use crate::types::LoggedRequest;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Most requests one batch may carry.
const MAX_REQUESTS: usize = 20;

struct Item {
    id: String,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn parse(body: Option<&Value>) -> Result<Vec<Item>, String> {
    let requests = body
        .and_then(|b| b.get("requests"))
        .and_then(Value::as_array)
        .ok_or("Invalid batch payload format.")?;
    if requests.len() > MAX_REQUESTS {
        return Err(format!(
            "Number of batch request steps exceeds the maximum of {MAX_REQUESTS}."
        ));
    }
    let mut items = Vec::new();
    for r in requests {
        let field = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
        let id = field("id").ok_or("Each batch request requires an id.")?;
        if items.iter().any(|i: &Item| i.id.eq_ignore_ascii_case(&id)) {
            return Err(format!("Batch request contains a duplicate id '{id}'."));
        }
        let method = field("method").ok_or("Each batch request requires a method.")?;
        let url = field("url").ok_or("Each batch request requires a url.")?;
        let headers: Vec<(String, String)> = r
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let body = r.get("body").filter(|b| !b.is_null()).cloned();
        if body.is_some() && !headers.iter().any(|(k, _)| k == "content-type") {
            return Err(format!(
                "Content-Type header is required for request '{id}' which has a body."
            ));
        }
        let depends_on = r
            .get("dependsOn")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        items.push(Item {
            id,
            method,
            url,
            headers,
            body,
            depends_on,
        });
    }
    for item in &items {
        for dep in &item.depends_on {
            if !items.iter().any(|i| i.id.eq_ignore_ascii_case(dep)) {
                return Err(format!(
                    "Request '{}' depends on an unknown request '{dep}'.",
                    item.id
                ));
            }
        }
    }
    Ok(items)
}

/// Runs a batch; the outer status is 200 whenever the payload could be read.
pub(crate) async fn execute(
    shared: &Shared,
    ctx: &Ctx,
    token: &AccessToken,
    req: &GraphRequest,
) -> GraphResponse {
    if req.method != "POST" {
        return ctx.error(&super::method_not_allowed());
    }
    let items = match parse(req.body.as_ref()) {
        Ok(items) => items,
        Err(msg) => return ctx.error(&ApiError::new(400, "BadRequest", msg)),
    };
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses = Vec::new();
    let mut pending: Vec<&Item> = items.iter().collect();
    while !pending.is_empty() {
        let ready = pending.iter().position(|i| {
            i.depends_on
                .iter()
                .all(|d| statuses.contains_key(&d.to_ascii_lowercase()))
        });
        let Some(pos) = ready else {
            return ctx.error(&ApiError::new(
                400,
                "BadRequest",
                "The dependsOn graph of the batch has a cycle.",
            ));
        };
        let item = pending.remove(pos);
        let failed_dep = item.depends_on.iter().any(|d| {
            statuses
                .get(&d.to_ascii_lowercase())
                .is_none_or(|s| !(200..300).contains(s))
        });
        let resp = if failed_dep {
            ctx.error(&ApiError::new(
                424,
                "FailedDependency",
                "The request failed because a request it depends on failed.",
            ))
        } else {
            run_item(shared, ctx, token, item).await
        };
        statuses.insert(item.id.to_ascii_lowercase(), resp.status);
        responses.push(render_item(&item.id, &resp));
    }
    GraphResponse::json(200, json!({ "responses": responses }))
}

async fn run_item(shared: &Shared, ctx: &Ctx, token: &AccessToken, item: &Item) -> GraphResponse {
    let url = item
        .url
        .trim_start_matches("https://graph.microsoft.com")
        .trim_start_matches("/v1.0");
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let full_path = format!("/v1.0{path}");
    let prefer = item
        .headers
        .iter()
        .filter(|(k, _)| k == "prefer")
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let taken = {
        let mut state = shared.lock();
        match throttle::charge(&mut state, &token.client_id, &token.user_id) {
            Err(t) => Err(t.response(&ctx.request_id, &ctx.client_request_id)),
            Ok(()) => Ok(faults::take_in(&mut state, &item.method, &full_path)),
        }
    };
    let resp = match taken {
        Err(throttled) => throttled,
        Ok(Some(FaultAction::Respond(f))) => {
            faults::status_response(&f, &ctx.request_id, &ctx.client_request_id)
        }
        Ok(action) => {
            // A latency fault holds this item, and so the batch's answer, without holding the
            // mailbox: other requests go on meanwhile.
            if let Some(FaultAction::Delay(d)) = action {
                tokio::time::sleep(d).await;
            }
            let greq = graph_request(
                &item.method,
                &path,
                query,
                item.headers.clone(),
                item.body.clone(),
            );
            dispatch(&mut shared.lock(), ctx, &greq)
        }
    };
    let completed_at = chrono::Utc::now();
    let mut state = shared.lock();
    state.log_request(LoggedRequest {
        method: item.method.to_ascii_uppercase(),
        path: full_path,
        query: query.to_owned(),
        status: resp.status,
        mailbox: Some(token.user_id.clone()),
        in_batch: true,
        prefer,
        received_at: ctx.received_at,
        completed_at,
        body: item.body.clone(),
    });
    resp
}

fn render_item(id: &str, resp: &GraphResponse) -> Value {
    let mut headers = Map::new();
    for (k, v) in &resp.headers {
        headers.insert(k.clone(), json!(v));
    }
    if resp.body.is_some() {
        headers.insert("Content-Type".into(), json!(crate::http::GRAPH_JSON));
    }
    let mut out = json!({"id": id, "status": resp.status, "headers": headers});
    if let Some(b) = &resp.body {
        out["body"] = b.clone();
    }
    out
}
