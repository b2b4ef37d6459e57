//! `POST /api/v1/auth/token`: e-mail and password for an access token, under the brute-force
//! guards; `POST /api/v1/auth/logout`: revokes the caller's tokens.

use actix_web::{HttpRequest, HttpResponse, http::header, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::AuthUser,
    domain::{email, plain_text, users},
    error::{ApiError, ApiResult, Problem},
    routes::extract::UncheckedJsonBody,
    startup::AppState,
};

/// Credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The user's e-mail.
    #[schema(example = "admin@example.com")]
    pub email: String,
    /// The user's password.
    #[schema(example = "correct horse battery staple")]
    pub password: String,
}

/// An access token for the API.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 3600)]
    pub expires_in: u64,
}

/// Exchange an e-mail and password for an access token. Failed attempts are limited per
/// account and per client address (429 `too_many_attempts` with `Retry-After` past the limit).
#[utoipa::path(
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong e-mail or password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts for this account or from this address (see `Retry-After`)", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait")))
    )
)]
#[post("/auth/token")]
pub async fn create_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: UncheckedJsonBody<TokenRequest>,
) -> ApiResult<HttpResponse> {
    let UncheckedJsonBody(request) = body;
    // No account holds a control character in its e-mail or password: such a sign-in is a
    // wrong one (and its e-mail never reaches the database, which may refuse it).
    let plain = plain_text::is_plain(&request.email, false)
        && plain_text::is_plain(&request.password, false);
    let account = email::normalise(&request.email);
    let guards = &state.guards;
    let address = guards.address_of(&req);
    guards.check_sign_in(&account, address)?;
    let user = if plain {
        users::find_by_email(&state.db, &account).await?
    } else {
        None
    };
    if !users::verify_password(&guards.hashing, user.as_ref(), request.password).await || !plain {
        guards.sign_in_failed(&account, address);
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
            detail: "The e-mail or password is wrong.".to_owned(),
        });
    }
    guards.sign_in_succeeded(&account);
    let user = user.ok_or_else(|| anyhow::anyhow!("verified a password without a user"))?;
    let access_token = state.jwt.issue(user.id, user.token_generation)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: state.jwt.ttl_seconds(),
        }))
}

/// Sign out: revokes every access token of the caller (this one included), on every device.
/// An API key does not sign out (403 `not_for_api_keys`): it is revoked with
/// `DELETE /api/v1/api-keys/{id}`.
#[utoipa::path(
    tag = "auth",
    security(("bearer_auth" = [])),
    responses(
        (status = 204, description = "Signed out; the caller's tokens are refused from now on"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`not_for_api_keys`: the caller is an API key", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/auth/logout")]
pub async fn logout(state: web::Data<AppState>, caller: AuthUser) -> ApiResult<HttpResponse> {
    caller.require_person(
        "An API key does not sign out; revoke it with DELETE /api/v1/api-keys/{id}.",
    )?;
    let result = users::revoke_tokens(&state.db, caller.id).await;
    state.caches.users.invalidate(&caller.id);
    result?;
    Ok(HttpResponse::NoContent().finish())
}
