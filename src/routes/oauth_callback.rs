//! `GET /api/v1/microsoft/oauth/callback`: where Microsoft sends the browser back after
//! sign-in. No bearer token: the state identifies the user.
//!
//! The answer is a small page that tells the window that opened the popup (`postMessage`, for
//! the configured front-end origin only) and closes itself, or, when a front-end return URL is
//! configured, a redirect there with the result in the query string. A successful sign-in
//! hands over a one-time `completion`, which the front end posts back with the bearer token of
//! the caller who started Connect (`POST /api/v1/users/{id}/microsoft/connection/complete`):
//! only then is the account connected.
//!
//! The page's one script is the same on every page ([`SCRIPT`]): it reads the result from a
//! JSON data block, so that the Content-Security-Policy allows exactly that script by its
//! hash ([`script_hash`]) rather than any inline script.

use std::{collections::HashMap, sync::LazyLock};

use base64::Engine;
use sha2::{Digest, Sha256};

use actix_web::{HttpResponse, get, http::header, web};

use crate::{
    domain::connections::{self, CallbackOutcome, CallbackParams},
    error::ApiResult,
    startup::AppState,
};

/// Finish Connect (Microsoft's redirect target). Answers an HTML page (or a redirect to the
/// configured front end); failures are shown there, never stored.
#[utoipa::path(
    tag = "microsoft",
    params(
        ("code" = Option<String>, Query, description = "Authorization code"),
        ("state" = String, Query, description = "The state issued by Start Connect"),
        ("error" = Option<String>, Query, description = "OAuth error code, e.g. `access_denied` (ASCII letters, digits and underscores)", pattern = "^[A-Za-z0-9_]{1,64}$"),
        ("error_description" = Option<String>, Query, description = "Microsoft's description of the error")
    ),
    responses(
        (status = 200, description = "Signed in: a page that hands the opener the one-time `completion` and closes", content_type = "text/html", body = String),
        (status = 303, description = "Redirect to the configured front-end return URL with the result"),
        (status = 400, description = "The sign-in failed: a page that notifies the opener", content_type = "text/html", body = String)
    )
)]
#[get("/microsoft/oauth/callback")]
pub async fn oauth_callback(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let mut query = query.into_inner();
    let params = CallbackParams {
        code: query.remove("code"),
        state: query.remove("state"),
        error: query.remove("error"),
        error_description: query.remove("error_description"),
    };
    let outcome = connections::complete(&state, params).await?;
    if let CallbackOutcome::Failed { user_id, code, .. } = &outcome {
        tracing::warn!(user.id = ?user_id, code = ?code, "Microsoft connect failed");
    }
    Ok(match &state.settings.frontend_return_url {
        Some(url) => redirect(url, &outcome),
        None => page(&outcome, &opener_origin(&state)),
    })
}

fn opener_origin(state: &AppState) -> String {
    if let Some(origin) = &state.settings.frontend_origin {
        return origin.clone();
    }
    // scheme://host[:port] of the public URL.
    let url = &state.settings.public_url;
    match url.find("://") {
        Some(at) => match url[at + 3..].find('/') {
            Some(slash) => url[..at + 3 + slash].to_owned(),
            None => url.clone(),
        },
        None => url.clone(),
    }
}

fn message(outcome: &CallbackOutcome) -> serde_json::Value {
    match outcome {
        CallbackOutcome::SignedIn {
            user_id,
            account_name,
            display_name,
            completion,
        } => serde_json::json!({
            "type": "m365-sync:signed-in",
            "user_id": user_id,
            "account_name": account_name,
            "display_name": display_name,
            "completion": completion,
        }),
        CallbackOutcome::Failed {
            user_id,
            code,
            message,
        } => serde_json::json!({
            "type": "m365-sync:error",
            "user_id": user_id,
            "error": code,
            "error_description": message,
        }),
    }
}

fn redirect(return_url: &str, outcome: &CallbackOutcome) -> HttpResponse {
    let mut params: Vec<(&str, String)> = Vec::new();
    match outcome {
        CallbackOutcome::SignedIn {
            user_id,
            account_name,
            completion,
            ..
        } => {
            params.push(("status", "signed_in".to_owned()));
            params.push(("user_id", user_id.to_string()));
            params.push(("account_name", account_name.clone()));
            params.push(("completion", completion.clone()));
        }
        CallbackOutcome::Failed { code, message, .. } => {
            params.push(("status", "error".to_owned()));
            params.push(("error", code.clone()));
            params.push(("error_description", message.clone()));
        }
    }
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    let separator = if return_url.contains('?') { '&' } else { '?' };
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("{return_url}{separator}{query}")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("referrer-policy", "no-referrer"))
        .finish()
}

/// JSON made safe inside a `<script>` element.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The page's script, the same on every page: the result travels in the JSON data block
/// `#m365-sync-result` (data, never run).
pub const SCRIPT: &str = "(function () {\n  \
var data = JSON.parse(document.getElementById(\"m365-sync-result\").textContent);\n  \
if (window.opener) { window.opener.postMessage(data.message, data.origin); window.close(); }\n\
})();";

/// The CSP source of [`SCRIPT`]: `'sha256-…'` of its exact text, computed once.
pub fn script_hash() -> &'static str {
    static HASH: LazyLock<String> = LazyLock::new(|| {
        let digest = Sha256::digest(SCRIPT.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    });
    &HASH
}

fn page(outcome: &CallbackOutcome, origin: &str) -> HttpResponse {
    let (title, detail, ok) = match outcome {
        CallbackOutcome::SignedIn { account_name, .. } => (
            "Microsoft sign-in complete",
            format!("Signed in as {account_name}. You can close this window."),
            true,
        ),
        CallbackOutcome::Failed { message, code, .. } => (
            "Microsoft sign-in failed",
            format!("{message} ({code})"),
            false,
        ),
    };
    let data = serde_json::json!({ "message": message(outcome), "origin": origin });
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1><p>{detail}</p>\n\
         <script type=\"application/json\" id=\"m365-sync-result\">{data}</script>\n\
         <script>{SCRIPT}</script></body></html>\n",
        title = html_escape(title),
        detail = html_escape(&detail),
        data = script_json(&data),
    );
    let mut response = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::BadRequest()
    };
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // The URL of this page carries the authorization code: never send it on.
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header((
            "content-security-policy",
            format!(
                "default-src 'none'; script-src {}; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'",
                script_hash()
            ),
        ))
        .body(body)
}
