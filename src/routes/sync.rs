//! Synchronization of a user's calendar and tasks: status, sync now and the job it queues, run
//! history, restoring what a run deleted, and confirmation of deletions held back by the
//! mass-delete guard.

use actix_web::{HttpResponse, get, http::header, post, web};
use chrono::Utc;
use entity::sync_states;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use uuid::Uuid;

use crate::domain::links::Resource;
use crate::{
    auth::AuthUser,
    domain::{
        pagination::{Page, PageParams},
        recycle_bin::{self, RunRestore},
    },
    error::ApiResult,
    jobs::status::{self, SyncJobView, SyncStatus},
    routes::{accessible_user, retention},
    startup::AppState,
    sync::runs::{self, RunView},
};

/// Sync now: enqueues a run of every enabled resource (calendar, tasks) of the user, ahead of
/// scheduled work, and answers at once with the job to follow
/// (`GET .../microsoft/sync/jobs/{job_id}`).
#[utoipa::path(
    tag = "sync",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request safe")
    ),
    responses(
        (status = 202, description = "The job is queued", body = SyncJobView,
            headers(("Location" = String, description = "The job's URL"))),
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
    let job = status::sync_now(&state, user.id).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/users/{}/microsoft/sync/jobs/{}", user.id, job.id),
        ))
        .json(job))
}

/// The user's synchronization status per resource: enabled, direction, in progress, last and
/// next sync, last outcome, counts and error, backoff.
#[utoipa::path(
    tag = "sync",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The status", body = SyncStatus))
)]
#[get("/microsoft/sync")]
pub async fn get_sync_status(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    Ok(HttpResponse::Ok().json(status::status(&state, user.id).await?))
}

/// A sync job of the user: its state per resource, and its runs once done.
#[utoipa::path(
    tag = "sync",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("job_id" = Uuid, Path, description = "Job id")
    ),
    responses((status = 200, description = "The job", body = SyncJobView))
)]
#[get("/microsoft/sync/jobs/{job_id}")]
pub async fn get_sync_job(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (id, job_id) = path.into_inner();
    let user = accessible_user(&state, &caller, id).await?;
    Ok(HttpResponse::Ok().json(status::job(&state, user.id, job_id).await?))
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

/// Restore what a run deleted: every event or task whose deletion in Microsoft the run applied
/// here and that is still in the recycle bin comes back (new version each), and the next run
/// creates it in Microsoft again. Items restored or changed since are left as they are.
#[utoipa::path(
    tag = "sync",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("run_id" = Uuid, Path, description = "Run id")
    ),
    responses((status = 200, description = "What was restored", body = RunRestore))
)]
#[post("/microsoft/sync/runs/{run_id}/restore")]
pub async fn restore_sync_run(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (id, run_id) = path.into_inner();
    let user = accessible_user(&state, &caller, id).await?;
    let restored = recycle_bin::restore_run(&state.db, user.id, run_id, retention(&state)).await?;
    Ok(HttpResponse::Ok().json(restored))
}

/// Which deletions a confirmation lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeletionDirection {
    /// Deletions made here, to be sent to Microsoft.
    ToMicrosoft,
    /// Deletions made in Microsoft (or inferred by a resync whose listing lacked items), to be
    /// applied here.
    FromMicrosoft,
}

/// Query of `POST .../microsoft/sync/confirm-deletions`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConfirmDeletionsParams {
    /// The direction confirmed; both when absent.
    #[param(inline)]
    pub direction: Option<DeletionDirection>,
    /// The resource confirmed (`calendar` or `tasks`); both when absent.
    #[param(inline)]
    pub resource: Option<Resource>,
}

/// Lets the next run delete what the mass-delete guard held back, in the direction given
/// (both by default): `to_microsoft` deletes in Microsoft what was deleted here,
/// `from_microsoft` deletes here what was deleted in Microsoft. A confirmation is used up by
/// the run that deletes.
#[utoipa::path(
    tag = "sync",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id"), ConfirmDeletionsParams),
    responses((status = 204, description = "The next run may delete"))
)]
#[post("/microsoft/sync/confirm-deletions")]
pub async fn confirm_deletions(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<ConfirmDeletionsParams>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    let outbound = query.direction != Some(DeletionDirection::FromMicrosoft);
    let inbound = query.direction != Some(DeletionDirection::ToMicrosoft);
    for resource in [Resource::Calendar, Resource::Tasks] {
        if query.resource.is_some_and(|r| r != resource) {
            continue;
        }
        let key = format!("{}:{}", user.id, resource.as_str());
        let now = Utc::now().fixed_offset();
        match sync_states::Entity::find_by_id(key.clone())
            .one(&state.db)
            .await?
        {
            Some(existing) => {
                let mut model: sync_states::ActiveModel = existing.into();
                if outbound {
                    model.deletions_confirmed = Set(true);
                }
                if inbound {
                    model.inbound_deletions_confirmed = Set(true);
                }
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
                    deletions_confirmed: Set(outbound),
                    inbound_deletions_confirmed: Set(inbound),
                    updated_at: Set(now),
                }
                .insert(&state.db)
                .await?;
            }
        }
    }
    Ok(HttpResponse::NoContent().finish())
}
