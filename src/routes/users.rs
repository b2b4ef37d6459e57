//! Users: `/api/v1/organizations/{id}/users` (create, list) and `/api/v1/users/{id}` (read,
//! update, delete).

use actix_web::{HttpRequest, HttpResponse, delete, get, http::StatusCode, patch, post, web};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    domain::{
        Role,
        access::not_found,
        etag::check_if_match,
        organizations,
        pagination::{Page, PageParams},
        settings::Scope,
        users::{self, CreateUser, NewUser, UpdateUser, UserChanges, UserView},
    },
    error::{ApiError, ApiResult},
    routes::{extract::JsonBody, json_with_etag},
    startup::AppState,
};

/// Create a user in an organization (admins, and that organization's admins).
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "Organization id")),
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 409, description = "The e-mail is taken", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    body: JsonBody<CreateUser>,
) -> ApiResult<HttpResponse> {
    caller.may_manage_org(*id)?;
    organizations::get(&state.db, *id).await?;
    let new = NewUser::parse(body.0, Some(*id))?;
    caller.may_grant(new.role)?;
    let user = users::create(&state.db, new).await?;
    Ok(json_with_etag(
        StatusCode::CREATED,
        user.version,
        &UserView::try_from(user)?,
    ))
}

/// List the users of an organization.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "Organization id"), PageParams),
    responses((status = 200, description = "A page of users", body = Page<UserView>))
)]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    caller.may_manage_org(*id)?;
    let page = query.parse()?;
    organizations::get(&state.db, *id).await?;
    let rows = users::list_in_org(&state.db, *id, page).await?;
    let page = Page::from_rows(rows, page, |r| r.id, UserView::try_from);
    let items = page.items.into_iter().collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Read a user.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The user", body = UserView))
)]
#[get("")]
pub async fn get_user(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = users::find_by_id(&state.db, *id)
        .await?
        .ok_or_else(|| not_found("user"))?;
    caller.may_access_user(user.id, user.organization_id)?;
    Ok(json_with_etag(
        StatusCode::OK,
        user.version,
        &UserView::try_from(user)?,
    ))
}

/// Update a user (JSON merge patch; honours `If-Match`). Users may change their own
/// password and display name; changing e-mail or role needs an admin of their organization.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("If-Match" = Option<String>, Header, description = "ETag the change is based on")
    ),
    request_body(content = UpdateUser, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "Updated", body = UserView),
        (status = 409, description = "The e-mail is taken", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[patch("")]
pub async fn update_user(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    req: HttpRequest,
    body: JsonBody<UpdateUser>,
) -> ApiResult<HttpResponse> {
    let user = users::get(&state.db, *id).await?;
    let role = users::stored_role(&user)?;
    caller.may_access_user(user.id, user.organization_id)?;
    // RFC 9110 13.2.1: preconditions are evaluated after the request's own checks.
    let changes = UserChanges::parse(body.0, &user)?;
    check_if_match(&req, user.version)?;
    let self_service = caller.id == user.id && changes.is_self_service();
    if !self_service {
        caller.may_manage_user(user.id, user.organization_id, role)?;
    }
    if let Some(new_role) = changes.role() {
        caller.may_grant(new_role)?;
        if caller.id == user.id && new_role != Role::Admin && caller.is_admin() {
            return Err(ApiError::conflict(
                "cannot_demote_self",
                "An admin may not demote themselves.",
            ));
        }
    }
    let id = user.id;
    let result = users::update(&state.db, user, changes).await;
    state.caches.users.invalidate(&id);
    let user = result?;
    Ok(json_with_etag(
        StatusCode::OK,
        user.version,
        &UserView::try_from(user)?,
    ))
}

/// Delete a user and their settings (honours `If-Match`).
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("If-Match" = Option<String>, Header, description = "ETag the deletion is based on")
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Callers may not delete themselves", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[delete("")]
pub async fn delete_user(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = users::get(&state.db, *id).await?;
    caller.may_manage_user(user.id, user.organization_id, users::stored_role(&user)?)?;
    if caller.id == user.id {
        return Err(ApiError::conflict(
            "cannot_delete_self",
            "Callers may not delete their own account.",
        ));
    }
    check_if_match(&req, user.version)?;
    let result = users::delete(&state.db, user.id).await;
    state.caches.users.invalidate(&user.id);
    state.caches.settings.invalidate(
        &Scope::User {
            user_id: user.id,
            organization_id: None,
        }
        .key(),
    );
    result?;
    Ok(HttpResponse::NoContent().finish())
}
