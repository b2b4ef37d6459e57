//! `/api/v1/changes`: the change feed, the same events as webhooks deliver, in order, for
//! integrators that prefer pulling.

use actix_web::{HttpResponse, get, web};

use crate::{
    auth::AuthUser,
    domain::{
        Role,
        changes::{self, FeedPage, FeedParams, Scope},
    },
    error::ApiResult,
    startup::AppState,
};

/// Read the change feed `after` a cursor, oldest first: every event the caller may see (all
/// for admins, their organization's users' for org admins, their own for users), kept for
/// `history_days`. `next_cursor` is where to continue, also when the page is empty; a cursor
/// older than what the feed keeps answers 410 `cursor_expired`.
#[utoipa::path(
    tag = "changes",
    security(("bearer_auth" = [])),
    params(FeedParams),
    responses(
        (status = 200, description = "A page of events", body = FeedPage),
        (status = 410, description = "`cursor_expired`: the events behind the cursor are no longer kept", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/changes")]
pub async fn list_changes(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: web::Query<FeedParams>,
) -> ApiResult<HttpResponse> {
    let scope = match (caller.role, caller.organization_id) {
        (Role::Admin, _) => Scope::All,
        (Role::OrgAdmin, Some(org)) => Scope::Organization(org),
        _ => Scope::User(caller.id),
    };
    Ok(HttpResponse::Ok().json(changes::feed(&state.db, scope, &query).await?))
}
