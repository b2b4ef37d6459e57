//! `GET`/`PATCH` Azure application settings at `/api/v1/settings/microsoft/application`
//! (global) and `/api/v1/organizations/{id}/settings/microsoft/application`.

use actix_web::{HttpRequest, HttpResponse, get, http::StatusCode, patch, web};
use uuid::Uuid;

use super::organization_scope;
use crate::{
    auth::AuthUser,
    domain::{
        connections,
        settings::{
            Scope,
            application::{self, ApplicationSettingsPatch, ApplicationSettingsView},
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
    let resolved = application::load(&state.db, scope).await?;
    Ok(json_with_etag(
        StatusCode::OK,
        resolved.version(),
        &resolved.view(&state.settings.public_url),
    ))
}

async fn change(
    state: &AppState,
    scope: Scope,
    req: &HttpRequest,
    body: ApplicationSettingsPatch,
) -> ApiResult<HttpResponse> {
    let resolved = application::patch(
        &state.db,
        &state.cipher,
        scope,
        body,
        if_match(req).as_deref(),
    )
    .await?;
    // A new client ID or tenant invalidates the tokens issued to the old application.
    connections::after_application_change(state, scope).await?;
    Ok(json_with_etag(
        StatusCode::OK,
        resolved.version(),
        &resolved.view(&state.settings.public_url),
    ))
}

/// Global Azure application settings (admins only). The client secret is never returned.
#[utoipa::path(
    tag = "settings",
    security(("bearer_auth" = [])),
    responses((status = 200, description = "Effective application settings at global scope", body = ApplicationSettingsView))
)]
#[get("/application")]
pub async fn get_global_application_settings(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    show(&state, Scope::Global).await
}

/// Change global Azure application settings (JSON merge patch; the secret is write-only).
#[utoipa::path(
    tag = "settings",
    security(("bearer_auth" = [])),
    params(("If-Match" = Option<String>, Header, description = "ETag the change is based on")),
    request_body(content = ApplicationSettingsPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "Effective application settings after the change", body = ApplicationSettingsView))
)]
#[patch("/application")]
pub async fn update_global_application_settings(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    body: JsonBody<ApplicationSettingsPatch>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    change(&state, Scope::Global, &req, body.0).await
}

/// An organization's Azure application settings (falling back to global ones).
#[utoipa::path(
    tag = "settings",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "Organization id")),
    responses((status = 200, description = "Effective application settings at organization scope", body = ApplicationSettingsView))
)]
#[get("/settings/microsoft/application")]
pub async fn get_organization_application_settings(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let scope = organization_scope(&state.db, &caller, *id).await?;
    show(&state, scope).await
}

/// Change an organization's Azure application settings (JSON merge patch; `null` means "Use
/// System").
#[utoipa::path(
    tag = "settings",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "Organization id"),
        ("If-Match" = Option<String>, Header, description = "ETag the change is based on")
    ),
    request_body(content = ApplicationSettingsPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "Effective application settings after the change", body = ApplicationSettingsView))
)]
#[patch("/settings/microsoft/application")]
pub async fn update_organization_application_settings(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    req: HttpRequest,
    body: JsonBody<ApplicationSettingsPatch>,
) -> ApiResult<HttpResponse> {
    let scope = organization_scope(&state.db, &caller, *id).await?;
    change(&state, scope, &req, body.0).await
}
