//! Conflicts parked by the `manual` strategy: `GET /api/v1/users/{id}/microsoft/conflicts` and
//! `POST .../conflicts/{conflict_id}/resolve`.

use actix_web::{HttpResponse, get, post, web};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    domain::pagination::{Page, PageParams},
    error::ApiResult,
    routes::{accessible_user, extract::JsonBody},
    startup::AppState,
    sync::conflicts::{self, ConflictView, ResolveConflict},
};

/// The user's unresolved conflicts, with both versions and their common base.
#[utoipa::path(
    tag = "sync",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id"), PageParams),
    responses((status = 200, description = "A page of conflicts", body = Page<ConflictView>))
)]
#[get("/microsoft/conflicts")]
pub async fn list_conflicts(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    let page = query.parse()?;
    let (items, more) = conflicts::list(&state.db, user.id, page).await?;
    let next_cursor = more
        .then(|| {
            items
                .last()
                .map(|c| crate::domain::pagination::cursor_of(c.id))
        })
        .flatten();
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

/// Resolves a conflict with the local version, Microsoft's, or merged fields; the next run
/// sends the result to Microsoft.
#[utoipa::path(
    tag = "sync",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("conflict_id" = Uuid, Path, description = "Conflict id")
    ),
    request_body = ResolveConflict,
    responses(
        (status = 200, description = "Resolved", body = ConflictView),
        (status = 409, description = "`conflict_resolved`: already resolved", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/microsoft/conflicts/{conflict_id}/resolve")]
pub async fn resolve_conflict(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    body: JsonBody<ResolveConflict>,
) -> ApiResult<HttpResponse> {
    let (id, conflict_id) = path.into_inner();
    let user = accessible_user(&state, &caller, id).await?;
    let resolved = conflicts::resolve(&state.db, user.id, conflict_id, body.0).await?;
    Ok(HttpResponse::Ok().json(resolved))
}
