//! Deliveries: one per endpoint and event (or test ping), holding the exact body that every
//! attempt sends (so that retries carry the same `webhook-id` and bytes), its status and its
//! attempts. Deliveries of one item to one endpoint go in the order of the item's events: one
//! waits while an earlier one of the same item is still pending.

use chrono::{DateTime, Utc};
use entity::{change_events, webhook_attempts, webhook_deliveries, webhook_endpoints};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::wants;
use crate::{
    domain::{access::not_found, changes::ChangeEvent, pagination::PageRequest},
    error::ApiResult,
};

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// An attempt was answered with a 2xx.
    Delivered,
    /// Every attempt failed (or the endpoint was disabled meanwhile).
    Failed,
}

impl DeliveryStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => Self::Pending,
        }
    }
}

/// One attempt as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttemptView {
    /// 1 for the first attempt.
    pub attempt: i32,
    /// When it was sent.
    pub started_at: DateTime<Utc>,
    /// The endpoint's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// Time to the answer (or to the failure), in milliseconds.
    pub latency_ms: i64,
    /// What went wrong, if it failed.
    pub error: Option<String>,
}

/// A delivery as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryView {
    /// Id.
    pub id: Uuid,
    /// The event delivered (its `webhook-id`).
    pub event_id: Uuid,
    /// The event's type (`webhook.ping` for a test).
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When an attempt succeeded.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Every attempt so far, the first first.
    pub attempts: Vec<WebhookAttemptView>,
}

impl WebhookDeliveryView {
    fn of(row: webhook_deliveries::Model, attempts: Vec<webhook_attempts::Model>) -> Self {
        let status = DeliveryStatus::parse(&row.status);
        Self {
            id: row.id,
            event_id: row.event_id,
            event_type: row.event_type,
            status,
            next_attempt_at: (status == DeliveryStatus::Pending)
                .then(|| row.next_attempt_at.with_timezone(&Utc)),
            delivered_at: row.delivered_at.map(|t| t.with_timezone(&Utc)),
            created_at: row.created_at.with_timezone(&Utc),
            attempts: attempts
                .into_iter()
                .map(|a| WebhookAttemptView {
                    attempt: a.attempt,
                    started_at: a.started_at.with_timezone(&Utc),
                    status_code: a.status_code,
                    latency_ms: a.latency_ms,
                    error: a.error,
                })
                .collect(),
        }
    }
}

/// The subject whose events must arrive in order: the item (or conflict) an event is about.
fn subject_of(event: &ChangeEvent) -> Option<String> {
    let id = event.data.get("id")?.as_str()?;
    let family = event.event_type.split('.').next()?;
    Some(format!("{family}:{id}"))
}

/// The deliveries `events` make to `endpoints`: to each enabled endpoint that existed when the
/// event happened, covers its organization and wants its type.
pub fn fan_out(
    events: &[change_events::Model],
    endpoints: &[webhook_endpoints::Model],
) -> Vec<webhook_deliveries::ActiveModel> {
    let now = Utc::now().fixed_offset();
    let mut rows = Vec::new();
    for row in events {
        let event = ChangeEvent::of(row);
        for endpoint in endpoints {
            let filters: Vec<String> = serde_json::from_str(&endpoint.events).unwrap_or_default();
            let in_scope = endpoint
                .organization_id
                .is_none_or(|org| row.organization_id == Some(org));
            if !endpoint.enabled
                || !in_scope
                || row.created_at < endpoint.created_at
                || !wants(&filters, &row.event_type)
            {
                continue;
            }
            rows.push(webhook_deliveries::ActiveModel {
                id: Set(Uuid::now_v7()),
                endpoint_id: Set(endpoint.id),
                event_seq: Set(Some(crate::domain::changes::position(row))),
                event_id: Set(row.id),
                event_type: Set(row.event_type.clone()),
                subject: Set(subject_of(&event)),
                payload: Set(event.payload()),
                status: Set(DeliveryStatus::Pending.as_str().to_owned()),
                attempts: Set(0),
                next_attempt_at: Set(now),
                last_status_code: Set(None),
                last_error: Set(None),
                created_at: Set(now),
                delivered_at: Set(None),
            });
        }
    }
    rows
}

/// Stores deliveries; one already stored for the same endpoint and event is left alone.
/// Returns the ids of those stored.
///
/// # Errors
/// On database failure.
pub async fn insert_all(
    db: &impl ConnectionTrait,
    rows: Vec<webhook_deliveries::ActiveModel>,
) -> ApiResult<Vec<Uuid>> {
    use webhook_deliveries::Column as C;
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(200) {
        let inserted = webhook_deliveries::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([C::EndpointId, C::EventSeq])
                    .do_nothing()
                    .to_owned(),
            )
            .exec(db)
            .await;
        match inserted {
            Ok(_) | Err(DbErr::RecordNotInserted) => {}
            Err(e) => return Err(e.into()),
        }
        let wanted: Vec<Uuid> = chunk
            .iter()
            .filter_map(|r| r.id.try_as_ref().copied())
            .collect();
        let stored: Vec<Uuid> = webhook_deliveries::Entity::find()
            .select_only()
            .column(C::Id)
            .filter(C::Id.is_in(wanted))
            .into_tuple()
            .all(db)
            .await?;
        ids.extend(stored);
    }
    Ok(ids)
}

/// A test delivery to `endpoint`: a `webhook.ping` event of its own, in no feed.
///
/// # Errors
/// On database failure.
pub async fn ping(
    db: &impl ConnectionTrait,
    endpoint: &webhook_endpoints::Model,
) -> ApiResult<webhook_deliveries::Model> {
    let now = Utc::now();
    let event_id = Uuid::now_v7();
    let payload = json!({
        "type": "webhook.ping",
        "timestamp": now,
        "data": { "endpoint_id": endpoint.id, "organization_id": endpoint.organization_id },
    });
    Ok(webhook_deliveries::ActiveModel {
        id: Set(Uuid::now_v7()),
        endpoint_id: Set(endpoint.id),
        event_seq: Set(None),
        event_id: Set(event_id),
        event_type: Set("webhook.ping".to_owned()),
        subject: Set(None),
        payload: Set(payload.to_string()),
        status: Set(DeliveryStatus::Pending.as_str().to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now.fixed_offset()),
        last_status_code: Set(None),
        last_error: Set(None),
        created_at: Set(now.fixed_offset()),
        delivered_at: Set(None),
    }
    .insert(db)
    .await?)
}

/// A delivery of `endpoint_id`.
///
/// # Errors
/// 404 when there is none.
pub async fn get(
    db: &impl ConnectionTrait,
    endpoint_id: Uuid,
    delivery_id: Uuid,
) -> ApiResult<webhook_deliveries::Model> {
    webhook_deliveries::Entity::find_by_id(delivery_id)
        .filter(webhook_deliveries::Column::EndpointId.eq(endpoint_id))
        .one(db)
        .await?
        .ok_or_else(|| not_found("delivery"))
}

/// A delivery with its attempts, as the API shows it.
///
/// # Errors
/// On database failure.
pub async fn view(
    db: &impl ConnectionTrait,
    row: webhook_deliveries::Model,
) -> ApiResult<WebhookDeliveryView> {
    let attempts = webhook_attempts::Entity::find()
        .filter(webhook_attempts::Column::DeliveryId.eq(row.id))
        .order_by_asc(webhook_attempts::Column::Attempt)
        .all(db)
        .await?;
    Ok(WebhookDeliveryView::of(row, attempts))
}

/// A page of an endpoint's deliveries, newest first, with their attempts; and whether more
/// follow.
///
/// # Errors
/// On database failure.
pub async fn list(
    db: &impl ConnectionTrait,
    endpoint_id: Uuid,
    page: PageRequest,
) -> ApiResult<(Vec<WebhookDeliveryView>, bool)> {
    use webhook_deliveries::Column as C;
    let mut query = webhook_deliveries::Entity::find()
        .filter(C::EndpointId.eq(endpoint_id))
        .order_by_desc(C::Id);
    if let Some(before) = page.after {
        query = query.filter(C::Id.lt(before));
    }
    let mut rows = query.limit(page.limit + 1).all(db).await?;
    let more = rows.len() as u64 > page.limit;
    rows.truncate(page.limit as usize);
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut attempts = webhook_attempts::Entity::find()
        .filter(webhook_attempts::Column::DeliveryId.is_in(ids))
        .order_by_asc(webhook_attempts::Column::Attempt)
        .all(db)
        .await?;
    let views = rows
        .into_iter()
        .map(|row| {
            let (own, rest) = attempts.drain(..).partition(|a| a.delivery_id == row.id);
            attempts = rest;
            WebhookDeliveryView::of(row, own)
        })
        .collect();
    Ok((views, more))
}

/// Makes a delivery pending again for one more attempt, due now; returns it.
///
/// # Errors
/// On database failure.
pub async fn redeliver(
    db: &impl ConnectionTrait,
    row: webhook_deliveries::Model,
) -> ApiResult<webhook_deliveries::Model> {
    let mut model: webhook_deliveries::ActiveModel = row.into();
    model.status = Set(DeliveryStatus::Pending.as_str().to_owned());
    model.next_attempt_at = Set(Utc::now().fixed_offset());
    Ok(model.update(db).await?)
}

/// Whether a delivery must wait: an earlier delivery of the same item to the same endpoint is
/// still pending.
///
/// # Errors
/// On database failure.
pub async fn waits_for_earlier(
    db: &impl ConnectionTrait,
    row: &webhook_deliveries::Model,
) -> ApiResult<bool> {
    use webhook_deliveries::Column as C;
    let (Some(subject), Some(seq)) = (&row.subject, row.event_seq) else {
        return Ok(false);
    };
    Ok(webhook_deliveries::Entity::find()
        .filter(C::EndpointId.eq(row.endpoint_id))
        .filter(C::Subject.eq(subject.clone()))
        .filter(C::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(C::EventSeq.lt(seq))
        .count(db)
        .await?
        > 0)
}

/// Pending deliveries whose attempt was due before `before`: their queued job may have been
/// lost (a crash between storing them and queueing it). Returns ids and attempt numbers.
///
/// # Errors
/// On database failure.
pub async fn overdue(
    db: &impl ConnectionTrait,
    before: DateTime<Utc>,
    limit: u64,
) -> ApiResult<Vec<(Uuid, i32)>> {
    use webhook_deliveries::Column as C;
    Ok(webhook_deliveries::Entity::find()
        .select_only()
        .column(C::Id)
        .column(C::Attempts)
        .filter(C::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(C::NextAttemptAt.lt(before.fixed_offset()))
        .order_by_asc(C::NextAttemptAt)
        .limit(limit)
        .into_tuple::<(Uuid, i32)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, attempts)| (id, attempts + 1))
        .collect())
}

/// Deletes an endpoint's deliveries and their attempts.
///
/// # Errors
/// On database failure.
pub async fn delete_of_endpoint(db: &impl ConnectionTrait, endpoint_id: Uuid) -> ApiResult<()> {
    use sea_orm::sea_query::Query;
    let ids = Query::select()
        .column(webhook_deliveries::Column::Id)
        .from(webhook_deliveries::Entity)
        .and_where(webhook_deliveries::Column::EndpointId.eq(endpoint_id))
        .to_owned();
    webhook_attempts::Entity::delete_many()
        .filter(webhook_attempts::Column::DeliveryId.in_subquery(ids))
        .exec(db)
        .await?;
    webhook_deliveries::Entity::delete_many()
        .filter(webhook_deliveries::Column::EndpointId.eq(endpoint_id))
        .exec(db)
        .await?;
    Ok(())
}
