//! Synchronization across all users, for admins.

use actix_web::{HttpResponse, get, web};

use crate::{
    auth::AuthUser,
    error::ApiResult,
    jobs::status::{self, SyncOverview},
    startup::AppState,
};

/// Counts by last outcome, queue depth, oldest due job, resources in backoff, connections to
/// renew, and the resources failing longest. Admins only.
#[utoipa::path(
    tag = "sync",
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The overview", body = SyncOverview),
        (status = 403, description = "`forbidden`: admins only", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/sync/overview")]
pub async fn get_sync_overview(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    Ok(HttpResponse::Ok().json(status::overview(&state.db).await?))
}
