//! `AuthUser`: the extractor that makes a handler require a valid bearer token.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use uuid::Uuid;

use crate::{
    domain::{Role, users},
    error::ApiError,
    startup::AppState,
};

/// The authenticated caller, loaded from the database on every request (through the short
/// user cache) so that a deleted or demoted user loses access at once, whatever their token
/// says, and a token of an older token generation (revoked by a password change, a sign-out
/// or an admin) is refused.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// The caller's id.
    pub id: Uuid,
    /// The caller's role.
    pub role: Role,
    /// The caller's organization, if any.
    pub organization_id: Option<Uuid>,
    /// The caller's e-mail.
    pub email: String,
}

fn unauthorized(code: &'static str, detail: &str) -> ApiError {
    ApiError::Unauthorized {
        code,
        detail: detail.to_owned(),
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| value.to_str().map(str::to_owned));
        Box::pin(async move {
            let state = state.ok_or_else(|| anyhow::anyhow!("application state is missing"))?;
            let value = match header {
                None => {
                    return Err(unauthorized(
                        "missing_token",
                        "This endpoint needs an `Authorization: Bearer <token>` header.",
                    ));
                }
                Some(Err(_)) => {
                    return Err(unauthorized(
                        "invalid_token",
                        "Malformed Authorization header.",
                    ));
                }
                Some(Ok(value)) => value,
            };
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    unauthorized(
                        "invalid_token",
                        "The Authorization header must use the Bearer scheme.",
                    )
                })?;
            let claims = state.jwt.verify(token).map_err(|_| {
                unauthorized(
                    "invalid_token",
                    "The access token is invalid or has expired.",
                )
            })?;
            let user = users::find_by_id_cached(&state.db, &state.caches.users, claims.sub)
                .await?
                .ok_or_else(|| {
                    unauthorized("invalid_token", "The token's user no longer exists.")
                })?;
            if claims.generation != user.token_generation {
                return Err(unauthorized(
                    "invalid_token",
                    "The access token has been revoked; sign in again.",
                ));
            }
            Ok(AuthUser {
                email: user.email,
                id: user.id,
                role: Role::parse(&user.role)
                    .map_err(|_| anyhow::anyhow!("stored role is invalid"))?,
                organization_id: user.organization_id,
            })
        })
    }
}
