//! `AuthUser`: the extractor that makes a handler require a valid bearer token: an access
//! token (a JWT from `POST /api/v1/auth/token`) or an API key (`m365s_…`).

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, http::header, web};
use chrono::Utc;
use uuid::Uuid;

use crate::{
    domain::{Role, api_keys, users},
    error::ApiError,
    startup::AppState,
};

/// The authenticated caller, loaded from the database on every request (through the short
/// user cache) so that a deleted or demoted user loses access at once, whatever their token
/// says, and a token of an older token generation (revoked by a password change, a sign-out
/// or an admin) is refused.
///
/// A caller with an API key is the key itself: `id` is the key's id (never a user's, so the
/// rules that let users reach their own account and data never apply to it), `role` and
/// `organization_id` are the key's, and [`Credential::ApiKey`] names its creator.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// The caller's id: the user's, or the API key's.
    pub id: Uuid,
    /// The caller's role.
    pub role: Role,
    /// The caller's organization, if any.
    pub organization_id: Option<Uuid>,
    /// The caller's e-mail (for an API key, its creator's).
    pub email: String,
    /// How the caller authenticated.
    pub credential: Credential,
}

/// How a caller authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// An access token of a person.
    Token,
    /// An API key.
    ApiKey {
        /// The user who created the key.
        created_by: Uuid,
    },
}

impl AuthUser {
    /// Whether the caller is an API key rather than a person.
    pub fn is_api_key(&self) -> bool {
        matches!(self.credential, Credential::ApiKey { .. })
    }

    /// For what only a person signed in may do (signing out, reading one's own account,
    /// creating API keys).
    ///
    /// # Errors
    /// 403 `not_for_api_keys` for an API key, with `detail` saying what to do instead.
    pub fn require_person(&self, detail: &str) -> Result<(), ApiError> {
        if self.is_api_key() {
            return Err(ApiError::Refused {
                code: "not_for_api_keys",
                detail: detail.to_owned(),
            });
        }
        Ok(())
    }
}

fn unauthorized(code: &'static str, detail: &str) -> ApiError {
    ApiError::Unauthorized {
        code,
        detail: detail.to_owned(),
    }
}

/// The caller of an access token (a JWT).
async fn from_token(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let claims = state.jwt.verify(token).map_err(|_| {
        unauthorized(
            "invalid_token",
            "The access token is invalid or has expired.",
        )
    })?;
    let user = users::find_by_id_cached(&state.db, &state.caches.users, claims.sub)
        .await?
        .ok_or_else(|| unauthorized("invalid_token", "The token's user no longer exists."))?;
    if claims.generation != user.token_generation {
        return Err(unauthorized(
            "invalid_token",
            "The access token has been revoked; sign in again.",
        ));
    }
    Ok(AuthUser {
        email: user.email,
        id: user.id,
        role: Role::parse(&user.role).map_err(|_| anyhow::anyhow!("stored role is invalid"))?,
        organization_id: user.organization_id,
        credential: Credential::Token,
    })
}

/// The caller of an API key. The key is read from the database on every request (by the
/// hash of the secret), so that a revoked key is refused at once in every process; its
/// creator through the user cache.
async fn from_api_key(state: &AppState, secret: &str) -> Result<AuthUser, ApiError> {
    let unknown = || {
        unauthorized(
            "invalid_token",
            "This API key is not valid: it does not exist or has been revoked.",
        )
    };
    if !api_keys::looks_like_secret(secret) {
        return Err(unknown());
    }
    let key = api_keys::find_by_secret(&state.db, secret)
        .await?
        .ok_or_else(unknown)?;
    let now = Utc::now();
    if let Some(expires_at) = key.expires_at
        && expires_at <= now
    {
        return Err(unauthorized(
            "invalid_token",
            &format!(
                "This API key expired at {}.",
                expires_at
                    .with_timezone(&Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    let role = api_keys::stored_role(&key)?;
    let creator = users::find_by_id_cached(&state.db, &state.caches.users, key.created_by)
        .await?
        .filter(|creator| api_keys::creator_holds(role, key.organization_id, creator))
        .ok_or_else(|| {
            unauthorized(
                "invalid_token",
                "This API key's creator no longer holds the role it acts with; it works again \
                 once they do.",
            )
        })?;
    if let Err(e) = api_keys::touch(&state.db, &key, now).await {
        // Bookkeeping only: the request goes on.
        tracing::warn!(api_key.id = %key.id, error = %e, "Failed to record an API key's use");
    }
    Ok(AuthUser {
        id: key.id,
        role,
        organization_id: key.organization_id,
        email: creator.email,
        credential: Credential::ApiKey {
            created_by: creator.id,
        },
    })
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // A middleware that already authenticated the request (idempotency keys are per
        // caller) left the caller here: one look-up per request.
        if let Some(caller) = req.extensions().get::<AuthUser>().cloned() {
            return Box::pin(async move { Ok(caller) });
        }
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
            if token.starts_with(api_keys::SECRET_PREFIX) {
                from_api_key(&state, token).await
            } else {
                from_token(&state, token).await
            }
        })
    }
}
