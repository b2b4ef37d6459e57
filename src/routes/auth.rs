//! `POST /api/v1/auth/token`: e-mail and password for an access token.

use actix_web::{HttpResponse, http::header, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    domain::{plain_text, users},
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

/// Exchange an e-mail and password for an access token.
#[utoipa::path(
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong e-mail or password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/auth/token")]
pub async fn create_token(
    state: web::Data<AppState>,
    body: UncheckedJsonBody<TokenRequest>,
) -> ApiResult<HttpResponse> {
    let UncheckedJsonBody(request) = body;
    // No account holds a control character in its e-mail or password: such a sign-in is a
    // wrong one (and its e-mail never reaches the database, which may refuse it).
    let plain = plain_text::is_plain(&request.email, false)
        && plain_text::is_plain(&request.password, false);
    let user = if plain {
        users::find_by_email(&state.db, &request.email).await?
    } else {
        None
    };
    if !users::verify_password(user.as_ref(), request.password).await || !plain {
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
            detail: "The e-mail or password is wrong.".to_owned(),
        });
    }
    let user = user.ok_or_else(|| anyhow::anyhow!("verified a password without a user"))?;
    let access_token = state.jwt.issue(user.id)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: state.jwt.ttl_seconds(),
        }))
}
