//! Token issuing: opaque access tokens, rotating refresh tokens (only with `offline_access`)
//! and ID tokens (only with `openid`), in the token endpoint's response shape.

use crate::identity::{GRAPH_RESOURCE, has_scope, is_oidc_scope};
use crate::ids;
use crate::state::{AccessToken, RefreshToken, State};
use actix_web::HttpResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Issues the token response.
pub(crate) fn issue(
    state: &mut State,
    client_id: &str,
    user_id: &str,
    scopes: &[String],
    nonce: Option<&str>,
) -> HttpResponse {
    let now = Utc::now();
    let lifetime = state.config.access_token_lifetime_secs;
    let resource: Vec<String> = scopes
        .iter()
        .filter(|s| !is_oidc_scope(s))
        .cloned()
        .collect();
    let access = format!("EwB{}", ids::new_token(96));
    state.access_tokens.insert(
        access.clone(),
        AccessToken {
            user_id: user_id.to_owned(),
            client_id: client_id.to_owned(),
            scopes: resource.iter().map(|s| s.to_ascii_lowercase()).collect(),
            expires_at: now + Duration::seconds(lifetime),
        },
    );
    let scope_text: Vec<String> = resource
        .iter()
        .map(|s| format!("{GRAPH_RESOURCE}{s}"))
        .collect();
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope_text.join(" "),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
    });
    if has_scope(scopes, "offline_access") {
        let rt = format!("M.C5{}", ids::new_token(120));
        state.refresh_tokens.insert(
            rt.clone(),
            RefreshToken {
                user_id: user_id.to_owned(),
                client_id: client_id.to_owned(),
                scopes: scopes.to_vec(),
                last_used: now,
                revoked: false,
                expired: false,
            },
        );
        body["refresh_token"] = json!(rt);
    }
    if has_scope(scopes, "openid")
        && let Some(mbox) = state.mailboxes.get(user_id)
    {
        body["id_token"] = json!(id_token(&state.base_url, client_id, &mbox.user, nonce));
    }
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store, no-cache"))
        .insert_header(("Pragma", "no-cache"))
        .json(body)
}

/// An ID token in JWT form. Its signature is not verifiable: the emulator publishes no keys.
fn id_token(
    base_url: &str,
    client_id: &str,
    user: &crate::mailbox::UserRecord,
    nonce: Option<&str>,
) -> String {
    let now = Utc::now().timestamp();
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "graph-emulator"});
    let mut claims = json!({
        "aud": client_id,
        "iss": format!("{base_url}/{}/v2.0", user.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "name": user.display_name,
        "oid": user.id,
        "preferred_username": user.user_principal_name,
        "email": user.mail,
        "sub": URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{client_id}{}", user.id).as_bytes())),
        "tid": user.tenant_id,
        "ver": "2.0",
    });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        ids::new_token(64)
    )
}
