//! `GET /api/v1/me`: the caller's own account.

use actix_web::{HttpResponse, get, http::StatusCode, web};

use crate::{
    auth::AuthUser,
    domain::users::{self, UserView},
    error::{ApiResult, Problem},
    routes::json_with_etag,
    startup::AppState,
};

/// The calling user. An API key is not a user: it gets 403 `not_for_api_keys` (its
/// description is at `GET /api/v1/api-keys/{id}`).
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`not_for_api_keys`: the caller is an API key", body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/me")]
pub async fn get_me(state: web::Data<AppState>, caller: AuthUser) -> ApiResult<HttpResponse> {
    caller.require_person("An API key is not a user; GET /api/v1/api-keys/{id} describes it.")?;
    let user = users::get(&state.db, caller.id).await?;
    Ok(json_with_etag(
        StatusCode::OK,
        user.version,
        &UserView::try_from(user)?,
    ))
}
