//! The authorize endpoint's rules: errors about the client or its redirect URI are shown on a
//! page (the redirect URI cannot be trusted), later errors are redirected to the client with
//! `error` and `error_description`; the user is the one named by `login_hint`, else chosen on a
//! small HTML page; consent is recorded per app and user.

use crate::identity::split_scopes;
use crate::ids;
use crate::state::{AuthCode, State};
use actix_web::HttpResponse;
use chrono::{Duration, Utc};

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Everything but RFC 3986's unreserved characters is escaped.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// An error shown on the sign-in page itself.
fn error_page(code: u32, message: &str) -> HttpResponse {
    HttpResponse::BadRequest().content_type("text/html; charset=utf-8").body(format!(
        "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body>\
         <h1>Sorry, but we're having trouble signing you in.</h1><p>AADSTS{code}: {}</p></body></html>",
        escape(message)
    ))
}

/// Sends the browser back to the client with these parameters, honouring `response_mode`.
fn respond(redirect_uri: &str, mode: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    if mode == "form_post" {
        let inputs: String = pairs
            .iter()
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\"/>",
                    escape(k),
                    escape(v)
                )
            })
            .collect();
        return HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
            "<html><body onload=\"document.forms[0].submit()\"><form method=\"POST\" action=\"{}\">{inputs}</form></body></html>",
            escape(redirect_uri)
        ));
    }
    let qs: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    let sep = if mode == "fragment" {
        "#"
    } else if redirect_uri.contains('?') {
        "&"
    } else {
        "?"
    };
    HttpResponse::Found()
        .insert_header(("Location", format!("{redirect_uri}{sep}{}", qs.join("&"))))
        .finish()
}

/// Runs an authorize request.
pub(crate) fn run(
    state: &mut State,
    tenant: &str,
    params: &[(String, String)],
    raw_query: &str,
) -> HttpResponse {
    let Some(client_id) = param(params, "client_id") else {
        return error_page(
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(app) = state.apps.get(client_id).cloned() else {
        return error_page(
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    let redirect_uri = param(params, "redirect_uri").unwrap_or("");
    if !app.redirect_uris.iter().any(|u| u == redirect_uri) {
        return error_page(
            50011,
            &format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
            ),
        );
    }
    let mode = param(params, "response_mode").unwrap_or("query");
    let state_param = param(params, "state");
    let fail = |error: &str, code: u32, msg: &str| {
        let desc = format!(
            "AADSTS{code}: {msg}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            ids::new_guid(),
            ids::new_guid(),
            Utc::now().format("%Y-%m-%d %H:%M:%SZ")
        );
        let mut pairs = vec![("error", error), ("error_description", desc.as_str())];
        if let Some(s) = state_param {
            pairs.push(("state", s));
        }
        respond(redirect_uri, mode, &pairs)
    };
    let shared_tenant = matches!(
        tenant.to_ascii_lowercase().as_str(),
        "common" | "organizations" | "consumers"
    );
    if shared_tenant && !app.multi_tenant {
        return fail(
            "invalid_request",
            50194,
            &format!(
                "Application '{client_id}' is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant."
            ),
        );
    }
    if !shared_tenant && !app.multi_tenant && !tenant.eq_ignore_ascii_case(&app.tenant_id) {
        return fail(
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    }
    match param(params, "response_type") {
        Some("code") => {}
        None => {
            return fail(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'response_type'.",
            );
        }
        Some(other) => {
            return fail(
                "unsupported_response_type",
                700054,
                &format!("response_type '{other}' is not enabled for the application."),
            );
        }
    }
    let Some(scope) = param(params, "scope") else {
        return fail(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let challenge = param(params, "code_challenge");
    let method = param(params, "code_challenge_method").unwrap_or("plain");
    if challenge.is_some() && !matches!(method, "S256" | "plain") {
        return fail(
            "invalid_request",
            9002313,
            "Invalid request. Request is malformed or invalid. code_challenge_method must be 'S256' or 'plain'.",
        );
    }
    let hint = param(params, "login_hint");
    let Some(user_id) = hint.and_then(|h| state.find_user_id(h)) else {
        return chooser(state, tenant, raw_query, hint);
    };
    let scopes = split_scopes(scope);
    let key = (client_id.to_owned(), user_id.clone());
    let consented = state.consents.get(&key).is_some_and(|c| {
        scopes.iter().all(|s| {
            crate::identity::is_oidc_scope(s) || c.iter().any(|x| x.eq_ignore_ascii_case(s))
        })
    });
    if state.decline_next_consent {
        state.decline_next_consent = false;
        return fail(
            "access_denied",
            65004,
            "User declined to consent to access the app.",
        );
    }
    if param(params, "prompt") == Some("none") && !consented {
        return fail(
            "consent_required",
            65001,
            &format!(
                "The user or administrator has not consented to use the application with ID '{client_id}'. Send an interactive authorization request for this user and resource."
            ),
        );
    }
    state
        .consents
        .entry(key)
        .or_default()
        .extend(scopes.iter().cloned());
    let code = format!("M.C5{}", ids::new_token(64));
    state.codes.insert(
        code.clone(),
        AuthCode {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            user_id,
            scopes,
            challenge: challenge.map(|c| (c.to_owned(), method.to_owned())),
            expires_at: Utc::now() + Duration::seconds(state.config.code_lifetime_secs),
            redeemed: false,
            tenant: tenant.to_owned(),
            nonce: param(params, "nonce").map(str::to_owned),
        },
    );
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = state_param {
        pairs.push(("state", s));
    }
    respond(redirect_uri, mode, &pairs)
}

/// The account picker shown when `login_hint` names nobody.
fn chooser(state: &State, tenant: &str, raw_query: &str, hint: Option<&str>) -> HttpResponse {
    let mut users: Vec<_> = state.mailboxes.values().map(|m| &m.user).collect();
    users.sort_by(|a, b| a.user_principal_name.cmp(&b.user_principal_name));
    let items: String = users
        .iter()
        .map(|u| {
            format!(
                "<li><a href=\"/{}/oauth2/v2.0/authorize?{}&amp;login_hint={}\">{} ({})</a></li>",
                enc(tenant),
                escape(raw_query),
                enc(&u.user_principal_name),
                escape(&u.display_name),
                escape(&u.user_principal_name)
            )
        })
        .collect();
    let note = hint
        .map(|h| format!("<p>No account named {} here.</p>", escape(h)))
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body>\
         <h1>Pick an account</h1>{note}<ul>{items}</ul></body></html>"
        ))
}
