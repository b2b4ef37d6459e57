//! Synchronization of a user's calendar and tasks: run now, run history, and confirmation of
//! deletions held back by the mass-delete guard.

use actix_web::{HttpResponse, get, post, web};
use chrono::Utc;
use entity::sync_states;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    domain::pagination::{Page, PageParams},
    error::{ApiError, ApiResult},
    routes::accessible_user,
    startup::AppState,
    sync::{
        engine,
        links::Resource,
        runs::{self, RunView},
    },
};

/// The runs a "sync now" performed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncNowResult {
    /// One run per enabled resource.
    pub runs: Vec<RunView>,
}

/// Sync now: synchronizes every enabled resource (calendar, tasks) of the user and answers
/// with the runs.
#[utoipa::path(
    tag = "sync",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The runs performed", body = SyncNowResult),
        (status = 409, description = "`sync_disabled`: neither calendar nor task sync is enabled for the user", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/microsoft/sync")]
pub async fn sync_now(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    let mut result = SyncNowResult { runs: Vec::new() };
    for resource in [Resource::Calendar, Resource::Tasks] {
        let (enabled, _, _) = engine::effective(&state, user.id, resource).await?;
        if enabled {
            result
                .runs
                .push(engine::run(&state, user.id, resource).await?);
        }
    }
    if result.runs.is_empty() {
        return Err(ApiError::conflict(
            "sync_disabled",
            "Neither calendar nor task synchronization is enabled for this user.",
        ));
    }
    Ok(HttpResponse::Ok().json(result))
}

/// The user's synchronization runs, newest first.
#[utoipa::path(
    tag = "sync",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id"), PageParams),
    responses((status = 200, description = "A page of runs", body = Page<RunView>))
)]
#[get("/microsoft/sync/runs")]
pub async fn list_sync_runs(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    let page = query.parse()?;
    let rows = runs::list(&state.db, user.id, page).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page, |(id, _)| *id, |(_, view)| view)))
}

/// Lets the next run delete what the mass-delete guard held back.
#[utoipa::path(
    tag = "sync",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 204, description = "The next run may delete"))
)]
#[post("/microsoft/sync/confirm-deletions")]
pub async fn confirm_deletions(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    for resource in [Resource::Calendar, Resource::Tasks] {
        let key = format!("{}:{}", user.id, resource.as_str());
        let now = Utc::now().fixed_offset();
        match sync_states::Entity::find_by_id(key.clone())
            .one(&state.db)
            .await?
        {
            Some(existing) => {
                let mut model: sync_states::ActiveModel = existing.into();
                model.deletions_confirmed = Set(true);
                model.updated_at = Set(now);
                model.update(&state.db).await?;
            }
            None => {
                sync_states::ActiveModel {
                    key: Set(key),
                    user_id: Set(user.id),
                    resource: Set(resource.as_str().to_owned()),
                    delta_link: Set(None),
                    list_id: Set(None),
                    list_chosen: Set(false),
                    deletions_confirmed: Set(true),
                    updated_at: Set(now),
                }
                .insert(&state.db)
                .await?;
            }
        }
    }
    Ok(HttpResponse::NoContent().finish())
}
