//! What the API shows of background synchronization: "sync now", the jobs a client follows,
//! each resource's status for a user, and the overview for admins.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{microsoft_connections, sync_jobs, sync_runs, sync_schedules};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    lease,
    queue::PRIORITY_MANUAL,
    scheduler::{self, PENDING_STATES},
    sync_job::parse_resource,
};
use crate::domain::links::Resource;
use crate::{
    domain::{
        connections::ConnectionStatus,
        settings::microsoft::{self, Direction},
        users,
    },
    error::{ApiError, ApiResult},
    startup::AppState,
    sync::runs::{self, Counts, Outcome, RunView},
};

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker (or for a run of the same resource to end).
    Queued,
    /// A run is in progress.
    Running,
    /// Every run of the job is over (see `runs`).
    Done,
    /// The resource was disabled before the job started: nothing ran.
    Skipped,
}

impl JobState {
    /// The state as stored and shown (its JSON name).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "skipped" => Self::Skipped,
            _ => Self::Done,
        }
    }
}

/// What started a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// "Sync now".
    Manual,
    /// The interval passed.
    Schedule,
    /// A retry after a failed run.
    Retry,
}

impl Trigger {
    fn parse(text: &str) -> Self {
        match text {
            "manual" => Self::Manual,
            "retry" => Self::Retry,
            _ => Self::Schedule,
        }
    }
}

/// One resource of a job.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct JobResource {
    /// The resource.
    pub resource: Resource,
    /// Where it is.
    pub state: JobState,
    /// The run, once started and recorded.
    pub run_id: Option<Uuid>,
    /// How the run ended.
    pub outcome: Option<Outcome>,
    /// When the run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A sync job: one run per resource.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SyncJobView {
    /// Job id.
    pub id: Uuid,
    /// The user synchronized.
    pub user_id: Uuid,
    /// What started it.
    pub trigger: Trigger,
    /// `done` once every resource is done or skipped; `running` while one runs.
    pub state: JobState,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Each resource, calendar first.
    pub resources: Vec<JobResource>,
    /// The finished runs, calendar first.
    pub runs: Vec<RunView>,
}

fn utc(t: chrono::DateTime<chrono::FixedOffset>) -> DateTime<Utc> {
    t.with_timezone(&Utc)
}

fn parse_outcome(text: &str) -> Option<Outcome> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

fn order(resource: &str) -> u8 {
    u8::from(resource != "calendar")
}

/// Enqueues a run of every enabled resource of the user, ahead of scheduled work.
///
/// # Errors
/// 409 `sync_disabled` when no resource is enabled; database or queue failures.
pub async fn sync_now(state: &AppState, user_id: Uuid) -> ApiResult<SyncJobView> {
    let mut resources = Vec::new();
    for resource in [Resource::Calendar, Resource::Tasks] {
        let (enabled, _, _) = crate::sync::engine::effective(state, user_id, resource).await?;
        if enabled {
            resources.push(resource);
        }
    }
    if resources.is_empty() {
        return Err(ApiError::conflict(
            "sync_disabled",
            "Neither calendar nor task synchronization is enabled for this user.",
        ));
    }
    let job_id = Uuid::now_v7();
    let now = Utc::now().fixed_offset();
    let mut ids = Vec::new();
    let mut rows = Vec::new();
    for resource in resources {
        let id = if ids.is_empty() {
            job_id
        } else {
            Uuid::now_v7()
        };
        ids.push(id);
        rows.push(sync_jobs::ActiveModel {
            id: Set(id),
            job_id: Set(job_id),
            user_id: Set(user_id),
            resource: Set(resource.as_str().to_owned()),
            trigger: Set("manual".to_owned()),
            due_at: Set(now),
            state: Set(JobState::Queued.as_str().to_owned()),
            run_id: Set(None),
            outcome: Set(None),
            created_at: Set(now),
            started_at: Set(None),
            finished_at: Set(None),
        });
    }
    sync_jobs::Entity::insert_many(rows)
        .exec_without_returning(&state.db)
        .await?;
    state
        .queue
        .push(&ids, PRIORITY_MANUAL)
        .await
        .map_err(|e| ApiError::Internal(e.context("Failed to queue sync now")))?;
    job(state, user_id, job_id).await
}

/// A job of the user.
///
/// # Errors
/// 404 when the user has no such job; database failures.
pub async fn job(state: &AppState, user_id: Uuid, job_id: Uuid) -> ApiResult<SyncJobView> {
    let mut rows = sync_jobs::Entity::find()
        .filter(sync_jobs::Column::JobId.eq(job_id))
        .filter(sync_jobs::Column::UserId.eq(user_id))
        .all(&state.db)
        .await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound("No such sync job.".to_owned()));
    }
    rows.sort_by_key(|r| order(&r.resource));
    let run_ids: Vec<Uuid> = rows.iter().filter_map(|r| r.run_id).collect();
    let mut found: HashMap<Uuid, RunView> = sync_runs::Entity::find()
        .filter(sync_runs::Column::Id.is_in(run_ids.clone()))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|m| (m.id, runs::view_of(m)))
        .collect();
    let states: Vec<JobState> = rows.iter().map(|r| JobState::parse(&r.state)).collect();
    let overall = if states.contains(&JobState::Running) {
        JobState::Running
    } else if states.contains(&JobState::Queued) {
        JobState::Queued
    } else if states.iter().all(|s| *s == JobState::Skipped) {
        JobState::Skipped
    } else {
        JobState::Done
    };
    Ok(SyncJobView {
        id: job_id,
        user_id,
        trigger: Trigger::parse(&rows[0].trigger),
        state: overall,
        created_at: utc(rows[0].created_at),
        runs: run_ids.iter().filter_map(|id| found.remove(id)).collect(),
        resources: rows
            .into_iter()
            .filter_map(|r| {
                Some(JobResource {
                    resource: parse_resource(&r.resource)?,
                    state: JobState::parse(&r.state),
                    run_id: r.run_id,
                    outcome: r.outcome.as_deref().and_then(parse_outcome),
                    started_at: r.started_at.map(utc),
                    finished_at: r.finished_at.map(utc),
                })
            })
            .collect(),
    })
}

/// A resource's synchronization status for a user.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ResourceStatus {
    /// The resource.
    pub resource: Resource,
    /// Whether it is synchronized (integration and sync enabled at the effective scope).
    pub enabled: bool,
    /// The effective direction.
    pub direction: Direction,
    /// Whether a run is in progress.
    pub in_progress: bool,
    /// A job waiting for a worker, if any.
    pub queued_job_id: Option<Uuid>,
    /// When the last run ended.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// How the last run ended.
    pub last_outcome: Option<Outcome>,
    /// What the last run changed.
    pub last_counts: Option<Counts>,
    /// Why the last run did not succeed, if it did not.
    pub last_error: Option<String>,
    /// When the next run is due; `null` when the resource is disabled or no account is
    /// connected.
    pub next_sync_at: Option<DateTime<Utc>>,
    /// Failed runs in a row.
    pub failures: i32,
    /// After a failure, when the retry is due.
    pub backoff_until: Option<DateTime<Utc>>,
}

/// A user's synchronization status.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SyncStatus {
    /// Whether a Microsoft account is connected and usable.
    pub connected: bool,
    /// The effective interval between runs, in minutes.
    pub interval_minutes: i32,
    /// Calendar, then tasks.
    pub resources: Vec<ResourceStatus>,
}

fn last_error(run: &RunView) -> Option<String> {
    if run.outcome == Outcome::Succeeded {
        return None;
    }
    run.errors
        .first()
        .map(|e| format!("{}: {}", e.code, e.message))
        .or_else(|| {
            run.log
                .iter()
                .rev()
                .find(|l| l.starts_with("stopped:"))
                .cloned()
        })
}

/// The user's status per resource.
///
/// # Errors
/// On database failure.
pub async fn status(state: &AppState, user_id: Uuid) -> ApiResult<SyncStatus> {
    let db = &state.db;
    let user = users::get(db, user_id).await?;
    let view = microsoft::effective(db, &user).await?;
    let connected = microsoft_connections::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .is_some_and(|c| c.status == ConnectionStatus::Connected.as_str());
    let interval_minutes = view.sync_interval_minutes.value;
    let interval = scheduler::interval_of(state, interval_minutes);
    let now = Utc::now();
    let mut resources = Vec::new();
    for (resource, integration, sync) in [
        (
            Resource::Calendar,
            view.integrations.calendar.value,
            &view.calendar,
        ),
        (Resource::Tasks, view.integrations.tasks.value, &view.tasks),
    ] {
        let enabled = integration && sync.enabled.value;
        let schedule = sync_schedules::Entity::find_by_id(lease::schedule_key(user_id, resource))
            .one(db)
            .await?;
        let pending = sync_jobs::Entity::find()
            .filter(sync_jobs::Column::UserId.eq(user_id))
            .filter(sync_jobs::Column::Resource.eq(resource.as_str()))
            .filter(sync_jobs::Column::State.is_in(PENDING_STATES))
            .order_by_asc(sync_jobs::Column::DueAt)
            .all(db)
            .await?;
        let last = sync_runs::Entity::find()
            .filter(sync_runs::Column::UserId.eq(user_id))
            .filter(sync_runs::Column::Resource.eq(resource.as_str()))
            .filter(sync_runs::Column::Outcome.ne(Outcome::Running.as_str()))
            .order_by_desc(sync_runs::Column::Id)
            .one(db)
            .await?
            .map(runs::view_of);
        let running = sync_runs::Entity::find()
            .filter(sync_runs::Column::UserId.eq(user_id))
            .filter(sync_runs::Column::Resource.eq(resource.as_str()))
            .filter(sync_runs::Column::Outcome.eq(Outcome::Running.as_str()))
            .count(db)
            .await?;
        let leased = schedule.as_ref().is_some_and(|s| {
            s.lease_holder.is_some() && s.lease_until.is_some_and(|u| utc(u) > now)
        });
        let queued = pending
            .iter()
            .find(|j| j.state == JobState::Queued.as_str());
        let next_sync_at = if !(enabled && connected) {
            None
        } else if let Some(job) = queued {
            Some(utc(job.due_at).max(utc(job.created_at)))
        } else {
            Some(scheduler::due_at(schedule.as_ref(), interval, now).0)
        };
        resources.push(ResourceStatus {
            resource,
            enabled,
            direction: sync.direction.value,
            in_progress: leased
                && (running > 0
                    || pending
                        .iter()
                        .any(|j| j.state == JobState::Running.as_str())),
            queued_job_id: queued.map(|j| j.job_id),
            last_sync_at: last.as_ref().and_then(|r| r.finished_at),
            last_outcome: last.as_ref().map(|r| r.outcome),
            last_counts: last.as_ref().map(|r| r.counts.clone()),
            last_error: last.as_ref().and_then(last_error),
            next_sync_at,
            failures: schedule.as_ref().map_or(0, |s| s.failures),
            backoff_until: schedule
                .as_ref()
                .filter(|s| s.failures > 0)
                .and_then(|s| s.backoff_until)
                .map(utc),
        });
    }
    Ok(SyncStatus {
        connected,
        interval_minutes,
        resources,
    })
}

/// A user's resource that keeps failing.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FailingResource {
    /// The user.
    pub user_id: Uuid,
    /// The resource.
    pub resource: Resource,
    /// Failed runs in a row.
    pub failures: i32,
    /// How the last run ended.
    pub last_outcome: Option<Outcome>,
    /// When the retry is due.
    pub backoff_until: Option<DateTime<Utc>>,
}

/// Counts of one value.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CountBy {
    /// The value (an outcome, a job state...).
    pub key: String,
    /// How many.
    pub count: u64,
}

/// Synchronization across all users.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SyncOverview {
    /// Users' resources by the outcome of their last run.
    pub by_last_outcome: Vec<CountBy>,
    /// Microsoft connections by status (`connected`, `reauth_required`, `app_misconfigured`).
    pub by_connection_status: Vec<CountBy>,
    /// Jobs waiting for a worker.
    pub queue_depth: u64,
    /// Jobs running.
    pub running: u64,
    /// When the oldest waiting job became due.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// Users' resources waiting to retry a failed run.
    pub in_backoff: u64,
    /// Connections that must be renewed by their user.
    pub reauth_required: u64,
    /// The users' resources that do not synchronize (at most 50): failing and retrying, most
    /// failures first, then stopped until their user reconnects, an admin fixes the
    /// application, or someone confirms a mass deletion.
    pub failing: Vec<FailingResource>,
    /// Webhook endpoints the service disabled because every delivery failed for
    /// `webhook_disable_after_hours` (at most 100); a PATCH with `enabled: true` turns one
    /// back on.
    pub disabled_webhooks: Vec<crate::domain::webhooks::WebhookEndpointView>,
}

async fn count_jobs(db: &impl ConnectionTrait, state: JobState) -> ApiResult<u64> {
    Ok(sync_jobs::Entity::find()
        .filter(sync_jobs::Column::State.eq(state.as_str()))
        .count(db)
        .await?)
}

/// Gauges for the metrics: queue depth, users in backoff, connections needing a reconnect.
///
/// # Errors
/// On database failure.
pub async fn gauges(db: &impl ConnectionTrait) -> ApiResult<(u64, u64, u64)> {
    let queued = count_jobs(db, JobState::Queued).await?;
    let in_backoff = sync_schedules::Entity::find()
        .select_only()
        .column(sync_schedules::Column::UserId)
        .filter(sync_schedules::Column::Failures.gt(0))
        .distinct()
        .into_tuple::<Uuid>()
        .all(db)
        .await?
        .len() as u64;
    let reauth = microsoft_connections::Entity::find()
        .filter(microsoft_connections::Column::Status.eq(ConnectionStatus::ReauthRequired.as_str()))
        .count(db)
        .await?;
    Ok((queued, in_backoff, reauth))
}

/// The overview for admins.
///
/// # Errors
/// On database failure.
pub async fn overview(db: &impl ConnectionTrait) -> ApiResult<SyncOverview> {
    let outcomes: Vec<(Option<String>, i64)> = sync_schedules::Entity::find()
        .select_only()
        .column(sync_schedules::Column::LastOutcome)
        .column_as(sync_schedules::Column::Key.count(), "n")
        .group_by(sync_schedules::Column::LastOutcome)
        .into_tuple()
        .all(db)
        .await?;
    let mut by_last_outcome: Vec<CountBy> = outcomes
        .into_iter()
        .filter_map(|(outcome, n)| {
            Some(CountBy {
                key: outcome?,
                count: u64::try_from(n).unwrap_or(0),
            })
        })
        .collect();
    by_last_outcome.sort_by(|a, b| a.key.cmp(&b.key));
    let statuses: Vec<(String, i64)> = microsoft_connections::Entity::find()
        .select_only()
        .column(microsoft_connections::Column::Status)
        .column_as(microsoft_connections::Column::UserId.count(), "n")
        .group_by(microsoft_connections::Column::Status)
        .order_by_asc(microsoft_connections::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let by_connection_status = statuses
        .into_iter()
        .map(|(key, n)| CountBy {
            key,
            count: u64::try_from(n).unwrap_or(0),
        })
        .collect();
    let oldest_due_at = sync_jobs::Entity::find()
        .filter(sync_jobs::Column::State.eq(JobState::Queued.as_str()))
        .order_by_asc(sync_jobs::Column::DueAt)
        .one(db)
        .await?
        .map(|j| utc(j.due_at));
    let stopped = [
        Outcome::ReauthRequired,
        Outcome::AppMisconfigured,
        Outcome::MassDeleteBlocked,
    ]
    .map(Outcome::as_str);
    let failing = sync_schedules::Entity::find()
        .filter(
            Condition::any()
                .add(sync_schedules::Column::Failures.gt(0))
                .add(sync_schedules::Column::LastOutcome.is_in(stopped)),
        )
        .order_by_desc(sync_schedules::Column::Failures)
        .order_by_asc(sync_schedules::Column::Key)
        .limit(50)
        .all(db)
        .await?
        .into_iter()
        .filter_map(|s| {
            Some(FailingResource {
                user_id: s.user_id,
                resource: parse_resource(&s.resource)?,
                failures: s.failures,
                last_outcome: s.last_outcome.as_deref().and_then(parse_outcome),
                backoff_until: s.backoff_until.map(utc),
            })
        })
        .collect();
    let (queue_depth, _, reauth_required) = gauges(db).await?;
    let in_backoff = sync_schedules::Entity::find()
        .filter(sync_schedules::Column::Failures.gt(0))
        .count(db)
        .await?;
    Ok(SyncOverview {
        by_last_outcome,
        by_connection_status,
        queue_depth,
        running: count_jobs(db, JobState::Running).await?,
        oldest_due_at,
        in_backoff,
        reauth_required,
        failing,
        disabled_webhooks: crate::domain::webhooks::disabled_by_failures(db, None)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::JobState;

    #[test]
    fn a_job_state_is_stored_as_it_is_shown_and_read_back() {
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Skipped,
        ] {
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
            assert_eq!(JobState::parse(state.as_str()), state);
        }
    }
}
