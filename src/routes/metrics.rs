//! Prometheus metrics of this process, in the text exposition format.

use actix_web::{HttpResponse, get, web};

use crate::{
    error::{ApiError, ApiResult},
    jobs::status,
    startup::AppState,
};

/// Metrics: sync runs by resource and outcome, run durations, Graph requests by status, queue
/// depth, users in backoff or waiting for a reconnect. Unauthenticated, like the probes: it
/// names no user.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The metrics", body = String, content_type = "application/openmetrics-text"))
)]
#[get("/metrics")]
pub async fn get_metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let (queued, in_backoff, reauth) = status::gauges(&state.db).await?;
    state.metrics.set_gauges(queued, in_backoff, reauth);
    let text = state
        .metrics
        .encode()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("Failed to encode metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}
