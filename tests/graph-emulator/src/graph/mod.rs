//! Graph v1.0 request handling, independent of actix so that `$batch` items run through exactly
//! the same code as top-level requests. `dispatch` routes a decoded request to a handler that
//! works on the locked state.

pub(crate) mod batch;
pub(crate) mod calendar;
mod event_routes;
mod todo;

use crate::errors::{ApiError, ApiResult};
use crate::state::State;
use crate::time::{BodyType, Prefer};
use serde_json::{Value, json};

/// A Graph request, decoded.
#[derive(Debug, Clone)]
pub(crate) struct GraphRequest {
    /// Upper-case method.
    pub method: String,
    /// Path after `/v1.0`, still percent-encoded (for logs and fault matching).
    pub raw_path: String,
    /// Decoded path segments after `/v1.0`.
    pub segments: Vec<String>,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// JSON body, when there is one.
    pub body: Option<Value>,
}

impl GraphRequest {
    /// A query parameter by name; `$top` also matches `top` (both spellings are allowed).
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        let bare = name.trim_start_matches('$');
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name) || k.eq_ignore_ascii_case(bare))
            .map(|(_, v)| v.as_str())
    }

    /// A header by (lower-case) name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request's `Prefer` preferences.
    pub(crate) fn prefer(&self) -> Prefer {
        Prefer::parse(
            self.headers
                .iter()
                .filter(|(k, _)| k == "prefer")
                .map(|(_, v)| v.as_str()),
        )
    }

    /// Whether `$expand` names `what`, alone or with options (`extensions($filter=...)`).
    pub(crate) fn expands(&self, what: &str) -> bool {
        self.expand_options(what).is_some()
    }

    /// The options of an `$expand` item: `Some("")` when it has none.
    fn expand_options(&self, what: &str) -> Option<&str> {
        let expand = self.param("$expand")?;
        expand.split(',').map(str::trim).find_map(|item| {
            let head = item.get(..what.len())?;
            if !head.eq_ignore_ascii_case(what) {
                return None;
            }
            let rest = &item[what.len()..];
            if rest.is_empty() {
                Some("")
            } else {
                rest.strip_prefix('(').and_then(|r| r.strip_suffix(')'))
            }
        })
    }

    /// Applies `$expand=extensions($filter=id eq '...')` to a rendered item: only the named
    /// extension stays (matched by ID or extension name, as Outlook does).
    pub(crate) fn filter_expanded_extensions(&self, item: &mut Value) {
        let Some(options) = self.expand_options("extensions") else {
            return;
        };
        let Some(filter) = options.trim().strip_prefix("$filter=") else {
            return;
        };
        let Some((_, wanted)) = filter.split_once("eq") else {
            return;
        };
        let wanted = wanted.trim().trim_matches('\'');
        if let Some(list) = item.get_mut("extensions").and_then(Value::as_array_mut) {
            list.retain(|e| e["id"] == wanted || e["extensionName"] == wanted);
        }
    }

    /// Applies the request's `$expand` options and `Prefer: outlook.body-content-type` to a
    /// rendered event (HTML without the preference, as Graph returns event bodies by default).
    pub(crate) fn adjust_event(&self, item: &mut Value) {
        self.filter_expanded_extensions(item);
        let want = self.prefer().body_type.unwrap_or(BodyType::Html);
        if let Some(body) = item.get_mut("body")
            && body.is_object()
        {
            *body = crate::body::shown_as(body, want);
        }
    }

    /// The JSON body, required.
    pub(crate) fn json_body(&self) -> ApiResult<&Value> {
        self.body
            .as_ref()
            .ok_or_else(|| ApiError::body_read("Empty Payload. JSON content expected."))
    }
}

/// A Graph response before it becomes HTTP.
#[derive(Debug, Clone)]
pub(crate) struct GraphResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl GraphResponse {
    pub(crate) fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    pub(crate) fn no_content() -> Self {
        Self {
            status: 204,
            headers: Vec::new(),
            body: None,
        }
    }

    /// 202 Accepted without a body (the meeting actions).
    pub(crate) fn accepted() -> Self {
        Self {
            status: 202,
            headers: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// Who is calling and how to render responses.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub user_id: String,
    /// Normalised scopes of the access token.
    pub scopes: Vec<String>,
    pub request_id: String,
    pub client_request_id: String,
    /// When the request (for a `$batch` item: its batch) was received.
    pub received_at: chrono::DateTime<chrono::Utc>,
}

impl Ctx {
    pub(crate) fn error(&self, e: &ApiError) -> GraphResponse {
        GraphResponse::json(e.status, e.body(&self.request_id, &self.client_request_id))
    }

    /// Whether the token carries one of `any` (or `.default`, which stands for all).
    fn has_scope(&self, any: &[&str]) -> bool {
        self.scopes
            .iter()
            .any(|s| s == ".default" || any.iter().any(|a| a.eq_ignore_ascii_case(s)))
    }

    /// 403 unless the token carries one of `any`.
    pub(crate) fn require(&self, any: &[&str]) -> ApiResult<()> {
        if self.has_scope(any) {
            Ok(())
        } else {
            Err(ApiError::new(
                403,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            ))
        }
    }
}

/// Routes a request for the signed-in user.
pub(crate) fn dispatch(state: &mut State, ctx: &Ctx, req: &GraphRequest) -> GraphResponse {
    match route(state, ctx, req) {
        Ok(resp) => resp,
        Err(e) => ctx.error(&e),
    }
}

fn route(state: &mut State, ctx: &Ctx, req: &GraphRequest) -> ApiResult<GraphResponse> {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    // `/users/{id or upn}/...` is `/me/...` when it names the signed-in user; delegated tokens
    // cannot reach other mailboxes here.
    let rest: Vec<&str> = match segs.as_slice() {
        ["me", rest @ ..] => rest.to_vec(),
        ["users", who, rest @ ..] => {
            if state.find_user_id(who).as_deref() != Some(ctx.user_id.as_str()) {
                return Err(ApiError::new(
                    403,
                    "ErrorAccessDenied",
                    "Access is denied. Check credentials and try again.",
                ));
            }
            rest.to_vec()
        }
        [first, ..] => return Err(unknown_segment(first)),
        [] => return Err(unknown_segment("")),
    };
    let m = req.method.as_str();
    match rest.as_slice() {
        [] if m == "GET" => me(state, ctx),
        ["calendar", tail @ ..]
            if matches!(tail.first(), Some(&"events") | Some(&"calendarView")) =>
        {
            event_routes::route(state, ctx, req, tail)
        }
        ["events", ..] => event_routes::route(state, ctx, req, &rest),
        ["calendarView", ..] => event_routes::route(state, ctx, req, &rest),
        ["todo", "lists", tail @ ..] => todo::route(state, ctx, req, tail),
        [] => Err(method_not_allowed()),
        [other, ..] => Err(unknown_segment(other)),
    }
}

fn me(state: &State, ctx: &Ctx) -> ApiResult<GraphResponse> {
    ctx.require(&[
        "user.read",
        "user.readwrite",
        "user.read.all",
        "user.readwrite.all",
        "directory.read.all",
    ])?;
    let mbox = state
        .mailboxes
        .get(&ctx.user_id)
        .ok_or_else(ApiError::not_found)?;
    let mut body = mbox.user.to_json();
    body["@odata.context"] = json!(format!("{}/v1.0/$metadata#users/$entity", state.base_url));
    Ok(GraphResponse::json(200, body))
}

/// 400 for a path segment Graph does not know.
pub(crate) fn unknown_segment(seg: &str) -> ApiError {
    ApiError::new(
        400,
        "BadRequest",
        format!("Resource not found for the segment '{seg}'."),
    )
}

/// 405 for a known path with a method it does not support.
pub(crate) fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )
}

/// Page size: `$top`, else `Prefer: odata.maxpagesize`, else the configured default.
pub(crate) fn page_size(state: &State, req: &GraphRequest) -> usize {
    req.param("$top")
        .and_then(|t| t.parse().ok())
        .or(req.prefer().max_page_size)
        .unwrap_or(state.config.default_page_size)
        .clamp(1, 1000)
}

/// Builds a collection page with `$skip` paging: `@odata.nextLink` keeps the other query
/// parameters, as Graph's links do.
pub(crate) fn collection_page(
    state: &State,
    req: &GraphRequest,
    context: &str,
    items: Vec<Value>,
) -> GraphResponse {
    let size = page_size(state, req);
    let skip: usize = req.param("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(skip).take(size).collect();
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#{context}", state.base_url),
        "value": page,
    });
    if skip + size < total {
        let mut query: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| k != "$skip" && k != "$top")
            .cloned()
            .collect();
        query.push(("$top".into(), size.to_string()));
        query.push(("$skip".into(), (skip + size).to_string()));
        body["@odata.nextLink"] = json!(link(state, &req.raw_path, &query));
    }
    GraphResponse::json(200, body)
}

/// An absolute Graph URL for a path (after `/v1.0`) and query.
pub(crate) fn link(state: &State, raw_path: &str, query: &[(String, String)]) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, QUERY).to_string();
    let qs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    if qs.is_empty() {
        format!("{}/v1.0{raw_path}", state.base_url)
    } else {
        format!("{}/v1.0{raw_path}?{}", state.base_url, qs.join("&"))
    }
}

/// Characters escaped in query values (`$` stays readable, as in Graph's links).
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'$')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':');
