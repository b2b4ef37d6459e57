//! A user's calendar events: `/api/v1/users/{id}/calendar-events` (create, list, list the
//! recycle bin), `/api/v1/users/{id}/calendar-events/{event_id}` (read, update, delete as a
//! tombstone), `/api/v1/users/{id}/calendar-events/{event_id}/restore` (bring one back from
//! the recycle bin) and
//! `/api/v1/users/{id}/calendar-events/{event_id}/occurrences/{original_start}` (modify or
//! cancel one occurrence of a series).
//! Users manage their own events, org admins their organization's users', admins everyone's.

use actix_web::{HttpRequest, HttpResponse, delete, get, http::StatusCode, patch, post, web};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    domain::{
        calendar_events::{
            self, CalendarEventView, CreateCalendarEvent, EventData, EventListParams,
            EventResponse, UpdateCalendarEvent, listing,
        },
        pagination::{Page, cursor_of},
        recycle_bin::ReadParams,
    },
    error::{ApiError, ApiResult},
    routes::{
        extract::{JsonBody, if_match},
        json_with_etag, retention,
    },
    startup::AppState,
};

/// The user whose items are addressed, if the caller may see them.
///
/// # Errors
/// 404 when there is no such user or the caller may not see them.
pub(crate) async fn owner(state: &AppState, caller: &AuthUser, id: Uuid) -> ApiResult<Uuid> {
    Ok(crate::routes::accessible_user(state, caller, id).await?.id)
}

/// Create a calendar event.
#[utoipa::path(
    tag = "calendar",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request safe")
    ),
    request_body = CreateCalendarEvent,
    responses((status = 201, description = "Created", body = CalendarEventView))
)]
#[post("/calendar-events")]
pub async fn create_calendar_event(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    body: JsonBody<CreateCalendarEvent>,
) -> ApiResult<HttpResponse> {
    let user_id = owner(&state, &caller, *id).await?;
    let data = EventData::from_create(body.0)?;
    let event = calendar_events::create(&state.db, user_id, &data).await?;
    let version = event.version;
    let view = calendar_events::view(&state.db, event).await?;
    Ok(json_with_etag(StatusCode::CREATED, version, &view))
}

/// List a user's calendar events in id order, optionally those overlapping a time range (a
/// series over the span of its occurrences) or changed since an instant; with `expand=true`,
/// each series of the page is replaced by its occurrences in the range. Deleted events are not
/// listed, unless `deleted=true` lists the recycle bin: the events deleted within
/// `deleted_retention_days`, with who deleted them.
#[utoipa::path(
    tag = "calendar",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "User id"), EventListParams),
    responses((status = 200, description = "A page of events", body = Page<CalendarEventView>))
)]
#[get("/calendar-events")]
pub async fn list_calendar_events(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<EventListParams>,
) -> ApiResult<HttpResponse> {
    let user_id = owner(&state, &caller, *id).await?;
    let (filter, page) = query.parse(retention(&state))?;
    let (items, next_cursor) = match (page, filter.from, filter.to) {
        (calendar_events::ListPage::Occurrences { limit, after }, Some(from), Some(to)) => {
            listing::occurrences(
                &state.db,
                user_id,
                filter,
                (from, to),
                limit,
                after.as_ref(),
            )
            .await?
        }
        (calendar_events::ListPage::Events(page), ..) => {
            let (rows, more) = listing::events(&state.db, user_id, filter, page).await?;
            let next_cursor = more.then(|| rows.last().map(|r| cursor_of(r.id))).flatten();
            (
                calendar_events::views(&state.db, user_id, rows).await?,
                next_cursor,
            )
        }
        (calendar_events::ListPage::Occurrences { .. }, ..) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`expand=true` needs both `from` and `to`",
            ));
        }
    };
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

/// Read a calendar event; with `deleted=true`, a deleted one from the recycle bin.
#[utoipa::path(
    tag = "calendar",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("event_id" = Uuid, Path, description = "Event id"),
        ReadParams
    ),
    responses((status = 200, description = "The event", body = CalendarEventView))
)]
#[get("/calendar-events/{event_id}")]
pub async fn get_calendar_event(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<ReadParams>,
) -> ApiResult<HttpResponse> {
    let (id, event_id) = path.into_inner();
    let user_id = owner(&state, &caller, id).await?;
    let event = if query.deleted.unwrap_or(false) {
        calendar_events::get_deleted(&state.db, user_id, event_id, retention(&state)).await?
    } else {
        calendar_events::get(&state.db, user_id, event_id).await?
    };
    let version = event.version;
    let view = calendar_events::view(&state.db, event).await?;
    Ok(json_with_etag(StatusCode::OK, version, &view))
}

/// Update a calendar event (JSON merge patch; honours `If-Match`).
#[utoipa::path(
    tag = "calendar",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("event_id" = Uuid, Path, description = "Event id"),
        ("If-Match" = Option<String>, Header, description = "ETag the change is based on")
    ),
    request_body(content = UpdateCalendarEvent, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "Updated", body = CalendarEventView))
)]
#[patch("/calendar-events/{event_id}")]
pub async fn update_calendar_event(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    req: HttpRequest,
    body: JsonBody<UpdateCalendarEvent>,
) -> ApiResult<HttpResponse> {
    let (id, event_id) = path.into_inner();
    let user_id = owner(&state, &caller, id).await?;
    let event = calendar_events::patch_event(
        &state.db,
        user_id,
        event_id,
        body.0,
        if_match(&req).as_deref(),
    )
    .await?;
    let version = event.version;
    let view = calendar_events::view(&state.db, event).await?;
    Ok(json_with_etag(StatusCode::OK, version, &view))
}

/// Delete a calendar event (honours `If-Match`). The event is kept as a tombstone so that the
/// deletion reaches Microsoft; it answers 404 from then on, and stays in the recycle bin
/// (`deleted=true`) for `deleted_retention_days`.
#[utoipa::path(
    tag = "calendar",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("event_id" = Uuid, Path, description = "Event id"),
        ("If-Match" = Option<String>, Header, description = "ETag the deletion is based on")
    ),
    responses((status = 204, description = "Deleted"))
)]
#[delete("/calendar-events/{event_id}")]
pub async fn delete_calendar_event(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (id, event_id) = path.into_inner();
    let user_id = owner(&state, &caller, id).await?;
    calendar_events::delete_event(&state.db, user_id, event_id, if_match(&req).as_deref()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Restore a deleted calendar event from the recycle bin (honours `If-Match`): it is no longer
/// deleted, gets a new version, and the next run sends it to Microsoft again (created anew if
/// Microsoft deleted it, kept there if the deletion had not been sent yet).
#[utoipa::path(
    tag = "calendar",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("event_id" = Uuid, Path, description = "Event id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the deleted event the restore is based on")
    ),
    responses(
        (status = 200, description = "The restored event", body = CalendarEventView),
        (status = 409, description = "`not_deleted`: the event is not deleted", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/calendar-events/{event_id}/restore")]
pub async fn restore_calendar_event(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (id, event_id) = path.into_inner();
    let user_id = owner(&state, &caller, id).await?;
    let event = calendar_events::restore_event(
        &state.db,
        user_id,
        event_id,
        if_match(&req).as_deref(),
        retention(&state),
    )
    .await?;
    let version = event.version;
    let view = calendar_events::view(&state.db, event).await?;
    Ok(json_with_etag(StatusCode::OK, version, &view))
}

/// Answer a meeting someone else organizes: accept, accept tentatively or decline, with an
/// optional comment, telling the organizer unless `send_response` is `false`. The answer is
/// recorded at once (`response_pending`, a new version) and sent by the next run; a declined
/// meeting then leaves the calendar, as Outlook removes it.
#[utoipa::path(
    tag = "calendar",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("event_id" = Uuid, Path, description = "Event id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the event the answer is based on")
    ),
    request_body = EventResponse,
    responses(
        (status = 200, description = "The event, its answer waiting to be sent", body = CalendarEventView),
        (status = 409, description = "`own_meeting`: the user organizes this event", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/calendar-events/{event_id}/response")]
pub async fn respond_to_calendar_event(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    req: HttpRequest,
    body: JsonBody<EventResponse>,
) -> ApiResult<HttpResponse> {
    let (id, event_id) = path.into_inner();
    let user_id = owner(&state, &caller, id).await?;
    let event = calendar_events::respond(
        &state.db,
        user_id,
        event_id,
        &body.0,
        if_match(&req).as_deref(),
    )
    .await?;
    let version = event.version;
    let view = calendar_events::view(&state.db, event).await?;
    Ok(json_with_etag(StatusCode::OK, version, &view))
}

/// Modify one occurrence of a series (JSON merge patch of its fields; honours `If-Match` with
/// the series' ETag). The occurrence becomes an exception keeping what differs from the
/// series; the answer is the series.
#[utoipa::path(
    tag = "calendar",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("event_id" = Uuid, Path, description = "Series id"),
        ("original_start" = String, Path, description = "Original start of the occurrence: `YYYY-MM-DDTHH:MM:SSZ` in a timed series, `YYYY-MM-DD` in an all-day series"),
        ("If-Match" = Option<String>, Header, description = "ETag of the series the change is based on")
    ),
    request_body(content = UpdateCalendarEvent, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "The series, with the modified occurrence", body = CalendarEventView))
)]
#[patch("/calendar-events/{event_id}/occurrences/{original_start}")]
pub async fn update_occurrence(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid, String)>,
    req: HttpRequest,
    body: JsonBody<UpdateCalendarEvent>,
) -> ApiResult<HttpResponse> {
    let (id, event_id, original_start) = path.into_inner();
    let user_id = owner(&state, &caller, id).await?;
    let event = calendar_events::patch_occurrence(
        &state.db,
        user_id,
        event_id,
        &original_start,
        body.0,
        if_match(&req).as_deref(),
    )
    .await?;
    let version = event.version;
    let view = calendar_events::view(&state.db, event).await?;
    Ok(json_with_etag(StatusCode::OK, version, &view))
}

/// Cancel one occurrence of a series (honours `If-Match` with the series' ETag); the answer
/// is the series, with the cancelled occurrence among its exceptions.
#[utoipa::path(
    tag = "calendar",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "User id"),
        ("event_id" = Uuid, Path, description = "Series id"),
        ("original_start" = String, Path, description = "Original start of the occurrence: `YYYY-MM-DDTHH:MM:SSZ` in a timed series, `YYYY-MM-DD` in an all-day series"),
        ("If-Match" = Option<String>, Header, description = "ETag of the series the cancellation is based on")
    ),
    responses((status = 200, description = "The series, with the cancelled occurrence", body = CalendarEventView))
)]
#[delete("/calendar-events/{event_id}/occurrences/{original_start}")]
pub async fn cancel_occurrence(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid, String)>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (id, event_id, original_start) = path.into_inner();
    let user_id = owner(&state, &caller, id).await?;
    let event = calendar_events::cancel_occurrence(
        &state.db,
        user_id,
        event_id,
        &original_start,
        if_match(&req).as_deref(),
    )
    .await?;
    let version = event.version;
    let view = calendar_events::view(&state.db, event).await?;
    Ok(json_with_etag(StatusCode::OK, version, &view))
}
