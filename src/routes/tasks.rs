//! A user's tasks: `/api/v1/users/{id}/tasks` (create, list, list the recycle bin),
//! `/api/v1/users/{id}/tasks/{task_id}` (read, update, delete as a tombstone) and
//! `/api/v1/users/{id}/tasks/{task_id}/restore` (bring one back from the recycle bin). Users
//! manage their own tasks, org admins their organization's users', admins everyone's.

use actix_web::{HttpRequest, HttpResponse, delete, get, http::StatusCode, patch, post, web};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    domain::{
        pagination::Page,
        recycle_bin::ReadParams,
        tasks::{self, CreateTask, TaskData, TaskListParams, TaskView, UpdateTask},
    },
    error::ApiResult,
    routes::{
        calendar_events::owner,
        extract::{JsonBody, if_match},
        json_with_etag, retention,
    },
    startup::AppState,
};

/// Create a task.
#[utoipa::path(
    tag = "tasks",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request safe")
    ),
    request_body = CreateTask,
    responses((status = 201, description = "Created", body = TaskView))
)]
#[post("/tasks")]
pub async fn create_task(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    body: JsonBody<CreateTask>,
) -> ApiResult<HttpResponse> {
    let user_id = owner(&state, &caller, *id).await?;
    let data = TaskData::from_create(body.0)?;
    let task = tasks::create(&state.db, user_id, &data).await?;
    let version = task.version;
    let view = tasks::view(&state.db, task).await?;
    Ok(json_with_etag(StatusCode::CREATED, version, &view))
}

/// List a user's tasks in id order, optionally with one status or changed since an instant.
/// Deleted tasks are not listed, unless `deleted=true` lists the recycle bin: the tasks deleted
/// within `deleted_retention_days`, with who deleted them.
#[utoipa::path(
    tag = "tasks",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id"), TaskListParams),
    responses((status = 200, description = "A page of tasks", body = Page<TaskView>))
)]
#[get("/tasks")]
pub async fn list_tasks(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<TaskListParams>,
) -> ApiResult<HttpResponse> {
    let user_id = owner(&state, &caller, *id).await?;
    let (filter, page) = query.parse(retention(&state))?;
    let (rows, more) = tasks::list(&state.db, user_id, filter, page).await?;
    let next_cursor = more
        .then(|| {
            rows.last()
                .map(|r| crate::domain::pagination::cursor_of(r.id))
        })
        .flatten();
    Ok(HttpResponse::Ok().json(Page {
        items: tasks::views(&state.db, user_id, rows).await?,
        next_cursor,
    }))
}

/// Read a task; with `deleted=true`, a deleted one from the recycle bin.
#[utoipa::path(
    tag = "tasks",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("task_id" = Uuid, Path, description = "Task id"),
        ReadParams
    ),
    responses((status = 200, description = "The task", body = TaskView))
)]
#[get("/tasks/{task_id}")]
pub async fn get_task(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<ReadParams>,
) -> ApiResult<HttpResponse> {
    let (id, task_id) = path.into_inner();
    let user_id = owner(&state, &caller, id).await?;
    let task = if query.deleted.unwrap_or(false) {
        tasks::get_deleted(&state.db, user_id, task_id, retention(&state)).await?
    } else {
        tasks::get(&state.db, user_id, task_id).await?
    };
    let version = task.version;
    let view = tasks::view(&state.db, task).await?;
    Ok(json_with_etag(StatusCode::OK, version, &view))
}

/// Update a task (JSON merge patch; honours `If-Match`).
#[utoipa::path(
    tag = "tasks",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("task_id" = Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "ETag the change is based on")
    ),
    request_body(content = UpdateTask, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "Updated", body = TaskView))
)]
#[patch("/tasks/{task_id}")]
pub async fn update_task(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    req: HttpRequest,
    body: JsonBody<UpdateTask>,
) -> ApiResult<HttpResponse> {
    let (id, task_id) = path.into_inner();
    let user_id = owner(&state, &caller, id).await?;
    let task = tasks::patch_task(
        &state.db,
        user_id,
        task_id,
        body.0,
        if_match(&req).as_deref(),
    )
    .await?;
    let version = task.version;
    let view = tasks::view(&state.db, task).await?;
    Ok(json_with_etag(StatusCode::OK, version, &view))
}

/// Delete a task (honours `If-Match`). The task is kept as a tombstone so that the deletion
/// reaches Microsoft; it answers 404 from then on, and stays in the recycle bin
/// (`deleted=true`) for `deleted_retention_days`.
#[utoipa::path(
    tag = "tasks",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("task_id" = Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "ETag the deletion is based on")
    ),
    responses((status = 204, description = "Deleted"))
)]
#[delete("/tasks/{task_id}")]
pub async fn delete_task(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (id, task_id) = path.into_inner();
    let user_id = owner(&state, &caller, id).await?;
    tasks::delete_task(&state.db, user_id, task_id, if_match(&req).as_deref()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Restore a deleted task from the recycle bin (honours `If-Match`): it is no longer deleted,
/// gets a new version, and the next run sends it to Microsoft again (created anew if Microsoft
/// deleted it, kept there if the deletion had not been sent yet).
#[utoipa::path(
    tag = "tasks",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("task_id" = Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the deleted task the restore is based on")
    ),
    responses(
        (status = 200, description = "The restored task", body = TaskView),
        (status = 409, description = "`not_deleted`: the task is not deleted", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/tasks/{task_id}/restore")]
pub async fn restore_task(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (id, task_id) = path.into_inner();
    let user_id = owner(&state, &caller, id).await?;
    let task = tasks::restore_task(
        &state.db,
        user_id,
        task_id,
        if_match(&req).as_deref(),
        retention(&state),
    )
    .await?;
    let version = task.version;
    let view = tasks::view(&state.db, task).await?;
    Ok(json_with_etag(StatusCode::OK, version, &view))
}
