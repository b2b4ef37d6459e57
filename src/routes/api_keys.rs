//! `/api/v1/api-keys`: create, list, read and revoke API keys.
//!
//! Admins manage every key, and create `admin` keys (or, naming an organization, `org_admin`
//! keys acting within it); org admins manage their organization's keys and create `org_admin`
//! keys for it; plain users have none (403). Keys are created by a person signed in, never by
//! another key, so that revoking a leaked key leaves no key it made behind.

use actix_web::{HttpResponse, delete, get, http::header, post, web};
use chrono::Utc;
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    domain::{
        Role,
        access::not_found,
        api_keys::{self, ApiKeyView, CreateApiKey, CreatedApiKey, NewApiKey},
        organizations,
        pagination::{Page, PageParams},
    },
    error::{ApiError, ApiResult},
    routes::extract::JsonBody,
    startup::AppState,
};

/// The organization whose keys the caller manages: `None` for an admin (every key).
///
/// # Errors
/// 403 for a plain user.
fn managed_scope(caller: &AuthUser) -> ApiResult<Option<Uuid>> {
    match (caller.role, caller.organization_id) {
        (Role::Admin, _) => Ok(None),
        (Role::OrgAdmin, Some(org)) => Ok(Some(org)),
        _ => Err(ApiError::Forbidden(
            "Only admins and organization admins manage API keys.".into(),
        )),
    }
}

/// The key `id`, if the caller manages it.
///
/// # Errors
/// 403 for a plain user; 404 for a key that does not exist or is another organization's.
async fn managed_key(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<entity::api_keys::Model> {
    let scope = managed_scope(caller)?;
    api_keys::find(&state.db, id)
        .await?
        .filter(|key| scope.is_none() || key.organization_id == scope)
        .ok_or_else(|| not_found("API key"))
}

/// Create an API key. The response carries its `secret`, shown this once: it is stored only as
/// a hash. An admin's key is an `admin` key, or, with `organization_id`, an `org_admin` key
/// acting within that organization; an org admin's key is an `org_admin` key of their
/// organization. A key works as long as its creator holds that role, and goes with them.
/// Keys are created by a person (403 `not_for_api_keys` for an API key); plain users get 403.
#[utoipa::path(
    tag = "api_keys",
    security(("bearer_auth" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request safe")),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created; `secret` is shown only here", body = CreatedApiKey,
            headers(("Location" = String, description = "The key's URL"))),
        (status = 404, description = "`organization_id` names no organization the caller may see", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: JsonBody<CreateApiKey>,
) -> ApiResult<HttpResponse> {
    caller.require_person("API keys are created by a person signed in, not by another API key.")?;
    let new = NewApiKey::parse(body.0, Utc::now())?;
    let (role, organization_id) =
        api_keys::scope_for(caller.role, caller.organization_id, new.organization_id)?;
    if let Some(org) = organization_id {
        organizations::get(&state.db, org).await?;
    }
    let created = api_keys::create(&state.db, new, role, organization_id, caller.id).await?;
    tracing::info!(api_key.id = %created.id, caller.id = %caller.id, role = role.as_str(), "API key created");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/api-keys/{}", created.id)))
        .json(created))
}

/// List the API keys the caller manages (every key for an admin, their organization's for an
/// org admin), in id order. Secrets are never shown.
#[utoipa::path(
    tag = "api_keys",
    security(("bearer_auth" = [])),
    params(PageParams),
    responses((status = 200, description = "A page of API keys", body = Page<ApiKeyView>))
)]
#[get("")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let page = query.parse()?;
    let scope = managed_scope(&caller)?;
    let rows = api_keys::list(&state.db, scope, page).await?;
    let page = Page::from_rows(rows, page, |r| r.id, ApiKeyView::try_from);
    let items = page.items.into_iter().collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Read an API key (never its secret).
#[utoipa::path(
    tag = "api_keys",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "API key id")),
    responses((status = 200, description = "The API key", body = ApiKeyView))
)]
#[get("/{id}")]
pub async fn get_api_key(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let key = managed_key(&state, &caller, *id).await?;
    Ok(HttpResponse::Ok().json(ApiKeyView::try_from(key)?))
}

/// Revoke an API key: requests that send it are refused from now on, in every process.
#[utoipa::path(
    tag = "api_keys",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "API key id")),
    responses((status = 204, description = "Revoked"))
)]
#[delete("/{id}")]
pub async fn delete_api_key(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let key = managed_key(&state, &caller, *id).await?;
    api_keys::delete(&state.db, key.id).await?;
    tracing::info!(api_key.id = %key.id, caller.id = %caller.id, "API key revoked");
    Ok(HttpResponse::NoContent().finish())
}
