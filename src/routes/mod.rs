//! HTTP only: each handler extracts its input, calls one domain function and maps the result
//! to a response. One module per resource, mirrored by `tests/api/`.

pub mod api_keys;
pub mod auth;
pub mod calendar_events;
pub mod changes;
pub mod conflicts;
pub mod connections;
pub mod cors;
pub mod extract;
pub mod hardening;
pub mod health;
pub mod idempotency;
pub mod me;
pub mod metrics;
pub mod oauth_callback;
pub mod organizations;
pub mod settings;
pub mod sync;
pub mod sync_overview;
pub mod tasks;
pub mod todo_lists;
pub mod users;
pub mod webhooks;

use actix_web::{HttpResponse, http::header};
use serde::Serialize;
use utoipa_actix_web::{scope, service_config::ServiceConfig};

use crate::domain::etag::etag;

/// Registers every documented endpoint (the OpenAPI document is collected from these).
///
/// Routes are grouped in scopes: actix tries a scope's routes only when its prefix matches, and
/// the `{id}` of a resource is matched once by its scope rather than once per route, which
/// keeps the pattern matching per request small (it was the largest cost of a cached read).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(metrics::get_metrics)
        .service(
            scope("/api/v1")
                .service(auth::create_token)
                .service(auth::logout)
                .service(me::get_me)
                .service(oauth_callback::oauth_callback)
                .service(sync_overview::get_sync_overview)
                .service(changes::list_changes)
                .service(
                    scope("/webhooks")
                        .service(webhooks::create_webhook)
                        .service(webhooks::list_webhooks)
                        .service(webhooks::get_webhook)
                        .service(webhooks::update_webhook)
                        .service(webhooks::delete_webhook)
                        .service(webhooks::test_webhook)
                        .service(webhooks::rotate_webhook_secret)
                        .service(webhooks::list_webhook_deliveries)
                        .service(webhooks::redeliver_webhook),
                )
                .service(
                    scope("/api-keys")
                        .service(api_keys::create_api_key)
                        .service(api_keys::list_api_keys)
                        .service(api_keys::get_api_key)
                        .service(api_keys::delete_api_key),
                )
                .service(
                    scope("/settings/microsoft")
                        .service(settings::microsoft::get_global_microsoft_settings)
                        .service(settings::microsoft::update_global_microsoft_settings)
                        .service(settings::application::get_global_application_settings)
                        .service(settings::application::update_global_application_settings),
                )
                .service(
                    scope("/organizations")
                        .service(organizations::create_organization)
                        .service(organizations::list_organizations)
                        .service(
                            scope("/{id}")
                                .service(organizations::get_organization)
                                .service(organizations::update_organization)
                                .service(organizations::delete_organization)
                                .service(users::create_user)
                                .service(users::list_users)
                                .service(settings::microsoft::get_organization_microsoft_settings)
                                .service(
                                    settings::microsoft::update_organization_microsoft_settings,
                                )
                                .service(
                                    settings::application::get_organization_application_settings,
                                )
                                .service(
                                    settings::application::update_organization_application_settings,
                                ),
                        ),
                )
                .service(
                    scope("/users").service(
                        scope("/{id}")
                            .service(users::get_user)
                            .service(users::update_user)
                            .service(users::delete_user)
                            .service(users::revoke_sessions)
                            .service(settings::microsoft::get_user_microsoft_settings)
                            .service(settings::microsoft::update_user_microsoft_settings)
                            .service(connections::start_connection)
                            .service(connections::complete_connection)
                            .service(connections::get_connection)
                            .service(connections::delete_connection)
                            .service(connections::check_connection)
                            .service(todo_lists::list_todo_lists)
                            .service(sync::sync_now)
                            .service(sync::get_sync_status)
                            .service(sync::get_sync_job)
                            .service(sync::list_sync_runs)
                            .service(sync::restore_sync_run)
                            .service(sync::confirm_deletions)
                            .service(conflicts::list_conflicts)
                            .service(conflicts::resolve_conflict)
                            .service(calendar_events::create_calendar_event)
                            .service(calendar_events::list_calendar_events)
                            .service(calendar_events::get_calendar_event)
                            .service(calendar_events::update_calendar_event)
                            .service(calendar_events::delete_calendar_event)
                            .service(calendar_events::restore_calendar_event)
                            .service(calendar_events::respond_to_calendar_event)
                            .service(calendar_events::update_occurrence)
                            .service(calendar_events::cancel_occurrence)
                            .service(tasks::create_task)
                            .service(tasks::list_tasks)
                            .service(tasks::get_task)
                            .service(tasks::update_task)
                            .service(tasks::delete_task)
                            .service(tasks::restore_task),
                    ),
                ),
        );
}

/// The user addressed by a `/users/{id}/...` data path (events, tasks, settings, connection,
/// sync), if the caller may reach their data: their own, their organization's users but its
/// admins for an org admin, anyone's for an admin.
///
/// # Errors
/// 404 when there is no such user or the caller may not see them; 403 for an org admin and an
/// admin's data.
pub async fn accessible_user(
    state: &crate::startup::AppState,
    caller: &crate::auth::AuthUser,
    id: uuid::Uuid,
) -> crate::error::ApiResult<entity::users::Model> {
    let user = crate::domain::users::find_by_id_cached(&state.db, &state.caches.users, id)
        .await?
        .ok_or_else(|| crate::domain::access::not_found("user"))?;
    caller.may_access_user_data(
        user.id,
        user.organization_id,
        crate::domain::users::stored_role(&user)?,
    )?;
    Ok(user)
}

/// The recycle bin's retention, as configured (`deleted_retention_days`).
pub fn retention(state: &crate::startup::AppState) -> crate::domain::recycle_bin::Retention {
    crate::domain::recycle_bin::Retention::of_days(state.settings.jobs.deleted_retention_days)
}

/// A JSON response carrying the `ETag` of `version`.
pub fn json_with_etag<T: Serialize>(
    status: actix_web::http::StatusCode,
    version: i64,
    body: &T,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, etag(version)))
        .json(body)
}
