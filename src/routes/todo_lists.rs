//! The user's Microsoft To Do lists: `GET /api/v1/users/{id}/microsoft/todo-lists`, to choose
//! the list tasks synchronize with (`todo_list_id` in the user's settings).

use actix_web::{HttpResponse, get, web};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    domain::{
        pagination::Page,
        settings::microsoft,
        todo_lists::{self, TodoListView},
    },
    error::ApiResult,
    routes::accessible_user,
    startup::AppState,
};

/// The connected mailbox's To Do lists (all of them, in one page: the default list first,
/// then by name); `selected` marks the list tasks synchronize with.
#[utoipa::path(
    tag = "microsoft",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The lists", body = Page<TodoListView>),
        (status = 409, description = "`not_connected`, `reauth_required` or `app_misconfigured`: Microsoft cannot be called for this user", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "`microsoft_error`: Microsoft refused the call", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`microsoft_unavailable`: Microsoft could not answer; try again later", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/microsoft/todo-lists")]
pub async fn list_todo_lists(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = accessible_user(&state, &caller, *id).await?;
    let settings = microsoft::effective(&state.db, &user).await?;
    let items = todo_lists::list(&state, user.id, settings.todo_list_id.as_deref()).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: None,
    }))
}
