//! Webhook endpoints: where the change log is delivered, signed per Standard Webhooks. An
//! admin's endpoints are global (every event) or an organization's; an org admin's are their
//! organization's (events about its users). Each has an `events` filter, a `whsec_` secret
//! shown once (at creation and at each rotation; the previous one keeps signing alongside for
//! [`ROTATION_OVERLAP_HOURS`]), and its deliveries with every attempt.

pub mod deliveries;
pub mod signature;
pub mod target;

use chrono::{DateTime, Utc};
use entity::webhook_endpoints;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    crypto::Cipher,
    domain::{
        Role, access::not_found, changes::EVENT_TYPES, pagination::PageRequest, patch::Patch,
    },
    error::{ApiError, ApiResult, FieldError},
};

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

/// Longest description.
const MAX_DESCRIPTION: usize = 500;

/// Most event types (or patterns) one endpoint may filter on.
const MAX_FILTERS: usize = 64;

/// An endpoint as the API shows it (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointView {
    /// Id.
    pub id: Uuid,
    /// Where deliveries are sent (`POST`).
    pub url: String,
    /// What it is for.
    pub description: String,
    /// The event types delivered (`calendar_event.updated`, or a family such as `task.*`);
    /// empty: every event.
    pub events: Vec<String>,
    /// The organization whose events it receives; `null`: every event (admins only).
    pub organization_id: Option<Uuid>,
    /// Whether deliveries are made. An endpoint failing for 5 days in a row is disabled.
    pub enabled: bool,
    /// Why it was disabled, if it was by the service.
    pub disabled_reason: Option<String>,
    /// Since when every delivery attempt has failed, if the last one did.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs beside the current one, after a rotation.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<webhook_endpoints::Model> for WebhookEndpointView {
    fn from(m: webhook_endpoints::Model) -> Self {
        Self {
            id: m.id,
            url: m.url,
            description: m.description,
            events: serde_json::from_str(&m.events).unwrap_or_default(),
            organization_id: m.organization_id,
            enabled: m.enabled,
            disabled_reason: m.disabled_reason,
            failing_since: m.failing_since.map(|t| t.with_timezone(&Utc)),
            previous_secret_expires_at: m
                .previous_secret_expires_at
                .filter(|t| *t > Utc::now())
                .map(|t| t.with_timezone(&Utc)),
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// An endpoint with its secret: the answer of a creation or a rotation, the only time the
/// secret is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: WebhookEndpointView,
    /// The signing secret (`whsec_` and base64): keep it, it is not shown again.
    pub secret: String,
}

/// Body of `POST /api/v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookEndpoint {
    /// An `http` or `https` URL on a public address.
    #[schema(example = "https://crm.example.com/hooks/m365-sync", max_length = 2048)]
    pub url: String,
    /// Event types or families (`task.*`) to deliver; absent or empty: every event.
    #[serde(default)]
    pub events: Vec<String>,
    /// What it is for, at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// An admin may create an organization's endpoint; absent: a global one for an admin,
    /// the caller's organization for an org admin.
    pub organization_id: Option<Uuid>,
}

/// Body of `PATCH /api/v1/webhooks/{id}` (JSON merge patch).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookEndpoint {
    /// New URL.
    #[serde(default)]
    #[schema(value_type = String, max_length = 2048)]
    pub url: Patch<String>,
    /// New event filter (empty: every event).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub events: Patch<Vec<String>>,
    /// New description.
    #[serde(default)]
    #[schema(value_type = String, max_length = 500)]
    pub description: Patch<String>,
    /// `true` enables a disabled endpoint (and forgets its failures); `false` pauses it.
    #[serde(default)]
    #[schema(value_type = bool)]
    pub enabled: Patch<bool>,
}

/// Whether an endpoint filtering on `filters` receives `event_type`.
pub fn wants(filters: &[String], event_type: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| match f.strip_suffix(".*") {
            Some(family) => event_type
                .strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('.')),
            None => f == event_type,
        })
}

fn check_events(events: &[String]) -> Result<Vec<String>, FieldError> {
    if events.len() > MAX_FILTERS {
        return Err(FieldError::new(
            "/events",
            format!("at most {MAX_FILTERS} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let known = match event.strip_suffix(".*") {
            Some(_) => EVENT_TYPES
                .iter()
                .any(|t| wants(std::slice::from_ref(event), t)),
            None => EVENT_TYPES.contains(&event.as_str()),
        };
        if !known {
            return Err(FieldError::new(
                format!("/events/{i}"),
                "is not an event type (see the README's list) nor a family such as `task.*`",
            ));
        }
        if !out.contains(event) {
            out.push(event.clone());
        }
    }
    Ok(out)
}

fn check_description(text: &str) -> Result<String, FieldError> {
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(FieldError::new(
            "/description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(text.trim().to_owned())
}

fn check_url(text: &str, allow_private: bool) -> Result<String, FieldError> {
    target::check_url(text, allow_private)
        .map(|_| text.to_owned())
        .map_err(|e| FieldError::new("/url", e))
}

fn secret_context(id: Uuid) -> String {
    format!("webhook_secret:{id}")
}

/// The organization an endpoint created by `caller` belongs to.
fn owner_of(caller: &AuthUser, asked: Option<Uuid>) -> ApiResult<Option<Uuid>> {
    match caller.role {
        Role::Admin => Ok(asked),
        Role::OrgAdmin => match (asked, caller.organization_id) {
            (None, Some(own)) => Ok(Some(own)),
            (Some(asked), Some(own)) if asked == own => Ok(Some(own)),
            (Some(_), _) => Err(not_found("organization")),
            (None, None) => Err(ApiError::Forbidden(
                "An organization admin without an organization has no events.".to_owned(),
            )),
        },
        Role::User => Err(manager_only()),
    }
}

fn manager_only() -> ApiError {
    ApiError::Forbidden("Only an admin or an organization admin may manage webhooks.".to_owned())
}

/// Admins and org admins manage webhooks; plain users do not.
///
/// # Errors
/// 403 for a plain user.
pub fn require_manager(caller: &AuthUser) -> ApiResult<()> {
    match caller.role {
        Role::User => Err(manager_only()),
        _ => Ok(()),
    }
}

/// Creates an endpoint; the answer carries its secret, once.
///
/// # Errors
/// 403 for a plain user; 404 for an org admin naming another organization (or an unknown
/// one); 422 for an invalid URL, filter or description.
pub async fn create(
    db: &impl ConnectionTrait,
    cipher: &Cipher,
    caller: &AuthUser,
    body: CreateWebhookEndpoint,
    allow_private: bool,
) -> ApiResult<WebhookEndpointWithSecret> {
    let organization_id = owner_of(caller, body.organization_id)?;
    let mut errors = Vec::new();
    let url = check_url(&body.url, allow_private).map_err(|e| errors.push(e));
    let events = check_events(&body.events).map_err(|e| errors.push(e));
    let description = check_description(&body.description).map_err(|e| errors.push(e));
    let (Ok(url), Ok(events), Ok(description)) = (url, events, description) else {
        return Err(ApiError::Validation(errors));
    };
    if let Some(org) = organization_id {
        crate::domain::organizations::find(db, org)
            .await?
            .ok_or_else(|| not_found("organization"))?;
    }
    let id = Uuid::now_v7();
    let secret = signature::new_secret();
    let now = Utc::now().fixed_offset();
    let row = webhook_endpoints::ActiveModel {
        id: Set(id),
        organization_id: Set(organization_id),
        url: Set(url),
        description: Set(description),
        events: Set(serde_json::to_string(&events).map_err(anyhow::Error::from)?),
        secret_encrypted: Set(cipher.encrypt(secret.as_bytes(), &secret_context(id))?),
        previous_secret_encrypted: Set(None),
        previous_secret_expires_at: Set(None),
        enabled: Set(true),
        disabled_reason: Set(None),
        failing_since: Set(None),
        created_by: Set(caller.id),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(WebhookEndpointWithSecret {
        endpoint: row.into(),
        secret,
    })
}

/// An endpoint the caller may manage.
///
/// # Errors
/// 403 for a plain user; 404 when there is no such endpoint or it is another organization's
/// (or global, for an org admin).
pub async fn get(
    db: &impl ConnectionTrait,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<webhook_endpoints::Model> {
    require_manager(caller)?;
    let row = webhook_endpoints::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| not_found("webhook endpoint"))?;
    match caller.role {
        Role::Admin => Ok(row),
        _ if row.organization_id.is_some() && row.organization_id == caller.organization_id => {
            Ok(row)
        }
        _ => Err(not_found("webhook endpoint")),
    }
}

/// The endpoints the caller may manage, in id order.
///
/// # Errors
/// 403 for a plain user.
pub async fn list(
    db: &impl ConnectionTrait,
    caller: &AuthUser,
    page: PageRequest,
) -> ApiResult<Vec<webhook_endpoints::Model>> {
    use webhook_endpoints::Column as C;
    let mut query = webhook_endpoints::Entity::find().order_by_asc(C::Id);
    match caller.role {
        Role::Admin => {}
        Role::OrgAdmin => {
            let Some(org) = caller.organization_id else {
                return Ok(Vec::new());
            };
            query = query.filter(C::OrganizationId.eq(org));
        }
        Role::User => return Err(manager_only()),
    }
    if let Some(after) = page.after {
        query = query.filter(C::Id.gt(after));
    }
    Ok(query.limit(page.limit + 1).all(db).await?)
}

/// Applies a merge patch to an endpoint.
///
/// # Errors
/// As [`get`]; 422 for invalid fields or a `null`.
pub async fn update(
    db: &impl ConnectionTrait,
    caller: &AuthUser,
    id: Uuid,
    patch: UpdateWebhookEndpoint,
    allow_private: bool,
) -> ApiResult<webhook_endpoints::Model> {
    let row = get(db, caller, id).await?;
    let mut errors = Vec::new();
    let mut model: webhook_endpoints::ActiveModel = row.into();
    match patch.url {
        Patch::Absent => {}
        Patch::Null => errors.push(FieldError::new("/url", "may not be null")),
        Patch::Set(url) => match check_url(&url, allow_private) {
            Ok(url) => model.url = Set(url),
            Err(e) => errors.push(e),
        },
    }
    match patch.events {
        Patch::Absent => {}
        Patch::Null => model.events = Set("[]".to_owned()),
        Patch::Set(events) => match check_events(&events) {
            Ok(events) => {
                model.events = Set(serde_json::to_string(&events).map_err(anyhow::Error::from)?);
            }
            Err(e) => errors.push(e),
        },
    }
    match patch.description {
        Patch::Absent => {}
        Patch::Null => model.description = Set(String::new()),
        Patch::Set(text) => match check_description(&text) {
            Ok(text) => model.description = Set(text),
            Err(e) => errors.push(e),
        },
    }
    match patch.enabled {
        Patch::Absent => {}
        Patch::Null => errors.push(FieldError::new("/enabled", "may not be null")),
        Patch::Set(enabled) => {
            model.enabled = Set(enabled);
            if enabled {
                model.disabled_reason = Set(None);
                model.failing_since = Set(None);
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    model.updated_at = Set(Utc::now().fixed_offset());
    Ok(model.update(db).await?)
}

/// Deletes an endpoint with its deliveries.
///
/// # Errors
/// As [`get`].
pub async fn delete(db: &impl ConnectionTrait, caller: &AuthUser, id: Uuid) -> ApiResult<()> {
    let row = get(db, caller, id).await?;
    deliveries::delete_of_endpoint(db, row.id).await?;
    webhook_endpoints::Entity::delete_by_id(row.id)
        .exec(db)
        .await?;
    Ok(())
}

/// Gives an endpoint a new secret; the previous one keeps signing beside it for
/// [`ROTATION_OVERLAP_HOURS`] (a secret rotated out earlier stops at once).
///
/// # Errors
/// As [`get`].
pub async fn rotate_secret(
    db: &impl ConnectionTrait,
    cipher: &Cipher,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<WebhookEndpointWithSecret> {
    let row = get(db, caller, id).await?;
    let current = cipher.decrypt(&row.secret_encrypted, &secret_context(id))?;
    let secret = signature::new_secret();
    let now = Utc::now();
    let mut model: webhook_endpoints::ActiveModel = row.into();
    model.previous_secret_encrypted = Set(Some(
        cipher.encrypt(&current, &format!("{}:previous", secret_context(id)))?,
    ));
    model.previous_secret_expires_at = Set(Some(
        (now + chrono::Duration::hours(ROTATION_OVERLAP_HOURS)).fixed_offset(),
    ));
    model.secret_encrypted = Set(cipher.encrypt(secret.as_bytes(), &secret_context(id))?);
    model.updated_at = Set(now.fixed_offset());
    let row = model.update(db).await?;
    Ok(WebhookEndpointWithSecret {
        endpoint: row.into(),
        secret,
    })
}

/// The secrets that sign a delivery to `row` now: the current one, and the previous one while
/// its overlap lasts.
///
/// # Errors
/// When a secret cannot be decrypted.
pub fn signing_secrets(
    cipher: &Cipher,
    row: &webhook_endpoints::Model,
) -> anyhow::Result<Vec<String>> {
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("a webhook secret is not text"))
    };
    let mut secrets = vec![text(
        cipher.decrypt(&row.secret_encrypted, &secret_context(row.id))?,
    )?];
    if let (Some(previous), Some(until)) = (
        &row.previous_secret_encrypted,
        row.previous_secret_expires_at,
    ) && until > Utc::now()
    {
        secrets.push(text(cipher.decrypt(
            previous,
            &format!("{}:previous", secret_context(row.id)),
        )?)?);
    }
    Ok(secrets)
}

/// Every enabled endpoint (the dispatcher's view; deployments have a handful).
///
/// # Errors
/// On database failure.
pub async fn enabled(db: &impl ConnectionTrait) -> ApiResult<Vec<webhook_endpoints::Model>> {
    Ok(webhook_endpoints::Entity::find()
        .filter(webhook_endpoints::Column::Enabled.eq(true))
        .all(db)
        .await?)
}

/// The endpoints the service disabled after failing too long, that the caller may manage.
///
/// # Errors
/// On database failure.
pub async fn disabled_by_failures(
    db: &impl ConnectionTrait,
    organization: Option<Uuid>,
) -> ApiResult<Vec<webhook_endpoints::Model>> {
    use webhook_endpoints::Column as C;
    let mut query = webhook_endpoints::Entity::find()
        .filter(C::Enabled.eq(false))
        .filter(C::DisabledReason.is_not_null())
        .order_by_asc(C::Id)
        .limit(100);
    if let Some(org) = organization {
        query = query.filter(C::OrganizationId.eq(org));
    }
    Ok(query.all(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_types_and_families() {
        let f = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(wants(&[], "task.created"));
        assert!(wants(&f(&["task.*"]), "task.created"));
        assert!(!wants(&f(&["task.*"]), "tasks.created"));
        assert!(wants(&f(&["sync.*"]), "sync.run.failed"));
        assert!(wants(&f(&["sync.run.failed"]), "sync.run.failed"));
        assert!(!wants(
            &f(&["calendar_event.created"]),
            "calendar_event.updated"
        ));
        assert!(
            check_events(&f(&["task.*", "conflict.created", "task.*"]))
                .unwrap()
                .len()
                == 2
        );
        assert!(check_events(&f(&["nope"])).is_err());
        assert!(check_events(&f(&["nope.*"])).is_err());
    }
}
