//! `/api/v1/webhooks`: endpoints that receive the change log, signed per Standard Webhooks
//! (create, list, read, update, delete, send a test ping, rotate the secret), and their
//! deliveries with every attempt (list, redeliver). Admins manage global and organizations'
//! endpoints, org admins their organization's.

use actix_web::{HttpResponse, delete, get, http::StatusCode, patch, post, web};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    domain::{
        pagination::{Page, PageParams, cursor_of},
        webhooks::{
            self, CreateWebhookEndpoint, UpdateWebhookEndpoint, WebhookEndpointView,
            WebhookEndpointWithSecret,
            deliveries::{self, WebhookDeliveryView},
        },
    },
    error::ApiResult,
    jobs,
    routes::extract::JsonBody,
    startup::AppState,
};

/// Create a webhook endpoint. The answer carries its `whsec_` signing secret, the only time
/// it is shown.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request safe")),
    request_body = CreateWebhookEndpoint,
    responses(
        (status = 201, description = "Created, with its secret", body = WebhookEndpointWithSecret),
        (status = 404, description = "`not_found`: the organization named does not exist or is not the caller's", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("")]
pub async fn create_webhook(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: JsonBody<CreateWebhookEndpoint>,
) -> ApiResult<HttpResponse> {
    let allow_private = state.settings.webhooks.allow_private_targets;
    let created =
        webhooks::create(&state.db, &state.cipher, &caller, body.0, allow_private).await?;
    Ok(HttpResponse::build(StatusCode::CREATED)
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/webhooks/{}", created.endpoint.id),
        ))
        .json(created))
}

/// List the webhook endpoints the caller manages.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(PageParams),
    responses((status = 200, description = "A page of endpoints", body = Page<WebhookEndpointView>))
)]
#[get("")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let page = query.parse()?;
    let rows = webhooks::list(&state.db, &caller, page).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(
        rows,
        page,
        |r| r.id,
        WebhookEndpointView::from,
    )))
}

/// Read a webhook endpoint (never its secret).
#[utoipa::path(
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses((status = 200, description = "The endpoint", body = WebhookEndpointView))
)]
#[get("/{id}")]
pub async fn get_webhook(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let row = webhooks::get(&state.db, &caller, *id).await?;
    Ok(HttpResponse::Ok().json(WebhookEndpointView::from(row)))
}

/// Update a webhook endpoint (JSON merge patch): URL, event filter, description, enabled.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    request_body(content = UpdateWebhookEndpoint, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "Updated", body = WebhookEndpointView))
)]
#[patch("/{id}")]
pub async fn update_webhook(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    body: JsonBody<UpdateWebhookEndpoint>,
) -> ApiResult<HttpResponse> {
    let allow_private = state.settings.webhooks.allow_private_targets;
    let row = webhooks::update(&state.db, &caller, *id, body.0, allow_private).await?;
    Ok(HttpResponse::Ok().json(WebhookEndpointView::from(row)))
}

/// Delete a webhook endpoint and its deliveries.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses((status = 204, description = "Deleted"))
)]
#[delete("/{id}")]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    webhooks::delete(&state.db, &caller, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Send a test ping (`webhook.ping`) to the endpoint, through the queue like any delivery;
/// the answer is the delivery, whose attempts show the outcome.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses((status = 202, description = "The ping's delivery, queued", body = WebhookDeliveryView))
)]
#[post("/{id}/test")]
pub async fn test_webhook(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let endpoint = webhooks::get(&state.db, &caller, *id).await?;
    let delivery = deliveries::ping(&state.db, &endpoint).await?;
    jobs::webhooks::queue_attempt(&state.webhook_queue, &delivery).await?;
    let view = deliveries::view(&state.db, delivery).await?;
    Ok(HttpResponse::Accepted().json(view))
}

/// Give the endpoint a new signing secret, shown in the answer only. The previous secret keeps
/// signing beside the new one for 24 hours (both signatures are sent), so the receiver can
/// switch without losing a delivery.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses((status = 200, description = "The endpoint with its new secret", body = WebhookEndpointWithSecret))
)]
#[post("/{id}/rotate-secret")]
pub async fn rotate_webhook_secret(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let rotated = webhooks::rotate_secret(&state.db, &state.cipher, &caller, *id).await?;
    Ok(HttpResponse::Ok().json(rotated))
}

/// List the endpoint's deliveries, newest first, each with its attempts (status, latency,
/// error).
#[utoipa::path(
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), PageParams),
    responses((status = 200, description = "A page of deliveries", body = Page<WebhookDeliveryView>))
)]
#[get("/{id}/deliveries")]
pub async fn list_webhook_deliveries(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let page = query.parse()?;
    let endpoint = webhooks::get(&state.db, &caller, *id).await?;
    let (items, more) = deliveries::list(&state.db, endpoint.id, page).await?;
    let next_cursor = more
        .then(|| items.last().map(|d| cursor_of(d.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

/// Deliver again: one more attempt of this delivery (same `webhook-id` and body), queued now,
/// whatever became of the earlier ones.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(
        ("id" = Uuid, Path, description = "Endpoint id"),
        ("delivery_id" = Uuid, Path, description = "Delivery id")
    ),
    responses((status = 202, description = "The delivery, pending again", body = WebhookDeliveryView))
)]
#[post("/{id}/deliveries/{delivery_id}/redeliver")]
pub async fn redeliver_webhook(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (id, delivery_id) = path.into_inner();
    let endpoint = webhooks::get(&state.db, &caller, id).await?;
    let row = deliveries::get(&state.db, endpoint.id, delivery_id).await?;
    let row = deliveries::redeliver(&state.db, row).await?;
    jobs::webhooks::queue_attempt(&state.webhook_queue, &row).await?;
    let view = deliveries::view(&state.db, row).await?;
    Ok(HttpResponse::Accepted().json(view))
}
