//! `GET`/`PATCH` Microsoft settings at `/api/v1/settings/microsoft` (global),
//! `/api/v1/organizations/{id}/settings/microsoft` and `/api/v1/users/{id}/settings/microsoft`.

use actix_web::{HttpRequest, HttpResponse, get, http::StatusCode, patch, web};
use uuid::Uuid;

use super::{organization_scope, user_scope};
use crate::{
    auth::AuthUser,
    domain::settings::{
        Scope,
        microsoft::{
            self, MicrosoftSettingsPatch, MicrosoftSettingsView, UserMicrosoftSettingsPatch,
        },
    },
    error::ApiResult,
    routes::{
        extract::{JsonBody, if_match},
        json_with_etag,
    },
    startup::AppState,
};

async fn show(state: &AppState, scope: Scope) -> ApiResult<HttpResponse> {
    let resolved = microsoft::load_cached(&state.db, &state.caches.settings, scope).await?;
    Ok(json_with_etag(
        StatusCode::OK,
        resolved.version(),
        &resolved.view(),
    ))
}

async fn change(
    state: &AppState,
    scope: Scope,
    req: &HttpRequest,
    body: MicrosoftSettingsPatch,
) -> ApiResult<HttpResponse> {
    let resolved = microsoft::patch(
        &state.db,
        &state.caches.settings,
        scope,
        body,
        if_match(req).as_deref(),
    )
    .await?;
    Ok(json_with_etag(
        StatusCode::OK,
        resolved.version(),
        &resolved.view(),
    ))
}

/// Global Microsoft settings (admins only).
#[utoipa::path(
    tag = "settings",
    security(("bearer_auth" = [])),
    responses((status = 200, description = "Effective settings at global scope", body = MicrosoftSettingsView))
)]
#[get("")]
pub async fn get_global_microsoft_settings(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    show(&state, Scope::Global).await
}

/// Change global Microsoft settings (JSON merge patch; `null` restores the default).
#[utoipa::path(
    tag = "settings",
    security(("bearer_auth" = [])),
    params(("If-Match" = Option<String>, Header, description = "ETag the change is based on")),
    request_body(content = MicrosoftSettingsPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "Effective settings after the change", body = MicrosoftSettingsView))
)]
#[patch("")]
pub async fn update_global_microsoft_settings(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    body: JsonBody<MicrosoftSettingsPatch>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    change(&state, Scope::Global, &req, body.0).await
}

/// An organization's Microsoft settings.
#[utoipa::path(
    tag = "settings",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "Organization id")),
    responses((status = 200, description = "Effective settings at organization scope", body = MicrosoftSettingsView))
)]
#[get("/settings/microsoft")]
pub async fn get_organization_microsoft_settings(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let scope = organization_scope(&state.db, &caller, *id).await?;
    show(&state, scope).await
}

/// Change an organization's Microsoft settings (JSON merge patch; `null` means "Use System").
#[utoipa::path(
    tag = "settings",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "Organization id"),
        ("If-Match" = Option<String>, Header, description = "ETag the change is based on")
    ),
    request_body(content = MicrosoftSettingsPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "Effective settings after the change", body = MicrosoftSettingsView))
)]
#[patch("/settings/microsoft")]
pub async fn update_organization_microsoft_settings(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    req: HttpRequest,
    body: JsonBody<MicrosoftSettingsPatch>,
) -> ApiResult<HttpResponse> {
    let scope = organization_scope(&state.db, &caller, *id).await?;
    change(&state, scope, &req, body.0).await
}

/// A user's Microsoft settings.
#[utoipa::path(
    tag = "settings",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "Effective settings at user scope", body = MicrosoftSettingsView))
)]
#[get("/settings/microsoft")]
pub async fn get_user_microsoft_settings(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let scope = user_scope(&state, &caller, *id).await?;
    show(&state, scope).await
}

/// Change a user's Microsoft settings (JSON merge patch; `null` means "Use Organization").
#[utoipa::path(
    tag = "settings",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("If-Match" = Option<String>, Header, description = "ETag the change is based on")
    ),
    request_body(content = UserMicrosoftSettingsPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "Effective settings after the change", body = MicrosoftSettingsView))
)]
#[patch("/settings/microsoft")]
pub async fn update_user_microsoft_settings(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    req: HttpRequest,
    body: JsonBody<UserMicrosoftSettingsPatch>,
) -> ApiResult<HttpResponse> {
    let scope = user_scope(&state, &caller, *id).await?;
    change(&state, scope, &req, body.0.into()).await
}
