//! Webhooks in the background: the dispatcher reads the change log behind its position and
//! turns each committed event into deliveries (one per endpoint that wants it), queued on the
//! apalis queue; the delivery job sends one attempt, signed per Standard Webhooks, and
//! records it. A 2xx within the timeout counts as delivered; anything else is retried on
//! [`RETRY_STEPS`] (about a day, with jitter), then the delivery fails. An endpoint whose
//! every attempt has failed for `webhook_disable_after_hours` is disabled.
//!
//! Delivery is at least once: the dispatcher moves its position in the same transaction that
//! stores the deliveries, and a delivery whose job was lost (a crash between the two) is
//! queued again once overdue.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use entity::{change_log_state, webhook_attempts, webhook_deliveries, webhook_endpoints};
use rand::RngExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, Set, sea_query::Expr,
};
use uuid::Uuid;

use super::queue::{Queue, WebhookTask};
use crate::{
    config::WebhookSettings,
    crypto::Cipher,
    domain::{
        changes::{self, Scope},
        webhooks::{
            self,
            deliveries::{self, DeliveryStatus},
            signature, target,
        },
    },
};

/// Delays before the 2nd, 3rd... attempt, in units of `webhook_retry_base_ms` (5 s by
/// default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; the eighth attempt is the last, about 27
/// hours after the first).
pub const RETRY_STEPS: &[u32] = &[1, 60, 360, 1440, 3600, 7200, 7200];

/// First attempts one delivery job makes (side by side, `webhook_concurrency` at a time).
const DELIVERIES_PER_JOB: usize = 50;

/// Events the dispatcher reads per transaction.
pub const DISPATCH_BATCH: u64 = 500;

/// Events the dispatcher reads per tick while the API serves requests: enough to keep the
/// paused deliveries fed (see [`BUSY_PAUSE`]), little enough to leave the CPU to the API.
pub const BUSY_DISPATCH_BATCH: u64 = 50;

/// How late a pending delivery's attempt must be before its job is queued again.
const OVERDUE: Duration = Duration::from_secs(60);

/// How long a delivery waits before looking again when an earlier one of the same item is
/// still pending.
const ORDER_WAIT: Duration = Duration::from_millis(250);

/// Longest error text kept per attempt.
const MAX_ERROR: usize = 500;

/// How long a delivery waits before it is sent while the API of its process is serving
/// requests: webhook work is background work, and on a busy server it gives the CPU to the
/// API (a process then sends about `2 × webhook_concurrency / 80 ms` deliveries a second, 100
/// by default, and at full speed again once the API is idle).
const BUSY_PAUSE: Duration = Duration::from_millis(80);

/// The requests the HTTP server of this process is serving (see [`BUSY_PAUSE`]).
#[derive(Clone, Debug, Default)]
pub struct ApiLoad(Arc<AtomicUsize>);

/// One request being served; counted until dropped.
#[derive(Debug)]
pub struct Serving(Arc<AtomicUsize>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ApiLoad {
    /// Counts a request until the guard is dropped.
    pub fn serving(&self) -> Serving {
        self.0.fetch_add(1, Ordering::Relaxed);
        Serving(self.0.clone())
    }

    /// Whether a request is being served.
    pub fn busy(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

/// Resolves host names to public addresses only (unless private targets are allowed).
struct PublicOnly {
    allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allow_private || target::is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err("the host resolves to no public address".into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// Sends deliveries: an HTTP client that follows no redirect, uses no proxy, connects only to
/// allowed addresses and gives each attempt the configured timeout.
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::Client,
    settings: WebhookSettings,
    load: ApiLoad,
}

impl Sender {
    /// A sender with `settings`, yielding to the API whose requests `load` counts.
    ///
    /// # Errors
    /// When the TLS stack cannot be initialised.
    pub fn new(settings: &WebhookSettings, load: ApiLoad) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms.min(10_000)))
            .dns_resolver(Arc::new(PublicOnly {
                allow_private: settings.allow_private_targets,
            }))
            .user_agent(concat!("m365-sync-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            settings: settings.clone(),
            load,
        })
    }

    /// The settings it sends with.
    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// Sends one attempt; the endpoint's status, or what went wrong.
    async fn send(
        &self,
        url: &str,
        secrets: &[String],
        message_id: &str,
        body: &str,
    ) -> Result<u16, String> {
        target::check_url(url, self.settings.allow_private_targets)?;
        let timestamp = Utc::now().timestamp();
        let signature =
            signature::header(secrets, message_id, timestamp, body).map_err(|e| e.to_string())?;
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(response.status().as_u16())
    }
}

/// A transport failure in words, with its cause (reqwest's own text stops at "error sending
/// request").
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The delay before attempt `next` (2 or more), with ±10 % jitter; `None` after the last.
pub fn retry_delay(settings: &WebhookSettings, next: i32) -> Option<Duration> {
    let step = RETRY_STEPS.get(usize::try_from(next).ok()?.checked_sub(2)?)?;
    let base = settings.retry_base_ms.saturating_mul(u64::from(*step));
    let jitter = rand::rng().random_range(0.9..1.1);
    Some(Duration::from_millis((base as f64 * jitter) as u64))
}

/// Fans at most `batch` committed events behind the dispatcher's position out to the enabled
/// endpoints, moves the position, and queues the deliveries; returns how many events it read. Safe to
/// run in any number of processes: the position moves by compare-and-set, and a process that
/// lost the race stores nothing.
///
/// # Errors
/// On database or queue failure.
pub async fn dispatch(
    db: &DatabaseConnection,
    queue: &Queue<WebhookTask>,
    batch: u64,
) -> anyhow::Result<usize> {
    // Most ticks find nothing: look before taking the write lock (SQLite has one writer).
    let seen = changes::log_state(db).await?.dispatched_through;
    if changes::committed_after(db, seen, 1, Scope::All)
        .await?
        .is_empty()
    {
        return Ok(0);
    }
    let endpoints = webhooks::enabled(db).await?;
    let tx = crate::db::begin_write(db).await?;
    let state = changes::log_state(&tx).await?;
    let events = changes::committed_after(&tx, state.dispatched_through, batch, Scope::All).await?;
    let Some(last) = events.last().map(changes::position) else {
        tx.rollback().await?;
        return Ok(0);
    };
    let ids = deliveries::insert_all(&tx, deliveries::fan_out(&events, &endpoints)).await?;
    let moved = change_log_state::Entity::update_many()
        .col_expr(
            change_log_state::Column::DispatchedThrough,
            Expr::value(last),
        )
        .filter(change_log_state::Column::Id.eq(1))
        .filter(change_log_state::Column::DispatchedThrough.eq(state.dispatched_through))
        .exec(&tx)
        .await?;
    if moved.rows_affected == 0 {
        tx.rollback().await?;
        return Ok(0);
    }
    tx.commit().await?;
    let jobs: Vec<_> = ids
        .chunks(DELIVERIES_PER_JOB)
        .map(|chunk| {
            let task = WebhookTask {
                with: chunk[1..].to_vec(),
                ..WebhookTask::attempt(chunk[0], 1)
            };
            (task, None)
        })
        .collect();
    if !jobs.is_empty() {
        queue.push_jobs(&jobs, 0).await?;
    }
    Ok(events.len())
}

/// Queues again the pending deliveries whose attempt is overdue (see [`OVERDUE`]); pushing a
/// job the queue still holds is harmless.
///
/// # Errors
/// On database or queue failure.
pub async fn requeue_overdue(
    db: &DatabaseConnection,
    queue: &Queue<WebhookTask>,
) -> anyhow::Result<usize> {
    let due = Utc::now() - chrono::Duration::from_std(OVERDUE).unwrap_or_default();
    let overdue = deliveries::overdue(db, due, 500).await?;
    let jobs: Vec<_> = overdue
        .iter()
        .map(|(delivery_id, attempt)| (WebhookTask::attempt(*delivery_id, *attempt), None))
        .collect();
    if !jobs.is_empty() {
        queue.push_jobs(&jobs, 0).await?;
    }
    Ok(jobs.len())
}

/// Queues the next attempt of a delivery (a test ping, a redelivery), due now.
///
/// # Errors
/// When the queue cannot be written.
pub async fn queue_attempt(
    queue: &Queue<WebhookTask>,
    delivery: &webhook_deliveries::Model,
) -> anyhow::Result<()> {
    let task = WebhookTask::attempt(delivery.id, delivery.attempts + 1);
    queue.push_jobs(&[(task, None)], 0).await
}

/// What the delivery job needs.
pub struct Delivery<'a> {
    /// The database.
    pub db: &'a DatabaseConnection,
    /// Decrypts endpoint secrets.
    pub cipher: &'a Cipher,
    /// Sends attempts.
    pub sender: &'a Sender,
    /// Queues retries.
    pub queue: &'a Queue<WebhookTask>,
}

impl Delivery<'_> {
    /// Performs the attempts of a job, `concurrency` at a time.
    ///
    /// # Errors
    /// The first failure of an attempt (the queue tries the job again; attempts already made
    /// are not made twice).
    pub async fn perform_all(&self, task: WebhookTask, concurrency: usize) -> anyhow::Result<()> {
        use futures_util::StreamExt;
        let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(task.split())
            .map(|one| self.perform(one))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Performs one queued attempt. A job that is not the delivery's next attempt (a duplicate,
    /// or overtaken by a redelivery) does nothing.
    ///
    /// # Errors
    /// On database or queue failure (the queue tries the job again).
    pub async fn perform(&self, task: WebhookTask) -> anyhow::Result<()> {
        let Some(row) = webhook_deliveries::Entity::find_by_id(task.delivery_id)
            .one(self.db)
            .await?
        else {
            return Ok(());
        };
        if row.status != DeliveryStatus::Pending.as_str() || task.attempt != row.attempts + 1 {
            // A duplicate, or overtaken by a redelivery.
            return Ok(());
        }
        let Some(endpoint) = webhook_endpoints::Entity::find_by_id(row.endpoint_id)
            .one(self.db)
            .await?
        else {
            return Ok(());
        };
        if !endpoint.enabled {
            let mut model: webhook_deliveries::ActiveModel = row.into();
            model.status = Set(DeliveryStatus::Failed.as_str().to_owned());
            model.last_error = Set(Some("the endpoint is disabled".to_owned()));
            model.update(self.db).await?;
            return Ok(());
        }
        if deliveries::waits_for_earlier(self.db, &row).await? {
            let again = WebhookTask {
                waited: task.waited + 1,
                ..task
            };
            return self.queue.push_jobs(&[(again, Some(ORDER_WAIT))], 0).await;
        }
        if self.sender.load.busy() {
            // Spread, so that paused deliveries do not all resume at once.
            let pause = BUSY_PAUSE.mul_f64(rand::rng().random_range(0.5..1.5));
            tokio::time::sleep(pause).await;
        }
        let secrets = webhooks::signing_secrets(self.cipher, &endpoint)?;
        let started = Utc::now();
        let clock = Instant::now();
        let sent = self
            .sender
            .send(
                &endpoint.url,
                &secrets,
                &row.event_id.to_string(),
                &row.payload,
            )
            .await;
        let latency_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status_code, error) = match sent {
            Ok(code) if (200..300).contains(&code) => (Some(code), None),
            Ok(code) => (Some(code), Some(format!("answered {code}"))),
            Err(e) => (None, Some(e.chars().take(MAX_ERROR).collect::<String>())),
        };
        let record = webhook_attempts::ActiveModel {
            id: Set(Uuid::now_v7()),
            delivery_id: Set(row.id),
            attempt: Set(task.attempt),
            started_at: Set(started.fixed_offset()),
            status_code: Set(status_code.map(i32::from)),
            latency_ms: Set(latency_ms),
            error: Set(error.clone()),
        };
        self.settle(row, endpoint, task.attempt, record, status_code, error)
            .await
    }

    /// Records an attempt, its outcome on the delivery and on the endpoint, in one transaction
    /// (one write per delivery: on SQLite, each write makes the API's connections read the
    /// pages it changed again), and queues the next attempt after a failure.
    async fn settle(
        &self,
        row: webhook_deliveries::Model,
        endpoint: webhook_endpoints::Model,
        attempt: i32,
        record: webhook_attempts::ActiveModel,
        status_code: Option<u16>,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        let now = Utc::now();
        let settings = self.sender.settings();
        let retry = error
            .as_ref()
            .and_then(|_| retry_delay(settings, attempt + 1));
        let status = match (&error, retry) {
            (None, _) => DeliveryStatus::Delivered,
            (Some(_), Some(_)) => DeliveryStatus::Pending,
            (Some(_), None) => DeliveryStatus::Failed,
        };
        let mut model: webhook_deliveries::ActiveModel = row.clone().into();
        model.status = Set(status.as_str().to_owned());
        model.attempts = Set(attempt);
        model.last_status_code = Set(status_code.map(i32::from));
        model.last_error = Set(error.clone());
        if status == DeliveryStatus::Delivered {
            model.delivered_at = Set(Some(now.fixed_offset()));
        }
        if let Some(delay) = retry {
            let delay = chrono::Duration::from_std(delay).unwrap_or_default();
            model.next_attempt_at = Set((now + delay).fixed_offset());
        }
        let tx = crate::db::begin_write(self.db).await?;
        record.insert(&tx).await?;
        model.update(&tx).await?;
        self.record_health(&tx, endpoint, error.is_none()).await?;
        tx.commit().await?;
        if let Some(delay) = retry {
            let next = WebhookTask::attempt(row.id, attempt + 1);
            self.queue.push_jobs(&[(next, Some(delay))], 0).await?;
        }
        Ok(())
    }

    /// Forgets an endpoint's failures after a success; after a failure, records since when it
    /// fails and disables it once that is `disable_after_hours` ago.
    async fn record_health(
        &self,
        tx: &DatabaseTransaction,
        endpoint: webhook_endpoints::Model,
        delivered: bool,
    ) -> anyhow::Result<()> {
        use webhook_endpoints::Column as C;
        let now = Utc::now();
        let update = webhook_endpoints::Entity::update_many().filter(C::Id.eq(endpoint.id));
        match (delivered, endpoint.failing_since) {
            (true, None) => {}
            (true, Some(_)) => {
                update
                    .col_expr(
                        C::FailingSince,
                        Expr::value(None::<chrono::DateTime<chrono::FixedOffset>>),
                    )
                    .exec(tx)
                    .await?;
            }
            (false, None) => {
                update
                    .col_expr(C::FailingSince, Expr::value(Some(now.fixed_offset())))
                    .filter(C::FailingSince.is_null())
                    .exec(tx)
                    .await?;
            }
            (false, Some(since)) => {
                let limit = chrono::Duration::hours(
                    i64::try_from(self.sender.settings().disable_after_hours)
                        .unwrap_or(i64::MAX / 4),
                );
                if now - since.with_timezone(&Utc) >= limit {
                    let reason = format!(
                        "every delivery failed from {} on",
                        since.with_timezone(&Utc).to_rfc3339()
                    );
                    update
                        .col_expr(C::Enabled, Expr::value(false))
                        .col_expr(C::DisabledReason, Expr::value(Some(reason)))
                        .col_expr(C::UpdatedAt, Expr::value(now.fixed_offset()))
                        .filter(C::Enabled.eq(true))
                        .exec(tx)
                        .await?;
                    tracing::warn!(endpoint = %endpoint.id, "A webhook endpoint was disabled after failing too long");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let settings = WebhookSettings::default();
        let first = retry_delay(&settings, 2).unwrap();
        assert!((4500..=5500).contains(&first.as_millis()), "{first:?}");
        let last = retry_delay(&settings, 8).unwrap();
        assert!(last >= Duration::from_secs(9 * 3600), "{last:?}");
        assert_eq!(retry_delay(&settings, 9), None);
        assert_eq!(retry_delay(&settings, 1), None);
        let total: u64 = RETRY_STEPS.iter().map(|s| u64::from(*s) * 5).sum();
        assert!(
            (24 * 3600..30 * 3600).contains(&total),
            "about a day: {total} s"
        );
    }
}
