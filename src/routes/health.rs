//! Liveness and readiness probes.

use actix_web::{HttpResponse, get, web};
use sea_orm::ConnectionTrait;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ApiResult, Problem},
    startup::AppState,
};

/// Health probe body.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the probe succeeds.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up and serving.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The process is up", body = Health))
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: the database answers.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 500, description = "The database does not answer", body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state
        .db
        .execute_unprepared("SELECT 1")
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("Readiness check failed")))?;
    Ok(HttpResponse::Ok().json(Health { status: "ok" }))
}
