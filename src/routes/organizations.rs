//! `/api/v1/organizations`: create, list, read, update and delete organizations.
//!
//! Error responses (400, 401, 403, 404, 412, 413, 415, 422...) are added to every operation's
//! documentation by [`crate::openapi`].

use actix_web::{HttpRequest, HttpResponse, delete, get, http::StatusCode, patch, post, web};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    domain::{
        Role,
        organizations::{self, CreateOrganization, OrganizationView, UpdateOrganization},
        pagination::{Page, PageParams},
        settings::Scope,
    },
    error::{ApiError, ApiResult},
    routes::{
        extract::{JsonBody, if_match},
        json_with_etag,
    },
    startup::AppState,
};

/// Create an organization (admins only).
#[utoipa::path(
    tag = "organizations",
    security(("bearer_auth" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request safe")),
    request_body = CreateOrganization,
    responses(
        (status = 201, description = "Created", body = OrganizationView),
        (status = 409, description = "The name is taken", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("")]
pub async fn create_organization(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: JsonBody<CreateOrganization>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let org = organizations::create(&state.db, body.0).await?;
    Ok(json_with_etag(
        StatusCode::CREATED,
        org.version,
        &OrganizationView::from(org),
    ))
}

/// List the organizations the caller may see (all for admins, their own for org admins).
#[utoipa::path(
    tag = "organizations",
    security(("bearer_auth" = [])),
    params(PageParams),
    responses((status = 200, description = "A page of organizations", body = Page<OrganizationView>))
)]
#[get("")]
pub async fn list_organizations(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let page = query.parse()?;
    let only = match caller.role {
        Role::Admin => None,
        Role::OrgAdmin => caller.organization_id,
        Role::User => {
            return Err(ApiError::Forbidden(
                "Only admins may list organizations.".into(),
            ));
        }
    };
    let rows = organizations::list(&state.db, page, only).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(
        rows,
        page,
        |r| r.id,
        OrganizationView::from,
    )))
}

/// Read an organization.
#[utoipa::path(
    tag = "organizations",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "Organization id")),
    responses((status = 200, description = "The organization", body = OrganizationView))
)]
#[get("")]
pub async fn get_organization(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    caller.may_manage_org(*id)?;
    let org = organizations::get(&state.db, *id).await?;
    Ok(json_with_etag(
        StatusCode::OK,
        org.version,
        &OrganizationView::from(org),
    ))
}

/// Rename an organization (JSON merge patch; honours `If-Match`).
#[utoipa::path(
    tag = "organizations",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "Organization id"),
        ("If-Match" = Option<String>, Header, description = "ETag the change is based on")
    ),
    request_body(content = UpdateOrganization, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "Updated", body = OrganizationView),
        (status = 409, description = "The name is taken", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[patch("")]
pub async fn update_organization(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    req: HttpRequest,
    body: JsonBody<UpdateOrganization>,
) -> ApiResult<HttpResponse> {
    caller.may_manage_org(*id)?;
    let org = organizations::update(&state.db, *id, body.0, if_match(&req).as_deref()).await?;
    Ok(json_with_etag(
        StatusCode::OK,
        org.version,
        &OrganizationView::from(org),
    ))
}

/// Delete an organization without users (admins only; honours `If-Match`).
#[utoipa::path(
    tag = "organizations",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "Organization id"),
        ("If-Match" = Option<String>, Header, description = "ETag the deletion is based on")
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The organization still has users", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[delete("")]
pub async fn delete_organization(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    caller.may_manage_org(*id)?;
    caller.require_admin()?;
    let result = organizations::delete(&state.db, *id, if_match(&req).as_deref()).await;
    state
        .caches
        .settings
        .invalidate(&Scope::Organization(*id).key());
    result?;
    Ok(HttpResponse::NoContent().finish())
}
