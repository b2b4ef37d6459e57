//! The actix side: routes, and the pipeline every Graph request goes through (decoding, bearer
//! token check, per-mailbox throttling, injected faults, dispatch, request log).

use crate::errors::error_body;
use crate::faults::{self, FaultAction};
use crate::graph::{self, Ctx, GraphRequest, GraphResponse};
use crate::state::{AccessToken, Shared};
use crate::throttle;
use crate::types::LoggedRequest;
use crate::{control, identity};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use std::sync::Arc;

/// Graph's JSON content type.
pub(crate) const GRAPH_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// Registers every route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(control::configure)
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            web::get().to(identity::authorize),
        )
        .route(
            "/{tenant}/oauth2/v2.0/token",
            web::post().to(identity::token),
        )
        .route("/v1.0/{tail:.*}", web::route().to(graph_entry));
}

/// Percent-decodes a path segment or query component (`+` is a space only in queries).
pub(crate) fn decode(s: &str, plus_is_space: bool) -> String {
    let s = if plus_is_space {
        s.replace('+', " ")
    } else {
        s.to_owned()
    };
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a query string into decoded pairs.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k, true), decode(v, true))
        })
        .collect()
}

/// Builds a `GraphRequest` from a path after `/v1.0` (still encoded) and its parts.
pub(crate) fn graph_request(
    method: &str,
    raw_path: &str,
    query: &str,
    headers: Vec<(String, String)>,
    body: Option<serde_json::Value>,
) -> GraphRequest {
    let segments = raw_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| decode(s, false))
        .collect();
    GraphRequest {
        method: method.to_ascii_uppercase(),
        raw_path: raw_path.to_owned(),
        segments,
        query: parse_query(query),
        headers,
        body,
    }
}

/// Authenticates a bearer token; the error is the 401 message.
pub(crate) fn authenticate(
    token: Option<&AccessToken>,
    header: Option<&str>,
) -> Result<AccessToken, &'static str> {
    if header.is_none_or(|h| h.trim().is_empty()) {
        return Err("Access token is empty.");
    }
    match token {
        None => Err("CompactToken parsing failed with error code: 80049217"),
        Some(t) if t.expires_at <= chrono::Utc::now() => {
            Err("Access token has expired or is not yet valid.")
        }
        Some(t) => Ok(t.clone()),
    }
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let h = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = h.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Renders a Graph response as HTTP.
pub(crate) fn to_http(
    resp: &GraphResponse,
    request_id: &str,
    client_request_id: &str,
) -> HttpResponse {
    let mut out = HttpResponse::build(
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    out.insert_header(("request-id", request_id))
        .insert_header(("client-request-id", client_request_id));
    for (k, v) in &resp.headers {
        out.insert_header((k.as_str(), v.as_str()));
    }
    match &resp.body {
        Some(b) => out.content_type(GRAPH_JSON).body(b.to_string()),
        None => out.finish(),
    }
}

/// Every `/v1.0/...` request.
async fn graph_entry(
    req: HttpRequest,
    body: Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| request_id.clone(), str::to_owned);
    let method = req.method().as_str().to_owned();
    let raw_path = req.path().strip_prefix("/v1.0").unwrap_or("").to_owned();
    let query = req.query_string().to_owned();
    let mut log = LoggedRequest {
        method: method.clone(),
        path: req.path().to_owned(),
        query: query.clone(),
        status: 0,
        mailbox: None,
        in_batch: false,
        prefer: req
            .headers()
            .get_all("prefer")
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", "),
        received_at: chrono::Utc::now(),
        completed_at: chrono::Utc::now(),
        body: None,
    };
    let err = |status: u16, code: &str, msg: &str| {
        GraphResponse::json(
            status,
            error_body(code, msg, &request_id, &client_request_id),
        )
    };

    // Authentication comes first, as on the real service.
    let token = {
        let state = shared.lock();
        authenticate(
            bearer(&req).and_then(|t| state.access_tokens.get(t)),
            bearer(&req),
        )
    };
    let token = match token {
        Ok(t) => t,
        Err(msg) => {
            let resp = err(401, "InvalidAuthenticationToken", msg).header(
                "WWW-Authenticate",
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
            );
            return finish(&shared, log, &resp, &request_id, &client_request_id);
        }
    };
    log.mailbox = Some(token.user_id.clone());

    let slot = match throttle::acquire(&shared, &token.client_id, &token.user_id) {
        Ok(slot) => slot,
        Err(t) => {
            return finish(
                &shared,
                log,
                &t.response(&request_id, &client_request_id),
                &request_id,
                &client_request_id,
            );
        }
    };
    let action = faults::take(&shared, &method, req.path());
    if let Some(FaultAction::Respond(resp)) = &action {
        let resp = faults::status_response(resp, &request_id, &client_request_id);
        return finish(&shared, log, &resp, &request_id, &client_request_id);
    }
    if let Some(FaultAction::Delay(d)) = &action {
        tokio::time::sleep(*d).await;
    }

    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned())))
        .collect();
    let json = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(_) => {
                let resp = err(
                    400,
                    "BadRequest",
                    "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
                );
                return finish(&shared, log, &resp, &request_id, &client_request_id);
            }
        }
    };
    log.body.clone_from(&json);
    let greq = graph_request(&method, &raw_path, &query, headers, json);
    let ctx = Ctx {
        user_id: token.user_id.clone(),
        scopes: token.scopes.clone(),
        request_id: request_id.clone(),
        client_request_id: client_request_id.clone(),
        received_at: log.received_at,
    };
    let resp = if greq.segments.len() == 1 && greq.segments[0] == "$batch" {
        graph::batch::execute(&shared, &ctx, &token, &greq).await
    } else {
        let mut state = shared.lock();
        graph::dispatch(&mut state, &ctx, &greq)
    };
    drop(slot);
    match action {
        Some(FaultAction::SlowAnswer(delay)) => {
            log.status = resp.status;
            log.completed_at = chrono::Utc::now();
            shared.lock().log_request(log);
            tokio::time::sleep(delay).await;
            to_http(&resp, &request_id, &client_request_id)
        }
        Some(FaultAction::Mangle(kind)) => {
            log.status = if matches!(kind, faults::Mangle::Drop) {
                0
            } else {
                resp.status
            };
            shared.lock().log_request(log);
            faults::mangle(kind, &resp, &request_id, &client_request_id)
        }
        _ => finish(&shared, log, &resp, &request_id, &client_request_id),
    }
}

fn finish(
    shared: &Shared,
    mut log: LoggedRequest,
    resp: &GraphResponse,
    request_id: &str,
    client_request_id: &str,
) -> HttpResponse {
    log.status = resp.status;
    shared.lock().log_request(log);
    to_http(resp, request_id, client_request_id)
}
