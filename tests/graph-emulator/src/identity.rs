//! Identity platform v2.0: `/{tenant}/oauth2/v2.0/authorize` and `/{tenant}/oauth2/v2.0/token`
//! for the authorization code flow with PKCE and refresh tokens (v2-oauth2-auth-code-flow.md).
//! Errors carry Microsoft's AADSTS codes and body shape.

use crate::faults::{self, FaultAction};
use crate::http::parse_query;
use crate::ids;
use crate::state::{AuthCode, Shared, State};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The Graph resource prefix of fully qualified scopes.
pub(crate) const GRAPH_RESOURCE: &str = "https://graph.microsoft.com/";
/// Sign-in (`OpenID` Connect) scopes, which do not go into the access token.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// A token endpoint error in Microsoft's shape.
pub(crate) fn aad_error(
    status: u16,
    error: &str,
    code: u32,
    message: &str,
    correlation: Option<&str>,
) -> HttpResponse {
    let trace_id = ids::new_guid();
    let correlation_id = correlation.map_or_else(ids::new_guid, str::to_owned);
    let now = Utc::now();
    let timestamp = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let description = format!(
        "AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {}",
        now.format("%Y-%m-%d %H:%M:%S%.3fZ")
    );
    let body = json!({
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .insert_header(("Cache-Control", "no-store, no-cache"))
    .json(body)
}

/// Scope names without the Graph prefix, as requested.
pub(crate) fn split_scopes(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|x| {
            // `get` keeps a multi-byte character at the boundary from panicking.
            match (x.get(..GRAPH_RESOURCE.len()), x.get(GRAPH_RESOURCE.len()..)) {
                (Some(head), Some(rest)) if head.eq_ignore_ascii_case(GRAPH_RESOURCE) => {
                    rest.to_owned()
                }
                _ => x.to_owned(),
            }
        })
        .collect()
}

pub(crate) fn is_oidc_scope(s: &str) -> bool {
    OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(s))
}

pub(crate) fn has_scope(scopes: &[String], name: &str) -> bool {
    scopes.iter().any(|s| s.eq_ignore_ascii_case(name))
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Whether a tenant path segment is one of the shared endpoints.
fn is_shared_tenant(tenant: &str) -> bool {
    matches!(
        tenant.to_ascii_lowercase().as_str(),
        "common" | "organizations" | "consumers"
    )
}

fn fault_response(shared: &Shared, req: &HttpRequest) -> Option<HttpResponse> {
    match faults::take(shared, req.method().as_str(), req.path())? {
        FaultAction::Respond((status, retry_after)) => {
            let mut resp = aad_error(
                status,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
                None,
            );
            if let Some(s) = retry_after
                && let Ok(v) = actix_web::http::header::HeaderValue::from_str(&s.to_string())
            {
                resp.headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, v);
            }
            Some(resp)
        }
        _ => None,
    }
}

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub(crate) async fn authorize(
    req: HttpRequest,
    tenant: web::Path<String>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if let Some(resp) = fault_response(&shared, &req) {
        return resp;
    }
    let params = parse_query(req.query_string());
    let mut state = shared.lock();
    crate::authorize::run(&mut state, &tenant, &params, req.query_string())
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    req: HttpRequest,
    tenant: web::Path<String>,
    body: Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if let Some(resp) = fault_response(&shared, &req) {
        return resp;
    }
    let params = parse_query(&String::from_utf8_lossy(&body));
    let correlation = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let err = |status: u16, error: &str, code: u32, msg: &str| {
        aad_error(status, error, code, msg, correlation.as_deref())
    };
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(a, b)| (crate::http::decode(a, true), crate::http::decode(b, true)))
        });
    let client_id = param(&params, "client_id")
        .map(str::to_owned)
        .or_else(|| basic.as_ref().map(|b| b.0.clone()));
    let secret = param(&params, "client_secret")
        .map(str::to_owned)
        .or_else(|| basic.as_ref().map(|b| b.1.clone()));
    let Some(grant_type) = param(&params, "grant_type") else {
        return err(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    };
    let Some(client_id) = client_id else {
        return err(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let mut state = shared.lock();
    let Some(app) = state.apps.get(&client_id).cloned() else {
        return err(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
            ),
        );
    };
    if is_shared_tenant(&tenant) && !app.multi_tenant {
        return err(
            400,
            "invalid_request",
            50194,
            &format!(
                "Application '{client_id}' is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant."
            ),
        );
    }
    let Some(secret) = secret else {
        return err(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if secret != app.secret {
        return err(
            401,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    if app.secret_expired {
        return err(
            401,
            "invalid_client",
            7000222,
            &format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app."
            ),
        );
    }
    let grant = match grant_type {
        "authorization_code" => redeem_code(&mut state, &tenant, &client_id, &params),
        "refresh_token" => redeem_refresh(&mut state, &client_id, &params),
        other => Err((
            400,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    };
    match grant {
        Ok((user_id, scopes, nonce)) => {
            crate::tokens::issue(&mut state, &client_id, &user_id, &scopes, nonce.as_deref())
        }
        Err((status, error, code, msg)) => err(status, error, code, &msg),
    }
}

type GrantError = (u16, &'static str, u32, String);
type Grant = (String, Vec<String>, Option<String>);

fn redeem_code(
    state: &mut State,
    tenant: &str,
    client_id: &str,
    params: &[(String, String)],
) -> Result<Grant, GrantError> {
    let Some(code) = param(params, "code") else {
        return Err((
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'code'.".into(),
        ));
    };
    let malformed = || {
        (
            400,
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid.".to_owned(),
        )
    };
    let entry = state.codes.get_mut(code).ok_or_else(malformed)?;
    if entry.client_id != client_id {
        return Err((
            400,
            "invalid_grant",
            70000,
            "Provided grant is invalid or malformed.".into(),
        ));
    }
    if entry.redeemed {
        return Err((400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.".into()));
    }
    if entry.expires_at <= Utc::now() {
        return Err((400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.".into()));
    }
    if !is_shared_tenant(tenant)
        && !is_shared_tenant(&entry.tenant)
        && !entry.tenant.eq_ignore_ascii_case(tenant)
    {
        return Err((
            400,
            "invalid_grant",
            700005,
            "Provided Authorization Code is intended to use against other tenant, thus rejected."
                .into(),
        ));
    }
    let redirect = param(params, "redirect_uri").unwrap_or("");
    if redirect != entry.redirect_uri {
        return Err((
            400,
            "invalid_grant",
            500112,
            format!(
                "The reply address '{redirect}' does not match the reply address '{}' provided when requesting Authorization code.",
                entry.redirect_uri
            ),
        ));
    }
    if let Some((challenge, method)) = &entry.challenge {
        let verifier = param(params, "code_verifier").unwrap_or("");
        let computed = if method.eq_ignore_ascii_case("S256") {
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
        } else {
            verifier.to_owned()
        };
        if verifier.is_empty() || &computed != challenge {
            return Err((400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.".into()));
        }
    }
    entry.redeemed = true;
    let AuthCode {
        user_id,
        scopes,
        nonce,
        ..
    } = entry.clone();
    Ok((user_id, scopes, nonce))
}

fn redeem_refresh(
    state: &mut State,
    client_id: &str,
    params: &[(String, String)],
) -> Result<Grant, GrantError> {
    let Some(rt) = param(params, "refresh_token") else {
        return Err((
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'refresh_token'.".into(),
        ));
    };
    let lifetime = state.config.refresh_token_lifetime_secs;
    let entry = state.refresh_tokens.get_mut(rt).ok_or((
        400,
        "invalid_grant",
        9002313,
        "Invalid request. Request is malformed or invalid.".to_owned(),
    ))?;
    if entry.client_id != client_id {
        return Err((
            400,
            "invalid_grant",
            70000,
            "Provided grant is invalid or malformed.".into(),
        ));
    }
    if entry.revoked {
        return Err((400, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.".into()));
    }
    let now = Utc::now();
    if entry.expired || now - entry.last_used > Duration::seconds(lifetime) {
        let inactive = (now - entry.last_used).num_seconds();
        return Err((
            400,
            "invalid_grant",
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for {inactive} seconds.",
                crate::time::format_stamp(entry.last_used)
            ),
        ));
    }
    entry.last_used = now;
    let granted = entry.scopes.clone();
    let user_id = entry.user_id.clone();
    let requested = param(params, "scope")
        .map(split_scopes)
        .unwrap_or_else(|| granted.clone());
    let consented = state
        .consents
        .get(&(client_id.to_owned(), user_id.clone()))
        .cloned()
        .unwrap_or_default();
    let unconsented =
        |s: &&String| !is_oidc_scope(s) && !consented.iter().any(|c| c.eq_ignore_ascii_case(s));
    if requested.iter().any(|s| unconsented(&s)) {
        return Err((
            400,
            "invalid_grant",
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID '{client_id}'. Send an interactive authorization request for this user and resource."
            ),
        ));
    }
    // Asking for fewer scopes narrows the new tokens; offline_access stays with a refresh grant.
    let mut scopes = requested;
    if !has_scope(&scopes, "offline_access") {
        scopes.push("offline_access".into());
    }
    Ok((user_id, scopes, None))
}
