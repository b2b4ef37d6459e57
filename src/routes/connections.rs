//! A user's Microsoft connection: `POST` (start Connect), `GET` (status), `DELETE`
//! (disconnect) at `/api/v1/users/{id}/microsoft/connection`, and `POST .../check` (Check
//! Connection). Users manage their own connection, org admins their organization's users',
//! admins everyone's.

use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    domain::connections::{self, CheckResult, ConnectionView, StartedConnect},
    error::{ApiError, ApiResult},
    routes::{accessible_user, extract::OptionalJsonBody},
    startup::AppState,
};

/// Body of a Connect start (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartConnect {
    /// Pre-fills the Microsoft sign-in with this account (e-mail or user principal name).
    #[schema(example = "adele@contoso.com")]
    pub login_hint: Option<String>,
}

/// Body of a Connect completion.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteConnect {
    /// The one-time `completion` the sign-in popup posted to its opener (or the front-end
    /// return URL carried).
    #[schema(min_length = 1, max_length = 128)]
    pub completion: String,
}

/// Query of a disconnect.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DisconnectParams {
    /// Also forget sync links and delta state (the next connect starts from nothing).
    pub purge: Option<bool>,
}

/// Start Connect: returns the Microsoft sign-in URL to open in a popup.
#[utoipa::path(
    tag = "microsoft",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body(content = Option<StartConnect>, description = "Optional login hint"),
    responses(
        (status = 200, description = "Open `authorization_url` to sign in", body = StartedConnect),
        (status = 400, description = "`microsoft_app_not_configured`: client ID, secret or tenant missing", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/microsoft/connection")]
pub async fn start_connection(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    body: OptionalJsonBody<StartConnect>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    let hint = body
        .0
        .unwrap_or_default()
        .login_hint
        .filter(|h| !h.trim().is_empty());
    if hint.as_ref().is_some_and(|h| h.len() > 320) {
        return Err(ApiError::invalid(
            "/login_hint",
            "must be at most 320 characters",
        ));
    }
    let started = connections::start(
        &state,
        user.id,
        user.organization_id,
        caller.id,
        hint.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(started))
}

/// Complete Connect: the sign-in that came back (its one-time `completion`) becomes the user's
/// connection. Only the caller who started Connect may complete it, with their own
/// credentials: a sign-in link that reached someone else connects nothing.
#[utoipa::path(
    tag = "microsoft",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = CompleteConnect,
    responses(
        (status = 200, description = "Connected", body = ConnectionView),
        (status = 400, description = "`invalid_completion`: unknown, used, expired, for another user, or not started by the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`microsoft_account_in_use`: another user has connected this Microsoft account; `application_changed`: the Azure application changed during sign-in", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/microsoft/connection/complete")]
pub async fn complete_connection(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    body: crate::routes::extract::JsonBody<CompleteConnect>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    let completion = body.0.completion;
    if completion.is_empty() || completion.len() > 128 {
        return Err(ApiError::invalid(
            "/completion",
            "must be 1 to 128 characters",
        ));
    }
    let view = connections::finish(
        &state,
        user.id,
        user.organization_id,
        caller.id,
        &completion,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(view))
}

/// The connection's status and account name (never a token).
#[utoipa::path(
    tag = "microsoft",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The connection", body = ConnectionView))
)]
#[get("/microsoft/connection")]
pub async fn get_connection(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    Ok(HttpResponse::Ok().json(connections::view(&state, user.id, user.organization_id).await?))
}

/// Disconnect: forgets the tokens (idempotent); `?purge=true` also drops sync links and
/// delta state.
#[utoipa::path(
    tag = "microsoft",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id"), DisconnectParams),
    responses((status = 204, description = "Disconnected"))
)]
#[delete("/microsoft/connection")]
pub async fn delete_connection(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<DisconnectParams>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    connections::disconnect(&state, user.id, query.purge.unwrap_or(false)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Check Connection: refreshes the token if needed and calls Microsoft Graph `/me`.
#[utoipa::path(
    tag = "microsoft",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The result of the check (`ok` false with a classified error when it failed)", body = CheckResult),
        (status = 409, description = "`not_connected`: no account is connected", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/microsoft/connection/check")]
pub async fn check_connection(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    Ok(HttpResponse::Ok().json(connections::check(&state, user.id, user.organization_id).await?))
}
