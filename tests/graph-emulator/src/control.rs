//! The control API under `/_emulator/` (JSON), and the state operations behind it that the
//! library handle calls directly: apps, users, token expiry and revocation, delta token expiry,
//! configuration, faults, the request log, the mail log, reset, and Outlook-side edits.

use crate::http::decode;
use crate::ids;
use crate::mailbox::Mailbox;
use crate::outlook::{self, ControlError, ControlResult};
use crate::state::{AppRecord, DEFAULT_TENANT_ID, PendingFault, Shared, State};
use crate::types::{App, AppSpec, Config, FaultSpec, MailboxUser, UserSelector, UserSpec};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Value, json};
use std::sync::Arc;

/// Registers an app.
pub(crate) fn create_app(state: &mut State, spec: AppSpec) -> App {
    let record = AppRecord {
        client_id: spec.client_id.unwrap_or_else(ids::new_guid),
        secret: spec
            .secret
            .unwrap_or_else(|| format!("emu~{}", ids::new_token(30))),
        secret_expired: false,
        redirect_uris: spec.redirect_uris,
        multi_tenant: spec.multi_tenant,
        tenant_id: spec
            .tenant_id
            .unwrap_or_else(|| DEFAULT_TENANT_ID.to_owned()),
    };
    let app = App {
        client_id: record.client_id.clone(),
        client_secret: record.secret.clone(),
        tenant_id: record.tenant_id.clone(),
    };
    state.apps.insert(record.client_id.clone(), record);
    app
}

/// Creates a user with an empty mailbox and the built-in "Tasks" list.
pub(crate) fn create_user(state: &mut State, spec: UserSpec) -> ControlResult<MailboxUser> {
    if spec.user_principal_name.is_empty() {
        return Err(ControlError::new(
            400,
            "invalidRequest",
            "user_principal_name is required",
        ));
    }
    if state.find_user_id(&spec.user_principal_name).is_some()
        || spec
            .id
            .as_ref()
            .is_some_and(|id| state.mailboxes.contains_key(id))
    {
        return Err(ControlError::new(
            409,
            "conflict",
            format!("user '{}' exists", spec.user_principal_name),
        ));
    }
    let mbox = Mailbox::new(spec, DEFAULT_TENANT_ID);
    let user = mbox.public();
    state.mailboxes.insert(user.id.clone(), mbox);
    Ok(user)
}

fn matches_user(selector: Option<&str>, user_id: &str) -> bool {
    selector.is_none_or(|u| u == user_id)
}

/// Makes access tokens (of one user, or all) expired, so Graph answers 401.
pub(crate) fn expire_access_tokens(state: &mut State, user_id: Option<&str>) {
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    for t in state
        .access_tokens
        .values_mut()
        .filter(|t| matches_user(user_id, &t.user_id))
    {
        t.expires_at = past;
    }
}

/// Revokes refresh tokens (AADSTS50173 on next use).
pub(crate) fn revoke_refresh_tokens(state: &mut State, user_id: Option<&str>) {
    for t in state
        .refresh_tokens
        .values_mut()
        .filter(|t| matches_user(user_id, &t.user_id))
    {
        t.revoked = true;
    }
}

/// Expires refresh tokens as if inactive too long (AADSTS700082 on next use).
pub(crate) fn expire_refresh_tokens(state: &mut State, user_id: Option<&str>) {
    for t in state
        .refresh_tokens
        .values_mut()
        .filter(|t| matches_user(user_id, &t.user_id))
    {
        t.expired = true;
    }
}

/// Marks an app's secret expired (AADSTS7000222).
pub(crate) fn expire_client_secret(state: &mut State, client_id: &str) -> ControlResult<()> {
    let app = state
        .apps
        .get_mut(client_id)
        .ok_or_else(|| ControlError::new(404, "appNotFound", client_id.to_owned()))?;
    app.secret_expired = true;
    Ok(())
}

/// Adds a fault for the next `count` matching requests.
pub(crate) fn inject_fault(state: &mut State, spec: FaultSpec) {
    let remaining = spec.count;
    state.faults.push(PendingFault { spec, remaining });
}

/// Applies the fields present in a JSON object to the configuration.
pub(crate) fn patch_config(state: &mut State, patch: &Value) -> ControlResult<Config> {
    let mut current = serde_json::to_value(&state.config)
        .map_err(|e| ControlError::new(500, "internal", e.to_string()))?;
    if let (Some(cur), Some(p)) = (current.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if !cur.contains_key(k) {
                return Err(ControlError::new(
                    400,
                    "invalidRequest",
                    format!("unknown config field '{k}'"),
                ));
            }
            cur.insert(k.clone(), v.clone());
        }
    }
    state.config = serde_json::from_value(current)
        .map_err(|e| ControlError::new(400, "invalidRequest", e.to_string()))?;
    Ok(state.config.clone())
}

/// Registers the `/_emulator/` routes.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_emulator/{tail:.*}", web::route().to(handle));
}

fn ok(v: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok().json(v)
}

fn fail(e: &ControlError) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(e.status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({"error": {"code": e.code, "message": e.message}}))
}

fn parse<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> ControlResult<T> {
    if body.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ControlError::new(400, "invalidRequest", e.to_string()))
}

async fn handle(req: HttpRequest, body: Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let segs: Vec<String> = req
        .path()
        .trim_start_matches("/_emulator")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| decode(s, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().as_str().to_owned();
    let mut state = shared.lock();
    match route(&mut state, &method, &segs, &body) {
        Ok(resp) => resp,
        Err(e) => fail(&e),
    }
}

fn route(
    state: &mut State,
    method: &str,
    segs: &[&str],
    body: &Bytes,
) -> ControlResult<HttpResponse> {
    let json_body = || -> ControlResult<Value> { parse::<Value>(body) };
    let selector = || -> ControlResult<Option<String>> { Ok(parse::<UserSelector>(body)?.user_id) };
    Ok(match (method, segs) {
        ("POST", ["apps"]) => ok(create_app(state, parse(body)?)),
        ("POST", ["apps", id, "expire-secret"]) => {
            expire_client_secret(state, id)?;
            HttpResponse::NoContent().finish()
        }
        ("POST", ["users"]) => ok(create_user(state, parse(body)?)?),
        ("GET", ["users"]) => ok(state
            .mailboxes
            .values()
            .map(Mailbox::public)
            .collect::<Vec<_>>()),
        ("POST", ["consent", "decline-next"]) => {
            state.decline_next_consent = true;
            HttpResponse::NoContent().finish()
        }
        ("POST", ["tokens", "access", "expire"]) => {
            expire_access_tokens(state, selector()?.as_deref());
            HttpResponse::NoContent().finish()
        }
        ("POST", ["tokens", "refresh", "revoke"]) => {
            revoke_refresh_tokens(state, selector()?.as_deref());
            HttpResponse::NoContent().finish()
        }
        ("POST", ["tokens", "refresh", "expire"]) => {
            expire_refresh_tokens(state, selector()?.as_deref());
            HttpResponse::NoContent().finish()
        }
        ("POST", ["delta", "expire"]) => {
            state.sync.expire(selector()?.as_deref(), false);
            HttpResponse::NoContent().finish()
        }
        ("POST", ["delta", "resync-required"]) => {
            state.sync.expire(selector()?.as_deref(), true);
            HttpResponse::NoContent().finish()
        }
        ("GET", ["config"]) => ok(&state.config),
        ("PATCH", ["config"]) => ok(patch_config(state, &json_body()?)?),
        ("POST", ["faults"]) => {
            let spec: FaultSpec = serde_json::from_slice(body)
                .map_err(|e| ControlError::new(400, "invalidRequest", e.to_string()))?;
            inject_fault(state, spec);
            HttpResponse::NoContent().finish()
        }
        ("GET", ["faults"]) => ok(state
            .faults
            .iter()
            .map(|f| json!({"spec": f.spec, "remaining": f.remaining}))
            .collect::<Vec<_>>()),
        ("DELETE", ["faults"]) => {
            state.faults.clear();
            HttpResponse::NoContent().finish()
        }
        ("GET", ["requests"]) => ok(&state.log),
        ("GET", ["mail-log"]) => ok(&state.mail_log),
        ("DELETE", ["mail-log"]) => {
            state.mail_log.clear();
            HttpResponse::NoContent().finish()
        }
        ("DELETE", ["requests"]) => {
            state.log.clear();
            HttpResponse::NoContent().finish()
        }
        ("POST", ["reset"]) => {
            state.reset();
            HttpResponse::NoContent().finish()
        }
        (_, ["users", user, rest @ ..]) => outlook_route(state, method, user, rest, &json_body()?)?,
        _ => {
            return Err(ControlError::new(
                404,
                "notFound",
                "no such control endpoint",
            ));
        }
    })
}

fn outlook_route(
    state: &mut State,
    method: &str,
    user: &str,
    rest: &[&str],
    body: &Value,
) -> ControlResult<HttpResponse> {
    Ok(match (method, rest) {
        ("GET", ["events"]) => ok(json!({"value": outlook::list_events(state, user)?})),
        ("POST", ["events"]) => {
            HttpResponse::Created().json(outlook::create_event(state, user, body)?)
        }
        ("GET", ["events", id]) => ok(outlook::get_event(state, user, id)?),
        ("PATCH", ["events", id]) => ok(outlook::update_event(state, user, id, body)?),
        ("DELETE", ["events", id]) => {
            outlook::delete_event(state, user, id)?;
            HttpResponse::NoContent().finish()
        }
        ("POST", ["events", id, "cancel"]) => {
            outlook::cancel_event(state, user, id, body.get("comment").and_then(Value::as_str))?;
            HttpResponse::Accepted().finish()
        }
        ("POST", ["events", id, action]) => {
            outlook::respond_event(state, user, id, action, body)?;
            HttpResponse::Accepted().finish()
        }
        ("GET", ["todo", "lists"]) => ok(json!({"value": outlook::list_lists(state, user)?})),
        ("POST", ["todo", "lists"]) => {
            HttpResponse::Created().json(outlook::create_list(state, user, body)?)
        }
        ("GET", ["todo", "lists", list, "tasks"]) => {
            ok(json!({"value": outlook::list_tasks(state, user, Some(list))?}))
        }
        ("POST", ["todo", "lists", list, "tasks"]) => {
            HttpResponse::Created().json(outlook::create_task(state, user, Some(list), body)?)
        }
        ("PATCH", ["todo", "lists", list, "tasks", id]) => {
            ok(outlook::update_task(state, user, Some(list), id, body)?)
        }
        ("DELETE", ["todo", "lists", list, "tasks", id]) => {
            outlook::delete_task(state, user, Some(list), id)?;
            HttpResponse::NoContent().finish()
        }
        _ => {
            return Err(ControlError::new(
                404,
                "notFound",
                "no such control endpoint",
            ));
        }
    })
}
