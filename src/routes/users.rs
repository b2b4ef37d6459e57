//! Users: `/api/v1/organizations/{id}/users` (create, list) and `/api/v1/users/{id}` (read,
//! update, delete).

use actix_web::{HttpRequest, HttpResponse, delete, get, http::StatusCode, patch, post, web};
use uuid::Uuid;

use crate::{
    auth::{AuthUser, throttle::too_many_attempts},
    domain::{
        Role,
        access::not_found,
        email::Email,
        organizations,
        pagination::{Page, PageParams},
        settings::Scope,
        users::{self, CreateUser, NewUser, UpdateUser, UserChanges, UserView},
    },
    error::{ApiError, ApiResult},
    routes::{
        extract::{JsonBody, check_if_match},
        json_with_etag,
    },
    startup::AppState,
};

/// Refuses an address in use, or one that looks like one in use (409 `email_taken`, the same
/// answer wherever that user is). Sign-in is by e-mail alone, so an address names one account
/// in the whole service and a taken one cannot be given again: an org admin does learn that an
/// address is in use somewhere, never where. To keep that from becoming a directory of other
/// organizations' users, a caller other than an admin who meets `email_probe_limit` conflicts
/// with users they may not see within `email_probe_window_seconds` may not create users or
/// change e-mails for the rest of the window (429 `too_many_attempts`, whatever the address),
/// and each such conflict is logged.
async fn check_email_free(
    state: &AppState,
    caller: &AuthUser,
    email: &Email,
    except: Option<Uuid>,
) -> ApiResult<()> {
    let probes = &state.guards.email_probes;
    let counted = !caller.is_admin();
    if counted && let Some(wait) = probes.retry_after(&caller.id) {
        return Err(too_many_attempts(
            wait,
            "Too many e-mail addresses in use elsewhere were tried; try again later.",
        ));
    }
    let Some(existing) = users::find_email_conflict(&state.db, email, except).await? else {
        return Ok(());
    };
    if counted
        && caller
            .may_access_user(existing.id, existing.organization_id)
            .is_err()
    {
        probes.record(&caller.id);
        tracing::warn!(
            caller.id = %caller.id,
            "A caller chose an e-mail address in use outside what they may see"
        );
    }
    Err(users::email_taken())
}

/// Create a user in an organization (admins, and that organization's admins).
///
/// An address in use anywhere, or one that looks like it (confusable characters), answers 409
/// `email_taken`, the same wherever that user is; org admins who meet too many addresses in
/// use outside their organization are paused (429).
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "Organization id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request safe")
    ),
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 409, description = "The e-mail, or one that looks like it, is in use", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many addresses in use elsewhere were tried (see `Retry-After`)", body = crate::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait")))
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
    check_email_free(&state, &caller, &new.email, None).await?;
    let user = users::create_bounded(&state.db, new, Some(&state.guards.hashing)).await?;
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
/// password (giving `current_password`) and display name; changing e-mail or role needs an
/// admin of their organization. A new password revokes every token of the user.
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
        (status = 403, description = "Not allowed, or `current_password` is wrong (`wrong_current_password`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The e-mail, or one that looks like it, is in use", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed current passwords, or too many addresses in use elsewhere tried (see `Retry-After`)", body = crate::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait")))
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
    if caller.id == user.id && changes.changes_password() {
        check_current_password(&state, &req, &user, changes.current_password()).await?;
    }
    if let Some(email) = changes.email() {
        check_email_free(&state, &caller, email, Some(user.id)).await?;
    }
    let id = user.id;
    let result = users::update(&state.db, user, changes, &state.guards.hashing).await;
    state.caches.users.invalidate(&id);
    let user = result?;
    Ok(json_with_etag(
        StatusCode::OK,
        user.version,
        &UserView::try_from(user)?,
    ))
}

/// Changing one's own password needs the current one, checked under the sign-in guards (a
/// wrong one counts as a failed sign-in of the account and the address).
async fn check_current_password(
    state: &AppState,
    req: &HttpRequest,
    user: &entity::users::Model,
    current: Option<&str>,
) -> ApiResult<()> {
    let Some(current) = current else {
        return Err(ApiError::invalid(
            "/current_password",
            "is required to change your own password",
        ));
    };
    let guards = &state.guards;
    let address = guards.address_of(req);
    guards.check_sign_in(&user.email, address)?;
    if users::verify_password(&guards.hashing, Some(user), current.to_owned()).await {
        Ok(())
    } else {
        guards.sign_in_failed(&user.email, address);
        Err(ApiError::Refused {
            code: "wrong_current_password",
            detail: "`current_password` is not the account's password.".to_owned(),
        })
    }
}

/// Sign a user out everywhere: revokes every access token of the user (authorized like
/// changing that user's account; callers sign themselves out with `POST /api/v1/auth/logout`).
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 204, description = "Every token of the user is refused from now on"),
        (status = 403, description = "The caller may not manage this user", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/sessions/revoke")]
pub async fn revoke_sessions(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = users::get(&state.db, *id).await?;
    caller.may_manage_user(user.id, user.organization_id, users::stored_role(&user)?)?;
    let result = users::revoke_tokens(&state.db, user.id).await;
    state.caches.users.invalidate(&user.id);
    result?;
    Ok(HttpResponse::NoContent().finish())
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
